"""How much memory a render at a working size needs, and how much this process may still take:
so that a working size far beyond the machine (``--render-size 4096``, or a bundle made at
that size) ends in one line that says what it would need, not in an allocator's traceback
part-way through the video."""

from __future__ import annotations

import os
from pathlib import Path

try:
    import resource
except ImportError:  # not POSIX: no address-space limit to read
    resource = None  # type: ignore[assignment]

GB = 1 << 30

# Bytes per working-size pixel, from the peak RSS of CPU renders at several sizes, rounded
# down: the generator's activations for one frame at base width 32 (they grow with the
# width) ...
MODEL_BYTES = 200
MOBILENET_BYTES = 800  # the same for --encoder mobilenet_v2's (its 6x expansions), at any width
# ... and a frame's own buffers besides (gray, L, ab, RGB, Cb/Cr), with the stabiliser's flow
# and carried colour when colour is carried along the motion.
FRAME_BYTES = 100
TEMPORAL_BYTES = 300


def model_bytes(model: dict) -> int:
    """Bytes per working-size pixel for the generator a stored model config describes."""
    if model.get("encoder") == "mobilenet_v2":
        return MOBILENET_BYTES
    return MODEL_BYTES * int(model["base_width"]) // 32


def render_bytes(width: int, height: int, batch: int, per_pixel: int, temporal: bool) -> int:
    """What colorizing at a ``width`` x ``height`` working size in batches of ``batch`` takes
    beyond the process's own, at least (``per_pixel``: model_bytes): an estimate on the low
    side, so that no render that would fit is refused."""
    pixels = width * height
    per_frame = FRAME_BYTES + (TEMPORAL_BYTES if temporal else 0)
    return pixels * (batch * per_pixel + per_frame)


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """What the process's cgroup (v2) still allows, where it sets a limit."""
    cgroup = Path("/sys/fs/cgroup")
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        used = int((cgroup / "memory.current").read_text())
        stat = dict(line.split() for line in (cgroup / "memory.stat").read_text().splitlines())
    except (OSError, ValueError):
        return None
    # Page cache of files no one reads now is given back on demand: a container that has
    # decoded videos a while sits near its limit without being short of memory.
    reclaimable = int(stat.get("inactive_file", 0))
    return None if limit == "max" else int(limit) - used + reclaimable


def _address_space_room() -> int | None:
    """What an address-space limit (``ulimit -v``) leaves, beside what is mapped already."""
    if resource is None:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return soft - pages * os.sysconf("SC_PAGE_SIZE")


def available_bytes() -> int | None:
    """Memory this process can still take: the least of what the system has available, what
    its cgroup allows and what its address-space limit leaves; None where none is known."""
    rooms = [
        r for r in (_meminfo_available(), _cgroup_room(), _address_space_room()) if r is not None
    ]
    return max(0, min(rooms)) if rooms else None
