"""Tensors of other libraries as inputs (issue 25, item 4): every public op and nn module reads a
CPU PyTorch tensor — float32, float16, bfloat16 — as the same computation on NumPy input, for
``x`` and for weights and biases, without jaxconv importing torch (one rule:
``jaxconv._check.check_array`` returns the JAX array, through DLPack, else ``__array__``).

The torch tests skip without torch (CI has it: ``JAXCONV_REQUIRE_TORCH=1``); the protocol tests
use stand-ins that are not torch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxconv
from jaxconv import _check, models, nn

DTYPES = ("float32", "float16", "bfloat16")


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def _pair(torch, rng, shape, dtype, scale=1.0):
    """The same values as a torch tensor of ``dtype`` and as a NumPy array of that dtype."""
    t = torch.from_numpy((scale * rng.standard_normal(shape)).astype(np.float32))
    t = t.to(getattr(torch, dtype))
    return t, t.float().numpy().astype(jnp.dtype(dtype))


#: name → (the op, the shapes of its array arguments, its keywords)
OPS = {
    "conv": (jaxconv.conv, [(2, 8, 8, 4), (3, 3, 4, 6), (6,)], {"stride": 2}),
    "conv_nchw": (jaxconv.conv, [(2, 4, 8, 8), (6, 4, 3, 3)], {"layout": "NCHW"}),
    "conv1x1": (jaxconv.conv1x1, [(2, 8, 8, 4), (4, 6), (6,)], {}),
    "bottleneck": (jaxconv.bottleneck, [(2, 8, 8, 4), (4, 3), (3, 3, 3, 6), (3,), (6,)], {}),
    "depthwise_conv": (jaxconv.depthwise_conv, [(2, 8, 8, 4), (3, 3, 1, 8), (8,)], {}),
    "separable_conv": (
        jaxconv.separable_conv,
        [(2, 8, 8, 4), (3, 3, 1, 4), (4, 6), (4,), (6,)],
        {"activation": jax.nn.relu},
    ),
    "conv_transpose": (jaxconv.conv_transpose, [(2, 5, 5, 4), (3, 3, 4, 6), (6,)], {"stride": 2}),
    "conv_transpose_cropped": (
        jaxconv.conv_transpose,
        [(2, 5, 5, 4), (3, 3, 4, 6), (6,)],
        {"stride": 2, "padding": 1, "output_padding": 1},
    ),
    "max_pool": (jaxconv.max_pool, [(2, 8, 8, 4)], {"window": 3, "stride": 2}),
    "avg_pool": (jaxconv.avg_pool, [(2, 8, 8, 4)], {"window": 2}),
    "global_avg_pool": (jaxconv.global_avg_pool, [(2, 8, 8, 4)], {}),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(OPS))
def test_every_op_reads_torch_tensors_as_numpy(torch, rng, name, dtype):
    op, shapes, kwargs = OPS[name]
    pairs = [_pair(torch, rng, s, dtype) for s in shapes]
    got = op(*(t for t, _ in pairs), **kwargs)
    want = op(*(a for _, a in pairs), **kwargs)
    assert isinstance(got, jax.Array) and got.dtype == jnp.dtype(dtype)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize("dtype", DTYPES)
def test_explain_xla_cost_and_autotune_read_torch_tensors(torch, rng, dtype):
    (tx, x), (tw, w) = (_pair(torch, rng, s, dtype) for s in ((2, 8, 8, 4), (3, 3, 4, 6)))
    assert jaxconv.explain(tx, tw, stride=2) == jaxconv.explain(x, w, stride=2)
    assert jaxconv.explain(jaxconv.conv, tx, tw) == jaxconv.explain(jaxconv.conv, x, w)
    assert jaxconv.explain(jaxconv.conv, x, tw) == jaxconv.explain(jaxconv.conv, x, w)
    assert jaxconv.xla_cost(jaxconv.conv, tx, w=tw) == jaxconv.xla_cost(jaxconv.conv, x, w=w)
    tune = dict(lowerings=("xla",), repeats=1, warmup=0, save=False)
    assert jaxconv.autotune(jaxconv.conv, tx, tw, **tune).keys() == (
        jaxconv.autotune(jaxconv.conv, x, w, **tune).keys()
    )


def _modules(rngs: nnx.Rngs, dtype) -> dict[str, tuple[nnx.Module, tuple[int, ...]]]:
    """Every nn module that takes an array, with an input shape it takes."""
    p = {"param_dtype": dtype}
    image = (2, 8, 8, 4)
    return {
        "Conv": (nn.Conv(4, 6, 3, stride=2, rngs=rngs, **p), image),
        "Conv_unbatched": (nn.Conv(4, 6, 3, rngs=rngs, **p), (8, 8, 4)),
        "Conv1x1": (nn.Conv1x1(4, 6, rngs=rngs, **p), image),
        "ConvBN": (nn.ConvBN(4, 6, 3, rngs=rngs, **p), image),
        "DepthwiseConv": (nn.DepthwiseConv(4, 3, multiplier=2, rngs=rngs, **p), image),
        "SeparableConv": (nn.SeparableConv(4, 6, 3, rngs=rngs, **p), image),
        "ConvTranspose": (nn.ConvTranspose(4, 6, 3, stride=2, rngs=rngs, **p), image),
        "MaxPool": (nn.MaxPool(2), image),
        "MaxPool_unbatched": (nn.MaxPool(2), (8, 8, 4)),
        "AvgPool": (nn.AvgPool(3, stride=1, padding="SAME"), image),
        "GlobalAvgPool": (nn.GlobalAvgPool(), image),
        "LocalResponseNorm": (nn.LocalResponseNorm(3), image),
        "BasicBlock": (nn.BasicBlock(4, 6, stride=2, rngs=rngs, **p), image),
        "ResNetBottleneck": (nn.ResNetBottleneck(4, 2, rngs=rngs, **p), image),
        "InvertedResidual": (nn.InvertedResidual(4, 4, expand_ratio=2, rngs=rngs, **p), image),
        "Inception": (nn.Inception(4, (2, 2, 3, 2, 3, 2), rngs=rngs, **p), image),
        "Inception_fused": (
            nn.Inception(4, (2, 2, 3, 2, 3, 2), fuse_1x1=True, rngs=rngs, **p),
            image,
        ),
        "Bottleneck": (nn.Bottleneck(4, 2, 6, 3, rngs=rngs, **p), image),
        "PoolProjection": (nn.PoolProjection(4, 3, rngs=rngs, **p), image),
        "MLPConv": (nn.MLPConv(4, (6, 5, 3), 3, rngs=rngs, **p), image),
    }


MODULES = list(_modules(nnx.Rngs(0), jnp.float32))


@pytest.mark.parametrize("dtype", ("float32", "bfloat16"))
@pytest.mark.parametrize("name", MODULES)
def test_every_module_reads_torch_tensors_as_numpy(torch, rng, name, dtype):
    module, shape = _modules(nnx.Rngs(0), jnp.dtype(dtype))[name]
    module.eval()  # BatchNorm from its running statistics: one call cannot change the next
    t, a = _pair(torch, rng, shape, dtype)
    got, want = module(t), module(a)
    assert isinstance(got, jax.Array) and got.dtype == want.dtype
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_jit_grad_and_vmap_are_unaffected(torch, rng):
    (tx, x), (tw, w), (tb, b) = (_pair(torch, rng, s, "float32") for s in OPS["conv"][1])

    def loss(w_, x_):
        return jnp.sum(jnp.tanh(jaxconv.conv(x_, w_, tb)))

    # A tensor closed over in a traced function is a constant there.
    np.testing.assert_array_equal(
        jax.jit(lambda x_: jaxconv.conv(x_, tw, tb))(x), jaxconv.conv(x, w, b)
    )
    grads = jax.grad(loss)(w, tx), jax.grad(loss)(w, x)
    np.testing.assert_array_equal(*grads)
    mapped = jax.vmap(lambda x_: jaxconv.conv(x_[None], tw)[0])(x)
    np.testing.assert_array_equal(mapped, jaxconv.conv(x, w))
    layer = nn.Conv(4, 6, 3, rngs=nnx.Rngs(0))
    assert nnx.jit(lambda m, x_: m(x_))(layer, x).shape == layer(tx).shape


def test_a_tensor_changed_later_leaves_the_result_alone(torch, rng):
    """DLPack shares the tensor's memory; the JAX array must not see a later in-place change."""
    t, a = _pair(torch, rng, (2, 8, 8, 4), "float32")
    x = _check.as_array(t, "x")
    t.add_(1.0)
    np.testing.assert_array_equal(np.asarray(x), a)


def test_torch_tensors_that_cannot_be_read_name_the_argument_and_the_fix(torch):
    x = jnp.ones((1, 8, 8, 4))
    with pytest.raises(ValueError, match=r"`w` \(a torch.Tensor\) requires grad.*`w.detach\(\)`"):
        jaxconv.conv(x, torch.ones((3, 3, 4, 6), requires_grad=True))
    with pytest.raises(ValueError, match=r"`x` \(a torch.Tensor\) requires grad"):
        nn.Conv(4, 6, 3, rngs=nnx.Rngs(0))(torch.ones((1, 8, 8, 4), requires_grad=True))
    conjugate = torch.ones((2, 2), dtype=torch.complex64).conj()
    with pytest.raises(ValueError, match=r"`b` \(a torch.Tensor\) on device cpu cannot be read"):
        jaxconv.conv(x, jnp.ones((3, 3, 4, 6)), conjugate)


# --- the protocols, without torch ------------------------------------------------------------


class _NumpyOnly:
    """A foreign array that JAX does not know, with only ``__array__``."""

    def __init__(self, array):
        self.array = array

    def __array__(self, dtype=None, copy=None):
        return self.array if dtype is None else self.array.astype(dtype)


class _DlpackOnly:
    """A foreign array with only DLPack (as PyTorch's bfloat16 tensors are to NumPy)."""

    def __init__(self, array):
        self.array = array

    def __dlpack__(self, **kwargs):
        return self.array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()


class _OnAnotherDevice:
    """What a CUDA tensor is to a JAX without a GPU: both protocols refuse."""

    shape, dtype, device = (3, 3, 4, 6), "torch.float32", "cuda:0"

    def __dlpack__(self, **kwargs):
        raise BufferError("not on the CPU")

    def __dlpack_device__(self):
        return (2, 0)  # kDLCUDA

    def __array__(self, dtype=None, copy=None):
        raise TypeError("can't convert cuda:0 device type tensor to numpy")


@pytest.mark.parametrize("wrap", [_NumpyOnly, _DlpackOnly], ids=["__array__", "__dlpack__"])
def test_any_object_with_either_protocol_is_read(rng, wrap):
    x = rng.standard_normal((2, 8, 8, 4)).astype(np.float32)
    w = rng.standard_normal((3, 3, 4, 6)).astype(np.float32)
    np.testing.assert_array_equal(
        jaxconv.conv(wrap(x), wrap(w)), jaxconv.conv(jnp.asarray(x), jnp.asarray(w))
    )
    np.testing.assert_array_equal(nn.MaxPool(2)(wrap(x)), jaxconv.max_pool(x, 2))


def test_a_tensor_on_a_device_jax_cannot_read_names_the_argument_and_the_fix():
    with pytest.raises(ValueError, match=r"`w` .* on device cuda:0 cannot be read.*`w.cpu\(\)`"):
        jaxconv.conv(jnp.ones((1, 8, 8, 4)), _OnAnotherDevice())


def test_jax_and_numpy_arrays_and_abstract_values_pass_through():
    numpy_array, jax_array = np.ones((2, 3)), jnp.ones((2, 3))
    struct = jax.ShapeDtypeStruct((2, 3), jnp.float32)
    for value in (numpy_array, jax_array, struct):
        assert _check.check_array(value, "x") is value

    @jax.jit
    def traced(x):
        assert _check.check_array(x, "x") is x
        return x

    traced(jax_array)
    with pytest.raises(TypeError, match=r"`x` must be an array, got list"):
        _check.check_array([1.0, 2.0], "x")


#: name → a small model in PyTorch's layout (built with ``layout="NCHW"``) and its input side.
MODELS = {
    "GoogLeNet": (  # transform_input: arithmetic on `x` before the first conv
        lambda: models.GoogLeNet(
            10,
            stem="cifar",
            aux_logits=False,
            batch_norm=True,
            transform_input=True,
            layout="NCHW",
            rngs=nnx.Rngs(0),
        ),
        8,
    ),
    "NiN": (lambda: models.NiN(layout="NCHW", rngs=nnx.Rngs(0)), 16),
    "MiniInception": (lambda: models.MiniInception(layout="NCHW", rngs=nnx.Rngs(0)), 16),
    "ResNet18": (
        lambda: models.ResNet18(10, stem="cifar", layout="NCHW", rngs=nnx.Rngs(0)),
        16,
    ),
    "MobileNetV2": (
        lambda: models.MobileNetV2(10, stem="cifar", layout="NCHW", rngs=nnx.Rngs(0)),
        16,
    ),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_reads_an_nchw_torch_batch_as_numpy(torch, rng, name):
    """A porter's batch as it comes from a torch DataLoader: an NCHW float32 tensor, into a
    model built with ``layout="NCHW"``."""
    make, size = MODELS[name]
    model = make()
    model.eval()
    t, a = _pair(torch, rng, (2, 3, size, size), "float32")
    got, want = model(t), model(a)
    assert isinstance(got, jax.Array) and got.dtype == want.dtype
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
