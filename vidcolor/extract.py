"""`vidcolor extract`: frames of a video as image files plus a manifest row per frame."""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from vidcolor.atomic import atomic_path, clear_stale
from vidcolor.errors import UserError
from vidcolor.options import ExtractOptions
from vidcolor.ownership import file_in, kind_of, remove_file
from vidcolor.scenes import ShotDetector, scene_of
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


class FrameExtractor:
    """Stream ``video``'s frames into ``out_dir``; iterate it to do the work.

    Each image lands whole (temporary file, then rename) before its manifest row is appended,
    so a killed run leaves only complete files and rows, and ``resume`` picks up after them.
    Images are encoded on ``workers`` threads (OpenCV releases the GIL) with a bounded queue.
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
        try:
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

    def _prepare(self, overwrite: bool, resume: bool) -> dict[int, dict]:
        """Check the folder and return the manifest rows already done (when resuming)."""
        out = self.out_dir
        if out.exists() and not out.is_dir():
            raise ExtractError(f"{out}: exists and is not a folder")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ExtractError(f"{out}: cannot create the folder ({e.strerror})") from None
        if not os.access(out, os.W_OK):
            raise ExtractError(f"{out}: the folder is not writable")
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
            done = {r["frame"]: r for r in rows if (out / r["file"]).exists()}
            _rewrite_manifest(manifest, done.values())  # drop rows whose file went missing
            clear_stale(out)  # the killed run's half-written frames
            return done
        if resume:
            raise ExtractError(f"{out}: nothing to resume here (no {SETTINGS})")
        if not overwrite:
            raise ExtractError(f"{out}: not empty; use --resume to continue or --overwrite")
        if kind_of(out) != "extract":  # files of the user's own: left alone, none replaced
            if manifest.exists() or settings.exists():
                raise ExtractError(f"{out}: its {MANIFEST} or {SETTINGS} is not a vidcolor "
                                   "extraction's; --overwrite replaces only an extraction "
                                   "(choose a new or empty folder)")  # fmt: skip
            return {}
        for row in read_manifest(manifest):  # only the files of the extraction it replaces
            remove_file(out / row["file"], out)
        remove_file(manifest, out)
        remove_file(settings, out)
        clear_stale(out)
        return {}

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
        out = self.out_dir
        _write_file(out / SETTINGS, json.dumps(self._settings(), indent=2).encode())
        pending: deque[tuple[dict, Future]] = deque()
        with open(out / MANIFEST, "a") as manifest, ThreadPoolExecutor(self.workers) as pool:

            def finish_oldest() -> dict:
                row, future = pending.popleft()
                future.result()
                try:
                    manifest.write(json.dumps(row) + "\n")
                    manifest.flush()
                except OSError as e:
                    raise ExtractError(f"{out / MANIFEST}: cannot write ({e.strerror})") from None
                self.written += 1
                return row

            try:
                for frame in self.reader:
                    if frame.index in self.done:
                        yield self.done[frame.index]
                        continue
                    row = self._row(frame)
                    data_job = pool.submit(self._encode_and_write, frame.image, out / row["file"])
                    pending.append((row, data_job))
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
                        break
        if self.written == 0 and not self.done:
            remove_file(out / MANIFEST, out)
            remove_file(out / SETTINGS, out)
            raise NoFramesError(self.video, "in the requested range")
        if self.detector is not None:
            self._write_scenes()

    def _write_scenes(self) -> None:
        """Once the stream has ended: every manifest row gets its scene id (atomic rewrite)."""
        cuts = self.detector.cuts()
        rows = read_manifest(self.out_dir / MANIFEST)
        for row in rows:
            row["scene"] = scene_of(row["frame"], cuts)
        _rewrite_manifest(self.out_dir / MANIFEST, rows)

    def _encode_and_write(self, image: np.ndarray, path: Path) -> None:
        _write_file(path, encode_image(image, self.options))


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
