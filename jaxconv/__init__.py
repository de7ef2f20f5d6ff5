"""jaxconv: convolution kernels for JAX research code.

The functional core — geometry, cost model, lowerings and pure ops — loads with
``import jaxconv``; the Flax NNX layers (``jaxconv.nn``), models (``jaxconv.models``) and the
training path (``jaxconv.train``) import Flax/optax only when they are imported themselves.
"""

from jaxconv import convolution as convolution
from jaxconv import kernels as kernels  # deprecated alias of convolution
from jaxconv import ops as ops  # deprecated alias
from jaxconv import pooling as pooling
from jaxconv._cost import BottleneckCost as BottleneckCost
from jaxconv._cost import ConvCost as ConvCost
from jaxconv._cost import ResidualBlockCost as ResidualBlockCost
from jaxconv._cost import SeparableCost as SeparableCost
from jaxconv._cost import XlaCost as XlaCost
from jaxconv._cost import bottleneck_cost as bottleneck_cost
from jaxconv._cost import compiled_cost as compiled_cost
from jaxconv._cost import conv_cost as conv_cost
from jaxconv._cost import conv_transpose_cost as conv_transpose_cost
from jaxconv._cost import depthwise_cost as depthwise_cost
from jaxconv._cost import residual_block_cost as residual_block_cost
from jaxconv._cost import separable_cost as separable_cost
from jaxconv._cost import xla_cost as xla_cost
from jaxconv._geometry import ReceptiveField as ReceptiveField
from jaxconv._geometry import canonicalize_padding as canonicalize_padding
from jaxconv._geometry import canonicalize_spatial as canonicalize_spatial
from jaxconv._geometry import conv_output_shape as conv_output_shape
from jaxconv._geometry import conv_output_size as conv_output_size
from jaxconv._geometry import conv_transpose_padding as conv_transpose_padding
from jaxconv._geometry import pool_output_size as pool_output_size
from jaxconv._geometry import receptive_field as receptive_field
from jaxconv._geometry import resolve_padding as resolve_padding
from jaxconv._host_memory import host_memory_options as host_memory_options
from jaxconv._host_memory import retain_host_memory as retain_host_memory
from jaxconv._version import __version__ as __version__
from jaxconv.convolution import ConvSpec as ConvSpec
from jaxconv.convolution import Plan as Plan
from jaxconv.convolution import bottleneck as bottleneck
from jaxconv.convolution import conv as conv
from jaxconv.convolution import conv1x1 as conv1x1
from jaxconv.convolution import conv_spec as conv_spec
from jaxconv.convolution import conv_transpose as conv_transpose
from jaxconv.convolution import depthwise_conv as depthwise_conv
from jaxconv.convolution import explain as explain
from jaxconv.convolution import separable_conv as separable_conv
from jaxconv.convolution.autotune import autotune as autotune
from jaxconv.pooling import avg_pool as avg_pool
from jaxconv.pooling import global_avg_pool as global_avg_pool
from jaxconv.pooling import max_pool as max_pool

__all__ = [
    "BottleneckCost",
    "ConvCost",
    "ConvSpec",
    "Plan",
    "ReceptiveField",
    "ResidualBlockCost",
    "SeparableCost",
    "XlaCost",
    "autotune",
    "avg_pool",
    "bottleneck",
    "bottleneck_cost",
    "canonicalize_padding",
    "canonicalize_spatial",
    "compiled_cost",
    "conv",
    "conv1x1",
    "conv_cost",
    "conv_output_shape",
    "conv_output_size",
    "conv_spec",
    "conv_transpose",
    "conv_transpose_cost",
    "conv_transpose_padding",
    "convolution",
    "depthwise_conv",
    "depthwise_cost",
    "explain",
    "global_avg_pool",
    "host_memory_options",
    "kernels",
    "max_pool",
    "ops",
    "pool_output_size",
    "pooling",
    "receptive_field",
    "residual_block_cost",
    "resolve_padding",
    "retain_host_memory",
    "separable_conv",
    "separable_cost",
    "xla_cost",
]
