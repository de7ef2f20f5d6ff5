"""jaxconv.nn's initializers: JAX's distributions, one compile for every shape, jit == eager."""

from __future__ import annotations

import logging
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxconv.nn import Conv, Normal, VarianceScaling
from jaxconv.nn._conv import linear
from jaxconv.nn._init import CHUNK, zeros

#: (scale, mode, distribution) of the initializers jaxconv uses, and the other two.
CASES = [
    (1.0, "fan_in", "truncated_normal"),  # LeCun normal: Conv's and Linear's default
    (2.0, "fan_out", "normal"),  # He normal over the fan-out: the ResNet/MobileNet convs
    (1.0, "fan_avg", "uniform"),  # Glorot uniform
]

#: An HWIO kernel of ~1e5 entries: a sample std within 2% of the true one (±4.5σ of its noise).
LARGE = (3, 3, 64, 192)


def _unscaled_std(scale, mode, shape):
    receptive = math.prod(shape[:-2])
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    return math.sqrt(scale / fan)


@pytest.mark.parametrize("scale, mode, distribution", CASES)
def test_variance_scaling_matches_jax_distribution(scale, mode, distribution):
    ours = np.asarray(VarianceScaling(scale, mode, distribution)(jax.random.key(0), LARGE))
    init = jax.nn.initializers.variance_scaling(scale, mode, distribution)
    theirs = np.asarray(init(jax.random.key(1), LARGE))
    n = ours.size
    std = _unscaled_std(scale, mode, LARGE)  # sqrt(scale / fan)
    assert ours.shape == LARGE and ours.dtype == np.float32
    assert ours.std() == pytest.approx(theirs.std(), rel=0.02)
    assert ours.std() == pytest.approx(std, rel=0.02)
    assert abs(ours.mean()) < 5 * std / math.sqrt(n)
    if distribution == "truncated_normal":  # cut at ±2 of the *untruncated* normal's std
        cut = 2 * std / 0.87962566103423978
        assert np.abs(ours).max() <= cut * (1 + 1e-6)
        assert np.abs(ours).max() > 0.99 * cut  # really reaches the cut: not a narrower normal
        assert np.abs(theirs).max() <= cut * (1 + 1e-6)
    if distribution == "uniform":
        assert np.abs(ours).max() <= math.sqrt(3) * std


def test_normal_matches_jax_distribution():
    ours = np.asarray(Normal(0.01)(jax.random.key(0), (1280, 100)))
    theirs = np.asarray(jax.nn.initializers.normal(0.01)(jax.random.key(1), (1280, 100)))
    assert ours.std() == pytest.approx(theirs.std(), rel=0.02)
    assert ours.std() == pytest.approx(0.01, rel=0.02)
    assert abs(ours.mean()) < 5 * 0.01 / math.sqrt(ours.size)
    assert Normal()(jax.random.key(0), (7,)).shape == (7,)  # any rank, a bias too


@pytest.mark.parametrize(
    "shape",
    [(3, 3, 8, 16), (5, 5, 1, 32), (3, 3, 3, 4, 6), (256, 10)],
    ids=["conv HWIO", "depthwise", "3-D conv", "dense"],
)
@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
def test_fans_follow_jax_rule(shape, mode):
    # Uniform draws reach their bound sqrt(3·scale/fan): the bound shows the fan exactly.
    bound = math.sqrt(3) * _unscaled_std(2.0, mode, shape)
    ours = np.abs(np.asarray(VarianceScaling(2.0, mode, "uniform")(jax.random.key(0), shape)))
    init = jax.nn.initializers.variance_scaling(2.0, mode, "uniform")
    theirs = np.abs(np.asarray(init(jax.random.key(0), shape)))
    for drawn in (ours, theirs):
        assert 0.95 * bound < drawn.max() <= bound * (1 + 1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize(
    "init", [VarianceScaling(1.0, "fan_in", "truncated_normal"), Normal(0.5)], ids=repr
)
def test_eager_equals_jit(init, dtype):
    shape = (3, CHUNK // 4, 5)  # 3.75 chunks: concatenation and the cut both matter
    key = jax.random.key(3)
    eager = init(key, shape, dtype)
    jitted = jax.jit(lambda k: init(k, shape, dtype))(key)
    assert eager.dtype == jitted.dtype == jnp.dtype(dtype)
    np.testing.assert_array_equal(np.asarray(eager), np.asarray(jitted))
    abstract = jax.eval_shape(lambda k: init(k, shape, dtype), key)
    assert (abstract.shape, abstract.dtype) == (shape, jnp.dtype(dtype))


def test_module_built_eagerly_equals_built_under_nnx_jit():
    def build(rngs):
        return Conv(3, 8, 3, use_bias=True, rngs=rngs), linear(8, 4, rngs=rngs)

    eager = nnx.state(build(nnx.Rngs(0)), nnx.Param)
    jitted = nnx.state(nnx.jit(build)(nnx.Rngs(0)), nnx.Param)
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_keys_and_chunks():
    init = Normal(1.0)
    a = np.asarray(init(jax.random.key(0), (2, CHUNK)))
    np.testing.assert_array_equal(a, np.asarray(init(jax.random.key(0), (2, CHUNK))))
    assert not np.any(a == np.asarray(init(jax.random.key(1), (2, CHUNK))))
    assert not np.any(a[0] == a[1])  # chunk 0 and chunk 1 are different draws
    # A smaller tensor is the start of the same stream: the layout is [chunk 0, chunk 1, …].
    np.testing.assert_array_equal(
        np.asarray(init(jax.random.key(0), (CHUNK + 3,))), a.ravel()[: CHUNK + 3]
    )


def test_new_shapes_compile_nothing(caplog):
    def build(c_in, c_out, features):
        Conv(c_in, c_out, 3, use_bias=True, rngs=nnx.Rngs(0))
        linear(c_out, features, rngs=nnx.Rngs(0))
        VarianceScaling(2.0, "fan_out", "normal")(jax.random.key(0), (1, 1, c_in, c_out))
        Normal(0.01)(jax.random.key(0), (c_out, features))

    build(3, 5, 7)  # compiles each sampler once
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        build(11, 13, 17)
        build(19, 23, 29)
    assert not [r.getMessage() for r in caplog.records if "compil" in r.getMessage().lower()]


def test_zeros_and_dtypes():
    assert zeros(jax.random.key(0), (2, 3), jnp.bfloat16).dtype == jnp.bfloat16
    np.testing.assert_array_equal(zeros(jax.random.key(0), (4,)), np.zeros(4, np.float32))
    traced = jax.jit(lambda k: zeros(k, (4,)))(jax.random.key(0))
    np.testing.assert_array_equal(traced, np.zeros(4, np.float32))
    w = VarianceScaling(1.0, "fan_in", "normal")(jax.random.key(0), (0, 4))
    assert w.shape == (0, 4)


def test_errors():
    with pytest.raises(
        ValueError, match=r"`mode` must be one of 'fan_in', 'fan_out', 'fan_avg', got 'fan'"
    ):
        VarianceScaling(1.0, "fan", "normal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`distribution` must be one of .*got 'gauss'"):
        VarianceScaling(1.0, "fan_in", "gauss")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`scale` must be a number >= 0.0, got -1.0"):
        VarianceScaling(-1.0, "fan_in", "normal")
    with pytest.raises(TypeError, match=r"`stddev` must be a number, got '0.1'"):
        Normal("0.1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"rank >= 2 .*got shape \(8,\)"):
        VarianceScaling(1.0, "fan_in", "normal")(jax.random.key(0), (8,))
    with pytest.raises(TypeError, match=r"`dtype` must be a floating dtype, got int32"):
        Normal()(jax.random.key(0), (2, 2), jnp.int32)
