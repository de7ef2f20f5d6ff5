"""Deprecated alias of the public ops (moved after 0.1.0): the convs are in
:mod:`jaxconv.convolution`, the pools in :mod:`jaxconv.pooling`, and all of them at the top
level (``jaxconv.conv``, ``jaxconv.max_pool``, …)."""

from jaxconv import convolution as _convolution
from jaxconv import pooling as _pooling
from jaxconv._aliases import namespace
from jaxconv.convolution import bottleneck as bottleneck
from jaxconv.convolution import conv as conv
from jaxconv.convolution import conv1x1 as conv1x1
from jaxconv.convolution import conv_transpose as conv_transpose
from jaxconv.convolution import conv_transpose_padding as conv_transpose_padding
from jaxconv.convolution import depthwise_conv as depthwise_conv
from jaxconv.convolution import explain as explain
from jaxconv.convolution import separable_conv as separable_conv
from jaxconv.pooling import PoolSpec as PoolSpec
from jaxconv.pooling import avg_pool as avg_pool
from jaxconv.pooling import global_avg_pool as global_avg_pool
from jaxconv.pooling import max_pool as max_pool
from jaxconv.pooling import pool_spec as pool_spec

__all__ = [
    "PoolSpec",
    "avg_pool",
    "bottleneck",
    "conv",
    "conv1x1",
    "conv_transpose",
    "conv_transpose_padding",
    "depthwise_conv",
    "explain",
    "global_avg_pool",
    "max_pool",
    "pool_spec",
    "separable_conv",
]

# The old modules jaxconv.ops.conv, .depthwise, .transpose and .pool, each with its public names.
for _name, _source, _names in (
    ("conv", _convolution, ("bottleneck", "conv", "conv1x1", "explain")),
    ("depthwise", _convolution, ("depthwise_conv", "separable_conv")),
    ("transpose", _convolution, ("conv_transpose", "conv_transpose_padding")),
    ("pool", _pooling, _pooling.__all__),
):
    namespace(
        f"{__name__}.{_name}",
        f"Deprecated alias: see {_source.__name__}.",
        **{n: getattr(_source, n) for n in _names},
    )
