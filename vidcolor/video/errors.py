"""Errors a user can cause with a video file. Each message is one line fit for a terminal."""

from __future__ import annotations

from pathlib import Path

from vidcolor.errors import UserError


class VideoError(UserError):
    """Base class: something is wrong with a video file the user gave us."""


class NotAVideoError(VideoError):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: not a readable video ({reason})")


class NoVideoStreamError(VideoError):
    def __init__(self, path: Path) -> None:
        super().__init__(f"{path}: the file has no video stream")


class CorruptVideoError(VideoError):
    """Decoding stopped early. ``frames_read`` frames (up to ``seconds``) came out intact."""

    def __init__(self, path: Path, frames_read: int, seconds: float, reason: str) -> None:
        self.frames_read = frames_read
        self.seconds = seconds
        self.reason = reason
        super().__init__(f"{path}: {reason}; stopped after {frames_read} frames ({seconds:.2f} s)")


class NoFramesError(VideoError):
    def __init__(self, path: Path, what: str) -> None:
        super().__init__(f"{path}: no frames {what}")
