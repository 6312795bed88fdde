"""Each stage's options: one frozen dataclass per stage, the only place its defaults live. The
command line reads its defaults from here, so this module imports nothing heavy (no torch, no
FFmpeg): `vidcolor --help` stays quick."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


def check_finite(options: Any) -> None:
    """A ValueError unless each float field of ``options`` is finite: NaN passes every range
    check and inf every lower bound, so a library caller's NaN would otherwise run (the command
    line and recipes refuse them earlier, in their float options' type)."""
    for f in fields(options):
        value = getattr(options, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{f.name} must be a finite number, not {value}")


@dataclass(frozen=True)
class ExtractOptions:
    """What to pull out of the video and how to store it. Times in seconds."""

    image_format: str = "png"  # png | jpg
    jpeg_quality: int = 95
    every: int = 1
    fps: float | None = None
    start: float | None = None
    end: float | None = None
    size: int | None = None  # short side in pixels
    gray: bool = False
    scenes: bool = False  # write each frame's scene id (shot detection on every frame)

    def __post_init__(self) -> None:
        check_finite(self)
        if self.image_format not in ("png", "jpg"):
            raise ValueError(f"image format must be png or jpg, not {self.image_format}")


@dataclass(frozen=True)
class ExtractStage:
    """An extraction as a pipeline stage runs it: what to extract, and how many threads
    encode the image files (not part of what is made, so not in ExtractOptions)."""

    options: ExtractOptions = field(default_factory=ExtractOptions)
    workers: int = 2


@dataclass(frozen=True)
class BuildOptions:
    """How `dataset build` samples and splits episodes (presets: dataset_build.PRESETS)."""

    preset: str = "generic"
    split_by: str = "scene"
    seed: int = 0
    avoid_hud: bool = False  # keep static HUD regions out of the stored frames (and crops)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the networks; stored in every checkpoint."""

    base_width: int = 64  # channels of the first encoder block; doubles down to 8x
    depth: int = 8  # down-sampling steps: inputs are padded to a multiple of 2**depth
    disc: str = "patch"  # "patch" (70x70 PatchGAN) or "global" (conv + fully connected)
    dropout: float = 0.5  # in the three innermost decoder blocks, as pix2pix

    def __post_init__(self) -> None:
        check_finite(self)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """A training run's settings; stored in its checkpoints, which resume with them."""

    data: str
    size: int = 224
    epochs: int = 20  # adversarial epochs, after the L1-only warm-up
    pretrain_epochs: int = 0  # L1-only generator epochs first
    decay_epochs: int | None = None  # linear lr decay over the last N epochs (None: half)
    batch_size: int = 16  # per process
    lr: float = 2e-4
    beta1: float = 0.5
    lambda_l1: float = 100.0
    val_fraction: float = 0.1
    val_max: int = 256  # validation images scored per epoch
    samples: int = 6  # rows in each epoch's sample grid
    checkpoint_every: int = 2000  # steps between validation, samples and checkpoints ...
    checkpoint_minutes: float = 10.0  # ... or minutes, whichever comes first; and at the end
    log_every: int = 20  # steps between metrics.csv rows
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    init: str = ""  # the model the run started from (train --init): its path, or "default"
    init_sha256: str = ""  # ... and its file's hash, so the run says exactly what it tuned
    d_warmup: int = 0  # first adversarial steps where D learns and G's loss is L1 alone

    def __post_init__(self) -> None:
        check_finite(self)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return cls(**{**d, "model": ModelConfig(**d["model"])})


@dataclass(frozen=True)
class TrainStage:
    """A training run as a command or pipeline stage starts it: its config (whose ``data`` a
    pipeline sets when the stage runs), and where it runs (not part of what it makes)."""

    config: TrainConfig = field(default_factory=lambda: TrainConfig(data=""))
    device: str = "auto"
    workers: int = 2  # threads that decode DATA's images into the run's cache


@dataclass(frozen=True)
class RenderOptions:
    """How to colorize a video, an image or a folder of images."""

    model: Path | None = None  # a bundle or training checkpoint; None: the bundled model
    device: str = "auto"
    render_size: int | None = None  # short side the model works at; None: its training size
    batch_size: int | None = None  # frames per model call; None: 4 on CPU, 16 on CUDA
    codec: str = "h264"  # h264, h265, av1, vp9 or an FFmpeg encoder name
    crf: int | None = None  # the encoder's quality scale (None: our default per codec)
    preset: str | None = None  # the encoder's speed preset
    preview: str | None = None  # "sbs": gray | colorized (| original) side by side
    preview_frames: int = 0  # a contact sheet of this many frames beside the output
    temporal: bool = True  # carry colour along the motion, afresh at each cut
    keyframes: Path | None = None  # colour keys (vidcolor.keys), carried through their shots
    adapt: float = 0  # seconds of fine-tuning the generator on the keys first (vidcolor.adapt)
    match: bool = True  # with keys: colour from where frames look like their shot's keys

    def __post_init__(self) -> None:
        check_finite(self)

    @property
    def encode(self) -> Any:
        """The encoder's settings (video.EncodeOptions; it checks the preset)."""
        from vidcolor.video import EncodeOptions

        return EncodeOptions(codec=self.codec, crf=self.crf, preset=self.preset)


def from_params(stage: str, p: dict[str, Any]) -> Any:
    """A stage's typed options from its command's parsed parameters ``p`` (click's names): the
    one mapping from option names to options, for the commands and the pipeline alike."""
    if stage == "extract":
        return ExtractStage(ExtractOptions(p["image_format"], p["quality"], p["every"], p["fps"],
                                           p["start"], p["end"], p["size"], p["gray"],
                                           p["with_scenes"]), p["workers"])  # fmt: skip
    if stage == "dataset":
        return BuildOptions(p["preset"], p["split_by"], p["seed"], p["avoid_hud"])
    if stage == "train":
        config = TrainConfig(
            data=str(p["data"].resolve()) if p.get("data") else "", size=p["size"],
            epochs=p["epochs"], pretrain_epochs=p["pretrain_epochs"], batch_size=p["batch_size"],
            lr=p["lr"], lambda_l1=p["lambda_l1"], val_fraction=p["val_fraction"],
            checkpoint_every=p["checkpoint_every"],
            checkpoint_minutes=p["checkpoint_minutes"], seed=p["seed"],
            model=ModelConfig(base_width=p["base_width"], depth=p["depth"], disc=p["disc"]),
            init=str(p.get("init") or ""),
        )  # fmt: skip
        return TrainStage(config, p["device"], p["workers"])
    return RenderOptions(
        p["model"],
        p["device"],
        p["render_size"],
        p["batch_size"],
        p["codec"],
        p["crf"],
        p["preset"],
        p["preview"],
        p["preview_frames"],
        p["temporal"],
        p.get("keyframes"),
        p.get("adapt") or 0,
        p.get("match", True),
    )
