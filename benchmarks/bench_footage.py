"""The dataset presets on real footage (``benchmarks/footage/make_footage.py``): where the HUD
finder cuts, what shots are found, and whether any non-game frame becomes training data.

- strategy (Wesnoth): ``dataset build --preset sc2 --avoid-hud`` on all episodes. The picture it
  keeps, edge by edge, against the HUD's true place, taken two ways: the game's own layout
  (``data/themes/default.cfg``: a 27 px top panel, a 182 px sidebar anchored right) and the
  footage itself (the rows and columns whose pixels stay constant over the episode).
- cartoon (SuperTux): ``dataset build --preset spongebob``, and ``vidcolor scenes`` on each
  episode drawn as a contact sheet (first and last frame of every shot), to check by eye.
- both: frames and scenes per split, and every kept training frame checked against the
  episode's non-game frames (loading screens, a level's title card, black fades), found
  independently of the builder: by the HUD's absence (strategy) or by darkness against the
  episode's median frame (cartoon).

    python benchmarks/bench_footage.py [--footage bench-out/footage] [--sheet docs/...jpg]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import ROOT, report_json

WESNOTH_TOP, WESNOTH_SIDEBAR = 27, 182  # the default theme's top panel and sidebar, in px
STATIC_STD = 2.0  # gray levels: a pixel that varies less over the episode is constant
DIM = 0.6  # a frame darker than this share of its episode's median frame: a fade, a title card


def frames_of(path: Path, every: int = 1) -> list[np.ndarray]:
    """Every ``every``-th frame of ``path`` as gray uint8 at half size (enough for edges at
    +-2 px, and an episode in memory is then ~0.4 GB at every=1)."""
    from vidcolor.video import VideoReader

    with VideoReader(path, gray=True, every=every) as reader:
        return [
            cv2.resize(f.image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA) for f in reader
        ]


def measured_hud(gray: list[np.ndarray], in_game: np.ndarray) -> dict[str, int]:
    """The HUD's edges from the footage: rows from the top, and columns from the right, where
    most pixels stayed constant over the in-game frames (in full-size pixels)."""
    stack = np.stack([g for g, ok in zip(gray, in_game, strict=True) if ok]).astype(np.float32)
    static = stack.std(axis=0) < STATIC_STD
    rows, cols = static.mean(axis=1), static.mean(axis=0)
    top = int(np.argmax(rows < 0.5))  # first row, from the top, that is mostly moving
    right = len(cols) - int(np.argmax(cols[::-1] < 0.5))
    return {"top": 2 * top, "right": 2 * right}


def strategy_in_game(gray: list[np.ndarray]) -> np.ndarray:
    """Frames showing the game's HUD: the sidebar within a few gray levels of its look in the
    episode's second half (the loading screen has no sidebar)."""
    x = (1280 - WESNOTH_SIDEBAR) // 2 + 2
    bars = np.stack([g[:, x:].astype(np.float32) for g in gray])
    typical = np.median(bars[len(bars) // 2 :], axis=0)
    return np.abs(bars - typical).mean(axis=(1, 2)) < 12


def cartoon_in_game(gray: list[np.ndarray]) -> np.ndarray:
    """Frames at the level's own brightness (a forest level is dark throughout; its fades and
    title card are darker still)."""
    means = np.array([g.mean() for g in gray])
    return means >= DIM * np.median(means)


def build(videos: list[Path], out: Path, preset: str, avoid_hud: bool) -> dict:
    from vidcolor.data.dataset_build import BuildOptions, build_dataset

    options = BuildOptions(preset, split_by="scene", avoid_hud=avoid_hud)
    return build_dataset(videos, out, options)


def kept_outside_game(
    manifest: dict, videos: list[Path], in_game: dict[str, np.ndarray]
) -> list[str]:
    """The kept training frames that fall on a non-game frame of their episode."""
    bad = []
    for row in manifest["frames"]:
        name = Path(row["source"]).name
        if not in_game[name][row["frame"]]:
            bad.append(f"{name}#{row['frame']}")
    return bad


def per_split(manifest: dict) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, set | int]] = {}
    for row in manifest["frames"]:
        c = counts.setdefault(row["split"], {"frames": 0, "scenes": set()})
        c["frames"] += 1  # type: ignore[operator]
        c["scenes"].add((row["source"], row["scene"]))  # type: ignore[union-attr]
    return {
        s: {"frames": c["frames"], "scenes": len(c["scenes"])}  # type: ignore[arg-type]
        for s, c in counts.items()
    }


def strategy(videos: list[Path], work: Path) -> dict:
    manifest = build(videos, work / "strategy", "sc2", avoid_hud=True)
    rows, in_game = [], {}
    truth = {"left": 0, "top": WESNOTH_TOP, "right": 1280 - WESNOTH_SIDEBAR, "bottom": 720}
    for video, source in zip(videos, manifest["sources"], strict=True):
        gray = frames_of(video)
        in_game[video.name] = strategy_in_game(gray)
        x, y, w, h = source["picture"]
        kept = {"left": x, "top": y, "right": x + w, "bottom": y + h}
        rows.append(
            {
                "episode": video.name,
                "frames": source["frames"],
                "scenes": len(source["cuts"]) + 1,
                "picture": kept,
                "measured_hud": measured_hud(gray, in_game[video.name]),
                "error_px": {k: kept[k] - truth[k] for k in truth},
                "non_game_frames": int((~in_game[video.name]).sum()),
            }
        )
    return {
        "truth": truth,
        "episodes": rows,
        "splits": per_split(manifest),
        "kept_outside_game": kept_outside_game(manifest, videos, in_game),
        "dropped": manifest["dropped"],
    }


def contact_sheet(videos: list[Path], sheet: Path) -> list[int]:
    """One row per episode, one tile per shot ``vidcolor scenes`` finds: the shot's middle
    frame (its ends are often inside a fade), labelled with its frame range. Returns the shot
    count per episode."""
    from vidcolor.data.scenes import detect_scenes
    from vidcolor.video import VideoReader

    rows, counts, per_row = [], [], 10
    for video in videos:
        found = detect_scenes(video)
        counts.append(len(found))
        scenes = found[:per_row]
        middle = {(s.start_frame + s.end_frame) // 2: s for s in scenes}
        tiles = []
        with VideoReader(video) as reader:
            for frame in reader:
                if frame.index in middle:
                    s = middle[frame.index]
                    tile = cv2.resize(frame.image, (192, 108), interpolation=cv2.INTER_AREA)
                    cv2.putText(
                        tile,
                        f"{s.start_frame}-{s.end_frame}",
                        (4, 14),
                        cv2.FONT_HERSHEY_SIMPLEX,
                        0.45,
                        (255, 255, 0),
                        1,
                    )
                    tiles.append(np.pad(tile, ((0, 4), (0, 4), (0, 0))))
        row = np.hstack(tiles)
        rows.append(np.pad(row, ((0, 0), (0, per_row * 196 - row.shape[1]), (0, 0))))
    cv2.imwrite(
        str(sheet), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80]
    )
    return counts


def cartoon(videos: list[Path], work: Path, sheet: Path) -> dict:
    manifest = build(videos, work / "cartoon", "spongebob", avoid_hud=False)
    in_game = {v.name: cartoon_in_game(frames_of(v)) for v in videos}
    shots = contact_sheet(videos, sheet)
    return {
        "episodes": [
            {
                "episode": v.name,
                "frames": s["frames"],
                "shots": n,
                "non_game_frames": int((~in_game[v.name]).sum()),
            }
            for v, s, n in zip(videos, manifest["sources"], shots, strict=True)
        ],
        "splits": per_split(manifest),
        "kept_outside_game": kept_outside_game(manifest, videos, in_game),
        "dropped": manifest["dropped"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--footage", type=Path, default=ROOT / "bench-out" / "footage")
    parser.add_argument("--sheet", type=Path, default=ROOT / "docs" / "footage_shots.jpg")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    episodes = json.loads((args.footage / "manifest.json").read_text())["episodes"]
    videos = {
        kind: [args.footage / e["file"] for e in episodes if e["kind"] == kind]
        for kind in ("strategy", "cartoon")
    }
    with tempfile.TemporaryDirectory(prefix="vidcolor-bench-footage-") as work:
        result = {
            "strategy": strategy(videos["strategy"], Path(work)),
            "cartoon": cartoon(videos["cartoon"], Path(work), args.sheet),
        }
    report_json(result, args.json)


if __name__ == "__main__":
    main()
