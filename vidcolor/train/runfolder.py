"""A training run's folder: a new run started in it, or the run there continued.

Its record is config.json, marked ``"format": "vidcolor-run"``, a key no other tool writes
(``ownership.kind_of`` reads it): a folder of the user's whose config.json merely has a run's
keys is never taken. A folder an earlier vidcolor made (config.json without the mark) is resumed
when it plainly is a run, config.json a whole TrainConfig and last.pt a vidcolor checkpoint, and
is marked then; ``train -o`` never starts over one, as it cannot tell it from a look-alike.

One process trains in a run at a time: its ``lock`` is held from start (or resume) until ``fit``
ends, by rank 0 alone under torchrun, whose other ranks follow rank 0's verdict.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from vidcolor.atomic import atomic_path
from vidcolor.errors import UserError
from vidcolor.locks import exclusive
from vidcolor.options import TrainConfig
from vidcolor.ownership import RUN_FORMAT, NotOursError, check_claim, kind_of, remove_tree
from vidcolor.runtime import Dist, RunError
from vidcolor.train.checkpoint import check_train_config, load_checkpoint
from vidcolor.train.loop import Trainer

__all__ = ["RUN_FORMAT", "resume_run", "start_run"]


def _write_record(run: Path, record: dict) -> None:
    with atomic_path(run / "config.json") as tmp:  # the folder's record: whole or absent
        tmp.write_text(json.dumps({"format": RUN_FORMAT, **record}, indent=2))


def earlier_run(run: Path) -> dict | None:
    """The config.json of a run folder an earlier vidcolor made (no mark), when it plainly is
    one: config.json a whole TrainConfig and last.pt a vidcolor checkpoint; else None."""
    record_path = run / "config.json"
    if run.is_symlink() or not record_path.is_file():  # a FIFO there is never opened
        return None
    try:
        record = json.loads(record_path.read_text())
        if not isinstance(record, dict) or "format" in record:
            return None
        check_train_config(record, record_path)
        load_checkpoint(run / "last.pt")
    except (OSError, ValueError, UserError):
        return None
    return record


def _is_run(run: Path) -> bool:
    return kind_of(run) == "train" or earlier_run(run) is not None


def _check_new(run: Path) -> None:
    """Refuse ``run`` for a new run unless it is new, empty, or a run that stopped before its
    first checkpoint (nothing to resume, so starting again over it loses nothing)."""
    if (run / "last.pt").exists() and _is_run(run):
        raise RunError(f"{run}: already holds a run; continue it with --resume {run}")
    check_claim(run, "train", "a training run")


def _claim_new(run: Path, cfg: TrainConfig, hold: ExitStack) -> bool:
    """``run`` checked, made, locked (the lock into ``hold``) and given its record; whether
    this call made the folder."""
    _check_new(run)
    made = not run.exists()
    run.mkdir(parents=True, exist_ok=True)
    with ExitStack() as failing:
        failing.enter_context(exclusive(run / "lock", str(run)))  # released if what follows fails
        if (run / "last.pt").exists():  # a run another process made here since the check
            raise RunError(f"{run}: already holds a run; continue it with --resume {run}")
        _write_record(run, cfg.to_dict())
        hold.push(failing.pop_all())
    return made


def _claim_resume(run: Path, hold: ExitStack) -> dict:
    """``run`` checked as a run to resume and locked (into ``hold``); a run folder an earlier
    vidcolor made is marked. Its last.pt, loaded and checked once, under the lock."""
    if not (run / "last.pt").exists():
        raise RunError(f"{run}: no last.pt to resume from")
    marked = kind_of(run) == "train"
    earlier = None if marked else earlier_run(run)
    if not marked and earlier is None:
        load_checkpoint(run / "last.pt")  # a damaged or foreign checkpoint says so first
        why = "its config.json is not a run's record"
        raise NotOursError(f"{run}: not a training run vidcolor made ({why}); left alone")
    with ExitStack() as failing:
        failing.enter_context(exclusive(run / "lock", str(run)))  # released if what follows fails
        state = load_checkpoint(run / "last.pt")
        if earlier is not None:
            _write_record(run, earlier)
        hold.push(failing.pop_all())
    return state


def _on_rank_0(dist_info: Dist, claim: Callable[[], object]) -> object:
    """``claim()`` on rank 0; the other ranks raise what it raised, in one line, rather than
    wait for a rank that has stopped."""
    result, refused = None, None
    if dist_info.main:
        try:
            result = claim()
        except (UserError, OSError) as e:
            refused = e
    said = dist_info.share(None if refused is None else str(refused))
    if refused is not None:
        raise refused
    if said is not None:
        raise RunError(said)
    return result


def start_run(
    cfg: TrainConfig,
    run: Path,
    dist_info: Dist,
    workers: int,
    on_image: Callable[[int, int], None] | None = None,
    start: tuple[dict, dict | None] | None = None,
) -> Trainer:
    """A new run folder with config.json; refuses one that already holds a run, and a folder
    of other files. ``on_image(done, total)``: the decode of DATA into the run's cache. The
    run's lock is held until the trainer's ``fit`` ends. ``cfg`` is recorded resolved."""
    cfg, hold = cfg.resolved(), ExitStack()
    made = _on_rank_0(dist_info, lambda: _claim_new(run, cfg, hold))
    try:
        trainer = Trainer(cfg, run, dist_info, workers, on_image, start)
    except BaseException:
        with hold:
            if made and dist_info.main:  # bad data: the folder this call made goes again
                remove_tree(run, run.parent, "train")
        raise
    trainer.hold = hold
    return trainer


def resume_run(
    run: Path,
    dist_info: Dist,
    workers: int,
    epochs: int | None = None,
    on_image: Callable[[int, int], None] | None = None,
) -> Trainer:
    """Continue ``run`` from last.pt: same step, optimizer state and schedule. The run's lock
    is held until the trainer's ``fit`` ends."""
    hold = ExitStack()
    state = _on_rank_0(dist_info, lambda: _claim_resume(run, hold))
    try:
        state = state or load_checkpoint(run / "last.pt")  # the other ranks read their own
        cfg = TrainConfig.from_dict(state["config"])
        if epochs is not None:
            cfg = replace(cfg, epochs=epochs)
        trainer = Trainer(cfg, run, dist_info, workers, on_image)
        trainer.load(run / "last.pt", state)
    except BaseException:
        hold.close()
        raise
    trainer.hold = hold
    return trainer
