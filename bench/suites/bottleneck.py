"""Suite ``bottleneck`` (the default): the seed's layer, direct 5×5 against the 1×1 bottleneck.

The layer is Inception 4a's 5×5 branch: a 14×14×480 input, 48 5×5 filters, and a 16-channel 1×1
reduce in front of them — 112.9M MACs direct against 1.5M + 3.8M with the bottleneck, an
analytic 21.4× (:func:`jaxconv.bottleneck_cost`). ``--full`` adds the other eight GoogLeNet 5×5
branches. Every variant has bias + ReLU after each conv, so fusion has something to fuse:

- ``a: direct 5x5`` — ``relu(jaxconv.conv(x, w, b))`` under jit, jaxconv's default lowering;
  the baseline every speedup is measured against.
- ``b: op-by-op, no jit`` — ``jaxconv.bottleneck`` called eagerly: what compilation buys.
- ``c: jit, 1x1 as lax.conv`` — the 1×1 lowered as a ``lax.conv`` (``reduce_implementation="xla"``).
- ``d: jit, jaxconv default`` — ``jaxconv.bottleneck`` as it ships (where the oneDNN extension
  loads, the reduce, its ReLU and the 5×5 as one call, image by image per thread:
  ``jaxconv.convolution.lowerings.onednn.block``; else an einsum reduce and XLA's conv).
- information (``info: true``): ``(d) part: 1x1 reduce`` and ``(d) part: 5x5 on reduced``, the
  two convs of (d) timed alone, each on ``jaxconv.conv``'s default (where its time goes); the
  peer plain lax: ``direct 5x5 on XLA`` and ``bottleneck on XLA``, (a) and (d) with every conv
  as plain ``lax.conv`` (``implementation="xla"``), which set the default records'
  ``speedup_vs_lax``.
- the torch peer (by default where torch is installed; ``--peers``): ``torch direct 5x5`` and
  ``torch bottleneck`` (channels_last conv2d), timed in the same round-robin.

Two goals, at the largest batch; the notes report each one's status (met or not met), which
never changes the exit code. The seed's: the default path (d) at least 0.9 × the analytic
speedup over the direct 5×5. The roofline's (:func:`roofline_goal_status`): (d) at least 0.9 ×
its roofline speedup on this machine (:class:`Roofline`, also in (d)'s records as
``roofline_speedup``, ``roofline_reduce_s`` and ``roofline_spatial_s``) and at least torch's
own bottleneck speedup, with the direct 5×5 at least as fast as torch's. The notes print the
measured, roofline and analytic speedups side by side, from medians, and again from each
variant's fastest run (``roofline_speedup_fastest``): the gap between the two is the machine's
noise, not the kernels.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

import jaxconv
from bench._harness import Context
from bench.suites._googlenet import BLOCKS, BY_NAME, SEED, Block

NAME = "bottleneck"
DIRECT = "a: direct 5x5"
EAGER = "b: op-by-op, no jit"
LAX = "c: jit, 1x1 as lax.conv"
EINSUM = "d: jit, jaxconv default"
XLA_DIRECT = "direct 5x5 on XLA (info)"
XLA_BOTTLENECK = "bottleneck on XLA (info)"
PART_REDUCE = "(d) part: 1x1 reduce (info)"
PART_SPATIAL = "(d) part: 5x5 on reduced (info)"
TORCH_DIRECT = "torch direct 5x5"
TORCH_BOTTLENECK = "torch bottleneck"
#: ``--quick``: a tiny 5×5 branch with the same structure.
TINY = Block("tiny_5x5", 7, 32, 0, 0, 0, 4, 8, 0)
KERNEL = 5
#: The goal: the default path's speedup over the direct 5×5, as a fraction of the analytic one.
GOAL = 0.9


# Each conv's ReLU is passed to jaxconv (``activation``, ``out_activation``), which fuses it
# where the lowering can: how the library is meant to be called.
def direct(x, w, b):
    return jaxconv.conv(x, w, b, activation=jax.nn.relu)


def direct_xla(x, w, b):
    return jaxconv.conv(x, w, b, activation=jax.nn.relu, implementation="xla")


def bottleneck_einsum(x, w_reduce, b_reduce, w_spatial, b_spatial, **implementations):
    """(d), jaxconv's default; ``implementations`` pick the lowerings for the other variants."""
    return jaxconv.bottleneck(
        x, w_reduce, w_spatial, b_reduce, b_spatial, out_activation=jax.nn.relu, **implementations
    )


def reduce_only(x, w_reduce, b_reduce):
    """The reduce as the two-conv bottleneck runs it: ``jaxconv.conv``'s default for the 1×1
    kernel (``conv1x1``'s own default is the einsum)."""
    return jaxconv.conv(x, w_reduce[None, None], b_reduce, activation=jax.nn.relu)


bottleneck_xla = functools.partial(
    bottleneck_einsum, implementation="xla", reduce_implementation="xla"
)
bottleneck_lax = functools.partial(bottleneck_einsum, reduce_implementation="xla")


def _torch_runners(ctx: Context, arrays, dtype: str) -> dict:
    peer = ctx.peer
    F = peer.torch.nn.functional
    x, w_d, b_d, w_r, b_r, w_s, b_s = arrays
    xt = peer.activation(x, dtype)
    wd, bd = peer.kernel(w_d, dtype), peer.vector(b_d, dtype)
    wr, br = peer.kernel(w_r, dtype), peer.vector(b_r, dtype)
    ws, bs = peer.kernel(w_s, dtype), peer.vector(b_s, dtype)
    pad = KERNEL // 2
    return {
        TORCH_DIRECT: peer.runner(lambda: F.relu(F.conv2d(xt, wd, bd, padding=pad))),
        TORCH_BOTTLENECK: peer.runner(
            lambda: F.relu(F.conv2d(F.relu(F.conv2d(xt, wr, br)), ws, bs, padding=pad))
        ),
    }


def _case(ctx: Context, block: Block, batch: int, dtype: str) -> list[dict]:
    s, c_in, c_r, c_out = block.size, block.c_in, block.c5x5_reduce, block.c5x5
    seed = ctx.seed(block.name, batch, dtype)
    shapes = [
        (batch, s, s, c_in),
        (KERNEL, KERNEL, c_in, c_out),
        (c_out,),
        (c_in, c_r),
        (c_r,),
        (KERNEL, KERNEL, c_r, c_out),
        (c_out,),
    ]
    scales = [
        1.0,
        1 / math.sqrt(KERNEL**2 * c_in),
        0.1,
        1 / math.sqrt(c_in),
        0.1,
        1 / math.sqrt(KERNEL**2 * c_r),
        0.1,
    ]
    arrays = ctx.rng_arrays(seed, shapes, dtype, scales)
    x, w_d, b_d, *bottleneck_args = arrays
    compiled = {
        DIRECT: ctx.compile(direct, x, w_d, b_d),
        LAX: ctx.compile(bottleneck_lax, x, *bottleneck_args),
        EINSUM: ctx.compile(bottleneck_einsum, x, *bottleneck_args),
    }
    runners: dict[str, Callable[[], Any]] = {
        DIRECT: compiled[DIRECT],
        EAGER: lambda: bottleneck_einsum(x, *bottleneck_args),
        LAX: compiled[LAX],
        EINSUM: compiled[EINSUM],
    }
    w_r, b_r, w_s, b_s = bottleneck_args
    h = jax.block_until_ready(reduce_only(x, w_r, b_r))
    compiled[PART_REDUCE] = ctx.compile(reduce_only, x, w_r, b_r)
    compiled[PART_SPATIAL] = ctx.compile(direct, h, w_s, b_s)
    compiled[XLA_DIRECT] = ctx.compile(direct_xla, x, w_d, b_d)
    compiled[XLA_BOTTLENECK] = ctx.compile(bottleneck_xla, x, *bottleneck_args)
    info = (PART_REDUCE, PART_SPATIAL, XLA_DIRECT, XLA_BOTTLENECK)
    runners.update({k: compiled[k] for k in info})
    if ctx.peer is not None:
        runners.update(_torch_runners(ctx, arrays, dtype))
    timings = ctx.time(runners)

    cost = jaxconv.bottleneck_cost((s, s, c_in), c_out, KERNEL, c_r, batch=batch, dtype=dtype)
    macs = {
        DIRECT: cost.macs_direct,
        XLA_DIRECT: cost.macs_direct,
        TORCH_DIRECT: cost.macs_direct,
        PART_REDUCE: cost.reduce.macs,
        PART_SPATIAL: cost.spatial.macs,
    }
    roofline = Roofline.of(cost, timings[DIRECT].median, ctx.bandwidth(), ctx.gemm_peak(dtype))
    fastest = Roofline.of(cost, timings[DIRECT].min, ctx.bandwidth(), ctx.gemm_peak(dtype))
    records = []
    for variant, timing in timings.items():
        is_direct = macs.get(variant) == cost.macs_direct
        if variant.startswith("torch"):
            baseline, twin = timings[TORCH_DIRECT], (DIRECT if is_direct else EINSUM)
            extra = {"peer": "torch", "ratio_vs_jaxconv": timing.median / timings[twin].median}
        else:
            baseline, extra = timings[DIRECT], {}
        if variant in (DIRECT, EINSUM):  # the peer plain lax: the same convs on lax.conv
            lax = timings[XLA_DIRECT if variant == DIRECT else XLA_BOTTLENECK]
            extra["speedup_vs_lax"] = lax.median / timing.median
        if variant == EINSUM:
            extra.update(
                roofline_speedup=roofline.speedup,
                roofline_reduce_s=roofline.reduce_s,
                roofline_spatial_s=roofline.spatial_s,
                roofline_speedup_fastest=fastest.speedup,
            )
        records.append(
            ctx.record(
                NAME,
                variant,
                default=variant in (DIRECT, EINSUM),
                batch=batch,
                dtype=dtype,
                timing=timing,
                macs=macs.get(variant, cost.macs_bottleneck),
                compiled=compiled.get(variant),
                # op-by-op runs the same computation as (d); XLA's count is the jitted one's
                xla_flops=compiled[EINSUM].xla_flops if variant == EAGER else None,
                layer=block.name,
                speedup_vs_direct=baseline.median / timing.median,
                analytic_ratio=cost.macs_direct / macs.get(variant, cost.macs_bottleneck),
                info=variant in info,
                **extra,
            )
        )
    return records


class Roofline(NamedTuple):
    """The bottleneck's (d) time at this machine's limits, arm by arm: the 1×1 reduce at the
    slower of its bytes over the measured bandwidth and its FLOPs at the GEMM peak (it reads
    the whole input to write 16 channels: memory-bound), the 5×5 on the reduced maps at the
    GFLOP/s the direct 5×5 reaches here; ``speedup`` is the direct 5×5's measured time over
    their sum — what the bottleneck can gain on this machine, beside the analytic MAC ratio.

    >>> import jaxconv
    >>> cost = jaxconv.bottleneck_cost((14, 14, 480), 48, 5, 16, batch=32)
    >>> r = Roofline.of(cost, direct_s=0.060, bandwidth_gbs=45.0, peak_gflops=184.0)
    >>> round(r.reduce_s * 1e3, 3), round(r.spatial_s * 1e3, 3), round(r.speedup, 1)
    (0.524, 2.0, 23.8)
    """

    reduce_s: float
    spatial_s: float
    speedup: float

    @classmethod
    def of(cls, cost: Any, direct_s: float, bandwidth_gbs: float, peak_gflops: float) -> Roofline:
        reduce_s = max(
            cost.reduce.bytes / (bandwidth_gbs * 1e9), cost.reduce.flops / (peak_gflops * 1e9)
        )
        spatial_s = cost.spatial.flops / cost.direct.flops * direct_s
        return cls(reduce_s, spatial_s, direct_s / (reduce_s + spatial_s))


def goal_status(speedup: float, analytic: float, where: str) -> str:
    """The goal's status, met or not, as a note (a goal not met is a result, not an error).

    >>> print(goal_status(14.7, 21.4, "inception_4a, batch 32, float32"))
    goal: the default path (d) ≥ 0.9 × the analytic speedup (≥ 19.3×) — not met: 14.7×,
    0.69 × analytic (inception_4a, batch 32, float32).
    """
    status = "met" if speedup >= GOAL * analytic else "not met"
    return (
        f"goal: the default path (d) ≥ {GOAL} × the analytic speedup (≥ {GOAL * analytic:.1f}×) "
        f"— {status}: {speedup:.1f}×, {speedup / analytic:.2f} × analytic ({where})."
    )


def roofline_goal_status(
    measured: float,
    roofline: float,
    torch_speedup: float | None,
    direct_vs_torch: float | None,
    where: str,
) -> str:
    """The roofline goal's status: (d)'s measured speedup over the direct 5×5 at ≥ 0.9 × its
    roofline speedup and ≥ torch's own bottleneck speedup, with the direct 5×5 at ≥ 1.0×
    torch's speed (``direct_vs_torch``: torch's time over jaxconv's); the torch parts are
    named unmeasured without a torch peer.

    >>> print(roofline_goal_status(15.0, 21.1, 13.7, 0.99, "inception_4a, batch 32, float32"))
    goal: (d) ≥ 0.9 × the roofline speedup, ≥ torch's own, direct ≥ 1.0× torch — not met:
    0.71 × roofline (15.0× of 21.1×), torch's own 13.7×, direct 0.99× torch (inception_4a,
    batch 32, float32).
    """
    parts = [f"{measured / roofline:.2f} × roofline ({measured:.1f}× of {roofline:.1f}×)"]
    met = measured >= GOAL * roofline
    if torch_speedup is None or direct_vs_torch is None:
        parts.append("torch not measured")
        met = False
    else:
        parts += [f"torch's own {torch_speedup:.1f}×", f"direct {direct_vs_torch:.2f}× torch"]
        met = met and measured >= torch_speedup and direct_vs_torch >= 1.0
    return (
        f"goal: (d) ≥ {GOAL} × the roofline speedup, ≥ torch's own, direct ≥ 1.0× torch — "
        f"{'met' if met else 'not met'}: {', '.join(parts)} ({where})."
    )


def _notes(ctx: Context, records: list[dict]) -> None:
    layer = records[0]["layer"]
    for dtype in ctx.dtypes():
        rows = [r for r in records if r["layer"] == layer and r["dtype"] == dtype]
        if not rows:
            continue
        batches = sorted({r["batch"] for r in rows})
        batch = 32 if 32 in batches else batches[-1]
        at = {r["variant"]: r for r in rows if r["batch"] == batch}
        d, ratio = at[EINSUM], at[EINSUM]["analytic_ratio"]
        ctx.note(goal_status(d["speedup_vs_direct"], ratio, f"{layer}, batch {batch}, {dtype}"))
        if "roofline_speedup" in d:
            torch_d = at.get(TORCH_BOTTLENECK, {}).get("speedup_vs_direct")
            torch_direct = at.get(TORCH_DIRECT, {}).get("ratio_vs_jaxconv")
            where = f"{layer}, batch {batch}, {dtype}"
            speedup = d["speedup_vs_direct"]
            ctx.note(
                roofline_goal_status(speedup, d["roofline_speedup"], torch_d, torch_direct, where)
            )
            ctx.note(
                f"  speedup over the direct 5×5: measured {d['speedup_vs_direct']:.1f}×, "
                f"roofline {d['roofline_speedup']:.1f}× (1×1 reduce "
                f"{d['roofline_reduce_s'] * 1e3:.3f} ms at {ctx.bandwidth():.0f} GB/s, 5×5 on "
                f"the reduced maps {d['roofline_spatial_s'] * 1e3:.3f} ms at the direct 5×5's "
                f"{at[DIRECT]['gflops']:.0f} GFLOP/s), analytic {ratio:.1f}×; measured / "
                f"roofline {d['speedup_vs_direct'] / d['roofline_speedup']:.2f}."
            )
            # The same at each variant's fastest run: how much of the gap is this machine's
            # noise (medians above minima) rather than the kernels.
            fastest, best = at[DIRECT]["min_s"] / d["min_s"], d["roofline_speedup_fastest"]
            ctx.note(
                f"  at each one's fastest run: measured {fastest:.1f}×, roofline "
                f"{best:.1f}×, measured / roofline {fastest / best:.2f}; the "
                f"median is {d['median_s'] / d['min_s']:.2f}× (d)'s fastest and "
                f"{at[DIRECT]['median_s'] / at[DIRECT]['min_s']:.2f}× the direct's."
            )
        ctx.note(
            f"  {layer} 5×5 branch, batch {batch}, {dtype}: the default path (d) runs "
            f"{d['speedup_vs_direct']:.1f}× the direct 5×5's speed (analytic {ratio:.1f}×)."
        )
        ctx.note(
            f"  jit vs op-by-op: {at[EAGER]['median_s'] / d['median_s']:.1f}× (what compilation "
            f"and fusion buy); einsum vs lax.conv 1×1: "
            f"{at[LAX]['median_s'] / d['median_s']:.2f}×; direct at "
            f"{at[DIRECT]['gflops']:.0f} GFLOP/s ({at[DIRECT]['peak_fraction']:.0%} of GEMM "
            f"peak), bottleneck at {d['gflops']:.0f} GFLOP/s ({d['peak_fraction']:.0%})."
        )
        parts = at[PART_REDUCE]["median_s"] + at[PART_SPATIAL]["median_s"]
        ctx.note(
            f"  where (d)'s {d['median_s'] * 1e3:.2f} ms go: 1×1 reduce alone "
            f"{at[PART_REDUCE]['median_s'] * 1e3:.2f} ms ({at[PART_REDUCE]['gflops']:.0f} "
            f"GFLOP/s), 5×5 on the reduced maps alone {at[PART_SPATIAL]['median_s'] * 1e3:.2f} ms "
            f"({at[PART_SPATIAL]['gflops']:.0f} GFLOP/s); sum {parts * 1e3:.2f} ms. The direct "
            f"5×5 runs at {at[DIRECT]['gflops']:.0f} GFLOP/s: the measured speedup is the "
            f"analytic {ratio:.1f}× times the bottleneck's efficiency relative to it "
            f"({d['gflops'] / at[DIRECT]['gflops']:.2f})."
        )
        if TORCH_BOTTLENECK in at:
            ctx.note(
                f"  torch: direct {at[TORCH_DIRECT]['ratio_vs_jaxconv']:.2f}× and bottleneck "
                f"{at[TORCH_BOTTLENECK]['ratio_vs_jaxconv']:.2f}× jaxconv's time; torch's own "
                f"bottleneck speedup {at[TORCH_BOTTLENECK]['speedup_vs_direct']:.1f}×."
            )


def run(ctx: Context) -> list[dict]:
    """Times the variants for every (layer, dtype, batch); see the module docstring."""
    if ctx.options.quick:
        blocks: tuple[Block, ...] = (TINY,)
    elif ctx.options.full:
        blocks = (BY_NAME[SEED], *(b for b in BLOCKS if b.name != SEED))
    else:
        blocks = (BY_NAME[SEED],)
    grid = [(b, n, d) for b in blocks for d in ctx.dtypes() for n in ctx.batches((1, 8, 32))]
    records = []
    for block, batch, dtype in ctx.track(grid, lambda c: f"{c[0].name} batch {c[1]} {c[2]}"):
        records += _case(ctx, block, batch, dtype)
    _notes(ctx, records)
    return records
