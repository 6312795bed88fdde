#!/usr/bin/env bash
# Trains the default model bundled in vidcolor/weights/default.pt with vidcolor's own recipe
# (pipelines/default_model.toml: frames of the first 45 s of the shared Big Buck Bunny clip,
# CC-BY 3.0, (c) Blender Foundation), bundles it, and scores it on the last 15 s: other shots,
# never seen in training. About 12 minutes on a 2-core CPU.
# Usage, from the repository root: bash pipelines/default_model.sh [WORK_DIR]
set -euo pipefail
clip="$(cd "$(dirname "$0")/../.." && pwd)/shared/media/bbb_360p_60s.mp4"
work="${1:-work/default_model}"

# 1-2. Frames (8 a second, short side 256, first 45 s) and training: the recipe. A second run
# skips what is done; an interrupted one resumes.
vidcolor pipeline run pipelines/default_model.toml --set work="$work"

# 3. The held-out shots (45 s to 60 s), 2 frames a second.
vidcolor extract "$clip" -o "$work/heldout_frames" --start 45 --fps 2 --size 256 --resume 2>/dev/null \
  || vidcolor extract "$clip" -o "$work/heldout_frames" --start 45 --fps 2 --size 256 --overwrite

# 4. The bundle (generator in fp16 + config + provenance) that ships in the package.
python - "$work" <<'PY'
import sys
from vidcolor.checkpoint import save_bundle
work = sys.argv[1]
save_bundle("vidcolor/weights/default.pt", f"{work}/train/best.pt", about=(
    "Big Buck Bunny (c) 2008 Blender Foundation, CC-BY 3.0: the first 45 s of "
    "bbb_360p_60s.mp4 at 8 frames/s, short side 256 (pipelines/default_model.toml)"))
PY

# 5. Scores on the held-out shots, beside the gray input.
python benchmarks/score_model.py "$work/heldout_frames"
