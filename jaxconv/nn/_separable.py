"""The depthwise-separable convolution module, :class:`SeparableConv`: a
:class:`~jaxconv.nn.DepthwiseConv` and a :class:`~jaxconv.nn.Conv1x1` run as one
:func:`jaxconv.separable_conv`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn.dtypes import promote_dtype

import jaxconv
from jaxconv._check import check_activation
from jaxconv.nn._conv import (
    Activation,
    Conv1x1,
    Initializer,
    default_bias_init,
    default_kernel_init,
)
from jaxconv.nn._depthwise import DepthwiseConv
from jaxconv.nn._validate import check_channels, foreign_spellings, with_batch

__all__ = ["SeparableConv"]

Array = jax.Array


class SeparableConv(nnx.Module):
    """A depthwise-separable convolution calling :func:`jaxconv.separable_conv`: a depthwise
    k×k conv, ``activation``, then a 1×1 pointwise conv (MobileNet's block without its
    BatchNorms; Howard et al. 2017, §3.1).

    Submodules ``depthwise`` (a :class:`DepthwiseConv`, no activation of its own) and
    ``pointwise`` (a :class:`jaxconv.nn.Conv1x1`); the module calls the fused op with their
    parameters, so the pair costs one call. Parameter paths and where a port's weights go:

    - ``depthwise.kernel`` ``[*kernel, 1, C_in·m]``: PyTorch ``Conv2d(C, C·m, k,
      groups=C).weight`` transposed by ``(2, 3, 1, 0)``; Keras ``depthwise_kernel``
      ``(kh, kw, C, m)`` reshaped to ``(kh, kw, 1, C·m)``.
    - ``depthwise.bias`` ``[C_in·m]``, only with ``use_depthwise_bias=True``: that ``Conv2d``'s
      ``bias`` (Keras has none, hence the default).
    - ``pointwise.kernel`` ``[1, 1, C_in·m, C_out]``: PyTorch ``Conv2d(C·m, C_out, 1).weight``
      transposed by ``(2, 3, 1, 0)``; Keras ``pointwise_kernel`` as it is.
    - ``pointwise.bias`` ``[C_out]``, with ``use_bias=True`` (default): that ``Conv2d``'s
      ``bias``; Keras ``bias``.

    (timm's ``SeparableConv2d`` names the same two convs ``conv_dw`` and ``conv_pw``.) Keras
    applies its ``activation`` after the pointwise conv; here ``activation`` sits between the
    two, as in :func:`jaxconv.separable_conv` — apply Keras's to the output.

    Args:
      in_features: input channels ``C_in``.
      out_features: output channels ``C_out`` of the pointwise conv.
      kernel_size: the depthwise kernel, int (square 2-D) or one int per spatial dim.
      multiplier: the depthwise conv's filters per input channel.
      stride, padding, dilation: of the depthwise conv (see :class:`DepthwiseConv`).
      activation: applied between the two convs; None (default) for none.
      use_bias: a ``[C_out]`` bias on the pointwise conv.
      use_depthwise_bias: a ``[C_in·m]`` bias on the depthwise conv (default False, as Keras).
      dtype, param_dtype, precision: as for :class:`jaxconv.nn.Conv`, for both convs.
      kernel_init, bias_init: initializers for both convs' kernels and biases.
      implementation: lowering of the depthwise conv (the pointwise one is one einsum).
      rngs: ``nnx.Rngs`` with a ``params`` stream.

    Call:
      ``x`` ``[N, *spatial, C_in]`` → ``[N, *spatial_out, C_out]``; an unbatched ``x``
      ``[*spatial, C_in]`` (as ``nnx.Conv`` takes) → ``[*spatial_out, C_out]``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.nn import SeparableConv
      >>> sep = SeparableConv(32, 64, 3, stride=2, activation=jax.nn.relu, rngs=nnx.Rngs(0))
      >>> sep(jnp.ones((2, 16, 16, 32))).shape
      (2, 8, 8, 64)
      >>> [".".join(p) for p, _ in nnx.to_flat_state(nnx.state(sep, nnx.Param))]
      ['depthwise.kernel', 'pointwise.bias', 'pointwise.kernel']
    """

    activation: Activation | None
    depthwise: DepthwiseConv
    pointwise: Conv1x1
    in_features: int
    out_features: int
    multiplier: int
    dtype: Any

    @foreign_spellings
    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        *,
        multiplier: int = 1,
        stride: int | Sequence[int] = 1,
        padding: Any = "SAME",
        dilation: int | Sequence[int] = 1,
        activation: Activation | None = None,
        use_bias: bool = True,
        use_depthwise_bias: bool = False,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        kernel_init: Initializer = default_kernel_init,
        bias_init: Initializer = default_bias_init,
        implementation: str | None = None,
        rngs: nnx.Rngs,
    ):
        self.activation = check_activation(activation)
        self.depthwise = DepthwiseConv(
            in_features,
            kernel_size,
            multiplier=multiplier,
            stride=stride,
            padding=padding,
            dilation=dilation,
            use_bias=use_depthwise_bias,
            dtype=dtype,
            param_dtype=param_dtype,
            precision=precision,
            kernel_init=kernel_init,
            bias_init=bias_init,
            implementation=implementation,
            rngs=rngs,
        )
        self.pointwise = Conv1x1(
            self.depthwise.out_features,
            out_features,
            use_bias=use_bias,
            dtype=dtype,
            param_dtype=param_dtype,
            precision=precision,
            kernel_init=kernel_init,
            bias_init=bias_init,
            rngs=rngs,
        )
        self.in_features = self.depthwise.in_features
        self.out_features = self.pointwise.out_features
        self.multiplier = self.depthwise.multiplier
        self.dtype = self.depthwise.dtype

    def __call__(self, x: Array) -> Array:
        return with_batch(x, self.depthwise.kernel_size, type(self).__name__, self._batched)

    def _batched(self, x: Array) -> Array:
        x = check_channels(x, self.in_features, type(self).__name__)
        dw, pw = self.depthwise, self.pointwise
        x, w_dw, w_pw, b_dw, b_pw = promote_dtype(
            (x, dw.kernel[...], pw.matrix(), dw._bias(), pw._bias()), dtype=self.dtype
        )
        return jaxconv.separable_conv(
            x,
            w_dw,
            w_pw,
            b_dw,
            b_pw,
            activation=self.activation,
            stride=dw.stride,
            padding=dw.padding,
            dilation=dw.dilation,
            multiplier=dw.multiplier,
            precision=dw.precision,
            implementation=dw.implementation,
        )

    def cost(self, input_shape: Sequence[int]) -> jaxconv.SeparableCost:
        """The two convs' costs against a standard k×k conv (:func:`jaxconv.separable_cost`),
        each bias counted where this module has it.

        Args:
          input_shape: ``(N, *spatial, C_in)``.

        Returns:
          A :class:`jaxconv.SeparableCost`; ``macs_separable`` is this module's MACs.

        Examples:
          >>> from flax import nnx
          >>> from jaxconv.nn import SeparableConv
          >>> c = SeparableConv(512, 512, 3, rngs=nnx.Rngs(0)).cost((1, 14, 14, 512))
          >>> c.macs_separable, c.depthwise.params, c.pointwise.params
          (52283392, 4608, 262656)
        """
        n, *image = tuple(input_shape)
        dw = self.depthwise
        standard = jaxconv.conv_cost(
            image,
            self.out_features,
            dw.kernel_size,
            stride=dw.stride,
            padding=dw.padding,
            dilation=dw.dilation,
            bias=self.pointwise.use_bias,
            batch=n,
            dtype=self.dtype or dw.param_dtype,
        )
        depthwise = dw.cost(input_shape)
        pointwise = self.pointwise.cost((n, *depthwise.output_shape))
        return jaxconv.SeparableCost.of(standard, depthwise, pointwise)
