"""Resident memory per artifact, in one process: growth at load and peak growth during its calls.

A process's lifetime peak (``ru_maxrss``) belongs to no single artifact: with three artifacts
side by side it is the same rising figure on every row. Linux keeps a resettable high-water mark
instead: writing ``5`` to ``/proc/self/clear_refs`` resets ``VmHWM`` (in ``/proc/self/status``) to
the current resident size, so resetting it just before one artifact's load or call and reading it
just after gives the peak that this load or call reached, transient buffers included, without a
sampling thread. Both happen outside the timed span.

Caveats (documented in the README): this is host resident memory (CUDA device memory is not
counted); memory freed by one artifact and reused by the next (allocator free lists, torch's
CPU caching) makes the second look cheaper; shared one-off costs (importing a runtime, its
thread pools) land on whichever artifact comes first unless warmed up beforehand. Where
``clear_refs`` cannot be written (not Linux, restricted ``/proc``) peaks fall back to RSS read
after the call, so a transient peak that was already freed is missed; ``method`` says which.
"""

from __future__ import annotations

from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib() -> tuple[int, int] | None:
    """(VmRSS, VmHWM) in KiB, or ``None`` where ``/proc/self/status`` has no such lines."""
    try:
        text = _STATUS.read_text()
    except OSError:
        return None
    found = {}
    for line in text.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":", 1)
            found[key] = int(value.split()[0])
    if "VmRSS" not in found:
        return None
    return found["VmRSS"], found.get("VmHWM", found["VmRSS"])


def release_free_memory() -> None:
    """Hand the C allocator's free pages back to the OS (glibc ``malloc_trim``), where there is one.

    Without it, memory freed earlier (a previous artifact, the priming load) is reused silently and
    a load looks cheaper than it is; after it, new allocations show up as resident growth.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def current_rss_mb() -> float | None:
    """The process's resident memory now, MiB; ``None`` where it cannot be read."""
    status = _status_kib()
    return None if status is None else status[0] / 1024.0


class MemoryProbe:
    """Peak resident growth of each call above the resident size just before it, per candidate.

    Used as a :class:`acmix_deploy.timing.CallHook`: ``before(i)`` resets the high-water mark and
    notes the resident size, ``after(i)`` keeps candidate ``i``'s largest growth so far.
    ``measure(fn)`` does the same around one call (an artifact's load) and returns
    ``(kept, peak)``: the growth still resident after it and the highest growth during it.
    """

    def __init__(self, candidates: int) -> None:
        self.available = _status_kib() is not None
        self.method = "none"
        if self.available:
            self.method = "vmhwm" if _reset_peak() else "rss-after"
        self.peaks: list[float | None] = [None] * candidates
        self._base = 0

    def _start(self) -> int:
        if self.method == "vmhwm":
            _reset_peak()
        status = _status_kib()
        return 0 if status is None else status[0]

    def _growth(self, base: int) -> tuple[float, float] | None:
        status = _status_kib()
        if status is None:
            return None
        rss, hwm = status
        peak = hwm if self.method == "vmhwm" else rss
        return (rss - base) / 1024.0, max(peak - base, rss - base) / 1024.0

    def before(self, index: int) -> None:
        if self.available:
            self._base = self._start()

    def after(self, index: int) -> None:
        if not self.available:
            return
        grown = self._growth(self._base)
        if grown is not None:
            old = self.peaks[index]
            self.peaks[index] = grown[1] if old is None else max(old, grown[1])

    def reset_peaks(self) -> None:
        """Forget the per-candidate peaks (a new batch size starts)."""
        self.peaks = [None] * len(self.peaks)

    def measure(self, fn) -> tuple[float | None, float | None]:
        """Run ``fn()``; return (resident growth kept after it, peak growth during it), MiB."""
        if not self.available:
            fn()
            return None, None
        release_free_memory()
        base = self._start()
        fn()
        grown = self._growth(base)
        return (None, None) if grown is None else grown
