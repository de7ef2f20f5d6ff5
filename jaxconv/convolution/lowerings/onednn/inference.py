"""A frozen model's conv on oneDNN: one primitive computing ``act(conv(x, w) + b (+ r))`` with
the residual add and the activation as post-ops, on weights packed once into the primitive's
own layout (:func:`pack`). Abstract evaluation, the FFI call on a CPU and the lax reference
everywhere else (another platform, ``jax.export``, a sharded program) — as for the training
primitives in :mod:`.primitives`. Inference only: it has no derivative rule.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from jaxconv.convolution.lowerings.onednn.geometry import Geometry
from jaxconv.convolution.lowerings.onednn.library import _load
from jaxconv.convolution.lowerings.onednn.primitives import (
    _NEEDS_DEVICES,
    _apply_primitive,
    _aval,
    _bind,
    _lax_reference,
    _sequential,
)

#: The activations the primitive applies as post-ops, by their code in the C++ handler.
ACTIVATIONS = {None: 0, "relu": 1}
_APPLY = {None: lambda y: y, "relu": jax.nn.relu}

infer_p = Primitive("onednn_conv_inference")  # (x, w, b, packed[, residual]) -> y


def _abstract(x, w, b, packed, *residual, geometry, out_dtype, activation, packed_format):
    del b, packed, residual, activation, packed_format
    return _aval(x, geometry.out_shape(x.shape, w.shape), out_dtype, batch=True)


infer_p.def_abstract_eval(_abstract)
infer_p.def_impl(functools.partial(_apply_primitive, infer_p))


def reference(x, w, b, residual, *, geometry: Geometry, out_dtype, activation) -> jax.Array:
    """What the primitive computes, in lax: ``act(conv(x, w) + b (+ residual))``."""
    y = _lax_reference("fwd", geometry, jax.ShapeDtypeStruct((), out_dtype), x, w, b)
    if residual is not None:
        y = y + residual.astype(out_dtype)
    return _APPLY[activation](y)


def calls_ffi(ctx) -> bool:
    """Whether a primitive without a sharding rule (this one, the bottleneck's) lowers to its
    FFI call: in a CPU-only program, not lowered for ``jax.export``, not sharded; else to its
    lax reference."""
    module = ctx.module_context
    sharded = getattr(module.axis_context, "num_devices", 1) > 1
    return (
        tuple(module.platforms) == ("cpu",)
        and not module.lowering_parameters.for_export
        and not sharded
    )


def _lower(ctx, x, w, b, packed, *residual, geometry, out_dtype, activation, packed_format):
    if not calls_ffi(ctx):
        return mlir.lower_fun(
            lambda x, w, b, packed, *r: reference(
                x,
                w,
                b,
                r[0] if r else None,
                geometry=geometry,
                out_dtype=out_dtype,
                activation=activation,
            ),
            multiple_results=False,
        )(ctx, x, w, b, packed, *residual)
    (aval,) = ctx.avals_out

    def call(*args):
        return jax.ffi.ffi_call(
            "jaxconv_onednn_inference",
            jax.ShapeDtypeStruct(aval.shape, aval.dtype),
            input_output_aliases={4: 0} if residual else None,
        )(
            *args,
            **geometry.attributes(),
            activation=np.int64(ACTIVATIONS[activation]),
            residual=np.int64(bool(residual)),
            packed_format=np.int64(packed_format),
        )

    return mlir.lower_fun(call, multiple_results=False)(ctx, x, w, b, packed, *residual)


mlir.register_lowering(infer_p, _lower, cacheable=False)
if _NEEDS_DEVICES is not None:
    _NEEDS_DEVICES.add(infer_p)


def _batch_rule(args, dims, **params):
    """vmap: a mapped input (and residual) is folded into the conv's batch, one call; a mapped
    kernel, bias or packing runs one call per element."""
    x, w, b, packed, *residual = args
    if all(d is None for d in dims[1:4]):
        size = x.shape[dims[0]]
        folded = []
        for a, d in zip([x, *residual], [dims[0], *dims[4:]]):
            a = jnp.moveaxis(a, d, 0) if d is not None else jnp.broadcast_to(a, (size, *a.shape))
            folded.append(a.reshape(size * a.shape[1], *a.shape[2:]))
        y = _bind(infer_p, folded[0], w, b, packed, *folded[1:], **params)
        return y.reshape(size, y.shape[0] // size, *y.shape[1:]), 0
    return _sequential(infer_p, args, dims, params)


batching.primitive_batchers[infer_p] = _batch_rule


def _no_derivative(primals, tangents, **params):
    raise TypeError(
        "a frozen conv (jaxconv.nn.freeze) is for inference and has no derivative: "
        "differentiate the model it was frozen from"
    )


ad.primitive_jvps[infer_p] = _no_derivative


def conv(
    x: jax.Array,
    w: jax.Array,
    b: jax.Array,
    packed: jax.Array,
    residual: jax.Array | None,
    *,
    geometry: Geometry,
    out_dtype: Any,
    activation: str | None,
    packed_format: int,
) -> jax.Array:
    """``act(conv(x, w) + b (+ residual))`` as one oneDNN primitive; ``packed`` (``uint8``) is
    ``w`` in the layout of fingerprint ``packed_format`` (0 and an empty array: none)."""
    out_dtype = jnp.dtype(out_dtype)
    args = [x, w, b.astype(out_dtype), packed]
    if residual is not None:
        args.append(residual.astype(out_dtype))
    return _bind(
        infer_p,
        *args,
        geometry=geometry,
        out_dtype=out_dtype,
        activation=activation,
        packed_format=int(packed_format),
    )


# --- packing -------------------------------------------------------------------------------


class Layout(NamedTuple):
    """The weights layout a frozen conv's primitive wants: its size and fingerprint."""

    nbytes: int
    fingerprint: int


_DTYPE_CODES = {"float32": 0, "bfloat16": 1}


def _flat(
    geometry: Geometry,
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    dtypes: tuple[Any, Any, Any, Any],
    activation: str | None,
    residual: bool,
) -> np.ndarray:
    """The geometry as the C functions read it (``FromFlat`` in csrc/onednn_conv.cc)."""
    y_shape = geometry.out_shape(tuple(x_shape), tuple(w_shape))
    codes = [_DTYPE_CODES[jnp.dtype(d).name] for d in dtypes]
    flat = [len(geometry.stride), *x_shape, *w_shape, *y_shape]
    flat += [*geometry.stride, *geometry.pad_lo, *geometry.pad_hi, *geometry.dilation]
    flat += [geometry.groups, int(geometry.channels_last), int(geometry.transposed)]
    flat += [*codes, ACTIVATIONS[activation], int(residual)]
    return np.asarray(flat, dtype=np.int64)


def _call(fn: Any, *args: Any) -> None:
    err = ctypes.create_string_buffer(512)
    if fn(*args, err, ctypes.c_int64(len(err))) != 0:
        raise RuntimeError(err.value.decode())


def _pointer(a: np.ndarray) -> ctypes.c_void_p:
    return ctypes.c_void_p(a.ctypes.data)


def layout(flat: np.ndarray) -> Layout | None:
    """The layout oneDNN wants for the frozen conv ``flat`` describes (None without the
    extension)."""
    lib, _ = _load()
    if lib is None:
        return None
    nbytes, fingerprint = ctypes.c_int64(), ctypes.c_int64()
    _call(
        lib.jaxconv_onednn_packed_layout,
        _pointer(flat),
        ctypes.c_int64(flat.size),
        ctypes.byref(nbytes),
        ctypes.byref(fingerprint),
    )
    return Layout(nbytes.value, fingerprint.value)


@functools.lru_cache(maxsize=4096)
def cached_layout(key: tuple[int, ...]) -> Layout | None:
    """:func:`layout` for a flat description given as a tuple (cached per process)."""
    return layout(np.asarray(key, dtype=np.int64))


def pack(flat: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, Layout]:
    """``w`` (host, the layout XLA gives the primitive) packed into the layout oneDNN wants
    for ``flat``: the bytes (``uint8``) and their layout."""
    lib, why = _load()
    if lib is None:
        raise RuntimeError(why)
    want = layout(flat)
    if want is None:  # unreachable: the library was loaded above
        raise RuntimeError("the oneDNN extension is not loaded")
    w = np.ascontiguousarray(w)
    out = np.zeros(want.nbytes, dtype=np.uint8)
    _call(
        lib.jaxconv_onednn_pack,
        _pointer(flat),
        ctypes.c_int64(flat.size),
        _pointer(w),
        _pointer(out),
        ctypes.c_int64(out.size),
    )
    return out, want
