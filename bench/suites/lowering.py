"""Suite ``lowering``: every lowering on every conv of GoogLeNet, NiN and the seed's layer.

For each conv shape, forward and forward+backward (the output, and the input and weight
gradients of ``sum(conv(x, w) · dy)``: what ``y.backward(dy)`` computes in PyTorch), the
default plan's lowerings, ``einsum`` and ``xla`` (with ``--full``: every lowering that
selection may choose on this platform, ``jaxconv.convolution.candidates``) run
under ``jax.jit``; ``xla`` is plain ``lax.conv_general_dilated``. ``*`` marks what
``jaxconv.conv`` does with ``implementation=None`` (its :class:`jaxconv.convolution.Plan`; a plan
whose gradients use other lowerings than its forward is timed as its own ``default`` variant
in fwd+bwd).

- ``speedup_vs_lax``: plain lax time / this variant's time (>= 1: not slower than lax).
- ``speed_vs_torch`` (``--peers torch``): torch time / this variant's time, torch's ``conv2d``
  channels_last on every core, timed in the same round-robin (>= 0.9 is the goal for ``*``).
- ``% GEMM peak``: ``2·MACs / time`` over the large-``jnp.dot`` peak measured in the same run;
  MACs count every tap; the peak is XLA's own dot, which a library kernel (oneDNN) can beat.

Shapes: GoogLeNet (Szegedy et al. 2015, Table 1) conv1 7×7/2 and conv2 (batch 8, as at 224×224
they dominate), each Inception block's 3×3, 5×5 and 1×1s (batch 32); NiN's CIFAR-10 model as
``jaxconv.models.NiN`` builds it (Lin et al. 2013; batch 32); the seed's direct 5×5 (14×14×480 →
48, batch 32). Padding is Caffe's ``k // 2`` on both sides.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import jax

import jaxconv
from bench._harness import Compiled, Context, Timing
from bench.suites._googlenet import BLOCKS
from jaxconv.models import NIN_CIFAR10

if TYPE_CHECKING:
    from bench.suites import groups

NAME = "lowering"
PASSES = ("fwd", "fwd+bwd")


class Shape(NamedTuple):
    """One conv: ``batch × size × size × c_in → c_out`` with a ``k×k`` kernel."""

    name: str
    batch: int
    size: int
    c_in: int
    c_out: int
    k: int
    stride: int = 1


def shapes() -> tuple[Shape, ...]:
    """Every distinct conv of the three networks, in network order."""
    out = [
        Shape("googlenet.conv1", 8, 224, 3, 64, 7, 2),
        Shape("googlenet.conv2_reduce", 8, 56, 64, 64, 1),
        Shape("googlenet.conv2", 8, 56, 64, 192, 3),
    ]
    for b in BLOCKS:
        tag = "googlenet." + b.name.removeprefix("inception_")
        out += [
            Shape(f"{tag}.1x1", 32, b.size, b.c_in, b.c1x1, 1),
            Shape(f"{tag}.3x3_reduce", 32, b.size, b.c_in, b.c3x3_reduce, 1),
            Shape(f"{tag}.3x3", 32, b.size, b.c3x3_reduce, b.c3x3, 3),
            Shape(f"{tag}.5x5_reduce", 32, b.size, b.c_in, b.c5x5_reduce, 1),
            Shape(f"{tag}.5x5", 32, b.size, b.c5x5_reduce, b.c5x5, 5),
            Shape(f"{tag}.pool_proj", 32, b.size, b.c_in, b.pool_proj, 1),
        ]
    size, c_in = 32, 3  # NiN on CIFAR-10: each mlpconv block, then a 3×3/2 ceil-mode max pool
    for i, (k, widths) in enumerate(NIN_CIFAR10, start=1):
        for j, c_out in enumerate(w if w is not None else 10 for w in widths):
            name = f"nin.mlpconv{i}." + ("conv" if j == 0 else f"cccp{j}")
            out.append(Shape(name, 32, size, c_in, c_out, k if j == 0 else 1))
            c_in = c_out
        size = jaxconv.pool_output_size(size, 3, stride=2, ceil_mode=True)
    out.append(Shape("seed.direct_5x5", 32, 14, 480, 48, 5))
    seen, unique = set(), []
    for s in out:
        key = s[1:]
        if key not in seen:
            seen.add(key)
            unique.append(s)
    return tuple(unique)


#: ``--quick``: a 3×3 and a 1×1.
TINY = (Shape("tiny.3x3", 2, 8, 32, 32, 3), Shape("tiny.1x1", 2, 8, 16, 8, 1))


def _spec(s: Shape, dtype: str):
    return jaxconv.convolution.conv_spec(
        jax.ShapeDtypeStruct((s.batch, s.size, s.size, s.c_in), dtype),
        jax.ShapeDtypeStruct((s.k, s.k, s.c_in, s.c_out), dtype),
        stride=s.stride,
        padding=s.k // 2,
    )


def conv_functions(implementation: str | None, **conv_args):
    """(forward(x, w), fwd+bwd(x, w, dy)) through ``jaxconv.conv`` with ``implementation`` and
    ``conv_args`` (stride, padding, …); also the groups suite's."""

    def forward(x, w):
        return jaxconv.conv(x, w, implementation=implementation, **conv_args)

    def forward_backward(x, w, dy):  # the output too, as training uses it (and torch makes it)
        y, vjp = jax.vjp(forward, x, w)
        return y, vjp(dy)

    return forward, forward_backward


def layer_fields(s: Shape | groups.Shape) -> dict[str, Any]:
    """The fields that name a conv in its records (the tables and notes read them); also the
    groups suite's."""
    return {
        "layer": s.name,
        "spatial": s.size,
        "c_in": s.c_in,
        "c_out": s.c_out,
        "k": s.k,
        "stride": s.stride,
    }


def pass_records(
    ctx: Context,
    suite: str,
    pass_name: str,
    timings: Mapping[str, Timing],
    compiled: Mapping[str, Compiled],
    *,
    default: str,
    plan: jaxconv.convolution.Plan,
    batch: int,
    dtype: str,
    macs: int,
    layer: Mapping[str, Any],
    after: Mapping[str, Any] | None = None,
    peer: Mapping[str, Any] | None = None,
) -> list[dict]:
    """The records of one pass of a conv, one per timed variant; also the groups suite's.

    Each has ``layer``'s fields, ``pass``, the ``plan`` (on the ``default`` variant),
    ``speedup_vs_lax`` (against variant ``xla``) and ``after``'s fields; with a ``torch``
    variant, the torch row has ``peer``, ``ratio_vs_jaxconv`` (against ``default``) and
    ``peer``'s fields, the others ``speed_vs_torch``. fwd+bwd variants count ``macs`` too: pass
    them 3× the forward's.
    """
    lax_s = timings["xla"].median
    torch_s = timings["torch"].median if "torch" in timings else None
    records = []
    for variant, timing in timings.items():
        is_default = variant == default
        extra: dict[str, Any] = {
            **layer,
            "pass": pass_name,
            "plan": "/".join(plan) if is_default else None,
            "speedup_vs_lax": lax_s / timing.median,
            **(after or {}),
        }
        if variant == "torch":
            extra.update(peer="torch", ratio_vs_jaxconv=timing.median / timings[default].median)
            extra.update(peer or {})
        elif torch_s is not None:
            extra["speed_vs_torch"] = torch_s / timing.median
        records.append(
            ctx.record(
                suite,
                f"{variant} {pass_name}",
                default=is_default,
                batch=batch,
                dtype=dtype,
                timing=timing,
                macs=macs,
                compiled=compiled.get(variant),
                **extra,
            )
        )
    return records


def _functions(name: str | None, s: Shape):
    return conv_functions(name, stride=s.stride, padding=s.k // 2)


def _torch(ctx: Context, s: Shape, x, w, dy, dtype: str):
    torch = ctx.peer.torch
    conv2d = torch.nn.functional.conv2d
    xt, wt, dyt = (
        ctx.peer.activation(x, dtype),
        ctx.peer.kernel(w, dtype),
        ctx.peer.activation(dy, dtype),
    )
    xg, wg = xt.clone().requires_grad_(), wt.clone().requires_grad_()

    def backward():
        xg.grad = wg.grad = None
        conv2d(xg, wg, stride=s.stride, padding=s.k // 2).backward(dyt)
        return wg.grad

    return (
        ctx.peer.runner(lambda: conv2d(xt, wt, stride=s.stride, padding=s.k // 2)),
        ctx.peer.train_runner(backward),
    )


def _case(ctx: Context, s: Shape, dtype: str) -> list[dict]:
    spec = _spec(s, dtype)
    plan = jaxconv.convolution.choose(spec, platform=ctx.platform).plan
    names = list(jaxconv.convolution.candidates(spec, ctx.platform))
    if not ctx.options.full and not ctx.options.quick:
        # The default's lowerings, plain lax and einsum (with --full: every candidate).
        keep = {*plan, "xla", "einsum"}
        names = [n for n in names if n in keep]
    x, w, dy = ctx.rng_arrays(
        ctx.seed(s, dtype),
        [(s.batch, s.size, s.size, s.c_in), (s.k, s.k, s.c_in, s.c_out), spec.out_shape],
        dtype,
        [1.0, (s.k * s.k * s.c_in) ** -0.5, 1.0],
    )
    compiled: dict[str, dict[str, Compiled]] = {p: {} for p in PASSES}
    for name in names:
        fwd, fb = _functions(name, s)
        compiled["fwd"][name] = ctx.compile(fwd, x, w)
        compiled["fwd+bwd"][name] = ctx.compile(fb, x, w, dy)
    split = len(set(plan)) > 1
    if split:  # the plan's forward is one of the names; fwd+bwd mixes lowerings: time it too
        compiled["fwd+bwd"]["default"] = ctx.compile(_functions(None, s)[1], x, w, dy)
    chosen = {"fwd": plan.fwd, "fwd+bwd": "default" if split else plan.fwd}
    peer = _torch(ctx, s, x, w, dy, dtype) if ctx.peer is not None else None
    cost = jaxconv.conv_cost(
        (s.size, s.size, s.c_in),
        s.c_out,
        s.k,
        stride=s.stride,
        padding=s.k // 2,
        bias=False,
        batch=s.batch,
        dtype=dtype,
    )
    records = []
    for i, pass_name in enumerate(PASSES):
        runners: dict[str, Callable[[], Any]] = dict(compiled[pass_name])
        if peer is not None:
            runners["torch"] = peer[i]
        records += pass_records(
            ctx,
            NAME,
            pass_name,
            ctx.time(runners, default_repeats=7),
            compiled[pass_name],
            default=chosen[pass_name],
            plan=plan,
            batch=s.batch,
            dtype=dtype,
            macs=cost.macs * (1 if pass_name == "fwd" else 3),
            layer=layer_fields(s),
        )
    return records


def _notes(ctx: Context, records: list[dict]) -> None:
    for pass_name in PASSES:
        chosen = [r for r in records if r["default"] and r["pass"] == pass_name]
        if not chosen:
            continue
        vs_lax = [r["speedup_vs_lax"] for r in chosen]
        slower = [
            f"{r['layer']} {r['speedup_vs_lax']:.2f}×" for r in chosen if r["speedup_vs_lax"] < 1
        ]
        ctx.note(
            f"{pass_name}: the default is >= plain lax on {len(chosen) - len(slower)} of "
            f"{len(chosen)} convs (median {statistics.median(vs_lax):.2f}×, min "
            f"{min(vs_lax):.2f}×)" + (f"; slower: {', '.join(slower)}" if slower else ".")
        )
        torch_rows = [r for r in chosen if r.get("speed_vs_torch") is not None]
        if torch_rows:
            below = [
                f"{r['layer']} {r['speed_vs_torch']:.2f}×"
                for r in torch_rows
                if r["speed_vs_torch"] < 0.9
            ]
            q = [r["speed_vs_torch"] for r in torch_rows]
            ctx.note(
                f"{pass_name}: the default runs at >= 0.9× torch's speed on "
                f"{len(torch_rows) - len(below)} of {len(torch_rows)} convs (median "
                f"{statistics.median(q):.2f}×)" + (f"; below: {', '.join(below)}" if below else ".")
            )
        best = max(chosen, key=lambda r: r["peak_fraction"])
        ctx.note(
            f"{pass_name}: best default {best['peak_fraction']:.0%} of the GEMM peak "
            f"({best['layer']}, {best['variant']}, {best['gflops']:.0f} GFLOP/s counting "
            f"every tap)."
        )
    wins: dict[str, int] = {}
    for layer in dict.fromkeys(r["layer"] for r in records):
        for pass_name in PASSES:
            rows = [
                r
                for r in records
                if r["layer"] == layer
                and r["pass"] == pass_name
                and not r.get("peer")
                and not r["variant"].startswith("default")
            ]
            if rows:
                best = min(rows, key=lambda r: r["median_s"])["variant"].rsplit(" ", 1)[0]
                wins[best] = wins.get(best, 0) + 1
    ctx.note(
        "fastest lowering per (conv, pass): "
        + ", ".join(f"{k} {v}" for k, v in sorted(wins.items(), key=lambda kv: -kv[1]))
        + "."
    )


def run(ctx: Context) -> list[dict]:
    """Times every candidate lowering per shape and pass; see the module docstring. ``--batch``
    replaces each shape's own batch size."""
    base = ctx.select(TINY if ctx.options.quick else shapes(), NAME)
    batches = ctx.options.batches or (None,)
    grid = [
        (s._replace(batch=n or s.batch), d) for s in base for n in batches for d in ctx.dtypes()
    ]
    records = []
    for s, dtype in ctx.track(grid, lambda c: f"{c[0].name} {c[1]}"):
        records += _case(ctx, s, dtype)
    _notes(ctx, records)
    return records
