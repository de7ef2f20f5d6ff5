"""The ops layer: jaxconv's pure functions — convolutions (conv.py) and pooling (pool.py)."""

from jaxconv.ops.conv import bottleneck as bottleneck
from jaxconv.ops.conv import conv as conv
from jaxconv.ops.conv import conv1x1 as conv1x1
from jaxconv.ops.conv import explain as explain
from jaxconv.ops.depthwise import depthwise_conv as depthwise_conv
from jaxconv.ops.depthwise import separable_conv as separable_conv
from jaxconv.ops.pool import PoolSpec as PoolSpec
from jaxconv.ops.pool import avg_pool as avg_pool
from jaxconv.ops.pool import global_avg_pool as global_avg_pool
from jaxconv.ops.pool import max_pool as max_pool
from jaxconv.ops.pool import pool_spec as pool_spec
from jaxconv.ops.transpose import conv_transpose as conv_transpose
from jaxconv.ops.transpose import conv_transpose_padding as conv_transpose_padding

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
