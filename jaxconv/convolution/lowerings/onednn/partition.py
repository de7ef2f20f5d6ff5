"""Sharding the oneDNN primitives: their FFI call under ``custom_partitioning``, so a
batch-sharded input runs on every device's shard instead of being gathered.
"""

from __future__ import annotations

from typing import Any

import jax
from jax import lax
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxconv.convolution.lowerings.onednn.geometry import Geometry

# --- lowering, with a sharding rule ---------------------------------------------------------
#
# An FFI call is opaque to XLA's SPMD partitioner, which would gather a batch-sharded input and
# run the whole batch on every device. So each primitive lowers through ``custom_partitioning``:
# the activations keep their batch sharding, weights are replicated, each device runs oneDNN on
# its shard, and the weight gradient is summed over the batch axes (``psum``). Unsharded (one
# device, or inside ``shard_map``) it is the bare FFI call.

_TARGET = {
    "fwd": "jaxconv_onednn_fwd",
    "bwd_data": "jaxconv_onednn_bwd_data",
    "bwd_weights": "jaxconv_onednn_bwd_weights",
}


def _factors(geometry: Geometry, nargs: int, role: str) -> str:
    """The Shardy rule, e.g. ``"n s0 s1 c, k0 k1 i o -> n t0 t1 o"`` for an NHWC forward."""
    nsp = len(geometry.stride)
    sp, osp, k = ([f"{p}{i}" for i in range(nsp)] for p in "stk")

    def act(spatial, c):
        return ["n", *spatial, c] if geometry.channels_last else ["n", c, *spatial]

    x, y = " ".join(act(sp, "c")), " ".join(act(osp, "o"))
    w = " ".join([*k, "i", "o"] if geometry.channels_last else ["o", "i", *k])
    if role == "fwd":
        return f"{x}, {w}{', o' if nargs == 3 else ''} -> {y}"
    if role == "bwd_data":
        return f"{y}, {w} -> {x}"
    return f"{x}, {y} -> {w}"


def _ffi(role: str, geometry: Geometry, out_shape, out_dtype, *args):
    return jax.ffi.ffi_call(_TARGET[role], jax.ShapeDtypeStruct(out_shape, out_dtype))(
        *args, **geometry.attributes()
    )


def _local_shape(role: str, geometry: Geometry, out_shape, args) -> tuple[int, ...]:
    """The per-shard result shape: the activation's shard batch (the weights' shape for dw)."""
    if role == "fwd":
        return geometry.out_shape(args[0].shape, args[1].shape)
    if role == "bwd_data":
        return (args[0].shape[0], *out_shape[1:])
    return tuple(out_shape)


def _partitioned(role: str) -> Any:
    """The FFI call under ``custom_partitioning``: activations keep their batch sharding, the
    rest is replicated, the weight gradient is summed over the batch axes."""

    def call(geometry, out_shape, out_dtype, *args):
        return _ffi(role, geometry, out_shape, out_dtype, *args)

    fn = custom_partitioning(call, static_argnums=(0, 1, 2))
    activations = (0, 1) if role == "bwd_weights" else (0,)

    def shardings(mesh, arg_shapes):
        spec: tuple = tuple(getattr(arg_shapes[0].sharding, "spec", ()))
        batch = spec[0] if spec else None
        args = tuple(
            NamedSharding(mesh, P(batch) if i in activations else P())
            for i in range(len(arg_shapes))
        )
        return batch, args, NamedSharding(mesh, P() if role == "bwd_weights" else P(batch))

    def infer(geometry, out_shape, out_dtype, mesh, arg_shapes, result_shape):
        return shardings(mesh, arg_shapes)[2]

    def partition(geometry, out_shape, out_dtype, mesh, arg_shapes, result_shape):
        batch, args, out = shardings(mesh, arg_shapes)

        def lower(*local):
            y = _ffi(
                role,
                geometry,
                _local_shape(role, geometry, out_shape, local),
                out_dtype,
                *local,
            )
            return lax.psum(y, batch) if role == "bwd_weights" and batch is not None else y

        return mesh, lower, out, args

    def rule(geometry, out_shape, out_dtype, mesh, operand_types, result_types):
        rule = _factors(geometry, len(operand_types), role)
        in_order = dict.fromkeys(rule.replace(",", " ").replace("->", " ").split())
        return rule, dict(
            reduction_factors=("n",) if role == "bwd_weights" else (),
            need_replication_factors=tuple(f for f in in_order if f != "n"),
        )

    fn.def_partition(partition, infer_sharding_from_operands=infer, sharding_rule=rule)
    return fn
