"""How much slower a keyed render is than an unkeyed one, on one clip, nothing scored (scoring
is bench_keyframes.py's): the render without keys, with the keys ``vidcolor keys`` picks
(matching, the default), with the carry alone (``--no-match``), and with ``--adapt``; and how
many steps ``--adapt`` took. Usage:

    python benchmarks/bench_keyed_speed.py [--clip F --start S --seconds D] [--adapt 30]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from bench_keyframes import cut_unseen
from common import (
    SHARED_CLIP,
    Result,
    any_failed,
    fmt,
    ratio,
    report_json,
    run_cases,
    stop_on_signals,
)

from vidcolor import stages
from vidcolor.options import RenderOptions
from vidcolor.reporter import Reporter


class Heard(Reporter):
    """Keeps what a render says (the ``--adapt`` step count)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def say(self, line: str) -> None:
        self.lines.append(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=SHARED_CLIP)
    parser.add_argument("--start", type=Fraction, default=Fraction(0))
    parser.add_argument("--seconds", type=Fraction, default=Fraction(20))
    parser.add_argument("--adapt", type=float, default=30.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    stop_on_signals()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "clip.mp4"
        cut_unseen(args.clip, src, args.start, args.seconds)
        stages.pick_keys(src, tmp / "keys")

        def side(keys: bool = True, **options: object) -> Result:
            heard = Heard()
            folder = tmp / "keys" if keys else None
            t0 = time.perf_counter()
            stages.render(
                src,
                tmp / "out.mp4",
                RenderOptions(keyframes=folder, **options),
                heard,
                overwrite=True,
            )
            return {"render_s": time.perf_counter() - t0, "said": heard.lines}

        cases = {
            "without keys": lambda: side(False),
            "vidcolor keys, matching": lambda: side(),
            "vidcolor keys, carry alone": lambda: side(match=False),
            f"vidcolor keys, matching, --adapt {args.adapt:g}": lambda: side(adapt=args.adapt),
        }
        r = run_cases(cases)
    plain = r["without keys"].get("render_s")
    print(f"\n{args.clip.name} from {float(args.start):g} s for {float(args.seconds):g} s\n")
    print("| render | seconds | speed vs no keys |\n|---|---:|---:|")
    for name, x in r.items():
        if "error" in x:
            print(f"| {name} | error: {x['error']} | |")
            continue
        print(f"| {name} | {x['render_s']:.1f} | {fmt(ratio(plain, x['render_s']))}x |")
        for line in x["said"]:
            print(f"  {line}")
    report_json(r, args.json)
    if any_failed(r):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
