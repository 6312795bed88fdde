"""Cut the README's sample clip from the shared Big Buck Bunny clip without re-encoding.

47.71 s to 56.08 s (keyframe to keyframe): a shot the bundled model never saw in training (it
trains on the first 45 s and on the shot after this one). Video and audio packets are copied
and shifted to start at 0; a source without audio gives a clip without audio. Other cuts
(benchmarks use the first ~10 s):
Usage: python pipelines/sample_clip.py [SRC] [DST] [START END]   (seconds)
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av

START, END = Fraction(47_708, 1000), Fraction(56_080, 1000)  # keyframes of the source
ROOT = Path(__file__).resolve().parents[1]
SLACK = Fraction(1, 100)  # a time given in ms matches a keyframe this close


def next_keyframe(src: Path, t: Fraction) -> Fraction | None:
    """Time (s) of the first video keyframe at or after ``t`` (within 10 ms), or None when the
    stream has none after it. Reads packets only: nothing is decoded."""
    with av.open(str(src)) as i:
        v = i.streams.video[0]
        for packet in i.demux(v):
            if packet.pts is None or not packet.is_keyframe:
                continue
            at = packet.pts * packet.time_base
            if at >= t - SLACK:
                return at
    return None


def cut(src: Path, dst: Path, start: Fraction = START, end: Fraction = END) -> Fraction | None:
    """Copy [start, end) of ``src`` into ``dst``; ``start`` must be a keyframe's time. ``end``
    moves on to the next keyframe (or the end of the stream), so the last group of pictures is
    whole and every frame kept decodes; audio, if any, stops at the same time. Returns that
    end (None: the end of the stream)."""
    stop = next_keyframe(src, end)
    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        v_in = i.streams.video[0]
        a_in = i.streams.audio[0] if i.streams.audio else None
        ins = [v_in] if a_in is None else [v_in, a_in]
        outs = {s: o.add_stream_from_template(s) for s in ins}
        for packet in i.demux(*ins):
            if packet.dts is None or packet.pts is None:
                continue
            t = packet.pts * packet.time_base
            key_start = packet.stream is v_in and packet.is_keyframe and abs(t - start) < SLACK
            if t < start - SLACK and not key_start:
                continue
            if stop is not None and t >= stop:
                continue
            shift = round(start / packet.time_base)
            packet.pts, packet.dts = packet.pts - shift, packet.dts - shift
            packet.stream = outs[packet.stream]
            o.mux(packet)
    return stop


if __name__ == "__main__":
    args = sys.argv[1:]
    src = Path(args[0]) if args else ROOT.parent / "shared/media/bbb_360p_60s.mp4"
    dst = Path(args[1]) if len(args) > 1 else ROOT / "samples" / "bbb_sample.mp4"
    start, end = (Fraction(a) for a in args[2:4]) if len(args) > 3 else (START, END)
    dst.parent.mkdir(exist_ok=True)
    stop = cut(src, dst, start, end)
    until = "the end" if stop is None else f"{float(stop):.3f} s"
    print(f"wrote {dst} ({float(start):g} s to {until})")
