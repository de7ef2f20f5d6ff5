"""Every jaxconv.nn module, and the models, inside a flax.linen model via nnx.bridge.to_linen."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tol
from flax import linen, nnx
from flax.nnx import bridge

import jaxconv
from jaxconv.models import GoogLeNet, MiniInception, NiN
from jaxconv.nn import (
    AvgPool,
    Bottleneck,
    Conv,
    Conv1x1,
    ConvBN,
    GlobalAvgPool,
    Inception,
    LocalResponseNorm,
    MaxPool,
    MLPConv,
    PoolProjection,
)

WIDTHS = (4, 3, 6, 0, 5, 3)  # with a "direct 5×5" branch (reduce width 0)


class Net(linen.Module):
    """A Linen model made of every jaxconv.nn module."""

    @linen.compact
    def __call__(self, x):
        x = bridge.to_linen(Conv, 3, 8, 3, name="stem")(x)
        x = bridge.to_linen(LocalResponseNorm, 3, skip_rng=True, name="lrn")(linen.relu(x))
        x = bridge.to_linen(ConvBN, 8, 8, 3, name="unit")(x)
        x = bridge.to_linen(Inception, 8, WIDTHS, name="block")(x)
        x = bridge.to_linen(
            Inception, 18, (4, 3, 6, 2, 5, 3), fuse_1x1=True, norm="batch", name="fused"
        )(x)
        x = bridge.to_linen(MaxPool, 3, stride=2, ceil_mode=True, skip_rng=True, name="pool")(x)
        x = bridge.to_linen(MLPConv, 18, (8, 8), 3, name="mlpconv")(x)
        x = bridge.to_linen(Bottleneck, 8, 4, 8, 5, name="bottleneck")(x)
        x = bridge.to_linen(PoolProjection, 8, 8, name="pool_proj")(x)
        x = bridge.to_linen(AvgPool, 2, skip_rng=True, name="avg")(x)
        x = bridge.to_linen(Conv1x1, 8, 6, name="pointwise")(x)
        x = bridge.to_linen(GlobalAvgPool, skip_rng=True, name="gap")(x)
        return linen.Dense(5, name="head")(x)


def filled(variables, seed: int = 0):
    """``variables`` (arrays or shapes) with seeded NumPy values: LeCun-scaled kernels, unit
    BatchNorm statistics. Compiling Flax's threefry initializers for every shape of a model
    costs far more on a 2-core CPU than these tests; one test runs the real ``init``."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = path[-1].key
        if name == "kernel":
            value = rng.standard_normal(leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))
        elif name in ("scale", "var"):
            value = np.ones(leaf.shape)
        elif name == "mean":
            value = np.zeros(leaf.shape)
        else:
            value = 0.1 * rng.standard_normal(leaf.shape)
        return jnp.asarray(value, leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, variables)


@pytest.fixture(scope="module")
def net_and_variables():
    net = Net()
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 9, 9, 3)), jnp.float32)
    variables = filled(jax.eval_shape(net.init, jax.random.key(0), x))
    return net, variables, x


def test_real_init_and_apply():
    stem = bridge.to_linen(Conv, 3, 8, 3)
    x = jnp.ones((1, 5, 5, 3))
    variables = stem.init(jax.random.key(0), x)
    kernel = variables["params"]["kernel"]
    assert kernel.shape == (3, 3, 3, 8) and float(jnp.std(kernel)) > 0
    np.testing.assert_allclose(
        stem.apply(variables, x),
        jaxconv.conv(x, kernel, variables["params"]["bias"]),
        atol=tol("float32", 27),
        rtol=0,
    )


def test_init_gives_the_nnx_parameter_paths(net_and_variables):
    _, variables, _ = net_and_variables
    params = variables["params"]
    assert params["stem"]["kernel"].shape == (3, 3, 3, 8)
    assert set(params["block"]) == {"branch_1x1", "branch_3x3", "branch_5x5", "branch_pool"}
    assert set(params["block"]["branch_5x5"]) == {"conv"}  # no reduce at width 0
    assert params["block"]["branch_5x5"]["conv"]["kernel"].shape == (5, 5, 8, 5)
    assert params["fused"]["branch_5x5"]["reduce"]["conv"]["kernel"].shape == (1, 1, 18, 2)
    assert set(params["mlpconv"]) == {"conv", "pointwise_1"}
    assert params["pointwise"]["kernel"].shape == (1, 1, 8, 6)
    assert "lrn" not in params and "pool" not in params
    assert set(variables["batch_stats"]) == {"unit", "fused"}


def test_apply_trains_batch_stats_and_matches_the_nnx_modules(net_and_variables):
    net, variables, x = net_and_variables

    @jax.jit
    def apply(variables, x):
        return net.apply(
            variables,
            x,
            mutable=["batch_stats", "intermediates"],
            capture_intermediates=lambda mdl, _: mdl.name in ("stem", "unit", "block"),
        )

    y, updates = apply(variables, x)
    assert y.shape == (2, 5)
    assert bool(jnp.all(jnp.isfinite(y)))
    before = variables["batch_stats"]["unit"]["bn"]["mean"]
    assert not np.allclose(updates["batch_stats"]["unit"]["bn"]["mean"], before)
    seen = updates["intermediates"]
    # The wrapped stem is jaxconv.conv with the Linen parameters.
    stem = variables["params"]["stem"]
    np.testing.assert_allclose(
        seen["stem"]["__call__"][0],
        jaxconv.conv(x, stem["kernel"], stem["bias"]),
        atol=tol("float32", 27),
        rtol=0,
    )
    # The wrapped Inception block is the NNX block with the same parameters.
    block = nnx.eval_shape(lambda: Inception(8, WIDTHS, rngs=nnx.Rngs(0)))
    nnx.update(block, nnx.State(variables["params"]["block"]))
    h = seen["unit"]["__call__"][0]
    np.testing.assert_allclose(
        seen["block"]["__call__"][0],
        nnx.jit(lambda b, h: b(h))(block, h),
        atol=tol("float32", 200),
        rtol=0,
    )


def _eval_mode(cls):
    """A factory for to_linen that builds the NNX model in eval mode (docs/linen.md)."""

    def make(*args, **kwargs):
        model = cls(*args, **kwargs)
        model.eval()
        return model

    return make


def test_nin_in_linen_train_and_eval():
    x = jnp.asarray(np.random.default_rng(2).standard_normal((1, 16, 16, 3)), jnp.float32)
    train = bridge.to_linen(NiN, num_classes=4)
    # Dropout modules take their stream at construction: init needs a "dropout" key too.
    keys = {"params": jax.random.key(0), "dropout": jax.random.key(0)}
    variables = filled(jax.eval_shape(train.init, keys, x))
    assert variables["params"]["mlpconv3"]["pointwise_2"]["kernel"].shape == (1, 1, 192, 4)
    apply = jax.jit(lambda v, x, key: train.apply(v, x, rngs={"dropout": key}))
    a, b = apply(variables, x, jax.random.key(1)), apply(variables, x, jax.random.key(2))
    assert a.shape == (1, 4) and not np.allclose(a, b)  # dropout follows the given key
    evaluate = bridge.to_linen(_eval_mode(NiN), num_classes=4)
    c = jax.jit(evaluate.apply)(variables, x)
    np.testing.assert_array_equal(c, jax.jit(evaluate.apply)(variables, x))


def test_models_init_and_apply_shapes_in_linen():
    googlenet = bridge.to_linen(_eval_mode(GoogLeNet), num_classes=10)
    x = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
    keys = {"params": jax.random.key(0), "dropout": jax.random.key(0)}
    variables = jax.eval_shape(googlenet.init, keys, x)
    assert variables["params"]["inception_4a"]["branch_5x5"]["reduce"]["kernel"].shape == (
        1,
        1,
        480,
        16,
    )
    assert jax.eval_shape(googlenet.apply, variables, x).shape == (1, 10)
    mini = bridge.to_linen(MiniInception, bottleneck=False)
    x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    variables = jax.eval_shape(mini.init, keys, x)
    assert "reduce" not in variables["params"]["inception_a"]["branch_5x5"]
    out, updates = jax.eval_shape(
        lambda v, x: mini.apply(v, x, mutable=["batch_stats"]), variables, x
    )
    assert out.shape == (2, 10) and "stem" in updates["batch_stats"]
