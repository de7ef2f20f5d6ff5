"""Suite ``inception``: every GoogLeNet Inception block, forward and forward+backward.

Each block of Szegedy et al. (2015), Table 1, built as :class:`jaxconv.nn.Inception` (conv
biases, ReLU), runs with its three input-reading 1×1 convs unfused (three einsums) and fused
(``fuse_1x1=True``: one einsum over the concatenated kernels) — the same parameters either way —
in float32 and bfloat16 (``dtype=bfloat16`` compute, float32 parameters).

- ``forward, unfused 1x1`` / ``forward, fused 1x1``: ``block(x)`` under jit.
- ``fwd+bwd, unfused 1x1`` / ``fwd+bwd, fused 1x1``: the loss ``mean(block(x)²)`` and its
  gradient with respect to every parameter.

``macs`` is the block's analytic count (every tap of its six convs); fwd+bwd counts 3× that
(the forward, the input gradient and the weight gradient each do one conv's MACs).
``speedup_vs_unfused`` compares the two ways of running the same pass; ``default`` marks the
``fuse_1x1`` value :class:`jaxconv.nn.Inception` ships with.

With ``--peers torch``: ``torch forward`` and ``torch fwd+bwd`` run the same block with the same
weights in PyTorch, branch by branch as a PyTorch model does (``conv2d`` + bias + ReLU per conv,
``max_pool2d`` 3×3/1, ``cat``; channels_last, eager, ``inference_mode`` forward; the fwd+bwd
takes the gradient of the same loss with respect to every weight and bias). Its forward output
must match jaxconv's before anything is timed; ``speed_vs_torch`` is torch's time over the
variant's (> 1: faster than torch).
"""

from __future__ import annotations

import inspect
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxconv
from bench._harness import Context
from bench._peers import check_agreement
from bench.suites._googlenet import BLOCKS, Block

NAME = "inception"
#: ``--quick``: a tiny block with every branch.
TINY = Block("tiny_inception", 8, 16, 8, 4, 8, 2, 4, 4)
PASSES = ("forward", "fwd+bwd")
#: Largest ``max |y_torch - y_jaxconv| / max |y_jaxconv|`` accepted before timing the peer: a
#: wrong weight layout or branch order errs by O(1); bfloat16 rounds the reduce outputs between
#: the block's two convs, and a GPU library may accumulate differently, hence 5e-2 there.
PEER_TOLERANCE = {"float32": 1e-4, "bfloat16": 5e-2}


def block_macs(block: Block, batch: int) -> int:
    """Analytic MACs of one forward pass through ``block`` (its six convs, every tap)."""
    hw = (block.size, block.size)
    convs = [
        ((*hw, block.c_in), block.c1x1, 1),
        ((*hw, block.c_in), block.c3x3_reduce, 1),
        ((*hw, block.c3x3_reduce), block.c3x3, 3),
        ((*hw, block.c_in), block.c5x5_reduce, 1),
        ((*hw, block.c5x5_reduce), block.c5x5, 5),
        ((*hw, block.c_in), block.pool_proj, 1),
    ]
    return sum(jaxconv.conv_cost(shape, c_out, k, batch=batch).macs for shape, c_out, k in convs)


def _functions(block: Block, dtype: str, fuse: bool):
    """``(params, {"forward": f(params, x), "fwd+bwd": g(params, x)})`` for ``block``."""
    from flax import nnx

    from jaxconv.nn import Inception

    model = Inception(
        block.c_in, block.widths, fuse_1x1=fuse, dtype=jnp.dtype(dtype), rngs=nnx.Rngs(0)
    )
    graphdef, params = nnx.split(model)

    def forward(params, x):
        return nnx.merge(graphdef, params)(x)

    def loss(params, x):
        y = forward(params, x).astype(jnp.float32)
        return jnp.mean(y * y)

    def forward_backward(params, x):
        return jax.value_and_grad(loss)(params, x)

    return params, {"forward": forward, "fwd+bwd": forward_backward}


def _torch(ctx: Context, block: Block, params, x, dtype: str):
    """(forward runner, fwd+bwd runner, forward output) of the block in PyTorch, with the
    weights of ``params`` (an unfused :class:`jaxconv.nn.Inception`'s state)."""
    peer = ctx.peer
    torch, F = peer.torch, peer.torch.nn.functional
    p = _flat_arrays(params)
    names = (
        "branch_1x1",
        "branch_3x3.reduce",
        "branch_3x3.conv",
        "branch_5x5.reduce",
        "branch_5x5.conv",
        "branch_pool.proj",
    )
    weights = {
        n: (peer.kernel(p[f"{n}.kernel"], dtype), peer.vector(p[f"{n}.bias"], dtype)) for n in names
    }
    xt = peer.activation(x, dtype)

    def block_fn(wb):
        def unit(h, name):
            w, b = wb[name]
            return F.relu(F.conv2d(h, w, b, padding=w.shape[-1] // 2))

        ys = [
            unit(xt, "branch_1x1"),
            unit(unit(xt, "branch_3x3.reduce"), "branch_3x3.conv"),
            unit(unit(xt, "branch_5x5.reduce"), "branch_5x5.conv"),
            unit(F.max_pool2d(xt, 3, stride=1, padding=1), "branch_pool.proj"),
        ]
        return torch.cat(ys, dim=1)

    trainable = {n: tuple(t.clone().requires_grad_() for t in wb) for n, wb in weights.items()}
    leaves = [t for wb in trainable.values() for t in wb]

    def forward_backward():
        y = block_fn(trainable).float()
        loss = (y * y).mean()
        return torch.autograd.grad(loss, leaves)

    forward = peer.runner(lambda: block_fn(weights))
    return forward, peer.train_runner(forward_backward), forward()


def _flat_arrays(params) -> dict[str, np.ndarray]:
    """``{"branch_3x3.conv.kernel": array, ...}`` from an ``nnx.State``."""
    from flax import nnx

    return {".".join(map(str, path)): np.asarray(v[...]) for path, v in nnx.to_flat_state(params)}


def _case(ctx: Context, block: Block, batch: int, dtype: str, default_fuse: bool) -> list[dict]:
    (x,) = ctx.rng_arrays(
        ctx.seed(block.name, batch, dtype), [(batch, block.size, block.size, block.c_in)], dtype
    )
    fns = {fuse: _functions(block, dtype, fuse) for fuse in (False, True)}
    compiled = {}
    for pass_name in PASSES:
        for fuse, (params, passes) in fns.items():
            params = jax.device_put(params, ctx.device)
            compiled[(pass_name, fuse)] = ctx.compile(passes[pass_name], params, x)
    names = {key: f"{key[0]}, {'fused' if key[1] else 'unfused'} 1x1" for key in compiled}
    runners = {names[key]: c for key, c in compiled.items()}
    peer_err = None
    if ctx.peer is not None:
        *peer, y_torch = _torch(ctx, block, fns[False][0], x, dtype)
        peer_err = check_agreement(
            f"{block.name} {dtype}",
            compiled[("forward", False)](),
            y_torch,
            PEER_TOLERANCE.get(dtype, 3e-2),
        )
        runners.update({f"torch {p}": run for p, run in zip(PASSES, peer)})
    timings = ctx.time(runners)
    macs = block_macs(block, batch)
    records = []
    if ctx.peer is not None:
        for pass_name in PASSES:
            timing = timings[f"torch {pass_name}"]
            fields: dict[str, Any] = {
                "layer": block.name,
                "peer": "torch",
                "ratio_vs_jaxconv": timing.median
                / timings[names[(pass_name, default_fuse)]].median,
                "peer_max_rel_err": peer_err,
                "pass": pass_name,
            }
            records.append(
                ctx.record(
                    NAME,
                    f"torch {pass_name}",
                    default=False,
                    batch=batch,
                    dtype=dtype,
                    timing=timing,
                    macs=macs * (1 if pass_name == "forward" else 3),
                    **fields,
                )
            )
    for (pass_name, fuse), c in compiled.items():
        timing = timings[names[(pass_name, fuse)]]
        unfused = timings[names[(pass_name, False)]]
        torch_s = timings.get(f"torch {pass_name}")
        extra: dict[str, Any] = {
            "layer": block.name,
            "fuse_1x1": fuse,
            "pass": pass_name,
            "speedup_vs_unfused": unfused.median / timing.median,
        }
        if torch_s is not None:
            extra["speed_vs_torch"] = torch_s.median / timing.median
        records.append(
            ctx.record(
                NAME,
                names[(pass_name, fuse)],
                default=fuse == default_fuse,
                batch=batch,
                dtype=dtype,
                timing=timing,
                macs=macs * (1 if pass_name == "forward" else 3),
                compiled=c,
                **extra,
            )
        )
    return records


def run(ctx: Context) -> list[dict]:
    """Times the four variants for every (block, dtype, batch); see the module docstring."""
    from jaxconv.nn import Inception

    default_fuse = inspect.signature(Inception.__init__).parameters["fuse_1x1"].default
    quick = ctx.options.quick
    blocks = ctx.select((TINY,) if quick else BLOCKS, NAME)
    dtypes = ctx.dtypes(("float32",) if quick else ("float32", "bfloat16"))
    grid = [(b, n, d) for b in blocks for d in dtypes for n in ctx.batches((8,), quick=(2,))]
    records = []
    for block, batch, dtype in ctx.track(grid, lambda c: f"{c[0].name} batch {c[1]} {c[2]}"):
        records += _case(ctx, block, batch, dtype, default_fuse)
    for dtype in dtypes:
        for pass_name in PASSES:
            rows = [
                r
                for r in records
                if r["dtype"] == dtype and r["pass"] == pass_name and r.get("fuse_1x1")
            ]
            wins = sum(r["speedup_vs_unfused"] > 1 for r in rows)
            speedups = ", ".join(f"{r['speedup_vs_unfused']:.2f}×" for r in rows)
            ctx.note(
                f"{dtype} {pass_name}: fusing the 1×1s is faster on {wins} of {len(rows)} "
                f"blocks (fused/unfused speed: {speedups}); jaxconv.nn.Inception ships "
                f"fuse_1x1={default_fuse}."
            )
            peer_rows = [
                r
                for r in records
                if r["dtype"] == dtype and r["pass"] == pass_name and "speed_vs_torch" in r
            ]
            for fuse in (False, True):
                speeds = {
                    r["layer"]: r["speed_vs_torch"] for r in peer_rows if r["fuse_1x1"] == fuse
                }
                if speeds:
                    ctx.note(
                        f"{dtype} {pass_name}, {'fused' if fuse else 'unfused'} 1×1s: "
                        f"median {np.median(list(speeds.values())):.2f}× torch's speed; "
                        + ", ".join(
                            f"{k.removeprefix('inception_')} {v:.2f}×" for k, v in speeds.items()
                        )
                    )
    return records
