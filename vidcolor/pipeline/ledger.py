"""Pipeline bookkeeping: what each stage ran on, with which options, what it left, and so
whether its work can be trusted and skipped.

Each stage keeps a record in ``WORK/pipeline/STAGE.json``: a key (a hash of its input files'
names, sizes and modification times, its options, and the files it depends on from the stage
before), its status (``running`` from the moment it starts, ``done`` only once it finished),
its outputs, and its wall time. A stage is skipped only when its record is ``done``, its key is
the one this run computes, and its outputs are all there. A ``running`` record is a stage that
was interrupted, a ``failed`` one says why it stopped: neither is trusted; it is resumed
(training from its checkpoint, a dataset build from its finished scans, a render from its
finished episodes) or redone.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidcolor import __version__
from vidcolor.atomic import atomic_path

STAGES = ("extract", "dataset", "train", "render")


def file_state(path: Path) -> list:
    """What identifies a file's version cheaply: its path, size and modification time."""
    st = path.stat()
    return [os.path.abspath(path), st.st_size, st.st_mtime_ns]


def stage_key(**parts: Any) -> str:
    """A hash of what a stage's result depends on (JSON-able parts)."""
    blob = json.dumps({"vidcolor": __version__.split(".")[0], **parts}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StageState:
    state: str  # done, stale, interrupted, failed, pending
    why: str  # a few words for `pipeline status`
    resume: bool = False  # interrupted or failed under the key this run computes


class Ledger:
    """The stage records in ``folder`` (a WorkLayout's ``ledger``): rank 0 writes the stages'
    records, the rank that renders an episode writes that episode's record."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def read(self, stage: str) -> dict | None:
        try:
            record = json.loads((self.folder / f"{stage}.json").read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def _write(self, stage: str, record: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / f"{stage}.json") as tmp:
            tmp.write_text(json.dumps(record, indent=1, sort_keys=True))

    def start(self, stage: str, key: str, options: dict) -> None:
        """Mark ``stage`` running (until ``finish``)."""
        self._write(
            stage,
            {
                "stage": stage,
                "status": "running",
                "key": key,
                "options": options,
                "started": time.time(),
            },
        )

    def finish(
        self, stage: str, key: str, options: dict, outputs: list[Path], seconds: float
    ) -> None:
        self._write(
            stage,
            {
                "stage": stage,
                "status": "done",
                "key": key,
                "options": options,
                "outputs": [str(p) for p in outputs],
                "seconds": round(seconds, 1),
                "finished": time.time(),
            },
        )

    def fail(self, stage: str, key: str, options: dict, error: str) -> None:
        """Mark ``stage`` failed, with the one line that said why."""
        self._write(
            stage,
            {
                "stage": stage,
                "status": "failed",
                "key": key,
                "options": options,
                "error": error,
                "finished": time.time(),
            },
        )

    def item(self, stage: str, name: str, status: str, key: str) -> None:
        """One piece of a stage (an episode) is ``running`` or ``done`` under ``key``."""
        folder = self.folder / f"{stage}.items"
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / f"{name}.json") as tmp:
            tmp.write_text(json.dumps({"status": status, "key": key}))

    def item_state(self, stage: str, name: str) -> tuple[str, str] | None:
        """(status, key) of one piece of a stage, or None."""
        try:
            record = json.loads((self.folder / f"{stage}.items" / f"{name}.json").read_text())
            return str(record["status"]), str(record["key"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def state(self, stage: str, key: str | None) -> StageState:
        """Where ``stage`` stands against the ``key`` this run computes (None: not computable
        yet, because a stage before it has to run first)."""
        record = self.read(stage)
        if record is None:
            return StageState("pending", "never run")
        if record.get("status") != "done":
            same = key is not None and record.get("key") == key
            why = "will resume" if same else "will redo (changed)"
            if record.get("status") == "failed":
                return StageState("failed", f"{why}; it failed: {record.get('error')}", same)
            return StageState("interrupted", why, same)
        if key is None:
            return StageState("stale", "a stage before it will run again")
        if record.get("key") != key:
            return StageState("stale", "inputs or options changed")
        missing = [p for p in record.get("outputs", []) if not Path(p).exists()]
        if missing:
            return StageState("stale", f"output missing: {missing[0]}")
        return StageState("done", f"{record.get('seconds', 0):.0f} s")
