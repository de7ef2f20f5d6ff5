"""jaxconv.models: shapes at 224 and 32, parameter counts, paths, jit/grad, train vs eval.

Shapes come from ``jax.eval_shape``; the models that run get NumPy-drawn parameters
(:func:`materialize`), because compiling Flax's threefry initializers for GoogLeNet's ~130
parameter shapes takes a minute on a 2-core CPU.
"""

from __future__ import annotations

import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxconv.models import (
    GOOGLENET_INCEPTION,
    AuxClassifier,
    GoogLeNet,
    GoogLeNetOutputs,
    MiniInception,
    MobileNetV2,
    NiN,
    ResNet18,
    aux_pool_geometry,
    minimum_input_size,
)
from jaxconv.nn import Conv, Conv1x1, ConvBN, VarianceScaling


def materialize(make, seed: int = 0):
    """``make()``'s module with seeded NumPy parameters (LeCun-scaled kernels): no XLA compile."""
    module = nnx.eval_shape(make)
    rng = np.random.default_rng(seed)
    for i, (path, var) in enumerate(nnx.to_flat_state(nnx.state(module))):
        spec, name = var.get_value(), path[-1]
        if isinstance(var, nnx.RngKey):
            var.set_value(jax.random.key(seed + i))
            continue
        if isinstance(var, nnx.RngCount) or name == "mean":
            value = np.zeros(spec.shape)
        elif name == "kernel":
            value = rng.standard_normal(spec.shape) / math.sqrt(math.prod(spec.shape[:-1]))
        elif name in ("scale", "var"):
            value = np.ones(spec.shape)
        else:
            value = 0.1 * rng.standard_normal(spec.shape)
        var.set_value(jnp.asarray(value, spec.dtype))
    return module


def output_shape(make, size: int, *, train: bool, batch: int = 2):
    """Output shapes of ``make()`` on a ``[batch, size, size, 3]`` input, without computing."""

    def forward(x):
        model = make()
        if not train:
            model.eval()
        return model(x)

    out = jax.eval_shape(forward, jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32))
    return jax.tree.map(lambda s: s.shape, out)


def n_params(module) -> int:
    return sum(p.size for p in jax.tree.leaves(nnx.state(module, nnx.Param)))


def param_paths(module) -> set[str]:
    return {".".join(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(module, nnx.Param))}


def abstract(make):
    return nnx.eval_shape(make)


# --- shapes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, make, size, train, want",
    [
        ("googlenet", lambda: GoogLeNet(rngs=nnx.Rngs(0)), 224, False, (2, 1000)),
        (
            "googlenet",
            lambda: GoogLeNet(rngs=nnx.Rngs(0)),
            224,
            True,
            GoogLeNetOutputs((2, 1000), (2, 1000), (2, 1000)),
        ),
        (
            "googlenet-bn",
            lambda: GoogLeNet(10, batch_norm=True, rngs=nnx.Rngs(0)),
            224,
            True,
            GoogLeNetOutputs((2, 10), (2, 10), (2, 10)),
        ),
        (
            "googlenet-cifar",
            lambda: GoogLeNet(10, stem="cifar", rngs=nnx.Rngs(0)),
            32,
            True,
            GoogLeNetOutputs((2, 10), (2, 10), (2, 10)),
        ),
        (
            "googlenet-cifar",
            lambda: GoogLeNet(10, stem="cifar", rngs=nnx.Rngs(0)),
            32,
            False,
            (2, 10),
        ),
        (
            "googlenet-noaux",
            lambda: GoogLeNet(aux_logits=False, rngs=nnx.Rngs(0)),
            224,
            True,
            (2, 1000),
        ),
        ("nin", lambda: NiN(rngs=nnx.Rngs(0)), 32, True, (2, 10)),
        ("nin", lambda: NiN(rngs=nnx.Rngs(0)), 224, False, (2, 10)),
        ("mini", lambda: MiniInception(rngs=nnx.Rngs(0)), 32, True, (2, 10)),
        (
            "mini-direct",
            lambda: MiniInception(bottleneck=False, rngs=nnx.Rngs(0)),
            224,
            False,
            (2, 10),
        ),
    ],
)
def test_output_shapes(name, make, size, train, want):
    assert output_shape(make, size, train=train) == want


def test_googlenet_imagenet_stem_sizes_and_errors():
    # 31, not 47: the ceil_mode pools keep PyTorch's partial windows (issue 12), so the maps
    # go 16 → 8 → 4 → 2 → 1 and a 32×32 input runs the ImageNet stem
    assert minimum_input_size("imagenet") == 31
    assert minimum_input_size("cifar") == 4
    for size in (31, 32):
        assert output_shape(
            lambda: GoogLeNet(aux_logits=False, rngs=nnx.Rngs(0)), size, train=False
        ) == (2, 1000)
    with pytest.raises(
        ValueError,
        match=r"needs `x` with H, W >= 31, got H, W = 30, 30 \(use stem='cifar'",
    ):
        output_shape(lambda: GoogLeNet(rngs=nnx.Rngs(0)), 30, train=False)
    # 4a is 3×3 at 62 pixels: too small for the auxiliary heads' 4×4 grid (training only).
    assert output_shape(lambda: GoogLeNet(rngs=nnx.Rngs(0)), 62, train=False) == (2, 1000)
    with pytest.raises(ValueError, match=r"need feature maps of at least 4×4 at 4a/4d, got 3"):
        output_shape(lambda: GoogLeNet(rngs=nnx.Rngs(0)), 62, train=True)


def test_aux_pool_is_the_papers_5x5_stride_3_on_14x14():
    assert aux_pool_geometry(14) == (5, 3)  # §5: "5×5 filter size and stride 3 … 4×4×512"
    for size in range(4, 40):
        window, stride = aux_pool_geometry(size)
        assert (size - window) // stride + 1 == 4  # always a 4×4 grid, covering the map
        assert (size - window) % stride == 0


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(stem="tiny"), ValueError, r"`stem` must be 'imagenet' or 'cifar', got 'tiny'"),
        (dict(aux_logits=1), TypeError, r"`aux_logits` must be a bool, got 1"),
        (dict(num_classes=0), ValueError, r"`num_classes` must be a positive int, got 0"),
    ],
)
def test_googlenet_constructor_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        GoogLeNet(**kwargs, rngs=nnx.Rngs(0))


def test_models_check_input_channels():
    for make in (
        lambda: GoogLeNet(rngs=nnx.Rngs(0)),
        lambda: NiN(rngs=nnx.Rngs(0)),
        lambda: MiniInception(rngs=nnx.Rngs(0)),
    ):
        model = abstract(make)
        with pytest.raises(ValueError, match=r"expects `x` \[N, H, W, C\] with C = 3 .* got 1 "):
            model(jnp.ones((1, 32, 32, 1)))


# --- parameters ------------------------------------------------------------------------------


def test_parameter_counts():
    assert n_params(abstract(lambda: GoogLeNet(aux_logits=False, rngs=nnx.Rngs(0)))) == 6_998_552
    assert n_params(abstract(lambda: NiN(rngs=nnx.Rngs(0)))) == 966_986
    # Each auxiliary head (§5): 1×1 conv 128, FC 4·4·128 → 1024, FC 1024 → classes, biased.
    with_aux = n_params(abstract(lambda: GoogLeNet(rngs=nnx.Rngs(0))))
    head = (4 * 4 * 128 + 1) * 1024 + (1024 + 1) * 1000
    assert with_aux - 6_998_552 == (512 + 1) * 128 + (528 + 1) * 128 + 2 * head


def test_batch_norm_variant_has_no_conv_biases():
    model = abstract(lambda: GoogLeNet(batch_norm=True, rngs=nnx.Rngs(0)))
    convs = [m for _, m in nnx.iter_modules(model) if isinstance(m, Conv)]
    assert len(convs) == 3 + 9 * 6 + 2  # stem, six per inception block, the aux heads' 1×1
    assert all(c.bias is None for c in convs)
    units = [m for _, m in nnx.iter_modules(model) if isinstance(m, ConvBN)]
    assert len(units) == len(convs)
    assert model.norm1 is None and model.norm2 is None  # lrn=None: off with BN
    with_lrn = abstract(lambda: GoogLeNet(rngs=nnx.Rngs(0)))
    assert with_lrn.norm1 is not None and with_lrn.norm2 is not None


def test_googlenet_paths_and_table_1_depths():
    model = abstract(lambda: GoogLeNet(rngs=nnx.Rngs(0)))
    paths = param_paths(model)
    for path in (
        "conv1.kernel",
        "conv1.bias",
        "conv2_reduce.kernel",
        "conv2.kernel",
        "inception_3a.branch_1x1.kernel",
        "inception_3b.branch_3x3.reduce.kernel",
        "inception_3b.branch_3x3.conv.kernel",
        "inception_4a.branch_5x5.reduce.kernel",
        "inception_4a.branch_5x5.conv.kernel",
        "inception_5b.branch_pool.proj.bias",
        "aux_4a.conv.kernel",
        "aux_4a.fc1.kernel",
        "aux_4d.fc2.bias",
        "fc.kernel",
    ):
        assert path in paths
    top = {p.split(".")[0] for p in paths}
    assert top == {
        "conv1",
        "conv2_reduce",
        "conv2",
        "aux_4a",
        "aux_4d",
        "fc",
        *(f"inception_{name}" for name in GOOGLENET_INCEPTION),
    }
    assert model.conv1.kernel.shape == (7, 7, 3, 64)
    assert model.inception_4a.branch_5x5.reduce.kernel.shape == (1, 1, 480, 16)
    assert model.inception_4a.branch_5x5.conv.kernel.shape == (5, 5, 16, 48)
    # Table 1's "output size" depth of each inception row.
    depths = {
        name: getattr(model, f"inception_{name}").out_features for name in GOOGLENET_INCEPTION
    }
    assert depths == {
        "3a": 256,
        "3b": 480,
        "4a": 512,
        "4b": 512,
        "4c": 512,
        "4d": 528,
        "4e": 832,
        "5a": 832,
        "5b": 1024,
    }


def test_nin_and_mini_inception_paths():
    nin = param_paths(abstract(lambda: NiN(rngs=nnx.Rngs(0))))
    assert {
        "mlpconv1.conv.kernel",
        "mlpconv1.pointwise_2.kernel",
        "mlpconv3.pointwise_2.bias",
    } <= nin
    assert abstract(lambda: NiN(rngs=nnx.Rngs(0))).mlpconv3.pointwise_2.kernel.shape == (
        1,
        1,
        192,
        10,
    )
    mini = abstract(lambda: MiniInception(rngs=nnx.Rngs(0)))
    direct = abstract(lambda: MiniInception(bottleneck=False, rngs=nnx.Rngs(0)))
    for name in ("inception_a", "inception_b", "inception_c", "inception_d"):
        block, block_direct = getattr(mini, name), getattr(direct, name)
        assert block.branch_5x5.reduce is not None
        assert block_direct.branch_5x5.reduce is None
        # The direct 5×5 reads the whole block input; everything else is unchanged.
        assert block_direct.branch_5x5.conv.conv.kernel.shape[2] == block.in_features
        assert block_direct.branch_3x3.reduce is not None
        assert block_direct.out_features == block.out_features
    assert "inception_a.branch_5x5.reduce.conv.kernel" in param_paths(mini)
    assert not any(".branch_5x5.reduce." in p for p in param_paths(direct))


# --- running: jit, grad, train vs eval -------------------------------------------------------


def _loss(model, x):
    out = model(x)
    if isinstance(out, GoogLeNetOutputs):  # the paper weights the auxiliary losses by 0.3
        return jnp.mean(out.logits**2) + 0.3 * (jnp.mean(out.aux_4a**2) + jnp.mean(out.aux_4d**2))
    return jnp.mean(out**2)


#: Tests compile with LLVM's cheap settings: about half the compile time, same results.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@functools.partial(jax.jit, static_argnums=0, compiler_options=FAST_COMPILE)
def _step(graphdef, state, x):
    model = nnx.merge(graphdef, state)
    loss, grads = nnx.value_and_grad(_loss)(model, x)
    return loss, grads, nnx.state(model)


@functools.partial(jax.jit, static_argnums=0, compiler_options=FAST_COMPILE)
def _predict(graphdef, state, x):
    return nnx.merge(graphdef, state)(x)


def train_step(model, x):
    """One jitted loss-and-grad step; updates ``model``'s batch stats and RNG counts."""
    loss, grads, state = _step(*nnx.split(model), x)
    nnx.update(model, state)
    return loss, grads


def predict(model, x):
    return _predict(*nnx.split(model), x)


def test_googlenet_jit_grad_and_train_vs_eval():
    model = materialize(lambda: GoogLeNet(10, rngs=nnx.Rngs(0)))
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 63, 63, 3)), jnp.float32)
    loss_1, grads = train_step(model, x)
    loss_2, _ = train_step(model, x)
    assert np.isfinite(loss_1) and loss_1 != loss_2  # dropout draws a new mask each step
    want = jax.tree.map(lambda p: p.shape, nnx.state(model, nnx.Param))
    assert jax.tree.map(lambda g: g.shape, nnx.state(grads, nnx.Param)) == want
    flat = dict(nnx.to_flat_state(nnx.state(grads, nnx.Param)))
    for path in (
        ("aux_4a", "fc2", "kernel"),
        ("aux_4d", "conv", "kernel"),
        ("conv1", "kernel"),
        ("inception_4a", "branch_5x5", "reduce", "kernel"),
    ):
        g = flat[path].get_value()
        assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).sum()) > 0, path
    model.eval()
    logits = predict(model, x)
    assert logits.shape == (2, 10)  # no auxiliary outputs in eval mode
    np.testing.assert_array_equal(predict(model, x), logits)  # no dropout
    assert float(jnp.abs(logits).max()) > 0


def test_nin_dropout_only_in_training():
    model = materialize(lambda: NiN(rngs=nnx.Rngs(0)))
    x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 32, 32, 3)), jnp.float32)
    loss_1, grads = train_step(model, x)
    loss_2, _ = train_step(model, x)
    assert loss_1 != loss_2
    assert float(jnp.abs(grads.mlpconv1.conv.kernel[...]).sum()) > 0
    model.eval()
    y = predict(model, x)
    np.testing.assert_array_equal(predict(model, x), y)
    assert y.shape == (2, 10) and float(jnp.min(y)) >= 0.0  # the Caffe model's final ReLU


def test_mini_inception_trains_batch_stats():
    model = materialize(lambda: MiniInception(bottleneck=False, rngs=nnx.Rngs(0)))
    x = jnp.asarray(np.random.default_rng(2).standard_normal((2, 32, 32, 3)), jnp.float32)
    before = np.asarray(model.stem.bn.mean[...])
    loss, grads = train_step(model, x)
    assert np.isfinite(loss)
    assert not np.allclose(before, model.stem.bn.mean[...])  # batch statistics were used
    assert float(jnp.abs(grads.inception_d.branch_5x5.conv.conv.kernel[...]).sum()) > 0


# --- options passed down: BatchNorm momentum/epsilon, kernel_init ------------------------------


def _batch_norms(model):
    return [
        (".".join(map(str, p)), m)
        for p, m in nnx.iter_modules(model)
        if isinstance(m, nnx.BatchNorm)
    ]


def test_googlenet_bn_options_reach_every_batch_norm():
    model = abstract(
        lambda: GoogLeNet(batch_norm=True, momentum=0.8, epsilon=1e-3, rngs=nnx.Rngs(0))
    )
    norms = _batch_norms(model)
    assert len(norms) == 3 + 9 * 6 + 2  # stem, six per inception block, the aux heads' 1×1
    for path, bn in norms:
        assert (bn.momentum, bn.epsilon) == (0.8, 1e-3), path
    cifar = abstract(
        lambda: GoogLeNet(
            batch_norm=True, stem="cifar", aux_logits=False, epsilon=1e-3, rngs=nnx.Rngs(0)
        )
    )
    norms = _batch_norms(cifar)
    assert len(norms) == 1 + 9 * 6
    assert all((bn.momentum, bn.epsilon) == (0.9, 1e-3) for _, bn in norms)
    default = abstract(lambda: GoogLeNet(batch_norm=True, rngs=nnx.Rngs(0)))
    assert all((bn.momentum, bn.epsilon) == (0.9, 1e-5) for _, bn in _batch_norms(default))


def test_googlenet_kernel_init_reaches_every_conv():
    # The CIFAR stem without aux heads keeps the real initialization small.
    init = nnx.initializers.constant(0.125)
    model = GoogLeNet(10, stem="cifar", aux_logits=False, kernel_init=init, rngs=nnx.Rngs(0))
    convs = [(p, m) for p, m in nnx.iter_modules(model) if isinstance(m, (Conv, Conv1x1))]
    assert len(convs) == 1 + 9 * 6
    for path, conv in convs:
        np.testing.assert_array_equal(conv.kernel[...], 0.125, err_msg=str(path))
    assert not np.all(np.asarray(model.fc.kernel[...]) == 0.125)  # fc keeps Flax's init


def test_mini_inception_options_and_defaults():
    init = nnx.initializers.constant(0.5)
    model = abstract(
        lambda: MiniInception(momentum=0.8, epsilon=1e-3, kernel_init=init, rngs=nnx.Rngs(0))
    )
    norms = _batch_norms(model)
    assert len(norms) == 1 + 4 * 6
    assert all((bn.momentum, bn.epsilon) == (0.8, 1e-3) for _, bn in norms)
    # Explicit defaults give the same parameters and statistics as no options at all.
    a = MiniInception(rngs=nnx.Rngs(2))
    lecun_normal = VarianceScaling(1.0, "fan_in", "truncated_normal")  # Flax's, compiled once
    b = MiniInception(momentum=0.9, epsilon=1e-5, kernel_init=lecun_normal, rngs=nnx.Rngs(2))
    for kind in (nnx.Param, nnx.BatchStat):
        jax.tree.map(np.testing.assert_array_equal, nnx.state(a, kind), nnx.state(b, kind))
    c = MiniInception(kernel_init=init, rngs=nnx.Rngs(2))
    np.testing.assert_array_equal(c.stem.conv.kernel[...], 0.5)
    np.testing.assert_array_equal(c.inception_d.branch_pool.proj.conv.kernel[...], 0.5)


@pytest.mark.parametrize(
    "make, err, match",
    [
        (
            lambda: GoogLeNet(epsilon=1e-3, rngs=nnx.Rngs(0)),
            ValueError,
            r"`epsilon` needs BatchNorm",
        ),
        (
            lambda: GoogLeNet(batch_norm=True, momentum=-0.1, rngs=nnx.Rngs(0)),
            ValueError,
            r"`momentum` must be a number in \[0.0, 1.0\), got -0.1",
        ),
        (
            lambda: MiniInception(batch_norm=False, momentum=0.9, rngs=nnx.Rngs(0)),
            ValueError,
            r"`momentum` needs BatchNorm",
        ),
        (
            lambda: MiniInception(kernel_init=0.1, rngs=nnx.Rngs(0)),
            TypeError,
            r"`kernel_init` must be an initializer",
        ),
        (
            lambda: AuxClassifier(512, 10, epsilon=1e-3, rngs=nnx.Rngs(0)),
            ValueError,
            r"`epsilon` needs BatchNorm",
        ),
    ],
)
def test_model_option_errors(make, err, match):
    with pytest.raises(err, match=match):
        abstract(make)


def _inception_paths(prefix: str, bn: bool) -> set[str]:
    leaves = ("bn.bias", "bn.scale", "conv.kernel") if bn else ("bias", "kernel")
    units = ("branch_1x1", "branch_3x3.reduce", "branch_3x3.conv", "branch_5x5.reduce")
    units += ("branch_5x5.conv", "branch_pool.proj")
    return {f"{prefix}.{u}.{leaf}" for u in units for leaf in leaves}


@pytest.mark.parametrize("batch_norm", [False, True])
def test_googlenet_default_parameter_paths_are_unchanged(batch_norm):
    leaves = ("bn.bias", "bn.scale", "conv.kernel") if batch_norm else ("bias", "kernel")
    want = {f"{u}.{leaf}" for u in ("conv1", "conv2_reduce", "conv2") for leaf in leaves}
    for name in GOOGLENET_INCEPTION:
        want |= _inception_paths(f"inception_{name}", batch_norm)
    for head in ("aux_4a", "aux_4d"):
        want |= {f"{head}.conv.{leaf}" for leaf in leaves}
        want |= {f"{head}.{fc}.{p}" for fc in ("fc1", "fc2") for p in ("bias", "kernel")}
    want |= {"fc.bias", "fc.kernel"}
    model = abstract(lambda: GoogLeNet(batch_norm=batch_norm, rngs=nnx.Rngs(0)))
    assert param_paths(model) == want


def test_eval_shape_then_reseed_materializes_dropout_rngs_for_nnx_jit():
    """The README's fast path: ``nnx.eval_shape`` leaves Dropout's RNG key and count abstract
    and ``nnx.jit`` refuses them; loading the parameters and ``nnx.reseed`` on the stream the
    model was built with (``default`` for ``nnx.Rngs(0)``) makes the model runnable."""
    from jaxconv.models import NiN

    def make():
        return NiN(num_classes=10, rngs=nnx.Rngs(0))

    model = nnx.eval_shape(make)
    nnx.update(model, nnx.state(make(), nnx.Param))  # stands for a checkpoint load
    forward = nnx.jit(lambda m, x: m(x))
    x = jnp.ones((2, 32, 32, 3))
    with pytest.raises(TypeError, match=r"ShapeDtypeStruct'> is not a valid JAX type"):
        forward(model, x)
    nnx.reseed(model, default=0)
    model.train()
    assert forward(model, x).shape == (2, 10)
    keys = nnx.to_flat_state(nnx.state(model, nnx.RngState))
    assert keys and not any(isinstance(v.get_value(), jax.ShapeDtypeStruct) for _, v in keys)


# --- layout: NCHW batches, transposed once at the stem (issue 25) ----------------------------

#: Every model class, small and fast: (its constructor, an input side it runs at).
LAYOUT_MODELS = {
    "GoogLeNet": (  # transform_input: GoogLeNet's own code after the entry, on NHWC
        lambda **kw: GoogLeNet(
            10,
            stem="cifar",
            aux_logits=False,
            batch_norm=True,
            transform_input=True,
            **kw,
            rngs=nnx.Rngs(0),
        ),
        8,
    ),
    "NiN": (lambda **kw: NiN(**kw, rngs=nnx.Rngs(0)), 16),
    "MiniInception": (lambda **kw: MiniInception(**kw, rngs=nnx.Rngs(0)), 16),
    "ResNet18": (lambda **kw: ResNet18(10, stem="cifar", **kw, rngs=nnx.Rngs(0)), 16),
    "MobileNetV2": (lambda **kw: MobileNetV2(10, stem="cifar", **kw, rngs=nnx.Rngs(0)), 16),
}


@pytest.mark.parametrize("name", list(LAYOUT_MODELS))
def test_an_nchw_model_gives_the_nhwc_models_logits(name, rng):
    make, size = LAYOUT_MODELS[name]
    nhwc, nchw = materialize(make), materialize(lambda: make(layout="NCHW"))  # same parameters
    nhwc.eval()
    nchw.eval()
    assert (nhwc.layout, nchw.layout) == ("NHWC", "NCHW")
    x = jnp.asarray(rng.standard_normal((2, size, size, 3)), jnp.float32)
    # one compile for both (eager runs would compile every layer on its own)
    expected, got = nnx.jit(lambda a, b, x: (a(x), b(x.transpose(0, 3, 1, 2))))(nhwc, nchw, x)
    assert expected.shape == (2, 10) and np.abs(expected).max() > 0
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name", list(LAYOUT_MODELS))
def test_a_batch_in_the_other_layout_gets_the_layout_hint(name):
    """Issue 25: an NCHW batch into a model got a channel-count error without the hint
    jaxconv.conv gives."""
    make, size = LAYOUT_MODELS[name]
    for layout, shape, looks, fix in (
        ("NHWC", (2, 3, size, size), r"channels-first \(NCHW\)", r"x\.transpose\(0, 2, 3, 1\)"),
        ("NCHW", (2, size, size, 3), r"channels-last \(NHWC\)", r"x\.transpose\(0, 3, 1, 2\)"),
    ):
        model = abstract(lambda layout=layout: make(layout=layout))
        model.eval()
        x = np.zeros(shape, np.float32)  # raised before anything runs
        with pytest.raises(
            ValueError,
            match=rf"^{name} \(layout='{layout}'\) expects `x` .* with C = 3 \(`in_features`\), "
            rf"got {size} channels in shape {re.escape(str(shape))}\. `x` looks {looks}: .*"
            rf"build the model with(out)? `layout=\"NCHW\"`.*`{fix}`$",
        ):
            model(x)
    model = abstract(make)
    with pytest.raises(ValueError, match=rf"^{name} \(layout='NHWC'\) expects `x` of rank 4 "):
        model(np.zeros((size, size, 3), np.float32))


@pytest.mark.parametrize(
    "layout, err, match",
    [
        ("NCW", ValueError, r"`layout` of a model must be 'NHWC' or 'NCHW' \(2-D\), got 'NCW'"),
        ("CHWN", ValueError, r"`layout`"),
        (None, TypeError, r"`layout` must be a string"),
    ],
)
def test_model_layouts_are_checked(layout, err, match):
    for make, _ in LAYOUT_MODELS.values():
        with pytest.raises(err, match=match):
            abstract(lambda make=make: make(layout=layout))
    assert abstract(lambda: NiN(layout="nchw", rngs=nnx.Rngs(0))).layout == "NCHW"
