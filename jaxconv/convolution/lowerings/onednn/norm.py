"""Training-mode batch normalization (and the ReLU after it) on oneDNN's primitive.

``y = act(scale · (x − mean) / sqrt(var + ε) + shift)`` with the batch's ``mean`` and biased
``var`` over every axis but the last (channels last), as a training step computes it. Three
primitives:

- ``norm_p`` ``(x, scale, shift) → (y, mean, var, workspace)``: the forward. With ReLU the
  workspace holds oneDNN's record of which outputs were positive (``fuse_norm_relu``); its size
  comes from the extension (:func:`workspace_bytes`).
- ``norm_tangent_p`` ``(x, scale, mean, var, y, workspace, dx, dscale, dshift) → (dy, dmean,
  dvar)``: the forward's JVP, linear in the last three. It is computed in lax (forward mode
  only); its transpose is ``norm_bwd_p``, so reverse mode runs oneDNN's backward.
- ``norm_bwd_p`` ``(x, scale, mean, var, y, workspace, dy) → (dx, dscale, dshift)``: oneDNN's
  backward. Its own JVP is the lax reference's, so every higher order works.

Each lowers to its FFI call in a CPU-only program that is not exported or sharded
(:func:`~.inference.calls_ffi`) and to its lax reference everywhere else; vmap runs one call per
mapped element (the statistics are per element). Inside ``shard_map`` each shard normalizes
over its own batch, as lax does there.
"""

from __future__ import annotations

import ctypes
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from jaxconv.convolution.lowerings.onednn import library
from jaxconv.convolution.lowerings.onednn.inference import calls_ffi
from jaxconv.convolution.lowerings.onednn.primitives import (
    _NEEDS_DEVICES,
    _apply_primitive,
    _aval,
    _bind,
)

norm_p = Primitive("onednn_batch_norm")
norm_tangent_p = Primitive("onednn_batch_norm_tangent")
norm_bwd_p = Primitive("onednn_batch_norm_bwd")
for _p in (norm_p, norm_tangent_p, norm_bwd_p):
    _p.multiple_results = True
    _p.def_impl(functools.partial(_apply_primitive, _p))


@functools.lru_cache(maxsize=1024)
def workspace_bytes(shape: tuple[int, ...], epsilon: float, relu: bool) -> int:
    """The bytes of the forward's workspace for ``x`` of ``shape`` (0 without ReLU), or -1
    where oneDNN has no primitive for it (or the extension is not loaded)."""
    lib, _ = library._load()
    if lib is None:
        return -1
    dims = (ctypes.c_int64 * len(shape))(*shape)
    return int(
        lib.jaxconv_onednn_norm_workspace(
            dims, ctypes.c_int64(len(shape)), ctypes.c_double(epsilon), ctypes.c_int64(relu)
        )
    )


# --- abstract evaluation ---------------------------------------------------------------------


def _channels(x, n: int):
    return [_aval(x, (x.shape[-1],), jnp.float32, batch=False) for _ in range(n)]


def _workspace(x, ws_bytes: int):
    return _aval(x, (max(ws_bytes, 1),), jnp.uint8, batch=False)


def _norm_abstract(x, scale, shift, *, epsilon, relu, ws_bytes):
    del scale, shift, epsilon, relu
    return [_aval(x, x.shape, x.dtype, batch=True), *_channels(x, 2), _workspace(x, ws_bytes)]


def _like_x_and_two_channel_vectors(x, *args, epsilon, relu, ws_bytes):
    """The JVP's ``(dy, dmean, dvar)`` and the backward's ``(dx, dscale, dshift)``."""
    del args, epsilon, relu, ws_bytes
    return [_aval(x, x.shape, x.dtype, batch=True), *_channels(x, 2)]


norm_p.def_abstract_eval(_norm_abstract)
norm_tangent_p.def_abstract_eval(_like_x_and_two_channel_vectors)
norm_bwd_p.def_abstract_eval(_like_x_and_two_channel_vectors)


# --- the lax references ----------------------------------------------------------------------


def _axes(x) -> tuple[int, ...]:
    return tuple(range(x.ndim - 1))


def _count(x) -> int:
    return math.prod(x.shape[:-1])


def _row(v, x):
    """A ``[C]`` vector broadcastable against ``x`` ``[..., C]``."""
    return jnp.reshape(v, (1,) * (x.ndim - 1) + (-1,))


def forward_reference(x, scale, shift, *, epsilon, relu, ws_bytes):
    """What ``norm_p`` computes, in lax (the workspace is zeros)."""
    mean = jnp.mean(x, _axes(x))
    centered = x - _row(mean, x)
    var = jnp.mean(jnp.square(centered), _axes(x))
    z = centered * _row(lax.rsqrt(var + epsilon) * scale, x) + _row(shift, x)
    ws = jnp.zeros((max(ws_bytes, 1),), jnp.uint8)
    return [jax.nn.relu(z) if relu else z, mean, var, ws]


def tangent_reference(x, scale, mean, var, y, ws, dx, dscale, dshift, *, epsilon, relu, ws_bytes):
    """``norm_p``'s JVP at ``(x, scale)`` (with its outputs ``mean``, ``var``, ``y``) along
    ``(dx, dscale, dshift)``: ``(dy, dmean, dvar)``."""
    del ws, ws_bytes
    axes = _axes(x)
    rstd = lax.rsqrt(var + epsilon)
    centered = x - _row(mean, x)
    dmean = jnp.mean(dx, axes)
    dcentered = dx - _row(dmean, x)
    dvar = 2 * jnp.mean(centered * dcentered, axes)
    half = 0.5 * dvar / (var + epsilon)
    dz = (
        centered * _row(dscale * rstd, x)
        + _row(scale * rstd, x) * (dcentered - centered * _row(half, x))
        + _row(dshift, x)
    )
    return [jnp.where(y > 0, dz, 0) if relu else dz, dmean, dvar]


def backward_reference(x, scale, mean, var, y, ws, dy, *, epsilon, relu, ws_bytes):
    """What ``norm_bwd_p`` computes, in lax: ``(dx, dscale, dshift)`` for the output gradient
    ``dy`` (the transpose of :func:`tangent_reference` with no cotangent on mean and var)."""
    del ws, ws_bytes
    axes = _axes(x)
    rstd = lax.rsqrt(var + epsilon)
    xhat = (x - _row(mean, x)) * _row(rstd, x)
    dz = jnp.where(y > 0, dy, 0) if relu else dy
    dshift = jnp.sum(dz, axes)
    dscale = jnp.sum(dz * xhat, axes)
    m = _count(x)
    dx = _row(scale * rstd, x) * (dz - (_row(dshift, x) + xhat * _row(dscale, x)) / m)
    return [dx, dscale, dshift]


_REFERENCE: dict[Primitive, Callable[..., list]] = {
    norm_p: forward_reference,
    norm_tangent_p: tangent_reference,
    norm_bwd_p: backward_reference,
}
_TARGET = {norm_p: "jaxconv_onednn_batch_norm", norm_bwd_p: "jaxconv_onednn_batch_norm_bwd"}


def _lowering(prim: Primitive):
    def lower(ctx, *args, epsilon, relu, ws_bytes):
        params = dict(epsilon=epsilon, relu=relu, ws_bytes=ws_bytes)
        if prim not in _TARGET or not calls_ffi(ctx):
            return mlir.lower_fun(lambda *a: _REFERENCE[prim](*a, **params), multiple_results=True)(
                ctx, *args
            )
        out = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in ctx.avals_out]

        def call(*a):
            if prim is norm_bwd_p:  # the handler reads the ReLU mask from the workspace, not y
                a = (*a[:4], *a[5:])
            return jax.ffi.ffi_call(_TARGET[prim], out)(
                *a, epsilon=np.float32(epsilon), relu=np.int64(relu)
            )

        return mlir.lower_fun(call, multiple_results=True)(ctx, *args)

    return lower


for _p in (norm_p, norm_tangent_p, norm_bwd_p):
    mlir.register_lowering(_p, _lowering(_p), cacheable=False)
    if _NEEDS_DEVICES is not None:
        _NEEDS_DEVICES.add(_p)


# --- derivatives -----------------------------------------------------------------------------


def _norm_jvp(primals, tangents, **params):
    x, scale, shift = primals
    y, mean, var, ws = _bind(norm_p, x, scale, shift, **params)
    dx, dscale, dshift = (ad.instantiate_zeros(t) for t in tangents)
    dy, dmean, dvar = _bind(
        norm_tangent_p, x, scale, mean, var, y, ws, dx, dscale, dshift, **params
    )
    return [y, mean, var, ws], [dy, dmean, dvar, ad.Zero(jax.typeof(ws).to_tangent_aval())]


def _reference_jvp(prim: Primitive):
    """The JVP of ``prim`` as its lax reference's, ``y`` and the workspace held fixed (they
    enter only through ReLU's mask, whose derivative is zero)."""

    def rule(primals, tangents, **params):
        out = _bind(prim, *primals, **params)
        keep = [i for i in range(len(primals)) if i not in (4, 5)]

        def f(*a):
            full = list(primals)
            for i, v in zip(keep, a):
                full[i] = v
            return _REFERENCE[prim](*full, **params)

        _, dout = jax.jvp(
            f,
            tuple(primals[i] for i in keep),
            tuple(ad.instantiate_zeros(tangents[i]) for i in keep),
        )
        return out, dout

    return rule


def _tangent_transpose(cts, x, scale, mean, var, y, ws, dx, dscale, dshift, **params):
    """Reverse mode of the forward: oneDNN's backward, plus what a cotangent on the mean or
    variance adds to ``dx`` (``d mean/dx = 1/M``, ``d var/dx = 2 (x − mean)/M``)."""
    ct_y, ct_mean, ct_var = cts
    ct_y = ad.instantiate_zeros(ct_y)
    gx, gscale, gshift = _bind(norm_bwd_p, x, scale, mean, var, y, ws, ct_y, **params)
    m = _count(x)
    if type(ct_mean) is not ad.Zero:
        gx = gx + _row(ct_mean / m, x)
    if type(ct_var) is not ad.Zero:
        gx = gx + _row((2 / m) * ct_var, x) * (x - _row(mean, x))
    return [None] * 6 + [
        gx if ad.is_undefined_primal(dx) else None,
        gscale if ad.is_undefined_primal(dscale) else None,
        gshift if ad.is_undefined_primal(dshift) else None,
    ]


ad.primitive_jvps[norm_p] = _norm_jvp
ad.primitive_jvps[norm_tangent_p] = _reference_jvp(norm_tangent_p)
ad.primitive_jvps[norm_bwd_p] = _reference_jvp(norm_bwd_p)
ad.primitive_transposes[norm_tangent_p] = _tangent_transpose


# --- vmap ------------------------------------------------------------------------------------


def _batch_rule(prim: Primitive):
    """One call per element of the mapped axis (each element has its own statistics)."""

    def rule(args, dims, **params):
        mapped = [i for i, d in enumerate(dims) if d is not None]

        def one(xs):
            operands = list(args)
            for i, v in zip(mapped, xs):
                operands[i] = v
            return tuple(_bind(prim, *operands, **params))

        outs = lax.map(one, tuple(jnp.moveaxis(args[i], dims[i], 0) for i in mapped))
        return list(outs), [0] * len(outs)

    return rule


for _p in (norm_p, norm_tangent_p, norm_bwd_p):
    batching.primitive_batchers[_p] = _batch_rule(_p)


def batch_norm(
    x: jax.Array, scale: jax.Array, shift: jax.Array, *, epsilon: float, relu: bool
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(y, mean, var)`` of training-mode batch norm (ReLU after it when ``relu``) on oneDNN:
    ``x`` float32 ``[N, *spatial, C]`` (rank 2 to 5, non-empty), ``scale`` and ``shift``
    ``[C]``; ``mean`` and ``var`` (biased) ``[C]``. The caller has checked that
    :func:`workspace_bytes` is not -1 for this shape."""
    ws_bytes = workspace_bytes(tuple(x.shape), float(epsilon), bool(relu))
    y, mean, var, _ = _bind(
        norm_p, x, scale, shift, epsilon=float(epsilon), relu=bool(relu), ws_bytes=ws_bytes
    )
    return y, mean, var
