"""The README's keyframe picture: gray | without keys | with one key | original, for a frame
some way from its shot's key, one row per unseen shot of the shared clip (see
bench_keyframes.py, whose cut, shots and middle-frame keys this reuses). Usage:

    python benchmarks/keyframe_picture.py [--clip ...] [--out docs/keyframes.jpg] [--after 12]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
from bench_keyframes import cut_unseen, write_keys
from common import ROOT, SHARED_CLIP

from vidcolor import stages
from vidcolor.color import gray_rgb
from vidcolor.options import RenderOptions
from vidcolor.video import VideoReader

WIDTH = 320  # of each panel


def frames_of(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    with VideoReader(path) as reader:
        return {f.index: f.image for f in reader if f.index in wanted}


def panel(rgb: np.ndarray, label: str) -> np.ndarray:
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (WIDTH, round(h * WIDTH / w)), interpolation=cv2.INTER_AREA)
    cv2.rectangle(small, (0, 0), (WIDTH, 24), (0, 0, 0), -1)
    cv2.putText(
        small, label, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA
    )
    return small


def write_picture(rows: list[np.ndarray], out: Path) -> int:
    """Rows of panels (RGB) stacked into a JPEG at ``out``; its size in bytes."""
    bgr = cv2.cvtColor(np.concatenate(rows), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise SystemExit("could not encode the picture")
    out.write_bytes(buf.tobytes())
    return len(buf)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=SHARED_CLIP)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "keyframes.jpg")
    parser.add_argument("--after", type=int, default=12, help="frames after the key shown")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "unseen.mp4"
        shots = cut_unseen(args.clip, src)
        keys = {(a + b) // 2 for a, b in shots}
        write_keys(src, tmp / "keys", keys)
        stages.render(src, tmp / "plain.mp4", RenderOptions())
        stages.render(src, tmp / "keyed.mp4", RenderOptions(keyframes=tmp / "keys"))
        shown = {min(k + args.after, b) for k, (_, b) in zip(sorted(keys), shots, strict=True)}
        sides = [frames_of(tmp / n, shown) for n in ("plain.mp4", "keyed.mp4", "unseen.mp4")]
    rows = []
    for i in sorted(shown):
        plain, keyed, original = (s[i] for s in sides)
        rows.append(
            np.concatenate(
                [
                    panel(gray_rgb(original), f"gray (frame {i})"),
                    panel(plain, "without keys"),
                    panel(keyed, f"one key, {args.after} frames back"),
                    panel(original, "original"),
                ],
                axis=1,
            )
        )
    size = write_picture(rows, args.out)
    print(f"{args.out}: frames {sorted(shown)}, {size // 1024} KB")


if __name__ == "__main__":
    main()
