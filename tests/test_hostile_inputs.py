"""Hostile and careless inputs (issue 20, findings 5, 6, 11 and 12): image bombs, NaN and inf
options, working sizes beyond memory, and special files where a file is expected.

Each case ends as one line naming what was wrong and a non-zero exit, or as correct work;
none prints a traceback, hangs or changes the user's files. The commands run as real child
processes, under a hard timeout, and where a case could once take gigabytes, under a memory
limit (RLIMIT_AS), so a regression fails the test instead of the machine.
"""

from __future__ import annotations

import os
import re
import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_video, write_photos

from cli import main
from vidcolor.images import MAX_PIXELS, ImageError, declared_size, read_rgb
from vidcolor.options import ExtractOptions, RenderOptions, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--size",
    "32",
    "--base-width",
    "8",
    "--depth",
    "3",
    "--batch-size",
    "4",
    "--epochs",
    "1",
    "--workers",
    "0",
]
GIB = 1 << 30


def vidcolor(
    *args: object, timeout: float = 120, memory: int | None = None
) -> subprocess.CompletedProcess:
    """``vidcolor ARGS`` as a child process; ``memory``: its address-space limit in bytes. A
    command still running after ``timeout`` seconds is killed and fails the test (a hang)."""

    def limit() -> None:
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run(
        [sys.executable, "-m", "cli", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
    )


def one_line(result: object, pattern: str, code: int = 1) -> str:
    """The command exited ``code`` with exactly one line on stderr, vidcolor's error line,
    matching ``pattern``; no traceback."""
    err = result.stderr
    returncode = getattr(result, "returncode", getattr(result, "exit_code", None))
    assert returncode == code, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("vidcolor: error: ") and re.search(pattern, lines[0]), err
    return lines[0]


def tree(folder: Path) -> dict[str, bytes]:
    """Every regular file under ``folder`` by relative path, with its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    make_video(path, frames=12, width=64, height=48)
    return path


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    write_photos(folder, names=["astronaut", "coffee", "chelsea"], size=40)
    return folder


# --- finding 5: image bombs -----------------------------------------------------------------


def bomb_png(path: Path, side: int) -> Path:
    """A valid gray PNG of ``side`` x ``side`` black pixels in about side**2 / 1000 bytes: the
    compressed form of a block of zero rows, repeated (a full flush makes each copy stand
    alone), then the stream's end and its Adler-32 (for zeros: 1, and the length mod 65521)."""
    rows = next(k for k in (1000, 100, 10, 1) if side % k == 0)
    packer = zlib.compressobj(9)
    first = packer.compress(bytes((side + 1) * rows)) + packer.flush(zlib.Z_FULL_FLUSH)
    length = (side + 1) * side  # each row: a filter byte, then its pixels
    stream = first + first[2:] * (side // rows - 1) + b"\x03\x00"
    stream += struct.pack(">I", (length % 65521) << 16 | 1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")
    )
    return path


def test_the_bomb_is_a_real_png(tmp_path: Path) -> None:
    small = bomb_png(tmp_path / "small.png", 300)
    assert read_rgb(small).shape == (300, 300, 3) and not read_rgb(small).any()
    assert bomb_png(tmp_path / "b.png", 40000).stat().st_size < 2_000_000


@pytest.mark.parametrize(
    "suffix, params",
    [
        (".png", []),
        (".jpg", []),
        (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 90]),
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),
        (".bmp", []),
    ],
)
def test_headers_give_the_size_opencv_decodes(suffix: str, params: list[int]) -> None:
    """Baseline and progressive JPEG (SOF0, SOF2), lossy and lossless WebP (VP8, VP8L)."""
    rgb = np.random.default_rng(0).integers(0, 255, (37, 53, 3), np.uint8)
    ok, buf = cv2.imencode(suffix, rgb, params)
    assert ok and declared_size(buf.tobytes()) == (53, 37)
    assert cv2.imdecode(buf, cv2.IMREAD_COLOR).shape == (37, 53, 3)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".bmp"])
def test_a_header_cut_short_is_an_unreadable_image(tmp_path: Path, suffix: str) -> None:
    ok, buf = cv2.imencode(suffix, np.zeros((8, 8, 3), np.uint8))
    assert ok
    data = buf.tobytes()
    for cut in range(1, 30):  # within the header of each
        path = tmp_path / f"cut{cut}{suffix}"
        path.write_bytes(data[:cut])
        with pytest.raises(ImageError, match=re.escape(str(path))):
            read_rgb(path)


def patched(tmp_path: Path, suffix: str, side: int) -> Path:
    """A small real image whose header is changed to declare ``side`` x ``side``."""
    lossy = [cv2.IMWRITE_WEBP_QUALITY, 90]  # VP8: 14 bits of width and height
    _, buf = cv2.imencode(suffix, np.zeros((16, 16, 3), np.uint8), lossy)
    data = bytearray(buf.tobytes())
    if suffix == ".jpg":
        sof = data.index(b"\xff\xc0")
        data[sof + 5 : sof + 9] = struct.pack(">HH", side, side)
    elif suffix == ".webp":
        data[26:30] = struct.pack("<HH", side, side)
    else:
        data[18:26] = struct.pack("<ii", side, side)
    path = tmp_path / f"patched{suffix}"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("suffix, side", [(".jpg", 60000), (".webp", 16383), (".bmp", 50000)])
def test_a_jpeg_webp_or_bmp_bomb_is_refused_from_its_header(
    tmp_path: Path, suffix: str, side: int
) -> None:
    path = patched(tmp_path, suffix, side)
    with pytest.raises(ImageError, match=rf"patched{suffix}: declares {side}x{side} pixels"):
        read_rgb(path)


def test_render_refuses_an_image_bomb_in_one_line(tmp_path: Path, tiny_model: Path) -> None:
    bomb = bomb_png(tmp_path / "bomb.png", 40000)
    one_line(
        vidcolor("render", bomb, tmp_path / "x.png", "--model", tiny_model),
        rf"bomb\.png: declares 40000x40000 pixels, more than vidcolor reads \({MAX_PIXELS}",
    )
    assert not (tmp_path / "x.png").exists()


def test_render_of_a_30k_bomb_needs_no_gigabytes(tmp_path: Path, tiny_model: Path) -> None:
    bomb = bomb_png(tmp_path / "bomb30k.png", 30000)  # under OpenCV's own limit
    one_line(
        vidcolor("render", bomb, tmp_path / "x.png", "--model", tiny_model, memory=4 * GIB),
        r"bomb30k\.png: declares 30000x30000",
    )


@pytest.mark.slow
def test_a_folder_render_names_the_bomb_and_renders_the_rest(
    photos: Path, tmp_path: Path, tiny_model: Path
) -> None:
    bomb_png(photos / "bomb.png", 40000)
    before = tree(photos)
    result = vidcolor("render", photos, tmp_path / "out", "--model", tiny_model)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert re.search(r"warning: skipped .*bomb\.png: declares 40000x40000", result.stderr)
    assert "1 of 4 images could not be read" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "astronaut.png",
        "chelsea.png",
        "coffee.png",
    ]
    assert tree(photos) == before


@pytest.mark.slow
def test_train_refuses_a_bomb_in_its_data(photos: Path, tmp_path: Path) -> None:
    bomb_png(photos / "bomb.png", 40000)
    one_line(
        vidcolor("train", photos, "-o", tmp_path / "run", *TINY, memory=4 * GIB),
        r"bomb\.png: declares 40000x40000",
    )


def test_eval_refuses_a_bomb_in_a_folder(tmp_path: Path) -> None:
    truth, output = tmp_path / "truth", tmp_path / "output"
    for folder in (truth, output):
        folder.mkdir()
        for name in ("a.png", "b.png", "c.png"):
            cv2.imwrite(str(folder / name), np.full((24, 32, 3), 90, np.uint8))
    bomb_png(output / "b.png", 40000)
    one_line(vidcolor("eval", truth, output), r"b\.png: declares 40000x40000")


@pytest.mark.slow
def test_a_key_bomb_is_refused_before_it_is_decoded(
    clip: Path, tmp_path: Path, tiny_model: Path
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    bomb_png(keys / "3.png", 30000)
    one_line(
        vidcolor(
            "render",
            clip,
            tmp_path / "x.mp4",
            "--model",
            tiny_model,
            "--keyframes",
            keys,
            memory=4 * GIB,
        ),
        r"3\.png: 30000x30000, but the video is 64x48",
    )
    assert not (tmp_path / "x.mp4").exists()


# --- finding 6: NaN and inf pass click's float ranges ----------------------------------------


@pytest.mark.parametrize(
    "command, option, value",
    [
        ("extract", "--fps", "nan"),
        ("extract", "--fps", "inf"),
        ("extract", "--start", "nan"),
        ("render", "--adapt", "nan"),
        ("train", "--lr", "nan"),
        ("train", "--lr", "inf"),
        ("train", "--lambda-l1", "nan"),
        ("train", "--val-fraction", "nan"),
        ("train", "--checkpoint-minutes", "nan"),
        ("train", "--lambda-l1", "inf"),
    ],
)
def test_a_float_option_must_be_finite(
    tmp_path: Path, command: str, option: str, value: str
) -> None:
    args = {
        "extract": ["in.mp4", "-o", tmp_path / "out"],
        "render": ["in.mp4", "out.mp4"],
        "train": [tmp_path, "-o", tmp_path / "run"],
    }[command]
    result = CliRunner().invoke(main, [command, *map(str, args), option, value])
    assert result.exit_code == 2, result.output  # a usage error, not a crash
    assert f"Invalid value for '{option}': '{value}' is not a finite number" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_recipe_float_must_be_finite(clip: Path, tmp_path: Path, value: str) -> None:
    recipe = tmp_path / "p.toml"
    recipe.write_text(f'inputs = ["{clip}"]\nwork = "work"\n[extract]\nfps = {value}\n')
    one_line(
        vidcolor("pipeline", "run", recipe),
        rf"p\.toml:4: \[extract\] fps: {value} is not a finite number",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.toml"]


def test_the_library_options_refuse_nan_and_inf() -> None:
    nan, inf = float("nan"), float("inf")
    with pytest.raises(ValueError, match="lr must be a finite number, not nan"):
        TrainConfig(data="", lr=nan)
    with pytest.raises(ValueError, match="fps must be a finite number, not inf"):
        ExtractOptions(fps=inf)
    with pytest.raises(ValueError, match="adapt must be a finite number, not nan"):
        RenderOptions(adapt=nan)


# --- finding 12: special files where a file is expected --------------------------------------


@pytest.mark.slow
def test_train_refuses_a_fifo_in_its_data_at_once(photos: Path, tmp_path: Path) -> None:
    os.mkfifo(photos / "x.png")
    one_line(
        vidcolor("train", photos, "-o", tmp_path / "run", *TINY, timeout=60),
        r"x\.png: not a regular file",
    )


@pytest.mark.slow
def test_a_folder_render_names_a_fifo_and_renders_the_rest(
    photos: Path, tmp_path: Path, tiny_model: Path
) -> None:
    os.mkfifo(photos / "x.png")
    result = vidcolor("render", photos, tmp_path / "out", "--model", tiny_model, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert re.search(r"warning: skipped .*x\.png: not a regular file", result.stderr)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "astronaut.png",
        "chelsea.png",
        "coffee.png",
    ]


def test_render_refuses_a_fifo_image(tmp_path: Path, tiny_model: Path) -> None:
    os.mkfifo(tmp_path / "x.png")
    one_line(
        vidcolor(
            "render", tmp_path / "x.png", tmp_path / "y.png", "--model", tiny_model, timeout=60
        ),
        r"x\.png: not a regular file",
    )


@pytest.mark.parametrize(
    "args",
    [
        ("dataset", "build", "/dev/zero", "-o", "{tmp}/data"),
        ("probe", "/dev/zero"),
        ("render", "/dev/zero", "{tmp}/x.mp4"),
        ("extract", "{tmp}/fifo.mp4", "-o", "{tmp}/out"),
    ],
)
def test_a_device_or_fifo_is_no_video(tmp_path: Path, args: tuple[str, ...]) -> None:
    os.mkfifo(tmp_path / "fifo.mp4")
    args = tuple(a.format(tmp=tmp_path) for a in args)
    video = next(a for a in args if a.endswith(("zero", "fifo.mp4")))
    one_line(vidcolor(*args, timeout=60), rf"{re.escape(video)}: .*not a regular file")


@pytest.mark.parametrize("special", ["/dev/zero", "fifo.toml"])
def test_pipeline_refuses_a_special_file_as_its_recipe(tmp_path: Path, special: str) -> None:
    os.mkfifo(tmp_path / "fifo.toml")
    recipe = Path(special) if special.startswith("/") else tmp_path / special
    one_line(
        vidcolor("pipeline", "run", recipe, timeout=60, memory=4 * GIB),
        rf"{re.escape(str(recipe))}: not a regular file",
    )


def test_a_fifo_as_the_model_is_refused_at_once(clip: Path, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "model.pt")
    one_line(
        vidcolor("render", clip, tmp_path / "x.mp4", "--model", tmp_path / "model.pt", timeout=60),
        r"model\.pt: not a regular file",
    )
    assert not (tmp_path / "x.mp4").exists()


def test_a_fifo_as_a_run_folders_record_does_not_block_train(photos: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / "config.json")
    one_line(
        vidcolor("train", photos, "-o", run, *TINY, timeout=60),
        rf"{re.escape(str(run))}: holds files and is not",
    )
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]


# --- finding 11: working sizes beyond memory -------------------------------------------------


def test_a_render_size_beyond_memory_says_what_it_would_need(
    clip: Path, tmp_path: Path, tiny_model: Path
) -> None:
    one_line(
        vidcolor(
            "render",
            clip,
            tmp_path / "x.mp4",
            "--model",
            tiny_model,
            "--render-size",
            "4096",
            memory=6 * GIB,
        ),
        r"clip\.mp4: colorizing at 5461x4096 \(working size 4096\) needs about [\d.]+ GB "
        r"of memory, and [\d.]+ GB is free; use a smaller --render-size",
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_bundle_made_at_4096_says_what_it_would_need(
    clip: Path, tmp_path: Path, tiny_model: Path
) -> None:
    import torch

    bundle = torch.load(tiny_model, weights_only=True)
    bundle["size"] = 4096
    torch.save(bundle, tmp_path / "big.pt")
    one_line(
        vidcolor(
            "render", clip, tmp_path / "x.mp4", "--model", tmp_path / "big.pt", memory=6 * GIB
        ),
        r"clip\.mp4: colorizing at 5461x4096 \(working size 4096\) needs about [\d.]+ GB "
        r"of memory, and [\d.]+ GB is free; use a smaller --render-size",
    )
    assert not (tmp_path / "x.mp4").exists()
    ok = vidcolor("render", clip, tmp_path / "x.mp4", "--model", tiny_model, memory=6 * GIB)
    assert ok.returncode == 0 and (tmp_path / "x.mp4").is_file(), ok.stderr  # no false alarm
