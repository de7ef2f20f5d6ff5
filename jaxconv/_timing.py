"""Primed round-robin timing: the one way jaxconv (autotune) and bench time competing variants."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax

__all__ = ["round_robin"]


def round_robin(
    runners: dict[str, Callable[[], Any]], repeats: int, warmup: int
) -> dict[str, tuple[float, ...]]:
    """Seconds of ``repeats`` timed calls of each runner after ``warmup`` untimed rounds.

    Round ``i`` starts at runner ``i mod n`` (A B C, B C A, C A B, …) so a slow spell of the
    machine hits every variant alike. Each timed call comes right after an untimed call of the
    same runner ("primed"): otherwise a call inherits its neighbour's caches and freed buffers —
    a conv timed after a small kernel ran up to 1.4× faster than the same executable timed after
    one with large temporaries (GoogLeNet 4a 3×3: 14.3 vs 20.0 ms). Each call is synced with
    ``jax.block_until_ready``; a runner that needs another sync (torch on CUDA) does it itself.

    Args:
      runners: name → a function of no arguments.
      repeats: timed calls per runner.
      warmup: untimed rounds first.

    Returns:
      name → the ``repeats`` timings in seconds, in the order they were taken.

    Examples:
      >>> times = round_robin({"a": lambda: 1, "b": lambda: 2}, repeats=3, warmup=1)
      >>> sorted(times), len(times["a"])
      (['a', 'b'], 3)
    """
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            jax.block_until_ready(runners[name]())
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(repeats):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            jax.block_until_ready(runners[name]())  # the primer: this runner's own state
            start = time.perf_counter()
            jax.block_until_ready(runners[name]())
            times[name].append(time.perf_counter() - start)
    return {n: tuple(t) for n, t in times.items()}
