#!/usr/bin/env bash
# The data of many kinds that the bundled models train, calibrate and score on
# (pipelines/default_data.py), with the footage and photographs it is cut from made first where
# they are missing: the recorded games (benchmarks/footage/make_footage.py) and the pictures
# (benchmarks/photos/make_photos.py). A second run skips what is done.
# Usage, from the repository root: bash pipelines/mix_data.sh MIX_DIR
set -euo pipefail
[ -f bench-out/footage/manifest.json ] || python benchmarks/footage/make_footage.py
# (rerun when its manifest, written last, lacks OpenCV's samples, the last source to join;
# GCompris's photographs are read out of Qt resource files: pip install PySide6-Essentials)
grep -qs '"package": "opencv-doc"' bench-out/photos/manifest.json || python benchmarks/photos/make_photos.py
python pipelines/default_data.py "$1"
