#!/usr/bin/env bash
# Remakes the default model bundled in vidcolor/weights/default.pt from nothing, in two stages:
#   1. pipelines/default_model.toml: a first model on the shared Big Buck Bunny clip's first 45 s
#      (CC-BY 3.0, (c) Blender Foundation), a width-36 U-Net; about 13 minutes on a 2-core CPU;
#   2. that model fine-tuned on many kinds (pipelines/default_data.py): the clip (its first 45 s
#      and its last shot), recorded SuperTux and Wesnoth episodes 1-4
#      (benchmarks/footage/make_footage.py), Debian's wallpapers, Scratch's and Tux Paint's
#      photographs and their cut-outs laid over them (benchmarks/photos/make_photos.py),
#      keeping a running mean of the generator's weights (--ema) and half its crops darkened
#      (--shade); about 19 minutes on the 2-core CPU. Then bundled, its colour hedge
#      calibrated on episode 5, wallpapers, backdrops and Ubuntu's and GCompris's photographs
#      it never saw, and scored on what it never saw: the README's sample shot, episode 6,
#      other wallpapers, backdrops and photographs, and live action. It replaces
#      vidcolor/weights/default.pt only if no kind falls under the gray input's bar.
# Both stages train on windows of random size cut out of their crops (train --windows, on by
# default), so the model colours alike at any working size.
# The footage needs Debian's games and Xvfb (make_footage.py --install), the wallpapers and
# stamps apt-get download and dpkg-deb: tools for this recipe only, never for vidcolor itself.
# Usage, from the repository root: bash pipelines/default_model.sh [WORK_DIR]
set -euo pipefail
work="${1:-work/default_model}"

# 1. The first model (a second run skips what is done; an interrupted one resumes).
vidcolor pipeline run pipelines/default_model.toml --set work="$work"

# 2. The data of many kinds, each with a held-out side.
bash pipelines/mix_data.sh "$work/mix"

# 3. Fine-tuned on it with L1 alone. It starts from the first model's bundle (model.pt, no
#    discriminator), so a new discriminator learns alone for the one adversarial epoch's first
#    200 steps and the generator never sees the GAN loss (a GAN phase scored worse:
#    docs/benchmarks.md#the-bundled-default-model). Validation every 50 steps, whatever the
#    machine's speed, picks best.pt. --ema 0.995: validation, best.pt and model.pt hold the mean
#    of the generator's weights over about its last 200 steps, which scored above the mean of
#    the best and last checkpoints (docs/benchmarks.md, "Fourth model"). --shade 0.5: half the
#    crops darkened, so colours seen in the light are known in the shade (the same section).
if [ -f "$work/mix_run/last.pt" ]; then
  vidcolor train --resume "$work/mix_run"
else
  vidcolor train "$work/mix/train" -o "$work/mix_run" --init "$work/train/model.pt" \
    --lr 1e-4 --pretrain-epochs 6 --epochs 1 --seed 0 --checkpoint-every 50 --ema 0.995 \
    --shade 0.5
fi

# 4. The bundle (generator in fp16 + config + provenance + chroma gain), made in the work
#    folder: best.pt's averaged generator; then its colour hedge (chroma shrink and gain),
#    calibrated on the calibrate side.
python pipelines/average_checkpoints.py "$work/default.pt" "$work/mix_run/best.pt" \
  --about "Big Buck Bunny (c) 2008 Blender Foundation, CC-BY 3.0 (the first 45 s and the last \
shot); SuperTux levels and Wesnoth episodes recorded here (GPL/CC-BY-SA game art); Debian's \
wallpapers (GPL-2+, CC-BY-SA); Scratch's backdrops and costumes (CC-BY-SA 3.0); Tux Paint's \
stamps and photographs (GPL-2, GPL-2+): pipelines/default_data.py, vidcolor/weights/README.md"
python benchmarks/calibrate_gain.py "$work/mix/calibrate" --model "$work/default.pt" --write

# 5. Scores on every held-out kind, beside the gray input and the model bundled now. --gate
#    stops here, the bundled model untouched, if a kind falls more than 0.2 dB under gray or
#    the average is less than 0.5 dB over it. What it cannot judge: the sample shot against the
#    model before (at most 1 dB lower; it moved 0.8 dB between two seeds) and the contact
#    sheets (benchmarks/model_sheet.py), to check by eye.
python benchmarks/score_model.py "$work/mix/heldout" --model "$work/default.pt" \
  --previous vidcolor/weights/default.pt --hues --gate

# 6. It ships: copied to a new file beside the bundled one, then renamed over it (never half
#    written, and no other file at a fixed name is overwritten on the way).
part="$(mktemp vidcolor/weights/default.pt.XXXXXX)"
cp "$work/default.pt" "$part"
chmod --reference=vidcolor/weights/default.pt "$part"  # mktemp makes it 0600
mv "$part" vidcolor/weights/default.pt
