"""Suite ``conv1x1``: a 1×1 conv as einsum vs ``lax.conv`` vs the equivalent ``jnp.dot``.

Over every distinct 1×1 of GoogLeNet (conv2's reduce and each Inception block's #1×1, reduces and
pool projections, Szegedy et al. 2015, Table 1). A 1×1 conv *is* the GEMM
``[N·H·W, C_in] @ [C_in, C_out]``; ``jnp.dot`` on that matrix is what the hardware can do for
that GEMM, and ``roofline_s = max(FLOPs / GEMM peak, bytes / memory bandwidth)`` (both measured
in the same run) is the bound no lowering beats.

- ``einsum`` — ``jaxconv.conv1x1`` (its default: one ``jnp.einsum``; asked for by name so the
  suite times the einsum whatever a tuning table says).
- ``lax.conv`` — ``jaxconv.conv(..., implementation="xla")`` with a ``[1, 1, C_in, C_out]`` kernel.
- ``jnp.dot`` — the reshaped GEMM.
- with ``--peers torch``: ``torch conv2d 1x1`` (channels_last).

No bias: the three compute exactly the same product.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp

import jaxconv
from bench._harness import Context
from bench.suites._googlenet import Pointwise, pointwise_shapes

NAME = "conv1x1"
EINSUM = "einsum"
LAX = "lax.conv"
DOT = "jnp.dot"
TORCH = "torch conv2d 1x1"
#: ``--quick``: two tiny shapes, one on each side of C_out = 64.
TINY = (Pointwise("tiny_narrow", 8, 32, 16), Pointwise("tiny_wide", 4, 64, 96))


def einsum(x, w):
    return jaxconv.conv1x1(x, w, implementation="einsum")


def lax_conv(x, w):
    return jaxconv.conv(x, w.reshape(1, 1, *w.shape), padding="VALID", implementation="xla")


def dot(x, w):
    return jnp.dot(x.reshape(-1, x.shape[-1]), w).reshape(*x.shape[:-1], w.shape[-1])


def _case(ctx: Context, shape: Pointwise, batch: int, dtype: str) -> list[dict]:
    x, w = ctx.rng_arrays(
        ctx.seed(shape.name, batch, dtype),
        [(batch, shape.size, shape.size, shape.c_in), (shape.c_in, shape.c_out)],
        dtype,
        [1.0, 1 / math.sqrt(shape.c_in)],
    )
    compiled = {
        EINSUM: ctx.compile(einsum, x, w),
        LAX: ctx.compile(lax_conv, x, w),
        DOT: ctx.compile(dot, x, w),
    }
    runners: dict[str, Callable[[], Any]] = dict(compiled)
    if ctx.peer is not None:
        F = ctx.peer.torch.nn.functional
        xt, wt = ctx.peer.activation(x, dtype), ctx.peer.kernel(w, dtype)
        runners[TORCH] = ctx.peer.runner(lambda: F.conv2d(xt, wt))
    timings = ctx.time(runners)

    cost = jaxconv.conv_cost(
        (shape.size, shape.size, shape.c_in),
        shape.c_out,
        1,
        padding="VALID",
        bias=False,
        batch=batch,
        dtype=dtype,
    )
    roofline = max(cost.flops / (ctx.gemm_peak(dtype) * 1e9), cost.bytes / (ctx.bandwidth() * 1e9))
    records = []
    for variant, timing in timings.items():
        extra: dict[str, Any] = {}
        if variant == TORCH:
            extra = {"peer": "torch", "ratio_vs_jaxconv": timing.median / timings[EINSUM].median}
        records.append(
            ctx.record(
                NAME,
                variant,
                default=variant == EINSUM,
                batch=batch,
                dtype=dtype,
                timing=timing,
                macs=cost.macs,
                compiled=compiled.get(variant),
                layer=shape.name,
                c_in=shape.c_in,
                c_out=shape.c_out,
                spatial=shape.size,
                speedup_vs_lax_conv=timings[LAX].median / timing.median,
                roofline_s=roofline,
                roofline_fraction=roofline / timing.median,
                **extra,
            )
        )
    return records


def _notes(ctx: Context, records: list[dict]) -> None:
    for dtype in ctx.dtypes():
        for batch in sorted({r["batch"] for r in records}):
            rows = [
                r
                for r in records
                if r["variant"] == EINSUM and r["dtype"] == dtype and r["batch"] == batch
            ]
            for label, keep in (
                ("C_out <= 64", lambda r: r["c_out"] <= 64),
                ("C_out > 64", lambda r: r["c_out"] > 64),
            ):
                sel = [r for r in rows if keep(r)]
                if not sel:
                    continue
                ratios = [r["speedup_vs_lax_conv"] for r in sel]
                wins = sum(q >= 2 for q in ratios)
                ctx.note(
                    f"batch {batch}, {dtype}, {label}: einsum vs lax.conv median "
                    f"{statistics.median(ratios):.2f}× (range {min(ratios):.2f}–"
                    f"{max(ratios):.2f}×); >= 2× on {wins} of {len(sel)} shapes."
                )
            dots = {
                r["layer"]: r
                for r in records
                if r["variant"] == DOT and r["dtype"] == dtype and r["batch"] == batch
            }
            vs_dot = [dots[r["layer"]]["median_s"] / r["median_s"] for r in rows]
            if vs_dot:
                roof = [r["roofline_fraction"] for r in rows]
                ctx.note(
                    f"batch {batch}, {dtype}: einsum runs at {statistics.median(vs_dot):.2f}× "
                    f"jnp.dot's speed (median) and {statistics.median(roof):.0%} of the "
                    f"roofline (median)."
                )


def run(ctx: Context) -> list[dict]:
    """Times the variants for every (shape, dtype, batch); see the module docstring."""
    shapes = TINY if ctx.options.quick else pointwise_shapes()
    batches = ctx.batches((1, 8, 32) if ctx.options.full else (32,))
    grid = [(s, n, d) for s in shapes for d in ctx.dtypes() for n in batches]
    records = []
    for shape, batch, dtype in ctx.track(grid, lambda c: f"{c[0].name} batch {c[1]} {c[2]}"):
        records += _case(ctx, shape, batch, dtype)
    _notes(ctx, records)
    return records
