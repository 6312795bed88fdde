"""`vidcolor render`: streaming, batched colorization of videos, still images and folders.

Per frame: the stored luma plane (Y) goes to the encoder untouched; a copy, scaled to the
working size, becomes L for the generator; the predicted ab, joined with that L, becomes RGB,
then Cb/Cr, which are scaled to the 4:2:0 chroma size on the device. So the output's luma is the
input's luma bit for bit, and no full-resolution colour conversion is ever done. Decoding, the
working-size grays (and, with ``temporal``, the stabiliser's flows, on a pool of threads),
inference and encoding overlap on four threads with bounded queues.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from vidcolor.atomic import atomic_path
from vidcolor.bundled import default_model
from vidcolor.color import even_plane, yuv_to_rgb
from vidcolor.images import IMAGE_SUFFIXES, read_rgb
from vidcolor.pictures import save_png
from vidcolor.render.colorizer import Colorizer, RenderError
from vidcolor.render.keyframes import Keyed, Propagator, blend
from vidcolor.render.matching import matched
from vidcolor.render.temporal import CutMarks, Motion, Stabilizer, motions_ahead
from vidcolor.threads import threaded
from vidcolor.video import EncodeOptions, Frame, VideoInfo, VideoReader, VideoWriter
from vidcolor.video.probe import count_frames
from vidcolor.video.writer import FrameError

__all__ = [
    "Colorizer",
    "RenderError",
    "RenderResult",
    "default_model",
    "render_image",
    "render_video",
]


@dataclass
class RenderResult:
    frames: int
    batch_size: int  # after any out-of-memory halving
    had_colour: bool | None  # the input was in colour (None: not checked, no preview asked)
    notes: list[str]
    cuts: int = 0  # scene cuts where the colour carried along the motion started afresh


def _has_colour(u: np.ndarray, v: np.ndarray) -> bool:
    """Chroma away from neutral: the input was in colour (black-and-white keeps it at 128)."""
    spread = np.abs(u.astype(np.int16) - 128).mean() + np.abs(v.astype(np.int16) - 128).mean()
    return float(spread) > 3


def input_has_colour(src: Path, info: VideoInfo, samples: int = 5) -> bool:
    """Whether any of ``samples`` frames spread over the video carries colour (a single frame
    would judge a colour film by its fade from black)."""
    length = info.duration or 0.0
    for t in np.linspace(0, max(0.0, length * 0.9), samples):
        with VideoReader(src, planes=True, start=float(info.start_time) + float(t)) as r:
            frame = next(iter(r), None)
        if frame is not None and _has_colour(*frame.chroma):
            return True
    return False


def _side_by_side(
    y: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    original: tuple[np.ndarray, np.ndarray],
    had_colour: bool,
    rotation: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gray | colorized (| original) as one frame's planes, laid out so that the panels sit
    left to right once the player applies the display rotation."""
    gray = np.full_like(u, 128)
    panels = [(y, gray, gray), (y, u, v)] + ([(y, *original)] if had_colour else [])
    if rotation in (180, -90):  # stored left/top ends up on the right on screen
        panels.reverse()
    axis = 0 if rotation in (90, -90) else 1
    return tuple(np.concatenate([p[i] for p in panels], axis=axis) for i in range(3))


def render_video(
    src: Path,
    dst: Path,
    colorizer: Colorizer,
    encode: EncodeOptions | None = None,
    preview: str | None = None,
    preview_frames: int = 0,
    on_frame: Callable[[int], None] | None = None,
    temporal: bool = True,
    keys: Propagator | None = None,
    replace: bool = True,
) -> RenderResult:
    """Colorize ``src`` into ``dst`` (temp file + rename): same frame count, timestamps, frame
    rate, rotation and audio. ``temporal`` carries colour along the motion, afresh at each cut
    the shot detector finds. ``preview="sbs"`` writes gray | colorized (| original colour, for
    colour input) side by side instead. ``preview_frames`` also writes a contact sheet
    ``<dst stem>_preview.png``. ``keys``: colour keys carried through their shots, from
    ``keyframes.carry_keys`` (a first pass over the luma, whose cuts this pass takes
    rather than detecting them again; the caller closes it). Without
    ``replace`` a file that appeared at ``dst`` (or the sheet's name) meanwhile is kept, and
    atomic.AppearedError says so.

    Four threads overlap: decoding (and the shot detector on the same pass), the working-size
    grays (and with ``temporal`` the stabiliser's flows, on a pool), the model, and here,
    encoding; bounded queues between them keep memory flat."""
    with VideoReader(src, planes=True) as reader:
        info = reader.info
        batch = colorizer.batch_for(info.width, info.height, temporal, src)
        video = VideoColour(colorizer, info, temporal, batch)  # this video's own state
        if not temporal:
            marked = ((f, False) for f in reader)
        elif keys is not None:  # the keys' pass marked the cuts of these same frames
            marked = ((f, keys.starts_scene(f.index)) for f in reader)
        else:
            marked = CutMarks.attach(reader).mark(reader)
        # Only previews need these: colour judged over the video, an exact frame count.
        had_colour = input_has_colour(src, info) if preview or preview_frames else None
        total = info.frame_count
        if preview_frames and not info.frame_count_exact:
            total = count_frames(src)
        writer = _writer(src, dst, info, encode, replace)
        notes = _size_notes(info)
        sheet, done = _ContactSheet(preview_frames, total, info), 0
        depth = 2 * batch
        keyed = keys.keyed() if keys else None
        try:
            with (
                threaded(marked, depth) as decoded,
                threaded(_prepared(decoded, colorizer, info, temporal, keyed), depth) as prepared,
                threaded(_colorized(prepared, video), depth) as colorized,
            ):
                for frame, u, v in colorized:
                    sheet.offer(frame, u, v)
                    y = even_plane(frame.image)
                    if preview == "sbs":
                        y, u, v = _side_by_side(
                            y, u, v, frame.chroma, bool(had_colour), info.rotation
                        )
                    writer.write_planes(y, u, v, frame.pts, frame.duration)
                    done += 1
                    if on_frame is not None:
                        on_frame(done)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        notes += writer.notes + reader.notes
        if preview_frames:
            sheet.save(dst.with_name(f"{dst.stem}_preview.png"), bool(had_colour), replace)
    cuts = video.stabilizer.cuts if video.stabilizer is not None else 0
    return RenderResult(done, video.batch_size, had_colour, notes, cuts)


def _writer(
    src: Path, dst: Path, info: VideoInfo, encode: EncodeOptions | None, replace: bool
) -> VideoWriter:
    """The output of ``src``'s render: its timing, rotation, colour range and matrix, and its
    other streams copied."""
    return VideoWriter(
        dst,
        frame_rate=info.frame_rate,
        time_base=info.time_base,
        encode=encode,
        rotation=info.rotation,
        copy_streams_from=src,
        full_range=info.full_range,
        matrix=info.matrix,
        replace=replace,
    )


def _size_notes(info: VideoInfo) -> list[str]:
    if info.width % 2 or info.height % 2:
        return [
            f"{info.width}x{info.height} is odd: one copied edge row/column added "
            "(4:2:0 video needs even sizes)"
        ]
    return []


@dataclass
class Prepared:
    """One frame on its way to the model, with what was found from its luma ahead of it: its
    working-size gray, whether it starts a scene, the motion from the frame before
    (``temporal``), and what its keys give it."""

    frame: Frame
    gray: np.ndarray
    cut: bool
    motion: Motion | None
    key: Keyed | None


def _prepared(
    decoded: Iterable[tuple[Frame, bool]],
    colorizer: Colorizer,
    info: VideoInfo,
    temporal: bool,
    carried: Iterator[Keyed | None] | None = None,
) -> Iterator[Prepared]:
    """Each (frame, starts a scene) prepared: everything that needs only the luma, found ahead
    of the model. The motions (``temporal`` only) are found on a pool of threads."""
    grays = ((f, colorizer.gray(f.image, info.full_range), cut) for f, cut in decoded)
    items = motions_ahead(grays) if temporal else ((f, g, c, None) for f, g, c in grays)
    keyed = itertools.chain(carried or (), itertools.repeat(None))  # never a frame short
    for item, key in zip(items, keyed, strict=False):  # keyed never ends
        yield Prepared(*item, key)


class VideoColour:
    """One video's colour, batch by batch: the model's; its keys' where their shot's match or
    their carried colour reaches; steadied along the motion by the video's own stabiliser. Its
    batch size is this video's: halved for the rest of it when memory runs out."""

    def __init__(self, colorizer: Colorizer, info: VideoInfo, temporal: bool, batch: int) -> None:
        self.colorizer, self.info, self.batch_size = colorizer, info, batch
        self.stabilizer = Stabilizer() if temporal else None

    @torch.inference_mode()
    def colour(self, batch: list[Prepared]) -> list[tuple[Frame, np.ndarray, np.ndarray]]:
        """(frame, Cb, Cr) for each prepared frame: its planes on the frame's 4:2:0 grid."""
        info = self.info
        for p in batch:
            if p.frame.image.shape != (info.height, info.width):
                raise FrameError(
                    f"{info.path}: frame size changes mid-stream ({info.width}x"
                    f"{info.height} to {p.frame.image.shape[1]}x{p.frame.image.shape[0]}); "
                    "render each part on its own"
                )
        keys = [p.key for p in batch]
        match = any(k is not None and k.bank is not None for k in keys)
        got = self.colorizer.predict([p.gray for p in batch], info.matrix, info.full_range, match)
        if got.ran < len(batch):  # memory ran out: smaller batches for the rest of the video
            self.batch_size = min(self.batch_size, got.ran)
        cbcr = got.cbcr
        if self.stabilizer is not None or any(k is not None for k in keys):  # working size
            steady = [
                self._steadied(p, c.permute(1, 2, 0).cpu().numpy(), got.feats, i)
                for i, (p, c) in enumerate(zip(batch, cbcr, strict=True))
            ]
            cbcr = torch.from_numpy(np.stack(steady)).permute(0, 3, 1, 2).to(cbcr.device)
        ys = [p.frame.image for p in batch]
        planes = self.colorizer.planes(cbcr, ys, info.matrix, info.full_range)
        return [(p.frame, u, v) for p, (u, v) in zip(batch, planes, strict=True)]

    def _steadied(
        self, p: Prepared, out: np.ndarray, feats: torch.Tensor | None, i: int
    ) -> np.ndarray:
        """One frame's working-size chroma (HxWx2): the colour matched in its shot's keys
        blended in where confident, then steadied, then the colour carried from a key, last."""
        key, stabilizer = p.key, self.stabilizer
        if key is not None and key.bank is not None and feats is not None:
            out = blend(out, *matched(key.bank, feats[i], p.gray))
        if stabilizer is not None:
            out = stabilizer.stabilize(p.gray, out, p.cut, p.motion)
        if key is not None and key.carried is not None:
            out = blend(out, *key.carried)  # the key's own frame: the key's colour
            if stabilizer is not None:
                stabilizer.keep(out)
        return out


def _colorized(
    prepared: Iterable[Prepared], video: VideoColour
) -> Iterator[tuple[Frame, np.ndarray, np.ndarray]]:
    """(frame, Cb, Cr) for each prepared frame, in batches of the video's (current) size."""
    batch: list[Prepared] = []
    for item in prepared:
        batch.append(item)
        if len(batch) >= video.batch_size:
            yield from video.colour(batch)
            batch = []
    if batch:
        yield from video.colour(batch)


class _ContactSheet:
    """Thumbnails of ``count`` evenly spaced frames: gray | colorized (| original)."""

    WIDTH = 320  # of each thumbnail

    def __init__(self, count: int, total: int, info: VideoInfo) -> None:
        picks = np.linspace(0, max(total - 1, 0), count).round().astype(int) if count else []
        self.picks, self.info = set(picks), info
        self.rows: list[list[np.ndarray]] = []

    def offer(self, frame: Frame, u: np.ndarray, v: np.ndarray) -> None:
        """Keep a row for ``frame`` if it is one of the picks; ``u``, ``v``: its new chroma."""
        if frame.index not in self.picks:
            return
        y = even_plane(frame.image)
        gray = np.full_like(u, 128)
        panels = [(gray, gray), (u, v), frame.chroma]
        k = self.info.rotation // 90  # thumbnails upright, as players show the video
        rgb = [
            np.rot90(yuv_to_rgb(y, a, b, self.info.matrix, self.info.full_range), k)
            for a, b in panels
        ]
        h, w = rgb[0].shape[:2]
        size = (self.WIDTH, round(self.WIDTH * h / w))
        self.rows.append(
            [cv2.resize(np.ascontiguousarray(p), size, interpolation=cv2.INTER_AREA) for p in rgb]
        )

    def save(self, path: Path, had_colour: bool, replace: bool = True) -> None:
        if not self.rows:
            return
        rows = [np.concatenate(r if had_colour else r[:2], axis=1) for r in self.rows]
        save_png(path, np.concatenate(rows), replace)


def render_image(src: Path, dst: Path, colorizer: Colorizer, replace: bool = True) -> None:
    """A still image to a colorized image file (format from ``dst``'s suffix); without
    ``replace`` a file that appeared at ``dst`` meanwhile is kept (atomic.AppearedError)."""
    if dst.suffix.lower() not in IMAGE_SUFFIXES:
        raise RenderError(f"{dst}: not an image file name ({', '.join(sorted(IMAGE_SUFFIXES))})")
    rgb = read_rgb(src)
    colorizer.batch_for(rgb.shape[1], rgb.shape[0], False, src)  # refused if it cannot fit
    out = colorizer.colorize_rgb(rgb)
    try:
        ok, buf = cv2.imencode(dst.suffix, cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    except cv2.error:
        ok = False
    if not ok:
        raise RenderError(f"{dst}: OpenCV cannot write '{dst.suffix}' images here")
    with atomic_path(dst, replace) as tmp:
        tmp.write_bytes(buf.tobytes())


def image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
