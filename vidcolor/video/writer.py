"""Streaming encode with the source's timestamps, rotation, audio and subtitles carried over."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidcolor.atomic import clear_stale, publish, temp_beside
from vidcolor.video.encoding import EVEN_ONLY, EncodeOptions, OutputError
from vidcolor.video.errors import CorruptVideoError, NoFramesError, VideoError
from vidcolor.video.probe import VideoInfo, open_container

# Which streams each output container takes unchanged; a None entry means "all".
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}
COPYABLE: dict[str, dict[str, set[str] | None]] = {
    "mp4": {"audio": _MP4_AUDIO, "subtitle": {"mov_text"}},
    "mov": {"audio": _MP4_AUDIO | {"pcm_s16le", "pcm_s24le"}, "subtitle": {"mov_text"}},
    "matroska": {
        "audio": None,
        # SubRip is "srt" or "subrip" depending on how it was demuxed
        "subtitle": {"srt", "subrip", "ass", "ssa", "webvtt", "dvd_subtitle", "hdmv_pgs_subtitle"},
    },
    "webm": {"audio": {"opus", "vorbis"}, "subtitle": {"webvtt"}},
}
STANDARD_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}
AUDIO_FALLBACK = {"mp4": "aac", "mov": "aac", "matroska": "aac", "webm": "libopus"}


class FrameError(VideoError, ValueError):
    """Frames that cannot go into one video stream: a size change, timestamps out of order."""


class _Passenger:
    """An audio or subtitle stream of the source, copied packet for packet or re-encoded."""

    def __init__(self, src: av.stream.Stream, out: av.container.OutputContainer, fmt: str):
        self.src = src
        allowed = COPYABLE[fmt][src.type]
        self.copy = allowed is None or src.codec_context.name in allowed
        if self.copy:
            self.dst = out.add_stream_from_template(src)
        else:  # only audio reaches here; subtitles that cannot be copied are left out earlier
            cc = src.codec_context
            # The standard layout for the channel count: encoders refuse "unordered" ones.
            layout = STANDARD_LAYOUTS.get(cc.channels, cc.layout)
            codec = AUDIO_FALLBACK[fmt]
            rate = 48000 if codec == "libopus" else cc.sample_rate  # Opus runs at 48 kHz only
            self.dst = out.add_stream(codec, rate=rate, layout=layout)
        if "language" in src.metadata:
            self.dst.metadata["language"] = src.metadata["language"]

    def handle(self, packet: av.Packet | None, out: av.container.OutputContainer) -> None:
        """Mux one source packet (None: flush the re-encoder)."""
        if self.copy:
            if packet is not None:
                packet.stream = self.dst
                out.mux(packet)
            return
        frames = self.src.codec_context.decode(packet)
        rate = self.dst.codec_context.sample_rate
        for frame in frames:
            # Keep the source's timing (a late start stays late) in the encoder's 1/rate ticks;
            # its resampler regroups samples from there.
            if frame.pts is not None:
                frame.pts = round(frame.pts * frame.time_base * rate)
            frame.time_base = Fraction(1, rate)
            out.mux(self.dst.encode(frame))
        if packet is None:
            out.mux(self.dst.encode(None))


class VideoWriter:
    """Encode frames into ``path`` through a temporary file renamed on success.

    >>> with VideoWriter.like(reader.info, "out.mp4") as writer:
    ...     for frame in reader:
    ...         writer.write(frame.image, frame.pts, frame.duration)

    ``pts``/``duration`` are ticks of ``time_base`` (default 1/frame_rate, with frames numbered
    0, 1, 2 ... when ``pts`` is None). Audio and subtitle streams of ``copy_streams_from`` are
    copied packet for packet where the container takes them, audio re-encoded where it does not;
    ``notes`` lists what was re-encoded or left out. Those streams are carried over whole, so
    write the whole video (trimming audio to a written span is not done yet). An exception
    inside the ``with`` block deletes the temporary file and leaves ``path`` as it was.
    Without ``replace``, a file that appeared at ``path`` while the video was written is kept
    and the close fails (atomic.AppearedError).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        frame_rate: Fraction | int,
        time_base: Fraction | None = None,
        encode: EncodeOptions | None = None,
        rotation: int = 0,
        copy_streams_from: str | Path | None = None,
        full_range: bool = False,
        matrix: str | None = None,
        replace: bool = True,
    ) -> None:
        self.path, self.replace = Path(path), replace
        self.full_range, self.matrix = full_range, matrix
        self.fmt = CONTAINERS.get(self.path.suffix.lower())
        if self.fmt is None:
            known = ", ".join(sorted(CONTAINERS))
            raise OutputError(f"{self.path}: unknown video container (use one of {known})")
        self.frame_rate = Fraction(frame_rate)
        self.time_base = time_base or 1 / self.frame_rate
        self.encode = encode or EncodeOptions()
        try:
            av.codec.Codec(self.encode.encoder, "w")
        except (ValueError, av.error.FFmpegError):  # UnknownCodecError is a ValueError
            raise OutputError(f"unknown video encoder '{self.encode.codec}'") from None
        self.rotation = rotation
        self.notes: list[str] = []
        self.frames_written = 0
        self._src = open_container(copy_streams_from) if copy_streams_from else None
        self._tmp = temp_beside(self.path)
        clear_stale(self.path.parent, self.path)  # left by a render that was killed
        # Matroska would shift every stream to make AAC's negative priming timestamp zero,
        # moving all video frames late; keep timestamps as they are (MP4 uses an edit list).
        options = {"avoid_negative_ts": "disabled"} if self.fmt in ("matroska", "webm") else {}
        try:
            self._tmp.touch()  # PyAV opens lazily: find an unwritable place now, not frames later
            self._out = av.open(str(self._tmp), mode="w", format=self.fmt, options=options)
        except (OSError, av.error.FFmpegError) as e:
            if self._src is not None:
                self._src.close()
            with contextlib.suppress(OSError):
                self._tmp.unlink(missing_ok=True)
            msg = getattr(e, "strerror", None) or str(e)
            raise OutputError(f"{self.path}: cannot write here ({msg})") from None
        self._stream: av.video.stream.VideoStream | None = None
        self._size: tuple[int, int] | None = None
        self._passengers: dict[int, _Passenger] = {}
        self._pending: Iterator[av.Packet] | None = None
        self._next: av.Packet | None = None
        self._last_pts: int | None = None
        self._durations: dict[Fraction, Fraction] = {}  # frame time -> its duration, seconds
        self._held: av.Packet | None = None  # the latest video packet, muxed one behind
        self._first_dts: Fraction | None = None  # seconds
        self._first_pts = self._end = Fraction(0)  # seconds: first frame, end of the last

    @classmethod
    def like(
        cls, info: VideoInfo, path: str | Path, encode: EncodeOptions | None = None
    ) -> VideoWriter:
        """A writer with the source's frame rate, time base, rotation, audio and subtitles."""
        return cls(
            path,
            frame_rate=info.frame_rate,
            time_base=info.time_base,
            encode=encode,
            rotation=info.rotation,
            copy_streams_from=info.path,
        )

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _open_streams(self, height: int, width: int) -> None:
        enc = self.encode.encoder
        pad_h, pad_w = (height % 2, width % 2) if enc in EVEN_ONLY else (0, 0)
        if pad_h or pad_w:
            self.notes.append(
                f"{enc} codes only even sizes: {width}x{height} padded to "
                f"{width + pad_w}x{height + pad_h} with a copied edge row/column"
            )
        try:
            s = self._out.add_stream(enc, rate=self.frame_rate, options=self.encode.codec_options())
        except ValueError:  # the container does not take this codec (WebM: VP8/VP9/AV1 only)
            self._out.close()
            if self._src is not None:
                self._src.close()
            self._tmp.unlink(missing_ok=True)
            raise OutputError(
                f"{self.path}: a {self.path.suffix} file cannot hold "
                f"{self.encode.codec} video (choose another --codec, or an .mp4 "
                "or .mkv file)"
            ) from None
        s.width, s.height = width + pad_w, height + pad_h
        s.pix_fmt = self.encode.pix_fmt
        s.codec_context.time_base = self.time_base
        s.time_base = self.time_base
        s.thread_type = "AUTO"
        s.codec_context.thread_count = self.encode.threads
        if self.rotation:
            s.set_display_rotation(self.rotation)
        if self.matrix is not None:  # tag what write_planes frames hold, so players agree
            s.codec_context.colorspace = 1 if self.matrix == "bt709" else 6
            s.codec_context.color_range = 2 if self.full_range else 1
        self._stream, self._size, self._pad = s, (height, width), (pad_h, pad_w)
        if self._src is not None:
            self._add_passengers()

    def _add_passengers(self) -> None:
        src = self._src
        for s in src.streams:
            if s.type not in ("audio", "subtitle"):
                continue
            allowed = COPYABLE[self.fmt][s.type]
            name = s.codec_context.name
            if s.type == "subtitle" and allowed is not None and name not in allowed:
                self.notes.append(
                    f"subtitle stream {s.index} ({name}) cannot go in {self.path.suffix}: left out"
                )
                continue
            p = _Passenger(s, self._out, self.fmt)
            self._passengers[s.index] = p
            if not p.copy:
                self.notes.append(
                    f"audio stream {s.index} ({name}) cannot go in {self.path.suffix} "
                    f"unchanged: re-encoded as {p.dst.codec_context.name}"
                )
        if self._passengers:
            streams = [p.src for p in self._passengers.values()]
            self._pending = src.demux(*streams)  # read lazily by _pump

    def _advance(self) -> av.Packet | None:
        """The next source packet with a timestamp; None (and no more demuxing) at the end."""
        for packet in self._pending:
            if packet.dts is not None or packet.pts is not None:
                return packet
        self._pending = None
        return None

    def _pump(self, until: float) -> None:
        """Mux the source's audio/subtitle packets up to ``until`` seconds, so streams stay
        interleaved and memory stays flat however long the video. Past the end (``inf``),
        flush the audio re-encoders too."""
        try:
            while self._next is not None or self._pending is not None:
                if self._next is None:
                    self._next = self._advance()
                    continue
                packet = self._next
                ts = packet.dts if packet.dts is not None else packet.pts
                if float(ts * packet.time_base) > until:
                    return
                self._passengers[packet.stream.index].handle(packet, self._out)
                self._next = None
            if until == float("inf"):
                for p in self._passengers.values():
                    if not p.copy:
                        p.handle(None, self._out)
        except av.error.FFmpegError as e:
            where = Path(self._src.name) if self._src is not None else self.path
            reason = f"cannot carry its audio/subtitles over ({e.strerror or type(e).__name__})"
            raise CorruptVideoError(where, self.frames_written, 0.0, reason) from None

    def write(self, image: np.ndarray, pts: int | None = None, duration: int | None = None) -> None:
        """Encode one uint8 frame, HxWx3 RGB or HxW gray, at ``pts`` ticks of ``time_base``."""
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(f"frames must be uint8 HxW or HxWx3, got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        if self._stream is None:
            self._open_streams(h, w)
        pad_h, pad_w = self._pad
        if pad_h or pad_w:
            widths = ((0, pad_h), (0, pad_w)) + (((0, 0),) if image.ndim == 3 else ())
            image = np.pad(image, widths, mode="edge")
        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(image), format="rgb24" if image.ndim == 3 else "gray"
        )
        self._encode(frame, h, w, pts, duration)

    def _encode(
        self, frame: av.VideoFrame, h: int, w: int, pts: int | None, duration: int | None
    ) -> None:
        if self._stream is None:
            self._open_streams(h, w)
        elif (h, w) != self._size:
            (h0, w0) = self._size
            raise FrameError(
                f"{self.path}: frame size changes mid-stream ({w0}x{h0} to "
                f"{w}x{h}); one output stream needs one size"
            )
        tick = round(1 / (self.frame_rate * self.time_base))
        if pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + tick
        elif self._last_pts is not None and pts <= self._last_pts:
            raise FrameError(
                f"{self.path}: timestamps out of order ({pts} after "
                f"{self._last_pts}); the source's are not increasing"
            )
        frame.pts, frame.time_base = pts, self.time_base
        frame.duration = duration or tick
        if self._last_pts is None:
            self._first_pts = pts * self.time_base
        self._end = max(self._end, (pts + frame.duration) * self.time_base)
        self._durations[pts * self.time_base] = frame.duration * self.time_base
        try:
            packets = self._stream.encode(frame)
        except av.error.FFmpegError as e:
            what = "refused these settings" if self.frames_written == 0 else "failed"
            reason = e.strerror or type(e).__name__
            opts = self.encode.codec_options()
            raise OutputError(
                f"{self.path}: the {self.encode.encoder} encoder {what} ({reason}; options {opts})"
            ) from None
        self._mux_video(packets)
        self._last_pts = pts
        self.frames_written += 1
        # Audio runs a little ahead of video; the muxer interleaves within its own window.
        self._pump(float(pts * self.time_base) + 1.0)

    def write_planes(
        self,
        y: np.ndarray,
        u: np.ndarray,
        v: np.ndarray,
        pts: int | None = None,
        duration: int | None = None,
    ) -> None:
        """Encode one 4:2:0 frame from its planes as they are: Y (H, W) and U, V (H/2, W/2),
        uint8, even H and W. No colour conversion touches Y, so the output's luma is this Y."""
        h, w = y.shape
        if h % 2 or w % 2 or u.shape != (h // 2, w // 2) or v.shape != u.shape:
            raise ValueError(
                f"planes must be Y (H, W) even and U, V (H/2, W/2): {y.shape}, {u.shape}, {v.shape}"
            )
        flat = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(h * 3 // 2, w)
        frame = av.VideoFrame.from_ndarray(flat, format="yuv420p")
        frame.color_range = 2 if self.full_range else 1
        self._encode(frame, h, w, pts, duration)

    def _mux_video(self, packets: list[av.Packet]) -> None:
        """Mux encoder output with each packet carrying its own frame's duration (x264 drops
        them, leaving 1/average-rate), one packet behind so that _mux_last can fix the last."""
        for packet in packets:
            if packet.pts is not None:
                seconds = self._durations.pop(packet.pts * packet.time_base, None)
                if seconds is not None:
                    packet.duration = round(seconds / packet.time_base)
            if self._first_dts is None and packet.dts is not None:
                self._first_dts = packet.dts * packet.time_base
            if self._held is not None:
                self._out.mux(self._held)
            self._held = packet

    def _mux_last(self) -> None:
        """Make the output end where the input did. Matroska ends at the latest pts plus its
        duration, which the per-packet durations already give. MP4/MOV count in decode order,
        from the first packet's dts to the last packet's dts plus its duration; with B-frames
        the last packet decoded is not the last shown, so its duration must cover the rest."""
        held = self._held
        if held is None:
            return
        if self.fmt in ("mp4", "mov") and held.dts is not None and self._first_dts is not None:
            span = self._end - self._first_pts
            before = held.dts * held.time_base - self._first_dts
            held.duration = max(1, round((span - before) / held.time_base))
        self._out.mux(held)
        self._held = None

    def close(self) -> None:
        """Flush the encoder and the remaining audio, then move the file into place."""
        if self._stream is None:
            self.abort()
            raise NoFramesError(self.path, "were written")
        try:
            self._mux_video(self._stream.encode(None))
            self._mux_last()
            self._pump(float("inf"))
            self._out.close()
            if self._src is not None:
                self._src.close()
            publish(self._tmp, self.path, self.replace)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop everything written: the target keeps whatever it held before."""
        for c in (self._out, self._src):
            if c is not None:
                with contextlib.suppress(av.error.FFmpegError, OSError):
                    c.close()
        self._tmp.unlink(missing_ok=True)
