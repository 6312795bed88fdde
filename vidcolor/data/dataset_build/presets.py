"""The kinds of footage a dataset is built from, and the levels its checks use."""

from __future__ import annotations

from dataclasses import dataclass

from vidcolor.errors import UserError

Box = tuple[int, int, int, int]  # x, y, width, height


class BuildError(UserError):
    """The dataset cannot be built as asked."""


@dataclass(frozen=True)
class Preset:
    size: int  # training crop size; frames are stored with a short side ~15% larger
    stride: float  # seconds between candidate frames
    per_scene: int  # at most this many frames from one scene
    margin: int  # frames skipped on each side of a cut (transitions, motion blur)
    duplicate: float  # mean |difference| of 16x16 gray thumbnails below which frames are twins
    # Shot detection (PySceneDetect's AdaptiveDetector): a frame's content change must be
    # ``adaptive_threshold`` times its neighbours' average and at least ``min_content``.
    adaptive_threshold: float = 3.0
    min_content: float = 15.0


# fmt: off
PRESETS = {
    "spongebob": Preset(size=224, stride=0.5, per_scene=24, margin=6, duplicate=4.0),
    # A camera jump over one map changes less than a cut between shots, and a static HUD
    # dilutes it further: a lower floor and ratio (benchmarks/bench_cuts.py measures them).
    "sc2": Preset(size=480, stride=1.0, per_scene=12, margin=4, duplicate=3.0,
                  adaptive_threshold=2.5, min_content=5.0),
    "generic": Preset(size=256, stride=0.5, per_scene=16, margin=6, duplicate=4.0),
}
# fmt: on
SPLITS = (("train", 0.8), ("val", 0.1), ("test", 0.1))
STORE = 1.15  # stored short side / crop size: room for the trainer's scale jitter
HEADROOM = 1.3  # candidates are scanned this much larger, so bars and HUD can be cut away
LETTERBOX_LEVEL = 16  # a row or column never brighter than this in any candidate is a bar
HUD_STD = 2.5  # gray levels: a pixel that varies less than this over the video is static
HUD_MIN_SAMPLES = 8  # candidates needed before anything is called static
DARK, BLOWN_OUT = 20, 235  # mean levels below / above which a frame cannot teach colour
HUD_MIN_AREA = 0.005  # of the picture: smaller static specks are not a HUD
HUD_MAX_AREA = 0.5  # more than this static means the picture hardly moved: no HUD claimed
