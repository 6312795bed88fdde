"""Video I/O on PyAV: probe a file, stream its frames out, stream frames into a new file."""

from vidcolor.video.encoding import EncodeOptions, OutputError
from vidcolor.video.errors import (
    CorruptVideoError,
    NoFramesError,
    NotAVideoError,
    NoVideoStreamError,
    VideoError,
)
from vidcolor.video.probe import StreamInfo, VideoInfo, probe
from vidcolor.video.reader import Frame, VideoReader, scaled_size
from vidcolor.video.writer import FrameError, VideoWriter

__all__ = [
    "CorruptVideoError",
    "EncodeOptions",
    "Frame",
    "FrameError",
    "NoFramesError",
    "NoVideoStreamError",
    "NotAVideoError",
    "OutputError",
    "StreamInfo",
    "VideoError",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "probe",
    "scaled_size",
]
