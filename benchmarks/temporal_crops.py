"""Ghosting, seen: crops of a moving object over consecutive frames, in the original and in
renders of it (say, without and with ``--temporal``), one row each, as a PNG or JPEG.

Carried colour that lags behind its object shows as a coloured trail beside it in the render's
row. Without ``--box``, the crop is the square where the original moves most at the first of the
frames (DIS flow on its luma), away from the picture's edges. Usage:

    python benchmarks/temporal_crops.py ORIGINAL RENDER [RENDER ...] --frames 700,702,704,706
        [--labels "without,with --temporal"] [--box X,Y,SIZE | --size 96] [--scale 2] -o crops.jpg

The README's picture: ``python benchmarks/bench_quality.py --keep work/bq``, then
``python benchmarks/temporal_crops.py ../shared/media/bbb_360p_60s.mp4 work/bq/GAN_False.mp4
work/bq/GAN_True.mp4 --frames 1115,1117,1119,1121 --labels "without,--temporal" --size 120
-o docs/temporal_crop.jpg``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from vidcolor.metrics import optical_flow
from vidcolor.video import VideoReader


def frames_at(path: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    """RGB frames ``wanted`` of a video (read through to the last one)."""
    got: dict[int, np.ndarray] = {}
    with VideoReader(path) as reader:
        for frame in reader:
            if frame.index in wanted:
                got[frame.index] = frame.image
            if frame.index >= max(wanted):
                break
    missing = sorted(set(wanted) - set(got))
    if missing:
        raise SystemExit(f"{path}: no frame {missing[0]}")
    return got


def busiest_box(a: np.ndarray, b: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` square whose mean motion from ``a`` to ``b`` is the
    largest, at least a quarter of a square from the edges."""
    flow = optical_flow(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY))
    speed = cv2.boxFilter(np.linalg.norm(flow, axis=2), -1, (size, size))  # mean around centre
    h, w = speed.shape
    m = size // 2 + size // 4
    inner = speed[m : h - m, m : w - m]
    y, x = np.unravel_index(int(inner.argmax()), inner.shape)
    return int(x + m - size // 2), int(y + m - size // 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("original", type=Path)
    parser.add_argument("renders", type=Path, nargs="+")
    parser.add_argument("--frames", required=True, help="comma-separated frame indices")
    parser.add_argument("--labels", help="comma-separated, one per render")
    parser.add_argument("--box", help="X,Y,SIZE of the square crop (default: where it moves)")
    parser.add_argument("--size", type=int, default=96, help="crop side when choosing the box")
    parser.add_argument("--scale", type=int, default=2, help="enlarge the crops (nearest)")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    wanted = [int(v) for v in args.frames.split(",")]
    labels = args.labels.split(",") if args.labels else [p.stem for p in args.renders]
    if len(labels) != len(args.renders):
        raise SystemExit("--labels: one per render")
    rows = [("original", frames_at(args.original, wanted))]
    rows += [(lab, frames_at(p, wanted)) for lab, p in zip(labels, args.renders, strict=True)]
    first = rows[0][1]
    if args.box:
        x, y, size = (int(v) for v in args.box.split(","))
    else:
        size = args.size
        x, y = busiest_box(first[wanted[0]], first[wanted[1 if len(wanted) > 1 else 0]], size)
    side, label_w = size * args.scale, 130
    sheet = []
    for label, frames in rows:
        tag = np.full((side, label_w, 3), 255, np.uint8)
        cv2.putText(
            tag, label, (6, side // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA
        )
        crops = [
            cv2.resize(
                frames[i][y : y + size, x : x + size], (side, side), interpolation=cv2.INTER_NEAREST
            )
            for i in wanted
        ]
        gap = np.full((side, 4, 3), 255, np.uint8)
        sheet.append(np.concatenate([tag, *[p for c in crops for p in (gap, c)]], 1))
    bgr = cv2.cvtColor(np.concatenate(sheet), cv2.COLOR_RGB2BGR)
    try:
        ok, buf = cv2.imencode(args.output.suffix, bgr)
    except cv2.error:
        ok = False
    if not ok:
        raise SystemExit(f"{args.output}: not an image name OpenCV can write (.png, .jpg)")
    args.output.write_bytes(buf.tobytes())
    print(f"{args.output}: frames {args.frames}, box x={x} y={y} size={size}")


if __name__ == "__main__":
    main()
