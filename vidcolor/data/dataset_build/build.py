"""Building a dataset: in a hidden work folder beside the target, renamed into place when
complete. A finished scan is kept there, so a build that was interrupted resumes from the next
video when run again with the same settings; anything else restarts it."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from vidcolor import __version__
from vidcolor.atomic import atomic_path
from vidcolor.data.dataset import DATASET_FORMAT
from vidcolor.data.dataset_build.picture import fit, scaled
from vidcolor.data.dataset_build.presets import HEADROOM, PRESETS, SPLITS, STORE, BuildError, Preset
from vidcolor.data.dataset_build.scan import Scan, load_scan, scan_video
from vidcolor.data.dataset_build.select import (
    DROPPED,
    Pick,
    pick_per_scene,
    picture_box,
    split_picks,
    usable_candidates,
)
from vidcolor.data.dataset_build.shards import write_shards
from vidcolor.locks import exclusive
from vidcolor.options import BuildOptions
from vidcolor.ownership import (
    check_removable,
    claim,
    is_empty,
    kind_of,
    remove_file,
    remove_tree,
)
from vidcolor.video import VideoError


def frame_total(videos: list[Path]) -> int:
    """Frames in all ``videos`` as their containers state them (for a progress bar)."""
    from vidcolor.video import probe

    total = 0
    for v in videos:
        with contextlib.suppress(VideoError):
            total += probe(v).frame_count or 0
    return total


def build_dataset(
    videos: list[Path],
    out: Path,
    options: BuildOptions | None = None,
    overwrite: bool = False,
    on_frames: Callable[[int], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> dict:
    """Build a dataset from ``videos`` into ``out``; returns the manifest. A video that cannot
    be read is named in ``manifest["skipped"]`` and the rest are built. ``on_frames(n)``
    hears of decoded frames, ``on_note`` of things worth a line (a resumed build)."""
    options = options or BuildOptions()
    if options.preset not in PRESETS:
        raise BuildError(f"unknown preset '{options.preset}' ({', '.join(PRESETS)})")
    if options.split_by not in ("scene", "episode"):
        raise BuildError("--split-by takes scene or episode")
    note = on_note or (lambda line: None)
    out = Path(os.path.abspath(out))  # "." has no name to build a hidden folder beside
    _check_target(out, overwrite)
    unique: list[Path] = []
    for v in videos:  # one file named twice would be two episodes, its scenes in two splits
        if any(os.path.abspath(v) == os.path.abspath(u) for u in unique):
            note(f"{v}: given twice; used once")
        else:
            unique.append(v)
    work = out.with_name(f".{out.name}.partial")
    plan = {
        "vidcolor": __version__,
        "options": asdict(options),
        "settings": asdict(PRESETS[options.preset]),
        "storage": [STORE, HEADROOM],
        "videos": [os.path.abspath(v) for v in unique],
    }
    claim(work, "dataset-partial", "an unfinished dataset build")
    with exclusive(work / "lock", str(out)):
        _prepare(work, plan, note)
        try:
            manifest = _build(unique, work, options, on_frames or (lambda n: None))
        except BuildError:
            remove_tree(work, out.parent, "dataset-partial")  # nothing to resume
            raise
        except OSError as e:  # a full disk: keep what can resume, drop what was half-written
            _drop_unfinished(work)
            kept = sum(p.stat().st_size for p in work.iterdir()) / 1e6
            raise BuildError(
                f"{work}: cannot write ({e.strerror or e}); {kept:.1f} MB of "
                "finished scans kept there: free some space and run the same "
                "command again to resume"
            ) from None
        for leftover in [*work.glob("scan_*"), work / "plan.json"]:
            remove_file(leftover, work)
    _put_in_place(work, out)
    return manifest


def _check_target(out: Path, overwrite: bool) -> None:
    """Before any work: ``out`` is new, or --overwrite asks to replace an empty folder or a
    dataset that holds nothing vidcolor did not put there."""
    if not out.exists():
        return
    if not overwrite:
        raise BuildError(f"{out}: exists; use --overwrite to replace it")
    here = Path(os.path.abspath(Path.cwd()))
    if out == here or out in here.parents:
        raise BuildError(f"{out}: the current folder (or one above it); give a folder inside it")
    if is_empty(out):
        return
    if kind_of(out) != "dataset":
        raise BuildError(f"{out}: not a vidcolor dataset; --overwrite replaces only datasets")
    check_removable(out, out.parent, "dataset")


def _put_in_place(work: Path, out: Path) -> None:
    """Rename the finished build to ``out``; an older dataset there goes only once the new one
    is in place. The lock is released (closed) before the rename: Windows cannot rename a
    folder with an open file in it."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(work, out)
    remove_file(out / "lock", out)
    remove_tree(old, out.parent, "dataset")


def _drop_unfinished(work: Path) -> None:
    """Delete what an interrupted write left half done in the build folder: the files of scans
    not finished (no .json yet), shards and manifest; finished scans stay to resume from."""
    finished = {p.name.removesuffix(".json") for p in work.glob("scan_*.json")}
    for p in work.iterdir():
        if p.name in ("lock", "plan.json") or p.name.split(".")[0] in finished:
            continue
        remove_file(p, work)


def _prepare(work: Path, plan: dict, note: Callable[[str], None]) -> None:
    """Keep the finished scans of an interrupted build of the same plan; clear anything else."""
    try:
        same = json.loads((work / "plan.json").read_text()) == plan
    except (OSError, ValueError):
        same = False
    done = sorted(work.glob("scan_*.json")) if same else []
    if done:
        note(
            f"resuming an interrupted build: {len(done)} of {len(plan['videos'])} videos "
            "already scanned"
        )
    for item in work.iterdir():
        if item.name != "lock" and not (same and item.name.startswith(("scan_", "plan.json"))):
            remove_file(item, work)
    if not same:  # the folder's marker: whole or absent, never half-written
        with atomic_path(work / "plan.json") as tmp:
            tmp.write_text(json.dumps(plan))


def _scanned(video: Path, base: Path, preset: Preset, on_frames: Callable[[int], None]) -> Scan:
    """The video's scan: the one an interrupted build finished, or a new one (kept beside the
    candidates it wrote, whole or not at all). VideoError when the video cannot be read."""
    scan = load_scan(base, video)
    if scan is not None:
        on_frames(scan.frames)
        return scan
    scan = scan_video(video, preset, base, on_frames)
    with atomic_path(Path(f"{base}.json")) as tmp:
        tmp.write_text(json.dumps(asdict(scan)))
    return scan


def _build(
    videos: list[Path], work: Path, options: BuildOptions, on_frames: Callable[[int], None]
) -> dict:
    preset = PRESETS[options.preset]
    shape: tuple[int, int] | None = None  # the dataset's stored frame shape, set by the first
    kept: dict[str, list[Pick]] = {name: [] for name, _ in SPLITS}
    skipped: list[str] = []
    warnings: list[str] = []
    sources: list[dict] = []
    dropped = dict.fromkeys(DROPPED, 0)
    for episode, video in enumerate(videos):
        base = work / f"scan_{episode}"
        try:
            scan = _scanned(video, base, preset, on_frames)
        except VideoError as e:  # the video's fault; a write error in the work folder is not
            skipped.append(str(e))
            continue
        if not scan.rows:
            skipped.append(f"{video}: no frames")
            continue
        if scan.warning:
            warnings.append(scan.warning)
        thumbs = usable_candidates(scan, base, preset, dropped)
        box, hud = picture_box(scan, base, options.avoid_hud, warnings, video)
        if shape is None and thumbs:  # the first video with frames sets the dataset's shape
            s = round(preset.size * STORE) / min(box[2], box[3])
            shape = (round(box[3] * s), round(box[2] * s))
        if shape is not None:
            box = fit(box, shape[1] / shape[0])
        to_source = scan.source["width"] / scan.shape[1]  # boxes in the video's own pixels
        sources.append(
            {
                **scan.source,
                "episode": episode,
                "frames": scan.frames,
                "cuts": scan.cuts,
                "picture": scaled(box, to_source),
                "hud": [scaled(b, to_source) for b in hud],
            }
        )
        picks = pick_per_scene(thumbs, scan, preset, dropped)
        for split, items in split_picks(
            picks, scan, Path(f"{base}.u8"), box, episode, options
        ).items():
            kept[split] += items
    if shape is None or not any(kept.values()):
        why = "; ".join(skipped) or "every frame was dropped (dark, greyscale, duplicate ...)"
        raise BuildError(f"no usable frames: {why}")
    manifest_frames, shards = write_shards(work, kept, shape)
    manifest = {
        "format": DATASET_FORMAT,
        "vidcolor": __version__,
        **asdict(options),
        "settings": asdict(preset),
        "shape": list(shape),
        "shards": shards,
        "sources": sources,
        "dropped": dropped,
        "skipped": skipped,
        "warnings": warnings,
        "frames": manifest_frames,
    }
    with atomic_path(work / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest
