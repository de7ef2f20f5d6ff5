"""ResNet: the blocks (``BasicBlock``, ``ResNetBottleneck``) and the models of He et al. 2016.

Parameter counts are torchvision's published figures (exact); MACs are torchvision's model
card's GFLOPS column (which counts multiply-accumulates), to its two decimals. The blocks and a
whole ResNet-18 are compared with a PyTorch transcription of torchvision's ``resnet.py``
(bench/torch_models.py; torchvision itself is not installed), with the weights copied by
jaxconv.models' torchvision loader (test_torchvision.py tests it on whole models).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxconv.models import load_torchvision_state_dict
from jaxconv.models._resnet import (
    RESNET_LAYERS,
    ResNet,
    ResNet18,
    ResNet34,
    ResNet50,
    ResNet101,
    ResNet152,
)
from jaxconv.nn import summary
from jaxconv.nn._blocks import BasicBlock, ResNetBottleneck

IMAGENET = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)

#: torchvision's model card: parameters and GFLOPS (= G multiply-accumulates) at 224×224.
TORCHVISION = {
    ResNet18: (11_689_512, 1.81),
    ResNet34: (21_797_672, 3.66),
    ResNet50: (25_557_032, 4.09),
    ResNet101: (44_549_160, 7.80),
    ResNet152: (60_192_808, 11.51),
}


def _abstract(factory):
    model = nnx.eval_shape(factory)
    model.eval()
    return model


def _params(model) -> int:
    return sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


@pytest.mark.parametrize("cls", list(TORCHVISION), ids=lambda c: c.__name__)
def test_parameters_and_macs_are_torchvisions(cls):
    params, gmacs = TORCHVISION[cls]
    s = summary(_abstract(lambda: cls(rngs=nnx.Rngs(0))), IMAGENET, xla=None)
    assert s.total.params == params
    assert round(s.total.macs / 1e9, 2) == gmacs
    assert s.total.output_shape == (1, 1000)


def test_resnet50_macs_exactly_and_the_v1_difference():
    """4,089,184,256 MACs for v1.5; v1 (the paper's 3.8×10⁹) strides the first 1×1 of
    stages 2-4, so those three 1×1 reductions run on a quarter of the positions."""
    v15 = summary(_abstract(lambda: ResNet50(rngs=nnx.Rngs(0))), IMAGENET, xla=None).total
    v1 = summary(
        _abstract(lambda: ResNet50(stride_in_1x1=True, rngs=nnx.Rngs(0))), IMAGENET, xla=None
    ).total
    assert v15.macs == 4_089_184_256
    assert v1.params == v15.params
    three_1x1s = sum(
        (size**2 - (size // 2) ** 2) * c_in * width
        for size, c_in, width in ((56, 256, 128), (28, 512, 256), (14, 1024, 512))
    )
    assert v15.macs - v1.macs == three_1x1s == 231_211_008
    assert round(v1.macs / 1e9, 1) == 3.9 and v1.macs < 3.9e9  # Table 1: "3.8×10⁹"


def test_wide_and_resnext_variants_match_torchvision():
    wide = _abstract(lambda: ResNet50(width_per_group=128, rngs=nnx.Rngs(0)))
    resnext = _abstract(lambda: ResNet50(groups=32, width_per_group=4, rngs=nnx.Rngs(0)))
    assert _params(wide) == 68_883_240  # wide_resnet50_2
    assert _params(resnext) == 25_028_904  # resnext50_32x4d


@pytest.mark.parametrize(
    ("cls", "channels"),
    [(ResNet50, (256, 512, 1024, 2048)), (ResNet18, (64, 128, 256, 512))],
    ids=["resnet50", "resnet18"],
)
def test_stage_shapes_and_strides_are_torchvisions(cls, channels):
    model = _abstract(lambda: cls(rngs=nnx.Rngs(0)))
    shapes = jax.eval_shape(lambda m, x: m.stages(x), model, IMAGENET)
    assert {k: v.shape for k, v in shapes.items()} == {
        f"layer{i + 1}": (1, 224 // stride, 224 // stride, c)
        for i, (stride, c) in enumerate(zip((4, 8, 16, 32), channels))
    }
    cifar = _abstract(lambda: cls(10, stem="cifar", rngs=nnx.Rngs(0)))
    x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    shapes = jax.eval_shape(lambda m, x: m.stages(x), cifar, x)
    assert [v.shape[1] for v in shapes.values()] == [32, 16, 8, 4]
    assert cifar.maxpool is None and cifar.conv1.conv.kernel.shape == (3, 3, 3, 64)


def test_the_stride_is_on_the_3x3_as_in_v15():
    s = summary(_abstract(lambda: ResNet50(rngs=nnx.Rngs(0))), IMAGENET, xla=None)
    for stage, size in (("layer2", 28), ("layer3", 14), ("layer4", 7)):
        assert s.row(f"{stage}.0.conv1").output_shape[1] == 2 * size
        assert s.row(f"{stage}.0.conv2").output_shape[1] == size
        assert s.row(f"{stage}.0.downsample").output_shape[1] == size
        assert s.row(f"{stage}.1").input_shape[1] == size
    v1 = summary(
        _abstract(lambda: ResNet50(stride_in_1x1=True, rngs=nnx.Rngs(0))), IMAGENET, xla=None
    )
    assert v1.row("layer2.0.conv1").output_shape[1] == 28


def test_parameter_paths_are_stable():
    model = _abstract(lambda: ResNet18(rngs=nnx.Rngs(0)))
    paths = {p for p, _ in nnx.to_flat_state(nnx.state(model))}
    for path in [
        ("conv1", "conv", "kernel"),
        ("conv1", "bn", "mean"),
        ("layer1", 0, "conv1", "conv", "kernel"),
        ("layer2", 0, "downsample", "conv", "kernel"),
        ("layer2", 0, "downsample", "bn", "var"),
        ("layer4", 1, "conv2", "bn", "scale"),
        ("fc", "kernel"),
        ("fc", "bias"),
    ]:
        assert path in paths, path
    assert ("layer1", 0, "downsample", "conv", "kernel") not in paths  # identity shortcut


def test_batchnorm_train_and_eval_modes():
    model = ResNet18(10, stem="cifar", rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (4, 16, 16, 3))

    def batch_stats():  # the arrays now (the state's Variables are the model's own)
        return jax.tree.leaves(nnx.state(model, nnx.BatchStat))

    before = batch_stats()
    forward = nnx.jit(lambda m, x: m(x))  # BatchStat updates come back out of nnx.jit
    model.eval()
    y_eval = forward(model, x)
    # Eval mode: running statistics, so each image's logits do not depend on the batch.
    np.testing.assert_allclose(forward(model, x[:1]), y_eval[:1], rtol=1e-5, atol=1e-5)
    assert all(map(jnp.array_equal, batch_stats(), before))
    model.train()
    y_train = forward(model, x)
    assert not np.allclose(forward(model, x[:1]), y_train[:1], atol=1e-3)
    assert not any(map(jnp.array_equal, batch_stats(), before))  # every BatchNorm updated


def test_jit_forward_equals_eager():
    model = ResNet18(10, stem="cifar", rngs=nnx.Rngs(0))
    model.eval()
    x = jax.random.normal(jax.random.key(2), (2, 8, 8, 3))
    y = nnx.jit(lambda m, x: m(x))(model, x)
    assert y.shape == (2, 10)
    np.testing.assert_allclose(y, model(x), rtol=1e-5, atol=1e-5)


def test_zero_init_residual_starts_blocks_as_their_shortcut():
    block = ResNetBottleneck(256, 64, zero_init_residual=True, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(3), (1, 5, 5, 256))
    block.eval()
    np.testing.assert_allclose(block(x), jax.nn.relu(x), atol=1e-6)
    basic = BasicBlock(8, 8, zero_init_residual=True, rngs=nnx.Rngs(0))
    basic.eval()
    np.testing.assert_allclose(basic(x[..., :8]), jax.nn.relu(x[..., :8]), atol=1e-6)


def test_table_is_the_papers():
    assert RESNET_LAYERS[50] == ("bottleneck", (3, 4, 6, 3))
    assert RESNET_LAYERS[34] == ("basic", (3, 4, 6, 3))
    assert [sum(n) for _, n in RESNET_LAYERS.values()] == [8, 16, 16, 33, 50]


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda r: ResNet((2, 2, 2), rngs=r), ValueError, r"`layers` must give 4 stages"),
        (lambda r: ResNet((2,) * 4, block="dense", rngs=r), ValueError, r"`block` must be"),
        (lambda r: ResNet50(stem="tiny", rngs=r), ValueError, r"`stem` must be 'imagenet'"),
        (lambda r: ResNet18(groups=32, rngs=r), ValueError, r"apply to block='bottleneck' only"),
        (lambda r: ResNet18(num_classes=0, rngs=r), ValueError, r"`num_classes`"),
        (lambda r: BasicBlock(8, 8, stride=0, rngs=r), ValueError, r"`stride`"),
        (lambda r: ResNetBottleneck(8, 1, base_width=16, rngs=r), ValueError, r"`base_width`"),
        (lambda r: ResNetBottleneck(8, 4, zero_init_residual=1, rngs=r), TypeError, r"`zero"),
    ],
)
def test_bad_arguments_are_named(build, error, match):
    with pytest.raises(error, match=match):
        build(nnx.Rngs(0))


def test_wrong_channels_are_named():
    model = ResNet18(10, stem="cifar", rngs=nnx.Rngs(0))
    with pytest.raises(
        ValueError, match=r"ResNet18 \(layout=.NHWC.\) expects `x` \[N, H, W, C\] with C = 3 "
    ):
        model(jnp.ones((1, 8, 8, 4)))
    with pytest.raises(ValueError, match=r"BasicBlock expects `x` with 64 input channels"):
        model.layer1[0](jnp.ones((1, 8, 8, 3)))


# --- PyTorch: bench/torch_models.py's transcription of torchvision, weights by the loader ---


def _torch_resnet():
    torch = pytest.importorskip("torch")
    from bench import torch_models as tm

    return torch, tm.BasicBlock, tm.Bottleneck, tm.make_block, tm.ResNet


def copy_from_torch(model, torch_module, rng) -> None:
    """torch's weights into ``model`` by the library's loader (random BatchNorm statistics and
    affines first, so a swapped or dropped one shows)."""
    from bench.torch_models import randomize_batchnorm

    randomize_batchnorm(torch_module, rng)
    load_torchvision_state_dict(model, torch_module.state_dict())


def _nchw(torch, x: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


@pytest.mark.parametrize(
    ("kind", "c_in", "planes", "stride"),
    [
        ("basic", 64, 64, 1),
        ("basic", 64, 128, 2),
        ("bottleneck", 64, 64, 1),
        ("bottleneck", 256, 128, 2),
        ("bottleneck", 256, 64, 1),
    ],
)
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_blocks_equal_torchvisions(kind, c_in, planes, stride, mode, rng):
    torch, TorchBasic, TorchBottleneck, make_block, _ = _torch_resnet()
    torch.manual_seed(0)
    ref = make_block(TorchBasic if kind == "basic" else TorchBottleneck, c_in, planes, stride)
    ours = (BasicBlock if kind == "basic" else ResNetBottleneck)(
        c_in, planes, stride=stride, rngs=nnx.Rngs(0)
    )
    copy_from_torch(ours, ref, rng)
    x = rng.standard_normal((2, 9, 10, c_in)).astype(np.float32)  # odd sizes: the padding
    getattr(ref, mode)()
    getattr(ours, mode)()
    with torch.no_grad():
        expected = ref(_nchw(torch, x)).numpy().transpose(0, 2, 3, 1)
    got = np.asarray(ours(jnp.asarray(x)))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_resnet18_equals_torchvisions(rng):
    torch, TorchBasic, _, _, TorchResNet = _torch_resnet()
    torch.manual_seed(0)
    ref = TorchResNet(TorchBasic, RESNET_LAYERS[18][1], 10).eval()
    ours = ResNet18(10, rngs=nnx.Rngs(0))
    ours.eval()
    copy_from_torch(ours, ref, rng)
    x = rng.standard_normal((2, 45, 51, 3)).astype(np.float32)
    with torch.no_grad():
        expected = ref(_nchw(torch, x)).numpy()
    np.testing.assert_allclose(np.asarray(ours(jnp.asarray(x))), expected, rtol=1e-4, atol=1e-4)
