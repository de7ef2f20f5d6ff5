"""Inception's bottleneck on oneDNN in one call:
``out_act(conv(act(conv1x1(x, w_r) + b_r), w_s) + b_s)``.

On a batch of at least two images per core, the C++ handler (``BottleneckImpl`` in
``csrc/onednn_conv.cc``) gives each OpenMP thread whole images and runs the 1×1 reduce and the
k×k conv one image after the other, so the reduced maps stay in the core's cache and one
thread's reduce (memory-bound: it reads every input channel to write a few) overlaps another's
k×k (compute-bound); with fewer images it runs the two convs on the whole batch. Each ReLU
(``act`` after the reduce, ``out_act`` after the k×k) is oneDNN's NaN-keeping ELU(0) post-op,
as in a frozen conv.

Abstract evaluation, the FFI call on a CPU and the lax reference everywhere else (another
platform, ``jax.export``, a sharded program), a vmap rule — as for :mod:`.inference`. It has no
derivative rule: :func:`jaxconv.bottleneck` differentiates the two convs it stands for.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import batching, mlir

from jaxconv.convolution.lowerings.onednn.geometry import Geometry
from jaxconv.convolution.lowerings.onednn.inference import _APPLY, ACTIVATIONS, calls_ffi
from jaxconv.convolution.lowerings.onednn.primitives import (
    _NEEDS_DEVICES,
    _apply_primitive,
    _aval,
    _bind,
    _fold,
    _lax_reference,
    _sequential,
)

block_p = Primitive("onednn_bottleneck")  # (x, w_r, b_r, w_s, b_s) -> y


def _abstract(x, w_r, b_r, w_s, b_s, *, reduce, spatial, out_dtype, activation, out_activation):
    del b_r, b_s, activation, out_activation
    h_shape = reduce.out_shape(x.shape, w_r.shape)
    return _aval(x, spatial.out_shape(h_shape, w_s.shape), out_dtype, batch=True)


block_p.def_abstract_eval(_abstract)
block_p.def_impl(functools.partial(_apply_primitive, block_p))


def reference(
    x,
    w_r,
    b_r,
    w_s,
    b_s,
    *,
    reduce: Geometry,
    spatial: Geometry,
    out_dtype,
    activation,
    out_activation,
) -> jax.Array:
    """What the primitive computes, in lax:
    ``out_act(conv(act(conv(x, w_r) + b_r), w_s) + b_s)``."""
    out = jax.ShapeDtypeStruct((), out_dtype)
    h = _APPLY[activation](_lax_reference("fwd", reduce, out, x, w_r, b_r))
    return _APPLY[out_activation](_lax_reference("fwd", spatial, out, h, w_s, b_s))


def _lower(ctx, *args, **params):
    if not calls_ffi(ctx):
        return mlir.lower_fun(lambda *a: reference(*a, **params), multiple_results=False)(
            ctx, *args
        )
    (aval,) = ctx.avals_out
    codes = {k: np.int64(ACTIVATIONS[params[k]]) for k in ("activation", "out_activation")}

    def call(*a):
        return jax.ffi.ffi_call(
            "jaxconv_onednn_bottleneck", jax.ShapeDtypeStruct(aval.shape, aval.dtype)
        )(*a, **params["spatial"].attributes(), **codes)

    return mlir.lower_fun(call, multiple_results=False)(ctx, *args)


mlir.register_lowering(block_p, _lower, cacheable=False)
if _NEEDS_DEVICES is not None:
    _NEEDS_DEVICES.add(block_p)


def _batch_rule(args, dims, **params):
    """vmap: a mapped input alone is folded into the batch, one call; a mapped kernel or bias
    runs one call per element."""
    if any(d is not None for d in dims[1:]):
        return _sequential(block_p, args, dims, params)
    x, size = _fold(args[0], dims[0])
    y = _bind(block_p, x, *args[1:], **params)
    return y.reshape(size, y.shape[0] // size, *y.shape[1:]), 0


batching.primitive_batchers[block_p] = _batch_rule


def bottleneck(
    x: jax.Array,
    w_r: jax.Array,
    b_r: jax.Array,
    w_s: jax.Array,
    b_s: jax.Array,
    *,
    reduce: Geometry,
    spatial: Geometry,
    out_dtype: Any,
    activation: str | None,
    out_activation: str | None = None,
) -> jax.Array:
    """``out_act(conv(act(conv(x, w_r) + b_r), w_s) + b_s)`` as one call: ``w_r`` a 1×1 kernel
    and ``w_s`` a kernel in the layout of ``x`` (``reduce`` and ``spatial`` their geometries),
    the biases ``[C_r]`` and ``[C_out]``; ``activation`` (``act``) and ``out_activation``
    (``out_act``) each None or ``"relu"``."""
    out_dtype = jnp.dtype(out_dtype)
    return _bind(
        block_p,
        x,
        w_r,
        b_r.astype(out_dtype),
        w_s,
        b_s.astype(out_dtype),
        reduce=reduce,
        spatial=spatial,
        out_dtype=out_dtype,
        activation=activation,
        out_activation=out_activation,
    )
