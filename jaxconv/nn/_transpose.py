"""The transposed convolution module, :class:`ConvTranspose` (PyTorch's and Flax's conventions).

Thin like :class:`jaxconv.nn.Conv`: canonicalize the arguments → create the parameters → call
:func:`jaxconv.conv_transpose`. Kernels are HWIO (``[*kernel, I, O]``), parameter names are
``kernel`` and ``bias``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

import jaxconv
from jaxconv._check import check_bool
from jaxconv.nn._conv import (
    Activation,
    Initializer,
    _WindowConv,
    activate,
    default_bias_init,
    default_kernel_init,
)
from jaxconv.nn._validate import foreign_spellings

__all__ = ["ConvTranspose"]

Array = jax.Array


class ConvTranspose(_WindowConv):
    """A transposed convolution layer calling :func:`jaxconv.conv_transpose` (NHWC, HWIO).

    An int ``padding`` (or one int or ``(lo, hi)`` pair per dim) and ``output_padding`` mean
    what they mean in PyTorch's ``ConvTranspose2d`` (the padding crops the output); ``"SAME"``
    and ``"VALID"`` mean what they mean in Flax's ``nnx.ConvTranspose`` (SAME: ``n·stride``
    outputs). Output size per dim with ints: ``(n-1)·stride - lo - hi + dilation·(k-1) +
    output_padding + 1``. An int ``kernel_size`` is a square 2-D kernel (Flax: 1-D).

    The ``kernel``, and how to load one:

    - ``transpose_kernel=False`` (default): ``[*kernel, C_in/groups, C_out]``, the weights that
      scatter the input's channels into the output's. From PyTorch's ``ConvTranspose2d.weight``
      ``w`` ``(C_in, C_out/groups, kh, kw)``: for ``groups=1`` ``w.transpose(2, 3, 0, 1)``; for
      ``groups=g`` ``w.reshape(g, C_in/g, C_out/g, kh, kw).transpose(3, 4, 1, 0, 2)
      .reshape(kh, kw, C_in/g, C_out)``. From Flax's ``nnx.ConvTranspose(transpose_kernel=
      False)`` ``kernel`` ``k`` ``(kh, kw, C_in, C_out)``: ``jnp.flip(k, (0, 1))`` (Flax runs
      it unflipped on the stride-dilated input).
    - ``transpose_kernel=True``: ``[*kernel, C_out/groups, C_in]``, the kernel of the forward
      conv whose gradient this layer is. From PyTorch's weight, any ``groups``:
      ``w.transpose(2, 3, 1, 0)``. From Flax's ``nnx.ConvTranspose(transpose_kernel=True)``
      ``kernel`` ``(kh, kw, C_out, C_in)``: as it is.

    Either way ``bias`` ``[C_out]`` is PyTorch's and Flax's ``bias`` as it is. Flax's explicit
    ``padding=((lo, hi), …)`` pads the dilated input; the same layer here is ``padding=
    ((d·(k-1) - lo, d·(k-1) - hi), …)`` where those are ``>= 0``.

    Args:
      in_features: input channels ``C_in``.
      out_features: output channels ``C_out``.
      kernel_size: int (square 2-D) or one int per spatial dim (1–3).
      stride: the upsampling factor, int or one per spatial dim.
      padding: ``"SAME"`` (default, as ``nnx.ConvTranspose`` and every jaxconv conv: ``n·stride``
        outputs) / ``"VALID"`` (Flax's), or an int, one int or ``(lo, hi)`` pair per dim
        (PyTorch's; PyTorch's default is ``padding=0``: pass it to port a layer).
      output_padding: extra outputs on the high side, ``< max(stride, dilation)`` (PyTorch's;
        only with int/pair ``padding``).
      dilation: kernel dilation.
      groups: feature groups; must divide ``in_features`` and ``out_features``.
      transpose_kernel: the kernel convention (above).
      use_bias: add a ``[C_out]`` bias.
      dtype, param_dtype, precision: as for :class:`jaxconv.nn.Conv`.
      kernel_init, bias_init: initializers for ``kernel`` and ``bias``.
      activation: applied after the bias; None (default) for none.
      implementation: lowering of the underlying input-dilated conv (None: dispatch).
      rngs: ``nnx.Rngs`` with a ``params`` stream.

    Call:
      ``x`` ``[N, *spatial, C_in]`` → ``[N, *spatial_out, C_out]``; an unbatched ``x``
      ``[*spatial, C_in]`` (as ``nnx.Conv`` takes) → ``[*spatial_out, C_out]``.

    Examples:
      PyTorch's ``ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1)`` doubles
      the size, and so does the default, Flax's ``"SAME"``; PyTorch's default ``padding=0``
      is one keyword away:

      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.nn import ConvTranspose
      >>> up = ConvTranspose(64, 32, 3, stride=2, padding=1, output_padding=1, rngs=nnx.Rngs(0))
      >>> up.kernel.shape, up(jnp.ones((1, 7, 7, 64))).shape
      ((3, 3, 64, 32), (1, 14, 14, 32))
      >>> ConvTranspose(64, 32, 3, stride=2, rngs=nnx.Rngs(0))(jnp.ones((1, 7, 7, 64))).shape
      (1, 14, 14, 32)
      >>> ConvTranspose(64, 32, 3, stride=2, padding=0, rngs=nnx.Rngs(0))(
      ...     jnp.ones((1, 7, 7, 64))).shape   # (7-1)·2 + 3
      (1, 15, 15, 32)
    """

    output_padding: tuple[int, ...]
    transpose_kernel: bool

    @foreign_spellings
    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        *,
        stride: int | Sequence[int] = 1,
        padding: Any = "SAME",
        output_padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        transpose_kernel: bool = False,
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
        self._set_features(
            in_features, out_features, use_bias, dtype, param_dtype, precision, activation
        )
        ndim = self._set_window(kernel_size, stride, dilation, implementation)
        self.output_padding = jaxconv.canonicalize_spatial(
            output_padding, ndim, "output_padding", minimum=0
        )
        self._set_groups(groups)
        self.transpose_kernel = check_bool(transpose_kernel, "transpose_kernel")
        # Checks padding and output_padding together (output_padding < max(stride, dilation),
        # none with a string padding) now rather than at the first call.
        jaxconv.conv_transpose_padding(
            self.kernel_size,
            stride=self.stride,
            padding=padding,
            output_padding=self.output_padding,
            dilation=self.dilation,
        )
        self.padding = (
            padding.upper()
            if isinstance(padding, str)
            else jaxconv.canonicalize_padding(padding, ndim)
        )
        if self.transpose_kernel:  # the kernel of the forward conv: [*kernel, C_out/g, C_in]
            io = (self.out_features // self.groups, self.in_features)
        else:
            io = (self.in_features // self.groups, self.out_features)
        self._create_params((*self.kernel_size, *io), kernel_init, bias_init, rngs)

    def _conv(self, x: Array, kernel: Array, bias: Array | None) -> Array:
        y = jaxconv.conv_transpose(
            x,
            kernel,
            bias,
            stride=self.stride,
            padding=self.padding,
            output_padding=self.output_padding,
            dilation=self.dilation,
            groups=self.groups,
            precision=self.precision,
            transpose_kernel=self.transpose_kernel,
            implementation=self.implementation,
        )
        return activate(y, self.activation)

    def cost(self, input_shape: Sequence[int]) -> jaxconv.ConvCost:
        """The analytic cost for an input of ``input_shape`` ``(N, *spatial, C_in)``.

        MACs count the scatter: every input pixel through every tap, ``N·H·W·kh·kw·
        (C_in/groups)·C_out`` — what PyTorch's profilers count, and exactly the MACs of the
        forward conv whose gradient this layer is (the multiplications by the inserted zeros
        of the stride-dilated input are not counted).

        Returns:
          A :class:`jaxconv.ConvCost` totalled over the ``N`` images.

        Examples:
          >>> from flax import nnx
          >>> from jaxconv.nn import ConvTranspose
          >>> up = ConvTranspose(64, 32, 3, stride=2, padding=1, output_padding=1,
          ...                    rngs=nnx.Rngs(0))
          >>> c = up.cost((1, 7, 7, 64))
          >>> c.output_shape, c.macs, c.macs == 7 * 7 * 3 * 3 * 64 * 32
          ((14, 14, 32), 903168, True)
        """
        n, *spatial, c_in = (int(v) for v in input_shape)
        if len(spatial) != len(self.kernel_size) or c_in != self.in_features:
            raise ValueError(
                f"`input_shape` must be (N, *spatial, {self.in_features}) with "
                f"{len(self.kernel_size)} spatial dims, got {tuple(input_shape)!r}"
            )
        return jaxconv.conv_transpose_cost(
            (*spatial, c_in),
            self.out_features,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            output_padding=self.output_padding,
            dilation=self.dilation,
            groups=self.groups,
            bias=self.use_bias,
            batch=n,
            dtype=self.dtype or self.param_dtype,
        )
