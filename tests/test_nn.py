"""jaxconv.nn: the NNX modules against independent computations, their trees and their errors."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tol
from flax import nnx
from test_models import materialize

import jaxconv
from jaxconv.nn import (
    Bottleneck,
    Conv,
    Conv1x1,
    ConvBN,
    Inception,
    MLPConv,
    PoolProjection,
    VarianceScaling,
    local_response_norm,
)

#: Inception (3a) of Table 1, at a small channel count so the tests stay fast.
SMALL_WIDTHS = (4, 3, 6, 2, 5, 3)


def param_paths(module) -> list[str]:
    return sorted(".".join(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(module, nnx.Param)))


def randn(rng, *shape):
    return jnp.asarray(rng.standard_normal(shape), jnp.float32)


def abstract_call(module, shape, dtype=jnp.float32):
    """``module(x)``'s shape and dtype for an ``x`` of ``shape``, without computing."""
    return nnx.eval_shape(lambda m, x: m(x), module, jax.ShapeDtypeStruct(shape, dtype))


# --- Conv ------------------------------------------------------------------------------------


def test_conv_int_kernel_is_square_2d_and_matches_flax(rng):
    conv = Conv(3, 5, 3, stride=2, rngs=nnx.Rngs(0))
    assert conv.kernel.shape == (3, 3, 3, 5)
    flax_conv = nnx.Conv(3, 5, (3, 3), strides=2, padding="SAME", rngs=nnx.Rngs(1))
    conv.bias[...] = randn(rng, 5)
    flax_conv.kernel[...] = conv.kernel[...]
    flax_conv.bias[...] = conv.bias[...]
    x = randn(rng, 2, 9, 9, 3)
    y = conv(x)
    assert y.shape == (2, 5, 5, 5)
    np.testing.assert_allclose(y, flax_conv(x), atol=tol("float32", 27), rtol=0)


@pytest.mark.parametrize(
    "kernel_size, x_shape, out_shape",
    [
        ((3,), (2, 10, 4), (2, 10, 6)),
        ((3, 1), (2, 6, 5, 4), (2, 6, 5, 6)),
        ((1, 3, 3), (1, 4, 5, 5, 4), (1, 4, 5, 5, 6)),
    ],
)
def test_conv_tuple_kernel_gives_1d_2d_3d(kernel_size, x_shape, out_shape):
    conv = nnx.eval_shape(lambda: Conv(4, 6, kernel_size, rngs=nnx.Rngs(0)))
    assert conv.kernel.shape == (*kernel_size, 4, 6)
    assert abstract_call(conv, x_shape).shape == out_shape


def test_conv_forwards_every_argument_to_jaxconv_conv(rng):
    conv = materialize(
        lambda: Conv(
            4,
            6,
            (3, 2),
            stride=(2, 1),
            padding=((1, 0), (0, 1)),
            dilation=(1, 2),
            groups=2,
            rngs=nnx.Rngs(3),
        )
    )
    assert conv.kernel.shape == (3, 2, 2, 6)
    x = randn(rng, 2, 7, 6, 4)
    want = jaxconv.conv(
        x,
        conv.kernel[...],
        conv.bias[...],
        stride=(2, 1),
        padding=((1, 0), (0, 1)),
        dilation=(1, 2),
        groups=2,
    )
    np.testing.assert_array_equal(conv(x), want)


def test_conv_input_dilation_and_preferred_element_type_reach_jaxconv_conv(rng):
    conv = materialize(
        lambda: Conv(
            4,
            6,
            (3, 2),
            input_dilation=(2, 3),
            padding=((1, 1), (0, 1)),
            preferred_element_type=jnp.float32,
            rngs=nnx.Rngs(3),
        )
    )
    assert conv.input_dilation == (2, 3) and conv.preferred_element_type == jnp.float32
    x = randn(rng, 2, 5, 4, 4)
    y = conv(x)
    assert y.shape == (2, 9 + 2 - 2, 10 + 1 - 1, 6)
    want = jaxconv.conv(
        x,
        conv.kernel[...],
        conv.bias[...],
        padding=((1, 1), (0, 1)),
        input_dilation=(2, 3),
        preferred_element_type=jnp.float32,
    )
    np.testing.assert_array_equal(y, want)
    # Input dilation inserts zeros: the same conv on an explicitly dilated input.
    dilated = jnp.zeros((2, 9, 10, 4)).at[:, ::2, ::3].set(x)
    plain = jaxconv.conv(dilated, conv.kernel[...], conv.bias[...], padding=((1, 1), (0, 1)))
    np.testing.assert_allclose(y, plain, atol=tol("float32", 24), rtol=0)
    # Defaults keep today's behaviour.
    default = nnx.eval_shape(lambda: Conv(4, 6, 3, rngs=nnx.Rngs(0)))
    assert default.input_dilation == (1, 1) and default.preferred_element_type is None


def test_conv_preferred_element_type_sets_the_output_dtype():
    half = nnx.eval_shape(
        lambda: Conv(
            3,
            4,
            3,
            param_dtype=jnp.bfloat16,
            preferred_element_type=jnp.float32,
            rngs=nnx.Rngs(0),
        )
    )
    assert abstract_call(half, (1, 5, 5, 3), jnp.bfloat16).dtype == jnp.float32
    plain = nnx.eval_shape(lambda: Conv(3, 4, 3, param_dtype=jnp.bfloat16, rngs=nnx.Rngs(0)))
    assert abstract_call(plain, (1, 5, 5, 3), jnp.bfloat16).dtype == jnp.bfloat16


def test_conv_cost_with_input_dilation_counts_the_dilated_input():
    conv = nnx.eval_shape(lambda: Conv(8, 4, 3, input_dilation=2, use_bias=False, rngs=nnx.Rngs(0)))
    cost = conv.cost((2, 7, 7, 8))
    assert cost == jaxconv.conv_cost((7, 7, 8), 4, 3, input_dilation=2, bias=False, batch=2)
    assert cost.output_shape == (13, 13, 4)  # SAME on the dilated size (7-1)·2 + 1
    assert cost.macs == 2 * 13 * 13 * 9 * 8 * 4


def test_conv_without_bias_and_dtype_promotion():
    conv = nnx.eval_shape(
        lambda: Conv(3, 4, 3, use_bias=False, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    )
    assert conv.bias is None
    assert param_paths(conv) == ["kernel"]
    assert conv.kernel.dtype == jnp.float32
    assert abstract_call(conv, (1, 5, 5, 3)).dtype == jnp.bfloat16
    half = nnx.eval_shape(lambda: Conv(3, 4, 3, param_dtype=jnp.bfloat16, rngs=nnx.Rngs(0)))
    assert half.kernel.dtype == jnp.bfloat16
    assert abstract_call(half, (1, 5, 5, 3), jnp.bfloat16).dtype == jnp.bfloat16
    assert abstract_call(half, (1, 5, 5, 3)).dtype == jnp.float32  # promoted, not truncated


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: Conv(4, 6, 3, rngs=nnx.Rngs(2), **kw),
        lambda **kw: Conv1x1(4, 6, rngs=nnx.Rngs(2), **kw),
    ],
)
def test_conv_activation_is_applied_after_the_bias_and_adds_no_parameters(rng, make):
    plain, relu = make(), make(activation=jax.nn.relu)
    assert plain.activation is None  # the default keeps the old numerics
    assert param_paths(plain) == param_paths(relu) == ["bias", "kernel"]
    plain.bias[...] = relu.bias[...] = randn(rng, 6)
    x = randn(rng, 2, 5, 5, 4)
    np.testing.assert_array_equal(relu(x), jax.nn.relu(plain(x)))
    with pytest.raises(TypeError, match=r"`activation` must be a callable or None, got 'relu'"):
        make(activation="relu")


@pytest.mark.parametrize(
    "padding, stored",
    [
        ("same", "SAME"),
        ("REFLECT", "REFLECT"),
        (1, ((1, 1), (1, 1))),
        ([2, (0, 1)], ((2, 2), (0, 1))),
    ],
)
def test_conv_stores_the_canonical_padding(padding, stored):
    conv = nnx.eval_shape(lambda: Conv(4, 6, 3, padding=padding, rngs=nnx.Rngs(0)))
    assert conv.padding == stored
    hash(conv.padding)  # static configuration is hashable


def test_conv_cost_uses_the_cost_model():
    conv = nnx.eval_shape(lambda: Conv(480, 48, 5, use_bias=False, rngs=nnx.Rngs(0)))
    cost = conv.cost((2, 14, 14, 480))
    assert cost == jaxconv.conv_cost((14, 14, 480), 48, 5, bias=False, batch=2)
    assert cost.macs == 2 * 14 * 14 * 48 * 480 * 25


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (
            dict(in_features=6, out_features=4, kernel_size=3, groups=4),
            ValueError,
            r"`groups` \(=4\) must divide `in_features` \(=6\)",
        ),
        (
            dict(in_features=4, out_features=6, kernel_size=3, groups=4),
            ValueError,
            r"`groups` \(=4\) must divide `out_features` \(=6\)",
        ),
        (
            dict(in_features=0, out_features=4, kernel_size=3),
            ValueError,
            r"`in_features` must be a positive int, got 0",
        ),
        (
            dict(in_features=4.0, out_features=4, kernel_size=3),
            TypeError,
            r"`in_features` must be an int, got 4.0",
        ),
        (
            dict(in_features=4, out_features=4, kernel_size=(3, 3, 3, 3)),
            ValueError,
            r"`kernel_size` must be an int \(square 2-D kernel\) or 1-3 ints",
        ),
        (
            dict(in_features=4, out_features=4, kernel_size=0),
            ValueError,
            r"`kernel_size` must be a positive int, got 0",
        ),
        (
            dict(in_features=4, out_features=4, kernel_size=3, padding="FULL"),
            ValueError,
            r"`padding` must be one of",
        ),
        (
            dict(in_features=4, out_features=4, kernel_size=3, stride=(1, 2, 3)),
            ValueError,
            r"`stride` must have one entry per spatial dim \(2\)",
        ),
        (
            dict(in_features=4, out_features=4, kernel_size=3, implementation="cudnn"),
            ValueError,
            r"`implementation` must be None or one of",
        ),
        (
            dict(in_features=4, out_features=4, kernel_size=3, dtype="float33"),
            TypeError,
            r"`dtype` must be None or a dtype",
        ),
        (
            dict(in_features=4, out_features=4, kernel_size=3, preferred_element_type="int33"),
            TypeError,
            r"`preferred_element_type` must be None or a dtype",
        ),
        (
            dict(in_features=4, out_features=4, kernel_size=3, input_dilation=0),
            ValueError,
            r"`input_dilation`",
        ),
        (
            dict(in_features=4, out_features=4, kernel_size=3, input_dilation=(1, 2, 3)),
            ValueError,
            r"`input_dilation` must have one entry per spatial dim \(2\)",
        ),
    ],
)
def test_conv_constructor_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        Conv(**kwargs, rngs=nnx.Rngs(0))


@pytest.mark.parametrize(
    "make",
    [
        lambda: Conv(8, 4, 3, rngs=nnx.Rngs(0)),
        lambda: Conv1x1(8, 4, rngs=nnx.Rngs(0)),
        lambda: ConvBN(8, 4, 3, rngs=nnx.Rngs(0)),
        lambda: Inception(8, SMALL_WIDTHS, rngs=nnx.Rngs(0)),
        lambda: Inception(8, SMALL_WIDTHS, fuse_1x1=True, rngs=nnx.Rngs(0)),
        lambda: MLPConv(8, (4, 4), 3, rngs=nnx.Rngs(0)),
    ],
)
def test_wrong_channel_count_names_expected_and_received(make):
    module = nnx.eval_shape(make)  # abstract parameters: the check runs before any compute
    with pytest.raises(ValueError, match=r"expects `x` with 8 input channels .* got 5 channels"):
        module(jnp.ones((1, 6, 6, 5)))


# --- Conv1x1 ---------------------------------------------------------------------------------


def test_conv1x1_has_conv_tree_and_matches_conv(rng):
    pointwise = Conv1x1(6, 4, rngs=nnx.Rngs(7))
    conv = Conv(6, 4, 1, rngs=nnx.Rngs(7))
    assert param_paths(pointwise) == param_paths(conv) == ["bias", "kernel"]
    # Same tree, same draws: the same rngs give the same parameters.
    np.testing.assert_array_equal(pointwise.kernel[...], conv.kernel[...])
    pointwise.bias[...] = randn(rng, 4)
    conv.bias[...] = pointwise.bias[...]
    x = randn(rng, 2, 5, 5, 6)
    np.testing.assert_allclose(pointwise(x), conv(x), atol=tol("float32", 6), rtol=0)
    want = np.einsum(
        "nhwc,co->nhwo", np.asarray(x, np.float64), np.asarray(pointwise.matrix(), np.float64)
    ) + np.asarray(pointwise.bias[...])
    np.testing.assert_allclose(pointwise(x), want, atol=tol("float32", 6), rtol=0)


def test_conv1x1_any_leading_dims_and_cost():
    pointwise = Conv1x1(6, 4, use_bias=False, rngs=nnx.Rngs(0))
    assert pointwise(jnp.ones((3, 6))).shape == (3, 4)
    assert pointwise(jnp.ones((2, 3, 5, 7, 6))).shape == (2, 3, 5, 7, 4)
    assert pointwise.cost((2, 14, 14, 6)).macs == 2 * 14 * 14 * 6 * 4
    assert pointwise.cost((2, 14, 14, 6)).params == 24


# --- ConvBN ----------------------------------------------------------------------------------


def test_convbn_train_normalizes_and_updates_stats_eval_uses_them(rng):
    unit = ConvBN(3, 4, 3, activation=None, rngs=nnx.Rngs(0))
    assert param_paths(unit) == ["bn.bias", "bn.scale", "conv.kernel"]
    assert unit.conv.bias is None
    x = 3.0 + randn(rng, 4, 6, 6, 3)
    y = unit(x)  # training mode (NNX's default)
    np.testing.assert_allclose(jnp.mean(y, axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(jnp.var(y, axis=(0, 1, 2)), 1.0, rtol=1e-2)
    conv_out = unit.conv(x)
    np.testing.assert_allclose(
        unit.bn.mean[...], 0.1 * jnp.mean(conv_out, axis=(0, 1, 2)), rtol=1e-4, atol=1e-6
    )
    trained_mean = np.asarray(unit.bn.mean[...])
    unit.eval()
    y_eval = unit(x)
    want = conv_out / jnp.sqrt(unit.bn.var[...].reshape(1, 1, 1, 4) + 1e-5) - unit.bn.mean[
        ...
    ].reshape(1, 1, 1, 4) / jnp.sqrt(unit.bn.var[...].reshape(1, 1, 1, 4) + 1e-5)
    np.testing.assert_allclose(y_eval, want, rtol=1e-4, atol=1e-4)
    assert not np.allclose(y_eval, y, atol=1e-2)
    np.testing.assert_array_equal(unit.bn.mean[...], trained_mean)  # eval leaves the stats


def test_convbn_activation_is_applied_last(rng):
    unit = ConvBN(3, 4, 3, rngs=nnx.Rngs(0))
    y = unit(randn(rng, 2, 5, 5, 3))
    assert float(jnp.min(y)) == 0.0
    with pytest.raises(TypeError, match=r"`activation` must be a callable or None, got 'relu'"):
        ConvBN(3, 4, 3, activation="relu", rngs=nnx.Rngs(0))


# --- Inception -------------------------------------------------------------------------------


def test_inception_paths_match_the_checkpoint_format():
    block = nnx.eval_shape(lambda: Inception(8, SMALL_WIDTHS, rngs=nnx.Rngs(0)))
    assert param_paths(block) == [
        "branch_1x1.bias",
        "branch_1x1.kernel",
        "branch_3x3.conv.bias",
        "branch_3x3.conv.kernel",
        "branch_3x3.reduce.bias",
        "branch_3x3.reduce.kernel",
        "branch_5x5.conv.bias",
        "branch_5x5.conv.kernel",
        "branch_5x5.reduce.bias",
        "branch_5x5.reduce.kernel",
        "branch_pool.proj.bias",
        "branch_pool.proj.kernel",
    ]
    assert block.branch_3x3.conv.kernel.shape == (3, 3, 3, 6)
    assert block.branch_5x5.conv.kernel.shape == (5, 5, 2, 5)
    bn = nnx.eval_shape(lambda: Inception(8, SMALL_WIDTHS, norm="batch", rngs=nnx.Rngs(0)))
    assert "branch_5x5.reduce.conv.kernel" in param_paths(bn)
    assert "branch_pool.proj.bn.scale" in param_paths(bn)
    assert not any(p.endswith("conv.bias") for p in param_paths(bn))


def test_inception_output_is_the_branches_concatenated(rng):
    block = materialize(lambda: Inception(8, SMALL_WIDTHS, rngs=nnx.Rngs(0)))
    assert block.out_features == 4 + 6 + 5 + 3
    x = randn(rng, 2, 6, 6, 8)
    y = block(x)
    assert y.shape == (2, 6, 6, 18)
    relu = jax.nn.relu
    parts = [
        relu(block.branch_1x1(x)),
        relu(block.branch_3x3.conv(relu(block.branch_3x3.reduce(x)))),
        relu(block.branch_5x5.conv(relu(block.branch_5x5.reduce(x)))),
        relu(block.branch_pool.proj(jaxconv.max_pool(x, 3, stride=1, padding="SAME"))),
    ]
    np.testing.assert_allclose(y, jnp.concatenate(parts, axis=-1), atol=tol("float32", 50), rtol=0)


@pytest.mark.parametrize(
    "norm, widths",
    [
        (None, SMALL_WIDTHS),
        (None, (4, 0, 6, 0, 5, 3)),  # no reduce at all: only branch_1x1 is pointwise
        ("batch", (4, 3, 6, 0, 5, 3)),
    ],
)
def test_inception_fused_equals_unfused(rng, norm, widths):
    unfused = Inception(8, widths, norm=norm, rngs=nnx.Rngs(5))
    fused = Inception(8, widths, norm=norm, fuse_1x1=True, rngs=nnx.Rngs(5))
    # An execution choice, not a parameterization: same tree, same values.
    a, b = nnx.state(unfused, nnx.Param), nnx.state(fused, nnx.Param)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    x = randn(rng, 2, 5, 5, 8)
    np.testing.assert_allclose(fused(x), unfused(x), atol=tol("float32", 200), rtol=0)
    if norm == "batch":  # the batch statistics are updated identically too
        jax.tree.map(
            # 0.1 (momentum 0.9) times a mean of outputs that agree to tol(·, 200)
            lambda u, f: np.testing.assert_allclose(u, f, atol=0.1 * tol("float32", 200)),
            nnx.state(unfused, nnx.BatchStat),
            nnx.state(fused, nnx.BatchStat),
        )


def test_fuse_1x1_is_switched_on_a_built_model_with_set_attributes(rng):
    from jaxconv.models import MiniInception

    model = materialize(lambda: MiniInception(rngs=nnx.Rngs(0)))
    model.eval()
    x = randn(rng, 1, 16, 16, 3)
    unfused = model(x)
    model.set_attributes(fuse_1x1=True)
    assert model.inception_a.fuse_1x1 and model.inception_d.fuse_1x1
    np.testing.assert_allclose(model(x), unfused, atol=tol("float32", 500), rtol=0)


def test_inception_reduce_width_zero_reads_the_block_input():
    block = nnx.eval_shape(lambda: Inception(8, (4, 3, 6, 0, 5, 3), rngs=nnx.Rngs(0)))
    assert block.branch_5x5.reduce is None
    assert block.branch_5x5.conv.kernel.shape == (5, 5, 8, 5)
    assert not any(p.startswith("branch_5x5.reduce") for p in param_paths(block))
    assert abstract_call(block, (1, 6, 6, 8)).shape == (1, 6, 6, 18)


def test_inception_jit_and_grad(rng):
    block = Inception(8, SMALL_WIDTHS, fuse_1x1=True, rngs=nnx.Rngs(0))
    x = randn(rng, 1, 5, 5, 8)

    @nnx.jit
    def loss(block, x):
        return jnp.sum(block(x) ** 2)

    grads = nnx.grad(loss)(block, x)
    np.testing.assert_allclose(loss(block, x), jnp.sum(block(x) ** 2), rtol=5 * tol("float32"))
    leaves = jax.tree.leaves(nnx.state(grads, nnx.Param))
    assert len(leaves) == 12
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert float(jnp.abs(grads.branch_5x5.reduce.kernel[...]).sum()) > 0


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_concat_channels_is_concatenate_in_value_and_derivative(rng, dtype):
    """16-bit floats are concatenated as their bits (XLA:CPU copies them slowly as floats):
    the same bits as jnp.concatenate, NaN payloads and -0.0 included; forward and reverse
    mode as the plain concatenate's."""
    from jaxconv.nn._inception import concat_channels

    ys = [jnp.asarray(rng.standard_normal((2, 3, 3, c)), dtype) for c in (4, 1, 5)]
    ys[1] = ys[1].at[0, 0, 0, 0].set(jnp.nan).at[0, 0, 1, 0].set(-0.0)
    got, want = concat_channels(ys), jnp.concatenate(ys, axis=-1)
    assert got.dtype == want.dtype
    bits = jnp.uint16 if want.dtype.itemsize == 2 else jnp.uint32
    np.testing.assert_array_equal(
        jax.lax.bitcast_convert_type(got, bits), jax.lax.bitcast_convert_type(want, bits)
    )
    ct = jnp.asarray(rng.standard_normal(want.shape), dtype)
    for a, b in zip(
        jax.vjp(concat_channels, ys)[1](ct)[0],
        jax.vjp(lambda v: jnp.concatenate(v, axis=-1), ys)[1](ct)[0],
    ):
        np.testing.assert_array_equal(a, b)
    ts = [jnp.ones_like(y) * (i + 1) for i, y in enumerate(ys)]
    np.testing.assert_array_equal(
        jax.jvp(concat_channels, (ys,), (ts,))[1], jnp.concatenate(ts, axis=-1)
    )


def test_bfloat16_inception_and_max_pool_match_float32(rng):
    """The bfloat16 paths (pool upcast, concatenate as bits) give the float32 result rounded."""
    x = randn(rng, 2, 6, 6, 8)
    pooled = jaxconv.max_pool(x.astype(jnp.bfloat16), 3, stride=2, padding="SAME")
    np.testing.assert_array_equal(
        pooled, jaxconv.max_pool(x, 3, stride=2, padding="SAME").astype(jnp.bfloat16)
    )
    g16 = jax.grad(lambda v: jaxconv.max_pool(v, 3, stride=1, padding="SAME").sum())(
        x.astype(jnp.bfloat16)
    )
    g32 = jax.grad(lambda v: jaxconv.max_pool(v, 3, stride=1, padding="SAME").sum())(
        x.astype(jnp.bfloat16).astype(jnp.float32)
    )
    assert g16.dtype == jnp.bfloat16
    np.testing.assert_array_equal(g16.astype(jnp.float32), g32)
    block = Inception(8, SMALL_WIDTHS, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    ref = Inception(8, SMALL_WIDTHS, rngs=nnx.Rngs(0))
    y16, y32 = block(x), ref(x)
    assert y16.dtype == jnp.bfloat16
    np.testing.assert_allclose(y16.astype(jnp.float32), y32, rtol=0, atol=tol("bfloat16", 8) * 8)


@pytest.mark.parametrize(
    "widths, err, match",
    [
        ((64, 96, 128, 16, 32), ValueError, r"`widths` must be the paper's six numbers .* got 5"),
        ((4, 3, 0, 2, 5, 3), ValueError, r"`widths\[2\] \(#3×3\)` must be a positive int, got 0"),
        ((4, -1, 6, 2, 5, 3), ValueError, r"`widths\[1\] \(#3×3 reduce\)` must be an int >= 0"),
        ((4, 3, 6, 2, 5, 0), ValueError, r"`widths\[5\] \(pool proj\)` must be a positive int"),
        ((4, 3, 6, 2, 5.5, 3), TypeError, r"`widths\[4\] \(#5×5\)` must be an int, got 5.5"),
        (64, ValueError, r"`widths` must be the paper's six numbers .* got 64"),
    ],
)
def test_inception_width_errors(widths, err, match):
    with pytest.raises(err, match=match):
        Inception(8, widths, rngs=nnx.Rngs(0))


def test_inception_norm_and_fuse_errors():
    with pytest.raises(ValueError, match=r"`norm` must be None or 'batch', got 'layer'"):
        Inception(8, SMALL_WIDTHS, norm="layer", rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match=r"`fuse_1x1` must be a bool, got 1"):
        Inception(8, SMALL_WIDTHS, fuse_1x1=1, rngs=nnx.Rngs(0))


def test_branch_modules_standalone(rng):
    x = randn(rng, 1, 6, 6, 8)
    direct = Bottleneck(8, 0, 5, 5, rngs=nnx.Rngs(0))
    assert param_paths(direct) == ["conv.bias", "conv.kernel"]
    np.testing.assert_allclose(direct(x), jax.nn.relu(direct.conv(x)), atol=1e-6)
    pool = PoolProjection(8, 3, activation=None, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(
        pool(x), pool.proj(jaxconv.max_pool(x, 3, stride=1, padding="SAME")), atol=1e-6
    )


# --- MLPConv ---------------------------------------------------------------------------------


def test_mlpconv_is_kxk_then_pointwise_each_activated(rng):
    block = materialize(lambda: MLPConv(3, (8, 6, 4), 5, rngs=nnx.Rngs(0)))
    assert param_paths(block) == [
        "conv.bias",
        "conv.kernel",
        "pointwise_1.bias",
        "pointwise_1.kernel",
        "pointwise_2.bias",
        "pointwise_2.kernel",
    ]
    x = randn(rng, 2, 7, 7, 3)
    relu = jax.nn.relu
    want = relu(block.pointwise_2(relu(block.pointwise_1(relu(block.conv(x))))))
    np.testing.assert_allclose(block(x), want, atol=1e-6)
    assert block(x).shape == (2, 7, 7, 4)
    strided = nnx.eval_shape(
        lambda: MLPConv(3, (8,), 3, stride=2, padding="VALID", norm="batch", rngs=nnx.Rngs(0))
    )
    assert abstract_call(strided, (2, 7, 7, 3)).shape == (2, 3, 3, 8)
    assert param_paths(strided) == ["conv.bn.bias", "conv.bn.scale", "conv.conv.kernel"]


@pytest.mark.parametrize(
    "features, err, match",
    [
        ((), ValueError, r"`features` must be a non-empty sequence"),
        ((8, 0), ValueError, r"`features\[1\]` must be a positive int, got 0"),
        (8, ValueError, r"`features` must be a non-empty sequence .* got 8"),
    ],
)
def test_mlpconv_errors(features, err, match):
    with pytest.raises(err, match=match):
        MLPConv(3, features, 3, rngs=nnx.Rngs(0))


# --- LRN -------------------------------------------------------------------------------------


def test_local_response_norm_matches_a_loop(rng):
    x = np.asarray(rng.standard_normal((2, 3, 3, 7)), np.float64)
    size, alpha, beta, k = 5, 1e-1, 0.75, 2.0
    want = np.empty_like(x)
    for c in range(7):
        lo, hi = max(0, c - 2), min(7, c + 3)
        want[..., c] = x[..., c] / (k + alpha / size * np.sum(x[..., lo:hi] ** 2, -1)) ** beta
    got = local_response_norm(jnp.asarray(x, jnp.float32), size, alpha=alpha, beta=beta, k=k)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"`size` must be odd .* got 4"):
        local_response_norm(jnp.ones((1, 4)), 4)


# --- Inception: the options a port needs -----------------------------------------------------


def _units(block):
    """Every conv unit an Inception block built (ConvBN, or Conv/Conv1x1 without BN), by path."""
    kinds = (ConvBN,) if block.norm == "batch" else (Conv, Conv1x1)
    return [
        (".".join(map(str, path)), m) for path, m in nnx.iter_modules(block) if isinstance(m, kinds)
    ]


def test_inception_kernel_sizes_and_pool_size_reach_the_branches():
    block = nnx.eval_shape(
        lambda: Inception(
            8, SMALL_WIDTHS, kernel_sizes=(5, 7), pool_size=5, norm="batch", rngs=nnx.Rngs(0)
        )
    )
    assert block.kernel_sizes == (5, 7) and block.pool_size == 5
    assert block.branch_3x3.conv.conv.kernel.shape == (5, 5, 3, 6)
    assert block.branch_5x5.conv.conv.kernel.shape == (7, 7, 2, 5)
    assert block.branch_pool.pool.window == (5, 5)
    assert abstract_call(block, (2, 6, 6, 8)).shape == (2, 6, 6, 18)


def test_inception_7x7_branch_output_matches_its_parts(rng):
    block = materialize(lambda: Inception(8, SMALL_WIDTHS, kernel_sizes=(3, 7), rngs=nnx.Rngs(0)))
    x = randn(rng, 2, 9, 9, 8)
    y = block(x)
    assert y.shape == (2, 9, 9, 18)
    relu = jax.nn.relu
    b5 = block.branch_5x5
    assert b5.conv.kernel.shape == (7, 7, 2, 5)
    want = relu(b5.conv(relu(b5.reduce(x))))
    np.testing.assert_allclose(y[..., 10:15], want, atol=tol("float32", 50), rtol=0)
    fused = materialize(
        lambda: Inception(8, SMALL_WIDTHS, kernel_sizes=(3, 7), fuse_1x1=True, rngs=nnx.Rngs(0))
    )
    np.testing.assert_allclose(fused(x), y, atol=tol("float32", 200), rtol=0)


@pytest.mark.parametrize("fuse", [False, True])
def test_inception_without_pool_branch(rng, fuse):
    widths = (4, 3, 6, 2, 5, 0)
    block = materialize(
        lambda: Inception(8, widths, pool_size=None, fuse_1x1=fuse, rngs=nnx.Rngs(0))
    )
    assert block.branch_pool is None and block.pool_size is None
    assert block.out_features == 4 + 6 + 5
    assert not any(p.startswith("branch_pool") for p in param_paths(block))
    x = randn(rng, 2, 6, 6, 8)
    y = block(x)
    assert y.shape == (2, 6, 6, 15)
    relu = jax.nn.relu
    parts = [
        relu(block.branch_1x1(x)),
        relu(block.branch_3x3.conv(relu(block.branch_3x3.reduce(x)))),
        relu(block.branch_5x5.conv(relu(block.branch_5x5.reduce(x)))),
    ]
    np.testing.assert_allclose(y, jnp.concatenate(parts, axis=-1), atol=tol("float32", 200), rtol=0)


def test_inception_bn_options_and_kernel_init_reach_every_unit():
    init = nnx.initializers.constant(0.25)
    block = Inception(
        8,
        SMALL_WIDTHS,
        norm="batch",
        momentum=0.9,
        epsilon=1e-3,
        kernel_init=init,
        rngs=nnx.Rngs(0),
    )
    units = _units(block)
    assert len(units) == 6  # 1×1, two reduces, 3×3, 5×5, pool proj
    for path, unit in units:
        assert isinstance(unit, ConvBN), path
        assert (unit.bn.momentum, unit.bn.epsilon) == (0.9, 1e-3), path
        np.testing.assert_array_equal(unit.conv.kernel[...], 0.25)
    # Without BatchNorm, kernel_init still reaches every conv.
    plain = Inception(8, SMALL_WIDTHS, kernel_init=init, rngs=nnx.Rngs(0))
    assert len(_units(plain)) == 6
    for _, unit in _units(plain):
        np.testing.assert_array_equal(unit.kernel[...], 0.25)


def test_bottleneck_and_pool_projection_take_the_options():
    init = nnx.initializers.constant(-0.5)
    b = Bottleneck(
        8, 3, 4, 7, norm="batch", momentum=0.8, epsilon=1e-4, kernel_init=init, rngs=nnx.Rngs(0)
    )
    for unit in (b.reduce, b.conv):
        assert (unit.bn.momentum, unit.bn.epsilon) == (0.8, 1e-4)
        np.testing.assert_array_equal(unit.conv.kernel[...], -0.5)
    assert b.conv.conv.kernel.shape == (7, 7, 3, 4)
    p = PoolProjection(
        8, 3, pool_size=5, norm="batch", epsilon=1e-2, kernel_init=init, rngs=nnx.Rngs(0)
    )
    assert p.pool.window == (5, 5)
    assert (p.proj.bn.momentum, p.proj.bn.epsilon) == (0.9, 1e-2)  # momentum: ConvBN's default
    np.testing.assert_array_equal(p.proj.conv.kernel[...], -0.5)


def test_inception_defaults_are_the_papers():
    block = nnx.eval_shape(lambda: Inception(8, SMALL_WIDTHS, norm="batch", rngs=nnx.Rngs(0)))
    assert block.kernel_sizes == (3, 5) and block.pool_size == 3
    assert block.branch_pool.pool.window == (3, 3)
    for path, unit in _units(block):
        assert (unit.bn.momentum, unit.bn.epsilon) == (0.9, 1e-5), path
    # The same rngs give the same parameters as ConvBN's own defaults.
    a = Inception(8, SMALL_WIDTHS, norm="batch", rngs=nnx.Rngs(3))
    b = Inception(
        8,
        SMALL_WIDTHS,
        norm="batch",
        kernel_sizes=(3, 5),
        pool_size=3,
        momentum=0.9,
        epsilon=1e-5,
        kernel_init=VarianceScaling(1.0, "fan_in", "truncated_normal"),  # Flax's lecun_normal
        rngs=nnx.Rngs(3),
    )
    jax.tree.map(np.testing.assert_array_equal, nnx.state(a), nnx.state(b))


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(kernel_sizes=(3,)), ValueError, r"`kernel_sizes` must be two ints .* got \(3,\)"),
        (dict(kernel_sizes=5), ValueError, r"`kernel_sizes` must be two ints .* got 5"),
        (
            dict(kernel_sizes=(3, 0)),
            ValueError,
            r"`kernel_sizes\[1\] \(branch_5x5\)` must be a positive int, got 0",
        ),
        (
            dict(kernel_sizes=(3.0, 5)),
            TypeError,
            r"`kernel_sizes\[0\] \(branch_3x3\)` must be an int, got 3.0",
        ),
        (dict(pool_size=0), ValueError, r"`pool_size` must be a positive int, got 0"),
        (dict(pool_size=True), TypeError, r"`pool_size` must be an int, got True"),
        (
            dict(pool_size=None),
            ValueError,
            r"`widths\[5\] \(pool proj\)` must be 0 with pool_size=None \(no pool branch\), got 3",
        ),
        (dict(epsilon=1e-3), ValueError, r"`epsilon` needs BatchNorm \(norm='batch'\)"),
        (
            dict(norm="batch", momentum=1.0),
            ValueError,
            r"`momentum` must be a number in \[0.0, 1.0\)",
        ),
        (
            dict(norm="batch", epsilon=0.0),
            ValueError,
            r"`epsilon` must be a positive number, got 0.0",
        ),
        (dict(norm="batch", epsilon="1e-3"), TypeError, r"`epsilon` must be a number, got '1e-3'"),
        (dict(kernel_init="lecun"), TypeError, r"`kernel_init` must be an initializer"),
    ],
)
def test_inception_option_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        Inception(8, SMALL_WIDTHS, rngs=nnx.Rngs(0), **kwargs)


def test_branch_option_errors():
    with pytest.raises(ValueError, match=r"`kernel_size` must be a positive int, got 0"):
        Bottleneck(8, 3, 4, 0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"`momentum` needs BatchNorm"):
        Bottleneck(8, 3, 4, 3, momentum=0.9, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match=r"`kernel_init` must be an initializer"):
        PoolProjection(8, 3, kernel_init=None, rngs=nnx.Rngs(0))


# --- coming from nnx.Conv / torch.nn.Conv2d (issue 13) ----------------------------------------


def _conv_modules():
    from jaxconv.nn import ConvTranspose, DepthwiseConv, SeparableConv

    rngs = nnx.Rngs(0)
    return [
        ("Conv", lambda **kw: Conv(3, 6, 3, rngs=rngs, **kw)),
        ("ConvBN", lambda **kw: ConvBN(3, 6, 3, rngs=rngs, **kw)),
        ("DepthwiseConv", lambda **kw: DepthwiseConv(3, 3, rngs=rngs, **kw)),
        ("SeparableConv", lambda **kw: SeparableConv(3, 6, 3, rngs=rngs, **kw)),
        ("ConvTranspose", lambda **kw: ConvTranspose(3, 6, 3, rngs=rngs, **kw)),
        ("Conv1x1", lambda **kw: Conv1x1(3, 6, rngs=rngs, **kw)),
    ]


@pytest.mark.parametrize(
    "keyword, spelling",
    [
        ("strides", r"jaxconv spells it `stride=`"),
        ("feature_group_count", r"jaxconv spells it `groups=`"),
        ("kernel_dilation", r"jaxconv spells it `dilation=`"),
        ("bias", r"jaxconv spells it `use_bias=`"),
        ("in_channels", r"jaxconv spells it `in_features=`"),
        ("padding_mode", r"jaxconv takes the mode as `padding=` \(e.g. `padding=\"REFLECT\"`\)"),
        ("mask", r"jaxconv has no kernel mask"),
        ("conv_general_dilated", r"jaxconv chooses the lowering by name with `implementation=`"),
    ],
)
def test_nnx_and_torch_spellings_name_the_jaxconv_one(keyword, spelling):
    for name, make in _conv_modules():
        with pytest.raises(
            TypeError, match=rf"{name}\(\) got an unexpected keyword argument '{keyword}'"
        ) as info:
            make(**{keyword: 1})
        assert re.search(spelling, str(info.value)), (name, str(info.value))


def test_spellings_a_module_lacks_explain_why():
    from jaxconv.nn import DepthwiseConv

    with pytest.raises(TypeError, match=r"'use_bias': it has no bias \(BatchNorm's shift"):
        ConvBN(3, 6, 3, use_bias=False, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match=r"'groups': a depthwise conv has one group per input"):
        DepthwiseConv(3, 3, groups=3, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'nosuch'$"):
        Conv(3, 6, 3, nosuch=1, rngs=nnx.Rngs(0))  # an unknown name: Python's own error
    # Where a module takes the name, it passes through untouched.
    assert Conv(4, 4, 3, groups=2, use_bias=False, rngs=nnx.Rngs(0)).groups == 2


@pytest.mark.parametrize(
    "name", ["Conv", "ConvBN", "DepthwiseConv", "SeparableConv", "ConvTranspose"]
)
def test_unbatched_input_is_one_image_as_in_nnx_conv(name, rng):
    module = dict(_conv_modules())[name]()
    module.eval()
    x = randn(rng, 6, 6, 3)
    np.testing.assert_array_equal(module(x), module(x[None])[0])


def test_a_kernel_size_of_the_wrong_rank_names_kernel_size():
    with pytest.raises(
        ValueError,
        match=r"Conv has a 1-D `kernel_size` \(=\(3,\)\), so `x` must have rank 3 \(N, \*spatial, "
        r"C\) or 2 \(unbatched \*spatial, C\), got rank 4 with shape \(2, 8, 8, 3\); for a 2-D "
        r"conv give `kernel_size` 2 entries",
    ):
        Conv(3, 6, (3,), rngs=nnx.Rngs(0))(jnp.ones((2, 8, 8, 3)))
    with pytest.raises(ValueError, match=r"DepthwiseConv has a 2-D `kernel_size` \(=\(3, 3\)\)"):
        _conv_modules()[2][1]()(jnp.ones((3,)))


def test_pools_take_unbatched_input_and_read_an_int_window_as_2d():
    # As the conv modules do (issue 25): an unbatched (H, W, C) is pooled over H and W (it was
    # pooled over W alone, H taken for a batch), and an int window is a square 2-D window.
    from jaxconv.nn import AvgPool, MaxPool

    x = jnp.arange(2 * 32 * 32 * 8, dtype=jnp.float32).reshape(2, 32, 32, 8)
    for pool in (MaxPool(2), MaxPool((2, 2)), AvgPool(2), AvgPool(3, stride=2, padding=1)):
        batched = pool(x)
        assert pool(x[0]).shape == batched.shape[1:]
        np.testing.assert_array_equal(pool(x[0]), batched[0])
        np.testing.assert_array_equal(jax.vmap(pool)(x), batched)
    assert MaxPool(2)(x[0]).shape == (16, 16, 8)
    assert MaxPool((2,))(x[:, 0]).shape == (2, 16, 8)  # a 1-D pool takes a 1-tuple
    with pytest.raises(ValueError, match=r"MaxPool has a 2-D `window` \(=\(2, 2\)\), so `x` must"):
        MaxPool(2)(jnp.ones((1, 2, 8, 8, 4)))
    with pytest.raises(
        ValueError, match=r"`window` must be an int \(square 2-D window\) or 1-3 ints"
    ):
        MaxPool((2, 2, 2, 2))
