"""Cut the README's sample clip from the shared Big Buck Bunny clip without re-encoding.

47.71 s to 56.08 s (keyframe to keyframe): shots the bundled model never saw in training (it
trains on the first 45 s). Video and audio packets are copied and shifted to start at 0.
Usage: python pipelines/sample_clip.py [SRC] [DST]
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av

START, END = Fraction(47_708, 1000), Fraction(56_080, 1000)  # keyframes of the source
ROOT = Path(__file__).resolve().parents[1]


def cut(src: Path, dst: Path, start: Fraction = START, end: Fraction = END) -> None:
    """Copy [start, end) of ``src`` into ``dst``; ``start`` must be a keyframe's time."""
    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        v_in, a_in = i.streams.video[0], i.streams.audio[0]
        v_out, a_out = o.add_stream_from_template(v_in), o.add_stream_from_template(a_in)
        for packet in i.demux(v_in, a_in):
            if packet.dts is None or packet.pts is None:
                continue
            t = packet.pts * packet.time_base
            key_start = packet.stream is v_in and packet.is_keyframe and abs(t - start) < 0.01
            if t < start - Fraction(1, 100) and not key_start:
                continue
            if t >= end:
                continue
            shift = round(start / packet.time_base)
            packet.pts, packet.dts = packet.pts - shift, packet.dts - shift
            packet.stream = v_out if packet.stream is v_in else a_out
            o.mux(packet)


if __name__ == "__main__":
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared/media/bbb_360p_60s.mp4"
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "samples" / "bbb_sample.mp4"
    dst.parent.mkdir(exist_ok=True)
    cut(src, dst)
    print(f"wrote {dst}")
