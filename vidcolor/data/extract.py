"""`vidcolor extract`: frames of a video as image files plus a manifest row per frame."""

from __future__ import annotations

import errno
import json
import os
import re
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from vidcolor.atomic import AppearedError, atomic_path, clear_own, clear_stale, publish, temp_beside
from vidcolor.data.scenes import ShotDetector, scene_of
from vidcolor.errors import UserError
from vidcolor.options import ExtractOptions
from vidcolor.ownership import file_in, kind_of, remove_file
from vidcolor.video import Frame, NoFramesError, VideoReader

MANIFEST = "manifest.jsonl"
SETTINGS = "extract.json"


class ExtractError(UserError):
    """The output folder cannot take this extraction as asked."""


def encode_image(image: np.ndarray, options: ExtractOptions) -> bytes:
    """PNG (lossless, zlib level 1: big files are cheaper than slow ones) or JPEG bytes."""
    bgr = image if image.ndim == 2 else image[..., ::-1]  # OpenCV wants BGR
    if options.image_format == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    else:
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, options.jpeg_quality])
    if not ok:
        raise ExtractError(f"OpenCV could not encode a {image.shape} frame")
    return buf.tobytes()


def _write_file(path: Path, data: bytes) -> None:
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError as e:  # a full disk names no file by itself
        raise ExtractError(f"{path}: cannot write ({e.strerror or e})") from None


def _write_temp(path: Path, data: bytes) -> Path:
    """``data`` in a temporary file beside ``path``, which ``_publish`` then moves into place."""
    tmp = temp_beside(path)
    try:
        tmp.write_bytes(data)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ExtractError(f"{path}: cannot write ({e.strerror or e})") from None
    return tmp


def _publish(tmp: Path, path: Path) -> None:
    """Move a finished frame into place. Whatever is at ``path`` by now is not the folder's
    record's (those were removed or skipped as the run began), so it is kept."""
    try:
        publish(tmp, path, replace=False)
    except AppearedError:
        raise _not_listed(path) from None
    except OSError as e:
        raise ExtractError(f"{path}: cannot write ({e.strerror or e})") from None
    finally:
        tmp.unlink(missing_ok=True)


def _not_listed(path: Path) -> ExtractError:
    """A file at a frame's name that the folder's record does not list: the user's."""
    return ExtractError(
        f"{path}: named like a frame, but not one vidcolor wrote (its {MANIFEST} does not list "
        "it); left as it is: move it away, or choose a new or empty folder"
    )


class FrameExtractor:
    """Stream ``video``'s frames into ``out_dir``; iterate it to do the work.

    Each image lands whole (temporary file, then a move that never replaces a file) just before
    its manifest row is appended, so a killed run leaves only complete files and rows, and
    ``resume`` picks up after them. The folder's files at a frame's name are replaced only when
    its manifest lists them: anything else there is the user's. A run that fails before its
    first frame takes back what it made. Images are encoded on ``workers`` threads (OpenCV
    releases the GIL) with a bounded queue.
    """

    def __init__(
        self,
        video: str | Path,
        out_dir: str | Path,
        options: ExtractOptions,
        *,
        overwrite: bool = False,
        resume: bool = False,
        workers: int = 2,
    ) -> None:
        self.video, self.out_dir, self.options = Path(video), Path(out_dir), options
        self.workers = max(1, workers)
        self.reader = VideoReader(
            self.video,
            gray=options.gray,
            start=options.start,
            end=options.end,
            every=options.every,
            fps=options.fps,
            size=options.size,
            autorotate=True,  # image files carry no rotation flag: store them upright
        )
        self.detector = ShotDetector.attach(self.reader) if options.scenes else None
        self._made: list[Path] = []  # the folders this run created, innermost first
        try:
            self._check_start()
            self.done = self._prepare(overwrite, resume)
        except BaseException:
            self.reader.close()
            raise
        self.written = 0

    def __enter__(self) -> FrameExtractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reader.close()

    @property
    def expected(self) -> int:
        """Frames this run will yield, estimated from the stream (for progress bars)."""
        info, o = self.reader.info, self.options
        t0 = max(o.start or 0.0, 0.0)
        t1 = info.duration if info.duration is not None else info.frame_count / info.frame_rate
        t1 = min(t1, o.end) if o.end is not None else t1
        seconds = max(0.0, t1 - t0)
        if o.fps is not None:
            return max(1, round(seconds * min(o.fps, float(info.frame_rate))))
        return max(1, -(-round(seconds * float(info.frame_rate)) // o.every))

    def _settings(self) -> dict:
        return {
            "source": str(self.video.resolve()),
            "source_bytes": self.video.stat().st_size,
            "options": asdict(self.options),
        }

    def _check_start(self) -> None:
        """A start at or past the video's end, said before any folder is made."""
        info, start = self.reader.info, self.options.start
        if start is None or not info.duration:
            return
        end = float(info.start_time) + info.duration
        if start >= end:
            raise ExtractError(f"{self.video}: --start {start:g} is past its end ({end:.2f} s)")

    def _make_folder(self) -> None:
        out = self.out_dir
        if out.exists() and not out.is_dir():
            raise ExtractError(f"{out}: exists and is not a folder")
        missing = [p for p in (out, *out.parents) if not os.path.lexists(p)]
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ExtractError(f"{out}: cannot create the folder ({e.strerror})") from None
        self._made = missing
        if not os.access(out, os.W_OK):
            raise ExtractError(f"{out}: the folder is not writable")

    def _prepare(self, overwrite: bool, resume: bool) -> dict[int, dict]:
        """Check the folder and return the manifest rows already done (when resuming)."""
        self._make_folder()
        out = self.out_dir
        manifest, settings = out / MANIFEST, out / SETTINGS
        if not any(out.iterdir()):
            return {}
        if resume and settings.exists():
            try:
                before = json.loads(settings.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ExtractError(
                    f"{settings}: unreadable; use --overwrite to start again"
                ) from None
            now = self._settings()
            if {k: before.get(k) for k in now} != now:
                old = before.get("options", {})
                changed = [k for k, v in now["options"].items() if old.get(k) != v]
                what = f"options differ: {', '.join(changed)}" if changed else "another source"
                raise ExtractError(f"{out}: cannot resume, it holds another extraction ({what})")
            rows = read_manifest(manifest)
            self._refuse_unlisted(rows)
            done = {r["frame"]: r for r in rows if (out / r["file"]).exists()}
            _rewrite_manifest(manifest, done.values())  # drop rows whose file went missing
            clear_stale(out)  # the killed run's half-written frames
            return done
        if resume:
            raise ExtractError(f"{out}: nothing to resume here (no {SETTINGS})")
        if not overwrite:
            raise ExtractError(f"{out}: not empty; use --resume to continue or --overwrite")
        if kind_of(out) != "extract":  # files of the user's own: left alone, none replaced
            if os.path.lexists(manifest) or os.path.lexists(settings):
                raise ExtractError(
                    f"{out}: its {MANIFEST} or {SETTINGS} is not a vidcolor "
                    "extraction's; --overwrite replaces only an extraction "
                    "(choose a new or empty folder)"
                )
            self._refuse_unlisted([])
            return {}
        rows = read_manifest(manifest)
        self._refuse_unlisted(rows)  # before anything is deleted
        for row in rows:  # only the files of the extraction it replaces
            remove_file(out / row["file"], out)
        remove_file(manifest, out)
        remove_file(settings, out)
        clear_stale(out)
        return {}

    @property
    def _frame_stem(self) -> str:
        """A regular expression for the stem of this video's frame files (``ep_000012``)."""
        return rf"{re.escape(self.video.stem)}_\d{{6,}}"

    def _refuse_unlisted(self, rows: list[dict]) -> None:
        """Refuse a folder holding a file at one of this video's frame names that ``rows``
        (the folder's record) do not list: the user's, which no frame may replace."""
        name = rf"{self._frame_stem}\.{self.options.image_format}"
        listed = {r["file"] for r in rows}
        for entry in sorted(self.out_dir.iterdir()):
            if re.fullmatch(name, entry.name) and entry.name not in listed:
                raise _not_listed(entry)

    def _row(self, frame: Frame) -> dict:
        name = f"{self.video.stem}_{frame.index:06d}.{self.options.image_format}"
        return {
            "file": name,
            "source": str(self.video.resolve()),
            "frame": frame.index,
            "pts": frame.pts,
            "time": round(frame.time, 6),
        }

    def __iter__(self) -> Iterator[dict]:
        """Yield one manifest row per frame of the range, already on disk when yielded."""
        try:
            yield from self._extract()
        except Exception:
            if self.written == 0 and not self.done:
                self._take_back()
            raise

    def _extract(self) -> Iterator[dict]:
        out = self.out_dir
        _write_file(out / SETTINGS, json.dumps(self._settings(), indent=2).encode())
        try:
            yield from self._land_all(out)
        finally:  # frames started but not landed (a failure, or a stop): not kept
            clear_own(out, self._frame_stem)
        if self.written == 0 and not self.done:
            raise NoFramesError(self.video, "in the requested range")
        if self.detector is not None:
            self._write_scenes()

    def _land_all(self, out: Path) -> Iterator[dict]:
        """Encode frames on worker threads and land each, file then row, in frame order."""
        pending: deque[tuple[dict, Future]] = deque()
        with (
            self._open_manifest() as manifest,
            ThreadPoolExecutor(self.workers) as pool,
            ThreadPoolExecutor(1) as lander,
        ):

            def land(row: dict, tmp: Path) -> None:
                """A frame's file, then its row, on a thread of its own: Python runs a stop
                signal's handler in the main thread only, so no stop comes between the two
                (a file without its row is the user's to a later --resume)."""
                _publish(tmp, out / row["file"])
                line = (json.dumps(row) + "\n").encode()
                try:
                    if manifest.write(line) != len(line):  # the disk or a size limit is full
                        raise OSError(errno.ENOSPC, "the row was cut short; the disk is full")
                except OSError as e:  # the frame just landed is ours, and unlisted: it goes
                    remove_file(out / row["file"], out)
                    raise ExtractError(f"{out / MANIFEST}: cannot write ({e.strerror})") from None
                self.written += 1

            def finish_oldest() -> dict:
                row, job = pending[0]
                tmp = job.result()  # a stop here leaves the frame in flight, landed below
                pending.popleft()
                lander.submit(land, row, tmp).result()
                return row

            try:
                for frame in self.reader:
                    if frame.index in self.done:
                        yield self.done[frame.index]
                        continue
                    row = self._row(frame)
                    job = pool.submit(self._encode, frame.image, out / row["file"])
                    pending.append((row, job))
                    if len(pending) > 2 * self.workers:
                        yield finish_oldest()
                while pending:
                    yield finish_oldest()
            finally:
                # Interrupted or failed: land the frames already in flight, then stop.
                while pending:
                    try:
                        finish_oldest()
                    except Exception:
                        break  # what is left is dropped by _extract's sweep

    def _open_manifest(self) -> BinaryIO:
        """The manifest, to append to; never through a link planted at its name. Unbuffered:
        a row that cannot be written fails at once and is not tried again as the file
        closes (read_manifest ignores a last row cut short)."""
        path = self.out_dir / MANIFEST
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        try:
            return os.fdopen(os.open(path, flags, 0o644), "ab", buffering=0)
        except OSError as e:
            raise ExtractError(f"{path}: cannot write ({e.strerror or e})") from None

    def _take_back(self) -> None:
        """After a run that failed before its first frame: its records go (a --resume would
        have nothing to go on), and so do the folders it made, once empty."""
        for name in (MANIFEST, SETTINGS):
            remove_file(self.out_dir / name, self.out_dir)
        for folder in self._made:
            try:
                folder.rmdir()
            except OSError:  # not empty: something else is in it now
                break

    def _write_scenes(self) -> None:
        """Once the stream has ended: every manifest row gets its scene id (atomic rewrite)."""
        cuts = self.detector.cuts()
        rows = read_manifest(self.out_dir / MANIFEST)
        for row in rows:
            row["scene"] = scene_of(row["frame"], cuts)
        _rewrite_manifest(self.out_dir / MANIFEST, rows)

    def _encode(self, image: np.ndarray, path: Path) -> Path:
        """The frame's image file, written beside ``path`` under a temporary name."""
        return _write_temp(path, encode_image(image, self.options))


def read_manifest(path: Path) -> list[dict]:
    """Rows of a manifest.jsonl; a last line cut short by a killed run is ignored. A row whose
    file is not a plain name in the manifest's folder is refused (NotOursError)."""
    if not path.exists():
        return []
    rows = []
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break
        if not isinstance(row, dict) or not {"file", "frame"} <= row.keys():
            break
        file_in(path.parent, row["file"], f"{path}:{n}")
        rows.append(row)
    return rows


def _rewrite_manifest(path: Path, rows: object) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
