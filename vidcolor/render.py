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
from importlib.resources import files
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vidcolor.atomic import atomic_path
from vidcolor.checkpoint import load_model
from vidcolor.color import (
    L_OF_GRAY,
    Hedge,
    ab_from_model,
    l_to_model,
    lab_to_rgb,
    rgb_to_cbcr,
    rgb_to_lab,
    yuv_to_rgb,
)
from vidcolor.errors import UserError
from vidcolor.images import IMAGE_SUFFIXES, read_rgb
from vidcolor.keyframes import Keyed, Propagator, blend
from vidcolor.matching import features, matched
from vidcolor.memory import GB, available_bytes, render_bytes
from vidcolor.options import RenderOptions
from vidcolor.report import save_png
from vidcolor.runtime import pick_device
from vidcolor.temporal import CutMarks, Motion, Stabilizer, motions_ahead
from vidcolor.threads import threaded
from vidcolor.video import EncodeOptions, Frame, VideoInfo, VideoReader, VideoWriter, scaled_size
from vidcolor.video.probe import count_frames
from vidcolor.video.reader import TV_TO_FULL
from vidcolor.video.writer import FrameError


class RenderError(UserError):
    """Render cannot go ahead as asked."""


def default_model() -> Path:
    """The model bundled with vidcolor (see README: trained on Big Buck Bunny, CC-BY)."""
    return Path(str(files("vidcolor") / "weights" / "default.pt"))


class Colorizer:
    """A generator on a device at a working size: luma planes in, chroma planes out."""

    def __init__(
        self,
        model: str | Path | None = None,
        device: str = "auto",
        render_size: int | None = None,
        batch_size: int | None = None,
    ) -> None:
        path = Path(model) if model is not None else default_model()
        self.G, self.info = load_model(path)
        self.model_path = path
        self.device = pick_device(device)
        # channels_last: faster convolutions on GPUs and on CPUs (oneDNN; docs/benchmarks.md)
        self.G = self.G.to(self.device, memory_format=torch.channels_last)
        self.amp = None
        if self.device.type == "cuda":
            with torch.cuda.device(self.device):
                bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
            self.amp = torch.bfloat16 if bf16 else torch.float16
        self.size = render_size or int(self.info["size"])
        self.hedge = Hedge(self.info["chroma_gain"], self.info["chroma_shrink"])  # the bundle's
        # Measured on a 2-core CPU: batches of 2-4 run fastest (cache); GPUs want more.
        self.asked_batch = batch_size or (16 if self.device.type == "cuda" else 4)
        self.batch_size = self.asked_batch
        self._l_of_gray = L_OF_GRAY.to(self.device)

    @classmethod
    def from_options(cls, options: RenderOptions) -> Colorizer:
        """The model ``options`` name, on their device, at their working size."""
        return cls(options.model, options.device, options.render_size, options.batch_size)

    def fit(self, width: int, height: int, temporal: bool, src: Path) -> None:
        """Before any work on a ``width`` x ``height`` input: the batch starts from the one asked
        for (not the last input's); on a CPU it is halved until the render fits in the memory
        left (memory.py), as CUDA's out-of-memory halves it; a render whose one frame does not
        fit is refused in one line naming ``src`` and what it would need."""
        self.batch_size = self.asked_batch
        free = available_bytes() if self.device.type == "cpu" else None  # CUDA: _generate
        if free is None:
            return
        ws, hs = scaled_size(width, height, self.size)
        wide = int(self.info["model"]["base_width"])
        while self.batch_size > 1 and render_bytes(ws, hs, self.batch_size, wide, temporal) > free:
            self.batch_size //= 2
        if (need := render_bytes(ws, hs, 1, wide, temporal)) > free:
            raise RenderError(
                f"{src}: colorizing at {ws}x{hs} (working size {self.size}) needs about "
                f"{need / GB:.1f} GB of memory, and {free / GB:.1f} GB is free; use a smaller "
                "--render-size"
            )

    def _generate(self, L: torch.Tensor) -> torch.Tensor:
        """ab (model scale) for a batch of L (model scale); when memory runs out (CUDA's, or an
        allocation on the CPU) the batch is halved, for this call and the rest of the run:
        slower, but no frame is lost. Out of memory for one frame: a one-line RenderError."""
        L = L.contiguous(memory_format=torch.channels_last)
        try:
            if self.amp is None:
                return self.G(L)
            with torch.autocast("cuda", dtype=self.amp):
                return self.G(L).float()
        except (torch.cuda.OutOfMemoryError, RuntimeError) as e:
            cpu = "can't allocate memory" in str(e)  # the CPU allocator's RuntimeError
            if not (cpu or isinstance(e, torch.cuda.OutOfMemoryError)):
                raise
            if L.shape[0] == 1:
                raise RenderError(
                    f"out of {'memory' if cpu else 'GPU memory'} for one frame at "
                    f"{L.shape[-1]}x{L.shape[-2]} (working size {self.size}); use a smaller "
                    "--render-size"
                ) from None
        # Out of the except block: its traceback held the failed attempt's activations, which
        # empty_cache could not have freed while it lived.
        torch.cuda.empty_cache()
        half = L.shape[0] // 2
        self.batch_size = max(1, min(self.batch_size, half))
        return torch.cat([self._generate(L[:half]), self._generate(L[half:])])

    def _ab(self, L: torch.Tensor) -> torch.Tensor:
        """Lab ab for a batch of L (model scale), hedged as the model's bundle says."""
        return self.hedge(ab_from_model(self._generate(L).float()))

    def gray(self, y: np.ndarray, full_range: bool) -> np.ndarray:
        """A stored luma plane (H, W) uint8 -> full-range gray at the working size: what the
        model sees (as Lab L) and the stabiliser's flow runs on."""
        h, w = y.shape
        g = y if full_range else cv2.LUT(y, TV_TO_FULL)
        return cv2.resize(g, scaled_size(w, h, self.size), interpolation=cv2.INTER_AREA)

    def model_l(self, grays: list[np.ndarray]) -> torch.Tensor:
        """Working-size grays (hxw uint8 each) -> Lab L (N,1,h,w) in [0, 100] on the device."""
        idx = torch.from_numpy(np.stack(grays)).to(self.device).long()
        return self._l_of_gray[idx].unsqueeze(1)

    @torch.inference_mode()
    def chroma(self, ys: list[np.ndarray], full_range: bool, matrix: str,
               stabilizer: Stabilizer | None = None, cuts: list[bool] | None = None,
               grays: list[np.ndarray] | None = None,
               motions: list[Motion | None] | None = None,
               keyed: list[Keyed | None] | None = None,
               ) -> list[tuple[np.ndarray, np.ndarray]]:  # fmt: skip
        """Cb, Cr planes (ceil(H/2), ceil(W/2)) uint8 for same-sized luma planes (H, W). A
        ``stabilizer`` (the caller's: its state belongs to one video) carries colour along the
        motion; ``cuts`` says which frames start a new scene. ``grays`` (``gray`` of each
        plane) and ``motions`` (``motions_ahead``'s) may come precomputed. ``keyed``: per
        frame, what its keys give it (keyframes.Keyed): the colour matched in its shot's keys
        is blended in where confident, before the stabiliser; the colour carried from a key,
        last."""
        h, w = ys[0].shape
        if grays is None:  # 1. stored luma -> full-range gray at the working size
            grays = [self.gray(y, full_range) for y in ys]
        L = self.model_l(grays)  # (N,1,hs,ws) in [0, 100]
        ab = self._ab(l_to_model(L))  # 2. (N,2,hs,ws)
        rgb = lab_to_rgb(torch.cat([L, ab], dim=1), dim=1)  # 3. (N,3,hs,ws) in [0, 1]
        cbcr = rgb_to_cbcr(rgb, matrix, full_range)
        keyed = keyed or [None] * len(grays)
        if any(k is not None and k.bank is not None for k in keyed):
            feats = features(self.G, l_to_model(L))
        if stabilizer is not None or any(k is not None for k in keyed):  # at the working size
            steady = []
            for i, (g, c, key) in enumerate(zip(grays, cbcr, keyed, strict=True)):
                out = c.permute(1, 2, 0).cpu().numpy()
                if key is not None and key.bank is not None:
                    out = blend(out, *matched(key.bank, feats[i], g))
                if stabilizer is not None:
                    out = stabilizer.stabilize(g, out, bool(cuts and cuts[i]),
                                               motions[i] if motions else None)  # fmt: skip
                if key is not None and key.carried is not None:
                    out = blend(out, *key.carried)  # the key's own frame: the key's colour
                    if stabilizer is not None:
                        stabilizer.keep(out)
                steady.append(out)
            cbcr = torch.from_numpy(np.stack(steady)).permute(0, 3, 1, 2).to(cbcr.device)
        cbcr = F.interpolate(
            cbcr,
            size=((h + 1) // 2, (w + 1) // 2),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )  # 4. to the 4:2:0 grid
        planes = cbcr.round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        return [(p[0], p[1]) for p in planes]

    def colorize_frame(self, rgb: np.ndarray) -> np.ndarray:
        """A video frame as ``render_video`` colorizes it: its luma plane in, chroma planes out
        (4:2:0), given and returned as HxWx3 uint8 RGB. What ``eval DATA --model`` and
        benchmarks/score_model.py measure, so their scores are the render's."""
        y = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[..., 0]  # full-range BT.601 luma, as JPEG
        [(u, v)] = self.chroma([y], full_range=True, matrix="bt601")
        return yuv_to_rgb(y, u, v, "bt601", full_range=True)

    @torch.inference_mode()
    def colorize_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """A still image: HxWx3 uint8 (its colour, if any, is ignored) -> colorized, its Lab
        lightness kept exactly (a video frame keeps its luma instead: ``colorize_frame``)."""
        h, w = rgb.shape[:2]
        lab = rgb_to_lab(torch.from_numpy(rgb).float().to(self.device) / 255)  # (H,W,3)
        L = lab[..., 0][None, None]  # (1,1,H,W)
        ws, hs = scaled_size(w, h, self.size)
        small = F.interpolate(L, size=(hs, ws), mode="bilinear", antialias=True)
        ab = self._ab(l_to_model(small))
        ab = F.interpolate(ab, size=(h, w), mode="bilinear", align_corners=False)
        out = lab_to_rgb(torch.cat([L, ab], dim=1), dim=1)[0].permute(1, 2, 0)
        return (out * 255).round().byte().cpu().numpy()


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


def _side_by_side(y: np.ndarray, u: np.ndarray, v: np.ndarray,
                  original: tuple[np.ndarray, np.ndarray], had_colour: bool, rotation: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Gray | colorized (| original) as one frame's planes, laid out so that the panels sit
    left to right once the player applies the display rotation."""
    gray = np.full_like(u, 128)
    panels = [(y, gray, gray), (y, u, v)] + ([(y, *original)] if had_colour else [])
    if rotation in (180, -90):  # stored left/top ends up on the right on screen
        panels.reverse()
    axis = 0 if rotation in (90, -90) else 1
    return tuple(np.concatenate([p[i] for p in panels], axis=axis) for i in range(3))


def _even(plane: np.ndarray) -> np.ndarray:
    """Pad an odd height/width by one copied edge row/column (4:2:0 encoders need even)."""
    h, w = plane.shape
    return np.pad(plane, ((0, h % 2), (0, w % 2)), mode="edge") if h % 2 or w % 2 else plane


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
    ``keyframes.carry_keys`` (a first pass over the luma; the caller closes it). Without
    ``replace`` a file that appeared at ``dst`` (or the sheet's name) meanwhile is kept, and
    atomic.AppearedError says so.

    Four threads overlap: decoding (and the shot detector on the same pass), the working-size
    grays (and with ``temporal`` the stabiliser's flows, on a pool), the model, and here,
    encoding; bounded queues between them keep memory flat."""
    with VideoReader(src, planes=True) as reader:
        info = reader.info
        colorizer.fit(info.width, info.height, temporal, src)
        marks = CutMarks.attach(reader) if temporal else None
        stabilizer = Stabilizer() if temporal else None  # this video's own state
        # Only previews need these: colour judged over the video, an exact frame count.
        had_colour = input_has_colour(src, info) if preview or preview_frames else None
        total = info.frame_count
        if preview_frames and not info.frame_count_exact:
            total = count_frames(src)
        writer = VideoWriter(dst, frame_rate=info.frame_rate, time_base=info.time_base,
                             encode=encode, rotation=info.rotation, copy_streams_from=src,
                             full_range=info.full_range, matrix=info.matrix,
                             replace=replace)  # fmt: skip
        notes: list[str] = []
        if info.width % 2 or info.height % 2:
            notes.append(f"{info.width}x{info.height} is odd: one copied edge row/column added "
                         "(4:2:0 video needs even sizes)")  # fmt: skip
        sheet, done = _ContactSheet(preview_frames, total, info), 0
        depth = 2 * colorizer.batch_size
        marked = marks.mark(reader) if marks else ((f, False) for f in reader)
        keyed = keys.keyed() if keys else None
        try:
            with (
                threaded(marked, depth) as decoded,
                threaded(_prepared(decoded, colorizer, info, temporal, keyed), depth) as prepared,
                threaded(_colorized(prepared, colorizer, stabilizer, info), depth) as colorized,
            ):
                for frame, u, v in colorized:
                    sheet.offer(frame, u, v)
                    y = _even(frame.image)
                    if preview == "sbs":
                        y, u, v = _side_by_side(y, u, v, frame.chroma, bool(had_colour),
                                                info.rotation)  # fmt: skip
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
    cuts = stabilizer.cuts if stabilizer is not None else 0
    return RenderResult(done, colorizer.batch_size, had_colour, notes, cuts)


_Prepared = tuple[Frame, np.ndarray, bool, Motion | None, Any]  # frame, gray, cut, motion, key


def _prepared(decoded: Iterable[tuple[Frame, bool]], colorizer: Colorizer, info: VideoInfo,
              temporal: bool, carried: Iterator | None = None) -> Iterator[_Prepared]:  # fmt: skip
    """(frame, its working-size gray, starts a scene, the motion from the frame before, the
    keyframe colour carried to it) for each (frame, starts a scene): everything that needs only
    the luma, found ahead of the model. The motions (``temporal`` only) are found on a pool of
    threads."""
    grays = ((f, colorizer.gray(f.image, info.full_range), cut) for f, cut in decoded)
    items = motions_ahead(grays) if temporal else ((f, g, c, None) for f, g, c in grays)
    keyed = itertools.chain(carried or (), itertools.repeat(None))  # never a frame short
    for item, key in zip(items, keyed, strict=False):  # keyed never ends
        yield (*item, key)


def _colorized(prepared: Iterable[_Prepared], colorizer: Colorizer,
               stabilizer: Stabilizer | None, info: VideoInfo
               ) -> Iterator[tuple[Frame, np.ndarray, np.ndarray]]:  # fmt: skip
    """(frame, Cb, Cr) for each prepared frame, in batches of the colorizer's (current) batch
    size."""
    batch: list[_Prepared] = []
    for item in prepared:
        batch.append(item)
        if len(batch) < colorizer.batch_size:
            continue
        yield from _colorize_batch(batch, colorizer, stabilizer, info)
        batch = []
    if batch:
        yield from _colorize_batch(batch, colorizer, stabilizer, info)


def _colorize_batch(batch: list[_Prepared], colorizer: Colorizer,
                    stabilizer: Stabilizer | None, info: VideoInfo
                    ) -> Iterator[tuple[Frame, np.ndarray, np.ndarray]]:  # fmt: skip
    frames, grays, cuts, motions, keys = (list(column) for column in zip(*batch, strict=True))
    for f in frames:
        if f.image.shape != (info.height, info.width):
            raise FrameError(f"{info.path}: frame size changes mid-stream ({info.width}x"
                             f"{info.height} to {f.image.shape[1]}x{f.image.shape[0]}); render "
                             "each part on its own")  # fmt: skip
    chroma = colorizer.chroma([f.image for f in frames], info.full_range, info.matrix,
                              stabilizer, cuts, grays, motions, keys)  # fmt: skip
    for f, (u, v) in zip(frames, chroma, strict=True):
        yield f, u, v


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
        y = _even(frame.image)
        gray = np.full_like(u, 128)
        panels = [(gray, gray), (u, v), frame.chroma]
        k = self.info.rotation // 90  # thumbnails upright, as players show the video
        rgb = [np.rot90(yuv_to_rgb(y, a, b, self.info.matrix, self.info.full_range), k)
               for a, b in panels]  # fmt: skip
        h, w = rgb[0].shape[:2]
        size = (self.WIDTH, round(self.WIDTH * h / w))
        self.rows.append([cv2.resize(np.ascontiguousarray(p), size, interpolation=cv2.INTER_AREA)
                          for p in rgb])  # fmt: skip

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
    colorizer.fit(rgb.shape[1], rgb.shape[0], False, src)
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
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith("."))  # fmt: skip
