"""Where a tiny conv's call time goes: ``python -m bench.per_call``.

A ``[1, 8, 8, 8]`` input, 3×3 kernel to 8 channels, float32: so little arithmetic that the
time is all overhead. Timed, each under ``jax.jit`` (median of 7 rounds of 2,000 calls):
``x + 1`` (what any jitted call costs), ``jaxconv.conv`` on oneDNN and on XLA, a frozen conv
(bias + ReLU post-op, packed weights) and, when torch is installed, ``F.conv2d`` on the same
threads. With ``JAXCONV_ONEDNN_PROFILE=1`` (set here before the extension loads) the handlers
time their own phases — argument decoding, primitive lookup, the execution lock, memory
objects, ``execute``, ``wait`` — so what is left of a call is XLA's: its dispatch and the
custom call around the handler. Not a suite of ``python -m bench``; docs/performance.md
quotes its output.
"""

from __future__ import annotations

import os

os.environ.setdefault("JAXCONV_ONEDNN_PROFILE", "1")  # before jaxconv loads the extension

import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxconv
from jaxconv.convolution import conv_spec
from jaxconv.convolution.frozen import frozen_conv, pack
from jaxconv.convolution.lowerings.onednn import library

CALLS, ROUNDS = 2000, 7


def _per_call_us(fn: Any) -> float:
    for _ in range(50):
        fn()
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(CALLS):
            out = fn()
        jax.block_until_ready(out)
        rounds.append((time.perf_counter() - start) / CALLS)
    return 1e6 * statistics.median(rounds)


def main() -> None:
    k = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(k[0], (1, 8, 8, 8))
    w = jax.random.normal(k[1], (3, 3, 8, 8))
    b = jax.random.normal(k[2], (8,))
    spec = conv_spec(x, w)
    packed = pack(w, spec, "relu", False)
    data, packing = (jnp.asarray(packed[0]), packed[1]) if packed else (None, None)
    add_one = jax.jit(lambda x: x + 1)
    runs: dict[str, Any] = {
        "jit x + 1": lambda: add_one(x),
        "jaxconv.conv, oneDNN": (lambda f: lambda: f(x, w))(
            jax.jit(lambda x, w: jaxconv.conv(x, w, implementation="onednn"))
        ),
        "jaxconv.conv, XLA": (lambda f: lambda: f(x, w))(
            jax.jit(lambda x, w: jaxconv.conv(x, w, implementation="xla"))
        ),
        "frozen conv (bias + ReLU, packed)": (lambda f: lambda: f(x, w, b, data))(
            jax.jit(
                lambda x, w, b, p: frozen_conv(
                    x, w, b, spec, activation="relu", packed=p, packing=packing
                )
            )
        ),
    }
    try:
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(len(os.sched_getaffinity(0)))
        xt = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())
        wt = torch.from_numpy(np.asarray(w).transpose(3, 2, 0, 1).copy())
        runs["torch F.conv2d"] = lambda: F.conv2d(xt, wt, padding=1)
    except ImportError:
        print("torch is not installed: no torch row")
    print(f"per call, median of {ROUNDS} rounds of {CALLS:,} calls ({jax.devices()[0]}):")
    for name, fn in runs.items():
        library.profile(reset=True)
        us = _per_call_us(fn)
        prof = library.profile(reset=True)
        line = f"  {name:<36} {us:7.1f} us"
        if prof is not None and prof[0] > 0:
            calls, phases = prof
            inside = {p: 1e6 * t / calls for p, t in phases.items()}
            total = sum(inside.values())
            parts = ", ".join(f"{p} {v:.1f}" for p, v in inside.items())
            line += f"   in the handler {total:.1f} us ({parts}); outside it {us - total:.1f} us"
        print(line)


if __name__ == "__main__":
    main()
