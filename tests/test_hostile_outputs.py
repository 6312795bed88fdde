"""Issue 20's hostile outputs: files that must not be replaced, two processes on one output, and
what a failed or killed command leaves behind. Each case runs the real command (a child process
where the case is a race) and checks the user's files byte for byte.

A race is staged with the fault hook (vidcolor.faults): the child stops
itself with SIGSTOP at a known point of its work, the test does what another program would do
meanwhile, then lets the child go on with SIGCONT.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import default_signals, make_video, shapes_frame, write_photos

from vidcolor.video import probe

ROOT = Path(__file__).resolve().parents[1]
MINE = b"the user's own file, not vidcolor's\n"
STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def no_child_left() -> Iterator[None]:
    """A test that fails part-way still ends the children it started: a stopped one would
    otherwise wait for ever."""
    yield
    while STARTED:
        child = STARTED.pop()
        if child.poll() is None:
            child.kill()
            child.communicate()


def env(fault: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a vidcolor child: this checkout, one thread, and the fault hook."""
    dropped = ("VIDCOLOR_TEST_FAULT", "FORCE_COLOR", "TTY_COMPATIBLE")
    kept = {k: v for k, v in os.environ.items() if k not in dropped}
    kept |= {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}
    if fault:
        kept["VIDCOLOR_TEST_FAULT"] = fault
    return kept


def start(argv: list, fault: str | None = None, **extra: str) -> subprocess.Popen:
    """A vidcolor command as a child process, running on its own."""
    command = [sys.executable, "-m", "cli", *map(str, argv)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    child = subprocess.Popen(
        command, cwd=ROOT, env=env(fault, **extra), preexec_fn=default_signals, **pipes
    )
    STARTED.append(child)
    return child


def run(argv: list, fault: str | None = None, **extra: str) -> subprocess.CompletedProcess:
    """A vidcolor command as a child process, to its end."""
    command = [sys.executable, "-m", "cli", *map(str, argv)]
    return subprocess.run(
        command, cwd=ROOT, env=env(fault, **extra), capture_output=True, text=True, timeout=180
    )


def wait_stopped(child: subprocess.Popen, timeout: float = 120) -> None:
    """Until ``child`` has stopped itself (the hook's SIGSTOP); fails if it ended instead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            _, err = child.communicate()
            pytest.fail(f"the child ended ({child.returncode}) before its stop: {err}")
        state = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            return
        time.sleep(0.05)
    child.kill()
    pytest.fail("the child never stopped")


def finish(child: subprocess.Popen) -> tuple[int, str]:
    """Let a stopped child go on; its exit status and stderr."""
    child.send_signal(signal.SIGCONT)
    _, err = child.communicate(timeout=180)
    return child.returncode, err


def one_line(code: int, err: str, pattern: str) -> None:
    """A failure said in one line matching ``pattern`` (a regex), with no traceback."""
    assert code not in (0, None), err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.search(pattern, lines[0]), err


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    make_video(path, frames=48, width=64, height=48, cut_at=24)
    return path


def render_args(src: Path, dst: Path, model: Path, *more: str) -> list:
    return ["render", src, dst, "--model", model, "--batch-size", "2", "--device", "cpu", *more]


# --- finding 4: races between two processes on one output ----------------------------------


def test_4a_render_keeps_a_file_that_appeared_at_out_while_it_ran(
    clip: Path, tiny_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.mp4"
    child = start(render_args(clip, out, tiny_model), "STOP@0.5@render")
    wait_stopped(child)
    out.write_bytes(MINE)  # another program writes OUT meanwhile
    code, err = finish(child)
    one_line(code, err, rf"{re.escape(str(out))}: appeared while vidcolor was writing it")
    assert out.read_bytes() == MINE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no temporary file


def test_4a_folder_render_keeps_an_image_that_appeared_while_it_ran(
    tiny_model: Path, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    write_photos(photos, names=["astronaut", "coffee", "chelsea", "rocket"], size=40)
    out = tmp_path / "out"
    child = start(render_args(photos, out, tiny_model), "STOP@0.5@render")
    wait_stopped(child)  # two of the four are done: astronaut, chelsea
    (out / "rocket.png").write_bytes(MINE)
    code, err = finish(child)
    one_line(code, err, rf"{re.escape(str(out / 'rocket.png'))}: appeared while vidcolor")
    assert (out / "rocket.png").read_bytes() == MINE


def test_4a_image_render_keeps_a_file_that_appeared_at_out(
    tiny_model: Path, tmp_path: Path
) -> None:
    from vidcolor import stages
    from vidcolor.atomic import AppearedError
    from vidcolor.options import RenderOptions
    from vidcolor.render.streaming import Colorizer

    [photo] = write_photos(tmp_path / "photos", names=["coffee"], size=40)
    out = tmp_path / "out.png"

    class Racing(Colorizer):
        """Another program writes OUT while the model runs (after the command's checks)."""

        def colorize_rgb(self, rgb: np.ndarray) -> np.ndarray:
            out.write_bytes(MINE)
            return super().colorize_rgb(rgb)

    with pytest.raises(AppearedError, match=re.escape(f"{out}: appeared while")):
        stages.render(photo, out, RenderOptions(model=tiny_model), colorizer=Racing(tiny_model))
    assert out.read_bytes() == MINE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "photos"]


@pytest.mark.slow
@pytest.mark.parametrize("overwrite", [False, True])
def test_4c_a_second_render_to_the_same_out_is_refused_at_once(
    clip: Path, tiny_model: Path, tmp_path: Path, overwrite: bool
) -> None:
    out = tmp_path / "out.mp4"
    more = ["--overwrite"] if overwrite else []
    first = start(render_args(clip, out, tiny_model, *more), "STOP@0.5@render")
    wait_stopped(first)
    second = run(render_args(clip, out, tiny_model, *more))  # a wait would never end
    one_line(
        second.returncode,
        second.stderr,
        rf"{re.escape(str(out))}: another vidcolor process is writing it",
    )
    code, err = finish(first)
    assert code == 0, err
    assert probe(out).frame_count == 48
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # the lock is gone too


@pytest.mark.slow
def test_4c_a_second_folder_render_to_the_same_out_is_refused(
    tiny_model: Path, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    write_photos(photos, names=["astronaut", "coffee", "chelsea", "rocket"], size=40)
    out = tmp_path / "out"
    first = start(render_args(photos, out, tiny_model), "STOP@0.5@render")
    wait_stopped(first)
    second = run(render_args(photos, out, tiny_model, "--overwrite"))
    one_line(
        second.returncode,
        second.stderr,
        rf"{re.escape(str(out))}: another vidcolor process is writing it",
    )
    code, err = finish(first)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        "astronaut.png",
        "chelsea.png",
        "coffee.png",
        "rocket.png",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "photos"]


def test_4c_the_lock_a_killed_render_leaves_is_vidcolors_own_in_a_work_folder(
    tmp_path: Path,
) -> None:
    from vidcolor.locks import beside
    from vidcolor.ownership import check_removable

    work = tmp_path / "work"
    (work / "pipeline").mkdir(parents=True)
    (work / "pipeline" / "render.json").write_text('{"stage": "render"}')
    (work / "render").mkdir()
    (work / "render" / "ep.mp4").write_bytes(b"video")
    beside(work / "render" / "ep.mp4").write_bytes(b"")  # SIGKILL left it
    check_removable(work, tmp_path, "pipeline")  # raises if the lock is not vidcolor's


# --- finding 3: eval --plot FILE -------------------------------------------------------------


def test_3_eval_plot_refuses_an_existing_file_without_overwrite(clip: Path, tmp_path: Path) -> None:
    photo = tmp_path / "myphoto.png"
    photo.write_bytes(MINE)
    done = run(["eval", clip, clip, "--plot", photo])
    one_line(done.returncode, done.stderr, rf"{re.escape(str(photo))}: exists; use --overwrite")
    assert photo.read_bytes() == MINE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["myphoto.png"]


def test_3_eval_plot_overwrite_replaces_the_file(clip: Path, tmp_path: Path) -> None:
    plot = tmp_path / "curves.png"
    plot.write_bytes(MINE)
    done = run(["eval", clip, clip, "--plot", plot, "--overwrite"])
    assert done.returncode == 0, done.stderr
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]


def test_3_eval_plot_keeps_a_file_that_appeared_while_it_ran(clip: Path, tmp_path: Path) -> None:
    plot = tmp_path / "curves.png"
    child = start(["eval", clip, clip, "--plot", plot], "STOP@0.5@eval")
    wait_stopped(child)
    plot.write_bytes(MINE)
    code, err = finish(child)
    one_line(code, err, rf"{re.escape(str(plot))}: appeared while vidcolor was writing it")
    assert plot.read_bytes() == MINE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]


# --- finding 2: extract --overwrite replaces only the frames its record lists ----------------


def tree(folder: Path) -> dict[str, bytes | str]:
    """Every path under ``folder``: a file's bytes, a link's target, or "folder"."""
    seen: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            seen[rel] = f"link to {os.readlink(path)}"
        else:
            seen[rel] = "folder" if path.is_dir() else path.read_bytes()
    return seen


def test_2_extract_overwrite_keeps_a_user_file_named_like_a_frame(
    clip: Path, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "clip_000012.png").write_bytes(MINE)  # a painted key, named like frame 12
    (keys / "notes.txt").write_bytes(MINE)
    before = tree(tmp_path)
    done = run(["extract", clip, "-o", keys, "--every", "12", "--overwrite"])
    one_line(done.returncode, done.stderr, rf"{re.escape(str(keys / 'clip_000012.png'))}: .*not")
    assert tree(tmp_path) == before


def test_2_extract_overwrite_keeps_a_file_its_extraction_does_not_list(
    clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "frames"
    assert run(["extract", clip, "-o", out, "--every", "24"]).returncode == 0  # frames 0, 24
    (out / "clip_000012.png").write_bytes(MINE)  # the user's, among vidcolor's
    before = tree(tmp_path)
    done = run(["extract", clip, "-o", out, "--every", "12", "--overwrite"])
    one_line(done.returncode, done.stderr, rf"{re.escape(str(out / 'clip_000012.png'))}: .*not")
    assert tree(tmp_path) == before


def test_2_extract_keeps_a_frame_named_file_that_appeared_while_it_ran(
    clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "frames"
    child = start(["extract", clip, "-o", out, "--workers", "1"], "STOP@0.25@extract")
    wait_stopped(child)
    late = out / "clip_000040.png"
    late.write_bytes(MINE)
    code, err = finish(child)
    one_line(code, err, rf"{re.escape(str(late))}: .*not")
    assert late.read_bytes() == MINE
    assert not list(out.glob(".*.part-*"))


def test_2_pipeline_does_not_extract_through_a_link_out_of_its_work_folder(
    clip: Path, tmp_path: Path
) -> None:
    (tmp_path / "eps").mkdir()
    (tmp_path / "eps" / "clip.mp4").write_bytes(clip.read_bytes())
    recipe = tmp_path / "r.toml"
    recipe.write_text('inputs = ["eps/*.mp4"]\nwork = "work"\n[extract]\nevery = 24\n')
    first = run(["pipeline", "run", recipe])
    assert first.returncode == 0, first.stderr
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "clip_000012.png").write_bytes(MINE)
    frames = tmp_path / "work" / "frames" / "clip"
    for p in frames.iterdir():
        p.unlink()
    frames.rmdir()
    frames.symlink_to(keys)  # work/frames/clip is now the user's folder
    before = tree(keys)
    done = run(["pipeline", "run", recipe, "--set", "extract.every=12"])
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]  # after the stage's progress lines
    one_line(done.returncode, last, rf"{re.escape(str(frames))}: .*links out of")
    assert tree(keys) == before


# --- finding 14: a failed extraction leaves nothing behind -----------------------------------


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--size", "100000"], r"clip\.mp4: cannot scale its frames to 133333x100000"),
        (["--start", "100"], r"clip\.mp4: --start 100 is past its end \(2\.00 s\)"),
        # Rejected by the option itself once NaN and inf are (finding 6); here only what stays.
        (["--fps", "inf"], None),
    ],
    ids=["size-100000", "start-past-the-end", "fps-inf"],
)
def test_14_a_failed_extraction_into_a_new_folder_leaves_nothing(
    clip: Path, tmp_path: Path, options: list[str], said: str | None
) -> None:
    done = run(["extract", clip, "-o", tmp_path / "new" / "frames", *options])
    assert done.returncode != 0, done.stderr
    if said is not None:
        one_line(done.returncode, done.stderr, said)
    assert list(tmp_path.iterdir()) == []


def test_14_a_failed_extraction_into_an_empty_folder_leaves_it_empty(
    clip: Path, tmp_path: Path
) -> None:
    (tmp_path / "frames").mkdir()
    done = run(["extract", clip, "-o", tmp_path / "frames", "--size", "100000"])
    one_line(done.returncode, done.stderr, r"cannot scale its frames")
    assert tree(tmp_path) == {"frames": "folder"}


def test_14_a_manifest_that_cannot_grow_leaves_no_frame_without_its_row(tmp_path: Path) -> None:
    """A file-size limit that the small frames pass and the growing manifest does not: the
    frame whose row failed goes again, so --resume finds only listed frames and finishes."""
    import resource

    from vidcolor.data.extract import read_manifest

    video, out = tmp_path / "flat.mp4", tmp_path / "frames"
    make_video(video, frames=60, width=16, height=16)

    def small_files() -> None:
        default_signals()
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))

    command = [sys.executable, "-m", "cli", "extract", str(video), "-o", str(out)]
    done = subprocess.run(
        command,
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=180,
        preexec_fn=small_files,
    )
    one_line(done.returncode, done.stderr, r"manifest\.jsonl: cannot write \(")
    listed = {row["file"] for row in read_manifest(out / "manifest.jsonl")}
    assert 0 < len(listed) < 60 and {p.name for p in out.glob("*.png")} == listed
    resumed = run(["extract", video, "-o", out, "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert len(list(out.glob("*.png"))) == 60


# --- finding 13: what a killed render --keyframes leaves in the temporary folder -------------


@pytest.mark.slow
def test_13_the_next_keyframe_render_clears_a_killed_ones_spill(
    clip: Path, tiny_model: Path, tmp_path: Path
) -> None:
    keys, temp = tmp_path / "keys", tmp_path / "temp"
    keys.mkdir()
    temp.mkdir()
    key = shapes_frame(0, 64, 48, cut_at=24)
    cv2.imwrite(str(keys / "frame_0.png"), cv2.cvtColor(key, cv2.COLOR_RGB2BGR))
    # Beside it, what is not a killed run's spill: a live process's (pid 1), a dead one's that
    # holds a file of someone else's, a link, a file of the same prefix, another program's.
    live = temp / "vidcolor-keys-1-abcd1234"
    odd = temp / "vidcolor-keys-999999-abcd1234"
    for folder in (live, odd):
        folder.mkdir()
        (folder / "keys.bin").write_bytes(MINE)
    (odd / "notes.txt").write_bytes(MINE)
    (temp / "vidcolor-keys-999998-link").symlink_to(live)
    (temp / "vidcolor-keys-notes.txt").write_bytes(MINE)
    (temp / "other").mkdir()
    before = tree(temp)
    argv = render_args(clip, tmp_path / "a.mp4", tiny_model, "--keyframes", keys)
    killed = run(argv, "KILL@0.5@keys", TMPDIR=str(temp))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = set(tree(temp)) - set(before)
    assert any(re.fullmatch(r"vidcolor-keys-[^/]+/\w+\.bin", p) for p in left), left
    argv = render_args(clip, tmp_path / "b.mp4", tiny_model, "--keyframes", keys)
    done = run(argv, TMPDIR=str(temp))
    assert done.returncode == 0, done.stderr
    assert tree(temp) == before  # the killed run's spill gone, everything else as it was
