"""Inception's bottleneck: :func:`bottleneck`, a 1×1 reduce, an activation, then a k×k conv."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from jaxconv import _geometry as geo
from jaxconv._check import check_activation, check_array, check_same_dtype
from jaxconv.convolution.conv import apply
from jaxconv.convolution.conv1x1 import _check_matrix
from jaxconv.convolution.lowering import Plan
from jaxconv.convolution.spec import conv_spec

__all__ = ["bottleneck"]

Array = jax.Array


def _as_kernel(w_reduce: Array, x: Array, layout: str) -> Array:
    """The 1×1 reduce (checked by :func:`check_array`) as a kernel in ``layout``: a matrix
    gets unit spatial dims."""
    channels_last = geo.channels_last(layout)
    if w_reduce.ndim == 2:
        check_same_dtype(x, w_reduce, "w_reduce")
        _check_matrix(x, w_reduce, layout, "w_reduce")
        unit = (1,) * (x.ndim - 2)
        shape = unit + tuple(w_reduce.shape) if channels_last else tuple(w_reduce.shape) + unit
        return w_reduce.reshape(shape)
    kernel = w_reduce.shape[:-2] if channels_last else w_reduce.shape[2:]
    if any(k != 1 for k in kernel):
        raise ValueError(
            f"`w_reduce` must be a 1×1 kernel or a matrix, got shape {tuple(w_reduce.shape)}"
        )
    return w_reduce


def bottleneck(
    x: Array,
    w_reduce: Array,
    w_spatial: Array,
    b_reduce: Array | None = None,
    b_spatial: Array | None = None,
    *,
    activation: Callable[[Array], Array] | None = jax.nn.relu,
    stride: Any = 1,
    padding: geo.Padding = "SAME",
    dilation: Any = 1,
    groups: int = 1,
    layout: str = "NHWC",
    precision: Any = None,
    preferred_element_type: Any = None,
    implementation: str | Plan | None = None,
    reduce_implementation: str | Plan | None = None,
) -> Array:
    """Inception's bottleneck: 1×1 reduce → activation → k×k conv.

    The 1×1 cuts the channels the k×k has to read: on the seed's layer (14×14×480 → 48 5×5
    filters, 16-channel reduce) 112.9M MACs become 1.5M + 3.8M = 5.3M. The output is returned
    before any activation, so the caller chooses the block's non-linearity.

    Args:
      x: ``[N, H, W, C_in]`` (or NCHW with ``layout="NCHW"``; 1-D/3-D also work).
      w_reduce: the 1×1 reduce, either ``[C_in, C_r]`` (``[C_r, C_in]`` for NCHW) or a 1×1 kernel
        in ``w_spatial``'s layout.
      w_spatial: the k×k kernel ``[kh, kw, C_r/groups, C_out]`` (HWIO; OIHW for NCHW).
      b_reduce, b_spatial: optional biases ``[C_r]`` and ``[C_out]``.
      activation: applied after the reduce (None for none).
      stride, padding, dilation, groups: of the k×k conv (see :func:`conv`).
      layout, precision, preferred_element_type: as for :func:`conv`.
      implementation: lowering of the k×k conv (see :func:`conv`).
      reduce_implementation: lowering of the 1×1, chosen like ``implementation`` (None: the
        plan :func:`jaxconv.convolution.choose` picks for that 1×1 conv). When ``activation`` is
        ``jax.nn.relu`` it is fused into the reduce's call where the lowering can (oneDNN:
        one conv with the bias and ReLU as post-ops).

    Returns:
      ``[N, H_out, W_out, C_out]``.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxconv
      >>> k = jax.random.split(jax.random.key(0), 3)
      >>> x = jax.random.normal(k[0], (1, 14, 14, 480))
      >>> w_r = jax.random.normal(k[1], (480, 16))
      >>> w_s = jax.random.normal(k[2], (5, 5, 16, 48))
      >>> jaxconv.bottleneck(x, w_r, w_s).shape
      (1, 14, 14, 48)
    """
    with jax.named_scope("jaxconv.bottleneck"):
        check_activation(activation)
        w_reduce = check_array(w_reduce, "w_reduce")
        x = check_array(x, "x", empty_batch=True)
        k_reduce = _as_kernel(w_reduce, x, layout)
        spec = conv_spec(
            x,
            k_reduce,
            padding="VALID",
            layout=layout,
            precision=precision,
            preferred_element_type=preferred_element_type,
            names={"w": "w_reduce"},
        )
        w_spatial = check_array(w_spatial, "w_spatial")
        if w_spatial.ndim == x.ndim and type(groups) is int:  # other errors are conv's to report
            w_in = w_spatial.shape[-2] if spec.channels_last else w_spatial.shape[1]
            if w_in * groups != spec.out_channels:
                raise ValueError(
                    f"`w_spatial` in-channel dim (={w_in}) times `groups` (={groups}) must "
                    f"equal the reduced channels (={spec.out_channels}) that `w_reduce` "
                    f"{tuple(w_reduce.shape)} produces"
                )
        h = apply(x, k_reduce, b_reduce, spec, reduce_implementation, activation, b_name="b_reduce")
        if preferred_element_type is not None:
            h = h.astype(w_spatial.dtype)
        spatial = conv_spec(
            h,
            w_spatial,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            layout=layout,
            precision=precision,
            preferred_element_type=preferred_element_type,
            names={"w": "w_spatial"},
        )
        return apply(h, w_spatial, b_spatial, spatial, implementation, b_name="b_spatial")
