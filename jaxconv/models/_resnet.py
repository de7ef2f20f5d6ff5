"""ResNet (He et al. 2016, "Deep Residual Learning for Image Recognition", Table 1).

torchvision's layout and names ("v1.5": a bottleneck's stride on its 3×3): ``conv1`` (7×7/2,
with its BatchNorm: torchvision's ``conv1`` + ``bn1``), ``maxpool`` (3×3/2, pad 1),
``layer1`` … ``layer4`` (lists of blocks, the paper's conv2_x … conv5_x), ``avgpool``, ``fc``.
Inside a block the names are :mod:`jaxconv.nn`'s (``conv1.conv.kernel``, ``conv1.bn.scale``,
``downsample.conv.kernel``…), mapped to torchvision's in :class:`~jaxconv.nn.ResNetBottleneck`'s
module docstring. ``layer2[0].conv2`` is torchvision's ``layer2.0.conv2``.

The depths of Table 1 are :class:`ResNet18` … :class:`ResNet152`; :class:`ResNeXt50_32x4d`
and :class:`WideResNet50_2` are ResNet-50 with grouped or wider 3×3s, as torchvision has them.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from jaxconv._check import check_bool, check_int
from jaxconv.models._input import check_model_layout, model_input
from jaxconv.nn import ConvBN, GlobalAvgPool, MaxPool
from jaxconv.nn._blocks import BasicBlock, ResNetBottleneck, conv_bn_options, he_normal_fan_out
from jaxconv.nn._conv import Initializer, linear

__all__ = [
    "RESNET_LAYERS",
    "RESNET_WIDTHS",
    "ResNeXt50_32x4d",
    "ResNet",
    "ResNet18",
    "ResNet34",
    "ResNet50",
    "ResNet101",
    "ResNet152",
    "WideResNet50_2",
]

Array = jax.Array

#: Table 1 of He et al. 2016: depth → (block, blocks in conv2_x, conv3_x, conv4_x, conv5_x).
RESNET_LAYERS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}

#: Table 1: the blocks' (nominal) widths of conv2_x … conv5_x; a bottleneck outputs 4× these.
#: Each stage after the first starts with stride 2: outputs 56, 28, 14, 7 at 224×224 (strides
#: 4, 8, 16, 32).
RESNET_WIDTHS: tuple[int, int, int, int] = (64, 128, 256, 512)

_BLOCKS: dict[str, type[BasicBlock] | type[ResNetBottleneck]] = {
    "basic": BasicBlock,
    "bottleneck": ResNetBottleneck,
}
_STAGES = ("layer1", "layer2", "layer3", "layer4")


class ResNet(nnx.Module):
    """A ResNet of Table 1 of He et al. 2016 in torchvision's layout (any depth, any blocks).

    ``conv1`` 7×7/2 64 (pad 3) + BN + ReLU → ``maxpool`` 3×3/2 (pad 1) → ``layer1`` …
    ``layer4`` (the paper's conv2_x … conv5_x, widths :data:`RESNET_WIDTHS`, the first block of
    layers 2–4 with stride 2 and a projection shortcut) → ``avgpool`` (global) → ``fc``.
    Use :class:`ResNet18`, :class:`ResNet34`, :class:`ResNet50`, :class:`ResNet101`,
    :class:`ResNet152` for the paper's depths.

    Args:
      layers: blocks per stage, e.g. ``(3, 4, 6, 3)``.
      block: ``"basic"`` (:class:`~jaxconv.nn.BasicBlock`) or ``"bottleneck"``
        (:class:`~jaxconv.nn.ResNetBottleneck`).
      num_classes: classes of ``fc``.
      in_features: input channels.
      layout: ``"NHWC"`` (default) or ``"NCHW"``, the batch's layout; an NCHW batch is
        transposed once, at the stem, and gives the same logits.
      stem: ``"imagenet"`` (Table 1's conv1 and max pool) or ``"cifar"``: ``conv1`` is a 3×3/1
        conv to 64 and there is no max pool, so a 32×32 input reaches the stages at 32, 16, 8, 4
        (the usual CIFAR port of the ImageNet ResNets).
      groups, width_per_group: of the bottlenecks' 3×3 (ResNeXt, Wide ResNet; see
        :class:`~jaxconv.nn.ResNetBottleneck`).
      stride_in_1x1: stride the bottleneck's first 1×1 instead of its 3×3 (the paper's v1).
      zero_init_residual: start each block's last BatchNorm scale at 0 (torchvision's option).
      momentum, epsilon: of every BatchNorm (default PyTorch's, torch ``momentum=0.1``).
      kernel_init: of every conv (He normal over the fan-out, torchvision's); ``fc`` keeps
        ``nnx.Linear``'s default.
      dtype, param_dtype, precision, implementation: as for :class:`~jaxconv.nn.Conv`.
      rngs: ``nnx.Rngs`` with a ``params`` stream.

    Call:
      ``[N, H, W, in_features]`` (``[N, in_features, H, W]`` with ``layout="NCHW"``) →
      ``[N, num_classes]`` logits. :meth:`stages` returns the four stages' feature maps
      (NHWC). Train/eval (BatchNorm batch or running statistics) follows ``model.train()`` /
      ``model.eval()``.

    Examples:
      ResNeXt-50 32×4d (Xie et al. 2017) is a ResNet-50 with 32 groups of width 4 in each 3×3:

      >>> import jax
      >>> from flax import nnx
      >>> from jaxconv.models import ResNet
      >>> model = nnx.eval_shape(
      ...     lambda: ResNet((3, 4, 6, 3), groups=32, width_per_group=4, rngs=nnx.Rngs(0))
      ... )
      >>> sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
      25028904
      >>> model.layer1[0].conv2.conv.kernel.shape   # 128 channels in 32 groups of 4
      (3, 3, 4, 128)
    """

    def __init__(
        self,
        layers: tuple[int, ...],
        *,
        block: str = "bottleneck",
        num_classes: int = 1000,
        in_features: int = 3,
        stem: str = "imagenet",
        layout: str = "NHWC",
        groups: int = 1,
        width_per_group: int = 64,
        stride_in_1x1: bool = False,
        zero_init_residual: bool = False,
        momentum: float = 0.9,
        epsilon: float = 1e-5,
        kernel_init: Initializer = he_normal_fan_out,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        implementation: str | None = None,
        rngs: nnx.Rngs,
    ):
        if block not in _BLOCKS:
            raise ValueError(f"`block` must be 'basic' or 'bottleneck', got {block!r}")
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"`stem` must be 'imagenet' or 'cifar', got {stem!r}")
        layers = tuple(layers)
        if len(layers) != len(RESNET_WIDTHS):
            raise ValueError(f"`layers` must give 4 stages' block counts, got {layers!r}")
        layers = tuple(check_int(n, "layers") for n in layers)
        self.layers = layers
        self.block = block
        self.stem = stem
        self.layout = check_model_layout(layout)
        self.num_classes = check_int(num_classes, "num_classes")
        self.in_features = check_int(in_features, "in_features")
        common = conv_bn_options(
            momentum, epsilon, kernel_init, dtype, param_dtype, precision, implementation
        )
        if stem == "imagenet":
            self.conv1 = ConvBN(self.in_features, 64, 7, stride=2, padding=3, rngs=rngs, **common)
            self.maxpool: MaxPool | None = MaxPool(3, stride=2, padding=1)
        else:
            self.conv1 = ConvBN(self.in_features, 64, 3, padding=1, rngs=rngs, **common)
            self.maxpool = nnx.data(None)
        extra: dict[str, Any] = dict(
            zero_init_residual=check_bool(zero_init_residual, "zero_init_residual")
        )
        if block == "bottleneck":
            extra.update(groups=groups, base_width=width_per_group, stride_in_1x1=stride_in_1x1)
        elif (groups, width_per_group, stride_in_1x1) != (1, 64, False):
            raise ValueError(
                "`groups`, `width_per_group` and `stride_in_1x1` apply to block='bottleneck' only"
            )
        unit = _BLOCKS[block]
        channels = 64
        for i, (name, width, count) in enumerate(zip(_STAGES, RESNET_WIDTHS, layers)):
            blocks = []
            for j in range(count):
                b = unit(
                    channels,
                    width,
                    stride=2 if i > 0 and j == 0 else 1,
                    rngs=rngs,
                    **extra,
                    **common,
                )
                channels = b.out_features
                blocks.append(b)
            setattr(self, name, nnx.List(blocks))
        self.out_features = channels
        self.avgpool = GlobalAvgPool()
        self.fc = linear(
            channels,
            self.num_classes,
            dtype=dtype,
            param_dtype=param_dtype,
            precision=precision,
            rngs=rngs,
        )

    def stages(self, x: Array) -> dict[str, Array]:
        """The feature maps after ``layer1`` … ``layer4`` (strides 4, 8, 16, 32; 1, 2, 4, 8
        with the CIFAR stem), e.g. for a detection backbone.

        Args:
          x: ``[N, H, W, in_features]`` (``[N, in_features, H, W]`` with ``layout="NCHW"``).

        Returns:
          ``{"layer1": [N, H/4, W/4, C1], …, "layer4": [N, H/32, W/32, C4]}``, NHWC whatever
          the layout.
        """
        x = model_input(x, self.in_features, self.layout, type(self).__name__)
        y = self.conv1(x)
        if self.maxpool is not None:
            y = self.maxpool(y)
        out = {}
        for name in _STAGES:
            for b in getattr(self, name):
                y = b(y)
            out[name] = y
        return out

    def __call__(self, x: Array) -> Array:
        y = self.stages(x)["layer4"]
        return self.fc(self.avgpool(y))


class _PaperResNet(ResNet):
    """A depth of Table 1, ``RESNET_LAYERS[depth]``: each subclass names its ``depth``."""

    depth: ClassVar[int]
    #: Keywords of :class:`ResNet` that make the model a variant (ResNeXt's groups…).
    variant: ClassVar[Mapping[str, Any]] = types.MappingProxyType({})

    def __init__(self, num_classes: int = 1000, **kwargs: Any):
        block, layers = RESNET_LAYERS[self.depth]
        taken = sorted(set(self.variant) & set(kwargs))
        if taken:
            raise TypeError(
                f"{type(self).__name__} sets {', '.join(f'`{k}`' for k in taken)} itself "
                f"({', '.join(f'{k}={self.variant[k]!r}' for k in taken)}); use ResNet for "
                "other values"
            )
        super().__init__(layers, block=block, num_classes=num_classes, **self.variant, **kwargs)


class ResNet50(_PaperResNet):
    """ResNet-50 (He et al. 2016, Table 1, the 50-layer column), torchvision's v1.5.

    Bottleneck blocks (3, 4, 6, 3) of widths 64, 128, 256, 512 (outputs 256 … 2048 channels);
    the stride of stages 2–4 on the bottleneck's 3×3. 25,557,032 parameters at 1000 classes and
    4.09 G multiply-accumulates at 224×224 (convs and ``fc``, every tap counted, as
    torchvision's model card counts them: 4,089,184,256).

    The paper's Table 1 gives 3.8×10⁹ FLOPs (multiply-adds) for the v1 layout, which strides
    the *first 1×1* of a stage's first block: the three downsampling 1×1 reductions then run
    at the output resolution instead of the input's (4× fewer positions), and the v1 count is
    3.86 G (``stride_in_1x1=True``) — the 0.23 G difference is those three 1×1s.

    Args:
      num_classes: classes of ``fc``.
      **kwargs: any keyword of :class:`ResNet` (``stem="cifar"``, ``momentum``, …).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.models import ResNet50
      >>> from jaxconv.nn import summary
      >>> model = nnx.eval_shape(lambda: ResNet50(rngs=nnx.Rngs(0)))
      >>> s = summary(model, jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32))
      >>> s.total.params, round(s.total.macs / 1e9, 2)
      (25557032, 4.09)
      >>> s.row("layer2.0.conv2.conv").output_shape   # v1.5: the stride on the 3×3
      (1, 28, 28, 128)
    """

    depth = 50


class ResNet18(_PaperResNet):
    """ResNet-18 (He et al. 2016, Table 1): basic blocks (2, 2, 2, 2); 11,689,512 parameters
    at 1000 classes, 1.81 G MACs at 224×224 (torchvision's figures).

    Args:
      num_classes: classes of ``fc``.
      **kwargs: any keyword of :class:`ResNet`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.models import ResNet18
      >>> model = ResNet18(10, stem="cifar", rngs=nnx.Rngs(0))
      >>> model(jnp.ones((2, 32, 32, 3))).shape
      (2, 10)
      >>> {k: v.shape for k, v in model.stages(jnp.ones((1, 32, 32, 3))).items()}["layer4"]
      (1, 4, 4, 512)
    """

    depth = 18


class ResNet34(_PaperResNet):
    """ResNet-34 (He et al. 2016, Table 1): basic blocks (3, 4, 6, 3); 21,797,672 parameters
    at 1000 classes, 3.66 G MACs at 224×224 (torchvision's figures).

    Args:
      num_classes: classes of ``fc``.
      **kwargs: any keyword of :class:`ResNet`.

    Examples:
      >>> import jax
      >>> from flax import nnx
      >>> from jaxconv.models import ResNet34
      >>> model = nnx.eval_shape(lambda: ResNet34(rngs=nnx.Rngs(0)))
      >>> sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
      21797672
    """

    depth = 34


class ResNet101(_PaperResNet):
    """ResNet-101 (He et al. 2016, Table 1): bottlenecks (3, 4, 23, 3); 44,549,160 parameters
    at 1000 classes (torchvision's figure).

    Args:
      num_classes: classes of ``fc``.
      **kwargs: any keyword of :class:`ResNet`.

    Examples:
      >>> from flax import nnx
      >>> from jaxconv.models import ResNet101
      >>> len(nnx.eval_shape(lambda: ResNet101(rngs=nnx.Rngs(0))).layer3)
      23
    """

    depth = 101


class ResNet152(_PaperResNet):
    """ResNet-152 (He et al. 2016, Table 1): bottlenecks (3, 8, 36, 3); 60,192,808 parameters
    at 1000 classes (torchvision's figure).

    Args:
      num_classes: classes of ``fc``.
      **kwargs: any keyword of :class:`ResNet`.

    Examples:
      >>> from flax import nnx
      >>> from jaxconv.models import ResNet152
      >>> len(nnx.eval_shape(lambda: ResNet152(rngs=nnx.Rngs(0))).layer3)
      36
    """

    depth = 152


class ResNeXt50_32x4d(_PaperResNet):
    """ResNeXt-50 32×4d (Xie et al. 2017, Table 1): ResNet-50's layout with each bottleneck's
    3×3 in 32 groups of width 4 at the first stage (twice the 3×3 width of ResNet-50, 128 …
    1024); 25,028,904 parameters at 1000 classes, 4.23 G MACs at 224×224 (torchvision's
    ``resnext50_32x4d`` figures).

    Args:
      num_classes: classes of ``fc``.
      **kwargs: any keyword of :class:`ResNet` but ``groups`` and ``width_per_group``.

    Examples:
      >>> from flax import nnx
      >>> from jaxconv.models import ResNeXt50_32x4d
      >>> model = nnx.eval_shape(lambda: ResNeXt50_32x4d(rngs=nnx.Rngs(0)))
      >>> model.layer4[0].conv2.conv.kernel.shape   # 1024 channels in 32 groups of 32
      (3, 3, 32, 1024)
    """

    depth = 50
    variant = types.MappingProxyType({"groups": 32, "width_per_group": 4})


class WideResNet50_2(_PaperResNet):
    """Wide ResNet-50-2 (Zagoruyko & Komodakis 2016, in torchvision's bottleneck form):
    ResNet-50 with each bottleneck's inner width doubled (128 … 1024; the outputs stay 256 …
    2048); 68,883,240 parameters at 1000 classes, 11.4 G MACs at 224×224 (torchvision's
    ``wide_resnet50_2`` figures).

    Args:
      num_classes: classes of ``fc``.
      **kwargs: any keyword of :class:`ResNet` but ``groups`` and ``width_per_group``.

    Examples:
      >>> import jax
      >>> from flax import nnx
      >>> from jaxconv.models import WideResNet50_2
      >>> model = nnx.eval_shape(lambda: WideResNet50_2(rngs=nnx.Rngs(0)))
      >>> sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
      68883240
      >>> model.layer1[0].conv2.conv.kernel.shape, model.layer1[0].out_features
      ((3, 3, 128, 128), 256)
    """

    depth = 50
    variant = types.MappingProxyType({"width_per_group": 128})
