"""Depthwise-separable convolution (MobileNet, Howard et al. 2017, §3.1): :func:`separable_conv`.

A depthwise conv (:func:`jaxconv.depthwise_conv`) filters each channel on its own, then a 1×1
pointwise conv (:func:`jaxconv.conv1x1`) mixes the channels. Against a standard k×k conv to
``N`` channels that costs ``1/N + 1/k²`` of the multiply-adds (:func:`jaxconv.separable_cost`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from jaxconv import _geometry as geo
from jaxconv._check import check_activation, check_array
from jaxconv.convolution.conv import apply
from jaxconv.convolution.conv1x1 import pointwise
from jaxconv.convolution.depthwise import _check_depthwise
from jaxconv.convolution.lowering import Plan
from jaxconv.convolution.spec import conv_spec

__all__ = ["separable_conv"]

Array = jax.Array


def separable_conv(
    x: Array,
    w_depthwise: Array,
    w_pointwise: Array,
    b_depthwise: Array | None = None,
    b_pointwise: Array | None = None,
    *,
    activation: Callable[[Array], Array] | None = None,
    out_activation: Callable[[Array], Array] | None = None,
    stride: Any = 1,
    padding: geo.Padding = "SAME",
    dilation: Any = 1,
    multiplier: int | None = None,
    layout: str = "NHWC",
    precision: Any = None,
    preferred_element_type: Any = None,
    implementation: str | Plan | None = None,
    pointwise_implementation: str | Plan | None = None,
) -> Array:
    """Depthwise-separable convolution: :func:`depthwise_conv`, then ``activation``, then a
    1×1 pointwise :func:`jaxconv.conv1x1`, then ``out_activation`` (MobileNet's block without
    its BatchNorms).

    The output is returned before any activation after the pointwise conv unless
    ``out_activation`` is given: the caller chooses the block's non-linearity. Each goes to
    its conv as :func:`jaxconv.conv`'s ``activation`` does (``jax.nn.relu`` fused into the
    conv's call where the lowering can).

    Args:
      x: ``[N, *spatial, C_in]`` (or channels-first with ``layout="NCHW"``).
      w_depthwise: ``[*kernel, 1, C_in·multiplier]`` (OIHW ``[C_in·multiplier, 1, *kernel]``
        for channels-first), see :func:`depthwise_conv`.
      w_pointwise: ``[C_in·multiplier, C_out]`` (``[C_out, C_in·multiplier]`` for
        channels-first), see :func:`jaxconv.conv1x1`.
      b_depthwise, b_pointwise: optional biases ``[C_in·multiplier]`` and ``[C_out]``.
      activation: applied between the two convs (None for none).
      out_activation: applied after the pointwise conv (None, the default, for none).
      stride, padding, dilation, multiplier: of the depthwise conv.
      layout, precision, preferred_element_type: as for :func:`jaxconv.conv`, for both convs.
      implementation: lowering of the depthwise conv (see :func:`jaxconv.conv`).
      pointwise_implementation: lowering of the pointwise conv (see :func:`jaxconv.conv1x1`).

    Returns:
      ``[N, *spatial_out, C_out]`` (or channels-first).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jaxconv.convolution.separable import separable_conv
      >>> k = jax.random.split(jax.random.key(0), 3)
      >>> x = jax.random.normal(k[0], (2, 16, 16, 32))
      >>> w_dw = jax.random.normal(k[1], (3, 3, 1, 32))
      >>> w_pw = jax.random.normal(k[2], (32, 64))
      >>> separable_conv(x, w_dw, w_pw, activation=jax.nn.relu, stride=2).shape
      (2, 8, 8, 64)
      >>> y = separable_conv(x, w_dw, w_pw, activation=jax.nn.relu, out_activation=jax.nn.relu)
      >>> bool((y >= 0).all())
      True
    """
    with jax.named_scope("jaxconv.separable_conv"):
        check_activation(activation)
        check_activation(out_activation, "out_activation")
        x, w_depthwise, c_in = _check_depthwise(x, w_depthwise, multiplier, layout, "w_depthwise")
        w_pointwise = check_array(w_pointwise, "w_pointwise")
        c_mid = w_depthwise.shape[-1] if geo.channels_last(layout) else w_depthwise.shape[0]
        if w_pointwise.ndim == 2:
            pw_in = w_pointwise.shape[0] if geo.channels_last(layout) else w_pointwise.shape[1]
            if pw_in != c_mid:
                raise ValueError(
                    f"`w_pointwise` in-channel dim (={pw_in}) must equal the depthwise conv's "
                    f"output channels (={c_mid}, `w_depthwise` {tuple(w_depthwise.shape)}); "
                    f"`w_pointwise` has shape {tuple(w_pointwise.shape)}"
                )
        spec = conv_spec(
            x,
            w_depthwise,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=c_in,
            layout=layout,
            precision=precision,
            preferred_element_type=preferred_element_type,
            names={"w": "w_depthwise"},
        )
        h = apply(
            x, w_depthwise, b_depthwise, spec, implementation, activation, b_name="b_depthwise"
        )
        if preferred_element_type is not None:
            h = h.astype(w_pointwise.dtype)
        return pointwise(
            h,
            w_pointwise,
            b_pointwise,
            layout,
            precision,
            preferred_element_type,
            pointwise_implementation,
            w_name="w_pointwise",
            b_name="b_pointwise",
            activation=out_activation,
        )
