"""Primed round-robin timing: the one way jaxconv (autotune) and bench time competing variants."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import jax

__all__ = ["round_robin"]

#: Most calls queued per timed sample (``target_s``): enough to hide a ~10 µs dispatch behind
#: microsecond kernels, few enough that a slow variant costs no more than its ``target_s``.
MAX_CALLS = 64


def _wait(runner: Callable[[], Any], out: Any) -> None:
    """Blocks until ``out`` is computed, then calls the runner's ``finish`` when it has one
    (a torch runner's ``torch.cuda.synchronize``: work ``jax.block_until_ready`` cannot see)."""
    jax.block_until_ready(out)
    finish = getattr(runner, "finish", None)
    if finish is not None:
        finish()


def _timed(runner: Callable[[], Any], calls: int) -> float:
    """Seconds per call of ``calls`` calls queued back to back, synced once at the end."""
    start = time.perf_counter()
    out = None
    for _ in range(calls):
        out = runner()
    _wait(runner, out)
    return (time.perf_counter() - start) / calls


def round_robin(
    runners: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: int,
    target_s: float | None = None,
) -> dict[str, tuple[float, ...]]:
    """Seconds per call of ``repeats`` timed samples of each runner after ``warmup`` rounds.

    Round ``i`` starts at runner ``i mod n`` (A B C, B C A, C A B, …) so a slow spell of the
    machine hits every variant alike. Each timed sample comes right after an untimed call of
    the same runner ("primed"): otherwise a call inherits its neighbour's caches and freed
    buffers — a conv timed after a small kernel ran up to 1.4× faster than the same executable
    timed after one with large temporaries (GoogLeNet 4a 3×3: 14.3 vs 20.0 ms). Each sample
    ends in ``jax.block_until_ready`` and the runner's ``finish`` (torch on CUDA: synchronize).

    With ``target_s`` (device timing: what a GPU needs), a sample is as many calls queued back
    to back as fill ``target_s`` (from one synced call after warm-up; at most
    :data:`MAX_CALLS`), synced once: a microsecond kernel's time is then the device's, not the
    host's dispatch, launch and sync. Without it, one synced call per sample.

    Args:
      runners: name → a function of no arguments; may carry a ``finish()`` attribute.
      repeats: timed samples per runner.
      warmup: untimed rounds first.
      target_s: seconds of queued calls per sample; None for one call.

    Returns:
      name → the ``repeats`` seconds-per-call, in the order they were taken.

    Examples:
      >>> times = round_robin({"a": lambda: 1, "b": lambda: 2}, repeats=3, warmup=1)
      >>> sorted(times), len(times["a"])
      (['a', 'b'], 3)
      >>> len(round_robin({"a": lambda: 1}, repeats=2, warmup=0, target_s=1e-4)["a"])
      2
    """
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            _wait(runners[name], runners[name]())
    calls = dict.fromkeys(names, 1)
    if target_s is not None:
        for name in names:
            once = max(_timed(runners[name], 1), 1e-9)
            calls[name] = max(1, min(MAX_CALLS, math.ceil(target_s / once)))
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(repeats):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            _wait(runners[name], runners[name]())  # the primer: this runner's own state
            times[name].append(_timed(runners[name], calls[name]))
    return {n: tuple(t) for n, t in times.items()}
