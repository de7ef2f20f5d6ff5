"""MobileNetV2 (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear Bottlenecks").

torchvision's layout and names: ``features`` is a list — ``features[0]`` the 3×3/2 stem conv,
``features[1]`` … ``features[17]`` the inverted residuals of Table 2, ``features[18]`` the 1×1
conv to 1280 — then ``dropout`` and ``classifier`` (torchvision's ``classifier.0`` and
``classifier.1``). A stem conv here is a :class:`~jaxconv.nn.ConvBN` (``features.0.conv`` /
``features.0.bn`` ↔ torchvision's ``features.0.0`` / ``features.0.1``); the blocks' names are
mapped in :mod:`jaxconv.nn`'s ``InvertedResidual`` documentation.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxconv._check import check_int
from jaxconv.models._input import check_model_layout, model_input
from jaxconv.nn import ConvBN, GlobalAvgPool
from jaxconv.nn._blocks import InvertedResidual, conv_bn_options, he_normal_fan_out
from jaxconv.nn._conv import Initializer, linear
from jaxconv.nn._init import Normal

__all__ = ["MOBILENETV2_BLOCKS", "MobileNetV2", "make_divisible"]

Array = jax.Array

#: Table 2 of Sandler et al. 2018, the bottleneck rows: (expansion t, output channels c,
#: repeats n, stride s of the first repeat), at width 1.0. Before them a 3×3/2 conv to 32
#: channels, after them a 1×1 conv to 1280, a global average pool and the classifier.
MOBILENETV2_BLOCKS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_FEATURES = 32
LAST_FEATURES = 1280


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """``value`` rounded to the nearest multiple of ``divisor``, never below 90% of it.

    The paper's code (TF-slim's ``_make_divisible``, also torchvision's) rounds every width
    this way after multiplying by the width multiplier.

    Examples:
      >>> make_divisible(32 * 0.75), make_divisible(24 * 0.35), make_divisible(16 * 0.35)
      (24, 8, 8)
      >>> make_divisible(1280 * 1.4), make_divisible(96 * 0.5)
      (1792, 48)
    """
    divisor = check_int(divisor, "divisor")
    floor = divisor if min_value is None else min_value
    rounded = max(floor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:  # never round down by more than 10%
        rounded += divisor
    return rounded


class MobileNetV2(nnx.Module):
    """MobileNetV2 (Sandler et al. 2018, Table 2) in torchvision's layout.

    ``features[0]`` 3×3/2 conv to 32 + BN + ReLU6 → the 17 inverted residuals of
    :data:`MOBILENETV2_BLOCKS` → ``features[18]`` 1×1 conv to 1280 + BN + ReLU6 → global
    average pool → ``dropout`` (0.2) → ``classifier``. Widths are multiplied by ``width`` and
    rounded by :func:`make_divisible` (the last conv's 1280 is never narrowed below 1280).

    At width 1.0 and 1000 classes: 3,504,872 parameters (torchvision's count; the paper's
    Table 4 rounds it to 3.4 M) and 0.30 G multiply-accumulates at 224×224 (convs and the
    classifier, every tap counted: 300,774,272 — Table 4's 300 M).

    Args:
      num_classes: classes of ``classifier``.
      width: the width multiplier α (Table 4 and §6.1: 0.35 … 1.4).
      in_features: input channels.
      layout: ``"NHWC"`` (default) or ``"NCHW"``, the batch's layout; an NCHW batch is
        transposed once, at the stem, and gives the same logits.
      dropout: rate before the classifier (0.2, torchvision's).
      stem: ``"imagenet"`` (Table 2) or ``"cifar"``: for 32×32 inputs the stem conv and the
        first stride-2 row (c = 24) have stride 1, so the network downsamples 8× instead of
        32× and ends on 4×4 maps (the common CIFAR port).
      round_nearest: the divisor of :func:`make_divisible` (8).
      momentum, epsilon: of every BatchNorm (default PyTorch's, torch ``momentum=0.1``).
      kernel_init: of every conv (He normal over the fan-out); the classifier is initialized
        N(0, 0.01²) with a zero bias, as torchvision does.
      dtype, param_dtype, precision, implementation: as for :class:`~jaxconv.nn.Conv`.
      rngs: ``nnx.Rngs`` (``params``; ``dropout`` for training).

    Call:
      ``[N, H, W, in_features]`` (``[N, in_features, H, W]`` with ``layout="NCHW"``) →
      ``[N, num_classes]`` logits. Train/eval (BatchNorm statistics, dropout) follows
      ``model.train()`` / ``model.eval()``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.models import MobileNetV2
      >>> from jaxconv.nn import summary
      >>> model = nnx.eval_shape(lambda: MobileNetV2(rngs=nnx.Rngs(0)))
      >>> model.eval()
      >>> s = summary(model, jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32))
      >>> s.total.params, round(s.total.macs / 1e6)
      (3504872, 301)
      >>> s.row("features.18").output_shape
      (1, 7, 7, 1280)
    """

    def __init__(
        self,
        num_classes: int = 1000,
        *,
        width: float = 1.0,
        in_features: int = 3,
        dropout: float = 0.2,
        stem: str = "imagenet",
        layout: str = "NHWC",
        round_nearest: int = 8,
        momentum: float = 0.9,
        epsilon: float = 1e-5,
        kernel_init: Initializer = he_normal_fan_out,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        implementation: str | None = None,
        rngs: nnx.Rngs,
    ):
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"`stem` must be 'imagenet' or 'cifar', got {stem!r}")
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
            raise ValueError(f"`width` must be a positive number, got {width!r}")
        self.num_classes = check_int(num_classes, "num_classes")
        self.in_features = check_int(in_features, "in_features")
        self.width = width
        self.stem = stem
        self.layout = check_model_layout(layout)
        common = conv_bn_options(
            momentum, epsilon, kernel_init, dtype, param_dtype, precision, implementation
        )
        cifar = stem == "cifar"
        channels = make_divisible(STEM_FEATURES * width, round_nearest)
        layers: list[ConvBN | InvertedResidual] = [
            ConvBN(
                self.in_features,
                channels,
                3,
                stride=1 if cifar else 2,
                padding=1,
                activation=jax.nn.relu6,
                rngs=rngs,
                **common,
            )
        ]
        for row, (t, c, n, s) in enumerate(MOBILENETV2_BLOCKS):
            out = make_divisible(c * width, round_nearest)
            if cifar and row == 1:
                s = 1
            for i in range(n):
                layers.append(
                    InvertedResidual(
                        channels,
                        out,
                        stride=s if i == 0 else 1,
                        expand_ratio=t,
                        rngs=rngs,
                        **common,
                    )
                )
                channels = out
        self.out_features = make_divisible(LAST_FEATURES * max(1.0, width), round_nearest)
        layers.append(
            ConvBN(
                channels,
                self.out_features,
                1,
                padding=0,
                activation=jax.nn.relu6,
                rngs=rngs,
                **common,
            )
        )
        self.features = nnx.List(layers)
        self.avgpool = GlobalAvgPool()
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.classifier = linear(
            self.out_features,
            self.num_classes,
            kernel_init=Normal(0.01),
            dtype=dtype,
            param_dtype=param_dtype,
            precision=precision,
            rngs=rngs,
        )

    def __call__(self, x: Array) -> Array:
        y = model_input(x, self.in_features, self.layout, type(self).__name__)
        for layer in self.features:
            y = layer(y)
        return self.classifier(self.dropout(self.avgpool(y)))
