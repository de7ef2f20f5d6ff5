"""Training-mode BatchNorm (and the ReLU after it) on oneDNN, for :class:`~jaxconv.nn.ConvBN`.

In a training step XLA:CPU computes BatchNorm as reduction and elementwise fusions, and its
backward as several more; oneDNN's batch-normalization primitive does the forward with the
ReLU fused (``fuse_norm_relu``) and the backward in two passes each
(:mod:`jaxconv.convolution.lowerings.onednn.norm`). Another activation (MobileNetV2's ReLU6)
follows it in XLA. ``ConvBN`` takes this path in training
mode whenever it applies (:func:`why_not_native`) and otherwise calls its ``nnx.BatchNorm``;
both compute the same function and update the running statistics the same way.
``JAXCONV_BATCH_NORM=xla`` in the environment (read when a model is traced) keeps every
BatchNorm on XLA.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

ENV = "JAXCONV_BATCH_NORM"
_CHOICES = ("onednn", "xla")


def _choice() -> str:
    value = os.environ.get(ENV, "onednn").strip().lower() or "onednn"
    if value not in _CHOICES:
        raise ValueError(f"{ENV} must be one of {_CHOICES}, got {os.environ.get(ENV)!r}")
    return value


def why_not_native(bn: Any, x: jax.Array, activation: Callable[..., Any] | None) -> str | None:
    """None where ``bn(x)`` runs on oneDNN's primitive (with ``activation`` fused if it is
    ``jax.nn.relu``, else applied after it), else why not."""
    if _choice() == "xla":
        return f"{ENV}=xla"
    if not isinstance(bn, nnx.BatchNorm) or type(bn).__call__ is not nnx.BatchNorm.__call__:
        return "not a plain nnx.BatchNorm (a frozen unit's identity, or a subclass's own call)"
    if bn.use_running_average is not False:
        return "not in training mode (the running statistics normalize)"
    if bn.axis_name is not None or bn.axis_index_groups is not None:
        return "statistics reduced across devices (axis_name) stay in XLA"
    if bn.scale is None or bn.bias is None:
        return "oneDNN's batch norm here has both a scale and a shift"
    if _feature_axes(bn, x) != (x.ndim - 1,):
        return "the features must be the last axis"
    types = {jnp.dtype(x.dtype), jnp.dtype(bn.scale[...].dtype), jnp.dtype(bn.mean[...].dtype)}
    if types != {jnp.dtype(jnp.float32)} or bn.dtype not in (None, jnp.float32, "float32"):
        return "oneDNN's batch norm runs in float32 only"
    if not 2 <= x.ndim <= 5 or x.size == 0:
        return f"needs a non-empty x of rank 2 to 5, got shape {x.shape}"
    from jaxconv.convolution.lowerings.onednn import library, norm

    why = library.unavailable()
    if why is not None:
        return why
    if norm.workspace_bytes(tuple(x.shape), float(bn.epsilon), activation is jax.nn.relu) < 0:
        return "oneDNN has no batch norm primitive for this shape"
    return None


def _feature_axes(bn: nnx.BatchNorm, x: jax.Array) -> tuple[int, ...]:
    """``bn``'s feature axes (``axis``) as sorted non-negative indices into ``x``."""
    axes = bn.axis if isinstance(bn.axis, tuple) else (bn.axis,)
    return tuple(sorted(a % x.ndim for a in axes))


def batch_norm(bn: Any, x: jax.Array, activation: Callable[..., Any] | None) -> jax.Array | None:
    """``activation(bn(x))`` on oneDNN in training mode, with ``bn``'s running statistics
    updated as ``nnx.BatchNorm`` updates them; None where :func:`why_not_native` says no."""
    if why_not_native(bn, x, activation) is not None:
        return None
    from jaxconv.convolution.lowerings.onednn import norm

    fused = activation is jax.nn.relu
    y, mean, var = norm.batch_norm(
        x, bn.scale[...], bn.bias[...], epsilon=float(bn.epsilon), relu=fused
    )
    stop = jax.lax.stop_gradient if (bn.mean._can_update or bn.var._can_update) else (lambda v: v)
    bn.mean[...] = stop(bn.momentum * bn.mean[...] + (1 - bn.momentum) * mean)
    bn.var[...] = stop(bn.momentum * bn.var[...] + (1 - bn.momentum) * var)
    return y if fused or activation is None else activation(y)
