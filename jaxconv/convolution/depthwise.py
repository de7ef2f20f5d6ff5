"""Depthwise convolution (MobileNet, Howard et al. 2017, §3.1).

A depthwise conv filters each input channel on its own (``jaxconv.conv`` with
``groups = C_in``); a separable conv follows it with a 1×1 pointwise conv that mixes the
channels (``jaxconv.conv1x1``). Against a standard k×k conv to ``N`` channels that costs
``1/N + 1/k²`` of the multiply-adds (:func:`jaxconv.separable_cost`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from jaxconv import _geometry as geo
from jaxconv._check import check_array, check_int
from jaxconv.convolution.conv import conv
from jaxconv.convolution.lowering import Plan

__all__ = ["depthwise_conv"]

Array = jax.Array


def _check_depthwise(
    x: Any, w: Any, multiplier: Any, layout: str, name: str = "w"
) -> tuple[Array, Array, int]:
    """Checks a depthwise kernel against ``x``; returns both as arrays (:func:`check_array`)
    and ``C_in`` (the groups)."""
    x, w = check_array(x, "x", empty_batch=True), check_array(w, name)
    channels_last = geo.channels_last(layout)
    multiplier = check_int(multiplier, "multiplier", allow_none=True)
    form = "[*kernel, 1, C_in·multiplier]" if channels_last else "[C_in·multiplier, 1, *kernel]"
    if w.ndim not in (3, 4, 5) or x.ndim != w.ndim:
        raise ValueError(
            f"`x` and `{name}` must have the same rank, 3, 4 or 5 (1-3 spatial dims), got "
            f"shapes {tuple(x.shape)} and {tuple(w.shape)}"
        )
    c_in = x.shape[-1] if channels_last else x.shape[1]
    w_in, w_out = (w.shape[-2], w.shape[-1]) if channels_last else (w.shape[1], w.shape[0])
    if w_in != 1 or w_out % c_in:
        raise ValueError(
            f"`{name}` must be a depthwise kernel {form} for {c_in} input channels, got shape "
            f"{tuple(w.shape)}"
        )
    if multiplier is not None and w_out != c_in * multiplier:
        raise ValueError(
            f"`multiplier` (={multiplier}) times the input channels (={c_in}) must equal "
            f"`{name}`'s out-channel dim (={w_out}); `{name}` has shape {tuple(w.shape)}"
        )
    return x, w, int(c_in)


def depthwise_conv(
    x: Array,
    w: Array,
    b: Array | None = None,
    *,
    stride: Any = 1,
    padding: geo.Padding = "SAME",
    dilation: Any = 1,
    multiplier: int | None = None,
    layout: str = "NHWC",
    precision: Any = None,
    preferred_element_type: Any = None,
    activation: Callable[[Array], Array] | None = None,
    implementation: str | Plan | None = None,
) -> Array:
    """Depthwise convolution: each input channel convolved with its own ``multiplier`` filters.

    It is :func:`jaxconv.conv` with ``groups = C_in``, so it takes the same dispatch (on a CPU
    with the extension: oneDNN). Output channel ``c·multiplier + j`` is input channel ``c``
    through filter ``j``, as in PyTorch's ``Conv2d(C, C·m, k, groups=C)`` and Flax's
    ``nnx.Conv(..., feature_group_count=C)``.

    Args:
      x: ``[N, *spatial, C_in]`` (``"NHWC"``, the default) or ``[N, C_in, *spatial]``.
      w: ``[*kernel, 1, C_in·multiplier]`` (HWIO with I = 1, what ``jaxconv.conv`` takes for
        ``groups = C_in``), or ``[C_in·multiplier, 1, *kernel]`` (OIHW) for a channels-first
        ``layout`` — which is PyTorch's ``Conv2d(groups=C_in).weight`` as it is; for NHWC
        transpose that by ``(2, 3, 1, 0)``.
      b: optional bias ``[C_in·multiplier]``.
      stride, padding, dilation: as for :func:`jaxconv.conv`.
      multiplier: filters per input channel (``depth_multiplier``); None reads it from ``w``,
        an int is checked against ``w``.
      layout, precision, preferred_element_type, activation, implementation: as for
        :func:`jaxconv.conv`.

    Returns:
      ``[N, *spatial_out, C_in·multiplier]`` (or channels-first).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxconv.convolution import depthwise_conv
      >>> x = jnp.ones((1, 8, 8, 3)).at[..., 1].set(2.0)
      >>> w = jnp.ones((3, 3, 1, 6))                    # multiplier 2
      >>> y = depthwise_conv(x, w, padding="VALID")
      >>> y.shape, y[0, 0, 0].tolist()                  # 9 taps of one channel each
      ((1, 6, 6, 6), [9.0, 9.0, 18.0, 18.0, 9.0, 9.0])
    """
    with jax.named_scope("jaxconv.depthwise_conv"):
        x, w, c_in = _check_depthwise(x, w, multiplier, layout)
        return conv(
            x,
            w,
            b,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=c_in,
            layout=layout,
            precision=precision,
            preferred_element_type=preferred_element_type,
            activation=activation,
            implementation=implementation,
        )
