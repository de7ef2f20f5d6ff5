"""The depthwise convolution module, :class:`DepthwiseConv` (MobileNet's k×k per channel).

Thin like :class:`jaxconv.nn.Conv`: canonicalize the arguments → create the parameters → call
:func:`jaxconv.depthwise_conv`. The kernel is HWIO ``[*kernel, 1, C_in·multiplier]``; parameter
names are ``kernel`` and ``bias``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

import jaxconv
from jaxconv._check import check_int
from jaxconv.nn._conv import (
    Activation,
    Initializer,
    _WindowConv,
    default_bias_init,
    default_kernel_init,
)
from jaxconv.nn._validate import foreign_spellings

__all__ = ["DepthwiseConv"]

Array = jax.Array


class DepthwiseConv(_WindowConv):
    """A depthwise convolution layer calling :func:`jaxconv.depthwise_conv` (NHWC, HWIO).

    Each input channel is convolved with its own ``multiplier`` filters: output channel
    ``c·multiplier + j`` is input channel ``c`` through filter ``j``. ``out_features`` is
    ``in_features·multiplier``.

    Loading weights:

    - PyTorch ``Conv2d(C, C·m, k, groups=C).weight`` ``(C·m, 1, kh, kw)``: transpose by
      ``(2, 3, 1, 0)`` to ``kernel`` ``(kh, kw, 1, C·m)``; ``bias`` as it is.
    - Keras ``DepthwiseConv2D`` ``depthwise_kernel`` ``(kh, kw, C, m)``: reshape to
      ``(kh, kw, 1, C·m)`` (the same channel order).
    - Flax ``nnx.Conv(C, C·m, k, feature_group_count=C)`` ``kernel``: as it is.

    PyTorch pads symmetrically (``padding=1`` for a 3×3); ``"SAME"`` (the default) equals that
    at stride 1 but puts an odd pad pixel on the high side at stride 2 — pass ``padding=1`` to
    reproduce a PyTorch model exactly.

    Args:
      in_features: input channels ``C_in``.
      kernel_size: int (square 2-D) or one int per spatial dim (1–3).
      multiplier: filters per input channel (``depth_multiplier``).
      stride, padding, dilation: as for :class:`jaxconv.nn.Conv`.
      use_bias: add a ``[C_in·multiplier]`` bias.
      dtype: computation dtype (None: promote the input and the parameters).
      param_dtype: parameter dtype.
      precision: passed to XLA.
      kernel_init, bias_init: initializers for ``kernel`` ``[*kernel, 1, C_in·multiplier]``
        and ``bias`` ``[C_in·multiplier]``.
      activation: applied after the bias (``jax.nn.relu`` fuses into the conv where it can);
        None (default) for none.
      implementation: lowering name for the conv (None: dispatch).
      rngs: ``nnx.Rngs`` with a ``params`` stream.

    Call:
      ``x`` ``[N, *spatial, C_in]`` → ``[N, *spatial_out, C_in·multiplier]``; unbatched
      ``[*spatial, C_in]`` (as ``nnx.Conv`` takes) → ``[*spatial_out, C_in·multiplier]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.nn import DepthwiseConv
      >>> dw = DepthwiseConv(32, 3, multiplier=2, stride=2, rngs=nnx.Rngs(0))
      >>> dw.kernel.shape, dw.bias.shape, dw.out_features
      ((3, 3, 1, 64), (64,), 64)
      >>> dw(jnp.ones((1, 16, 16, 32))).shape
      (1, 8, 8, 64)
    """

    multiplier: int

    @foreign_spellings
    def __init__(
        self,
        in_features: int,
        kernel_size: int | Sequence[int],
        *,
        multiplier: int = 1,
        stride: int | Sequence[int] = 1,
        padding: Any = "SAME",
        dilation: int | Sequence[int] = 1,
        use_bias: bool = True,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        kernel_init: Initializer = default_kernel_init,
        bias_init: Initializer = default_bias_init,
        activation: Activation | None = None,
        implementation: str | None = None,
        rngs: nnx.Rngs,
    ):
        in_features = check_int(in_features, "in_features")
        self.multiplier = check_int(multiplier, "multiplier")
        self._set_features(
            in_features,
            in_features * self.multiplier,
            use_bias,
            dtype,
            param_dtype,
            precision,
            activation,
        )
        ndim = self._set_window(kernel_size, stride, dilation, implementation)
        self.padding = jaxconv.canonicalize_padding(padding, ndim)
        self._create_params((*self.kernel_size, 1, self.out_features), kernel_init, bias_init, rngs)

    def _conv(self, x: Array, kernel: Array, bias: Array | None) -> Array:
        return jaxconv.depthwise_conv(
            x,
            kernel,
            bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            multiplier=self.multiplier,
            precision=self.precision,
            activation=self.activation,
            implementation=self.implementation,
        )

    def cost(self, input_shape: Sequence[int]) -> jaxconv.ConvCost:
        """The analytic cost (:func:`jaxconv.depthwise_cost`) for an input of ``input_shape``.

        Args:
          input_shape: ``(N, *spatial, C_in)``.

        Returns:
          A :class:`jaxconv.ConvCost` totalled over the ``N`` images.

        Examples:
          >>> from flax import nnx
          >>> from jaxconv.nn import DepthwiseConv
          >>> DepthwiseConv(32, 3, use_bias=False, rngs=nnx.Rngs(0)).cost((1, 112, 112, 32)).macs
          3612672
        """
        n, *image = tuple(input_shape)
        return jaxconv.depthwise_cost(
            image,
            self.kernel_size,
            multiplier=self.multiplier,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            bias=self.use_bias,
            batch=n,
            dtype=self.dtype or self.param_dtype,
        )
