"""Streaming decode: one frame in memory at a time, whatever the length of the video."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from vidcolor.threads import threaded
from vidcolor.video.errors import CorruptVideoError, VideoError
from vidcolor.video.probe import VideoInfo, open_container, stream_info


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded frame and where it sits in the source.

    ``image`` is uint8, HxW (gray) or HxWx3 (RGB); in planes mode the Y plane as stored, with
    ``chroma`` its U and V planes (ceil(H/2) x ceil(W/2)). ``index`` counts frames in
    presentation order from the start of the stream (0-based), whatever sampling or start time
    picked this one.
    ``pts`` and ``duration`` are in ticks of ``time_base``.
    """

    image: np.ndarray
    index: int
    pts: int
    time_base: Fraction
    duration: int | None
    chroma: tuple[np.ndarray, np.ndarray] | None = None  # (U, V) 4:2:0 planes in planes mode

    @property
    def time(self) -> float:
        """Presentation time in seconds."""
        return float(self.pts * self.time_base)


# Limited-range ("TV", 16-235) luma to full-range gray: exactly what swscale's yuv -> gray does,
# at a fraction of the cost when applied to the Y plane directly.
TV_TO_FULL = np.clip(np.round((np.arange(256) - 16) * 255 / 219), 0, 255).astype(np.uint8)
_PLANAR_8BIT_YUV = {
    "yuv420p",
    "yuv422p",
    "yuv444p",
    "yuv440p",
    "yuv411p",
    "yuvj420p",
    "yuvj422p",
    "yuvj444p",
    "yuvj440p",
    "nv12",
    "nv21",
}


def luma(frame: av.VideoFrame) -> np.ndarray | None:
    """Full-range gray (H, W) uint8 from the Y plane of an 8-bit YUV frame, or None for other
    pixel formats."""
    if frame.format.name not in _PLANAR_8BIT_YUV:
        return None
    plane = frame.planes[0]
    y = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[:, : frame.width]
    full = frame.color_range == 2 or frame.format.name.startswith("yuvj")
    return np.ascontiguousarray(y) if full else cv2.LUT(y, TV_TO_FULL)


def yuv420_planes(
    frame: av.VideoFrame, matrix: str = "bt601", full_range: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U, V of a frame as stored when it is 8-bit 4:2:0, else converted to 4:2:0 with the
    ``matrix`` and range the file is tagged (or guessed) with, so the planes mean what the
    output will be tagged to mean."""
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        frame = frame.reformat(
            format="yuv420p",
            dst_colorspace="ITU709" if matrix == "bt709" else "ITU601",
            dst_color_range="JPEG" if full_range else "MPEG",
        )
    out = []
    for plane in frame.planes:
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        out.append(np.ascontiguousarray(rows[:, : plane.width]))
    return out[0], out[1], out[2]


def small_bgr(frame: av.VideoFrame, short_side: int) -> np.ndarray:
    """A small BGR picture of a frame (short side ``short_side``, even sizes) for detectors.
    For 8-bit 4:2:0 it shrinks the stored planes and converts the small result (BT.601), which
    costs a fraction of converting the full frame first; other formats go through swscale.
    Bilinear, as PySceneDetect's own downscaling: a seventh of the cost of area averaging."""
    w, h = scaled_size(frame.width, frame.height, short_side)
    w, h = w + w % 2, h + h % 2
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        return frame.to_ndarray(format="bgr24", width=w, height=h)
    small = []
    for plane, size in zip(frame.planes, ((w, h), (w // 2, h // 2), (w // 2, h // 2)), strict=True):
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        small.append(cv2.resize(rows[:, : plane.width], size, interpolation=cv2.INTER_LINEAR))
    y, u, v = small
    i420 = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(h * 3 // 2, w)
    return cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the short side set to ``short_side``, aspect ratio kept."""
    scale = short_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


class VideoReader:
    """Iterate the frames of a video's first video stream.

    >>> with VideoReader("episode.mp4", gray=True, every=5) as reader:
    ...     for frame in reader:
    ...         frame.image  # (H, W) uint8

    Sampling: ``start``/``end`` (seconds, end exclusive) bound the range; ``every`` keeps every
    Nth frame of it, ``fps`` keeps the first frame of each 1/fps slot (one or the other). ``size``
    scales the short side. Frames come as stored; ``autorotate`` turns them upright by the
    display rotation. ``planes`` yields the stored Y plane with U and V (size and rotation
    options do not apply), for work that must keep the luma bit for bit. ``tap(index, seconds,
    bgr)`` sees every frame of the range, before sampling, as small BGR (short side
    ``tap_size``): for work such as scene detection that shares this decode pass. ``prefetch``
    decodes that many frames ahead in a background thread, for consumers with Python work of
    their own to overlap (``threads`` sets FFmpeg's own decoding threads). Raises
    ``CorruptVideoError`` when decoding fails or the stream ends before the frame count its
    container states: no frame is lost without a word.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        gray: bool = False,
        start: float | None = None,
        end: float | None = None,
        every: int = 1,
        fps: float | None = None,
        size: int | None = None,
        autorotate: bool = False,
        planes: bool = False,
        tap: Callable[[int, float, np.ndarray], None] | None = None,
        tap_size: int = 72,
        threads: int = 0,
        prefetch: int = 0,
    ) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        if fps is not None and fps <= 0:
            raise ValueError("fps must be positive")
        if fps is not None and every != 1:
            raise ValueError("choose either every or fps, not both")
        if start is not None and end is not None and end <= start:
            raise ValueError("end must come after start")
        if size is not None and size < 1:
            raise ValueError("size must be positive")
        self.path = Path(path)
        self.gray, self.start, self.end = gray, start, end
        self.every, self.fps, self.size, self.autorotate = every, fps, size, autorotate
        self.planes = planes
        self.tap, self.tap_size = tap, tap_size
        self._threads = threads
        self.prefetch = prefetch
        self._pump: threaded | None = None
        self._container = open_container(self.path, threads)
        try:
            self.info: VideoInfo = stream_info(self._container, self.path)
        except BaseException:
            self._container.close()
            raise
        self.frames_decoded = 0  # frames of the range decoded so far, kept or not
        self.last_time = 0.0
        self.notes: list[str] = []  # things a user should hear about, e.g. a suspect ending

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pump is not None:  # the decoding thread lets go of the container first
            self._pump.close()
            self._pump = None
        self._container.close()

    def _locate(self, seconds: float) -> tuple[int, int | None]:
        """(frames presented before ``seconds``, pts of the first frame at or after it), from
        packets alone (demux, no decode), so a seek keeps indices exact for variable-rate video.
        Packets an edit list marks as discarded are never presented and are not counted."""
        tb = self.info.time_base
        count, first = 0, None
        with open_container(self.path) as c:
            for ordinal, packet in enumerate(c.demux(c.streams.video[0])):
                if not packet.size or packet.is_discard:
                    continue
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None:  # raw streams: no timestamps at all, see _decoded
                    ts = round(ordinal / (self.info.frame_rate * tb))
                if ts * tb < seconds:
                    count += 1
                elif first is None or ts < first:
                    first = ts
                # pts >= dts: once dts reaches `first`, no later packet can present before it
                if first is not None and packet.dts is not None and packet.dts >= first:
                    break
        return count, first

    def _from(self, start: float, first_pts: int | None) -> Iterator[av.VideoFrame]:
        """Decoded frames at or after ``start``, via a seek. Seeks can land late (MPEG-TS seeks
        by byte, open GOPs have leading frames that cannot decode after a seek): when the first
        frame is not the one the packets promised, decode again from the top. Slower, exact."""
        tb = self.info.time_base
        if first_pts is None:
            return  # nothing at or after start
        stream = self._container.streams.video[0]
        try:
            self._container.seek(int(start / tb), stream=stream, backward=True)
            frames = self._decoded()
            for frame in frames:
                if frame.pts * tb < start:
                    continue
                if frame.pts == first_pts:
                    yield frame
                    yield from frames
                    return
                break
        except av.error.FFmpegError:
            pass  # not seekable (raw streams): decode from the top
        self._container.close()
        self._container = open_container(self.path, self._threads)
        for frame in self._decoded():
            if frame.pts * tb >= start:
                yield frame

    def _check_complete(self, index: int) -> None:
        """At end of stream: raise if fewer frames came out than the container holds."""
        info = self.info
        if info.frame_count_exact and index < info.frame_count:
            # An edit list (a cut made without re-encoding) hides frames the count includes.
            # Tell those apart from frames lost to truncation or decoding failures.
            with open_container(self.path) as c:
                stored = presented = 0
                for p in c.demux(c.streams.video[0]):
                    if p.size:
                        stored += 1
                        presented += not p.is_discard
            if stored < info.frame_count or index < presented:
                raise CorruptVideoError(
                    self.path,
                    self.frames_decoded,
                    self.last_time,
                    f"the stream ended after frame {index} of {info.frame_count} (truncated file?)",
                )
        # Without an exact count (Matroska, WebM) only the stated duration can tell. Audio may
        # legitimately outlast the video a little, so this is a note, not an error.
        stated = float(info.start_time) + (info.duration or 0.0)
        if not info.frame_count_exact and self.last_time < stated - 1.0:
            self.notes.append(
                f"{self.path}: video ends at {self.last_time:.2f} s but the file states "
                f"{stated:.2f} s (truncated file?)"
            )

    def _to_array(self, frame: av.VideoFrame) -> np.ndarray:
        fmt = "gray" if self.gray else "rgb24"
        threads = os.cpu_count() or 1  # swscale is the main thread's bottleneck otherwise
        image = luma(frame) if self.gray and self.size is None else None
        if image is None and self.size is None:
            image = frame.to_ndarray(format=fmt, threads=threads)
        elif image is None:
            w, h = scaled_size(frame.width, frame.height, self.size)
            shrink = w < frame.width
            interpolation = "AREA" if shrink else "BICUBIC"
            try:
                image = frame.to_ndarray(
                    format=fmt, width=w, height=h, interpolation=interpolation, threads=threads
                )
            except av.error.FFmpegError as e:  # a size past what FFmpeg's scaler takes
                reason = e.strerror or type(e).__name__
                msg = f"{self.path}: cannot scale its frames to {w}x{h} ({reason})"
                raise VideoError(msg) from None
        if self.autorotate and self.info.rotation:
            image = np.ascontiguousarray(np.rot90(image, k=self.info.rotation // 90))
        return image

    def _decoded(self) -> Iterator[av.VideoFrame]:
        """Decoded frames with errors turned into CorruptVideoError naming how far we got.
        Raw streams (a bare .h264) carry no timestamps: frames get them from the frame rate."""
        stream = self._container.streams.video[0]
        tick = 1 / (self.info.frame_rate * self.info.time_base)
        try:
            for n, frame in enumerate(self._container.decode(stream)):
                if frame.pts is None:
                    frame.pts = round(n * tick)
                yield frame
        except av.error.FFmpegError as e:
            reason = f"decoding failed ({e.strerror or type(e).__name__})"
            got, t = self.frames_decoded, self.last_time
            raise CorruptVideoError(self.path, got, t, reason) from None

    def __iter__(self) -> Iterator[Frame]:
        start = self.start if self.start and self.start > self.info.start_time else None
        index, frames = 0, self._decoded()
        if start is not None:
            index, first_pts = self._locate(start)
            frames = self._from(start, first_pts)
        if not self.prefetch:
            yield from self._frames(frames, index)
            return
        self._pump = threaded(frames, self.prefetch)
        try:
            yield from self._frames(iter(self._pump), index)
        except CorruptVideoError as e:  # counted by the decoding thread, which ran ahead
            raise CorruptVideoError(
                self.path, self.frames_decoded, self.last_time, e.reason
            ) from None
        finally:
            if self._pump is not None:
                self._pump.close()
                self._pump = None

    def _frames(self, frames: Iterator[av.VideoFrame], index: int) -> Iterator[Frame]:
        info, tb = self.info, self.info.time_base
        first_index, first_time, last_slot = index, None, -1
        for av_frame in frames:
            pts = av_frame.pts
            t = float(pts * tb)
            if self.end is not None and t >= self.end:
                return
            self.frames_decoded += 1
            self.last_time = t
            this, index = index, index + 1
            if self.tap is not None:  # every frame of the range, before sampling picks some
                self.tap(this, t, small_bgr(av_frame, self.tap_size))
            if self.fps is not None:
                first_time = t if first_time is None else first_time
                slot = math.floor((t - first_time) * self.fps + 1e-9)
                if slot <= last_slot:
                    continue
                last_slot = slot
            elif (this - first_index) % self.every:
                continue
            if self.planes:
                y, u, v = yuv420_planes(av_frame, info.matrix, info.full_range)
                yield Frame(y, this, pts, tb, av_frame.duration or None, (u, v))
            else:
                yield Frame(self._to_array(av_frame), this, pts, tb, av_frame.duration or None)
        self._check_complete(index)
