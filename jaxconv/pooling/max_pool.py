""":func:`max_pool`, with conv's padding vocabulary plus Caffe/PyTorch ``ceil_mode``.

``max_pool`` runs as 1-D max
pools, one spatial dim at a time (the window max is separable), each the maximum of its
window's shifted slices with a JVP that routes the tangent to the window's first maximum.
XLA:CPU fuses each into one elementwise loop; its own ``reduce_window`` ran Inception's 3×3/1
pool 4–6× slower and the stem's 3×3/2 one 2× slower, and its ``select_and_scatter`` gradient
20–25× and 4× slower (8×28×28×192, 8×14×14×480, 8×112×112×64, 2 cores). Non-overlapping
windows keep ``reduce_window`` for the value, where it is faster, and windows wider than
``_MAX_SEPARABLE_WINDOW`` run as ``reduce_window`` throughout (the slices' count grows with the
window). ``_max_pool_reference`` is the plain ``reduce_window`` form, kept beside it for the
tests.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv import _geometry as geo
from jaxconv._check import check_array
from jaxconv.pooling.spec import PoolSpec, _reduce_windows, pool_spec

__all__ = ["max_pool"]

Array = jax.Array


#: Non-overlapping windows of more taps than this run as ``reduce_window``, gradient too: a
#: 7×7/7 pool's gradient took 4.0 ms that way against 6.8 ms separable, 14×14/14 1.9 against
#: 8.8 (a 4×4/4 one 5.2 against 1.1, a 2×2/2 one 56 against 2.1; 8×28×28×128, XLA:CPU).
_MAX_WINDOW_TAPS = 25

#: Overlapping windows wider than this in any dim also run as ``reduce_window``: the separable
#: form emits one slice (and one compare in its derivative) per tap, and its compile time grows
#: with the square of the window, where ``reduce_window`` takes the window as a number. Value and
#: gradient of an 8×4096×16 1-D pool at stride 1, separable against reduce_window: window 129,
#: compiled in 1.2 s against 0.2 s, run in 41 against 115 ms; 512: 8.8 s against 0.2 s, 382
#: against 374 ms; 2048: 77 s against 0.2 s, 3.0 against 1.3 s (2 cores). A window of 2**20
#: would not finish tracing.
_MAX_SEPARABLE_WINDOW = 128


def _max_init(dtype: Any) -> np.ndarray:
    """The value padding holds in a max pool: -inf, or an int dtype's minimum.

    NumPy (concrete), because under jit a jnp init is a tracer, and lax then falls back to a
    generic reduce_window that has no reverse-mode derivative.
    """
    if jnp.issubdtype(dtype, jnp.floating):
        return np.array(-np.inf, dtype)
    if jnp.issubdtype(dtype, jnp.integer):
        return np.array(jnp.iinfo(dtype).min, dtype)
    raise TypeError(f"`x` must be a float or int array, got dtype {dtype}")


def _window_slices(x: Array, axis: int, k: int, s: int, o: int) -> list[Array]:
    """The ``k`` strided slices of ``x`` along ``axis`` that a 1-D window of ``k`` taps at
    stride ``s`` reads for its ``o`` outputs, tap by tap."""
    return [lax.slice_in_dim(x, i, i + (o - 1) * s + 1, s, axis) for i in range(k)]


def _phase_slices(x: Array, axis: int, k: int, s: int, o: int) -> list[Array]:
    """:func:`_window_slices` without strided slices: the axis is split into ``(L/s, s)``
    (zero-padded to a multiple of ``s``) and tap ``i = a·s + r`` is phase ``r``'s contiguous
    run ``a … a+o``. Same values; their transposes are edge pads and adds, where a strided
    slice's transpose is an interior pad. The phases come from ONE ``lax.split``, whose
    transpose is one concatenate. Taking each phase by index instead, the gradient padded
    every tap back to the full axis and added those: a stem 3×3/2 pool's gradient
    (8×112×112×64 float32) took 40–43 ms against 30 now (14.3–14.7 against 12.6 with
    :func:`jaxconv.retain_host_memory`).

    Only the phases the taps read are split off (``min(k, s)`` of them, the rest stays one
    piece), and a single window needs no phases at all: a stride of millions would otherwise
    split (and pad) the axis into millions of pieces."""
    if s == 1 or o == 1:
        return _window_slices(x, axis, k, s, o)
    phases = -(-x.shape[axis] // s)
    pads = [(0, 0, 0)] * x.ndim
    pads[axis] = (0, phases * s - x.shape[axis], 0)
    x = lax.pad(x, np.array(0, x.dtype), pads)
    x = x.reshape(*x.shape[:axis], phases, s, *x.shape[axis + 1 :])
    used = min(k, s)  # tap i reads phase i % s, which is below min(k, s)
    pieces = lax.split(x, [1] * used + ([s - used] if s > used else []), axis + 1)
    split = [lax.squeeze(p, (axis + 1,)) for p in pieces[:used]]
    return [lax.slice_in_dim(split[i % s], i // s, i // s + o, 1, axis) for i in range(k)]


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3, 4))
def _max_1d(x: Array, axis: int, k: int, s: int, o: int) -> Array:
    """Max over 1-D windows along ``axis`` (``x`` already padded): the max of the slices."""
    return functools.reduce(lax.max, _window_slices(x, axis, k, s, o))


@_max_1d.defjvp
def _max_1d_jvp(axis: int, k: int, s: int, o: int, primals, tangents):
    """Each output's tangent is the input tangent at the FIRST maximum of its window (a NaN
    counts as the maximum). Linear in the tangent, so reverse mode transposes it."""
    (x,), (dx,) = primals, tangents
    y = _max_1d(x, axis, k, s, o)
    dtype = jnp.int8 if k <= 127 else jnp.int32
    first = jnp.full(y.shape, k - 1, dtype)
    taps = _window_slices(x, axis, k, s, o)
    for t in reversed(range(k - 1)):
        hit = taps[t] == y
        if jnp.issubdtype(x.dtype, jnp.floating):
            hit = hit | jnp.isnan(taps[t])
        first = jnp.where(hit, np.array(t, dtype), first)
    zero = jnp.zeros((), dx.dtype)
    parts = _phase_slices(dx, axis, k, s, o)
    return y, functools.reduce(
        lax.add, [jnp.where(first == t, p, zero) for t, p in enumerate(parts)]
    )


def _max_separable(x: Array, spec: PoolSpec) -> Array:
    """Max pooling as 1-D max pools, one spatial dim at a time, the LAST dim first.

    The window max is separable. So is PyTorch's and ``reduce_window``'s gradient, which
    goes to the first maximum of the window in row-major order: pooling the last dim first,
    the first maximum along it in each row, then the first row holding the window's maximum,
    picks exactly that element. Each 1-D pass compares k taps, where routing over the whole
    window compares k² for each output (and XLA recomputes them for every input cell an
    output feeds: a 3×3/2 pool's gradient ran 2.3× slower that way).
    """
    pads = tuple((lo, hi + e, 0) for (lo, hi), e in zip(spec.padding, spec.extra))
    y = lax.pad(x, _max_init(x.dtype), spec.full(pads, (0, 0, 0)))
    first = 1 if spec.channels_last else 2
    dims = list(zip(spec.window, spec.stride, spec.out_spatial))
    for d in reversed(range(len(dims))):
        y = _max_1d(y, first + d, *dims[d])
    return y


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _max_windowed(x: Array, spec: PoolSpec) -> Array:
    """Non-overlapping windows: the value from one ``reduce_window`` (2.7× faster than the
    slices on a 2×2/2 pool), the derivative from :func:`_max_separable` (27× faster than
    ``reduce_window``'s ``select_and_scatter``)."""
    return _reduce_windows(x, _max_init(x.dtype), lax.max, spec)


@_max_windowed.defjvp
def _max_windowed_jvp(spec: PoolSpec, primals, tangents):
    return jax.jvp(lambda v: _max_separable(v, spec), primals, tangents)


def _max_pool_reference(x: Array, spec: PoolSpec) -> Array:
    """``max_pool`` of the prepared ``x`` as one ``lax.reduce_window``, derivative included:
    the plain form (the tests compare against it; large non-overlapping windows run it)."""
    return _reduce_windows(x, _max_init(x.dtype), lax.max, spec)


def max_pool(
    x: Array,
    window: Any,
    *,
    stride: Any = None,
    padding: geo.Padding = "VALID",
    ceil_mode: bool = False,
    layout: str = "NHWC",
) -> Array:
    """Max pooling over the spatial dims.

    Padded positions never win (they hold ``-inf``, or the dtype's minimum for ints), except
    with the value-filling modes CIRCULAR/REFLECT/REPLICATE.

    Args:
      x: ``[N, *spatial, C]`` (or ``[N, C, *spatial]`` with a channels-first ``layout``).
        ``N == 0`` gives an empty output, as ``lax`` does.
      window: window size; an int broadcasts to every spatial dim.
      stride: defaults to ``window``.
      padding: as for :func:`jaxconv.conv` with the window as the kernel (SAME's amounts; the
        modes pad ``((window - 1) // 2, window // 2)``), but never negative, and every window
        must overlap the input (explicit pads smaller than it).
      ceil_mode: Caffe/PyTorch rounding: keep a last partial window (it must start inside the
        input or its low padding), even one larger than the padded input when it overhangs by
        less than the stride, as PyTorch does. GoogLeNet and NiN were defined with it.
      layout: ``"NHWC"`` (default) or ``"NCHW"``.

    Returns:
      The pooled array, sizes from :func:`jaxconv.pool_output_size`.

    Examples:
      >>> import jax.numpy as jnp, jaxconv
      >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
      >>> jaxconv.max_pool(x, 2)[0, :, :, 0]
      Array([[ 5.,  7.],
             [13., 15.]], dtype=float32)
      >>> jaxconv.max_pool(jnp.ones((1, 112, 112, 64)), 3, stride=2, ceil_mode=True).shape
      (1, 56, 56, 64)
      >>> jaxconv.max_pool(jnp.array([1.0, 2, 3]).reshape(1, 3, 1), 4, stride=3, ceil_mode=True)
      Array([[[3.]]], dtype=float32)
    """
    with jax.named_scope("jaxconv.max_pool"):
        x = check_array(x, "x", empty_batch=True)
        spec = pool_spec(
            x, window, stride=stride, padding=padding, ceil_mode=ceil_mode, layout=layout
        )
        dtype = x.dtype
        _max_init(dtype)  # the dtype check
        if jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize < 4:
            # exact either way; XLA:CPU runs 16-bit float maxima through float32 element by
            # element (Inception 3a's pool in bfloat16: 3.9 ms, 1.4 ms upcast first)
            x = x.astype(jnp.float32)
        x = spec.prepare(x)
        if max(spec.window) > _MAX_SEPARABLE_WINDOW:
            y = _max_pool_reference(x, spec)
        elif any(s < k for k, s in zip(spec.window, spec.stride)):  # overlapping windows
            y = _max_separable(x, spec)
        elif math.prod(spec.window) > _MAX_WINDOW_TAPS:
            y = _max_pool_reference(x, spec)
        else:
            y = _max_windowed(x, spec)
        return y.astype(dtype)
