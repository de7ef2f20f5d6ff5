"""Residual blocks: ResNet's BasicBlock and ResNetBottleneck, MobileNetV2's InvertedResidual.

Every conv is a :class:`~jaxconv.nn.ConvBN` (conv without bias → BatchNorm → activation), so each
torchvision ``convK`` + ``bnK`` pair is one submodule here. Parameter paths (the checkpoint
format) and their torchvision names — the kernels are HWIO here, OIHW there (transpose
``(2, 3, 1, 0)``); BatchNorm's ``scale``/``bias``/``mean``/``var`` are torch's
``weight``/``bias``/``running_mean``/``running_var``:

=============================  ==========================================
here                           torchvision
=============================  ==========================================
``convK.conv.kernel``          ``convK.weight``  (K = 1, 2, 3)
``convK.bn.*``                 ``bnK.*``
``downsample.conv.kernel``     ``downsample.0.weight``
``downsample.bn.*``            ``downsample.1.*``
``expand.{conv,bn}``           ``conv.0.{0,1}``  (InvertedResidual, t ≠ 1)
``depthwise.{conv,bn}``        ``conv.1.{0,1}``  (``conv.0.{0,1}`` when t = 1)
``project.conv`` / ``.bn``     ``conv.2`` / ``conv.3``  (``conv.1`` / ``conv.2`` when t = 1)
=============================  ==========================================

BatchNorm defaults are PyTorch's: ``epsilon=1e-5`` and ``momentum=0.9`` (Flax's momentum is
the weight of the old running average: torch's ``momentum=0.1``). Convs default to He normal
initialization over the fan-out, as torchvision initializes ResNet and MobileNetV2.
"""

from __future__ import annotations

from typing import Any, TypedDict

import jax
import jax.numpy as jnp
from flax import nnx

from jaxconv._check import check_activation, check_bool, check_int
from jaxconv.nn._conv import Activation, ConvBN, Initializer
from jaxconv.nn._init import VarianceScaling
from jaxconv.nn._validate import check_channels

__all__ = ["BasicBlock", "InvertedResidual", "ResNetBottleneck", "he_normal_fan_out"]

Array = jax.Array

#: torchvision's ``kaiming_normal_(mode="fan_out", nonlinearity="relu")``: N(0, 2/fan_out), where
#: fan_out = kh·kw·C_out (C_out per group for a grouped kernel — the same in both libraries).
he_normal_fan_out: Initializer = VarianceScaling(2.0, "fan_out", "normal")


def _zero_scale(unit: ConvBN) -> None:
    """The BatchNorm of ``unit`` starts as zero: the residual branch adds nothing at first."""
    scale = unit.bn.scale
    if scale is not None:  # None only with use_scale=False, which ConvBN never sets
        scale[...] = jnp.zeros_like(scale[...])


class ConvBNOptions(TypedDict):
    """What a block passes to every :class:`ConvBN` unit it builds (see :func:`conv_bn_options`)."""

    momentum: float
    epsilon: float
    kernel_init: Initializer
    dtype: Any
    param_dtype: Any
    precision: Any
    implementation: str | None


def conv_bn_options(
    momentum: float,
    epsilon: float,
    kernel_init: Initializer,
    dtype: Any,
    param_dtype: Any,
    precision: Any,
    implementation: str | None,
) -> ConvBNOptions:
    """The block's constructor options that every one of its units takes, gathered once."""
    return ConvBNOptions(
        momentum=momentum,
        epsilon=epsilon,
        kernel_init=kernel_init,
        dtype=dtype,
        param_dtype=param_dtype,
        precision=precision,
        implementation=implementation,
    )


class _ResidualBlock(nnx.Module):
    """What the two ResNet blocks share: their features, stride and activation, the residual
    branch's zero init, the shortcut, and the final add + activation."""

    expansion: int
    in_features: int
    out_features: int
    stride: int
    activation: Activation | None
    downsample: ConvBN | None
    fused_add: bool = False  # set by jaxconv.nn.freeze

    def _set_features(self, in_features: Any, features: Any, stride: Any, activation: Any) -> int:
        """Sets ``in_features``, ``out_features`` (``expansion·features``), ``stride`` and
        ``activation``; returns ``features`` checked."""
        self.in_features = check_int(in_features, "in_features")
        features = check_int(features, "features")
        self.out_features = features * self.expansion
        self.stride = check_int(stride, "stride")
        self.activation = check_activation(activation)
        return features

    def _add_shortcut(
        self, last: ConvBN, zero_init_residual: Any, options: ConvBNOptions, rngs: nnx.Rngs
    ) -> None:
        """Zero-initializes the residual branch's ``last`` BatchNorm if asked, then adds the
        shortcut."""
        if check_bool(zero_init_residual, "zero_init_residual"):
            _zero_scale(last)
        # The projection shortcut (He et al. 2016, eq. 2; torchvision's option B): a 1×1 conv
        # + BN whenever the shape changes, the identity otherwise.
        if self.stride != 1 or self.in_features != self.out_features:
            self.downsample = ConvBN(
                self.in_features,
                self.out_features,
                1,
                stride=self.stride,
                padding=0,
                activation=None,
                rngs=rngs,
                **options,
            )
        else:
            self.downsample = nnx.data(None)

    def _finish(self, x: Array, h: Array, last: ConvBN) -> Array:
        """``activation(last(h) + shortcut(x))``; in a frozen block (:func:`jaxconv.nn.freeze`
        sets ``fused_add``) ``last``'s conv adds the shortcut and activates in its one call."""
        shortcut = x if self.downsample is None else self.downsample(x)
        if self.fused_add:
            return last.conv(h, shortcut)  # type: ignore[call-arg]  # a FrozenConv
        y = last(h) + shortcut
        return y if self.activation is None else self.activation(y)


class BasicBlock(_ResidualBlock):
    """ResNet's basic block (He et al. 2016, Fig. 2 left): two 3×3 convs and a shortcut.

    ``conv1`` 3×3/``stride`` → BN → ReLU → ``conv2`` 3×3 → BN, plus the shortcut (the identity,
    or ``downsample``: 1×1/``stride`` conv + BN when the shape changes), then ReLU. The 3×3s pad
    1 on every side, as torchvision does (``"SAME"`` would pad ``(0, 1)`` at stride 2).

    Args:
      in_features: input channels.
      features: the block's width; it outputs ``features`` channels (``expansion = 1``).
      stride: of ``conv1`` and the shortcut.
      zero_init_residual: start ``conv2``'s BatchNorm scale at 0, so the block starts as its
        shortcut (Goyal et al. 2017; torchvision's ``zero_init_residual``).
      activation: after the first conv and after the add (ReLU).
      momentum, epsilon: of every BatchNorm (PyTorch's defaults, see the module docstring).
      kernel_init: of every conv (He normal over the fan-out).
      dtype, param_dtype, precision, implementation: as for :class:`~jaxconv.nn.Conv`.
      rngs: ``nnx.Rngs`` with a ``params`` stream.

    Call:
      ``[N, H, W, in_features]`` → ``[N, ⌈H/stride⌉, ⌈W/stride⌉, features]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.nn import BasicBlock
      >>> block = BasicBlock(64, 128, stride=2, rngs=nnx.Rngs(0))
      >>> block(jnp.ones((2, 56, 56, 64))).shape
      (2, 28, 28, 128)
      >>> block.downsample.conv.kernel.shape
      (1, 1, 64, 128)
    """

    expansion: int = 1

    def __init__(
        self,
        in_features: int,
        features: int,
        *,
        stride: int = 1,
        zero_init_residual: bool = False,
        activation: Activation | None = jax.nn.relu,
        momentum: float = 0.9,
        epsilon: float = 1e-5,
        kernel_init: Initializer = he_normal_fan_out,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        implementation: str | None = None,
        rngs: nnx.Rngs,
    ):
        features = self._set_features(in_features, features, stride, activation)
        options = conv_bn_options(
            momentum, epsilon, kernel_init, dtype, param_dtype, precision, implementation
        )
        self.conv1 = ConvBN(
            in_features,
            features,
            3,
            stride=self.stride,
            padding=1,
            activation=activation,
            rngs=rngs,
            **options,
        )
        self.conv2 = ConvBN(features, features, 3, padding=1, activation=None, rngs=rngs, **options)
        self._add_shortcut(self.conv2, zero_init_residual, options, rngs)

    def __call__(self, x: Array) -> Array:
        x = check_channels(x, self.in_features, type(self).__name__)
        return self._finish(x, self.conv1(x), self.conv2)


class ResNetBottleneck(_ResidualBlock):
    """ResNet's bottleneck block (He et al. 2016, Fig. 5 right), torchvision's "v1.5".

    ``conv1`` 1×1 reduce to ``width`` → BN → ReLU → ``conv2`` 3×3/``stride`` (pad 1) → BN → ReLU
    → ``conv3`` 1×1 expand to ``4·features`` → BN, plus the shortcut (the identity, or
    ``downsample``: 1×1/``stride`` conv + BN when the shape changes), then ReLU.

    The stride sits on the 3×3 (v1.5, torchvision and NVIDIA's recipe); the paper's v1 strides
    the first 1×1 (``stride_in_1x1=True``), which skips three quarters of the input pixels
    before any 3×3 sees them — fewer MACs, ≈0.5% lower ImageNet accuracy.

    ``width = features · base_width / 64 · groups`` (torchvision's formula): ``features`` for
    ResNet-50, ``2·features`` for Wide ResNet-50-2 (``base_width=128``), and ResNeXt's
    ``groups`` cardinality in the 3×3.

    Args:
      in_features: input channels.
      features: the block's nominal width; it outputs ``4·features`` channels.
      stride: of the 3×3 (or the first 1×1, see ``stride_in_1x1``) and the shortcut.
      groups, base_width: of the 3×3, as above.
      stride_in_1x1: the paper's v1 placement of the stride.
      zero_init_residual: start ``conv3``'s BatchNorm scale at 0 (see :class:`BasicBlock`).
      activation, momentum, epsilon, kernel_init, dtype, param_dtype, precision,
        implementation, rngs: as for :class:`BasicBlock`.

    Call:
      ``[N, H, W, in_features]`` → ``[N, ⌈H/stride⌉, ⌈W/stride⌉, 4·features]``.

    Examples:
      The first block of ResNet-50's conv3_x (Table 1): 256 → 128 → 128 → 512 channels.

      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.nn import ResNetBottleneck
      >>> block = ResNetBottleneck(256, 128, stride=2, rngs=nnx.Rngs(0))
      >>> block(jnp.ones((1, 56, 56, 256))).shape
      (1, 28, 28, 512)
      >>> block.conv2.conv.stride, block.conv3.conv.kernel.shape
      ((2, 2), (1, 1, 128, 512))
      >>> sum(p.size for p in jax.tree.leaves(nnx.state(block, nnx.Param)))
      379392
    """

    expansion: int = 4

    def __init__(
        self,
        in_features: int,
        features: int,
        *,
        stride: int = 1,
        groups: int = 1,
        base_width: int = 64,
        stride_in_1x1: bool = False,
        zero_init_residual: bool = False,
        activation: Activation | None = jax.nn.relu,
        momentum: float = 0.9,
        epsilon: float = 1e-5,
        kernel_init: Initializer = he_normal_fan_out,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        implementation: str | None = None,
        rngs: nnx.Rngs,
    ):
        features = self._set_features(in_features, features, stride, activation)
        groups = check_int(groups, "groups")
        base_width = check_int(base_width, "base_width")
        self.stride_in_1x1 = check_bool(stride_in_1x1, "stride_in_1x1")
        width = features * base_width // 64 * groups
        if width == 0:
            raise ValueError(
                f"`features` (={features}) · `base_width` (={base_width}) / 64 must be >= 1"
            )
        options = conv_bn_options(
            momentum, epsilon, kernel_init, dtype, param_dtype, precision, implementation
        )
        s1, s3 = (self.stride, 1) if self.stride_in_1x1 else (1, self.stride)
        self.conv1 = ConvBN(
            in_features, width, 1, stride=s1, padding=0, activation=activation, rngs=rngs, **options
        )
        self.conv2 = ConvBN(
            width,
            width,
            3,
            stride=s3,
            padding=1,
            groups=groups,
            activation=activation,
            rngs=rngs,
            **options,
        )
        self.conv3 = ConvBN(
            width, self.out_features, 1, padding=0, activation=None, rngs=rngs, **options
        )
        self._add_shortcut(self.conv3, zero_init_residual, options, rngs)

    def __call__(self, x: Array) -> Array:
        x = check_channels(x, self.in_features, type(self).__name__)
        return self._finish(x, self.conv2(self.conv1(x)), self.conv3)


class InvertedResidual(nnx.Module):
    """MobileNetV2's inverted residual with linear bottleneck (Sandler et al. 2018, Table 1).

    ``expand`` 1×1 to ``hidden = round(in_features · expand_ratio)`` → BN → ReLU6 →
    ``depthwise`` 3×3/``stride`` (``groups = hidden``, pad 1) → BN → ReLU6 → ``project`` 1×1 to
    ``out_features`` → BN, with no activation (the *linear* bottleneck, §3.2). The input is
    added back when ``stride == 1`` and ``in_features == out_features``. With
    ``expand_ratio == 1`` there is no ``expand`` conv (torchvision's layout; the paper's first
    bottleneck row, t = 1).

    Args:
      in_features: input channels.
      out_features: output channels.
      stride: of the depthwise 3×3.
      expand_ratio: the expansion factor t.
      activation: after ``expand`` and ``depthwise`` (ReLU6).
      momentum, epsilon, kernel_init, dtype, param_dtype, precision, implementation, rngs:
        as for :class:`BasicBlock`.

    Call:
      ``[N, H, W, in_features]`` → ``[N, ⌈H/stride⌉, ⌈W/stride⌉, out_features]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.nn import InvertedResidual
      >>> block = InvertedResidual(24, 24, expand_ratio=6, rngs=nnx.Rngs(0))
      >>> block.use_residual, block.depthwise.conv.kernel.shape   # one 3×3 filter per channel
      (True, (3, 3, 1, 144))
      >>> block(jnp.ones((1, 56, 56, 24))).shape
      (1, 56, 56, 24)
      >>> InvertedResidual(32, 16, expand_ratio=1, rngs=nnx.Rngs(0)).expand is None
      True
    """

    in_features: int
    out_features: int
    hidden_features: int
    stride: int
    expand_ratio: float
    use_residual: bool
    fused_add: bool = False  # set by jaxconv.nn.freeze
    expand: ConvBN | None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        stride: int = 1,
        expand_ratio: float = 6,
        activation: Activation | None = jax.nn.relu6,
        momentum: float = 0.9,
        epsilon: float = 1e-5,
        kernel_init: Initializer = he_normal_fan_out,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        implementation: str | None = None,
        rngs: nnx.Rngs,
    ):
        self.in_features = check_int(in_features, "in_features")
        self.out_features = check_int(out_features, "out_features")
        self.stride = check_int(stride, "stride")
        if isinstance(expand_ratio, bool) or not isinstance(expand_ratio, (int, float)):
            raise TypeError(f"`expand_ratio` must be a number, got {expand_ratio!r}")
        if not expand_ratio >= 1:
            raise ValueError(f"`expand_ratio` must be >= 1, got {expand_ratio!r}")
        self.expand_ratio = expand_ratio
        check_activation(activation)
        self.hidden_features = hidden = round(self.in_features * expand_ratio)
        self.use_residual = self.stride == 1 and self.in_features == self.out_features
        options = conv_bn_options(
            momentum, epsilon, kernel_init, dtype, param_dtype, precision, implementation
        )
        if expand_ratio != 1:
            self.expand = ConvBN(
                in_features, hidden, 1, padding=0, activation=activation, rngs=rngs, **options
            )
        else:
            self.expand = nnx.data(None)
        self.depthwise = ConvBN(
            hidden,
            hidden,
            3,
            stride=self.stride,
            padding=1,
            groups=hidden,
            activation=activation,
            rngs=rngs,
            **options,
        )
        self.project = ConvBN(
            hidden, self.out_features, 1, padding=0, activation=None, rngs=rngs, **options
        )

    def __call__(self, x: Array) -> Array:
        x = check_channels(x, self.in_features, type(self).__name__)
        y = x if self.expand is None else self.expand(x)
        if self.fused_add:  # frozen (jaxconv.nn.freeze): the projection adds x in its call
            return self.project.conv(self.depthwise(y), x)  # type: ignore[call-arg]
        y = self.project(self.depthwise(y))
        return x + y if self.use_residual else y
