"""The README's picture of the keys round trip: ``vidcolor keys`` picks the frames to paint,
they are painted (here: the original colour frames stand in for a user's painting), and
``render --keyframes`` takes them back. One row for each of the three keys whose shots reach
farthest from them: the frame to paint as the user gets it, painted; then a frame of the same
shot up to ``--after`` frames away, rendered with the flow carry alone (``--no-match``) and
with matching, and the original.

    python benchmarks/keys_picture.py --clip bench-out/footage/supertux_6.mp4 --start 30 \
        --seconds 20 [--out docs/keys_round_trip.jpg] [--after 90]
"""

from __future__ import annotations

import argparse
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
from bench_keyframes import cut_unseen, write_keys
from common import ROOT
from keyframe_picture import frames_of, panel, write_picture

from vidcolor import stages
from vidcolor.color import gray_rgb
from vidcolor.options import RenderOptions
from vidcolor.render.key_files import key_files
from vidcolor.render.temporal import CutMarks
from vidcolor.video import VideoReader


def shot_ends(path: Path) -> list[int]:
    """The first frame of each shot as the render's first pass marks them, and the count."""
    starts = []
    with VideoReader(path, planes=True) as reader:
        count = 0
        for frame, cut in CutMarks.attach(reader).mark(reader):
            starts += [frame.index] * (cut or frame.index == 0)
            count += 1
    return [*starts, count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--start", type=Fraction, default=Fraction(0))
    parser.add_argument("--seconds", type=Fraction, default=Fraction(20))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "keys_round_trip.jpg")
    parser.add_argument("--after", type=int, default=90, help="frames from the key shown")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "clip.mp4"
        cut_unseen(args.clip, src, args.start, args.seconds)
        stages.pick_keys(src, tmp / "to_paint")
        picked = list(key_files(tmp / "to_paint"))
        write_keys(src, tmp / "painted", set(picked))  # the user's painting: the original
        for name, match in (("carry", False), ("match", True)):
            options = RenderOptions(keyframes=tmp / "painted", match=match)
            stages.render(src, tmp / f"{name}.mp4", options)
        ends = shot_ends(src)
        reach = {}
        for key in picked:  # the frame --after away, in the key's shot, forwards if it can
            start = max(e for e in ends if e <= key)
            end = next(e for e in ends if e > key) - 1
            far = min(key + args.after, end)
            reach[key] = far if far - key >= args.after // 2 else max(key - args.after, start)
        farthest = sorted(picked, key=lambda k: -abs(reach[k] - k))[:3]
        shown = {k: reach[k] for k in sorted(farthest)}
        wanted = set(shown) | set(shown.values())
        carry, match, original = (
            frames_of(tmp / n, wanted) for n in ("carry.mp4", "match.mp4", "clip.mp4")
        )
    rows = []
    for key, far in shown.items():
        rows.append(
            np.concatenate(
                [
                    panel(gray_rgb(original[key]), f"to paint: frame {key}"),
                    panel(original[key], "painted"),
                    panel(carry[far], f"frame {far}: carry alone"),
                    panel(match[far], "with matching"),
                    panel(original[far], "original"),
                ],
                axis=1,
            )
        )
    size = write_picture(rows, args.out)
    print(f"{args.out}: keys {picked}, shown {shown}, {size // 1024} KB")


if __name__ == "__main__":
    main()
