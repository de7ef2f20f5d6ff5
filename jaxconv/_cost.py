"""Cost model: parameters, MACs, FLOPs, bytes and arithmetic intensity of a convolution.

Convention (the papers' "ops"): MACs count every kernel tap at every output position,
groups-aware — ``H_out·W_out·C_out·(C_in/groups)·kh·kw`` per image — and FLOPs = 2·MACs.
XLA's ``cost_analysis()`` skips taps that land in padding, so its flops are lower for padded
convs; :func:`xla_cost` reads those numbers and they are always shown under their own name.
This module describes layers analytically; it never runs a convolution.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import jax
import numpy as np

from jaxconv._check import as_array, as_arrays, check_groups, check_int
from jaxconv._geometry import (
    Padding,
    canonicalize_spatial,
    conv_transpose_output_size,
    conv_transpose_padding,
)
from jaxconv.convolution.spec import ConvSpec, conv_spec

__all__ = [
    "BottleneckCost",
    "ConvCost",
    "SeparableCost",
    "XlaCost",
    "bottleneck_cost",
    "compiled_cost",
    "conv_cost",
    "conv_transpose_cost",
    "depthwise_cost",
    "separable_cost",
    "xla_cost",
]


@dataclass(frozen=True)
class ConvCost:
    """Analytic cost of one convolution layer.

    Attributes:
      input_shape: ``(*spatial, C_in)`` of one image.
      output_shape: ``(*spatial_out, C_out)`` of one image.
      batch: images the totals below are for.
      weights: kernel elements (no bias).
      params: ``weights`` + bias elements.
      macs: multiply-accumulates over ``batch`` images, every tap counted.
      flops: ``2·macs``.
      bytes: input + parameters + output bytes for ``dtype`` (each read/written once).
      intensity: ``flops / bytes`` (FLOP per byte).
      dtype: the dtype the bytes are for.

    Examples:
      >>> c = conv_cost((28, 28, 192), 64, 1, dtype="bfloat16")
      >>> c.output_shape, c.macs, c.params, c.dtype
      ((28, 28, 64), 9633792, 12352, 'bfloat16')
    """

    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    batch: int
    weights: int
    params: int
    macs: int
    flops: int
    bytes: int
    intensity: float
    dtype: str


def _canonical_dtype(dtype: Any) -> np.dtype:
    """``dtype`` as a NumPy dtype; accepts names ("bfloat16"), scalar types and arrays."""
    if hasattr(dtype, "dtype") and not isinstance(dtype, type):  # an array or a ShapeDtypeStruct
        dtype = dtype.dtype
    try:
        return np.dtype(dtype)
    except TypeError:
        pass
    import ml_dtypes  # noqa: F401  (registers bfloat16, float8_* … with NumPy; a jax dependency)

    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"`dtype` must be a dtype or a dtype name, got {dtype!r}") from None


def conv_cost(
    input_shape: Sequence[int],
    out_channels: int,
    kernel: int | Sequence[int],
    *,
    stride: Any = 1,
    padding: Padding = "SAME",
    dilation: Any = 1,
    input_dilation: Any = 1,
    groups: int = 1,
    bias: bool = True,
    batch: int = 1,
    dtype: Any = "float32",
) -> ConvCost:
    """Analytic cost of a convolution (same defaults as :func:`jaxconv.conv`).

    Args:
      input_shape: one image, channels last: ``(H, W, C_in)``, or ``(*spatial, C_in)`` for
        1-D/3-D convs.
      out_channels: ``C_out``.
      kernel: spatial kernel size; an int broadcasts to every spatial dim.
      stride, padding, dilation, input_dilation, groups: as for :func:`jaxconv.conv`.
      bias: whether the layer has a bias (counted in ``params``).
      batch: number of images the MACs/bytes are totalled over.
      dtype: element type for ``bytes``.

    Returns:
      A :class:`ConvCost`.

    Examples:
      The seed's direct 5×5 on Inception 4a's input:

      >>> c = conv_cost((14, 14, 480), 48, 5, bias=False)
      >>> c.output_shape, c.weights, c.macs
      ((14, 14, 48), 576000, 112896000)
    """
    input_shape = tuple(int(v) for v in input_shape)
    if len(input_shape) < 2:
        raise ValueError(f"`input_shape` must be one image (*spatial, C_in), got {input_shape!r}")
    ndim = len(input_shape) - 1
    ks = canonicalize_spatial(kernel, ndim, "kernel")
    (batch,) = canonicalize_spatial(batch, 1, "batch")
    (out_channels,) = canonicalize_spatial(out_channels, 1, "out_channels")
    groups = check_int(groups, "groups")
    c_in = input_shape[-1]
    np_dtype = _canonical_dtype(dtype)
    spec = conv_spec(
        jax.ShapeDtypeStruct((batch, *input_shape), np_dtype),
        # conv_spec checks the groups first (a kernel of 1 in-channel stands in where they
        # do not divide C_in)
        jax.ShapeDtypeStruct((*ks, max(c_in // groups, 1), out_channels), np_dtype),
        stride=stride,
        padding=padding,
        dilation=dilation,
        input_dilation=input_dilation,
        groups=groups,
        names={"x": "input_shape", "w": "kernel"},
    )
    return spec_cost(spec, bias=bias)


def spec_cost(spec: ConvSpec, *, bias: bool = True) -> ConvCost:
    """The analytic cost of the conv ``spec`` describes, totalled over its batch (what
    :func:`conv_cost` computes once it has the spec; channels-last shapes in the result).

    Examples:
      >>> import jax, jax.numpy as jnp, jaxconv
      >>> spec = jaxconv.conv_spec(jax.ShapeDtypeStruct((1, 14, 14, 480), jnp.float32),
      ...                          jax.ShapeDtypeStruct((5, 5, 480, 48), jnp.float32))
      >>> spec_cost(spec, bias=False).macs
      112896000
    """
    # The input as the caller gives it: before a padding mode's pre-pad.
    pre_pad = spec.pre_pad or ((0, 0),) * spec.ndim
    in_spatial = tuple(n - lo - hi for n, (lo, hi) in zip(spec.in_spatial, pre_pad))
    input_shape = (*in_spatial, spec.in_channels)
    out = (*spec.out_spatial, spec.out_channels)
    taps = math.prod(spec.kernel) * (spec.in_channels // spec.groups)
    macs = math.prod(spec.out_spatial) * spec.out_channels * taps * spec.batch
    return _layer_cost(
        input_shape, out, spec.batch, taps * spec.out_channels, bias, macs, spec.dtype
    )


def _layer_cost(
    input_shape: tuple[int, ...],
    output_shape: tuple[int, ...],
    batch: int,
    weights: int,
    bias: bool,
    macs: int,
    dtype: Any,
) -> ConvCost:
    """The :class:`ConvCost` of one layer from its shapes (one image each), weights and MACs:
    params add the bias, bytes move the input, the parameters and the output once."""
    np_dtype = np.dtype(dtype)
    params = weights + (output_shape[-1] if bias else 0)
    elements = (math.prod(input_shape) + math.prod(output_shape)) * batch
    moved = (elements + params) * np_dtype.itemsize
    return ConvCost(
        input_shape=input_shape,
        output_shape=output_shape,
        batch=batch,
        weights=weights,
        params=params,
        macs=macs,
        flops=2 * macs,
        bytes=moved,
        intensity=2 * macs / moved,
        dtype=np_dtype.name,
    )


def conv_transpose_cost(
    input_shape: Sequence[int],
    out_channels: int,
    kernel: int | Sequence[int],
    *,
    stride: Any = 1,
    padding: Any = "SAME",
    output_padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    bias: bool = True,
    batch: int = 1,
    dtype: Any = "float32",
) -> ConvCost:
    """Analytic cost of a transposed convolution (same arguments as
    :func:`jaxconv.conv_transpose`): every input pixel times every kernel tap, the scatter
    form's multiply-adds (the input-dilated conv it runs as adds only zeros beyond these).

    Args:
      input_shape: one image, channels last: ``(*spatial, C_in)``.
      out_channels: ``C_out``.
      kernel: spatial kernel size; an int broadcasts to every spatial dim.
      stride, padding, output_padding, dilation, groups: as for
        :func:`jaxconv.conv_transpose` (an int ``padding`` is PyTorch's, ``"SAME"`` /
        ``"VALID"`` Flax's; the default is ``"SAME"``, as there).
      bias, batch, dtype: as for :func:`conv_cost`.

    Returns:
      A :class:`ConvCost`.

    Examples:
      >>> c = conv_transpose_cost((7, 7, 64), 32, 3, stride=2, padding=1, output_padding=1)
      >>> c.output_shape, c.macs == 7 * 7 * 3 * 3 * 64 * 32
      ((14, 14, 32), True)
    """
    input_shape = tuple(int(v) for v in input_shape)
    if len(input_shape) < 2:
        raise ValueError(f"`input_shape` must be one image (*spatial, C_in), got {input_shape!r}")
    *spatial, c_in = input_shape
    ndim = len(spatial)
    ks = canonicalize_spatial(kernel, ndim, "kernel")
    (out_channels,) = canonicalize_spatial(out_channels, 1, "out_channels")
    (batch,) = canonicalize_spatial(batch, 1, "batch")
    groups = check_groups(groups, c_in, out_channels)
    strides = canonicalize_spatial(stride, ndim, "stride")
    dilations = canonicalize_spatial(dilation, ndim, "dilation")
    pads = conv_transpose_padding(
        ks, stride=strides, padding=padding, output_padding=output_padding, dilation=dilations
    )
    out = tuple(
        conv_transpose_output_size(n, k, stride=s, padding=p, dilation=d)
        for n, k, s, p, d in zip(spatial, ks, strides, pads, dilations)
    )
    weights = math.prod(ks) * (c_in // groups) * out_channels
    macs = batch * math.prod(spatial) * weights
    return _layer_cost(
        input_shape, (*out, out_channels), batch, weights, bias, macs, _canonical_dtype(dtype)
    )


def _layer_rows(rows: Sequence[tuple[str, ConvCost]]) -> list[str]:
    """A header and one line per named layer: output shape, weights, MACs (the comparisons'
    ``table()``)."""
    lines = [f"{'layer':<16}{'output':>16}{'weights':>12}{'MACs':>16}"]
    for name, c in rows:
        shape = "x".join(map(str, c.output_shape))
        lines.append(f"{name:<16}{shape:>16}{c.weights:>12,}{c.macs:>16,}")
    return lines


@dataclass(frozen=True)
class BottleneckCost:
    """A direct k×k convolution against a 1×1 reduce followed by the same k×k.

    Attributes:
      direct: cost of the direct conv.
      reduce: cost of the 1×1 reduce.
      spatial: cost of the k×k conv on the reduced maps.
      macs_direct / macs_bottleneck: MAC totals.
      macs_ratio: ``macs_direct / macs_bottleneck`` (the analytic speedup).
      weights_direct / weights_bottleneck: kernel elements (no bias).
      filter_ratio: parameters of one 1×1 filter over one k×k filter on the same input,
        ``1/(kh·kw)`` (1/25 for a 5×5).

    Examples:
      >>> b = bottleneck_cost((28, 28, 192), 128, 3, 96)   # GoogLeNet inception (3a), 3×3
      >>> b.macs_direct, b.macs_bottleneck, b.filter_ratio
      (173408256, 101154816, Fraction(1, 9))
    """

    direct: ConvCost
    reduce: ConvCost
    spatial: ConvCost
    macs_direct: int
    macs_bottleneck: int
    macs_ratio: float
    weights_direct: int
    weights_bottleneck: int
    filter_ratio: Fraction

    def table(self) -> str:
        """A plain-text comparison of the three layers and the totals.

        Examples:
          >>> print(bottleneck_cost((14, 14, 480), 48, 5, 16).table())
          layer                     output     weights            MACs
          direct                  14x14x48     576,000     112,896,000
          1x1 reduce              14x14x16       7,680       1,505,280
          kxk on reduced          14x14x48      19,200       3,763,200
          bottleneck total: 5,268,480 MACs, 26,880 weights; direct/bottleneck = 21.4x MACs
        """
        rows = [
            ("direct", self.direct),
            ("1x1 reduce", self.reduce),
            ("kxk on reduced", self.spatial),
        ]
        lines = _layer_rows(rows)
        lines.append(
            f"bottleneck total: {self.macs_bottleneck:,} MACs, "
            f"{self.weights_bottleneck:,} weights; direct/bottleneck = {self.macs_ratio:.1f}x MACs"
        )
        return "\n".join(lines)


def bottleneck_cost(
    input_shape: Sequence[int],
    out_channels: int,
    kernel: int | Sequence[int],
    reduce_channels: int,
    *,
    stride: Any = 1,
    padding: Padding = "SAME",
    dilation: Any = 1,
    bias: bool = True,
    batch: int = 1,
    dtype: Any = "float32",
) -> BottleneckCost:
    """Compares a direct k×k conv with a 1×1 reduce to ``reduce_channels`` followed by the k×k.

    Args:
      input_shape: one image ``(H, W, C_in)``.
      out_channels: k×k filters.
      kernel: k×k kernel size.
      reduce_channels: channels after the 1×1 reduce.
      stride, padding, dilation: of the k×k conv.
      bias, batch, dtype: as for :func:`conv_cost`.

    Returns:
      A :class:`BottleneckCost`.

    Examples:
      The seed's example (Inception 4a, 5×5 branch):

      >>> b = bottleneck_cost((14, 14, 480), 48, 5, 16)
      >>> b.macs_direct, b.reduce.macs, b.spatial.macs, b.macs_bottleneck
      (112896000, 1505280, 3763200, 5268480)
      >>> round(b.macs_ratio, 1), b.weights_direct, b.weights_bottleneck, b.filter_ratio
      (21.4, 576000, 26880, Fraction(1, 25))
    """
    kw = dict(bias=bias, batch=batch, dtype=dtype)
    direct = conv_cost(
        input_shape, out_channels, kernel, stride=stride, padding=padding, dilation=dilation, **kw
    )
    reduce = conv_cost(input_shape, reduce_channels, 1, padding="VALID", **kw)
    spatial = conv_cost(
        (*reduce.output_shape[:-1], reduce_channels),
        out_channels,
        kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        **kw,
    )
    macs_b = reduce.macs + spatial.macs
    ks = canonicalize_spatial(kernel, len(direct.input_shape) - 1, "kernel")
    return BottleneckCost(
        direct=direct,
        reduce=reduce,
        spatial=spatial,
        macs_direct=direct.macs,
        macs_bottleneck=macs_b,
        macs_ratio=direct.macs / macs_b,
        weights_direct=direct.weights,
        weights_bottleneck=reduce.weights + spatial.weights,
        filter_ratio=Fraction(1, math.prod(ks)),
    )


def depthwise_cost(
    input_shape: Sequence[int],
    kernel: int | Sequence[int],
    *,
    multiplier: int = 1,
    stride: Any = 1,
    padding: Padding = "SAME",
    dilation: Any = 1,
    bias: bool = True,
    batch: int = 1,
    dtype: Any = "float32",
) -> ConvCost:
    """Analytic cost of a depthwise conv (:func:`jaxconv.depthwise_conv`): :func:`conv_cost`
    with ``groups = C_in`` and ``C_in·multiplier`` output channels, so ``k²·C_in·multiplier``
    weights and ``H_out·W_out·k²·C_in·multiplier`` MACs.

    Args:
      input_shape: one image ``(*spatial, C_in)``.
      kernel: spatial kernel size; an int broadcasts.
      multiplier: filters per input channel.
      stride, padding, dilation, bias, batch, dtype: as for :func:`conv_cost`.

    Returns:
      A :class:`ConvCost`.

    Examples:
      MobileNet's first depthwise layer (112×112×32, 3×3):

      >>> c = depthwise_cost((112, 112, 32), 3, bias=False)
      >>> c.output_shape, c.weights, c.macs
      ((112, 112, 32), 288, 3612672)
    """
    input_shape = tuple(int(v) for v in input_shape)
    if len(input_shape) < 2:
        raise ValueError(f"`input_shape` must be one image (*spatial, C_in), got {input_shape!r}")
    (multiplier,) = canonicalize_spatial(multiplier, 1, "multiplier")
    c_in = input_shape[-1]
    return conv_cost(
        input_shape,
        c_in * multiplier,
        kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=c_in,
        bias=bias,
        batch=batch,
        dtype=dtype,
    )


@dataclass(frozen=True)
class SeparableCost:
    """A standard k×k conv against a depthwise k×k followed by a 1×1 pointwise conv.

    Attributes:
      standard: cost of the standard conv (``C_in → C_out``, k×k).
      depthwise: cost of the depthwise conv (``C_in → C_in·multiplier``).
      pointwise: cost of the 1×1 conv (``C_in·multiplier → C_out``).
      macs_standard / macs_separable: MAC totals.
      macs_ratio: ``macs_separable / macs_standard`` exactly; MobileNet's eq. (5),
        ``1/N + 1/D_k²`` for ``multiplier = 1`` (N = ``C_out``).
      weights_standard / weights_separable: kernel elements (no bias).
      weights_ratio: ``weights_separable / weights_standard`` exactly (the same ``1/N + 1/D_k²``
        for ``multiplier = 1``).

    Examples:
      >>> s = separable_cost((14, 14, 512), 512, 3)   # MobileNet's 14×14×512 layers
      >>> s.macs_ratio == Fraction(1, 512) + Fraction(1, 9)
      True
    """

    standard: ConvCost
    depthwise: ConvCost
    pointwise: ConvCost
    macs_standard: int
    macs_separable: int
    macs_ratio: Fraction
    weights_standard: int
    weights_separable: int
    weights_ratio: Fraction

    @classmethod
    def of(cls, standard: ConvCost, depthwise: ConvCost, pointwise: ConvCost) -> SeparableCost:
        """The comparison of ``depthwise`` + ``pointwise`` against ``standard``, totals and
        exact ratios filled in.

        Examples:
          >>> s = separable_cost((8, 8, 16), 32, 3)
          >>> SeparableCost.of(s.standard, s.depthwise, s.pointwise) == s
          True
        """
        macs = depthwise.macs + pointwise.macs
        weights = depthwise.weights + pointwise.weights
        return cls(
            standard=standard,
            depthwise=depthwise,
            pointwise=pointwise,
            macs_standard=standard.macs,
            macs_separable=macs,
            macs_ratio=Fraction(macs, standard.macs),
            weights_standard=standard.weights,
            weights_separable=weights,
            weights_ratio=Fraction(weights, standard.weights),
        )

    def table(self) -> str:
        """A plain-text comparison of the three layers and the totals.

        Examples:
          >>> print(separable_cost((14, 14, 512), 512, 3, bias=False).table())
          layer                     output     weights            MACs
          standard               14x14x512   2,359,296     462,422,016
          depthwise              14x14x512       4,608         903,168
          1x1 pointwise          14x14x512     262,144      51,380,224
          separable total: 52,283,392 MACs, 266,752 weights; separable/standard = 0.1131 (8.8x)
        """
        rows = [
            ("standard", self.standard),
            ("depthwise", self.depthwise),
            ("1x1 pointwise", self.pointwise),
        ]
        lines = _layer_rows(rows)
        lines.append(
            f"separable total: {self.macs_separable:,} MACs, {self.weights_separable:,} weights; "
            f"separable/standard = {float(self.macs_ratio):.4f} "
            f"({float(1 / self.macs_ratio):.1f}x)"
        )
        return "\n".join(lines)


def separable_cost(
    input_shape: Sequence[int],
    out_channels: int,
    kernel: int | Sequence[int],
    *,
    multiplier: int = 1,
    stride: Any = 1,
    padding: Padding = "SAME",
    dilation: Any = 1,
    bias: bool = True,
    batch: int = 1,
    dtype: Any = "float32",
) -> SeparableCost:
    """Compares a standard k×k conv with a depthwise-separable one (:func:`jaxconv.separable_conv`).

    MobileNet (Howard et al. 2017, §3.1, eq. 5): a depthwise ``D_k×D_k`` conv on ``M``
    channels then a 1×1 to ``N`` costs ``D_k²·M·D_F² + M·N·D_F²`` against the standard
    ``D_k²·M·N·D_F²``, the ratio ``1/N + 1/D_k²`` (``multiplier·(1/N + 1/D_k²)`` with a
    depth multiplier). MACs count every tap (:func:`conv_cost`'s convention), so the ratio is
    exact for any padding and stride — both convs have the same output size.

    Args:
      input_shape: one image ``(*spatial, C_in)``.
      out_channels: ``N``, the output channels of both.
      kernel: ``D_k``, the spatial kernel size; an int broadcasts.
      multiplier: the depthwise conv's filters per input channel.
      stride, padding, dilation: of the standard and the depthwise conv.
      bias, batch, dtype: as for :func:`conv_cost`.

    Returns:
      A :class:`SeparableCost`.

    Examples:
      >>> s = separable_cost((112, 112, 64), 128, 3, stride=2)
      >>> s.macs_standard, s.depthwise.macs, s.pointwise.macs
      (231211008, 1806336, 25690112)
      >>> s.macs_ratio, s.macs_ratio == Fraction(1, 128) + Fraction(1, 3 * 3)
      (Fraction(137, 1152), True)
    """
    kw = dict(bias=bias, batch=batch, dtype=dtype)
    geometry = dict(stride=stride, padding=padding, dilation=dilation)
    standard = conv_cost(input_shape, out_channels, kernel, **geometry, **kw)
    depthwise = depthwise_cost(input_shape, kernel, multiplier=multiplier, **geometry, **kw)
    pointwise = conv_cost(depthwise.output_shape, out_channels, 1, padding="VALID", **kw)
    return SeparableCost.of(standard, depthwise, pointwise)


@dataclass(frozen=True)
class ResidualBlockCost:
    """ResNet's bottleneck block against a basic block of two 3×3s at the same channels.

    Attributes:
      bottleneck: the 1×1 reduce, the 3×3 and the 1×1 expand (:class:`ConvCost` each).
      basic: the two 3×3 convs at the block's channels.
      macs_bottleneck, macs_basic: their MACs (every tap; BatchNorm replaces the biases).
      weights_bottleneck, weights_basic: their kernel weights.
      macs_ratio, weights_ratio: basic / bottleneck, exact.

    Examples:
      >>> r = residual_block_cost((7, 7, 2048), 512)   # ResNet-50's last stage
      >>> [c.weights for c in r.bottleneck], r.macs_ratio
      ([1048576, 2359296, 1048576], Fraction(288, 17))
    """

    bottleneck: tuple[ConvCost, ConvCost, ConvCost]
    basic: tuple[ConvCost, ConvCost]
    macs_bottleneck: int
    macs_basic: int
    weights_bottleneck: int
    weights_basic: int
    macs_ratio: Fraction
    weights_ratio: Fraction


def residual_block_cost(
    input_shape: Sequence[int], width: int, *, batch: int = 1, dtype: Any = "float32"
) -> ResidualBlockCost:
    """The seed's comparison in ResNet: a bottleneck block (1×1 to ``width`` → 3×3 → 1×1 back
    to ``C``) against two 3×3 convs at ``C`` channels, for an identity block on ``input_shape``.

    Args:
      input_shape: one image ``(H, W, C)``; the block keeps it.
      width: the bottleneck's inner channels (ResNet-50: C/4).
      batch, dtype: as for :func:`conv_cost`.

    Returns:
      A :class:`ResidualBlockCost`.

    Examples:
      ResNet-50's first stage, 56×56×256 → 64 → 64 → 256, against a basic block at 256:

      >>> r = residual_block_cost((56, 56, 256), 64)
      >>> r.macs_bottleneck, r.macs_basic, round(float(r.macs_ratio), 1)
      (218365952, 3699376128, 16.9)
      >>> r.weights_bottleneck, r.weights_basic, r.weights_ratio
      (69632, 1179648, Fraction(288, 17))
    """
    kw = dict(bias=False, batch=batch, dtype=dtype)
    *spatial, channels = input_shape
    reduce = conv_cost(input_shape, width, 1, padding="VALID", **kw)
    middle = conv_cost((*spatial, width), width, 3, padding=1, **kw)
    expand = conv_cost((*spatial, width), channels, 1, padding="VALID", **kw)
    first = conv_cost(input_shape, channels, 3, padding=1, **kw)
    second = conv_cost(input_shape, channels, 3, padding=1, **kw)
    bottleneck, basic = (reduce, middle, expand), (first, second)
    macs_b, macs_d = sum(c.macs for c in bottleneck), sum(c.macs for c in basic)
    weights_b, weights_d = sum(c.weights for c in bottleneck), sum(c.weights for c in basic)
    return ResidualBlockCost(
        bottleneck=bottleneck,
        basic=basic,
        macs_bottleneck=macs_b,
        macs_basic=macs_d,
        weights_bottleneck=weights_b,
        weights_basic=weights_d,
        macs_ratio=Fraction(macs_d, macs_b),
        weights_ratio=Fraction(weights_d, weights_b),
    )


@dataclass(frozen=True)
class XlaCost:
    """XLA's own cost readout of a compiled function (``compiled.cost_analysis()``).

    XLA counts only the taps that touch real input (taps on padding are skipped), so ``flops``
    is lower than the analytic convention for padded convs.

    XLA cannot see into custom calls (jaxconv's oneDNN convs are FFI custom calls): it counts
    each as -1 flop and -1 byte. ``flops`` and ``bytes_accessed`` leave them out (the -1s
    undone), and ``uncounted_calls`` says how many there were: with any, the counts cover
    XLA's own ops only.

    Attributes:
      flops: XLA's flop count (0.0 where the backend reports none).
      bytes_accessed: XLA's bytes accessed estimate.
      transcendentals: transcendental ops.
      raw: the full dict XLA returned.
      uncounted_calls: custom calls in the optimized program, whose work is not counted.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxconv
      >>> x = jax.ShapeDtypeStruct((1, 8, 8, 4), jnp.float32)
      >>> w = jax.ShapeDtypeStruct((3, 3, 4, 4), jnp.float32)
      >>> def conv(padding):
      ...     return lambda x, w: jaxconv.conv(x, w, padding=padding, implementation="xla")
      >>> xla_cost(conv("VALID"), x, w).flops == conv_cost((8, 8, 4), 4, 3, padding="VALID").flops
      True
      >>> xla_cost(conv("SAME"), x, w).flops < conv_cost((8, 8, 4), 4, 3).flops  # pads skipped
      True
    """

    flops: float
    bytes_accessed: float
    transcendentals: float
    raw: dict
    uncounted_calls: int = 0


def xla_cost(fn: Callable, *args: Any, **kwargs: Any) -> XlaCost:
    """Compiles ``jax.jit(fn)`` for ``args`` and reads XLA's ``cost_analysis()``.

    Only shapes and dtypes of ``args`` matter (``jax.ShapeDtypeStruct`` works); nothing runs.

    Args:
      fn: a function of arrays (already jitted or not).
      *args, **kwargs: example arguments.

    Returns:
      An :class:`XlaCost`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> x = jax.ShapeDtypeStruct((1, 8, 8, 4), jnp.float32)
      >>> w = jax.ShapeDtypeStruct((4, 16), jnp.float32)
      >>> xla_cost(lambda x, w: jnp.einsum("nhwc,co->nhwo", x, w), x, w).flops
      8192.0
    """
    import jax

    jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
    kwargs = {k: as_array(v, k) for k, v in kwargs.items()}
    return compiled_cost(jitted.lower(*as_arrays(args), **kwargs).compile())


def compiled_cost(compiled: Any) -> XlaCost:
    """XLA's ``cost_analysis()`` of an already compiled function, as an :class:`XlaCost`.

    :func:`xla_cost` compiles and then reads this; a caller that already holds the executable
    (bench reads it of the executables it times) calls it directly, so nothing is compiled
    twice.

    Args:
      compiled: what ``jax.jit(fn).lower(*args).compile()`` returns (a ``jax.stages.Compiled``).

    Returns:
      An :class:`XlaCost`; custom calls (oneDNN convs) are counted in ``uncounted_calls``, not
      in ``flops`` or ``bytes_accessed``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> compiled = jax.jit(jnp.dot).lower(jnp.ones((4, 8)), jnp.ones((8, 2))).compile()
      >>> compiled_cost(compiled).flops
      128.0
    """
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older jaxlibs return one dict per computation
        analysis = analysis[0] if analysis else {}
    analysis = dict(analysis or {})
    calls = compiled.as_text().count(" custom-call(")
    return XlaCost(
        flops=float(analysis.get("flops", 0.0)) + calls,
        bytes_accessed=float(analysis.get("bytes accessed", 0.0)) + calls,
        transcendentals=float(analysis.get("transcendentals", 0.0)),
        raw=analysis,
        uncounted_calls=calls,
    )
