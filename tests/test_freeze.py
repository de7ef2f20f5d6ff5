"""``jaxconv.nn.freeze``: BatchNorm folded by tracing, post-ops, packed weights.

Every registry model (and torchvision's GoogLeNet) at 64×64, batch 2, with BatchNorm
statistics made non-trivial: the frozen logits equal the unfrozen eval model's within 10× that
model's own float32 error against its float64 run (or 1e-5 of the largest logit).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxconv
from jaxconv.convolution import conv_spec, frozen
from jaxconv.convolution.lowerings.onednn import library
from jaxconv.convolution.lowerings.onednn import lowering as onednn_lowering
from jaxconv.models import MODELS, from_torchvision
from jaxconv.nn import Conv, ConvBN, FrozenConv, freeze

ONEDNN = library.unavailable() is None


def _calibrate(model: nnx.Module, seed: int = 0) -> None:
    """Random BatchNorm statistics and affine parameters, so that folding changes something."""
    rng = np.random.default_rng(seed)
    for _, node in nnx.iter_graph(model):
        if isinstance(node, nnx.BatchNorm):
            c = node.num_features
            node.mean[...] = jnp.asarray(rng.normal(0, 0.2, c), jnp.float32)
            node.var[...] = jnp.asarray(rng.uniform(0.5, 2.0, c), jnp.float32)
            node.scale[...] = jnp.asarray(rng.uniform(0.5, 1.5, c), jnp.float32)
            node.bias[...] = jnp.asarray(rng.normal(0, 0.2, c), jnp.float32)


def _jitted(model: nnx.Module):
    graph, state = nnx.split(model)
    return jax.jit(lambda s, x: nnx.merge(graph, s)(x)), state


def _float64_logits(model: nnx.Module, x: np.ndarray) -> np.ndarray:
    graph, state = nnx.split(model)
    with jax.enable_x64(True):
        state64 = jax.tree.map(
            lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, state
        )
        return np.asarray(nnx.merge(graph, state64)(jnp.asarray(x, jnp.float64)))


def _model(name: str) -> nnx.Module:
    if name == "googlenet-torchvision":
        return from_torchvision("googlenet", num_classes=10, rngs=nnx.Rngs(0))
    return MODELS[name].build(10, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("name", [*MODELS, "googlenet-torchvision"])
def test_frozen_logits_equal_the_models(name):
    model = _model(name)
    _calibrate(model)
    model.eval()
    before = jax.tree.map(np.asarray, nnx.state(model, nnx.Param, nnx.BatchStat))
    x = np.asarray(jax.random.normal(jax.random.key(1), (2, 64, 64, 3)))
    fz = freeze(model, x)
    # the model itself is unchanged
    after = jax.tree.map(np.asarray, nnx.state(model, nnx.Param, nnx.BatchStat))
    assert jax.tree.all(jax.tree.map(np.array_equal, before, after))
    f, state = _jitted(model)
    g, frozen_state = _jitted(fz)
    y, y_frozen = np.asarray(f(state, x)), np.asarray(g(frozen_state, x))
    y64 = _float64_logits(model, x)
    own = np.max(np.abs(y - y64))
    bound = max(10 * own, 1e-5 * np.max(np.abs(y64)))
    assert np.max(np.abs(y_frozen - y)) <= bound, (name, np.max(np.abs(y_frozen - y)), bound)
    bns = [n for _, n in nnx.iter_graph(model) if isinstance(n, nnx.BatchNorm)]
    report = fz.report
    assert len(report.folded) == len(bns)  # every BatchNorm of these models follows a conv
    assert not [n for _, n in nnx.iter_graph(fz) if isinstance(n, nnx.BatchNorm)]
    if ONEDNN:
        assert report.packed and len(report.packed) == len(report.fused)
    if name.startswith(("resnet", "resnext", "wide")):
        blocks = [n for _, n in nnx.iter_graph(model) if isinstance(n, jaxconv.nn.BasicBlock)]
        blocks += [
            n for _, n in nnx.iter_graph(model) if isinstance(n, jaxconv.nn.ResNetBottleneck)
        ]
        assert sum("residual add + relu" in what for _, what in report.fused) == len(blocks)


def test_split_merge_jit_and_another_batch_size():
    model = MODELS["resnet18"].build(10, rngs=nnx.Rngs(0))
    _calibrate(model, 1)
    fz = freeze(model, jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32))
    model.eval()
    g, s = _jitted(fz)
    x = jax.random.normal(jax.random.key(2), (3, 32, 32, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no layout warning: the batch does not change it here
        np.testing.assert_allclose(g(s, x), model(x), rtol=1e-4, atol=1e-4)
    assert fz(x).shape == (3, 10)


def _custom_model():
    """A user's model from jaxconv.nn, written by hand: which BatchNorm folds is decided by
    the data flow, whatever the attribute names say."""

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.a = Conv(3, 8, 3, use_bias=False, rngs=rngs)
            self.norm_of_a = nnx.BatchNorm(8, rngs=rngs)  # reads a: folds
            self.b = Conv(8, 8, 3, rngs=rngs)
            self.norm_of_b = nnx.BatchNorm(8, rngs=rngs)  # b's output is also the skip: kept
            self.c = Conv(8, 8, 1, rngs=rngs)
            self.norm_named_c = nnx.BatchNorm(8, rngs=rngs)  # reads a reshaped c: kept

        def __call__(self, x):
            h = jax.nn.relu(self.norm_of_a(self.a(x)))
            y = self.b(h)
            h = jax.nn.relu(self.norm_of_b(y)) + y
            z = self.c(h)
            return self.norm_named_c(z * 1.0 + 0.0)

    model = Net(nnx.Rngs(0))
    _calibrate(model, 2)
    return model


def test_a_users_model_folds_what_the_trace_shows():
    model = _custom_model()
    x = jax.random.normal(jax.random.key(3), (2, 16, 16, 3))
    with pytest.raises(TypeError, match="`x` is needed"):
        freeze(model)
    fz = freeze(model, x)
    report = fz.report
    assert report.folded == (("a", "norm_of_a"),)
    kept = dict(report.kept)
    assert "read by something besides one BatchNorm" in kept["b"]
    assert "norm_of_b" in kept and "norm_named_c" in kept
    model.eval()
    np.testing.assert_allclose(fz(x), model(x), rtol=1e-5, atol=1e-5)
    assert isinstance(fz.a, FrozenConv) and isinstance(fz.norm_of_b, nnx.BatchNorm)
    assert "fold  norm_of_a -> a" in str(report)


def test_a_shared_conv_folds_only_when_every_call_feeds_its_batchnorm():
    class Shared(nnx.Module):
        def __init__(self, rngs):
            self.conv = Conv(4, 4, 3, use_bias=False, rngs=rngs)
            self.bn = nnx.BatchNorm(4, rngs=rngs)

        def __call__(self, x):
            return self.bn(self.conv(x)) + self.conv(x)  # the second call has no BatchNorm

    model = Shared(nnx.Rngs(0))
    _calibrate(model, 4)
    x = jax.random.normal(jax.random.key(8), (2, 8, 8, 4))
    fz = freeze(model, x)
    assert fz.report.folded == ()
    assert "not followed by the BatchNorm" in dict(fz.report.kept)["conv"]
    model.eval()
    np.testing.assert_allclose(fz(x), model(x), rtol=1e-5, atol=1e-5)


def test_nan_propagates_through_every_post_op():
    x = np.ones((1, 6, 6, 4), np.float32)
    x[0, 1, 1, 0] = np.nan
    x[0, 4, 4, 0], x[0, 4, 4, 1] = np.inf, -np.inf  # inf - inf in the sum: NaN
    x[0, 2, 4, 2] = -np.inf  # -inf: ReLU gives 0
    w = np.full((1, 1, 4, 8), 1.0, np.float32)
    b = np.zeros(8, np.float32)
    r = np.full((1, 6, 6, 8), -2.0, np.float32)
    spec = conv_spec(x, w)
    for activation in (None, "relu"):
        for residual in (None, r):
            got = np.asarray(
                frozen.frozen_conv(x, w, b, spec, activation=activation, residual=residual)
            )
            ref = np.asarray(
                frozen.frozen_conv(
                    x, w, b, spec, activation=activation, residual=residual, implementation="xla"
                )
            )
            np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
            assert np.isnan(got[0, 1, 1]).all() and np.isnan(got[0, 4, 4]).all()
            np.testing.assert_allclose(got, ref, atol=1e-6)
            assert (got[0, 2, 4] == 0).all() if activation else True  # relu(-inf) = 0


def test_a_frozen_model_propagates_nan_like_the_model():
    model = MODELS["mobilenetv2"].build(10, rngs=nnx.Rngs(0))
    x = np.array(jax.random.normal(jax.random.key(4), (2, 32, 32, 3)))
    x[1, 5, 5, 1] = np.nan
    fz = freeze(model, x)
    model.eval()
    y, y_frozen = np.asarray(model(x)), np.asarray(fz(x))
    np.testing.assert_array_equal(np.isnan(y_frozen), np.isnan(y))
    assert np.isnan(y_frozen[1]).all() and not np.isnan(y_frozen[0]).any()


def test_export_and_the_xla_fallback_run_standard_ops(monkeypatch):
    model = MODELS["resnet18"].build(10, rngs=nnx.Rngs(0))
    _calibrate(model, 3)
    x = jax.random.normal(jax.random.key(5), (2, 32, 32, 3))
    fz = freeze(model, x)
    graph, state = nnx.split(fz)
    exported = jax.export.export(jax.jit(lambda s, x: nnx.merge(graph, s)(x)))(state, x)
    assert "custom_call" not in exported.mlir_module()
    model.eval()
    expected = np.asarray(model(x))
    np.testing.assert_allclose(exported.call(state, x), expected, rtol=1e-4, atol=1e-4)
    # without the extension: still folded, on XLA's convs
    monkeypatch.setattr(onednn_lowering, "supports", lambda spec: "onednn disabled for this test")
    jax.clear_caches()
    fz_xla = freeze(model, x)
    assert len(fz_xla.report.folded) == len(fz.report.folded) and not fz_xla.report.packed
    assert all("runs on XLA" in why for _, why in fz_xla.report.kept)
    np.testing.assert_allclose(fz_xla(x), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not ONEDNN, reason="packing needs the oneDNN extension")
def test_packed_weights_of_another_layout_are_never_used_silently():
    model = MODELS["resnet18"].build(10, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(6), (2, 32, 32, 3))
    fz = freeze(model, x)
    conv = fz.conv1.conv
    assert isinstance(conv, FrozenConv) and conv.packed.shape == (conv.packing.nbytes,)
    assert conv.packing.x_shape == (2, 32, 32, 3)
    # as if packed on another CPU: its fingerprint differs from what this primitive wants
    conv.packing = conv.packing._replace(fingerprint=conv.packing.fingerprint ^ 1)
    model.eval()
    with pytest.warns(frozen.FrozenLayoutWarning, match="packed for input"):
        y = fz(x)
    np.testing.assert_allclose(y, model(x), rtol=1e-4, atol=1e-4)


def test_errors_name_the_argument():
    with pytest.raises(TypeError, match=r"`model` must be an nnx\.Module"):
        freeze(lambda x: x, np.ones((1, 8, 8, 3)))
    unit = ConvBN(3, 8, 3, rngs=nnx.Rngs(0))
    fz = freeze(unit, np.ones((1, 8, 8, 3), np.float32))
    assert fz.report.folded == (("conv", "bn"),)
    with pytest.raises(ValueError, match=r"`residual` must have the conv's output shape"):
        fz.conv(np.ones((1, 8, 8, 3), np.float32), np.ones((1, 8, 8, 4), np.float32))


def test_tiny_activations_keep_their_value():
    """A randomly initialized MobileNetV2 (BatchNorm at its initial statistics) has logits
    below 1e-9: a clamp that rounds small values (6 - relu(6 - x)) zeroed them all."""
    model = MODELS["mobilenetv2"].build(10, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(7), (2, 32, 32, 3))
    fz = freeze(model, x)
    model.eval()
    y, y_frozen = np.asarray(model(x), np.float64), np.asarray(fz(x), np.float64)
    assert 0 < np.max(np.abs(y)) < 1e-6
    assert np.max(np.abs(y_frozen - y)) <= 1e-4 * np.max(np.abs(y))


def test_an_nchw_model_and_a_second_freeze():
    model = MODELS["resnet18"].build(10, layout="NCHW", rngs=nnx.Rngs(0))
    _calibrate(model, 5)
    x = jax.random.normal(jax.random.key(9), (2, 3, 32, 32))
    fz = freeze(model, x)
    again = freeze(fz, x)  # nothing left to fold; the frozen convs are packed again
    model.eval()
    assert len(fz.report.folded) == 20 and again.report.folded == ()
    for m in (fz, again):
        np.testing.assert_allclose(m(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not ONEDNN, reason="the frozen primitive needs the oneDNN extension")
def test_vmap_runs_and_grad_says_it_is_for_inference():
    unit = ConvBN(3, 8, 3, rngs=nnx.Rngs(0))
    _calibrate(unit, 6)
    xs = jax.random.normal(jax.random.key(10), (3, 2, 8, 8, 3))
    fz = freeze(unit, xs[0])
    unit.eval()
    np.testing.assert_allclose(jax.vmap(fz)(xs), jax.vmap(unit)(xs), rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="for inference and has no derivative"):
        jax.grad(lambda x: fz(x).sum())(xs[0])
