"""Independent NumPy float64 references for convolution and pooling (no jax, no lax).

Everything here is written from the definitions, not from jaxconv's code: a convolution is a
sum over kernel taps of strided slices of the (input-dilated, padded) input, each multiplied by
that tap's ``[C_in/groups, C_out/groups]`` matrix; a pooling window is reduced at every output
position with PyTorch's/Caffe's index arithmetic. Channels-last only (``[N, *spatial, C]``
input, ``[*kernel, C_in/groups, C_out]`` kernel); tests transpose NCHW data themselves.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "avg_pool",
    "conv",
    "max_pool",
    "max_pool_grad",
    "mode_pairs",
    "out_size",
    "pad_pairs",
    "same_pairs",
]

#: ``np.pad`` modes for the value-filling padding modes.
NP_PAD_MODES = {"CIRCULAR": "wrap", "REFLECT": "reflect", "REPLICATE": "edge"}


def _per_dim(value, ndim: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * ndim


def same_pairs(sizes, kernel, stride, dilation, lower: bool = False):
    """SAME by definition: ``out = ceil(n / s)``, the least total padding that reaches it, the odd
    pixel high (``lower=False``, TensorFlow/XLA) or low (ONNX's SAME_LOWER)."""
    pairs = []
    for n, k, s, d in zip(sizes, kernel, stride, dilation):
        span = d * (k - 1) + 1
        out = math.ceil(n / s)
        total = max((out - 1) * s + span - n, 0)
        small, big = total // 2, total - total // 2
        pairs.append((big, small) if lower else (small, big))
    return tuple(pairs)


def mode_pairs(kernel, dilation):
    """The padding modes' amounts, ``flax.nnx.Conv``'s rule: a dilated kernel spanning ``span``
    pixels gets ``(span - 1) // 2`` low and ``span // 2`` high, whatever the stride."""
    pairs = []
    for k, d in zip(kernel, dilation):
        span = d * (k - 1) + 1
        pairs.append(((span - 1) // 2, span // 2))
    return tuple(pairs)


def pad_pairs(padding, sizes, kernel, stride, dilation):
    """Explicit ``(lo, hi)`` pairs and the ``np.pad`` mode (``"constant"`` for zeros)."""
    ndim = len(sizes)
    if isinstance(padding, str):
        key = padding.upper()
        if key == "VALID":
            return ((0, 0),) * ndim, "constant"
        if key == "SAME":
            return same_pairs(sizes, kernel, stride, dilation), "constant"
        if key == "SAME_LOWER":
            return same_pairs(sizes, kernel, stride, dilation, lower=True), "constant"
        return mode_pairs(kernel, dilation), NP_PAD_MODES[key]
    if isinstance(padding, int):
        return ((padding, padding),) * ndim, "constant"
    return tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding), "constant"


def out_size(n: int, k: int, s: int, d: int, lo: int, hi: int) -> int:
    """``floor((n + lo + hi - d(k-1) - 1) / s) + 1``."""
    return (n + lo + hi - d * (k - 1) - 1) // s + 1


def _pad_or_crop(x: np.ndarray, pairs, mode: str) -> np.ndarray:
    """Pads the spatial dims of ``[N, *spatial, C]``; negative amounts crop."""
    grow = [(0, 0)] + [(max(lo, 0), max(hi, 0)) for lo, hi in pairs] + [(0, 0)]
    x = np.pad(x, grow, mode=mode)
    crop = [slice(None)]
    for (lo, hi), n in zip(pairs, x.shape[1:-1]):
        crop.append(slice(max(-lo, 0), n - max(-hi, 0)))
    return x[(*crop, slice(None))]


def conv(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding="VALID",
    dilation: int | Sequence[int] = 1,
    input_dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> np.ndarray:
    """N-d grouped convolution (cross-correlation, like every DL framework) in float64.

    Args:
      x: ``[N, *spatial, C_in]``.
      w: ``[*kernel, C_in // groups, C_out]``; output channel ``o`` belongs to group
        ``o // (C_out // groups)``.
      b: optional ``[C_out]``.
      stride, dilation, input_dilation: int or one per spatial dim.
      padding: "VALID", "SAME", "SAME_LOWER", "CIRCULAR", "REFLECT", "REPLICATE" (Flax's
        amounts, :func:`mode_pairs`, filled by that rule), an int, or one int / ``(lo, hi)``
        pair per dim; negative amounts crop.
      groups: feature groups.

    Returns:
      ``[N, *spatial_out, C_out]`` float64.
    """
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    ndim = x.ndim - 2
    kernel = w.shape[:ndim]
    stride, dilation, input_dilation = (
        _per_dim(v, ndim) for v in (stride, dilation, input_dilation)
    )
    n_batch, c_in, c_out = x.shape[0], x.shape[-1], w.shape[-1]
    assert c_in % groups == 0 and c_out % groups == 0 and w.shape[-2] * groups == c_in

    # Input dilation: i-1 zeros between neighbouring pixels.
    dilated = tuple((n - 1) * i + 1 for n, i in zip(x.shape[1:-1], input_dilation))
    xd = np.zeros((n_batch, *dilated, c_in))
    xd[(slice(None), *(slice(None, None, i) for i in input_dilation), slice(None))] = x

    pairs, mode = pad_pairs(padding, dilated, kernel, stride, dilation)
    xp = _pad_or_crop(xd, pairs, mode)
    outs = tuple(
        out_size(n, k, s, d, 0, 0) for n, k, s, d in zip(xp.shape[1:-1], kernel, stride, dilation)
    )
    assert all(o >= 1 for o in outs), outs

    cig, cog = c_in // groups, c_out // groups
    y = np.zeros((n_batch, *outs, c_out))
    for tap in itertools.product(*(range(k) for k in kernel)):
        window = tuple(
            slice(t * d, t * d + (o - 1) * s + 1, s)
            for t, d, o, s in zip(tap, dilation, outs, stride)
        )
        patch = xp[(slice(None), *window, slice(None))]  # [N, *outs, C_in]
        for g in range(groups):
            y[..., g * cog : (g + 1) * cog] += (
                patch[..., g * cig : (g + 1) * cig] @ w[tap][:, g * cog : (g + 1) * cog]
            )
    if b is not None:
        y = y + np.asarray(b, np.float64)
    return y


def _pool_bounds(n: int, k: int, s: int, lo: int, hi: int, ceil_mode: bool):
    """PyTorch's ``pooling_output_shape`` and per-output window bounds for one dim.

    Returns ``[(start, end, pad_end)]`` in input coordinates: the window covers
    ``[start, start + k)``; ``pad_end = min(start + k, n + hi)`` (explicit padding ends there,
    anything beyond is ceil-mode overhang).
    """
    span = n + lo + hi - k
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + lo:  # the last window must start inside input+lo
        out -= 1
    bounds = []
    for o in range(out):
        start = o * s - lo
        bounds.append((start, start + k, min(start + k, n + hi)))
    return bounds


def _pool(x, window, stride, padding, ceil_mode, reduce):
    x = np.asarray(x, np.float64)
    ndim = x.ndim - 2
    window = _per_dim(window, ndim)
    stride = window if stride is None else _per_dim(stride, ndim)
    pairs, mode = pad_pairs(padding, x.shape[1:-1], window, stride, (1,) * ndim)
    if mode != "constant":  # value-filling modes: pad with values, then VALID
        x = _pad_or_crop(x, pairs, mode)
        pairs = ((0, 0),) * ndim
    per_dim = [
        _pool_bounds(n, k, s, lo, hi, ceil_mode)
        for n, k, s, (lo, hi) in zip(x.shape[1:-1], window, stride, pairs)
    ]
    y = np.zeros((x.shape[0], *(len(b) for b in per_dim), x.shape[-1]))
    for index in itertools.product(*(range(len(b)) for b in per_dim)):
        bounds = [per_dim[i][o] for i, o in enumerate(index)]
        real = tuple(
            slice(max(start, 0), min(end, n)) for (start, end, _), n in zip(bounds, x.shape[1:-1])
        )
        y[(slice(None), *index, slice(None))] = reduce(x[(slice(None), *real, slice(None))], bounds)
    return y


def max_pool(x, window, *, stride=None, padding="VALID", ceil_mode=False) -> np.ndarray:
    """Max over each window's real pixels (padding never wins). ``[N, *spatial, C]``."""

    def reduce(patch, bounds):
        return patch.max(axis=tuple(range(1, patch.ndim - 1)))

    return _pool(x, window, stride, padding, ceil_mode, reduce)


def max_pool_grad(x, dy, window, *, stride=None, padding="VALID", ceil_mode=False) -> np.ndarray:
    """The gradient of :func:`max_pool` (zero/explicit padding) for output cotangent ``dy``:
    each output's ``dy`` goes to the FIRST maximum of its window's real pixels in row-major
    order (``np.argmax``: a NaN counts as the maximum). ``[N, *spatial, C]``."""
    x = np.asarray(x, np.float64)
    dy = np.asarray(dy, np.float64)
    ndim = x.ndim - 2
    window = _per_dim(window, ndim)
    stride = window if stride is None else _per_dim(stride, ndim)
    pairs, mode = pad_pairs(padding, x.shape[1:-1], window, stride, (1,) * ndim)
    if mode != "constant":
        raise ValueError("max_pool_grad covers zero/explicit padding only")
    per_dim = [
        _pool_bounds(n, k, s, lo, hi, ceil_mode)
        for n, k, s, (lo, hi) in zip(x.shape[1:-1], window, stride, pairs)
    ]
    dx = np.zeros_like(x)
    n_idx, c_idx = np.meshgrid(np.arange(x.shape[0]), np.arange(x.shape[-1]), indexing="ij")
    for index in itertools.product(*(range(len(b)) for b in per_dim)):
        starts = [max(per_dim[i][o][0], 0) for i, o in enumerate(index)]
        real = tuple(
            slice(start, min(per_dim[i][o][1], n))
            for i, (o, start, n) in enumerate(zip(index, starts, x.shape[1:-1]))
        )
        patch = x[(slice(None), *real, slice(None))]
        flat = patch.reshape(patch.shape[0], -1, patch.shape[-1]).argmax(axis=1)  # [N, C]
        offsets = np.unravel_index(flat, patch.shape[1:-1])
        where = tuple(start + off for start, off in zip(starts, offsets))
        np.add.at(dx, (n_idx, *where, c_idx), dy[(slice(None), *index, slice(None))])
    return dx


def avg_pool(
    x, window, *, stride=None, padding="VALID", ceil_mode=False, count_include_pad=True
) -> np.ndarray:
    """Average with PyTorch's divisor: explicit padding counts when ``count_include_pad``; the
    ceil-mode overhang never does. ``[N, *spatial, C]``."""

    def reduce(patch, bounds):
        if count_include_pad:
            divisor = math.prod(pad_end - start for start, _, pad_end in bounds)
        else:
            divisor = math.prod(patch.shape[1:-1])
        return patch.sum(axis=tuple(range(1, patch.ndim - 1))) / divisor

    return _pool(x, window, stride, padding, ceil_mode, reduce)
