"""The 1×1 convolution: :func:`conv1x1`, channel mixing at every position."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax

from jaxconv import _geometry as geo
from jaxconv._check import check_array, check_same_dtype
from jaxconv.convolution.conv import add_bias, apply
from jaxconv.convolution.lowering import Plan
from jaxconv.convolution.lowerings.einsum import matmul
from jaxconv.convolution.spec import canonical_precision, canonical_preferred, conv_spec

__all__ = ["conv1x1"]

#: conv1x1's own default plan: the mission's one einsum, every role. The cost model would give
#: the same 1×1 conv to oneDNN on a CPU with the extension, which ran slower here: 30 GoogLeNet
#: 1×1s at batch 8 without a bias, AMD EPYC (AVX2), 2 cores, oneDNN against the einsum, median
#: (range) of 15 interleaved runs: forward 0.84× (0.59–1.14×), forward+backward 0.99×
#: (0.65–1.49×). (`jaxconv.conv` with a 1×1 kernel, and `jaxconv.nn.Conv1x1`, keep the cost
#: model's oneDNN, with the bias and a ReLU fused.)
EINSUM = (
    Plan("einsum", "einsum", "einsum"),
    "conv1x1's own default is the mission's einsum (faster forward than oneDNN on most 1×1s "
    "measured, jaxconv/convolution/conv1x1.py)",
)

Array = jax.Array


def _check_matrix(x: Any, w: Any, layout: str, name: str) -> bool:
    """Checks a 1×1 conv's matrix ``w`` against ``x``; returns whether ``layout`` is
    channels-last."""
    channels_last = geo.channels_last(layout)
    if w.ndim != 2:
        raise ValueError(
            f"`{name}` must be a matrix ([C_in, C_out], or [C_out, C_in] for NCHW), got shape "
            f"{tuple(w.shape)} (for a kernel with spatial dims use `conv`)"
        )
    if x.ndim < (1 if channels_last else 2):
        form = "[..., C_in]" if channels_last else "[N, C_in, ...]"
        raise ValueError(
            f"`x` must have rank >= {1 if channels_last else 2} ({form}), got shape "
            f"{tuple(x.shape)}"
        )
    c_x, c_w = (x.shape[-1], w.shape[0]) if channels_last else (x.shape[1], w.shape[1])
    if c_x != c_w:
        wdim = "first" if channels_last else "second"
        raise ValueError(
            f"`{name}` {wdim} dim (={c_w}) must equal the input channels of `x` (={c_x}); "
            f"{name} has shape {tuple(w.shape)}, x has shape {tuple(x.shape)}"
        )
    return channels_last


def conv1x1(
    x: Array,
    w: Array,
    b: Array | None = None,
    *,
    layout: str = "NHWC",
    precision: Any = None,
    preferred_element_type: Any = None,
    implementation: str | Plan | None = None,
) -> Array:
    """A 1×1 convolution: channel mixing at every position, through the one conv dispatch.

    It mixes channels at every position independently, so any number of leading dims works.
    It goes through the conv dispatch as the 1×1 conv it is, with its own default: the mission's
    ONE ``jnp.einsum`` over the channel dim, on every platform (:func:`jaxconv.explain` shows
    it as ``"op default"``); ``implementation=`` or a tuning table entry for that conv runs
    another lowering (``"onednn"``: one oneDNN conv with the bias fused). An ``x`` whose
    conv form passes the 32-bit geometry every conv keeps (2**31 rows or more) runs as the
    einsum directly.

    Args:
      x: ``[..., C_in]`` (channels-last, any leading dims) or ``[N, C_in, ...]`` when
        ``layout`` is channels-first (``"NCHW"``).
      w: ``[C_in, C_out]`` for channels-last; ``[C_out, C_in]`` (OI, as in an OIHW 1×1 kernel)
        for channels-first. Must have ``x``'s dtype.
      b: optional bias ``[C_out]``.
      layout: ``"NHWC"`` (default) or ``"NCHW"``.
      precision, preferred_element_type: as for :func:`jaxconv.conv`.
      implementation: as for :func:`jaxconv.conv`.

    Returns:
      ``[..., C_out]`` (or ``[N, C_out, ...]``).

    Examples:
      The seed's example: a 4×4 map of 1..16 through one 1×1 filter of weight 2.

      >>> import jax.numpy as jnp, jaxconv
      >>> x = jnp.arange(1.0, 17.0).reshape(1, 4, 4, 1)
      >>> jaxconv.conv1x1(x, jnp.full((1, 1), 2.0))[0, :, :, 0]
      Array([[ 2.,  4.,  6.,  8.],
             [10., 12., 14., 16.],
             [18., 20., 22., 24.],
             [26., 28., 30., 32.]], dtype=float32)
    """
    with jax.named_scope("jaxconv.conv1x1"):
        return pointwise(x, w, b, layout, precision, preferred_element_type, implementation)


def pointwise(
    x: Array,
    w: Array,
    b: Array | None,
    layout: str,
    precision: Any,
    preferred_element_type: Any,
    implementation: str | Plan | None,
    *,
    w_name: str = "w",
    b_name: str = "b",
    activation: Callable[[Array], Array] | None = None,
) -> Array:
    """:func:`conv1x1`'s body, its errors naming the caller's ``w_name`` and ``b_name``;
    ``activation`` after it (a ReLU fused into the conv's call where the lowering can)."""
    x, w = check_array(x, "x"), check_array(w, w_name)
    check_same_dtype(x, w, w_name)
    channels_last = _check_matrix(x, w, layout, w_name)
    conv_shape = _conv_input_shape(tuple(x.shape), channels_last)
    if max(*conv_shape, *w.shape) >= geo.INT32_LIMIT:
        y = _matmul(x, w, b, channels_last, precision, preferred_element_type, w_name, b_name)
        return y if activation is None else activation(y)
    x_conv = x.reshape(conv_shape)
    kernel = (1,) * (x_conv.ndim - 2)
    w_conv = w.reshape(kernel + w.shape if channels_last else w.shape + kernel)
    spec = conv_spec(
        x_conv,
        w_conv,
        padding="VALID",
        layout=layout,
        precision=precision,
        preferred_element_type=preferred_element_type,
        names={"w": w_name},
    )
    y = apply(x_conv, w_conv, b, spec, implementation, activation, b_name=b_name, default=EINSUM)
    if channels_last:
        return y.reshape(*x.shape[:-1], w.shape[-1])
    return y.reshape(x.shape[0], w.shape[0], *x.shape[2:])


def _conv_input_shape(shape: tuple[int, ...], channels_last: bool) -> tuple[int, ...]:
    """``x``'s shape as a conv's input: as it is with 1-3 spatial dims, else its positions
    flattened into one spatial dim (channels last: ``[M, 1, C]``, every leading dim a batch)."""
    if 3 <= len(shape) <= 5:
        return shape
    if channels_last:
        return (math.prod(shape[:-1]), 1, shape[-1])
    return (shape[0], shape[1], math.prod(shape[2:]))


def _matmul(
    x: Array,
    w: Array,
    b: Array | None,
    channels_last: bool,
    precision: Any,
    preferred_element_type: Any,
    w_name: str,
    b_name: str,
) -> Array:
    """The einsum alone, for a ``x`` whose conv form passes the 32-bit geometry every conv
    lowering keeps (e.g. ``[2**31, C]`` rows: a conv batch that large is refused, a matmul's
    rows are not); XLA's own element limit still applies."""
    c_out = w.shape[-1] if channels_last else w.shape[0]
    out = (*x.shape[:-1], c_out) if channels_last else (x.shape[0], c_out, *x.shape[2:])
    output = (f"the output of `x` and `{w_name}`", out)
    geo.check_xla_limits(arrays=(("`x`", x.shape), (f"`{w_name}`", w.shape), output))
    y = matmul(
        x,
        w,
        channels_last=channels_last,
        precision=canonical_precision(precision),
        preferred_element_type=canonical_preferred(preferred_element_type, x.dtype),
    )
    return add_bias(y, b, channels_last, b_name)
