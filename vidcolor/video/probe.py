"""What a video file holds, read from its container and first frame (no full decode)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from vidcolor.video.errors import CorruptVideoError, NotAVideoError, NoVideoStreamError


@dataclass(frozen=True)
class StreamInfo:
    """An audio or subtitle stream beside the video."""

    index: int
    kind: str  # "audio" | "subtitle"
    codec: str
    language: str | None
    sample_rate: int | None = None
    channels: int | None = None


@dataclass(frozen=True)
class VideoInfo:
    """The first video stream of a file, as stored (``width``/``height`` before rotation)."""

    path: Path
    container: str
    width: int
    height: int
    frame_rate: Fraction  # average rate: exact for constant-rate video
    time_base: Fraction
    start_time: Fraction  # seconds of the stream's first timestamp
    duration: float | None  # seconds, None when neither stream nor container knows
    frame_count: int
    frame_count_exact: bool  # False: estimated from duration x frame rate
    codec: str
    pix_fmt: str
    rotation: int  # degrees counter-clockwise to display upright: 0, 90, 180 or -90
    full_range: bool  # luma 0-255 ("pc"/JPEG) rather than 16-235 ("tv"/MPEG)
    matrix: str  # "bt709" or "bt601": how Y'CbCr maps to RGB (tag, else guessed by height)
    audio: tuple[StreamInfo, ...]
    subtitles: tuple[StreamInfo, ...]

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as shown on screen, after rotation."""
        if self.rotation in (90, -90):
            return self.height, self.width
        return self.width, self.height


def check_file(path: Path) -> None:
    """A NotAVideoError unless ``path`` is a regular file: a FIFO would block whoever opens or
    hashes it for ever, and a device such as /dev/zero never ends."""
    if not path.exists():
        raise NotAVideoError(path, "no such file")
    if path.is_dir():
        raise NotAVideoError(path, "it is a folder")
    if not path.is_file():
        raise NotAVideoError(
            path,
            "not a regular file: a pipe or a device; vidcolor reads videos only from regular files",
        )


def open_container(path: str | Path, threads: int = 0) -> av.container.InputContainer:
    """Open ``path`` for reading, turning every way it can fail into a one-line VideoError.
    The video decoder gets frame+slice threads (``threads``: 0 = one per core), which must be
    set before the first decode."""
    path = Path(path)
    check_file(path)
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError as e:
        raise NotAVideoError(path, e.strerror or type(e).__name__) from None
    except (OSError, UnicodeDecodeError) as e:
        raise NotAVideoError(path, str(e)) from None
    if not container.streams.video:
        container.close()
        raise NoVideoStreamError(path)
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = threads
    return container


def read_rotation(path: Path) -> int:
    """Display rotation, read off the first decoded frame's display matrix (FFmpeg attaches the
    stream's matrix to frames; PyAV exposes it there). Uses its own handle: raw streams cannot
    seek back. Returns 0, 90, 180 or -90 (degrees counter-clockwise)."""
    rotation = 0.0
    with open_container(path) as container:
        try:
            for frame in container.decode(container.streams.video[0]):
                rotation = frame.rotation
                break
        except av.error.FFmpegError as e:
            reason = f"cannot decode the first frame ({e.strerror})"
            raise CorruptVideoError(path, 0, 0.0, reason) from None
    degrees = round(rotation / 90.0) * 90 % 360
    return -90 if degrees == 270 else degrees


def _matrix(colorspace: int, height: int) -> str:
    """BT.709 (AVCOL_SPC_BT709 = 1) or BT.601 (5, 6); untagged video is BT.709 from 720 lines
    up and BT.601 below, as players assume."""
    if colorspace == 1:
        return "bt709"
    if colorspace in (5, 6):
        return "bt601"
    return "bt709" if height >= 720 else "bt601"


def stream_info(container: av.container.InputContainer, path: Path) -> VideoInfo:
    """Describe the first video stream of an open container."""
    v = container.streams.video[0]
    cc = v.codec_context
    rate = v.average_rate or v.guessed_rate or v.base_rate
    if not rate:
        raise NotAVideoError(path, "the video stream has no frame rate")
    rate = Fraction(rate)
    tb = Fraction(v.time_base)
    start = Fraction(v.start_time or 0) * tb
    if v.duration:
        duration: float | None = float(v.duration * tb)
    elif container.duration:
        duration = container.duration / av.time_base - float(start)
    else:
        duration = None
    exact = bool(v.frames)
    if exact:
        count = v.frames
    elif duration is not None:
        count = round(duration * rate)
    else:
        count = 0
    others: list[StreamInfo] = []
    for s in container.streams:
        if s.type not in ("audio", "subtitle"):
            continue
        lang = s.metadata.get("language")
        if s.type == "audio":
            c = s.codec_context
            others.append(StreamInfo(s.index, "audio", c.name, lang, c.sample_rate, c.channels))
        else:
            others.append(StreamInfo(s.index, "subtitle", s.codec_context.name, lang))
    return VideoInfo(
        path=path,
        container=container.format.name,
        width=cc.width,
        height=cc.height,
        frame_rate=rate,
        time_base=tb,
        start_time=start,
        duration=duration,
        frame_count=count,
        frame_count_exact=exact,
        codec=cc.name,
        pix_fmt=cc.format.name if cc.format else "unknown",
        rotation=read_rotation(path),
        full_range=cc.color_range == 2
        or (cc.format is not None and cc.format.name.startswith("yuvj")),
        matrix=_matrix(cc.colorspace, cc.height),
        audio=tuple(s for s in others if s.kind == "audio"),
        subtitles=tuple(s for s in others if s.kind == "subtitle"),
    )


def count_frames(path: str | Path) -> int:
    """Frames the first video stream presents, counted from packets (demux only, no decode):
    exact where the container's own count is missing or only an estimate."""
    with open_container(path) as c:
        return sum(1 for p in c.demux(c.streams.video[0]) if p.size and not p.is_discard)


def probe(path: str | Path) -> VideoInfo:
    """Size, exact frame rate, time base, duration, frame count, codec, pixel format, display
    rotation and the audio and subtitle streams of ``path``'s first video stream."""
    path = Path(path)
    with open_container(path) as container:
        return stream_info(container, path)
