"""Real footage of the two kinds vidcolor is for, recorded from open games on a virtual display.

- strategy: The Battle for Wesnoth 1.16, AI against AI on two-player maps, with its HUD (top bar,
  minimap and unit panel on the right); the camera follows the AI's moves.
- cartoon: SuperTux 0.6, hand-drawn levels played by a scripted input (run right, jump on a seeded
  rhythm); Tux falls, dies and starts again as a player's Tux does.

Each episode is the game's window from launch (its loading screen included, as a real episode
has its titles) for ``--seconds``, recorded by Debian's ``ffmpeg`` (x11grab, H.264) from ``Xvfb``.
These tools make footage for benchmarks only; vidcolor never needs them. The footage stays out of
git (default ``bench-out/footage``), with ``manifest.json``: game, version, licence, map or level,
seed, duration. About 75 s an episode on the 2-core CPU, 15 minutes for the default twelve.

    python benchmarks/footage/make_footage.py [--out bench-out/footage] [--install]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SIZE = (1280, 720)
FPS = 30
PACKAGES = ["xvfb", "xauth", "ffmpeg", "xdotool", "wesnoth-1.16", "supertux"]
TOOLS = [
    "/usr/bin/Xvfb",
    "/usr/bin/ffmpeg",
    "/usr/bin/xdotool",
    "/usr/games/wesnoth-1.16",
    "/usr/games/supertux2",
]
WESNOTH_LICENCE = "GPL-2.0-or-later (code and art; Debian package wesnoth-1.16-data)"
SUPERTUX_LICENCE = (
    "GPL-3.0-or-later (code); levels GPL-2.0-or-later or CC-BY-SA-3.0, art "
    "GPL/CC-BY-SA (Debian package supertux-data, its copyright file)"
)
SUPERTUX_LEVELS = Path("/usr/share/games/supertux2/levels")


@dataclass(frozen=True)
class Episode:
    kind: str  # "strategy" or "cartoon"
    name: str  # the file's stem
    place: str  # Wesnoth scenario id, or SuperTux level path under SUPERTUX_LEVELS
    seed: int


MAPS = [
    "Hamlets",
    "The_Freelands",
    "Weldyn_Channel",
    "Sablestone_Delta",
    "Fallenstar_Lake",
    "Silverhead_Crossing",
]
LEVELS = [
    "world1/welcome_antarctica.stl",
    "world2/welcome_forest.stl",
    "world1/icy_valley.stl",
    "world2/beside_bushes.stl",
    "world1/frosted_fields.stl",
    "world2/walking_leaves.stl",
]
EPISODES = [
    Episode("strategy", f"wesnoth_{i}", f"multiplayer_{m}", 99 + i) for i, m in enumerate(MAPS, 1)
] + [Episode("cartoon", f"supertux_{i}", level, 199 + i) for i, level in enumerate(LEVELS, 1)]


def ensure_tools(install: bool) -> None:
    missing = [t for t in TOOLS if not Path(t).exists()]
    if missing and install and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
            check=True,
            env=env,
        )
        missing = [t for t in TOOLS if not Path(t).exists()]
    if missing:
        sys.exit(
            f"missing {', '.join(missing)}: run with --install (Debian's apt-get, as "
            f"root), or install {' '.join(PACKAGES)}"
        )


@contextlib.contextmanager
def virtual_display() -> Iterator[str]:
    """An Xvfb screen of SIZE on the first free display number; stopped on exit."""
    n = next(
        n
        for n in range(90, 200)
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists()
    )
    xvfb = subprocess.Popen(
        ["Xvfb", f":{n}", "-screen", "0", f"{SIZE[0]}x{SIZE[1]}x24", "-nolisten", "tcp"],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not Path(f"/tmp/.X11-unix/X{n}").exists():
            if xvfb.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"Xvfb :{n} did not start")
            time.sleep(0.1)
        yield f":{n}"
    finally:
        xvfb.terminate()
        xvfb.wait()


def game_command(episode: Episode, home: Path) -> list[str]:
    if episode.kind == "strategy":
        return [
            "/usr/games/wesnoth-1.16",
            "--multiplayer",
            "--controller",
            "1:ai",
            "--controller",
            "2:ai",
            "--scenario",
            episode.place,
            "--rng-seed",
            str(episode.seed),
            "--nosound",
            "--windowed",
            "--resolution",
            f"{SIZE[0]}x{SIZE[1]}",
            "--exit-at-end",
        ]
    config = home / ".local/share/supertux2/config"
    config.parent.mkdir(parents=True)
    # No pause when the window has no focus (a virtual display has no window manager to give it)
    config.write_text(f"""(supertux-config (pause_on_focusloss #f) (show_fps #f)
  (custom_mouse_cursor #f) (video (video "sdl") (window_width {SIZE[0]})
  (window_height {SIZE[1]})))\n""")
    return [
        "/usr/games/supertux2",
        "--window",
        "--geometry",
        f"{SIZE[0]}x{SIZE[1]}",
        "--renderer",
        "sdl",
        "--disable-sound",
        "--disable-music",
        str(SUPERTUX_LEVELS / episode.place),
    ]


def play(display: str, seed: int, stop: threading.Event) -> None:
    """A player's input for SuperTux: hold right and run, jump on a seeded rhythm, now and then
    a short step back. Key events go through xdotool to the window under the pointer."""
    rng = random.Random(seed)
    env = {**os.environ, "DISPLAY": display}

    def xdo(*args: str) -> None:
        subprocess.run(["xdotool", *args], env=env, check=False, stderr=subprocess.DEVNULL)

    xdo("mousemove", str(SIZE[0] // 2), str(SIZE[1] // 2))
    xdo("keydown", "Right", "Control_L")
    while not stop.wait(rng.uniform(0.4, 1.8)):
        if rng.random() < 0.1:
            xdo("keyup", "Right")
            xdo("keydown", "Left")
            stop.wait(rng.uniform(0.2, 0.6))
            xdo("keyup", "Left")
            xdo("keydown", "Right")
        xdo("keydown", "space")
        stop.wait(rng.uniform(0.1, 0.5))
        xdo("keyup", "space")
    xdo("keyup", "Right", "Control_L", "space")


def record(episode: Episode, display: str, out: Path, seconds: float) -> None:
    """Launch the game on ``display`` and record its screen to ``out`` (via a partial file)."""
    partial = out.with_name(f".{out.name}.partial.mp4")
    with tempfile.TemporaryDirectory(prefix="vidcolor-footage-") as home:
        env = {**os.environ, "DISPLAY": display, "HOME": home, "SDL_AUDIODRIVER": "dummy"}
        game = subprocess.Popen(
            game_command(episode, Path(home)),
            env=env,
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stop = threading.Event()
        player = None
        if episode.kind == "cartoon":
            time.sleep(3)  # the window must exist before the pointer is put over it
            player = threading.Thread(target=play, args=(display, episode.seed, stop))
            player.start()
        try:
            subprocess.run(
                [
                    "ffmpeg",
                    "-loglevel",
                    "error",
                    "-y",
                    "-f",
                    "x11grab",
                    "-framerate",
                    str(FPS),
                    "-video_size",
                    f"{SIZE[0]}x{SIZE[1]}",
                    "-draw_mouse",
                    "0",
                    "-i",
                    display,
                    "-t",
                    str(seconds),
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-crf",
                    "18",
                    "-pix_fmt",
                    "yuv420p",
                    str(partial),
                ],
                check=True,
            )
            if game.poll() is not None:  # the rest of the recording is an empty screen
                partial.unlink()
                sys.exit(
                    f"{episode.name}: {episode.place} ended before {seconds:g} s of "
                    "recording: choose another"
                )
        finally:
            stop.set()
            if player is not None:
                player.join()
            game.kill()
            game.wait()
    partial.replace(out)


def package_version(package: str) -> str:
    return (
        subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True
        ).stdout.strip()
        or "unknown"
    )


def describe(episode: Episode, path: Path) -> dict:
    """The manifest row of one recorded episode, its duration read back from the file."""
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = sum(1 for _ in c.demux(stream) if _.size)
        fps = float(stream.average_rate)
        size = (stream.codec_context.width, stream.codec_context.height)
    strategy = episode.kind == "strategy"
    return {
        "file": path.name,
        "kind": episode.kind,
        "game": "The Battle for Wesnoth" if strategy else "SuperTux",
        "package": "wesnoth-1.16" if strategy else "supertux",
        "version": package_version("wesnoth-1.16" if strategy else "supertux"),
        "licence": WESNOTH_LICENCE if strategy else SUPERTUX_LICENCE,
        ("map" if strategy else "level"): episode.place,
        "seed": episode.seed,
        "players": "AI (RCA) against AI" if strategy else "scripted input (seeded rhythm)",
        "frames": frames,
        "fps": fps,
        "seconds": round(frames / fps, 2),
        "size": list(size),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-out/footage"))
    parser.add_argument("--seconds", type=float, default=64.0, help="per episode")
    parser.add_argument("--kind", choices=["strategy", "cartoon"], help="only this kind")
    parser.add_argument("--install", action="store_true", help="apt-get what is missing")
    args = parser.parse_args()
    ensure_tools(args.install)
    args.out.mkdir(parents=True, exist_ok=True)
    episodes = [e for e in EPISODES if args.kind in (None, e.kind)]
    t0 = time.perf_counter()
    with virtual_display() as display:
        for i, episode in enumerate(episodes, 1):
            path = args.out / f"{episode.name}.mp4"
            if not path.exists():  # a finished episode is kept: the script resumes
                print(
                    f"[{i}/{len(episodes)}] {episode.kind} {episode.place} seed {episode.seed}",
                    flush=True,
                )
                record(episode, display, path, args.seconds)
    # The manifest lists every episode on disk, of both kinds, whichever were recorded now
    rows = [
        describe(e, args.out / f"{e.name}.mp4")
        for e in EPISODES
        if (args.out / f"{e.name}.mp4").exists()
    ]
    manifest = args.out / "manifest.json"
    partial = manifest.with_name(".manifest.json.partial")
    partial.write_text(
        json.dumps(
            {
                "episodes": rows,
                "recorder": {
                    "ffmpeg": package_version("ffmpeg"),
                    "xvfb": package_version("xvfb"),
                    "capture": f"x11grab {SIZE[0]}x{SIZE[1]} {FPS} fps, libx264 ultrafast crf 18",
                },
            },
            indent=1,
        )
        + "\n"
    )
    partial.replace(manifest)
    print(f"{len(rows)} episodes in {args.out} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
