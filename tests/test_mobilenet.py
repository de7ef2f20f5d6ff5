"""MobileNetV2 (Sandler et al. 2018) and its ``InvertedResidual`` block.

The parameter count is torchvision's (exact); the MACs are the paper's Table 4 (300 M) and the
authors' TF-slim release's width-multiplier table (59/97/209/300/582 M). The block and a whole
narrow MobileNetV2 are compared with a PyTorch transcription of torchvision's
``mobilenetv2.py`` (bench/torch_models.py; torchvision is not installed), weights copied by
jaxconv.models' torchvision loader.
"""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxconv.models import load_torchvision_state_dict
from jaxconv.models._mobilenet import MOBILENETV2_BLOCKS, MobileNetV2, make_divisible
from jaxconv.nn import summary
from jaxconv.nn._blocks import InvertedResidual

IMAGENET = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)


def _abstract(factory):
    model = nnx.eval_shape(factory)
    model.eval()
    return model


def test_parameters_and_macs():
    s = summary(_abstract(lambda: MobileNetV2(rngs=nnx.Rngs(0))), IMAGENET, xla=None)
    assert s.total.params == 3_504_872  # torchvision's mobilenet_v2
    assert s.total.macs == 300_774_272  # convs + classifier, every tap
    assert abs(s.total.macs / 300e6 - 1) < 0.005  # Table 4: 300 M


@pytest.mark.parametrize(("width", "mmacs"), [(0.35, 59), (0.5, 97), (0.75, 209), (1.4, 582)])
def test_width_multiplier_macs(width, mmacs):
    model = _abstract(lambda: MobileNetV2(width=width, rngs=nnx.Rngs(0)))
    assert round(summary(model, IMAGENET, xla=None).total.macs / 1e6) == mmacs


def test_stage_shapes_follow_table_2():
    s = summary(_abstract(lambda: MobileNetV2(rngs=nnx.Rngs(0))), IMAGENET, xla=None)
    expected = [(112, 32)]  # the stem conv
    size = 112
    for _, c, n, stride in MOBILENETV2_BLOCKS:
        size //= stride
        expected += [(size, c)] * n
    expected.append((7, 1280))
    got = [s.row(f"features.{i}").output_shape for i in range(len(expected))]
    assert got == [(1, h, h, c) for h, c in expected]
    assert len(expected) == 19 and s.row("classifier").output_shape == (1, 1000)
    cifar = _abstract(lambda: MobileNetV2(10, stem="cifar", rngs=nnx.Rngs(0)))
    x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    s = summary(cifar, x, xla=None)
    assert s.row("features.18").output_shape == (2, 4, 4, 1280)
    assert s.total.output_shape == (2, 10)


def test_block_structure():
    model = _abstract(lambda: MobileNetV2(rngs=nnx.Rngs(0)))
    first, second, third = model.features[1], model.features[2], model.features[3]
    assert first.expand is None and not first.use_residual  # t = 1: no expand conv
    assert second.hidden_features == 96 and not second.use_residual  # stride 2
    assert third.use_residual and third.depthwise.conv.groups == 144
    assert third.depthwise.conv.kernel.shape == (3, 3, 1, 144)
    assert model.dropout.rate == 0.2
    assert model.classifier.kernel.shape == (1280, 1000)


def test_make_divisible_is_the_papers_rounding():
    assert [make_divisible(c * 0.35) for c in (32, 16, 24, 32, 64, 96, 160, 320)] == [
        16,
        8,
        8,
        16,
        24,
        32,
        56,
        112,
    ]
    assert make_divisible(1280 * 1.4) == 1792
    assert make_divisible(10, 8) == 16  # 8 would lose more than 10%
    model = _abstract(lambda: MobileNetV2(width=0.5, rngs=nnx.Rngs(0)))
    assert all(m.out_features % 8 == 0 for m in model.features if hasattr(m, "out_features"))
    assert model.out_features == 1280  # the last conv never narrows below 1280


def test_batchnorm_and_dropout_modes():
    model = MobileNetV2(10, width=0.35, stem="cifar", rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (3, 16, 16, 3))
    before = jax.tree.leaves(nnx.state(model, nnx.BatchStat))
    forward = nnx.jit(lambda m, x: m(x))  # BatchStat updates come back out of nnx.jit
    model.eval()
    y = forward(model, x)
    np.testing.assert_allclose(forward(model, x[1:2]), y[1:2], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(forward(model, x), y)  # no dropout in eval mode
    model.train()
    forward(model, x)
    after = jax.tree.leaves(nnx.state(model, nnx.BatchStat))
    assert not any(map(jnp.array_equal, after, before))


def test_jit_forward_equals_eager():
    model = MobileNetV2(10, width=0.35, stem="cifar", rngs=nnx.Rngs(0))
    model.eval()
    x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
    y = nnx.jit(lambda m, x: m(x))(model, x)
    assert y.shape == (2, 10)
    np.testing.assert_allclose(y, model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda r: MobileNetV2(width=0, rngs=r), ValueError, r"`width` must be a positive"),
        (lambda r: MobileNetV2(stem="tiny", rngs=r), ValueError, r"`stem` must be 'imagenet'"),
        (lambda r: InvertedResidual(8, 8, expand_ratio=0.5, rngs=r), ValueError, r">= 1"),
        (lambda r: InvertedResidual(8, 8, expand_ratio="6", rngs=r), TypeError, r"a number"),
        (lambda r: InvertedResidual(8, 8, stride=-1, rngs=r), ValueError, r"`stride`"),
    ],
)
def test_bad_arguments_are_named(build, error, match):
    with pytest.raises(error, match=match):
        build(nnx.Rngs(0))


def test_wrong_channels_are_named():
    model = MobileNetV2(10, width=0.35, stem="cifar", rngs=nnx.Rngs(0))
    with pytest.raises(
        ValueError, match=r"MobileNetV2 \(layout=.NHWC.\) expects `x` \[N, H, W, C\] with C = 3 "
    ):
        model(jnp.ones((1, 8, 8, 1)))


# --- PyTorch: bench/torch_models.py's transcription of torchvision, weights by the loader ---


def _torch_mobilenet():
    torch = pytest.importorskip("torch")
    from bench import torch_models as tm

    return torch, tm.InvertedResidual, tm.MobileNetV2


def copy_from_torch(model, torch_module, rng) -> None:
    """torch's weights into ``model`` by the library's loader, BatchNorms randomized first."""
    from bench.torch_models import randomize_batchnorm

    randomize_batchnorm(torch_module, rng)
    load_torchvision_state_dict(model, torch_module.state_dict())


@pytest.mark.parametrize(
    ("c_in", "c_out", "stride", "t"),
    [(32, 16, 1, 1), (16, 24, 2, 6), (24, 24, 1, 6), (8, 8, 1, 1)],
)
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_inverted_residual_equals_torchvisions(c_in, c_out, stride, t, mode, rng):
    torch, TorchInvertedResidual, _ = _torch_mobilenet()
    torch.manual_seed(0)
    ref = TorchInvertedResidual(c_in, c_out, stride, t)
    ours = InvertedResidual(c_in, c_out, stride=stride, expand_ratio=t, rngs=nnx.Rngs(0))
    assert ours.use_residual == ref.use_res_connect
    copy_from_torch(ours, ref, rng)
    getattr(ref, mode)()
    getattr(ours, mode)()
    x = 3 * rng.standard_normal((2, 9, 8, c_in)).astype(np.float32)  # some ReLU6 clipping
    with torch.no_grad():
        nchw = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        expected = ref(nchw).numpy().transpose(0, 2, 3, 1)
    got = np.asarray(ours(jnp.asarray(x)))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_mobilenetv2_equals_torchvisions(rng):
    torch, _, TorchMobileNetV2 = _torch_mobilenet()
    torch.manual_seed(0)
    ref = TorchMobileNetV2(10, 0.35).eval()
    ours = MobileNetV2(10, width=0.35, rngs=nnx.Rngs(0))
    ours.eval()
    copy_from_torch(ours, ref, rng)
    x = rng.standard_normal((2, 40, 36, 3)).astype(np.float32)
    with torch.no_grad():
        expected = ref(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()
    np.testing.assert_allclose(np.asarray(ours(jnp.asarray(x))), expected, rtol=1e-4, atol=1e-4)


def test_train_cli_runs_mobilenetv2(tmp_path):
    """``python -m jaxconv.train --model mobilenetv2``: two steps on tiny synthetic data."""
    for name in ("mobilenetv2",):
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "jaxconv.train", "--model", name, "--steps", "2"),
                *("--train-size", "16", "--test-size", "8", "--batch-size", "8"),
                *("--no-progress", "--metrics", str(tmp_path / f"{name}.jsonl")),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env={k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
            | {"JAX_PLATFORMS": "cpu"},
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        lines = (tmp_path / f"{name}.jsonl").read_text().splitlines()
        assert any('"step": 2' in line for line in lines), lines
