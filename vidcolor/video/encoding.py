"""The encoder's settings: the short codec names users type, our quality defaults, the presets
each encoder takes, and which need even frame sizes."""

from __future__ import annotations

from dataclasses import dataclass

from vidcolor.video.errors import VideoError

# Short names users type -> FFmpeg encoders in PyAV's wheel. Any other encoder name passes as is.
ENCODERS = {
    "h264": "libx264",
    "h265": "libx265",
    "hevc": "libx265",
    "av1": "libsvtav1",
    "vp9": "libvpx-vp9",
    "h264_nvenc": "h264_nvenc",
}
# Quality defaults: visually near-lossless, since the picture is what users came for.
DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libsvtav1": 30, "libvpx-vp9": 31}
PRESET_OPTION = {
    "libx264": "preset",
    "libx265": "preset",
    "libsvtav1": "preset",
    "libvpx-vp9": "cpu-used",
    "h264_nvenc": "preset",
}
X26X_PRESETS = tuple(
    [
        "ultrafast",
        "superfast",
        "veryfast",
        "faster",
        "fast",
        "medium",
        "slow",
        "slower",
        "veryslow",
        "placebo",
    ]
)
# 4:2:0 in H.264/H.265 cannot code an odd width or height (crop units are 2 pixels); VP9 and
# AV1 can. For the former we pad one edge row/column (replicated), never rescale.
EVEN_ONLY = {"libx264", "libx265", "h264_nvenc", "hevc_nvenc"}


class OutputError(VideoError):
    """The output cannot be written where or how it was asked."""


@dataclass(frozen=True)
class EncodeOptions:
    """``codec``: h264 (default), h265, av1, vp9 or an FFmpeg encoder name. ``crf``/``preset``:
    the encoder's own scales (None: our default per codec)."""

    codec: str = "h264"
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str = "yuv420p"
    threads: int = 0

    def __post_init__(self) -> None:
        enc, preset = self.encoder, self.preset
        if preset is None:
            return
        if enc in ("libx264", "libx265") and preset not in X26X_PRESETS:
            raise OutputError(f"--preset {preset}: {enc} takes {', '.join(X26X_PRESETS)}")
        if enc == "libsvtav1" and not (preset.isdigit() and int(preset) <= 13):
            raise OutputError(f"--preset {preset}: SVT-AV1 takes 0 (slowest) to 13 (fastest)")

    @property
    def encoder(self) -> str:
        return ENCODERS.get(self.codec, self.codec)

    def codec_options(self) -> dict[str, str]:
        enc, opts = self.encoder, {}
        crf = self.crf if self.crf is not None else DEFAULT_CRF.get(enc)
        if crf is not None:
            opts["crf"] = str(crf)
            if enc == "libvpx-vp9":
                opts.update({"b": "0", "row-mt": "1"})  # constant-quality mode needs b=0
        if self.preset is not None and enc in PRESET_OPTION:
            opts[PRESET_OPTION[enc]] = str(self.preset)
        return opts
