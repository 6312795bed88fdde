"""`vidcolor dataset build`: scene-aware training sets from episodes, in memory-mapped shards.

One decode pass per video (the scan): the reader's tap feeds the shot detector every frame,
while frames sampled every ``stride`` seconds go, at a little above storage size, to a candidate
file on disk (memory stays flat however long the video). Once the video is scanned, its whole
run of candidates tells where the letterbox bars are (never lit) and where a static HUD is (never
changes); candidates next to a cut, dark, blown out, greyscale or near-duplicate are dropped,
long scenes are capped, and each scene (or episode) is assigned to one split.

The set is built in a hidden work folder beside the target and renamed into place when
complete. A finished scan is kept there, so a build that was interrupted resumes from the
next video when run again with the same settings; anything else restarts it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vidcolor import __version__
from vidcolor.atomic import atomic_path
from vidcolor.dataset import DATASET_FORMAT, is_greyscale, load_dataset_manifest, open_shard
from vidcolor.errors import UserError
from vidcolor.options import BuildOptions
from vidcolor.ownership import (
    check_removable,
    claim,
    is_empty,
    kind_of,
    remove_file,
    remove_tree,
)
from vidcolor.scenes import TAP_SIZE, ShotDetector, scene_of
from vidcolor.video import CorruptVideoError, VideoError, VideoReader

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; two builds into one folder are on the user
    fcntl = None  # type: ignore[assignment]


class BuildError(UserError):
    """The dataset cannot be built as asked."""


@dataclass(frozen=True)
class Preset:
    size: int  # training crop size; frames are stored with a short side ~15% larger
    stride: float  # seconds between candidate frames
    per_scene: int  # at most this many frames from one scene
    margin: int  # frames skipped on each side of a cut (transitions, motion blur)
    duplicate: float  # mean |difference| of 16x16 gray thumbnails below which frames are twins
    # Shot detection (PySceneDetect's AdaptiveDetector): a frame's content change must be
    # ``adaptive_threshold`` times its neighbours' average and at least ``min_content``.
    adaptive_threshold: float = 3.0
    min_content: float = 15.0


# fmt: off
PRESETS = {
    "spongebob": Preset(size=224, stride=0.5, per_scene=24, margin=6, duplicate=4.0),
    # A camera jump over one map changes less than a cut between shots, and a static HUD
    # dilutes it further: a lower floor and ratio (benchmarks/bench_cuts.py measures them).
    "sc2": Preset(size=480, stride=1.0, per_scene=12, margin=4, duplicate=3.0,
                  adaptive_threshold=2.5, min_content=5.0),
    "generic": Preset(size=256, stride=0.5, per_scene=16, margin=6, duplicate=4.0),
}
# fmt: on
SPLITS = (("train", 0.8), ("val", 0.1), ("test", 0.1))
STORE = 1.15  # stored short side / crop size: room for the trainer's scale jitter
HEADROOM = 1.3  # candidates are scanned this much larger, so bars and HUD can be cut away
LETTERBOX_LEVEL = 16  # a row or column never brighter than this in any candidate is a bar
HUD_STD = 2.5  # gray levels: a pixel that varies less than this over the video is static
HUD_MIN_SAMPLES = 8  # candidates needed before anything is called static
DARK, BLOWN_OUT = 20, 235  # mean levels below / above which a frame cannot teach colour
HUD_MIN_AREA = 0.005  # of the picture: smaller static specks are not a HUD
HUD_MAX_AREA = 0.5  # more than this static means the picture hardly moved: no HUD claimed


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def usable(rgb: np.ndarray) -> str | None:
    """Why a frame cannot teach colour, or None when it can."""
    mean = float(rgb.mean())
    if mean < DARK:
        return "dark"
    if mean > BLOWN_OUT:
        return "blown out"
    if is_greyscale(rgb):
        return "greyscale"
    return None


def _thumb(rgb: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (16, 16), interpolation=cv2.INTER_AREA).astype(np.int16)


def _split_of(seed: int, episode: int, scene: int | None) -> str:
    """A deterministic split for a scene (or, with ``scene`` None, a whole episode)."""
    key = (seed, episode) if scene is None else (seed, episode, scene)
    u = np.random.default_rng(key).random()
    acc = 0.0
    for name, share in SPLITS:
        acc += share
        if u < acc:
            return name
    return SPLITS[-1][0]


Box = tuple[int, int, int, int]  # x, y, width, height


def letterbox(brightest: np.ndarray) -> Box:
    """The picture inside the bars, from the per-pixel maximum over the whole video: rows and
    columns at the edges that were never lit are bars. Judged on the whole video, not frame by
    frame, so a dark frame or a fade cannot shrink the picture."""
    h, w = brightest.shape
    rows = np.flatnonzero(brightest.max(axis=1) > LETTERBOX_LEVEL)
    cols = np.flatnonzero(brightest.max(axis=0) > LETTERBOX_LEVEL)
    if rows.size == 0 or cols.size == 0:
        return 0, 0, w, h
    # Where there is a bar, step a little further in: compression smears the bar's edge into
    # a row or two of neither bar nor picture.
    step_y, step_x = max(2, h // 100), max(2, w // 100)
    top = rows[0] + step_y if rows[0] > 0 else 0
    bottom = rows[-1] + 1 - step_y if rows[-1] < h - 1 else h
    left = cols[0] + step_x if cols[0] > 0 else 0
    right = cols[-1] + 1 - step_x if cols[-1] < w - 1 else w
    if bottom <= top or right <= left:
        return 0, 0, w, h
    return int(left), int(top), int(right - left), int(bottom - top)


def static_regions(std: np.ndarray, samples: int) -> tuple[list[Box], np.ndarray]:
    """HUD boxes (in ``std``'s pixels) and the HUD's mask: connected areas whose temporal
    standard deviation stayed under ``HUD_STD``, closed and with their holes filled (a
    minimap's moving marker is still HUD). Nothing when there are too few samples, or when
    most of the picture is static (a still shot, not a HUD)."""
    mask = (std < HUD_STD).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    keep = np.zeros_like(mask)
    if samples < HUD_MIN_SAMPLES or mask.mean() > HUD_MAX_AREA:
        return [], keep
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    boxes = []
    for k in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[k])
        if area >= HUD_MIN_AREA * mask.size:
            boxes.append((x, y, w, h))
            keep[labels == k] = 1
    keep = cv2.morphologyEx(keep, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    outside = np.pad(keep, 1)  # flood the background from the border: what it misses is a hole
    cv2.floodFill(outside, None, (0, 0), 1)
    keep |= (outside[1:-1, 1:-1] == 0).astype(np.uint8)
    return boxes, cv2.dilate(keep, np.ones((3, 3), np.uint8))  # a pixel of margin


def largest_free_box(blocked: np.ndarray) -> Box | None:
    """The largest axis-aligned rectangle with no blocked pixel (histogram method, one pass),
    or None when every pixel is blocked."""
    rows, cols = blocked.shape
    heights = np.zeros(cols + 1, np.int64)
    best: tuple[int, Box | None] = (0, None)
    for y in range(rows):
        heights[:cols] = np.where(blocked[y], 0, heights[:cols] + 1)
        stack: list[int] = []
        for x in range(cols + 1):
            while stack and heights[stack[-1]] >= heights[x]:
                h = int(heights[stack.pop()])
                left = stack[-1] + 1 if stack else 0
                if h * (x - left) > best[0]:
                    best = (h * (x - left), (left, y - h + 1, x - left, h))
            stack.append(x)
    return best[1]


@dataclass
class Scan:
    """What one decode pass of a video leaves (besides its files): candidate rows, cuts,
    candidate shape, and the picture inside any letterbox bars."""

    rows: list[dict]
    cuts: list[int]
    shape: tuple[int, int]  # candidate (height, width)
    frames: int  # frames decoded
    source: dict  # path, sha256, size and mtime of the video
    picture: Box  # inside the bars, candidate pixels
    samples: int  # candidates in the temporal statistics (neither dark nor blown out)
    warning: str | None = None  # e.g. a truncated file: what was decoded is used
    transitions: list[tuple[int, int]] = field(default_factory=list)  # fades, dissolves


SMALL_WIDTH = 64  # the small copy of each candidate that the checks look at


def _scan(video: Path, preset: Preset, base: Path, on_frames: Callable[[int], None]) -> Scan:
    """Decode once. The shot detector sees every frame; each candidate (upright, short side
    ``size`` x STORE x HEADROOM) goes to ``base``.u8, a 64-wide copy of it to ``base``.small.u8,
    and its quarter-size gray into running statistics (``base``.std.npy) that find a static HUD.
    All per-candidate work happens here, where it overlaps the decoder's threads."""
    short = round(preset.size * STORE * HEADROOM)
    rows: list[dict] = []
    seen = 0

    def tap(index: int, seconds: float, bgr: np.ndarray) -> None:
        nonlocal seen
        detector.push(index, bgr, seconds)
        seen += 1
        if seen % 64 == 0:
            on_frames(64)

    try:
        stat = video.stat()
        source = {"source": str(video.resolve()), "sha256": file_hash(video),
                  "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}  # fmt: skip
    except OSError as e:
        raise VideoError(f"{video}: {e.strerror or e}") from None
    stats = RunningStd()
    warning = None
    brightest: np.ndarray | None = None
    shape = (0, 0)
    with VideoReader(video, fps=1 / preset.stride, autorotate=True, size=short,
                     tap_size=TAP_SIZE, tap=tap, prefetch=8) as reader:  # fmt: skip
        detector = ShotDetector(reader.info.frame_rate,
                                adaptive_threshold=preset.adaptive_threshold,
                                min_content=preset.min_content)  # fmt: skip
        source["width"], source["height"] = reader.info.display_size
        if min(reader.info.width, reader.info.height) <= short * 1.1:
            reader.size = None  # a small source is kept as it is: no upscaling, no cost
        with open(f"{base}.u8", "wb") as out, open(f"{base}.small.u8", "wb") as small_out:
            frames = iter(reader)
            while True:
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                except CorruptVideoError as e:  # keep what decoded, and say so
                    if not rows:
                        raise
                    warning = f"{e}: the frames before it are used"
                    break
                img = frame.image
                if rows and img.shape[:2] != shape:  # the size changed mid-stream
                    img = cv2.resize(img, shape[::-1], interpolation=cv2.INTER_AREA)
                h, w = shape = img.shape[:2]
                out.write(img.tobytes())
                rows.append({"frame": frame.index, "pts": frame.pts,
                             "time": round(frame.time, 6)})  # fmt: skip
                flat = img.reshape(h, w * 3)  # OpenCV's max: numpy's over channels is 20x slower
                brightest = flat.copy() if brightest is None else cv2.max(brightest, flat)
                small = cv2.resize(img, (SMALL_WIDTH, max(1, SMALL_WIDTH * h // w)),
                                   interpolation=cv2.INTER_AREA)  # fmt: skip
                small_out.write(small.tobytes())
                if DARK <= small.mean() <= BLOWN_OUT:  # fades would hide a HUD
                    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
                    quarter = (max(1, w // 4), max(1, h // 4))
                    stats.add(cv2.resize(gray, quarter, interpolation=cv2.INTER_AREA))
            for f in (out, small_out):
                f.flush()
                os.fsync(f.fileno())
    on_frames(seen % 64)
    warning = "; ".join([*([warning] if warning else []), *reader.notes]) or None
    picture = (
        (0, 0, 0, 0) if brightest is None else letterbox(brightest.reshape(*shape, 3).max(axis=2))
    )
    std = stats.std()
    np.save(f"{base}.std.npy", np.zeros((0, 0)) if std is None else std.astype(np.float32))
    cuts = detector.cuts()
    return Scan(rows, cuts, shape, seen, source, picture, stats.n, warning, detector.transitions)


def _candidates(store: Path, scan: Scan) -> np.ndarray:
    h, w = scan.shape
    return np.memmap(store, np.uint8, "r", shape=(len(scan.rows), h, w, 3))


class RunningStd:
    """Per-pixel standard deviation over a stream of images (Welford), in constant memory."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def add(self, image: np.ndarray) -> None:
        x = image.astype(np.float64)
        if self.mean is None:
            self.mean, self.m2 = np.zeros_like(x), np.zeros_like(x)
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def std(self) -> np.ndarray | None:
        return None if self.m2 is None else np.sqrt(self.m2 / self.n)


def _hud(std: np.ndarray, samples: int, box: Box, shape: tuple[int, int]
         ) -> tuple[list[Box], np.ndarray | None]:  # fmt: skip
    """Static HUD boxes (candidate pixels) inside ``box``, from the whole frame's quarter-size
    temporal statistics, with their mask over ``box`` at that size."""
    if std.size == 0:
        return [], None
    x, y, w, h = box
    sx, sy = shape[1] / std.shape[1], shape[0] / std.shape[0]
    x0, y0 = round(x / sx), round(y / sy)
    inside = std[y0 : y0 + max(1, round(h / sy)), x0 : x0 + max(1, round(w / sx))]
    boxes, mask = static_regions(inside, samples)
    scaled = [(x + round(a * sx), y + round(b * sy), round(c * sx), round(d * sy))
              for a, b, c, d in boxes]  # fmt: skip
    return scaled, mask


def _scaled(box: Box, factor: float) -> list[int]:
    return [round(v * factor) for v in box]


def _fit(box: Box, aspect: float) -> Box:
    """The centred part of ``box`` with width/height ``aspect``."""
    x, y, w, h = box
    if w / h > aspect:
        nw = max(1, round(h * aspect))
        return x + (w - nw) // 2, y, nw, h
    nh = max(1, round(w / aspect))
    return x, y + (h - nh) // 2, w, nh


def frame_total(videos: list[Path]) -> int:
    """Frames in all ``videos`` as their containers state them (for a progress bar)."""
    from vidcolor.video import probe

    total = 0
    for v in videos:
        with contextlib.suppress(VideoError):
            total += probe(v).frame_count or 0
    return total


def build_dataset(
    videos: list[Path],
    out: Path,
    options: BuildOptions | None = None,
    overwrite: bool = False,
    on_frames: Callable[[int], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> dict:
    """Build a dataset from ``videos`` into ``out``; returns the manifest. A video that cannot
    be read is named in ``manifest["skipped"]`` and the rest are built. ``on_frames(n)``
    hears of decoded frames, ``on_note`` of things worth a line (a resumed build)."""
    options = options or BuildOptions()
    options.check()
    note = on_note or (lambda line: None)
    out = Path(os.path.abspath(out))  # "." has no name to build a hidden folder beside
    _check_target(out, overwrite)
    unique: list[Path] = []
    for v in videos:  # one file named twice would be two episodes, its scenes in two splits
        if any(os.path.abspath(v) == os.path.abspath(u) for u in unique):
            note(f"{v}: given twice; used once")
        else:
            unique.append(v)
    work = out.with_name(f".{out.name}.partial")
    plan = {"vidcolor": __version__, "options": asdict(options),
            "settings": asdict(PRESETS[options.preset]), "storage": [STORE, HEADROOM],
            "videos": [os.path.abspath(v) for v in unique]}  # fmt: skip
    claim(work, "dataset-partial", "an unfinished dataset build")
    with open(work / "lock", "w") as lock:
        if fcntl is not None:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BuildError(f"{out}: another build is writing it") from None
        _prepare(work, plan, note)
        try:
            manifest = _build(unique, work, options, on_frames or (lambda n: None))
        except BuildError:
            remove_tree(work, out.parent, "dataset-partial")  # nothing to resume
            raise
        except OSError as e:  # a full disk: keep what can resume, drop what was half-written
            _drop_unfinished(work)
            kept = sum(p.stat().st_size for p in work.iterdir()) / 1e6
            raise BuildError(f"{work}: cannot write ({e.strerror or e}); {kept:.1f} MB of "
                             "finished scans kept there: free some space and run the same "
                             "command again to resume") from None  # fmt: skip
        for leftover in [*work.glob("scan_*"), work / "plan.json"]:
            remove_file(leftover, work)
    _put_in_place(work, out)
    return manifest


def _check_target(out: Path, overwrite: bool) -> None:
    """Before any work: ``out`` is new, or --overwrite asks to replace an empty folder or a
    dataset that holds nothing vidcolor did not put there."""
    if not out.exists():
        return
    if not overwrite:
        raise BuildError(f"{out}: exists; use --overwrite to replace it")
    here = Path(os.path.abspath(Path.cwd()))
    if out == here or out in here.parents:
        raise BuildError(f"{out}: the current folder (or one above it); give a folder inside it")
    if is_empty(out):
        return
    if kind_of(out) != "dataset":
        raise BuildError(f"{out}: not a vidcolor dataset; --overwrite replaces only datasets")
    check_removable(out, out.parent, "dataset")


def _put_in_place(work: Path, out: Path) -> None:
    """Rename the finished build to ``out``; an older dataset there goes only once the new one
    is in place. The lock is released (closed) before the rename: Windows cannot rename a
    folder with an open file in it."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(work, out)
    remove_file(out / "lock", out)
    remove_tree(old, out.parent, "dataset")


def _drop_unfinished(work: Path) -> None:
    """Delete what an interrupted write left half done in the build folder: the files of scans
    not finished (no .json yet), shards and manifest; finished scans stay to resume from."""
    finished = {p.name.removesuffix(".json") for p in work.glob("scan_*.json")}
    for p in work.iterdir():
        if p.name in ("lock", "plan.json") or p.name.split(".")[0] in finished:
            continue
        remove_file(p, work)


def _prepare(work: Path, plan: dict, note: Callable[[str], None]) -> None:
    """Keep the finished scans of an interrupted build of the same plan; clear anything else."""
    try:
        same = json.loads((work / "plan.json").read_text()) == plan
    except (OSError, ValueError):
        same = False
    done = sorted(work.glob("scan_*.json")) if same else []
    if done:
        note(f"resuming an interrupted build: {len(done)} of {len(plan['videos'])} videos "
             "already scanned")  # fmt: skip
    for item in work.iterdir():
        if item.name != "lock" and not (same and item.name.startswith("scan_")):
            remove_file(item, work)
    (work / "plan.json").write_text(json.dumps(plan))


def _load_scan(base: Path, video: Path) -> Scan | None:
    """A finished scan of ``video`` from an interrupted build, if the video is unchanged and
    its files are whole."""
    try:
        scan = Scan(**json.loads(Path(f"{base}.json").read_text()))
        stat = video.stat()
        scan.shape = tuple(scan.shape)  # type: ignore[assignment]
        scan.picture = tuple(scan.picture)  # type: ignore[assignment]
        h, w = scan.shape
        sizes = (Path(f"{base}.u8").stat().st_size, Path(f"{base}.small.u8").stat().st_size)
        np.load(f"{base}.std.npy")
    except (OSError, ValueError, TypeError):
        return None
    n = len(scan.rows)
    want = (n * h * w * 3, n * max(1, SMALL_WIDTH * h // max(1, w)) * SMALL_WIDTH * 3)
    same = (scan.source["bytes"], scan.source["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns)
    return scan if same and sizes == want else None


def _build(videos: list[Path], work: Path, options: BuildOptions,
           on_frames: Callable[[int], None]) -> dict:  # fmt: skip
    preset = PRESETS[options.preset]
    shape: tuple[int, int] | None = None  # the dataset's stored frame shape, set by the first
    kept: dict[str, list[tuple[Path, Scan, int, Box, dict]]] = {name: [] for name, _ in SPLITS}
    skipped: list[str] = []
    warnings: list[str] = []
    sources: list[dict] = []
    dropped = {"near a cut": 0, "in a fade or dissolve": 0, "dark": 0, "blown out": 0,
               "greyscale": 0, "duplicate": 0, "over the scene cap": 0}  # fmt: skip
    for episode, video in enumerate(videos):
        base = work / f"scan_{episode}"
        scan = _load_scan(base, video)
        if scan is None:
            try:
                scan = _scan(video, preset, base, on_frames)
            except VideoError as e:  # the video's fault; a write error in the work folder is not
                skipped.append(str(e))
                continue
            with atomic_path(Path(f"{base}.json")) as tmp:
                tmp.write_text(json.dumps(asdict(scan)))
        else:
            on_frames(scan.frames)
        if not scan.rows:
            skipped.append(f"{video}: no frames")
            continue
        if scan.warning:
            warnings.append(scan.warning)
        store = Path(f"{base}.u8")
        rows, cuts = scan.rows, scan.cuts
        box = scan.picture
        x, y, w, h = box
        sh, sw = scan.shape
        small_shape = (len(rows), max(1, SMALL_WIDTH * sh // sw), SMALL_WIDTH, 3)
        smalls = np.memmap(f"{base}.small.u8", np.uint8, "r", shape=small_shape)
        s = SMALL_WIDTH / sw  # the picture box in the small copies
        sx0, sy0 = min(SMALL_WIDTH - 1, int(x * s)), min(smalls.shape[1] - 1, int(y * s))
        sx1, sy1 = max(sx0 + 1, round((x + w) * s)), max(sy0 + 1, round((y + h) * s))
        thumbs: dict[int, np.ndarray] = {}  # candidate -> 16x16 gray, for the duplicate check
        for k, row in enumerate(rows):
            near = bisect_left(cuts, row["frame"] - preset.margin)
            if near < len(cuts) and abs(cuts[near] - row["frame"]) <= preset.margin:
                dropped["near a cut"] += 1
                continue
            if any(a <= row["frame"] <= b for a, b in scan.transitions):
                dropped["in a fade or dissolve"] += 1
                continue
            small = np.ascontiguousarray(smalls[k, sy0:sy1, sx0:sx1])
            reason = usable(small)  # the small picture's mean and colour spread are enough
            if reason:
                dropped[reason] += 1
                continue
            thumbs[k] = _thumb(small)
        del smalls
        hud, mask = _hud(np.load(f"{base}.std.npy"), scan.samples, box, scan.shape)
        if options.avoid_hud and hud and mask is not None:
            free = largest_free_box(mask)
            if free is None or free[2] * free[3] < 0.25 * mask.size:
                warnings.append(f"{video}: its static overlay leaves too little of the picture "
                                "clear to keep it out; frames stored whole")  # fmt: skip
            else:
                fx, fy, fw, fh = free
                sx, sy = w / mask.shape[1], h / mask.shape[0]
                box = (x + round(fx * sx), y + round(fy * sy), round(fw * sx), round(fh * sy))
        if shape is None and thumbs:  # the first video with frames sets the dataset's shape
            s = round(preset.size * STORE) / min(box[2], box[3])
            shape = (round(box[3] * s), round(box[2] * s))
        if shape is not None:
            box = _fit(box, shape[1] / shape[0])
        to_source = scan.source["width"] / scan.shape[1]  # boxes in the video's own pixels
        sources.append({**scan.source, "episode": episode, "frames": scan.frames, "cuts": cuts,
                        "picture": _scaled(box, to_source),
                        "hud": [_scaled(b, to_source) for b in hud]})  # fmt: skip
        by_scene: dict[int, list[int]] = {}
        for k in thumbs:
            by_scene.setdefault(scene_of(rows[k]["frame"], cuts), []).append(k)
        for scene, ks in sorted(by_scene.items()):
            picked, seen = [], []
            for k in ks:
                if any(np.abs(thumbs[k] - o).mean() < preset.duplicate for o in seen):
                    dropped["duplicate"] += 1
                    continue
                picked.append(k)
                seen.append(thumbs[k])
            if len(picked) > preset.per_scene:  # evenly through the scene, not its start
                keep = np.linspace(0, len(picked) - 1, preset.per_scene).round().astype(int)
                dropped["over the scene cap"] += len(picked) - preset.per_scene
                picked = [picked[i] for i in sorted(set(keep.tolist()))]
            by_episode = options.split_by == "episode"
            split = _split_of(options.seed, episode, None if by_episode else scene)
            row_source = {"source": scan.source["source"], "sha256": scan.source["sha256"],
                          "episode": episode}  # fmt: skip
            for k in picked:
                kept[split].append((store, scan, k, box, {**rows[k], **row_source, "scene": scene}))
    if shape is None or not any(kept.values()):
        why = "; ".join(skipped) or "every frame was dropped (dark, greyscale, duplicate ...)"
        raise BuildError(f"no usable frames: {why}")
    manifest_frames, shards = [], {}
    for split, items in kept.items():
        if not items:
            continue
        name = f"{split}.npy"
        array = _new_shard(work / name, (len(items), *shape, 3))
        opened: dict[Path, np.ndarray] = {}
        for offset, (store, scan, k, (bx, by, bw, bh), row) in enumerate(items):
            if store not in opened:
                opened[store] = _candidates(store, scan)
            picture = np.asarray(opened[store][k, by : by + bh, bx : bx + bw])
            interpolation = cv2.INTER_AREA if bh > shape[0] else cv2.INTER_CUBIC
            array[offset] = cv2.resize(picture, shape[::-1], interpolation=interpolation)
            manifest_frames.append({**row, "split": split, "shard": name, "offset": offset})
        array.flush()
        del array, opened
        shards[split] = {"file": name, "count": len(items)}
    manifest = {
        "format": DATASET_FORMAT, "vidcolor": __version__, **asdict(options),
        "settings": asdict(preset), "shape": list(shape), "shards": shards,
        "sources": sources, "dropped": dropped, "skipped": skipped, "warnings": warnings,
        "frames": manifest_frames,
    }  # fmt: skip
    with atomic_path(work / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def _new_shard(path: Path, shape: tuple[int, ...]) -> np.memmap:
    """A writable memory-mapped .npy whose disk space is taken up front: writing into a sparse
    map on a full disk kills the process with SIGBUS, where this raises OSError (ENOSPC)."""
    array = np.lib.format.open_memmap(path, "w+", np.uint8, shape)
    if hasattr(os, "posix_fallocate"):  # not on macOS or Windows
        with open(path, "r+b") as f:
            try:
                os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without it
                    del array  # unmapped now, not whenever the traceback goes
                    raise
    return array


def dataset_summary(data: Path, sheet: Path) -> list[str]:
    """Lines of counts per split, scene and source; writes ``sheet`` (one frame per scene)."""
    from vidcolor.report import save_png

    manifest = load_dataset_manifest(data)
    if "sources" not in manifest:
        raise BuildError(f"{data}: built by an earlier vidcolor; build it again to see it here "
                         "(training still reads it)")  # fmt: skip
    frames = manifest["frames"]
    lines = [f"{data}: preset {manifest['preset']}, frames {manifest['shape'][1]}x"
             f"{manifest['shape'][0]}, split by {manifest['split_by']}"]  # fmt: skip
    for split, shard in manifest["shards"].items():
        rows = [f for f in frames if f["split"] == split]
        scenes = {(f["episode"], f["scene"]) for f in rows}
        lines.append(f"  {split:5} {shard['count']:6} frames  {len(scenes):4} scenes")
    for source in manifest["sources"]:
        rows = [f for f in frames if f["episode"] == source["episode"]]
        scenes = {f["scene"] for f in rows}
        x, y, w, h = source["picture"]
        line = (f"  {Path(source['source']).name}: {len(rows)} frames, {len(scenes)} scenes "
                f"kept of {len(source['cuts']) + 1}; picture {w}x{h} at ({x}, {y})")  # fmt: skip
        hud = "; ".join(f"{w}x{h} at ({x}, {y})" for x, y, w, h in source["hud"])
        lines.append(line + (f"; static overlay {hud}" if hud else ""))
    dropped = ", ".join(f"{k} {v}" for k, v in manifest["dropped"].items() if v)
    lines.append(f"  dropped: {dropped or 'none'}")
    first: dict[tuple[int, int], dict] = {}
    for f in frames:
        first.setdefault((f["episode"], f["scene"]), f)
    shards = {s["file"]: open_shard(data, s) for s in manifest["shards"].values()}
    thumbs = []
    for f in first.values():
        img = np.asarray(shards[f["shard"]][f["offset"]])
        h, w = img.shape[:2]
        thumbs.append(cv2.resize(img, (160, round(160 * h / w)), interpolation=cv2.INTER_AREA))
    cols = 6
    blank = np.zeros_like(thumbs[0])
    thumbs += [blank] * (-len(thumbs) % cols)
    grid = np.concatenate([np.concatenate(thumbs[r : r + cols], axis=1)
                           for r in range(0, len(thumbs), cols)])  # fmt: skip
    save_png(sheet, grid)
    lines.append(f"  contact sheet: {sheet} ({len(first)} scenes)")
    return lines
