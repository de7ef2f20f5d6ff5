"""Parameter-free pooling modules, so a model's pools are rows of its summary like its convs."""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

import jaxconv
from jaxconv._check import check_bool
from jaxconv.nn._validate import window_size, with_batch

__all__ = ["AvgPool", "GlobalAvgPool", "MaxPool"]

Array = jax.Array


def _static(value: Any) -> Any:
    """Lists become tuples so the module's static attributes are hashable."""
    if isinstance(value, list):
        return tuple(_static(v) for v in value)
    return value


class MaxPool(nnx.Module):
    """:func:`jaxconv.max_pool` as a module (no parameters).

    Args:
      window: an int is a square 2-D window, as a conv module's int ``kernel_size`` (a 1-D
        pool takes a 1-tuple); else one int per spatial dim.
      stride, padding, ceil_mode: as for :func:`jaxconv.max_pool`.

    Call:
      ``[N, *spatial, C]`` → ``[N, *spatial_out, C]``; an unbatched ``[*spatial, C]`` →
      ``[*spatial_out, C]``, as the conv modules take it.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxconv.nn import MaxPool
      >>> MaxPool(3, stride=2, ceil_mode=True)(jnp.ones((1, 112, 112, 64))).shape   # GoogLeNet
      (1, 56, 56, 64)
    """

    def __init__(
        self, window: Any, *, stride: Any = None, padding: Any = "VALID", ceil_mode: bool = False
    ):
        self.window = window_size(window, "window")
        self.stride = _static(stride)
        self.padding = _static(padding)
        self.ceil_mode = check_bool(ceil_mode, "ceil_mode")

    def __call__(self, x: Array) -> Array:
        return with_batch(x, self.window, type(self).__name__, self._batched, "window")

    def _batched(self, x: Array) -> Array:
        return jaxconv.max_pool(
            x, self.window, stride=self.stride, padding=self.padding, ceil_mode=self.ceil_mode
        )


class AvgPool(nnx.Module):
    """:func:`jaxconv.avg_pool` as a module (no parameters).

    Args:
      window: an int is a square 2-D window, as a conv module's int ``kernel_size`` (a 1-D
        pool takes a 1-tuple); else one int per spatial dim.
      stride, padding, ceil_mode, count_include_pad: as for :func:`jaxconv.avg_pool`.

    Call:
      ``[N, *spatial, C]`` → ``[N, *spatial_out, C]``; an unbatched ``[*spatial, C]`` →
      ``[*spatial_out, C]``, as the conv modules take it.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxconv.nn import AvgPool
      >>> AvgPool(5, stride=3)(jnp.ones((1, 14, 14, 512))).shape   # GoogLeNet's aux heads
      (1, 4, 4, 512)
    """

    def __init__(
        self,
        window: Any,
        *,
        stride: Any = None,
        padding: Any = "VALID",
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ):
        self.window = window_size(window, "window")
        self.stride = _static(stride)
        self.padding = _static(padding)
        self.ceil_mode = check_bool(ceil_mode, "ceil_mode")
        self.count_include_pad = check_bool(count_include_pad, "count_include_pad")

    def __call__(self, x: Array) -> Array:
        return with_batch(x, self.window, type(self).__name__, self._batched, "window")

    def _batched(self, x: Array) -> Array:
        return jaxconv.avg_pool(
            x,
            self.window,
            stride=self.stride,
            padding=self.padding,
            ceil_mode=self.ceil_mode,
            count_include_pad=self.count_include_pad,
        )


class GlobalAvgPool(nnx.Module):
    """:func:`jaxconv.global_avg_pool` as a module: the mean over every spatial dim.

    Args:
      keepdims: keep the spatial dims as size 1 (``[N, 1, 1, C]``, the paper's "1×1×1024").

    Call:
      ``[N, *spatial, C]`` → ``[N, C]`` (or ``[N, 1, …, 1, C]``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxconv.nn import GlobalAvgPool
      >>> GlobalAvgPool(keepdims=True)(jnp.ones((2, 7, 7, 1024))).shape
      (2, 1, 1, 1024)
    """

    def __init__(self, *, keepdims: bool = False):
        self.keepdims = check_bool(keepdims, "keepdims")

    def __call__(self, x: Array) -> Array:
        return jaxconv.global_avg_pool(x, keepdims=self.keepdims)
