"""Each stage's options: one frozen dataclass per stage, the only place its defaults live. A
field users may set carries its flag, help, bounds and choices (optspec.opt), from which the
command line builds its options and recipes and checkpoints are checked. Nothing heavy is
imported here (no torch, no FFmpeg): `vidcolor --help` stays quick."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from vidcolor.optspec import opt


def check_finite(options: Any) -> None:
    """A ValueError unless each float field of ``options`` is finite: NaN passes every range
    check and inf every lower bound, so a library caller's NaN would otherwise run (the command
    line refuses them earlier in its float options' type, recipes in optspec.checked)."""
    for f in fields(options):
        value = getattr(options, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{f.name} must be a finite number, not {value}")


DEVICES = "auto, cpu, cuda or cuda:N."
SECONDS = {"lo": 0, "hi": 1e7}  # about 115 days of video
DEFAULT_LR = 2e-4  # pix2pix's; fine-tuning's is finetune.FINE_TUNE_LR
MOBILENET_DEPTH = 5  # MobileNetV2's stages reach stride 32: its one depth
MIN_SIZE = 32  # PatchGAN's five convolutions need 24; the global D's last BatchNorm, 2x2 maps


@dataclass(frozen=True)
class ExtractOptions:
    """What to pull out of the video and how to store it. Times in seconds."""

    image_format: str = opt("png", "Image file format.", flag="format", choices=("png", "jpg"))
    jpeg_quality: int = opt(95, "JPEG quality.", flag="quality", lo=1, hi=100)
    every: int = opt(1, "Keep every Nth frame.", lo=1)
    fps: float | None = opt(
        None, "Keep at most this many frames per second (instead of --every).", lo=0, lo_open=True
    )
    start: float | None = opt(None, "Start time in seconds.", **SECONDS)
    end: float | None = opt(None, "End time in seconds (exclusive).", **SECONDS)
    size: int | None = opt(None, "Scale frames so their short side has this many pixels.", lo=8)
    gray: bool = opt(False, "Store single-channel gray frames.")
    scenes: bool = opt(
        False, "Detect shots in the same pass; write each frame's scene id to the manifest."
    )

    def __post_init__(self) -> None:
        check_finite(self)
        if self.image_format not in ("png", "jpg"):
            raise ValueError(f"image format must be png or jpg, not {self.image_format}")
        if self.fps is not None and self.every != 1:
            raise ValueError("use --every or --fps, not both")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("--end must be after --start")


@dataclass(frozen=True)
class ExtractStage:
    """An extraction as a pipeline stage runs it: what to extract, and how many threads
    encode the image files (not part of what is made, so not in ExtractOptions)."""

    options: ExtractOptions = field(default_factory=ExtractOptions)
    workers: int = opt(2, "Threads that encode image files.", lo=1)


@dataclass(frozen=True)
class BuildOptions:
    """How `dataset build` samples and splits episodes (presets: dataset_build.PRESETS)."""

    preset: str = opt(
        "generic",
        "Footage kind: crop size, sampling and shot detection.",
        choices=("spongebob", "sc2", "generic"),
    )
    split_by: str = opt(
        "scene", "Keep whole scenes, or whole episodes, in one split.", choices=("scene", "episode")
    )
    seed: int = opt(0, "Seed of the split.", lo=0)
    avoid_hud: bool = opt(
        False,
        "Store only the largest part of the picture clear of static overlays (HUD, logos).",
        off="keep-hud",
    )


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the networks; stored in every checkpoint. None: the
    default (``resolved``), or with ``train --init`` the architecture of the model tuned."""

    base_width: int | None = opt(
        None, "Generator/discriminator width (default 64; with --init, its model's).", lo=4, hi=256
    )  # channels of the first encoder block; doubles down to 8x
    depth: int | None = opt(
        None, "U-Net down-sampling steps (default 8; with --init, its model's).", lo=2, hi=10
    )  # inputs are padded to a multiple of 2**depth
    disc: str | None = opt(
        None,
        "70x70 PatchGAN or a global conv+FC discriminator (default patch; with --init, its "
        "model's).",
        choices=("patch", "global"),
    )
    dropout: float = 0.5  # in the three innermost decoder blocks, as pix2pix
    encoder: str | None = opt(
        None,
        "The generator's encoder: pix2pix's (unet) or MobileNetV2's stages (mobilenet_v2: "
        "depth 5, decoder widths 4w to w; start it from ImageNet with --encoder-weights) "
        "(default unet; with --init, its model's).",
        choices=("unet", "mobilenet_v2"),
    )  # a stored model without one (made before it existed) is a unet

    def __post_init__(self) -> None:
        check_finite(self)

    def resolved(self, base: ModelConfig | None = None) -> ModelConfig:
        """This architecture with each None taken from ``base`` (the model fine-tuned, which
        also brings its dropout), else the default (64, 8, patch): a network is always built
        from a resolved one."""
        if base is None:
            base = ModelConfig(64, 8, "patch", self.dropout, "unet")
        encoder = self.encoder or base.encoder or "unet"
        depth = base.depth if self.depth is None else self.depth
        if encoder == "mobilenet_v2" and self.depth is None:
            depth = MOBILENET_DEPTH
        return ModelConfig(
            base_width=base.base_width if self.base_width is None else self.base_width,
            depth=depth,
            disc=base.disc if self.disc is None else self.disc,
            dropout=base.dropout,
            encoder=encoder,
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """A training run's settings; stored (resolved) in its checkpoints, which resume with them.
    Fields with a value that depends on the mode (``lr`` and the model's) are None until
    ``resolved`` settles them: from scratch, or fine-tuning (finetune.starting_point)."""

    data: str = ""  # the training images' folder (a pipeline sets it when the stage runs)
    size: int = opt(
        224, "Training crop size (224 cartoons, 480 game replays).", lo=MIN_SIZE, hi=4096
    )
    epochs: int = opt(20, "Adversarial epochs (after --pretrain-epochs).", lo=1)
    pretrain_epochs: int = opt(0, "L1-only generator epochs before the GAN starts.", lo=0)
    decay_epochs: int | None = None  # linear lr decay over the last N epochs (None: half)
    batch_size: int = opt(16, "Images per step (per process under torchrun).", lo=1, hi=4096)
    lr: float | None = opt(
        None, "Adam learning rate, beta1 0.5 (default 2e-4; 5e-5 with --init).", lo=0, lo_open=True
    )
    beta1: float = 0.5
    lambda_l1: float = opt(100.0, "Weight of the L1 loss against the adversarial loss.", lo=0)
    ema: float = opt(
        0.0,
        "Average the generator's weights over about 1/(1-DECAY) steps (0: off; 0.995 suits a "
        "few hundred steps): checkpoints, validation and model.pt hold the average.",
        lo=0,
        hi=0.9999,
        metavar="DECAY",
    )
    shade: float = opt(
        0.0,
        "Share of training crops darkened by a random factor from 0.55 to 1, so that colours "
        "seen in the light are known in the shade too (0: off).",
        lo=0,
        hi=1,
    )
    windows: bool = opt(
        True,
        "Train on windows of random size cut out of the crops, so the model colours alike at "
        "any working size (render --render-size); --no-windows: whole crops.",
        off="no-windows",
    )
    val_fraction: float = opt(
        0.1, "Share of scenes held out for validation (0: validate on training data).", lo=0, hi=0.9
    )
    val_max: int = 256  # validation images scored per epoch
    samples: int = 6  # rows in each epoch's sample grid
    checkpoint_every: int = opt(
        2000,
        "Steps between validation, samples and checkpoints (or --checkpoint-minutes, whichever "
        "comes first; and at the end).",
        lo=1,
    )
    checkpoint_minutes: float = opt(
        10.0, "Minutes between validation, samples and checkpoints.", lo=0, lo_open=True
    )
    log_every: int = 20  # steps between metrics.csv rows
    seed: int = opt(0, "Random seed.", lo=0, hi=2**32 - 1)
    model: ModelConfig = field(default_factory=ModelConfig)
    init: str = opt(
        "",
        "Fine-tune: start from this model (a model.pt, a training checkpoint, or a bundled "
        "model's name: default or imagenet) and its architecture. A new discriminator (a "
        "model.pt has none) first learns alone for 200 adversarial steps while the generator "
        "trains on L1.",
        metavar="MODEL",
        show_default=False,
    )  # its path, or a bundled model's name
    init_sha256: str = ""  # ... and its file's hash, so the run says exactly what it tuned
    encoder_weights: str = opt(
        "",
        "Start --encoder mobilenet_v2's encoder from torchvision's ImageNet MobileNetV2 weights "
        "(mobilenet_v2-b0353104.pth; pipelines/imagenet_weights.py fetches it), not from random "
        "ones; for a new model (not with --init).",
        metavar="PTH",
        show_default=False,
    )
    d_warmup: int = 0  # first adversarial steps where D learns and G's loss is L1 alone

    def __post_init__(self) -> None:
        check_finite(self)

    def resolved(self, model: ModelConfig | None = None, lr: float = DEFAULT_LR) -> TrainConfig:
        """This config as a run trains it: the architecture's None fields from ``model`` (the
        model fine-tuned) or the defaults, and ``lr`` unless one was set."""
        lr = lr if self.lr is None else self.lr
        return replace(self, model=self.model.resolved(model), lr=lr)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """The config a checkpoint stores. A run begun before ``windows`` existed trained on
        whole crops, and resumes so."""
        return cls(**{"windows": False, **d, "model": ModelConfig(**d["model"])})


@dataclass(frozen=True)
class TrainStage:
    """A training run as a command or pipeline stage starts it: its config (whose ``data`` a
    pipeline sets when the stage runs), and where it runs (not part of what it makes)."""

    config: TrainConfig = field(default_factory=TrainConfig)
    device: str = opt("auto", DEVICES)
    workers: int = opt(2, "Threads that decode DATA's images into the run's cache.", lo=0)


@dataclass(frozen=True)
class RenderOptions:
    """How to colorize a video, an image or a folder of images."""

    model: Path | None = opt(
        None,
        "A model bundle or training checkpoint, or a bundled model's name: default (trained on "
        "open data only) or imagenet (its encoder pretrained on ImageNet; better colour) "
        "(default: default).",
        metavar="MODEL",
    )  # a name: vidcolor/bundled.py
    device: str = opt("auto", DEVICES)
    render_size: int | None = opt(
        None, "Short side the model works at (default: its training size).", lo=32
    )
    batch_size: int | None = opt(
        None, "Frames per model call (default 4 on CPU, 16 on CUDA; halved on CUDA OOM).", lo=1
    )
    codec: str = opt("h264", "h264, h265, av1, vp9 or an FFmpeg encoder name.")
    crf: int | None = opt(None, "Quality (encoder's scale; lower: better).", lo=0, hi=63)
    preset: str | None = opt(None, "Encoder speed preset (x264: ultrafast ... veryslow).")
    preview: str | None = opt(
        None,
        "sbs: OUT shows gray | colorized (| original colour) side by side.",
        choices=("sbs",),
    )
    preview_frames: int = opt(
        0, "Also write OUT's name + _preview.png: a contact sheet of N frames.", lo=0
    )
    temporal: bool | None = opt(
        None,
        "Carry colour along the motion from frame to frame (less flicker; about 0.85x the speed "
        "on a CPU); it starts afresh at each scene cut. On for videos unless --no-temporal; "
        "images are colorized alone.",
        off="no-temporal",
    )  # None: on for a video, off for images (resolved)
    keyframes: Path | None = opt(
        None,
        "Colour keys, the video's size: images named by 0-based frame (120.png, "
        "frame_000120.png) or timecode (00:01:02.500.png), or a colour video as long as IN "
        "whose non-black frames are keys. Each key's colour is carried through its shot, "
        "fading into the model's where the motion is lost. --temporal also steadies the frames "
        "between; --no-temporal carries the keys alone.",
    )
    adapt: float = opt(
        0.0,
        "With --keyframes: first fine-tune the model on the keys for this long (L1, at the "
        "working size), so shots without a key take their palette too.",
        lo=0,
        metavar="SECONDS",
        show_default=False,
    )
    match: bool = opt(
        True,
        "With --keyframes: colour each frame also from where it looks like its shot's keys "
        "(the model's own features), however far from them, where the motion no longer "
        "carries their colour.",
        off="no-match",
    )

    def __post_init__(self) -> None:
        check_finite(self)

    def resolved(self, still: bool) -> RenderOptions:
        """These options for one input: ``temporal`` settled (None: on for a video; images
        are colorized alone)."""
        return replace(self, temporal=not still and self.temporal is not False)

    @property
    def encode(self) -> Any:
        """The encoder's settings (video.EncodeOptions; it checks the preset)."""
        from vidcolor.video import EncodeOptions

        return EncodeOptions(codec=self.codec, crf=self.crf, preset=self.preset)
