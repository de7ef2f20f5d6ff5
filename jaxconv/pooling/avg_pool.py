"""Average pooling: :func:`avg_pool` (``lax.reduce_window`` and the window counts for the
divisor) and :func:`global_avg_pool`."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv import _geometry as geo
from jaxconv._check import check_array, check_bool
from jaxconv.pooling.spec import _reduce_windows, pool_spec

__all__ = ["avg_pool", "global_avg_pool"]

Array = jax.Array


def _window_counts(n: int, k: int, s: int, lo: int, hi: int, out: int, count_pad: bool) -> Array:
    """How many cells of each of the ``out`` windows (``k`` wide, ``s`` apart, from the start of
    the padding) the divisor counts: those of the input and, with ``count_pad``, of the padding
    ``(lo, hi)`` — never ``ceil_mode``'s extra cells past it. Computed on the device from the
    window bounds, so no host array grows with the output (positions stay below 2**31: int32)."""
    start = lax.iota(np.int32, out) * s
    first, end = (0, lo + n + hi) if count_pad else (lo, lo + n)
    return jnp.minimum(start + k, end) - jnp.maximum(start, first)


def avg_pool(
    x: Array,
    window: Any,
    *,
    stride: Any = None,
    padding: geo.Padding = "VALID",
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    layout: str = "NHWC",
) -> Array:
    """Average pooling over the spatial dims.

    Args:
      x: ``[N, *spatial, C]`` (or ``[N, C, *spatial]`` with a channels-first ``layout``).
        ``N == 0`` gives an empty output.
      window: window size; an int broadcasts to every spatial dim.
      stride: defaults to ``window``.
      padding: as for :func:`max_pool`.
      ceil_mode: Caffe/PyTorch rounding (see :func:`max_pool`). The extra positions that
        ``ceil_mode`` adds beyond the padding are never counted in the divisor (Caffe's and
        PyTorch's rule), even with ``count_include_pad``: a window of 4 over ``[1, 2, 3]``
        averages to 2.
      count_include_pad: count explicit zero padding in the divisor (PyTorch's default); when
        False, each output averages only the real input pixels it covers.
      layout: ``"NHWC"`` (default) or ``"NCHW"``.

    Returns:
      The pooled array, sizes from :func:`jaxconv.pool_output_size`.

    Examples:
      >>> import jax.numpy as jnp, jaxconv
      >>> x = jnp.ones((1, 3, 3, 1))
      >>> jaxconv.avg_pool(x, 3, stride=1, padding="SAME")[0, :, :, 0]
      Array([[0.44444445, 0.6666667 , 0.44444445],
             [0.6666667 , 1.        , 0.6666667 ],
             [0.44444445, 0.6666667 , 0.44444445]], dtype=float32)
      >>> jaxconv.avg_pool(x, 3, stride=1, padding="SAME", count_include_pad=False)[0, 0, :, 0]
      Array([1., 1., 1.], dtype=float32)
      >>> jaxconv.avg_pool(jnp.array([1.0, 2, 3]).reshape(1, 3, 1), 4, stride=3, ceil_mode=True)
      Array([[[2.]]], dtype=float32)
    """
    with jax.named_scope("jaxconv.avg_pool"):
        check_bool(count_include_pad, "count_include_pad")
        x = check_array(x, "x", empty_batch=True)
        spec = pool_spec(
            x, window, stride=stride, padding=padding, ceil_mode=ceil_mode, layout=layout
        )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"`x` must be a float array for avg_pool, got dtype {x.dtype}")
        total = _reduce_windows(spec.prepare(x), np.array(0, x.dtype), lax.add, spec)
        # The divisor is a separable product of per-dim window counts.
        dtype = jnp.promote_types(x.dtype, jnp.float32)
        counts = jnp.ones(spec.full((1,) * len(spec.window), 1), dtype)
        for d, (n, k, s, (lo, hi), o) in enumerate(
            zip(spec.padded_spatial, spec.window, spec.stride, spec.padding, spec.out_spatial)
        ):
            c = _window_counts(n, k, s, lo, hi, o, count_include_pad).astype(dtype)
            one_dim = tuple(o if i == d else 1 for i in range(len(spec.window)))
            counts = counts * c.reshape(spec.full(one_dim, 1))
        return total / counts.astype(x.dtype)


def global_avg_pool(x: Array, *, layout: str = "NHWC", keepdims: bool = False) -> Array:
    """Mean over every spatial dim (NiN's and GoogLeNet's classifier input).

    Args:
      x: ``[N, *spatial, C]`` (or channels-first); ``N`` may be 0.
      layout: ``"NHWC"`` (default) or ``"NCHW"``.
      keepdims: keep the spatial dims as size 1.

    Returns:
      ``[N, C]`` (or with unit spatial dims when ``keepdims``).

    Examples:
      >>> import jax.numpy as jnp, jaxconv
      >>> jaxconv.global_avg_pool(jnp.ones((2, 7, 7, 1024))).shape
      (2, 1024)
    """
    with jax.named_scope("jaxconv.global_avg_pool"):
        x = check_array(x, "x", empty_batch=True)
        check_bool(keepdims, "keepdims")
        cl = geo.channels_last(layout)
        if x.ndim < 3:
            raise ValueError(f"`x` must have rank >= 3, got shape {tuple(x.shape)}")
        geo.check_xla_limits(arrays=(("`x`", x.shape),))
        axes = tuple(range(1, x.ndim - 1)) if cl else tuple(range(2, x.ndim))
        return jnp.mean(x, axis=axes, keepdims=keepdims)
