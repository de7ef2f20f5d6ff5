"""Network In Network for CIFAR-10 (Lin et al. 2013, §4.2, and the authors' Caffe model)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxconv._check import check_int
from jaxconv.models._input import check_model_layout, model_input
from jaxconv.nn import AvgPool, GlobalAvgPool, MaxPool, MLPConv

__all__ = ["NIN_CIFAR10", "NiN"]

Array = jax.Array

#: NiN's CIFAR-10 model: per mlpconv block, (k of its first conv, widths of its convs). The last
#: width of the last block is the number of classes (``None`` here). Lin et al. 2013 §4.2; the
#: widths, pools and dropouts are those of the authors' Caffe model (conv1/cccp1/cccp2 …).
NIN_CIFAR10: tuple[tuple[int, tuple[int | None, ...]], ...] = (
    (5, (192, 160, 96)),
    (5, (192, 192, 192)),
    (3, (192, 192, None)),
)


class NiN(nnx.Module):
    """Network In Network, the CIFAR-10 model of Lin et al. 2013.

    ``mlpconv1`` (5×5 192 → 1×1 160 → 1×1 96) → ``pool1`` 3×3/2 max → ``dropout1`` 0.5 →
    ``mlpconv2`` (5×5 192 → 1×1 192 → 1×1 192) → ``pool2`` 3×3/2 → ``dropout2`` 0.5 →
    ``mlpconv3`` (3×3 192 → 1×1 192 → 1×1 ``num_classes``) → ``avg_pool`` (global average
    pooling: the paper's replacement for fully connected layers). Every conv is followed by
    ReLU, the last one included (as in the Caffe model, whose logits are therefore >= 0). The
    pools use ``ceil_mode`` (Caffe), so 32 → 16 → 8; ``pool2`` averages, as in the Caffe
    model. 966,986 parameters at 10 classes. Widths: :data:`NIN_CIFAR10`.

    Args:
      num_classes: classes (the last 1×1's width).
      in_features: input channels.
      layout: ``"NHWC"`` (default) or ``"NCHW"``, the batch's layout; an NCHW batch is
        transposed once, at the stem, and gives the same logits.
      dropout: rate after the first two blocks.
      batch_norm: every conv a :class:`~jaxconv.nn.ConvBN` (not in the paper).
      dtype, param_dtype, precision: as for the convs.
      rngs: ``nnx.Rngs`` (``params``; ``dropout`` for training).

    Call:
      ``[N, H, W, in_features]`` (``[N, in_features, H, W]`` with ``layout="NCHW"``) →
      ``[N, num_classes]``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.models import NiN
      >>> model = nnx.eval_shape(lambda: NiN(rngs=nnx.Rngs(0)))
      >>> sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
      966986
    """

    def __init__(
        self,
        num_classes: int = 10,
        *,
        in_features: int = 3,
        dropout: float = 0.5,
        batch_norm: bool = False,
        layout: str = "NHWC",
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        rngs: nnx.Rngs,
    ):
        self.num_classes = check_int(num_classes, "num_classes")
        self.in_features = check_int(in_features, "in_features")
        self.layout = check_model_layout(layout)
        common: dict[str, Any] = dict(
            norm="batch" if batch_norm else None,
            dtype=dtype,
            param_dtype=param_dtype,
            precision=precision,
        )
        channels = in_features
        blocks = []
        for k, table_widths in NIN_CIFAR10:
            widths = tuple(self.num_classes if w is None else w for w in table_widths)
            blocks.append(MLPConv(channels, widths, k, rngs=rngs, **common))
            channels = widths[-1]
        self.mlpconv1, self.mlpconv2, self.mlpconv3 = blocks
        self.pool1 = MaxPool(3, stride=2, ceil_mode=True)
        self.dropout1 = nnx.Dropout(dropout, rngs=rngs)
        self.pool2 = AvgPool(3, stride=2, ceil_mode=True)
        self.dropout2 = nnx.Dropout(dropout, rngs=rngs)
        self.avg_pool = GlobalAvgPool()

    def __call__(self, x: Array) -> Array:
        x = model_input(x, self.in_features, self.layout, type(self).__name__)
        y = self.dropout1(self.pool1(self.mlpconv1(x)))
        y = self.dropout2(self.pool2(self.mlpconv2(y)))
        return self.avg_pool(self.mlpconv3(y))
