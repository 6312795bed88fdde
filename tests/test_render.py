"""`vidcolor render` with a real tiny model on generated videos, images and folders."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result
from conftest import LOSSLESS, make_video, packets, write_photos
from skimage import data

from cli import main
from vidcolor.bundled import BUNDLED, bundled_model, model_file
from vidcolor.color import gray_rgb, rgb_to_lab_np
from vidcolor.metrics import psnr_np
from vidcolor.render.streaming import Colorizer, render_image, render_video
from vidcolor.train.checkpoint import BUNDLE_FORMAT, load_model
from vidcolor.video import probe


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def planes(path: Path) -> list[np.ndarray]:
    """Each frame's Y, U and V planes as decoded, stacked as rows: (H + 2 * ceil(H/2), W)."""
    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            rows = []
            for p in f.planes:
                a = np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width]
                rows.append(np.pad(a, ((0, 0), (0, f.width - p.width))))
            out.append(np.concatenate(rows))
    return out


def frame_times(path: Path) -> list:
    with av.open(str(path)) as c:
        return [f.pts * f.time_base for f in c.decode(video=0)]


def test_render_keeps_frames_timestamps_audio_and_luma(tiny_model: Path, tmp_path: Path) -> None:
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_video(src, frames=30, width=96, height=64, audio=True, cut_at=15)
    result = render_video(src, dst, Colorizer(tiny_model, "cpu", batch_size=4), LOSSLESS)
    assert result.frames == 30 and result.had_colour is None  # no preview: not checked
    assert frame_times(dst) == frame_times(src)
    assert packets(dst, "audio") == packets(src, "audio")
    assert probe(dst).duration == pytest.approx(probe(src).duration, abs=1e-3)
    for a, b in zip(planes(src), planes(dst), strict=True):
        assert np.array_equal(a[:64], b[:64])  # the luma, bit for bit
        assert not np.array_equal(a[64:], b[64:])  # new chroma


def test_batch_sizes_1_and_7_give_the_same_frames(tiny_model: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.mp4"
    make_video(src, frames=15, width=96, height=64)
    outs = []
    for batch in (1, 7):
        dst = tmp_path / f"out{batch}.mp4"
        render_video(src, dst, Colorizer(tiny_model, "cpu", batch_size=batch), LOSSLESS)
        outs.append(planes(dst))
    assert len(outs[0]) == len(outs[1]) == 15
    for a, b in zip(*outs, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # float summation order only


def test_odd_size_and_rotation(tiny_model: Path, tmp_path: Path) -> None:
    src, dst = tmp_path / "odd.webm", tmp_path / "out.mp4"
    make_video(src, frames=6, width=97, height=61, codec="libvpx-vp9")
    render_video(src, dst, Colorizer(tiny_model, "cpu"), LOSSLESS)
    out, ref = planes(dst), planes(src)
    assert out[0].shape == (62 + 2 * 31, 98)  # one copied edge row/column for 4:2:0 H.264
    for a, b in zip(ref, out, strict=True):
        assert np.array_equal(a[:61, :97], b[:61, :97])
    rot, rot_out = tmp_path / "rot.mp4", tmp_path / "rot_out.mp4"
    make_video(rot, frames=4, width=64, height=48, rotation=90)
    render_video(rot, rot_out, Colorizer(tiny_model, "cpu"), LOSSLESS)
    assert probe(rot_out).rotation == 90 and probe(rot_out).frame_count == 4


def test_sbs_preview_and_contact_sheet(tiny_model: Path, tmp_path: Path) -> None:
    colour, dst = tmp_path / "c.mp4", tmp_path / "sbs.mp4"
    make_video(colour, frames=12, width=64, height=48)
    result = render_video(
        colour, dst, Colorizer(tiny_model, "cpu"), LOSSLESS, preview="sbs", preview_frames=3
    )
    assert result.had_colour
    info = probe(dst)
    assert (info.width, info.height, info.frame_count) == (3 * 64, 48, 12)  # gray|new|original
    sheet = cv2.imread(str(tmp_path / "sbs_preview.png"))
    assert sheet.shape == (3 * 240, 3 * 320, 3)  # 3 frames, 3 panels of 320 px
    # black-and-white input: two panels
    bw, bw_out = tmp_path / "bw.mp4", tmp_path / "bw_sbs.mp4"
    with av.open(str(colour)) as c, av.open(str(bw), "w") as o:
        s = o.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for f in c.decode(video=0):
            gray = f.to_ndarray(format="gray")
            o.mux(s.encode(av.VideoFrame.from_ndarray(gray, format="gray")))
        o.mux(s.encode(None))
    result = render_video(bw, bw_out, Colorizer(tiny_model, "cpu"), LOSSLESS, preview="sbs")
    assert not result.had_colour and probe(bw_out).width == 2 * 64


class SmallGPU(torch.nn.Module):
    """A generator that fails as a GPU out of memory would on batches over 2."""

    def __init__(self, real: torch.nn.Module) -> None:
        super().__init__()
        self.real = real

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.real(x)


def test_cuda_out_of_memory_halves_the_batch(tiny_model: Path) -> None:
    """No frame may be lost; the prediction says which batch ran, and keeps nothing of it."""
    colorizer = Colorizer(tiny_model, "cpu", batch_size=8)
    ys = [np.full((48, 64), 60 + 10 * i, np.uint8) for i in range(8)]
    grays = [colorizer.gray(y, False) for y in ys]
    expected = colorizer.predict(grays, "bt601", False)
    colorizer.G = SmallGPU(colorizer.G)
    got = colorizer.predict(grays, "bt601", False)
    assert expected.ran == 8 and got.ran == 2 and colorizer.batch_size == 8
    assert got.cbcr.shape == expected.cbcr.shape
    assert (got.cbcr - expected.cbcr).abs().max() < 0.5


def test_stop_leaves_no_file(tiny_model: Path, tmp_path: Path) -> None:
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_video(src, frames=48)
    dst.write_bytes(b"an older render")

    def ctrl_c(n: int) -> None:  # as Ctrl-C arrives, in the main thread, mid-video
        if n == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        render_video(
            src, dst, Colorizer(tiny_model, "cpu", batch_size=2), LOSSLESS, on_frame=ctrl_c
        )
    assert dst.read_bytes() == b"an older render"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]


def test_still_image_and_folder_keep_their_lightness(tiny_model: Path, tmp_path: Path) -> None:
    photos = write_photos(tmp_path / "in", names=["coffee", "rocket"], size=80)
    render_image(photos[0], tmp_path / "one.png", Colorizer(tiny_model, "cpu"))
    before = cv2.cvtColor(cv2.imread(str(photos[0])), cv2.COLOR_BGR2RGB)
    after = cv2.cvtColor(cv2.imread(str(tmp_path / "one.png")), cv2.COLOR_BGR2RGB)
    assert after.shape == before.shape
    dL = np.abs(rgb_to_lab_np(after)[..., 0] - rgb_to_lab_np(before)[..., 0])
    assert np.percentile(dL, 99) < 1.0  # L kept; only gamut clipping and 8-bit rounding move it
    result = run("render", tmp_path / "in", tmp_path / "out", "--model", tiny_model)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["coffee.png", "rocket.png"]
    assert "--temporal" not in result.stderr  # on by default, and of no use here: no word of it
    asked = run("render", photos[1], tmp_path / "two.png", "--model", tiny_model, "--temporal")
    assert asked.exit_code == 0 and "--temporal applies to videos" in asked.stderr


def test_bad_inputs_one_line_and_no_output(tiny_model: Path, tmp_path: Path) -> None:
    def error(result: Result, needle: str) -> None:
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.output

    src = tmp_path / "in.mp4"
    make_video(src, frames=6)
    model = ("--model", tiny_model)
    error(run("render", src, tmp_path / "a.mp4", "--model", tmp_path / "none.pt"), "no such model")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    error(run("render", src, tmp_path / "b.mp4", "--model", junk), "not a vidcolor model")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    error(
        run("render", src, tmp_path / "c.mp4", "--model", tmp_path / "other.pt"),
        "not a vidcolor model",
    )
    torch.save({"format": BUNDLE_FORMAT, "model": 3}, tmp_path / "broken.pt")
    error(
        run("render", src, tmp_path / "c.mp4", "--model", tmp_path / "broken.pt"),
        "weights do not fit",
    )
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 5000)
    error(run("render", bad, tmp_path / "d.mp4", *model), "not a readable video")
    (tmp_path / "file").write_text("x")
    error(run("render", src, tmp_path / "file" / "e.mp4", *model), "not a folder")
    error(run("render", src, tmp_path / "nope" / "e.mp4", *model), "no such folder")
    error(
        run("render", src, tmp_path / "g.mp4", *model, "--preset", "bogus"),
        "--preset bogus: libx264 takes ultrafast",
    )
    (tmp_path / "f.mp4").write_text("keep")
    error(run("render", src, tmp_path / "f.mp4", *model), "--overwrite")
    assert (tmp_path / "f.mp4").read_text() == "keep"
    photo = write_photos(tmp_path / "p", names=["coffee"])[0]
    error(run("render", photo, tmp_path / "h.mp4", *model), "an image goes to an image file")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bad.mp4",
        "broken.pt",
        "f.mp4",
        "file",
        "in.mp4",
        "junk.pt",
        "other.pt",
        "p",
    ]


def test_cli_render_video_with_a_training_checkpoint(tiny_model: Path, tmp_path: Path) -> None:
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_video(src, frames=10, audio=True)
    ckpt = tiny_model.parent / "run" / "last.pt"  # a training checkpoint works as --model too
    result = run("render", src, dst, "--model", ckpt, "--batch-size", "3", "--preview-frames", "2")
    assert result.exit_code == 0, result.output
    assert probe(dst).frame_count == 10 and (tmp_path / "out_preview.png").is_file()


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_models(name: str) -> None:
    path = bundled_model(name)
    assert path == model_file(name) != model_file(Path.cwd() / name)  # a name, unless a path
    assert path.stat().st_size <= 20 * 2**20
    assert sum(bundled_model(n).stat().st_size for n in BUNDLED) <= 40 * 2**20
    assert f"`{path.name}`" in (path.parent / "README.md").read_text()  # its model card
    g, info = load_model(path)
    assert info["format"] == BUNDLE_FORMAT and info["size"] >= 128
    L = torch.linspace(-1, 1, 64 * 64).reshape(1, 1, 64, 64)
    assert g(L).shape == (1, 2, 64, 64)


def test_render_names_a_bundled_model(tmp_path: Path) -> None:
    [photo] = write_photos(tmp_path, names=["chelsea"], size=96)
    r = run("render", photo, tmp_path / "out.png", "--model", "imagenet")
    assert r.exit_code == 0, r.output
    out = cv2.cvtColor(cv2.imread(str(tmp_path / "out.png")), cv2.COLOR_BGR2RGB)
    truth = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    assert out.shape == truth.shape and psnr_np(out, truth) > psnr_np(gray_rgb(truth), truth)


@pytest.mark.parametrize("name", BUNDLED)
def test_a_bundled_model_colours_alike_at_other_working_sizes(name: str) -> None:
    """Four photographs it never saw, at its working size (224) and at two the U-Net does not
    pad (multiples of 64): a model trained on one padding fell below the gray input there."""
    pictures = [getattr(data, n)() for n in ("astronaut", "coffee", "chelsea", "rocket")]
    gray = np.mean([psnr_np(gray_rgb(p), p) for p in pictures])
    over_gray = {}
    for size in (224, 256, 320):
        colorizer = Colorizer(name, "cpu", size)
        psnrs = [psnr_np(colorizer.colorize_frame(p), p) for p in pictures]
        over_gray[size] = np.mean(psnrs) - gray
    assert min(over_gray.values()) > 0, over_gray
    assert over_gray[224] - min(over_gray.values()) < 0.75, over_gray


def test_failures_inside_threads_end_the_render_cleanly(tiny_model: Path, tmp_path: Path) -> None:
    """Errors in the decode or encode thread: one line, no output, and no hang (subprocess
    with a time limit, so a regression cannot stall the suite)."""
    import subprocess
    import sys

    # Two MPEG-TS segments of different sizes, joined byte for byte: the size changes mid-way.
    a, b, joined = tmp_path / "a.ts", tmp_path / "b.ts", tmp_path / "joined.ts"
    make_video(a, frames=24, width=64, height=48)
    make_video(b, frames=24, width=96, height=64)
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    cut = tmp_path / "cut.mp4"  # decoding stops half-way
    make_video(cut, frames=96, width=128, height=96, faststart=True)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size * 2 // 3])
    root = Path(__file__).resolve().parents[1]
    cases = [(joined, [], "size changes mid-stream"), (cut, [], "truncated")]
    if not torch.cuda.is_available():  # NVENC cannot open here: fails inside the encode thread
        cases.append((a, ["--codec", "h264_nvenc"], "refused these settings"))
    for src, extra, needle in cases:
        out = tmp_path / f"out_{src.stem}.mp4"
        cmd = [
            sys.executable,
            "-c",
            "from cli import main; main()",
            "render",
            str(src),
            str(out),
            "--model",
            str(tiny_model),
            "--batch-size",
            "2",
            *extra,
        ]
        done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], done.stderr
        assert not out.exists() and not list(tmp_path.glob(".*"))


def test_a_frame_is_colorized_as_render_colorizes_it(tiny_model: Path, tmp_path: Path) -> None:
    """eval DATA --model and score_model score colorize_frame: it must be what render ships."""
    [photo] = write_photos(tmp_path, names=["coffee"], size=96)  # 96x144
    rgb = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)[:96, :128]
    src, dst = tmp_path / "one.mp4", tmp_path / "out.mp4"
    with av.open(str(src), "w") as out:  # the photo as a one-frame, near-lossless video
        stream = out.add_stream("libx264", rate=24, options={"crf": "0"})
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode(None))
    colorizer = Colorizer(tiny_model, "cpu")
    render_video(src, dst, colorizer, LOSSLESS, temporal=False)
    with av.open(str(dst)) as c:
        rendered = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    frame = colorizer.colorize_frame(rgb).astype(int)
    still = colorizer.colorize_rgb(rgb).astype(int)
    assert np.abs(frame - rendered).mean() < 2.0, np.abs(frame - rendered).mean()
    assert np.abs(still - rendered).mean() > np.abs(frame - rendered).mean()


def test_each_video_starts_from_the_asked_batch(tiny_model: Path, tmp_path: Path) -> None:
    """A batch lowered for one video (out of memory) belongs to that video's render alone: the
    next in a pipeline starts from the batch asked for, and no frame of either is lost."""
    colorizer = Colorizer(tiny_model, "cpu", batch_size=8)
    src = tmp_path / "small.mp4"
    make_video(src, frames=10, width=64, height=48)
    real, colorizer.G = colorizer.G, SmallGPU(colorizer.G)
    first = render_video(src, tmp_path / "first.mp4", colorizer)
    assert first.batch_size == 2 and probe(tmp_path / "first.mp4").frame_count == 10
    colorizer.G = real
    result = render_video(src, tmp_path / "out.mp4", colorizer)
    assert result.batch_size == 8 and probe(tmp_path / "out.mp4").frame_count == 10


def test_the_command_checks_its_input_once(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks run once, in the library, before the model loads: not again by the command."""
    from vidcolor import stages

    calls = []
    real = stages.check_render
    monkeypatch.setattr(stages, "check_render", lambda *a: calls.append(a[0]) or real(*a))
    make_video(tmp_path / "in.mp4", frames=6, width=64, height=48)
    done = run("render", tmp_path / "in.mp4", tmp_path / "out.mp4", "--model", tiny_model)
    assert done.exit_code == 0, done.output
    assert calls == [tmp_path / "in.mp4"] and probe(tmp_path / "out.mp4").frame_count == 6
    missing = run("render", tmp_path / "no.mp4", tmp_path / "out2.mp4", "--model", tiny_model)
    assert missing.exit_code == 1 and len(missing.stderr.strip().splitlines()) == 1
