"""A small Inception network for 32×32 inputs, for the bottleneck-vs-direct-5×5 experiment."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxconv._check import check_bool, check_int
from jaxconv.models._input import check_model_layout, model_input
from jaxconv.nn import Conv, ConvBN, GlobalAvgPool, Inception, MaxPool
from jaxconv.nn._conv import Initializer, default_kernel_init, linear
from jaxconv.nn._inception import bn_options, check_kernel_init

__all__ = ["MINI_INCEPTION", "MiniInception"]

Array = jax.Array

#: MiniInception, in network order: ``("stem", C)`` is a 3×3 conv to C channels, ``"pool"`` a
#: 3×3/2 max pool (32 → 16 → 8), and an inception row holds Table 1's six columns (#1×1,
#: #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj) at roughly a quarter of GoogLeNet's widths.
#: ``bottleneck=False`` sets every #5×5 reduce to 0: each 5×5 then reads the block input.
MINI_INCEPTION: tuple[tuple[str, Any], ...] = (
    ("stem", 32),
    ("inception_a", (16, 24, 32, 4, 8, 8)),
    ("pool", None),
    ("inception_b", (32, 32, 48, 8, 24, 16)),
    ("inception_c", (48, 48, 64, 12, 32, 32)),
    ("pool", None),
    ("inception_d", (64, 64, 96, 16, 48, 48)),
)


class MiniInception(nnx.Module):
    """A small Inception network for 32×32 inputs (CIFAR-10): the widths of
    :data:`MINI_INCEPTION`, then global average pooling, ``dropout`` and a linear ``fc``.

    With ``bottleneck=True`` every 5×5 branch has its 1×1 reduce (Szegedy et al.'s
    "dimension reductions"); with ``bottleneck=False`` it is the same network with no reduce
    before each 5×5 (reduce width 0), so the 5×5 reads the whole block input — the
    1×1-convolution notes' "direct 5×5", at about 2.3× the multiply-accumulates.

    Args:
      num_classes: classes.
      in_features: input channels.
      layout: ``"NHWC"`` (default) or ``"NCHW"``, the batch's layout; an NCHW batch is
        transposed once, at the stem, and gives the same logits.
      bottleneck: keep the 1×1 reduce before each 5×5.
      batch_norm: every conv a :class:`~jaxconv.nn.ConvBN` (default; trains robustly from
        scratch); False gives biased convs as in the paper.
      dropout: rate before ``fc``.
      momentum, epsilon: of every BatchNorm (None: :class:`~jaxconv.nn.ConvBN`'s defaults,
        0.9 and 1e-5); only with ``batch_norm=True``.
      kernel_init: initializer of every conv kernel (``fc`` keeps LeCun normal, Flax's default).
      dtype, param_dtype, precision: as for the convs.
      rngs: ``nnx.Rngs`` (``params``; ``dropout`` for training).

    Call:
      ``[N, H, W, in_features]`` (``[N, in_features, H, W]`` with ``layout="NCHW"``) →
      ``[N, num_classes]``.

    Examples:
      Shapes only (``nnx.eval_shape`` builds the model without initializing it):

      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.models import MiniInception
      >>> model = nnx.eval_shape(lambda: MiniInception(bottleneck=False, rngs=nnx.Rngs(0)))
      >>> model.inception_b.branch_5x5.conv.conv.kernel.shape   # the direct 5×5: 64 → 24
      (5, 5, 64, 24)
      >>> model.eval()
      >>> x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
      >>> nnx.eval_shape(lambda model, x: model(x), model, x).shape
      (2, 10)
    """

    def __init__(
        self,
        num_classes: int = 10,
        *,
        in_features: int = 3,
        bottleneck: bool = True,
        batch_norm: bool = True,
        dropout: float = 0.0,
        layout: str = "NHWC",
        momentum: float | None = None,
        epsilon: float | None = None,
        kernel_init: Initializer = default_kernel_init,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        rngs: nnx.Rngs,
    ):
        bottleneck = check_bool(bottleneck, "bottleneck")
        batch_norm = check_bool(batch_norm, "batch_norm")
        self.num_classes = check_int(num_classes, "num_classes")
        self.in_features = check_int(in_features, "in_features")
        self.layout = check_model_layout(layout)
        self.bottleneck = bottleneck
        norm = "batch" if batch_norm else None
        bn = bn_options(norm, momentum, epsilon)
        dtypes = dict(dtype=dtype, param_dtype=param_dtype, precision=precision)
        common = dict(kernel_init=check_kernel_init(kernel_init), **dtypes)
        channels = in_features
        names = []
        pools = 0
        for name, spec in MINI_INCEPTION:
            layer: nnx.Module
            if name == "stem":
                if batch_norm:
                    layer = ConvBN(
                        channels, spec, 3, activation=jax.nn.relu, rngs=rngs, **bn, **common
                    )
                else:
                    layer = Conv(channels, spec, 3, activation=jax.nn.relu, rngs=rngs, **common)
                channels = spec
            elif name == "pool":
                pools += 1
                name = f"pool{pools}"
                layer = MaxPool(3, stride=2, padding="SAME")
            else:
                widths = spec if bottleneck else (*spec[:3], 0, *spec[4:])
                layer = Inception(channels, widths, norm=norm, rngs=rngs, **bn, **common)
                channels = layer.out_features
            setattr(self, name, layer)
            names.append(name)
        self.layer_names = tuple(names)
        self.avg_pool = GlobalAvgPool()
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.fc = linear(channels, num_classes, rngs=rngs, **dtypes)

    def __call__(self, x: Array) -> Array:
        y = model_input(x, self.in_features, self.layout, type(self).__name__)
        for name in self.layer_names:
            y = getattr(self, name)(y)
        return self.fc(self.dropout(self.avg_pool(y)))
