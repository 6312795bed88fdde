"""`vidcolor dataset build`: scene-aware training sets from episodes, in memory-mapped shards.

One decode pass per video (the scan): the reader's tap feeds the shot detector every frame,
while frames sampled every ``stride`` seconds go, at a little above storage size, to a candidate
file on disk (memory stays flat however long the video). Once the video is scanned, its whole
run of candidates tells where the letterbox bars are (never lit) and where a static HUD is (never
changes); candidates next to a cut, dark, blown out, greyscale or near-duplicate are dropped,
long scenes are capped, and each scene (or episode) is assigned to one split.

The set is built in a hidden work folder beside the target and renamed into place when
complete. A finished scan is kept there, so a build that was interrupted resumes from the
next video when run again with the same settings; anything else restarts it.

Modules: ``presets`` (kinds of footage), ``scan`` (the decode pass), ``picture`` (letterbox
and HUD), ``select`` (which candidates, which split), ``shards`` (the .npy files), ``build``
(the work folder, resuming, putting the dataset in place), ``info`` (`dataset info`).
"""

from vidcolor.data.dataset_build.build import build_dataset, frame_total
from vidcolor.data.dataset_build.info import dataset_summary
from vidcolor.data.dataset_build.picture import largest_free_box, letterbox, static_regions
from vidcolor.data.dataset_build.presets import PRESETS, SPLITS, BuildError, Preset
from vidcolor.data.dataset_build.select import usable
from vidcolor.options import BuildOptions

__all__ = [
    "PRESETS",
    "SPLITS",
    "BuildError",
    "BuildOptions",
    "Preset",
    "build_dataset",
    "dataset_summary",
    "frame_total",
    "largest_free_box",
    "letterbox",
    "static_regions",
    "usable",
]
