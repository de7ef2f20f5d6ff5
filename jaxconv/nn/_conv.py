"""Convolution modules: ``Conv``, ``Conv1x1`` and ``ConvBN``.

Each module is thin: canonicalize the arguments → create the parameters → call a ``jaxconv``
op → add the bias. Kernels are HWIO (``[*kernel, C_in/groups, C_out]``), like Flax.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn.dtypes import promote_dtype

import jaxconv
from jaxconv._check import check_activation, check_bool, check_dtype, check_groups, check_int
from jaxconv.nn._batch_norm import batch_norm
from jaxconv.nn._init import VarianceScaling, zeros
from jaxconv.nn._validate import (
    check_channels,
    check_implementation,
    foreign_spellings,
    window_size,
    with_batch,
)

__all__ = ["Conv", "Conv1x1", "ConvBN"]

Array = jax.Array
Initializer = Callable[..., Array]
Activation = Callable[[Array], Array]

#: LeCun normal over the fan-in ``kh·kw·C_in/groups``: Flax's default for Conv
#: (``nnx.initializers.lecun_normal()``), drawn by one compiled sampler for every shape.
default_kernel_init: Initializer = VarianceScaling(1.0, "fan_in", "truncated_normal")
default_bias_init: Initializer = zeros


def linear(
    in_features: int,
    out_features: int,
    *,
    kernel_init: Initializer = default_kernel_init,
    rngs: nnx.Rngs,
    **options: Any,
) -> nnx.Linear:
    """``nnx.Linear`` with jaxconv's initializers: its own defaults' distributions (LeCun
    normal kernel, zero bias), without a compile per shape. ``options`` go to ``nnx.Linear``."""
    return nnx.Linear(
        in_features,
        out_features,
        kernel_init=kernel_init,
        bias_init=default_bias_init,
        rngs=rngs,
        **options,
    )


def activate(y: Array, activation: Activation | None) -> Array:
    """``activation(y)``, or ``y`` when there is none: every module applies its activation here."""
    return y if activation is None else activation(y)


class _ConvBase(nnx.Module):
    """What every conv module with its own parameters shares: the features, the numerics and
    the activation, the parameters (``kernel``, then ``bias`` ``[C_out]``) and the bias."""

    in_features: int
    out_features: int
    use_bias: bool
    dtype: Any
    param_dtype: Any
    precision: Any
    activation: Activation | None
    kernel: nnx.Param[Array]
    bias: nnx.Param[Array] | None

    def _set_features(
        self,
        in_features: int,
        out_features: int,
        use_bias: bool,
        dtype: Any,
        param_dtype: Any,
        precision: Any,
        activation: Any,
    ) -> None:
        self.in_features = check_int(in_features, "in_features")
        self.out_features = check_int(out_features, "out_features")
        self.use_bias = check_bool(use_bias, "use_bias")
        self.dtype = check_dtype(dtype, "dtype")
        self.param_dtype = check_dtype(param_dtype, "param_dtype")
        self.precision = precision
        self.activation = check_activation(activation)

    def _create_params(
        self,
        shape: tuple[int, ...],
        kernel_init: Initializer,
        bias_init: Initializer,
        rngs: nnx.Rngs,
    ) -> None:
        """``kernel`` of ``shape``, then ``bias`` ``[C_out]`` (or None): always in this order."""
        self.kernel = nnx.Param(kernel_init(rngs.params(), shape, self.param_dtype))
        if self.use_bias:
            shape = (self.out_features,)
            self.bias = nnx.Param(bias_init(rngs.params(), shape, self.param_dtype))
        else:
            self.bias = nnx.data(None)

    def _bias(self) -> Array | None:
        return None if self.bias is None else self.bias[...]


class _WindowConv(_ConvBase):
    """What the convs with a spatial kernel share (:class:`Conv`, :class:`DepthwiseConv`,
    :class:`ConvTranspose`): the window's canonical form, the lowering, and the call on a
    batched or an unbatched input, which ends in the op :meth:`_conv` names."""

    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: str | tuple[tuple[int, int], ...]
    implementation: str | None
    groups: int  # Conv's and ConvTranspose's (a depthwise conv's groups are its C_in)

    def _set_window(self, kernel_size: Any, stride: Any, dilation: Any, implementation: Any) -> int:
        """``kernel_size``, ``stride``, ``dilation`` (one per spatial dim) and the lowering;
        returns the number of spatial dims."""
        self.kernel_size = window_size(kernel_size)
        ndim = len(self.kernel_size)
        self.stride = jaxconv.canonicalize_spatial(stride, ndim, "stride")
        self.dilation = jaxconv.canonicalize_spatial(dilation, ndim, "dilation")
        self.implementation = check_implementation(implementation)
        return ndim

    def _set_groups(self, groups: Any) -> None:
        self.groups = check_groups(
            groups,
            self.in_features,
            self.out_features,
            in_name="`in_features`",
            out_name="`out_features`",
        )

    def __call__(self, x: Array) -> Array:
        return with_batch(x, self.kernel_size, type(self).__name__, self._batched)

    def _batched(self, x: Array) -> Array:
        x = check_channels(x, self.in_features, type(self).__name__)
        x, kernel, bias = promote_dtype((x, self.kernel[...], self._bias()), dtype=self.dtype)
        return self._conv(x, kernel, bias)

    def _conv(self, x: Array, kernel: Array, bias: Array | None) -> Array:
        """The module's op on ``x`` ``[N, *spatial, C_in]`` and the promoted parameters."""
        raise NotImplementedError


class Conv(_WindowConv):
    """A convolution layer calling :func:`jaxconv.conv` (NHWC input, HWIO kernel).

    An int ``kernel_size`` is a square 2-D kernel — unlike ``nnx.Conv``, where an int means a
    1-D convolution. A tuple of 1–3 ints gives a 1-D, 2-D or 3-D kernel. ``nnx.Conv``'s
    spellings (``strides=``, ``kernel_dilation=``, ``feature_group_count=``) and PyTorch's
    (``bias=``, ``in_channels=``, ``padding_mode=``) raise a TypeError naming jaxconv's.

    Args:
      in_features: input channels ``C_in``.
      out_features: output channels ``C_out``.
      kernel_size: int (square 2-D) or one int per spatial dim.
      stride: int or one per spatial dim.
      padding: any padding :func:`jaxconv.conv` accepts (``"SAME"``, ``"VALID"``, an int,
        ``(lo, hi)`` pairs, ``"REFLECT"``…).
      dilation: kernel dilation.
      input_dilation: input dilation (a transposed conv's zero insertion), int or one per
        spatial dim; see :func:`jaxconv.conv`.
      groups: feature groups; must divide ``in_features`` and ``out_features``.
      use_bias: add a ``[C_out]`` bias.
      dtype: computation dtype (None: promote the input and the parameters).
      param_dtype: parameter dtype.
      precision: passed to XLA.
      preferred_element_type: accumulation/output dtype, passed to :func:`jaxconv.conv` (None:
        the computation dtype).
      kernel_init, bias_init: initializers for ``kernel`` ``[*kernel, C_in/groups, C_out]`` and
        ``bias`` ``[C_out]``.
      activation: applied after the bias; None (default) for none.
      implementation: lowering name for :func:`jaxconv.conv` (None: dispatch).
      rngs: ``nnx.Rngs`` with a ``params`` stream.

    Call:
      ``x`` ``[N, *spatial, C_in]`` → ``[N, *spatial_out, C_out]``; an unbatched ``x``
      ``[*spatial, C_in]`` (as ``nnx.Conv`` takes) → ``[*spatial_out, C_out]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.nn import Conv
      >>> conv = Conv(3, 16, 3, stride=2, rngs=nnx.Rngs(0))
      >>> conv.kernel.shape
      (3, 3, 3, 16)
      >>> conv(jnp.ones((2, 32, 32, 3))).shape
      (2, 16, 16, 16)
      >>> conv(jnp.ones((32, 32, 3))).shape  # unbatched, as nnx.Conv takes it
      (16, 16, 16)
      >>> Conv(3, 16, 3, activation=jax.nn.relu, rngs=nnx.Rngs(0))(-jnp.ones((1, 4, 4, 3))).min()
      Array(0., dtype=float32)
      >>> Conv(3, 16, 3, input_dilation=2, rngs=nnx.Rngs(0))(jnp.ones((2, 8, 8, 3))).shape
      (2, 15, 15, 16)
      >>> bf16 = Conv(3, 16, 3, param_dtype=jnp.bfloat16, preferred_element_type=jnp.float32,
      ...             rngs=nnx.Rngs(0))
      >>> bf16(jnp.ones((1, 8, 8, 3), jnp.bfloat16)).dtype
      dtype('float32')
    """

    input_dilation: tuple[int, ...]
    preferred_element_type: Any

    @foreign_spellings
    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        *,
        stride: int | Sequence[int] = 1,
        padding: Any = "SAME",
        dilation: int | Sequence[int] = 1,
        input_dilation: int | Sequence[int] = 1,
        groups: int = 1,
        use_bias: bool = True,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        preferred_element_type: Any = None,
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
        self.input_dilation = jaxconv.canonicalize_spatial(input_dilation, ndim, "input_dilation")
        self.preferred_element_type = check_dtype(preferred_element_type, "preferred_element_type")
        self._set_groups(groups)
        self.padding = jaxconv.canonicalize_padding(padding, ndim)
        shape = (*self.kernel_size, self.in_features // self.groups, self.out_features)
        self._create_params(shape, kernel_init, bias_init, rngs)

    def _conv(self, x: Array, kernel: Array, bias: Array | None) -> Array:
        return jaxconv.conv(
            x,
            kernel,
            bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            input_dilation=self.input_dilation,
            groups=self.groups,
            precision=self.precision,
            preferred_element_type=self.preferred_element_type,
            activation=self.activation,  # a ReLU runs inside the conv where it can
            implementation=self.implementation,
        )

    def cost(self, input_shape: Sequence[int]) -> jaxconv.ConvCost:
        """The analytic cost (:func:`jaxconv.conv_cost`) for an input of ``input_shape``.

        Args:
          input_shape: ``(N, *spatial, C_in)``.

        Returns:
          A :class:`jaxconv.ConvCost` totalled over the ``N`` images; with ``input_dilation``
          the output size is that of the dilated input and every tap is counted, the inserted
          zeros included (the cost model's convention).

        Examples:
          >>> from flax import nnx
          >>> from jaxconv.nn import Conv
          >>> Conv(480, 48, 5, use_bias=False, rngs=nnx.Rngs(0)).cost((1, 14, 14, 480)).macs
          112896000
        """
        n, *image = tuple(input_shape)
        return jaxconv.conv_cost(
            image,
            self.out_features,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            input_dilation=self.input_dilation,
            groups=self.groups,
            bias=self.use_bias,
            batch=n,
            dtype=self.dtype or self.param_dtype,
        )


def pointwise(
    x: Array,
    matrix: Array,
    bias: Array | None,
    *,
    precision: Any = None,
    activation: Activation | None = None,
) -> Array:
    """``activation(x @ matrix + bias)`` over the last dim of ``x`` ``[..., C_in]``.

    A batch of 1-, 2- or 3-D maps (rank 3 to 5) runs as a 1×1 :func:`jaxconv.conv`, so it
    gets the conv dispatch: oneDNN with the bias and a ReLU fused where the extension loads
    (faster than the einsum and its separate bias/ReLU loop, forward and backward), else one
    einsum. Other ranks run :func:`jaxconv.conv1x1`, the einsum, directly.
    """
    if 3 <= x.ndim <= 5:
        kernel = matrix.reshape((1,) * (x.ndim - 2) + matrix.shape)
        return jaxconv.conv(x, kernel, bias, precision=precision, activation=activation)
    return activate(jaxconv.conv1x1(x, matrix, bias, precision=precision), activation)


class Conv1x1(_ConvBase):
    """A 1×1 convolution: :func:`jaxconv.conv`'s dispatch for a batch of maps (oneDNN with
    the bias and a ReLU fused where the extension loads, else one einsum), one
    :func:`jaxconv.conv1x1` einsum for any other rank.

    The kernel is stored as a 1×1 HWIO kernel ``[1, 1, C_in, C_out]`` — the same parameter
    tree as ``Conv(C_in, C_out, 1)``, so a checkpoint does not care which one a model used —
    and viewed as the ``[C_in, C_out]`` matrix at call time (a free reshape).

    Args:
      in_features: input channels ``C_in``.
      out_features: output channels ``C_out``.
      use_bias: add a ``[C_out]`` bias.
      dtype: computation dtype (None: promote the input and the parameters).
      param_dtype: parameter dtype.
      precision: passed to the conv (or ``jnp.einsum``).
      kernel_init, bias_init: initializers for ``kernel`` ``[1, 1, C_in, C_out]`` and ``bias``.
      activation: applied after the bias; None (default) for none.
      rngs: ``nnx.Rngs`` with a ``params`` stream.

    Call:
      ``x`` ``[..., C_in]`` (any leading dims) → ``[..., C_out]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.nn import Conv1x1
      >>> proj = Conv1x1(480, 16, rngs=nnx.Rngs(0))
      >>> proj.kernel.shape, proj(jnp.ones((1, 14, 14, 480))).shape
      ((1, 1, 480, 16), (1, 14, 14, 16))
    """

    @foreign_spellings
    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        use_bias: bool = True,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        kernel_init: Initializer = default_kernel_init,
        bias_init: Initializer = default_bias_init,
        activation: Activation | None = None,
        rngs: nnx.Rngs,
    ):
        self._set_features(
            in_features, out_features, use_bias, dtype, param_dtype, precision, activation
        )
        self._create_params(
            (1, 1, self.in_features, self.out_features), kernel_init, bias_init, rngs
        )

    def matrix(self) -> Array:
        """The kernel as the ``[C_in, C_out]`` matrix :func:`jaxconv.conv1x1` takes."""
        return self.kernel[...].reshape(self.in_features, self.out_features)

    def __call__(self, x: Array) -> Array:
        x = check_channels(x, self.in_features, type(self).__name__)
        x, w, bias = promote_dtype((x, self.matrix(), self._bias()), dtype=self.dtype)
        return pointwise(x, w, bias, precision=self.precision, activation=self.activation)

    def cost(self, input_shape: Sequence[int]) -> jaxconv.ConvCost:
        """The analytic cost for an input of ``input_shape`` ``(N, *spatial, C_in)``.

        Examples:
          >>> from flax import nnx
          >>> from jaxconv.nn import Conv1x1
          >>> Conv1x1(480, 16, rngs=nnx.Rngs(0)).cost((1, 14, 14, 480)).macs
          1505280
        """
        n, *spatial, c = tuple(input_shape)
        return jaxconv.conv_cost(
            (*(spatial or [1]), c),
            self.out_features,
            1,
            padding="VALID",
            bias=self.use_bias,
            batch=n,
            dtype=self.dtype or self.param_dtype,
        )


class ConvBN(nnx.Module):
    """Convolution without bias → ``nnx.BatchNorm`` → activation (the BN-Inception unit).

    Submodules ``conv`` (a :class:`Conv` with ``use_bias=False``; BatchNorm's shift replaces
    the bias) and ``bn``. Train/eval behaviour follows ``model.train()`` / ``model.eval()``.

    Args:
      in_features, out_features, kernel_size, stride, padding, dilation, groups: as for
        :class:`Conv`.
      activation: applied last; None for none.
      momentum, epsilon: of the BatchNorm. Flax's ``momentum`` is the weight of the old
        running statistics, so the default 0.9 is PyTorch's ``momentum=0.1`` (PyTorch's
        default; Flax's own default 0.99 is PyTorch's 0.01, whose statistics barely move in a
        short run and make early evaluations meaningless).
      dtype, param_dtype, precision, kernel_init, implementation: as for :class:`Conv`.
      rngs: ``nnx.Rngs`` with a ``params`` stream.

    Call:
      ``x`` ``[N, *spatial, C_in]`` → ``[N, *spatial_out, C_out]``; an unbatched ``x``
      ``[*spatial, C_in]`` (as ``nnx.Conv`` takes) → ``[*spatial_out, C_out]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.nn import ConvBN
      >>> unit = ConvBN(3, 8, 3, rngs=nnx.Rngs(0))
      >>> unit(jnp.ones((2, 8, 8, 3))).shape
      (2, 8, 8, 8)
      >>> [path for path, _ in nnx.to_flat_state(nnx.state(unit, nnx.Param))]
      [('bn', 'bias'), ('bn', 'scale'), ('conv', 'kernel')]
    """

    activation: Activation | None
    conv: Conv
    bn: nnx.BatchNorm
    in_features: int
    out_features: int

    @foreign_spellings
    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        *,
        stride: int | Sequence[int] = 1,
        padding: Any = "SAME",
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        activation: Activation | None = jax.nn.relu,
        momentum: float = 0.9,
        epsilon: float = 1e-5,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        kernel_init: Initializer = default_kernel_init,
        implementation: str | None = None,
        rngs: nnx.Rngs,
    ):
        self.activation = check_activation(activation)
        self.conv = Conv(
            in_features,
            out_features,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            use_bias=False,
            dtype=dtype,
            param_dtype=param_dtype,
            precision=precision,
            kernel_init=kernel_init,
            implementation=implementation,
            rngs=rngs,
        )
        self.bn = nnx.BatchNorm(
            out_features,
            momentum=momentum,
            epsilon=epsilon,
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
        )
        self.in_features = self.conv.in_features
        self.out_features = self.conv.out_features

    def finish(self, y: Array) -> Array:
        """BatchNorm and activation of an already computed conv output ``y`` (in training mode
        on oneDNN's batch norm where it applies: :mod:`jaxconv.nn._batch_norm`)."""
        fast = batch_norm(self.bn, y, self.activation)
        return fast if fast is not None else activate(self.bn(y), self.activation)

    def __call__(self, x: Array) -> Array:
        return self.finish(self.conv(x))
