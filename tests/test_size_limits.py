"""Sizes at and past XLA's integer limits: every public op either computes them right or raises a
clear ``ValueError``/``TypeError`` at trace time — never aborts the process, raises an internal
error, hangs or returns a wrong value.

Every size argument of every op (strides, dilations, paddings, window and kernel sizes, input
sizes, channel counts, the batch) is swept over ``2**31 - 1``, ``2**31``, ``2**32 - 1``,
``2**32 + 1`` and ``2**62``, each once with ``implementation="xla"`` and once with the default
plan (oneDNN disabled: its own 32-bit bounds are ``test_hostile.py``'s). A case is traced,
compiled and, where its arrays are small, run forward and backward (one ``jax.vjp``) against an
index-arithmetic NumPy reference that never materializes the padding or the dilation; where
they are not, ``jax.ShapeDtypeStruct`` stands in and nothing is allocated. The same cases at an
ordinary value (:data:`ORDINARY`) show the references agree with the ops. The limits are
``jaxconv._geometry.check_xla_limits``'s: 2**31 on window geometry, 2**60 elements per array.

A crash inside XLA takes the whole process down (``conv_transpose(x, w, stride=2**32 + 1)``
aborted in "overflow in static extent product"), so each op's cases run in one subprocess that
prints a JSON line per case; when it dies, the case it had started is recorded as the crash
and the rest run in a fresh one. Run this file as a script to print the whole table::

    JAXCONV_DISABLE_ONEDNN=1 python tests/test_size_limits.py            # every op
    python tests/test_size_limits.py conv max_pool                        # some, oneDNN on
"""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

#: The swept values: int32's last, past int32 (as signed and unsigned), past uint32, and a
#: value whose products with any size overflow int64.
BIG = (2**31 - 1, 2**31, 2**32 - 1, 2**32 + 1, 2**62)

#: An ordinary value swept through the same cases (``implementation="xla"`` only), so every
#: reference below is seen to agree with the op where nothing is at a limit.
ORDINARY = 3

#: Arrays with at most this many elements are materialized and the case is run.
SMALL = 100_000

#: Seconds one case may take in the subprocess before it counts as a hang.
CASE_TIMEOUT = 60

#: The child's address-space limit: a huge host allocation fails (MemoryError) instead of
#: taking the machine's memory.
MEMORY_LIMIT = 8 * 2**30

X = (1, 5, 5, 2)  # NHWC
W = (3, 3, 2, 3)  # HWIO

# Each builder gives, for a swept value v, one case per size argument (and per way of reaching
# a limit through it): (label, array shapes, kwargs, the arguments a clear error may name).
# An int broadcasts to both spatial dims, as users write it.


def _conv_cases(v):
    return [
        ("stride", (X, W), dict(stride=v), ("stride",)),
        ("dilation", (X, W), dict(dilation=v), ("dilation",)),  # SAME: pads of ~v
        ("dilation-valid", (X, W), dict(dilation=v, padding="VALID"), ("dilation",)),
        ("dilation-one-tap", (X, (1, 3, 2, 3)), dict(dilation=(v, 1)), ("dilation",)),
        ("input_dilation", (X, W), dict(input_dilation=v), ("input_dilation",)),
        (
            "input_dilation-strided",
            (X, W),
            dict(input_dilation=v, stride=v),
            ("input_dilation", "stride"),
        ),
        (
            "input_dilation-one-pixel",
            ((1, 1, 5, 2), W),
            dict(input_dilation=(v, 1)),
            ("input_dilation",),
        ),
        ("padding", (X, W), dict(padding=v), ("padding",)),
        ("padding-strided", (X, W), dict(padding=v, stride=v), ("padding", "stride")),
        ("padding-lo-crop-hi", (X, W), dict(padding=((v, -v), (0, 0))), ("padding",)),
        ("padding-crop-lo-hi", (X, W), dict(padding=((-v, v), (0, 0))), ("padding",)),
        ("padding-negative", (X, W), dict(padding=-v), ("padding",)),
        ("kernel", (X, (v, 1, 2, 3)), {}, ("w", "padding")),
        ("spatial", ((1, v, v, 2), W), {}, ("x", "padding")),
        ("spatial-one-dim", ((1, v, 1, 2), (3, 1, 2, 3)), {}, ("x", "padding")),
        ("in_channels", ((1, 5, 5, v), (3, 3, v, 3)), {}, ("x",)),
        ("out_channels", (X, (3, 3, 2, v)), {}, ("w",)),
        ("batch", ((v, 5, 5, 2), W), {}, ("x",)),
        ("groups", ((1, 5, 5, v), (3, 3, 1, v)), dict(groups=v), ("groups", "x")),
    ]


def _conv1x1_cases(v):
    return [
        ("spatial", ((1, v, v, 2), (2, 3)), {}, ("x",)),
        ("in_channels", ((1, 5, 5, v), (v, 3)), {}, ("x",)),
        ("out_channels", (X, (2, v)), {}, ("w",)),
        ("batch", ((v, 5, 5, 2), (2, 3)), {}, ("x",)),
        ("leading-dims", ((v, v, 2), (2, 3)), {}, ("x",)),
    ]


def _bottleneck_cases(v):
    xr, wr, ws = (1, 5, 5, 4), (4, 2), W
    return [
        ("stride", (xr, wr, ws), dict(stride=v), ("stride",)),
        ("dilation", (xr, wr, ws), dict(dilation=v), ("dilation",)),
        ("padding", (xr, wr, ws), dict(padding=v), ("padding",)),
        ("padding-strided", (xr, wr, ws), dict(padding=v, stride=v), ("padding", "stride")),
        ("spatial", ((1, v, v, 4), wr, ws), {}, ("x", "padding")),
        ("in_channels", ((1, 5, 5, v), (v, 2), ws), {}, ("x",)),
        ("reduce_channels", (xr, (4, v), (3, 3, v, 3)), {}, ("w_reduce", "w_spatial")),
        ("out_channels", (xr, wr, (3, 3, 2, v)), {}, ("w_spatial",)),
        ("kernel", (xr, wr, (v, 1, 2, 3)), {}, ("w_spatial", "padding")),
    ]


def _conv_transpose_cases(v):
    x, x1 = (1, 4, 4, 2), (1, 1, 1, 2)
    cases = [
        ("stride", (x, W), dict(stride=v), ("stride",)),  # the abort
        ("stride-one-dim", ((1, 3, 4, 2), W), dict(stride=(v, 1)), ("stride",)),
        ("stride-one-pixel", (x1, W), dict(stride=v), ("stride",)),
        ("dilation", (x, W), dict(dilation=v), ("dilation",)),
        ("dilation-one-dim", (x, W), dict(dilation=(v, 1)), ("dilation",)),
        ("padding", (x, W), dict(padding=v), ("padding",)),
        ("padding-same", (x, W), dict(padding="SAME", stride=v), ("stride",)),
        ("output_padding", (x, W), dict(output_padding=v), ("output_padding",)),
        (
            "output_padding-strided",
            (x1, W),
            dict(output_padding=v - 1, stride=v),
            ("stride", "output_padding", "x"),
        ),
        ("kernel", (x, (v, 1, 2, 3)), {}, ("w",)),
        ("spatial", ((1, v, v, 2), W), {}, ("x",)),
        ("in_channels", ((1, 4, 4, v), (3, 3, v, 3)), {}, ("x",)),
        ("out_channels", (x, (3, 3, 2, v)), {}, ("w",)),
        ("groups", ((1, 4, 4, v), (3, 3, 1, v)), dict(groups=v), ("groups", "x")),
    ]
    # PyTorch's padding=0 where a case names none: the sweep was written for it (the op's
    # default is "SAME" since issue 25; "padding-same" covers that)
    return [(name, arrays, {"padding": 0, **kw}, args) for name, arrays, kw, args in cases]


def _depthwise_conv_cases(v):
    w = (3, 3, 1, 2)
    return [
        ("stride", (X, w), dict(stride=v), ("stride",)),
        ("dilation", (X, w), dict(dilation=v), ("dilation",)),
        ("padding", (X, w), dict(padding=v), ("padding",)),
        ("padding-strided", (X, w), dict(padding=v, stride=v), ("padding", "stride")),
        ("multiplier", ((1, 5, 5, 1), (3, 3, 1, v)), dict(multiplier=v), ("w",)),
        ("channels", ((1, 5, 5, v), (3, 3, 1, v)), {}, ("x",)),
        ("kernel", (X, (v, 1, 1, 2)), {}, ("w", "padding")),
        ("spatial", ((1, v, v, 2), w), {}, ("x", "padding")),
    ]


def _separable_conv_cases(v):
    wd, wp = (3, 3, 1, 2), (2, 3)
    return [
        ("stride", (X, wd, wp), dict(stride=v), ("stride",)),
        ("dilation", (X, wd, wp), dict(dilation=v), ("dilation",)),
        ("padding-strided", (X, wd, wp), dict(padding=v, stride=v), ("padding", "stride")),
        ("multiplier", ((1, 5, 5, 1), (3, 3, 1, v), (v, 3)), {}, ("w_depthwise",)),
        ("out_channels", (X, wd, (2, v)), {}, ("w_pointwise",)),
        ("spatial", ((1, v, v, 2), wd, wp), {}, ("x", "padding")),
    ]


def _pool_cases(v):
    return [
        ("window", (X,), dict(window=v, padding="SAME"), ("window",)),
        ("window-stride-1", (X,), dict(window=v, stride=1, padding="SAME"), ("window", "padding")),
        ("window-ceil", (X,), dict(window=v, ceil_mode=True), ("window",)),
        ("window-valid", (X,), dict(window=v), ("window",)),
        ("stride", (X,), dict(window=2, stride=v), ("stride",)),
        ("stride-ceil", (X,), dict(window=2, stride=v, ceil_mode=True), ("stride",)),
        ("padding", (X,), dict(window=2, padding=v), ("padding",)),
        ("padding-window", (X,), dict(window=v, stride=1, padding=v // 2), ("window", "padding")),
        ("spatial", ((1, v, v, 2),), dict(window=2), ("x",)),
        ("spatial-one-dim", ((1, v, 1, 2),), dict(window=(2, 1)), ("x",)),
        ("channels", ((1, 5, 5, v),), dict(window=2), ("x",)),
        ("batch", ((v, 5, 5, 2),), dict(window=2), ("x",)),
    ]


def _global_avg_pool_cases(v):
    return [
        ("spatial", ((1, v, v, 2),), {}, ("x",)),
        ("channels", ((1, 5, 5, v),), {}, ("x",)),
        ("batch", ((v, 5, 5, 2),), {}, ("x",)),
    ]


#: op -> (case builder, whether it takes ``implementation``)
OPS = {
    "conv": (_conv_cases, True),
    "conv1x1": (_conv1x1_cases, False),
    "bottleneck": (_bottleneck_cases, True),
    "conv_transpose": (_conv_transpose_cases, True),
    "depthwise_conv": (_depthwise_conv_cases, True),
    "separable_conv": (_separable_conv_cases, True),
    "max_pool": (_pool_cases, False),
    "avg_pool": (_pool_cases, False),
    "global_avg_pool": (_global_avg_pool_cases, False),
}


def cases(op):
    """Every case of ``op``: ``(id, shapes, kwargs, names)``, in a fixed order — each swept
    value with ``implementation="xla"`` and with the default plan, then :data:`ORDINARY`."""
    build, takes_impl = OPS[op]
    runs = [(impl, v) for impl in ("xla", "default") for v in BIG] if takes_impl else []
    runs = runs or [("-", v) for v in BIG]
    runs.append(("xla" if takes_impl else "-", ORDINARY))
    out = []
    for impl, v in runs:
        for arg, shapes, kwargs, names in build(v):
            kwargs = dict(kwargs)
            if impl == "xla":
                kwargs["implementation"] = "xla"
                if op == "bottleneck":
                    kwargs["reduce_implementation"] = "xla"
            out.append((f"{op}/{arg}/{v}/{impl}", shapes, kwargs, names))
    return out


# --- the references: index arithmetic, nothing padded or dilated in memory -------------------


def _per_dim(value, ndim):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * ndim


def _conv_ref(x, w, ct, *, stride=1, padding="SAME", dilation=1, input_dilation=1, groups=1):
    """``(y, dx, dw)``: the conv of ``x`` (NHWC) with ``w`` (HWIO) and its VJP for ``ct``."""
    import reference

    ndim = x.ndim - 2
    kernel = w.shape[:ndim]
    s, d, i = (_per_dim(a, ndim) for a in (stride, dilation, input_dilation))
    sizes = tuple((n - 1) * m + 1 for n, m in zip(x.shape[1:-1], i))
    pairs, mode = reference.pad_pairs(padding, sizes, kernel, s, d)
    assert mode == "constant"
    outs = tuple(
        (n + lo + hi - dd * (k - 1) - 1) // ss + 1
        for n, (lo, hi), k, ss, dd in zip(sizes, pairs, kernel, s, d)
    )
    cig, cog = x.shape[-1] // groups, w.shape[-1] // groups
    y = np.zeros((x.shape[0], *outs, w.shape[-1]))
    dx, dw = np.zeros(x.shape), np.zeros(w.shape)
    ct = np.zeros(y.shape) if ct is None else ct
    for o in itertools.product(*map(range, outs)):
        for t in itertools.product(*map(range, kernel)):
            p = [oo * ss + tt * dd - lo for oo, ss, tt, dd, (lo, _) in zip(o, s, t, d, pairs)]
            if not all(0 <= q < n and q % m == 0 for q, n, m in zip(p, sizes, i)):
                continue
            at = (slice(None), *(q // m for q, m in zip(p, i)))
            for g in range(groups):
                ci, co = slice(g * cig, (g + 1) * cig), slice(g * cog, (g + 1) * cog)
                y[(slice(None), *o, co)] += x[(*at, ci)] @ w[(*t, slice(None), co)]
                dx[(*at, ci)] += ct[(slice(None), *o, co)] @ w[(*t, slice(None), co)].T
                dw[(*t, slice(None), co)] += x[(*at, ci)].T @ ct[(slice(None), *o, co)]
    return y, dx, dw


def _conv_transpose_ref(
    x, w, ct, *, stride=1, padding="SAME", output_padding=0, dilation=1, groups=1
):
    """PyTorch's transposed conv by its definition: input pixel ``q``, tap ``t`` adds
    ``x[q]·w[t]`` at output ``q·s + t·d - lo``. A string padding is ``lax.conv_transpose``'s
    pads ``(a, b)`` on the stride-dilated input, which crop ``d·(k-1) - a`` (and ``- b``)."""
    ndim = x.ndim - 2
    kernel = w.shape[:ndim]
    s, d, a = (_per_dim(v, ndim) for v in (stride, dilation, output_padding))
    if isinstance(padding, str):
        pairs = []
        for k, ss, dd in zip(kernel, s, d):
            span = dd * (k - 1) + 1
            if padding == "SAME":
                total = span + ss - 2
                lo = span - 1 if ss > span - 1 else -(-total // 2)
            else:
                total, lo = span + ss - 2 + max(span - ss, 0), span - 1
            pairs.append((span - 1 - lo, span - 1 - (total - lo)))
    else:
        pairs = [p if isinstance(p, tuple) else (p, p) for p in _per_dim(padding, ndim)]
    outs = tuple(
        (n - 1) * ss - lo - hi + dd * (k - 1) + aa + 1
        for n, ss, (lo, hi), dd, k, aa in zip(x.shape[1:-1], s, pairs, d, kernel, a)
    )
    cig, cog = x.shape[-1] // groups, w.shape[-1] // groups
    y = np.zeros((x.shape[0], *outs, w.shape[-1]))
    dx, dw = np.zeros(x.shape), np.zeros(w.shape)
    for q in itertools.product(*map(range, x.shape[1:-1])):
        for t in itertools.product(*map(range, kernel)):
            p = tuple(qq * ss + tt * dd - lo for qq, ss, tt, dd, (lo, _) in zip(q, s, t, d, pairs))
            if not all(0 <= pp < o for pp, o in zip(p, outs)):
                continue
            for g in range(groups):
                ci, co = slice(g * cig, (g + 1) * cig), slice(g * cog, (g + 1) * cog)
                xq, cp = x[(slice(None), *q, ci)], ct[(slice(None), *p, co)]
                y[(slice(None), *p, co)] += xq @ w[(*t, slice(None), co)]
                dx[(slice(None), *q, ci)] += cp @ w[(*t, slice(None), co)].T
                dw[(*t, slice(None), co)] += xq.T @ cp
    return y, dx, dw


def _pool_ref(op, x, ct, *, window, stride=None, padding="VALID", ceil_mode=False):
    """``(y, dx)`` of a max or average pool (PyTorch's divisor), windows clipped to the input."""
    import reference

    ndim = x.ndim - 2
    window = _per_dim(window, ndim)
    stride = window if stride is None else _per_dim(stride, ndim)
    pairs, mode = reference.pad_pairs(padding, x.shape[1:-1], window, stride, (1,) * ndim)
    assert mode == "constant"
    fn = reference.max_pool if op == "max_pool" else reference.avg_pool
    y = fn(x, window, stride=stride, padding=padding, ceil_mode=ceil_mode)
    if op == "max_pool":
        return y, reference.max_pool_grad(
            x, ct, window, stride=stride, padding=padding, ceil_mode=ceil_mode
        )
    per_dim = [
        reference._pool_bounds(n, k, s, lo, hi, ceil_mode)
        for n, k, s, (lo, hi) in zip(x.shape[1:-1], window, stride, pairs)
    ]
    dx = np.zeros(x.shape)
    for o in itertools.product(*(range(len(b)) for b in per_dim)):
        bounds = [per_dim[i][oo] for i, oo in enumerate(o)]
        divisor = math.prod(end - start for start, _, end in bounds)
        real = tuple(
            slice(max(start, 0), min(stop, n)) for (start, stop, _), n in zip(bounds, x.shape[1:-1])
        )
        share = ct[(slice(None), *o)] / divisor  # [N, C]
        dx[(slice(None), *real, slice(None))] += share.reshape(share.shape[0], *(1,) * ndim, -1)
    return y, dx


def _reference(op, arrays, ct, kwargs):
    """``(y, *grads)`` in float64 for the op's array arguments."""
    kw = {k: v for k, v in kwargs.items() if "implementation" not in k}
    if op == "conv":
        return _conv_ref(*arrays, ct, **kw)
    if op == "conv_transpose":
        return _conv_transpose_ref(*arrays, ct, **kw)
    if op == "depthwise_conv":
        kw.pop("multiplier", None)
        return _conv_ref(*arrays, ct, groups=arrays[0].shape[-1], **kw)
    if op == "separable_conv":
        x, wd, wp = arrays
        h, _, _ = _conv_ref(x, wd, None, groups=x.shape[-1], **kw)
        y = h @ wp
        h, dx, dwd = _conv_ref(x, wd, ct @ wp.T, groups=x.shape[-1], **kw)
        return y, dx, dwd, h.reshape(-1, h.shape[-1]).T @ ct.reshape(-1, ct.shape[-1])
    if op == "bottleneck":
        x, wr, ws = arrays
        pre = x @ wr
        h = np.maximum(pre, 0)
        y, dh, dws = _conv_ref(h, ws, ct, **kw)
        dpre = dh * (pre > 0)
        dwr = x.reshape(-1, x.shape[-1]).T @ dpre.reshape(-1, dpre.shape[-1])
        return y, dpre @ wr.T, dwr, dws
    if op == "conv1x1":
        x, w = arrays
        return x @ w, ct @ w.T, x.reshape(-1, x.shape[-1]).T @ ct.reshape(-1, ct.shape[-1])
    if op in ("max_pool", "avg_pool"):
        return _pool_ref(op, *arrays, ct, **kw)
    if op == "global_avg_pool":
        (x,) = arrays
        n = math.prod(x.shape[1:-1])
        return x.mean(axis=(1, 2)), np.broadcast_to(ct[:, None, None, :] / n, x.shape)
    raise AssertionError(op)


# --- the child: one op's cases, a JSON line each -------------------------------------------


def _run_case(op, shapes, kwargs):
    """Traces, compiles and (small arrays) runs one case; ``{"outcome": ..., ...}``."""
    import jax
    import jax.numpy as jnp

    import jaxconv

    fn = getattr(jaxconv, op)
    small = all(math.prod(s) <= SMALL for s in shapes)
    rng = np.random.default_rng(0)
    if small:  # small integers: every sum below is exact in float32
        arrays = [rng.integers(-2, 3, s).astype(np.float32) for s in shapes]
        args = [jnp.asarray(a) for a in arrays]
    else:
        args = [jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes]

    def forward(*a):
        return fn(*a, **kwargs)

    def forward_and_vjp(ct, *a):
        y, vjp = jax.vjp(forward, *a)
        return y, *vjp(ct)

    phase = "trace"
    try:
        out = jax.eval_shape(forward, *args)
        ct_spec = jax.ShapeDtypeStruct(out.shape, out.dtype)
        lowered = jax.jit(forward_and_vjp).lower(ct_spec, *args)
        phase = "compile"
        compiled = lowered.compile()
        if not small or math.prod(out.shape) > SMALL:
            return {"outcome": "ok", "run": False, "out": list(out.shape)}
        phase = "run"
        ct = rng.integers(-2, 3, out.shape).astype(np.float32)
        got = [np.asarray(r, np.float64) for r in compiled(jnp.asarray(ct), *args)]
        phase = "reference"
        want = _reference(op, arrays, ct.astype(np.float64), kwargs)
        for name, g, r in zip(("y", *(f"d{i}" for i in range(len(arrays)))), got, want):
            if g.shape != np.shape(r) or not np.allclose(g, r, rtol=1e-5, atol=1e-4):
                err = np.max(np.abs(g - r)) if g.shape == np.shape(r) else "shape"
                return {
                    "outcome": "wrong",
                    "msg": f"{name}: shape {g.shape} vs {np.shape(r)}, max error {err}",
                }
        return {"outcome": "ok", "run": True, "out": list(out.shape)}
    except (ValueError, TypeError) as e:
        return {"outcome": type(e).__name__, "phase": phase, "msg": str(e)[:800]}
    except Exception as e:  # the sweep records whatever else escapes
        return {"outcome": "error", "phase": phase, "type": type(e).__name__, "msg": str(e)[:800]}


def _child(op, start):
    import faulthandler
    import resource
    import warnings

    try:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    except (ValueError, OSError):  # a platform that will not lower it: sweep without
        pass
    import jax

    jax.config.update("jax_numpy_rank_promotion", "raise")
    import jaxconv  # noqa: F401  (imported before warnings become errors)

    warnings.simplefilter("error")
    for case_id, shapes, kwargs, _ in cases(op)[start:]:
        print(json.dumps({"start": case_id}), flush=True)
        faulthandler.dump_traceback_later(CASE_TIMEOUT, exit=True)
        result = _run_case(op, shapes, kwargs)
        faulthandler.cancel_dump_traceback_later()
        print(json.dumps({"id": case_id, **result}), flush=True)


# --- the parent ------------------------------------------------------------------------------


def sweep_iter(op, env=None):
    """Yields ``(case id, result)`` for every case of ``op`` as the subprocesses report them,
    each death recorded against the case it was running (``"died"``, or ``"hang"`` past
    :data:`CASE_TIMEOUT`)."""
    ids = [c[0] for c in cases(op)]
    done = 0
    env = {**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})}
    while done < len(ids):
        running = None
        with (
            tempfile.TemporaryFile("w+") as stderr,
            subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--child", op, str(done)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=env,
            ) as proc,
        ):
            for line in proc.stdout:
                if not line.startswith("{"):
                    continue
                record = json.loads(line)
                if "start" in record:
                    running = record["start"]
                else:
                    done += 1
                    running = None
                    yield record.pop("id"), record
            rc = proc.wait()
            stderr.seek(0)
            err = stderr.read()
        if running is not None:
            done += 1
            yield (
                running,
                {
                    "outcome": "hang" if "Timeout (" in err else "died",
                    "rc": rc,
                    "msg": err.strip()[-800:],
                },
            )
        elif rc != 0 or done < len(ids):
            raise RuntimeError(f"the {op} sweep died outside a case (rc {rc}): {err[-3000:]}")


def sweep(op, env=None):
    """``{case id: result}`` for every case of ``op`` (see :func:`sweep_iter`)."""
    return dict(sweep_iter(op, env))


def _clear(result, names):
    """Whether a result keeps the promise: it ran right, or a ValueError/TypeError at trace
    time names one of the arguments (`in backticks`) or states the sizes that do not fit."""
    if result["outcome"] == "ok":
        return True
    if result["outcome"] not in ("ValueError", "TypeError") or result["phase"] != "trace":
        return False
    msg = result["msg"]
    return any(f"`{name}`" in msg for name in names) or "must fit in the padded input" in msg


@pytest.mark.parametrize("op", sorted(OPS))
def test_sizes_past_xla_limits_run_right_or_raise_clearly(op):
    """Every case of the op, in one subprocess (more after a death): each runs right (checked
    against the reference where its arrays are small) or is a clear error at trace time."""
    by_id = {c[0]: c[3] for c in cases(op)}
    results = sweep(op, {"JAXCONV_DISABLE_ONEDNN": "1"})
    assert set(results) == set(by_id)
    bad = {i: r for i, r in results.items() if not _clear(r, by_id[i])}
    assert not bad, "\n".join(f"{i}: {r}" for i, r in bad.items())
    # The sweep is not vacuous: every ordinary case ran against its reference, or is an
    # ordinary error of its own (a window that does not fit, say).
    for case_id, result in results.items():
        if case_id.split("/")[2] == str(ORDINARY) and result["outcome"] == "ok":
            assert result["run"], case_id


# --- the messages, in-process: each is raised while tracing, before anything reaches XLA ------

_WHY32 = r": XLA holds convolution and pooling geometry in 32-bit ints and crashes or computes"
_WHY64 = r": XLA counts an array's bytes in int64 and aborts the process past 2\*\*63"

#: (id, op, array shapes, kwargs, message regex)
MESSAGES = [
    (
        "the-issue",
        "conv_transpose",
        ((1, 4, 4, 2), W),
        dict(stride=2**32 + 1),
        r"`stride` \(=4294967297\) must be < 2\*\*31" + _WHY32,
    ),
    (
        "conv-transpose-stretch",
        "conv_transpose",
        ((1, 4, 4, 2), W),
        dict(stride=2**30),
        r"`stride` \(=1073741824\) stretches the input size 4 to \(4-1\)·1073741824\+1 = "
        r"3221225473, which must be < 2\*\*31" + _WHY32,
    ),
    (
        "dilation-under-same",  # lax's forward is right here, its weight gradient is not
        "conv",
        (X, W),
        dict(dilation=2**31 - 1),
        r"`dilation` \(=2147483647\) spreads the kernel size 3 over 2147483647·\(3-1\)\+1 = "
        r"4294967295, which must be < 2\*\*31" + _WHY32,
    ),
    (
        "input-dilation",
        "conv",
        (X, W),
        dict(input_dilation=2**30),
        r"`input_dilation` \(=1073741824\) stretches the input size 5 to \(5-1\)·1073741824\+1 "
        r"= 4294967297, which must be < 2\*\*31" + _WHY32,
    ),
    (
        "one-pad",
        "conv",
        (X, W),
        dict(padding=((2**31, -(2**31)), (0, 0))),
        r"`padding` \(=\(2147483648, -2147483648\)\) must lie in \(-2\*\*31, 2\*\*31\)" + _WHY32,
    ),
    (
        "padded-input",
        "conv",
        (X, W),
        dict(padding=((2**30, 2**30), (1, 1))),
        r"the padded input \(=2147483653: size 5 \+ `padding` 1073741824 \+ 1073741824\) must be "
        r"< 2\*\*31" + _WHY32,
    ),
    (
        "kernel-under-same",
        "conv",
        (X, (2**31 - 1, 1, 2, 3)),
        {},
        r"the padded input \(=2147483651: size 5 \+ `padding` 'SAME' 1073741823 \+ 1073741823\)",
    ),
    (
        "batch",
        "conv",
        ((2**31, 5, 5, 2), W),
        {},
        r"`x` batch \(=2147483648\) must be < 2\*\*31" + _WHY32,
    ),
    (
        "elements",
        "conv",
        ((2**30, 1, 1, 2**30), (1, 1, 2**30, 1)),
        {},
        r"`x` \(shape \(1073741824, 1, 1, 1073741824\): 1152921504606846976 elements\) must have "
        r"fewer than 2\*\*60 elements" + _WHY64,
    ),
    (
        "expanded-groups",
        "depthwise_conv",
        ((1, 5, 5, 2**29), (3, 3, 1, 2**29)),
        {},
        r"the kernel XLA expands 536870912 `groups` of `x`'s 536870912 channels to \(shape "
        r"\(3, 3, 536870912, 536870912\): 2594073385365405696 elements\) must have fewer than "
        r"2\*\*60 elements" + _WHY64,
    ),
    (
        "bottleneck-spatial-kernel",
        "bottleneck",
        ((1, 5, 5, 4), (4, 2), (2**31, 1, 2, 3)),
        {},
        r"`w_spatial` kernel size \(=2147483648\) must be < 2\*\*31" + _WHY32,
    ),
    (
        "window",
        "max_pool",
        (X,),
        dict(window=2**31, padding="SAME"),
        r"`window` \(=2147483648\) must be < 2\*\*31" + _WHY32,
    ),
    (
        "ceil-mode",
        "avg_pool",
        ((1, 2**31 - 4, 1, 1),),
        dict(window=(4, 1), stride=(4, 1), padding=((2, 0), (0, 0)), ceil_mode=True),
        r"the padded input \(=2147483648: size 2147483644 \+ `padding` 2 \+ 0 \+ 2 "
        r"\(`ceil_mode`\)\) must be < 2\*\*31" + _WHY32,
    ),
    (
        "pool-padded-x",
        "max_pool",
        (X,),
        dict(window=2**31 - 1, padding="SAME"),
        r"`x` padded by `padding` 'SAME' for `window` \(2147483647, 2147483647\) \(shape",
    ),
    (
        "conv1x1",
        "conv1x1",
        ((2**40, 2**20), (2**20, 1)),
        {},
        r"`x` \(shape \(1099511627776, 1048576\): 1152921504606846976 elements\) must have "
        r"fewer than 2\*\*60 elements" + _WHY64,
    ),
    (
        "global-avg-pool",
        "global_avg_pool",
        ((2**20, 2**20, 2**20, 1),),
        {},
        r"`x` \(shape \(1048576, 1048576, 1048576, 1\)",
    ),
]


@pytest.mark.parametrize(
    "op, shapes, kwargs, match", [m[1:] for m in MESSAGES], ids=[m[0] for m in MESSAGES]
)
def test_limit_messages_name_the_argument_the_rule_and_the_value(op, shapes, kwargs, match):
    import jax
    import jax.numpy as jnp

    import jaxconv

    args = [jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes]
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(lambda *a: getattr(jaxconv, op)(*a, **kwargs), *args)


@pytest.mark.parametrize("input_dilation", [1, 2])
@pytest.mark.parametrize("pads", [(-1, 1), (-2, 1), (-3, 3), (-2, 0), (1, -2), (-9, 9)])
def test_negative_low_pad_beside_a_positive_high_one(pads, input_dilation):
    """XLA:CPU read out of bounds for these (garbage values; a segfault at 2**31 - 1): the xla
    lowering crops first. Forward and both gradients against the reference."""
    import jax
    import jax.numpy as jnp

    import jaxconv

    rng = np.random.default_rng(sum(map(ord, f"{pads}{input_dilation}")))
    x = rng.integers(-2, 3, (2, 6, 5, 2)).astype(np.float32)
    w = rng.integers(-2, 3, (3, 2, 2, 3)).astype(np.float32)
    kw = dict(padding=(pads, (0, 0)), input_dilation=(input_dilation, 1))
    y, vjp = jax.vjp(lambda x, w: jaxconv.conv(x, w, implementation="xla", **kw), x, w)
    ct = rng.integers(-2, 3, y.shape).astype(np.float32)
    got = (y, *vjp(jnp.asarray(ct)))
    for g, r in zip(got, _conv_ref(x.astype(np.float64), w.astype(np.float64), ct, **kw)):
        np.testing.assert_array_equal(np.asarray(g), r)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2], int(sys.argv[3]))
    else:  # the table: oneDNN as the environment has it (JAXCONV_DISABLE_ONEDNN=1 to disable)
        for op in sys.argv[1:] or OPS:
            by_id = {c[0]: c[3] for c in cases(op)}
            for case_id, result in sweep_iter(op):
                mark = "  " if _clear(result, by_id[case_id]) else "!!"
                print(mark, case_id, json.dumps(result)[:400], flush=True)
