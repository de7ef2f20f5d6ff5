"""Flax NNX building blocks that call ``jaxconv`` ops (NHWC input, HWIO kernels).

Importing ``jaxconv.nn`` imports Flax; ``import jaxconv`` alone does not.

Modules are thin — canonicalize the arguments, create the parameters, call a ``jaxconv`` op,
add the bias, apply the activation — and their submodule names are stable: parameter paths are
the checkpoint format. Their default initializers (:class:`VarianceScaling`, :class:`Normal`) have
Flax's distributions but compile once for every parameter shape, so models build in seconds.
:func:`summary` tabulates a model's modules (shapes, parameters, MACs).
"""

from jaxconv.nn._blocks import BasicBlock as BasicBlock
from jaxconv.nn._blocks import InvertedResidual as InvertedResidual
from jaxconv.nn._blocks import ResNetBottleneck as ResNetBottleneck
from jaxconv.nn._conv import Conv as Conv
from jaxconv.nn._conv import Conv1x1 as Conv1x1
from jaxconv.nn._conv import ConvBN as ConvBN
from jaxconv.nn._depthwise import DepthwiseConv as DepthwiseConv
from jaxconv.nn._freeze import FreezeReport as FreezeReport
from jaxconv.nn._freeze import FrozenConv as FrozenConv
from jaxconv.nn._freeze import freeze as freeze
from jaxconv.nn._inception import Bottleneck as Bottleneck
from jaxconv.nn._inception import Inception as Inception
from jaxconv.nn._inception import PoolProjection as PoolProjection
from jaxconv.nn._init import Normal as Normal
from jaxconv.nn._init import VarianceScaling as VarianceScaling
from jaxconv.nn._mlpconv import MLPConv as MLPConv
from jaxconv.nn._norm import LocalResponseNorm as LocalResponseNorm
from jaxconv.nn._norm import local_response_norm as local_response_norm
from jaxconv.nn._pool import AvgPool as AvgPool
from jaxconv.nn._pool import GlobalAvgPool as GlobalAvgPool
from jaxconv.nn._pool import MaxPool as MaxPool
from jaxconv.nn._separable import SeparableConv as SeparableConv
from jaxconv.nn._summary import Summary as Summary
from jaxconv.nn._summary import SummaryRow as SummaryRow
from jaxconv.nn._summary import summary as summary
from jaxconv.nn._transpose import ConvTranspose as ConvTranspose

__all__ = [
    "AvgPool",
    "BasicBlock",
    "Bottleneck",
    "Conv",
    "Conv1x1",
    "ConvBN",
    "ConvTranspose",
    "DepthwiseConv",
    "FreezeReport",
    "FrozenConv",
    "GlobalAvgPool",
    "Inception",
    "InvertedResidual",
    "LocalResponseNorm",
    "MLPConv",
    "MaxPool",
    "Normal",
    "PoolProjection",
    "ResNetBottleneck",
    "SeparableConv",
    "Summary",
    "SummaryRow",
    "VarianceScaling",
    "freeze",
    "local_response_norm",
    "summary",
]
