"""GoogLeNet (Szegedy et al. 2015, "Going deeper with convolutions", Table 1 and §5).

Layer names follow the paper's table and the authors' Caffe release (``bvlc_googlenet``):
``conv1`` (7×7/2), ``pool1``, ``norm1``, ``conv2_reduce``, ``conv2``, ``norm2``, ``pool2``,
``inception_3a`` … ``inception_5b`` with ``pool3``/``pool4`` between the stages, ``avg_pool``,
``dropout``, ``fc``; the auxiliary classifiers are ``aux_4a`` and ``aux_4d``.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import jaxconv
from jaxconv._check import check_bool, check_int
from jaxconv.models._input import check_model_layout, model_input
from jaxconv.nn import (
    Conv,
    Conv1x1,
    ConvBN,
    GlobalAvgPool,
    Inception,
    LocalResponseNorm,
    MaxPool,
)
from jaxconv.nn._conv import Initializer, default_kernel_init, linear
from jaxconv.nn._inception import bn_options, check_kernel_init
from jaxconv.nn._validate import check_channels

__all__ = [
    "GOOGLENET_INCEPTION",
    "AuxClassifier",
    "GoogLeNet",
    "GoogLeNetOutputs",
    "aux_pool_geometry",
    "minimum_input_size",
    "stage_sizes",
]

Array = jax.Array

#: Table 1 of Szegedy et al. 2015: each inception row's (#1×1, #3×3 reduce, #3×3, #5×5 reduce,
#: #5×5, pool proj), in network order. A 3×3/2 max pool precedes 4a and 5a.
GOOGLENET_INCEPTION: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
_POOL_BEFORE = {"4a": "pool3", "5a": "pool4"}

#: The keywords of torchvision's variant of GoogLeNet (its ``googlenet.py``): conv + BatchNorm
#: (eps 1e-3, torch momentum 0.1) + ReLU everywhere and no LRN, a 3×3 in each inception's
#: "5×5" branch, a 2×2/2 ``pool4``, auxiliary heads with an adaptive average pool to 4×4,
#: dropout 0.2 (0.7 in the heads).
TORCHVISION_GOOGLENET: dict[str, Any] = dict(
    batch_norm=True,
    momentum=0.9,
    epsilon=1e-3,
    kernel_sizes=(3, 3),
    pool4_size=2,
    aux_pool="adaptive",
    dropout=0.2,
    aux_dropout=0.7,
)

#: The auxiliary heads' 5×5/3 average pool leaves a 4×4 grid on the 14×14 maps of 4a/4d (§5).
AUX_GRID = 4

#: torchvision's ``transform_input``: its pretrained GoogLeNet expects inputs normalized with mean
#: and std 0.5; this maps the usual ImageNet normalization (mean 0.485, 0.456, 0.406; std 0.229,
#: 0.224, 0.225) onto that, channel by channel: ``x · scale + shift``.
TRANSFORM_SCALE = (0.229 / 0.5, 0.224 / 0.5, 0.225 / 0.5)
TRANSFORM_SHIFT = ((0.485 - 0.5) / 0.5, (0.456 - 0.5) / 0.5, (0.406 - 0.5) / 0.5)


class GoogLeNetOutputs(NamedTuple):
    """What :class:`GoogLeNet` returns in training mode with ``aux_logits=True``.

    The paper adds the auxiliary losses with weight 0.3 (§5); that is the loss's business.
    """

    logits: Array
    aux_4a: Array
    aux_4d: Array


def aux_pool_geometry(size: int) -> tuple[int, int]:
    """``(window, stride)`` of the aux heads' average pool on a ``size``-pixel map.

    Windows of one size, evenly strided, covering the map exactly with :data:`AUX_GRID` outputs:
    ``stride = size // 4``, ``window = size - 3·stride``. On the paper's 14×14 maps this is its
    5×5/3 pool; 16×16 (the CIFAR stem) gives 4×4/4.

    Examples:
      >>> aux_pool_geometry(14), aux_pool_geometry(16), aux_pool_geometry(7)
      ((5, 3), (4, 4), (4, 1))
    """
    if size < AUX_GRID:
        raise ValueError(
            f"the auxiliary classifiers need feature maps of at least {AUX_GRID}×{AUX_GRID} at "
            f"4a/4d, got {size} pixels (use a larger input, stem='cifar', or aux_logits=False)"
        )
    stride = size // AUX_GRID
    return size - (AUX_GRID - 1) * stride, stride


def stage_sizes(size: int, stem: str = "imagenet", *, pool4_size: int = 3) -> dict[str, int]:
    """The spatial size entering stages 3, 4 and 5 for a ``size``-pixel input side.

    ``pool4_size`` is the window of the stride-2 pool before 5a (3 in the paper, 2 in
    torchvision). Raises ``ValueError`` when a pool window does not fit (the input is too small).

    Examples:
      >>> stage_sizes(224), stage_sizes(32, "cifar")
      ({'3a': 28, '4a': 14, '5a': 7}, {'3a': 32, '4a': 16, '5a': 8})
    """

    def pool(n: int, window: int = 3) -> int:
        return jaxconv.pool_output_size(n, window, stride=2, ceil_mode=True)

    if stem == "imagenet":  # conv1 7×7/2 pad 3 → pool1 → (conv2 keeps the size) → pool2
        size = pool(pool(jaxconv.conv_output_size(size, 7, stride=2, padding=3)))
    s4 = pool(size)
    return {"3a": size, "4a": s4, "5a": pool(s4, pool4_size)}


@functools.cache
def minimum_input_size(stem: str = "imagenet", pool4_size: int = 3) -> int:
    """The smallest input side GoogLeNet runs on with this ``stem`` (31 for ImageNet's).

    ``pool4_size`` as for :func:`stage_sizes` (torchvision's 2×2 pool4 runs from 15 pixels).

    Its ``ceil_mode`` pools keep PyTorch's partial windows, so 32×32 runs the ImageNet stem
    (maps 16, 8, 4 into 3a, 2 into 4a, 1 into 5a), as torchvision's GoogLeNet does.

    Examples:
      >>> minimum_input_size("imagenet"), minimum_input_size("cifar")
      (31, 4)
    """
    for size in range(1, 1024):
        try:
            stage_sizes(size, stem, pool4_size=pool4_size)
        except ValueError:
            continue
        return size
    raise AssertionError("unreachable: 1023 pixels always fit")


def _adaptive_avg_pool(x: Array, size: int) -> Array:
    """PyTorch's ``adaptive_avg_pool2d(x, size)`` on NHWC ``x``: output cell ``i`` of an
    ``n``-pixel side averages pixels ``floor(i·n/size)`` … ``ceil((i+1)·n/size) - 1``."""

    def weights(n: int) -> np.ndarray:
        m = np.zeros((size, n), np.float32)
        for i in range(size):
            lo, hi = i * n // size, -(-(i + 1) * n // size)
            m[i, lo:hi] = 1 / (hi - lo)
        return m

    ph, pw = (jnp.asarray(weights(n), x.dtype) for n in x.shape[1:3])
    return jnp.einsum("ih,nhwc,jw->nijc", ph, x, pw, precision=jax.lax.Precision.HIGHEST)


class AuxClassifier(nnx.Module):
    """GoogLeNet's auxiliary classifier (§5): 5×5/3 average pool → 1×1 conv 128 + ReLU →
    FC 1024 + ReLU → dropout 70% → FC ``num_classes``.

    The pool is :func:`aux_pool_geometry`'s, so other input sizes keep the 4×4×128 = 2048 inputs
    of ``fc1``; ``pool="adaptive"`` is torchvision's ``InceptionAux`` instead (an adaptive
    average pool to 4×4: on 14×14 maps, 4×4 windows at 0, 3, 7, 10). ``fc1`` reads the 4×4×128
    map flattened in NHWC order (torchvision flattens C, H, W; its importer permutes the rows).

    Args:
      in_features: channels of the tapped block (512 for 4a, 528 for 4d).
      num_classes: classes.
      batch_norm: a :class:`~jaxconv.nn.ConvBN` instead of a biased conv.
      dropout: the dropout rate (0.7 in the paper).
      pool: ``"paper"`` (the 5×5/3 pool of :func:`aux_pool_geometry`) or ``"adaptive"``
        (torchvision's).
      momentum, epsilon: of the BatchNorm (None: :class:`~jaxconv.nn.ConvBN`'s defaults);
        only with ``batch_norm=True``.
      kernel_init: initializer of the conv kernel (the linear layers keep LeCun normal, Flax's
        default).
      dtype, param_dtype, precision: as for the convs.
      rngs: ``nnx.Rngs`` (``params``; ``dropout`` for training).

    Call:
      ``[N, H, W, in_features]`` → ``[N, num_classes]``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.models import AuxClassifier
      >>> head = nnx.eval_shape(lambda: AuxClassifier(512, 10, rngs=nnx.Rngs(0)))
      >>> head.fc1.kernel.shape
      (2048, 1024)
      >>> x = jax.ShapeDtypeStruct((2, 14, 14, 512), jnp.float32)
      >>> nnx.eval_shape(lambda head, x: head(x), head, x).shape
      (2, 10)
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        batch_norm: bool = False,
        dropout: float = 0.7,
        pool: str = "paper",
        momentum: float | None = None,
        epsilon: float | None = None,
        kernel_init: Initializer = default_kernel_init,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        rngs: nnx.Rngs,
    ):
        if pool not in ("paper", "adaptive"):
            raise ValueError(f"`pool` must be 'paper' or 'adaptive', got {pool!r}")
        self.pool = pool
        common = dict(dtype=dtype, param_dtype=param_dtype, precision=precision)
        self.in_features = check_int(in_features, "in_features")
        batch_norm = check_bool(batch_norm, "batch_norm")
        bn = bn_options("batch" if batch_norm else None, momentum, epsilon)
        init = check_kernel_init(kernel_init)
        self.conv: ConvBN | Conv1x1
        if batch_norm:
            self.conv = ConvBN(
                in_features,
                128,
                1,
                activation=jax.nn.relu,
                kernel_init=init,
                rngs=rngs,
                **bn,
                **common,
            )
        else:
            self.conv = Conv1x1(
                in_features, 128, activation=jax.nn.relu, kernel_init=init, rngs=rngs, **common
            )
        self.fc1 = linear(AUX_GRID * AUX_GRID * 128, 1024, rngs=rngs, **common)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.fc2 = linear(1024, check_int(num_classes, "num_classes"), rngs=rngs, **common)

    def __call__(self, x: Array) -> Array:
        check_channels(x, self.in_features, type(self).__name__)
        if self.pool == "adaptive":
            y = _adaptive_avg_pool(x, AUX_GRID)
        else:
            (kh, sh), (kw, sw) = (aux_pool_geometry(n) for n in x.shape[1:3])
            y = jaxconv.avg_pool(x, (kh, kw), stride=(sh, sw))
        y = self.conv(y)
        y = jax.nn.relu(self.fc1(y.reshape(y.shape[0], -1)))
        return self.fc2(self.dropout(y))


class GoogLeNet(nnx.Module):
    """GoogLeNet, faithful to Table 1 of Szegedy et al. 2015.

    ``conv1`` 7×7/2 64 → ``pool1`` 3×3/2 → ``norm1`` (LRN) → ``conv2_reduce`` 1×1 64 →
    ``conv2`` 3×3 192 → ``norm2`` (LRN) → ``pool2`` 3×3/2 → inception 3a, 3b → ``pool3`` →
    4a…4e → ``pool4`` → 5a, 5b → ``avg_pool`` (7×7 on 224 inputs; global, so any size works) →
    ``dropout`` 40% → ``fc``. Max pools use ``ceil_mode`` as the Caffe reference did, so
    224 → 112 → 56 → 28 → 14 → 7. Convs pad ``k // 2`` on both sides (Caffe's pads). Every
    conv is followed by ReLU. The inception widths are :data:`GOOGLENET_INCEPTION`.

    Paper-faithful (``aux_logits=False``, the default ``batch_norm=False``): 6,998,552
    parameters and ≈1.58 G multiply-accumulates per 224×224 image (see
    :func:`jaxconv.nn.summary`). Table 1's ops column is reproduced for every inception row
    except 5a, whose printed 54M disagrees with the paper's own widths (they give 51.1M).

    Train/eval follows NNX's ``model.train()`` (the state after construction) and
    ``model.eval()``: in training mode dropout is on, BatchNorm uses batch statistics, and
    with ``aux_logits`` the model returns :class:`GoogLeNetOutputs` ``(logits, aux_4a,
    aux_4d)``; in eval mode it returns the logits only and the auxiliary heads do not run.

    Args:
      num_classes: classes of ``fc`` (1000 for ImageNet).
      in_features: input channels.
      layout: ``"NHWC"`` (default) or ``"NCHW"``, the batch's layout; an NCHW batch is
        transposed once, at the stem, and gives the same logits.
      aux_logits: build the two auxiliary classifiers on 4a and 4d (§5).
      batch_norm: the BN variant: every conv a :class:`~jaxconv.nn.ConvBN`, no conv biases.
      dropout: rate before ``fc`` (40% in the paper).
      aux_dropout: rate inside the auxiliary heads (70%).
      lrn: local response normalization after ``pool1`` and ``conv2`` (the Caffe reference
        has it); None (default) means ``not batch_norm`` — paper-faithful without BN, and off
        for the BN variant as in Ioffe & Szegedy 2015.
      stem: ``"imagenet"`` (Table 1) or ``"cifar"``: for 32×32 inputs, ``conv1`` is a 3×3/1 conv
        to 192 channels and ``pool1``…``pool2`` are dropped, so the inception stages run at
        32×32, 16×16 and 8×8 (the usual CIFAR port). The ImageNet stem needs inputs of at least
        31×31 (:func:`minimum_input_size`; its auxiliary heads need 4×4 maps at 4a, i.e. 63×63).
      momentum, epsilon: of every BatchNorm, the auxiliary heads' included (None:
        :class:`~jaxconv.nn.ConvBN`'s defaults, 0.9 and 1e-5); only with ``batch_norm=True``.
        torchvision's GoogLeNet uses ``epsilon=1e-3``.
      kernel_sizes: the k of every inception's ``branch_3x3`` and ``branch_5x5`` (the paper's
        ``(3, 5)``; torchvision's GoogLeNet has ``(3, 3)``).
      pool4_size: the window of ``pool4`` (stride 2; 3 in the paper, 2 in torchvision).
      aux_pool: the auxiliary heads' pool, as :class:`AuxClassifier`'s ``pool``.
      transform_input: first map ImageNet-normalized input onto mean/std 0.5, channel by
        channel (torchvision's ``transform_input``; :data:`TRANSFORM_SCALE`, 3 channels only).
      kernel_init: initializer of every conv kernel (``fc`` keeps LeCun normal, Flax's default).
      dtype, param_dtype, precision: as for the convs.
      rngs: ``nnx.Rngs`` (``params``; ``dropout`` for training).

    Call:
      ``[N, H, W, in_features]`` (``[N, in_features, H, W]`` with ``layout="NCHW"``) →
      ``[N, num_classes]`` logits (or :class:`GoogLeNetOutputs`).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.models import GoogLeNet
      >>> model = nnx.eval_shape(lambda: GoogLeNet(aux_logits=False, rngs=nnx.Rngs(0)))
      >>> model.eval()
      >>> sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
      6998552
      >>> model.inception_4a.branch_5x5.reduce.kernel.shape
      (1, 1, 480, 16)
    """

    def __init__(
        self,
        num_classes: int = 1000,
        *,
        in_features: int = 3,
        aux_logits: bool = True,
        batch_norm: bool = False,
        dropout: float = 0.4,
        aux_dropout: float = 0.7,
        lrn: bool | None = None,
        stem: str = "imagenet",
        momentum: float | None = None,
        epsilon: float | None = None,
        kernel_sizes: tuple[int, int] = (3, 5),
        pool4_size: int = 3,
        aux_pool: str = "paper",
        transform_input: bool = False,
        layout: str = "NHWC",
        kernel_init: Initializer = default_kernel_init,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        rngs: nnx.Rngs,
    ):
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"`stem` must be 'imagenet' or 'cifar', got {stem!r}")
        if aux_pool not in ("paper", "adaptive"):
            raise ValueError(f"`aux_pool` must be 'paper' or 'adaptive', got {aux_pool!r}")
        self.pool4_size = check_int(pool4_size, "pool4_size")
        self.transform_input = check_bool(transform_input, "transform_input")
        if self.transform_input and in_features != 3:
            raise ValueError(
                f"`transform_input` re-normalizes 3 RGB channels, got in_features={in_features!r}"
            )
        aux_logits = check_bool(aux_logits, "aux_logits")
        batch_norm = check_bool(batch_norm, "batch_norm")
        norm = "batch" if batch_norm else None
        bn = bn_options(norm, momentum, epsilon)
        init = check_kernel_init(kernel_init)
        if lrn is None:
            lrn = not batch_norm
        common = dict(dtype=dtype, param_dtype=param_dtype, precision=precision)
        self.num_classes = check_int(num_classes, "num_classes")
        self.in_features = check_int(in_features, "in_features")
        self.stem = stem
        self.layout = check_model_layout(layout)
        self.aux_logits = aux_logits
        # Training mode by default, like nnx.Dropout/BatchNorm; model.train()/.eval() toggle it.
        self.deterministic = False

        def conv(c_in: int, c_out: int, k: int, stride: int = 1) -> Conv | ConvBN:
            unit = functools.partial(ConvBN, **bn) if batch_norm else Conv
            return unit(
                c_in,
                c_out,
                k,
                stride=stride,
                padding=k // 2,
                activation=jax.nn.relu,
                kernel_init=init,
                rngs=rngs,
                **common,
            )

        def pool(window: int = 3) -> MaxPool:
            return MaxPool(window, stride=2, ceil_mode=True)

        self.conv1: Conv | ConvBN
        self.pool1: MaxPool | None
        self.norm1: LocalResponseNorm | None
        self.conv2_reduce: Conv | ConvBN | None
        self.conv2: Conv | ConvBN | None
        self.norm2: LocalResponseNorm | None
        self.pool2: MaxPool | None
        none = nnx.data(None)
        if stem == "imagenet":
            self.conv1 = conv(in_features, 64, 7, stride=2)
            self.pool1 = pool()
            self.norm1 = LocalResponseNorm() if lrn else none
            self.conv2_reduce = conv(64, 64, 1)
            self.conv2 = conv(64, 192, 3)
            self.norm2 = LocalResponseNorm() if lrn else none
            self.pool2 = pool()
        else:
            self.conv1 = conv(in_features, 192, 3)
            self.pool1 = self.norm1 = self.conv2_reduce = none
            self.conv2 = self.norm2 = self.pool2 = none
        channels = 192
        for name, widths in GOOGLENET_INCEPTION.items():
            if name in _POOL_BEFORE:
                setattr(self, _POOL_BEFORE[name], pool(self.pool4_size if name == "5a" else 3))
            block = Inception(
                channels,
                widths,
                kernel_sizes=kernel_sizes,
                norm=norm,
                kernel_init=init,
                rngs=rngs,
                **bn,
                **common,
            )
            setattr(self, f"inception_{name}", block)
            channels = block.out_features
            if name in ("4a", "4d"):
                head = (
                    AuxClassifier(
                        channels,
                        num_classes,
                        batch_norm=batch_norm,
                        dropout=aux_dropout,
                        pool=aux_pool,
                        kernel_init=init,
                        rngs=rngs,
                        **bn,
                        **common,
                    )
                    if aux_logits
                    else none
                )
                setattr(self, f"aux_{name}", head)
        self.avg_pool = GlobalAvgPool(keepdims=True)  # the paper's 1×1×1024 row
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.fc = linear(channels, num_classes, rngs=rngs, **common)

    def __call__(self, x: Array) -> Array | GoogLeNetOutputs:
        x = model_input(x, self.in_features, self.layout, type(self).__name__)
        smallest = minimum_input_size(self.stem, self.pool4_size)
        if min(x.shape[1:3]) < smallest:
            raise ValueError(
                f"GoogLeNet with stem={self.stem!r} needs `x` with H, W >= {smallest}, got "
                f"H, W = {x.shape[1]}, {x.shape[2]}"
                + (" (use stem='cifar' for 32×32 inputs)" if self.stem == "imagenet" else "")
            )
        if self.transform_input:
            x = x * jnp.asarray(TRANSFORM_SCALE, x.dtype).reshape(1, 1, 1, 3) + jnp.asarray(
                TRANSFORM_SHIFT, x.dtype
            ).reshape(1, 1, 1, 3)
        y = self.conv1(x)
        for name in ("pool1", "norm1"):
            if getattr(self, name) is not None:
                y = getattr(self, name)(y)
        if self.conv2_reduce is not None and self.conv2 is not None:  # the ImageNet stem
            y = self.conv2(self.conv2_reduce(y))
        for name in ("norm2", "pool2"):
            if getattr(self, name) is not None:
                y = getattr(self, name)(y)
        aux = []
        for name in GOOGLENET_INCEPTION:
            if name in _POOL_BEFORE:
                y = getattr(self, _POOL_BEFORE[name])(y)
            y = getattr(self, f"inception_{name}")(y)
            if name in ("4a", "4d") and self.aux_logits and not self.deterministic:
                aux.append(getattr(self, f"aux_{name}")(y))
        y = self.fc(self.dropout(self.avg_pool(y)))
        logits = y.reshape(y.shape[0], self.num_classes)
        if aux:
            return GoogLeNetOutputs(logits, *aux)
        return logits
