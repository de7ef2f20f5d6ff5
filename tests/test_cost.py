"""Cost model: the seed's numbers, groups-aware MACs, bytes per dtype, XLA's readout beside ours.

Expected values are written out as the products they come from (the papers' convention: every
kernel tap at every output position, ``H_out·W_out·C_out·(C_in/groups)·kh·kw``).
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference

import jaxconv


# --- the seed's example: Inception 4a, 5x5 branch (14x14x480 -> 48 maps, 16-channel reduce) ---
def test_seed_direct_5x5():
    c = jaxconv.conv_cost((14, 14, 480), 48, 5, bias=False)
    assert c.output_shape == (14, 14, 48)
    assert c.macs == (14 * 14 * 48) * (5 * 5 * 480) == 112_896_000  # "112.9M"
    assert c.weights == c.params == 5 * 5 * 480 * 48 == 576_000
    assert c.flops == 2 * c.macs


def test_seed_bottleneck_numbers():
    b = jaxconv.bottleneck_cost((14, 14, 480), 48, 5, 16)
    assert b.macs_direct == 112_896_000
    assert b.reduce.macs == (14 * 14 * 16) * (1 * 1 * 480) == 1_505_280
    assert b.spatial.macs == (14 * 14 * 48) * (5 * 5 * 16) == 3_763_200
    assert b.macs_bottleneck == 1_505_280 + 3_763_200 == 5_268_480  # "5.3M"
    assert b.macs_ratio == pytest.approx(112_896_000 / 5_268_480)
    assert round(b.macs_ratio, 1) == 21.4
    assert b.weights_direct == 576_000
    assert b.weights_bottleneck == 480 * 16 + 5 * 5 * 16 * 48 == 26_880
    assert b.filter_ratio == Fraction(1, 25)  # "reduces (1/25) times"
    table = b.table()
    for text in ("112,896,000", "1,505,280", "3,763,200", "5,268,480", "21.4x", "26,880"):
        assert text in table


def test_bottleneck_cost_inception_3a_3x3_branch():
    # GoogLeNet Table 1, inception (3a): 28x28x192, "#3x3 reduce" 96, "#3x3" 128.
    b = jaxconv.bottleneck_cost((28, 28, 192), 128, 3, 96)
    assert b.macs_direct == 28 * 28 * 128 * 3 * 3 * 192 == 173_408_256
    assert b.reduce.macs == 28 * 28 * 96 * 192
    assert b.spatial.macs == 28 * 28 * 128 * 3 * 3 * 96
    assert b.macs_bottleneck == 14_450_688 + 86_704_128
    assert b.filter_ratio == Fraction(1, 9)


# --- groups, stride, batch, bias, N-d --------------------------------------------------------
@pytest.mark.parametrize(
    "groups, c_out, macs, weights",
    [
        (1, 32, 8 * 8 * 32 * 16 * 9, 3 * 3 * 16 * 32),
        (4, 32, 8 * 8 * 32 * 4 * 9, 3 * 3 * 4 * 32),
        (16, 16, 8 * 8 * 16 * 1 * 9, 3 * 3 * 1 * 16),  # depthwise
        (16, 32, 8 * 8 * 32 * 1 * 9, 3 * 3 * 1 * 32),  # depthwise, multiplier 2
    ],
)
def test_groups_aware_macs(groups, c_out, macs, weights):
    c = jaxconv.conv_cost((8, 8, 16), c_out, 3, groups=groups)
    assert c.macs == macs
    assert c.weights == weights
    assert c.params == weights + c_out


def test_stride_padding_batch_and_ndim():
    c = jaxconv.conv_cost((29, 29, 8), 4, 3, stride=2, padding="VALID", batch=3)
    assert c.output_shape == (14, 14, 4)
    assert c.macs == 3 * (14 * 14 * 4) * (3 * 3 * 8)
    c1 = jaxconv.conv_cost((100, 6), 12, 7, padding="VALID")  # 1-D
    assert c1.output_shape == (94, 12)
    assert c1.macs == 94 * 12 * 7 * 6
    c3 = jaxconv.conv_cost((8, 8, 8, 2), 4, (1, 3, 3), stride=(1, 2, 2))  # 3-D, SAME
    assert c3.output_shape == (8, 4, 4, 4)
    assert c3.macs == (8 * 4 * 4 * 4) * (1 * 3 * 3 * 2)
    # input dilation: 5 -> 9 samples, VALID 3 -> 7
    c4 = jaxconv.conv_cost((5, 5, 1), 1, 3, padding="VALID", input_dilation=2)
    assert c4.output_shape == (7, 7, 1)


# --- bytes and intensity per dtype -----------------------------------------------------------
def test_bytes_and_intensity_float32():
    c = jaxconv.conv_cost((14, 14, 480), 48, 5)  # with bias
    elements = 14 * 14 * 480 + (576_000 + 48) + 14 * 14 * 48
    assert c.bytes == 4 * elements
    assert c.intensity == pytest.approx(2 * 112_896_000 / (4 * elements))
    assert c.dtype == "float32"


@pytest.mark.parametrize("dtype", ["bfloat16", jnp.bfloat16, np.dtype(jnp.bfloat16)])
def test_bytes_for_bfloat16_in_every_spelling(dtype):
    f32 = jaxconv.conv_cost((14, 14, 480), 48, 5)
    bf16 = jaxconv.conv_cost((14, 14, 480), 48, 5, dtype=dtype)
    assert bf16.dtype == "bfloat16"
    assert 2 * bf16.bytes == f32.bytes
    assert bf16.intensity == pytest.approx(2 * f32.intensity)
    assert bf16.macs == f32.macs


@pytest.mark.parametrize(
    "dtype, name, itemsize",
    [(np.float16, "float16", 2), ("float64", "float64", 8), (jnp.int8, "int8", 1)],
)
def test_bytes_for_other_dtypes(dtype, name, itemsize):
    c = jaxconv.conv_cost((4, 4, 2), 3, 1, bias=False)
    other = jaxconv.conv_cost((4, 4, 2), 3, 1, bias=False, dtype=dtype)
    assert other.dtype == name
    assert other.bytes == c.bytes // 4 * itemsize == (4 * 4 * 2 + 2 * 3 + 4 * 4 * 3) * itemsize


def test_dtype_of_an_array_is_read():
    c = jaxconv.conv_cost((4, 4, 2), 3, 1, dtype=jnp.zeros((2,), jnp.bfloat16))
    assert c.dtype == "bfloat16"


def test_conv_cost_errors():
    with pytest.raises(TypeError, match=r"`dtype` must be a dtype or a dtype name, got 'floaty'"):
        jaxconv.conv_cost((4, 4, 2), 3, 1, dtype="floaty")
    with pytest.raises(ValueError, match=r"`groups` \(=3\) must divide the input channels \(=8\)"):
        jaxconv.conv_cost((4, 4, 8), 6, 1, groups=3)
    with pytest.raises(ValueError, match=r"`input_shape` must be one image \(\*spatial, C_in\)"):
        jaxconv.conv_cost((8,), 3, 1)
    with pytest.raises(ValueError, match=r"the kernel \(=5\) must fit in the padded input \(=4"):
        jaxconv.conv_cost((4, 4, 2), 3, 5, padding="VALID")


# --- XLA's own numbers, beside ours under their own name -------------------------------------
def _in_bounds_taps(spatial, kernel, padding, stride=1):
    """Kernel taps that land on real input, summed over output positions: a float64 conv of
    all-ones through an all-ones kernel (one channel)."""
    ones = np.ones((1, *spatial, 1))
    w = np.ones((*kernel, 1, 1))
    return int(reference.conv(ones, w, padding=padding, stride=stride).sum())


@pytest.mark.parametrize("groups", [1, 4])
def test_xla_flops_equal_ours_for_valid(groups):
    x = jax.ShapeDtypeStruct((2, 14, 14, 16), jnp.float32)
    w = jax.ShapeDtypeStruct((5, 5, 16 // groups, 8), jnp.float32)
    ours = jaxconv.conv_cost(
        (14, 14, 16), 8, 5, padding="VALID", groups=groups, batch=2, bias=False
    )
    # implementation="xla": one lax.conv_general_dilated, the op XLA's cost model describes
    # (another lowering, e.g. a oneDNN custom call, is opaque to it)
    xla = jaxconv.xla_cost(
        lambda x, w: jaxconv.conv(x, w, padding="VALID", groups=groups, implementation="xla"), x, w
    )
    assert xla.flops == ours.flops
    assert xla.bytes_accessed == ours.bytes  # each operand read/written once, no bias
    assert xla.transcendentals == 0.0
    assert "flops" in xla.raw


@pytest.mark.parametrize("padding, stride", [("SAME", 1), (2, 1), ("SAME", 2)])
def test_xla_flops_skip_padding_taps(padding, stride):
    # Documented difference: XLA counts only taps on real input, so for a padded conv its flops
    # are LOWER than the papers' convention (every tap at every output position).
    x = jax.ShapeDtypeStruct((2, 14, 14, 16), jnp.float32)
    w = jax.ShapeDtypeStruct((5, 5, 16, 8), jnp.float32)
    ours = jaxconv.conv_cost((14, 14, 16), 8, 5, padding=padding, stride=stride, batch=2)
    xla = jaxconv.xla_cost(
        jax.jit(
            lambda x, w: jaxconv.conv(x, w, padding=padding, stride=stride, implementation="xla")
        ),
        x,
        w,
    )
    assert xla.flops < ours.flops
    real_taps = _in_bounds_taps((14, 14), (5, 5), padding, stride)
    assert xla.flops == 2 * 2 * 16 * 8 * real_taps


def test_xla_cost_of_a_pointwise_conv_matches_ours():
    x = jax.ShapeDtypeStruct((1, 8, 8, 4), jnp.float32)
    w = jax.ShapeDtypeStruct((4, 16), jnp.float32)
    # XLA counts only what it runs: the einsum plan (a oneDNN call is one opaque custom call)
    xla = jaxconv.xla_cost(functools.partial(jaxconv.conv1x1, implementation="einsum"), x, w)
    assert xla.flops == jaxconv.conv_cost((8, 8, 4), 16, 1, bias=False).flops == 2 * 64 * 4 * 16


def test_xla_cost_leaves_out_custom_calls_and_says_so():
    """XLA counts a custom call (a oneDNN conv) as -1 flop; xla_cost undoes that and counts
    the calls, so a fused program's own ops are still counted right."""
    x = jax.ShapeDtypeStruct((1, 8, 8, 16), jnp.float32)
    w = jax.ShapeDtypeStruct((1, 1, 16, 8), jnp.float32)
    plain = jaxconv.xla_cost(lambda x, w: jaxconv.conv(x, w, implementation="xla"), x, w)
    assert (plain.flops, plain.uncounted_calls) == (2 * 64 * 16 * 8, 0)
    if jaxconv.convolution.available(jaxconv.convolution.conv_spec(x, w))["onednn"] is not None:
        pytest.skip("the oneDNN extension is not loaded here")
    alone = jaxconv.xla_cost(lambda x, w: jaxconv.conv(x, w, implementation="onednn"), x, w)
    assert (alone.flops, alone.bytes_accessed, alone.uncounted_calls) == (0.0, 0.0, 1)
    doubled = jaxconv.xla_cost(lambda x, w: 2 * jaxconv.conv(x, w, implementation="onednn"), x, w)
    assert (doubled.flops, doubled.uncounted_calls) == (64 * 8, 1)


def test_residual_block_cost_is_what_the_modules_run():
    """The cost helper's bottleneck and basic block equal jaxconv.nn's blocks, summed by
    jaxconv.nn.summary (which counts the modules that actually ran)."""
    from flax import nnx

    from jaxconv.nn import BasicBlock, ResNetBottleneck, summary

    r = jaxconv.residual_block_cost((14, 14, 256), 64, batch=2)
    x = jax.ShapeDtypeStruct((2, 14, 14, 256), jnp.float32)
    bottleneck = nnx.eval_shape(lambda: ResNetBottleneck(256, 64, rngs=nnx.Rngs(0)))
    basic = nnx.eval_shape(lambda: BasicBlock(256, 256, rngs=nnx.Rngs(0)))
    assert summary(bottleneck, x, xla=None).total.macs == r.macs_bottleneck
    assert summary(basic, x, xla=None).total.macs == r.macs_basic
    assert r.macs_ratio == r.weights_ratio == Fraction(288, 17)  # same maps: MACs ∝ weights


def test_conv_transpose_cost_counts_every_input_pixel_times_every_tap():
    x = jax.ShapeDtypeStruct((3, 7, 9, 8), jnp.float32)
    w = jax.ShapeDtypeStruct((3, 2, 4, 6), jnp.float32)  # groups=2: [kh, kw, C_in/g, C_out]
    kw = dict(stride=(2, 3), padding=1, output_padding=(1, 0), dilation=(1, 2), groups=2)
    c = jaxconv.conv_transpose_cost((7, 9, 8), 6, (3, 2), batch=3, bias=False, **kw)
    y = jax.eval_shape(lambda x, w: jaxconv.conv_transpose(x, w, **kw), x, w)
    assert (3, *c.output_shape) == y.shape
    assert c.weights == 3 * 2 * 4 * 6 and c.macs == 3 * 7 * 9 * c.weights
    assert c.bytes == (3 * 7 * 9 * 8 + 3 * math.prod(c.output_shape) + c.params) * 4
    with pytest.raises(ValueError, match=r"`groups` \(=3\) must divide the input channels"):
        jaxconv.conv_transpose_cost((7, 7, 8), 6, 3, groups=3)
