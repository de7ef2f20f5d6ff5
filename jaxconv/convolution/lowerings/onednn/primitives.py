"""The oneDNN conv as three JAX primitives — forward, input gradient, weight gradient — and
the biased forward: abstract evaluation, eager calls, lowering (the FFI call on a CPU, the
lax conv elsewhere and for ``jax.export``), transposes (each is bilinear, its transposes are
the other two) and vmap rules.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxconv.convolution.lowerings.onednn.geometry import Geometry
from jaxconv.convolution.lowerings.onednn.partition import _ffi, _partitioned

_NEEDS_DEVICES: set[Primitive] | None
try:  # jit lowers a primitive listed here with its devices (custom_partitioning is listed)
    from jax._src.dispatch import prim_requires_devices_during_lowering as _NEEDS_DEVICES
except ImportError:  # a later jax: then a batch-sharded conv is gathered first (still correct)
    _NEEDS_DEVICES = None


# --- the three primitives ------------------------------------------------------------------


fwd_p = Primitive("onednn_conv_fwd")  # (x, w) -> y
fused_p = Primitive("onednn_conv_fwd_bias")  # (x, w, b) -> y + b
bwd_data_p = Primitive("onednn_conv_bwd_data")  # (dy, w) -> dx
bwd_weights_p = Primitive("onednn_conv_bwd_weights")  # (x, dy) -> dw

try:  # under shard_map(check_vma=True): operands made varying over the same manual axes
    from jax._src.core import auto_insert_reshard as _match_varying
except ImportError:  # a jax without it has no varying-axes types to keep

    def _match_varying(*args):
        return args


def _bind(prim: Primitive, *args, **params) -> jax.Array:
    return prim.bind(*_match_varying(*args), **params)


def _aval(like, shape, dtype, *, batch: bool):
    """The result's abstract value: ``shape`` and ``dtype`` on ``like``'s mesh, varying over
    the same shard_map axes as the operand ``like`` (the operands vary alike: :func:`_bind`),
    sharded like it on the leading (batch) dim when ``batch`` (an activation), else replicated
    (a kernel)."""
    spec: tuple = tuple(getattr(like.sharding, "spec", ()))
    lead = spec[0] if batch and spec else None
    sharding = NamedSharding(like.sharding.mesh, P(lead, *[None] * (len(shape) - 1)))
    return like.update(
        shape=tuple(shape), dtype=jnp.dtype(dtype), weak_type=False, sharding=sharding
    )


def _fwd_abstract(x, w, *b, geometry, out_dtype):
    del b
    return _aval(x, geometry.out_shape(x.shape, w.shape), out_dtype, batch=True)


def _bwd_data_abstract(dy, w, *, geometry, x_shape, x_dtype):
    del w, geometry
    return _aval(dy, x_shape, x_dtype, batch=True)


def _bwd_weights_abstract(x, dy, *, geometry, w_shape, w_dtype):
    del dy, geometry
    return _aval(x, w_shape, w_dtype, batch=False)


try:  # eager calls as lax's primitives make them (jax.debug_nans then names the primitive)
    from jax._src.dispatch import apply_primitive as _apply_primitive
except ImportError:  # a later jax: one cached jit per primitive and parameters

    @functools.lru_cache(maxsize=256)
    def _jitted(prim: Primitive, params: tuple) -> Any:
        return jax.jit(lambda *args: prim.bind(*args, **dict(params)))

    def _apply_primitive(prim, *args, **params):
        return _jitted(prim, tuple(sorted(params.items())))(*args)


for _p, _abstract in (
    (fwd_p, _fwd_abstract),
    (fused_p, _fwd_abstract),
    (bwd_data_p, _bwd_data_abstract),
    (bwd_weights_p, _bwd_weights_abstract),
):
    _p.def_abstract_eval(_abstract)
    _p.def_impl(functools.partial(_apply_primitive, _p))


# --- the same three (and the biased forward) in plain lax ----------------------------------
#
# Where the FFI call cannot go, each primitive lowers to the lax conv it computes: on every
# platform but the CPU (a GPU or TPU program, or an export for one), and on the CPU when
# lowering for ``jax.export`` — an FFI call has no compatibility guarantee and would make the
# artifact unloadable elsewhere. Plain ``jit`` on a CPU keeps oneDNN.

_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}


def _lax_conv(x, w, geometry: Geometry, out_dtype) -> jax.Array:
    """The primitive's forward as ``lax.conv_general_dilated`` (a deconvolution as the
    input-dilated conv it is: stride 1, input dilation = its stride, the kernel flipped back)."""
    nsp = len(geometry.stride)
    sp = _SPATIAL[nsp]
    if geometry.channels_last:
        specs = (f"N{sp}C", f"{sp}IO", f"N{sp}C")
        kernel, spatial_axes = w.shape[:nsp], tuple(range(nsp))
    else:
        specs = (f"NC{sp}", f"OI{sp}", f"NC{sp}")
        kernel, spatial_axes = w.shape[2:], tuple(range(2, nsp + 2))
    if geometry.transposed:
        span = [(k - 1) * d for k, d in zip(kernel, geometry.dilation)]
        pads = [(e - lo, e - hi) for e, lo, hi in zip(span, geometry.pad_lo, geometry.pad_hi)]
        strides, lhs_dilation, w = (1,) * nsp, geometry.stride, jnp.flip(w, spatial_axes)
    else:
        pads = list(zip(geometry.pad_lo, geometry.pad_hi))
        strides, lhs_dilation = geometry.stride, (1,) * nsp
    y = lax.conv_general_dilated(
        x,
        w.astype(x.dtype),
        strides,
        pads,
        lhs_dilation=lhs_dilation,
        rhs_dilation=geometry.dilation,
        dimension_numbers=specs,
        feature_group_count=geometry.groups,
        preferred_element_type=jnp.dtype(out_dtype),
    )
    return y.astype(out_dtype)


def _lax_reference(role: str, geometry: Geometry, aval, *args) -> jax.Array:
    """What the primitive of ``role`` computes, in lax (``aval``: its result)."""
    if role == "fwd":
        x, w, *b = args
        y = _lax_conv(x, w, geometry, aval.dtype)
        if b:
            nsp = len(geometry.stride)
            shape = (1,) * (nsp + 1) + (-1,) if geometry.channels_last else (1, -1) + (1,) * nsp
            y = y + b[0].astype(aval.dtype).reshape(shape)
        return y
    if role == "bwd_data":
        dy, w = args
        x = jax.ShapeDtypeStruct(aval.shape, aval.dtype)
        (dx,) = jax.linear_transpose(lambda a: _lax_conv(a, w, geometry, dy.dtype), x)(dy)
        return dx
    x, dy = args
    w = jax.ShapeDtypeStruct(aval.shape, aval.dtype)
    (dw,) = jax.linear_transpose(lambda c: _lax_conv(x, c, geometry, dy.dtype), w)(dy)
    return dw


def _register(prim: Primitive, role: str) -> None:
    sharded_call = _partitioned(role)

    def reference(ctx, *args, geometry, **params):
        del params
        (aval,) = ctx.avals_out
        return mlir.lower_fun(
            lambda *a: _lax_reference(role, geometry, aval, *a), multiple_results=False
        )(ctx, *args)

    def lower(ctx, *args, geometry, **params):
        module = ctx.module_context
        if tuple(module.platforms) != ("cpu",) or module.lowering_parameters.for_export:
            return reference(ctx, *args, geometry=geometry)
        (aval,) = ctx.avals_out
        context = module.axis_context
        sharded = (
            getattr(context, "num_devices", 1) > 1
            and getattr(context, "device_assignment", None) is not None
        )
        call = sharded_call if sharded else functools.partial(_ffi, role)
        return mlir.lower_fun(
            lambda *a: call(geometry, aval.shape, aval.dtype, *a), multiple_results=False
        )(ctx, *args)

    # One rule for every platform (the FFI call only for a CPU-only program that is not being
    # exported). Not cacheable, and lowered with the device assignment: custom_partitioning
    # needs both.
    mlir.register_lowering(prim, lower, cacheable=False)
    if _NEEDS_DEVICES is not None:
        _NEEDS_DEVICES.add(prim)


for _prim, _role in (
    (fwd_p, "fwd"),
    (fused_p, "fwd"),
    (bwd_data_p, "bwd_data"),
    (bwd_weights_p, "bwd_weights"),
):
    _register(_prim, _role)


def _as(a: jax.Array, dtype: Any) -> jax.Array:
    return a if a.dtype == dtype else a.astype(dtype)


def forward(x, w, geometry: Geometry, out_dtype: Any) -> jax.Array:
    return _bind(fwd_p, x, w, geometry=geometry, out_dtype=jnp.dtype(out_dtype))


def backward_data(dy, w, geometry: Geometry, x_shape, x_dtype) -> jax.Array:
    """The input gradient ``dx`` of ``y = conv(x, w)`` for the output gradient ``dy``."""
    return _bind(
        bwd_data_p,
        _as(dy, w.dtype),
        w,
        geometry=geometry,
        x_shape=tuple(x_shape),
        x_dtype=jnp.dtype(x_dtype),
    )


def backward_weights(x, dy, geometry: Geometry, w_shape, w_dtype) -> jax.Array:
    """The weight gradient ``dw`` of ``y = conv(x, w)`` for the output gradient ``dy``."""
    return _bind(
        bwd_weights_p,
        x,
        _as(dy, x.dtype),
        geometry=geometry,
        w_shape=tuple(w_shape),
        w_dtype=jnp.dtype(w_dtype),
    )


# Each primitive is bilinear; its transposes are the other two (so every order of reverse
# mode, and forward mode, runs on oneDNN). The operand being transposed is an undefined
# primal: only its ``aval`` is known.
def _fwd_t_x(ct, x, w, *, geometry, out_dtype):
    del out_dtype
    return backward_data(ct, w, geometry, x.aval.shape, x.aval.dtype)


def _fwd_t_w(ct, x, w, *, geometry, out_dtype):
    del out_dtype
    return backward_weights(x, ct, geometry, w.aval.shape, w.aval.dtype)


def _bwd_data_t_dy(ct, dy, w, *, geometry, x_shape, x_dtype):
    del x_shape, x_dtype
    return _as(forward(_as(ct, w.dtype), w, geometry, dy.aval.dtype), dy.aval.dtype)


def _bwd_data_t_w(ct, dy, w, *, geometry, x_shape, x_dtype):
    del x_shape, x_dtype
    return backward_weights(_as(ct, w.aval.dtype), dy, geometry, w.aval.shape, w.aval.dtype)


def _bwd_weights_t_x(ct, x, dy, *, geometry, w_shape, w_dtype):
    del w_shape, w_dtype
    return backward_data(dy, _as(ct, x.aval.dtype), geometry, x.aval.shape, x.aval.dtype)


def _bwd_weights_t_dy(ct, x, dy, *, geometry, w_shape, w_dtype):
    del w_shape, w_dtype
    return _as(forward(x, _as(ct, x.dtype), geometry, dy.aval.dtype), dy.aval.dtype)


ad.defbilinear(fwd_p, _fwd_t_x, _fwd_t_w)
ad.defbilinear(bwd_data_p, _bwd_data_t_dy, _bwd_data_t_w)
ad.defbilinear(bwd_weights_p, _bwd_weights_t_x, _bwd_weights_t_dy)


def _fold(a: jax.Array, axis: int) -> tuple[jax.Array, int]:
    """``a`` with mapped axis ``axis`` merged into its leading (batch) dim."""
    a = jnp.moveaxis(a, axis, 0)
    return a.reshape(a.shape[0] * a.shape[1], *a.shape[2:]), a.shape[0]


def _sequential(prim: Primitive, args, dims, params) -> tuple[jax.Array, int]:
    """One primitive call per element of the mapped axis (``lax.map``)."""
    mapped = [i for i, d in enumerate(dims) if d is not None]

    def one(xs):
        operands = list(args)
        for i, v in zip(mapped, xs):
            operands[i] = v
        return _bind(prim, *operands, **params)

    return lax.map(one, tuple(jnp.moveaxis(args[i], dims[i], 0) for i in mapped)), 0


def _batch_rule(prim: Primitive):
    """A vmap rule: when only the activation (operand 0: x, or dy for ``bwd_data``) is mapped,
    fold the mapped axis into the conv's batch — one oneDNN call; else one call per element
    (always for ``bwd_weights``, whose result is per element)."""

    def rule(args, dims, **params):
        if prim is bwd_weights_p or any(d is not None for d in dims[1:]):
            return _sequential(prim, args, dims, params)
        folded, size = _fold(args[0], dims[0])
        if prim is bwd_data_p:
            n = params["x_shape"][0]
            params = dict(params, x_shape=(size * n, *params["x_shape"][1:]))
        y = _bind(prim, folded, *args[1:], **params)
        return y.reshape(size, y.shape[0] // size, *y.shape[1:]), 0

    return rule


for _prim in (fwd_p, fused_p, bwd_data_p, bwd_weights_p):
    batching.primitive_batchers[_prim] = _batch_rule(_prim)
