#!/usr/bin/env bash
# Trains the default model bundled in vidcolor/models_data/ (issue 4) with vidcolor's own
# commands, on the first 45 s of the shared Big Buck Bunny clip (CC-BY 3.0, (c) Blender
# Foundation). The last 15 s are other shots, never seen in training; they score the model.
# About 15 minutes on a 2-core CPU. Usage: bash pipelines/default_model.sh [WORK_DIR]
set -euo pipefail
clip="$(cd "$(dirname "$0")/../.." && pwd)/shared/media/bbb_360p_60s.mp4"
work="${1:-work/default_model}"
mkdir -p "$work"

# 1. Frames: 8 a second, short side 256; training shots and held-out shots apart.
vidcolor extract "$clip" -o "$work/train_frames" --end 45 --fps 8 --size 256 --resume 2>/dev/null \
  || vidcolor extract "$clip" -o "$work/train_frames" --end 45 --fps 8 --size 256
vidcolor extract "$clip" -o "$work/heldout_frames" --start 45 --fps 2 --size 256 --resume 2>/dev/null \
  || vidcolor extract "$clip" -o "$work/heldout_frames" --start 45 --fps 2 --size 256

# 2. Train: a laptop-sized U-Net (width 32, depth 6) at 224, L1 warm-up then the GAN.
if [ -f "$work/run/last.pt" ]; then
  vidcolor train --resume "$work/run"
else
  vidcolor train "$work/train_frames" -o "$work/run" --size 224 --base-width 32 --depth 6 \
    --batch-size 16 --pretrain-epochs 5 --epochs 25 --workers 1 --seed 0
fi

# 3. The bundle (generator in fp16 + config + provenance) that ships in the package.
python - "$work" <<'PY'
import sys
from vidcolor.checkpoint import save_bundle
work = sys.argv[1]
save_bundle("vidcolor/weights/default.pt", f"{work}/run/best.pt", about=(
    "Big Buck Bunny (c) 2008 Blender Foundation, CC-BY 3.0: the first 45 s of "
    "bbb_360p_60s.mp4 at 8 frames/s, short side 256 (pipelines/default_model.sh)"))
PY

# 4. Scores on the held-out shots (45 s to 60 s), beside the gray input.
python benchmarks/score_model.py "$work/heldout_frames"
