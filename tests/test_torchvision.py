"""``jaxconv.models.from_torchvision`` / ``to_torchvision_state_dict`` against torchvision.

torchvision cannot be installed beside the CPU torch (its compiled ops need CUDA), so the
reference models are bench/torch_models.py's transcriptions of torchvision's ``resnet.py``,
``mobilenetv2.py`` and ``googlenet.py`` (same module names, so the same ``state_dict`` keys).
Their convs are He-scaled and their BatchNorm statistics set from a calibration batch
(``calibrate``): with torchvision's default initialization the logits all but vanish and a
comparison proves nothing. Full-width models at 64×64, batch 2, keep the run short: each model
is built once on each side, and ours runs eagerly (no compile of a whole ResNet-152).
"""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxconv.models import MODELS, GoogLeNet, ResNet18, from_torchvision, to_torchvision_state_dict

#: Every registry model with a torchvision layout (tests/test_registry.py: the torch side too).
NAMES = [name for name, entry in MODELS.items() if entry.torchvision is not None]
CLASSES = 10
SIZE = 64


def _torch():
    torch = pytest.importorskip("torch")
    from bench import torch_models

    return torch, torch_models


def _nchw(torch, x: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def _reference(name: str, seed: int = 0, **kwargs):
    """The torch transcription of ``name``, He-scaled and calibrated, in eval mode."""
    torch, tm = _torch()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if name == "googlenet":  # as torchvision's googlenet(weights=...) builds it
        kwargs = {"transform_input": True} | kwargs
    model = tm.MODELS[name](CLASSES, **kwargs)
    calibration = rng.standard_normal((8, 3, SIZE, SIZE)).astype(np.float32)
    return tm.calibrate(model, torch.from_numpy(calibration), rng)


def _variables(model) -> dict:
    state = nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))
    return {path: np.asarray(v.get_value()) for path, v in nnx.to_flat_state(state)}


@pytest.fixture(scope="module", params=NAMES)
def loaded(request):
    """(name, torch model, its state_dict, our model loaded from it, logits of both, and
    the torch model's in float64)."""
    torch, _ = _torch()
    name = request.param
    # GoogLeNet without aux heads here: test_googlenet_aux_heads_… loads them.
    ref = _reference(name, **({"aux_logits": False} if name == "googlenet" else {}))
    state_dict = ref.state_dict()
    ours = from_torchvision(name, state_dict)  # torch tensors, read by duck typing
    x = np.random.default_rng(1).standard_normal((2, SIZE, SIZE, 3)).astype(np.float32)
    with torch.no_grad():
        expected = ref(_nchw(torch, x)).numpy()
        exact = copy.deepcopy(ref).double()(_nchw(torch, x).double()).numpy()
    got = np.asarray(ours(jnp.asarray(x)))
    return name, ref, state_dict, ours, got, expected, exact


def test_logits_equal_torchvisions(loaded):
    name, _, _, _, got, expected, exact = loaded
    assert got.shape == expected.shape == (2, CLASSES)
    scale = np.abs(expected).max()
    assert scale > 0.1, "vanishing logits would prove nothing"
    # torch's own float32 rounding, against float64, grows with depth (ResNet-152's is about
    # 5e-4 of the largest logit) and ours is of the same size; a weight loaded wrong errs by
    # about the scale of the logits.
    rounding = np.abs(expected - exact).max()
    assert np.abs(got - expected).max() <= max(1e-4 * scale, 4 * rounding), name


def test_export_then_import_is_exact(loaded):
    name, _, state_dict, ours, *_ = loaded
    exported = to_torchvision_state_dict(ours)
    assert set(exported) == set(state_dict)  # num_batches_tracked included
    for key, value in state_dict.items():  # torch → jaxconv → torchvision names: bit-exact
        assert exported[key].dtype == value.numpy().dtype, key
        if key.endswith("num_batches_tracked"):  # not kept: exported as 0
            assert exported[key].shape == () and exported[key] == 0
        else:
            np.testing.assert_array_equal(exported[key], value.numpy(), err_msg=key)
    again = from_torchvision(name, exported)  # NumPy arrays in
    before, after = _variables(ours), _variables(again)
    assert before.keys() == after.keys()
    for path in before:
        assert before[path].dtype == after[path].dtype
        np.testing.assert_array_equal(after[path], before[path], err_msg=str(path))


def test_torch_loads_the_export_strictly(loaded):
    torch, tm = _torch()
    name, ref, _, ours, *_ = loaded
    with torch.device("meta"):  # the architecture alone: nothing allocated or initialized
        fresh = tm.MODELS[name](CLASSES, **({"aux_logits": False} if name == "googlenet" else {}))
    exported = to_torchvision_state_dict(ours)
    tensors = {k: torch.from_numpy(v) for k, v in exported.items()}
    result = fresh.load_state_dict(tensors, strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys
    for key, value in ref.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(fresh.state_dict()[key], value), key


def test_googlenet_is_torchvisions_variant():
    model = nnx.eval_shape(lambda: from_torchvision("googlenet"))
    assert isinstance(model, GoogLeNet)
    assert model.inception_4a.branch_5x5.conv.conv.kernel.shape == (3, 3, 16, 48)
    assert model.conv1.bn.epsilon == 1e-3 and model.conv1.bn.momentum == 0.9
    assert model.pool4.window == (2, 2) and model.pool3.window == (3, 3) and model.pool4.ceil_mode
    assert model.norm1 is None and model.norm2 is None
    assert model.dropout.rate == 0.2 and model.aux_4a is None
    assert not model.transform_input  # off without weights, as torchvision's googlenet()
    assert nnx.eval_shape(
        lambda: from_torchvision("googlenet", transform_input=True)
    ).transform_input


def test_googlenet_aux_heads_load_and_equal_torchvisions(rng):
    torch, _ = _torch()
    ref = _reference("googlenet", seed=2)
    state_dict = ref.state_dict()
    assert any(k.startswith("aux1.") for k in state_dict)
    plain = from_torchvision("googlenet", state_dict)  # aux1/aux2 dropped, as torchvision does
    assert plain.aux_4a is None and plain.aux_4d is None
    ours = from_torchvision("googlenet", state_dict, aux_logits=True)
    for head, torch_head, c in ((ours.aux_4a, ref.aux1, 512), (ours.aux_4d, ref.aux2, 528)):
        x = rng.standard_normal((2, 14, 14, c)).astype(np.float32)  # 4a/4d at 224×224
        with torch.no_grad():
            expected = torch_head(_nchw(torch, x)).numpy()  # eval mode: no dropout
        got = np.asarray(nnx.jit(lambda h, x: h(x))(head, jnp.asarray(x)))
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
    # Built abstractly and filled: no abstract leaf is left, the dropout streams included.
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(nnx.state(ours)))
    ours.train()
    dropped = [np.asarray(m.dropout(jnp.ones((1, 256)))) for m in (ours, ours.aux_4a)]
    assert all(0 < (d == 0).mean() < 1 for d in dropped)
    exported = to_torchvision_state_dict(ours)
    assert set(exported) == set(state_dict)
    np.testing.assert_array_equal(exported["aux1.fc1.weight"], state_dict["aux1.fc1.weight"])
    without = _reference("googlenet", aux_logits=False).state_dict()
    with pytest.raises(ValueError, match=r"missing keys \(\d+\): aux1\.conv\.bn\.bias, "):
        from_torchvision("googlenet", without, aux_logits=True)


def _zeros_export(factory) -> dict:
    """The torchvision state_dict of ``factory()``'s architecture, all zeros (built abstractly)."""
    model = nnx.eval_shape(factory)
    for _, v in nnx.to_flat_state(nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))):
        v.set_value(jnp.zeros(v.get_value().shape, v.get_value().dtype))
    return to_torchvision_state_dict(model)


@pytest.fixture(scope="module")
def resnet18_state_dict():
    return _zeros_export(lambda: ResNet18(CLASSES, rngs=nnx.Rngs(0)))


def test_num_classes_comes_from_the_state_dict(resnet18_state_dict):
    model = nnx.eval_shape(lambda: from_torchvision("resnet18", resnet18_state_dict))
    assert model.fc.kernel.shape == (512, CLASSES)
    assert nnx.eval_shape(lambda: from_torchvision("mobilenet_v2")).classifier.out_features == 1000
    sd = dict(resnet18_state_dict)
    del sd["bn1.num_batches_tracked"]  # optional on import
    assert from_torchvision("resnet18", sd).fc.kernel.shape == (512, CLASSES)


def test_bad_state_dicts_name_every_bad_key(resnet18_state_dict):
    sd = dict(resnet18_state_dict)
    del sd["layer1.0.bn2.running_var"], sd["fc.bias"]
    sd["layer9.weight"] = np.zeros(3)
    sd["conv1.weight"] = np.zeros((64, 3, 3, 3), np.float32)
    with pytest.raises(
        ValueError,
        match=r"this ResNet18 \(nothing was loaded\): missing keys \(2\): fc\.bias, "
        r"layer1\.0\.bn2\.running_var; unexpected keys \(1\): layer9\.weight; wrong shapes "
        r"\(1\): conv1\.weight \(64, 3, 3, 3\) where the model has \(64, 3, 7, 7\)$",
    ):
        from_torchvision("resnet18", sd)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda sd: sd.pop("layer4.1.conv2.weight"), r"missing keys \(1\): layer4\.1\.conv2"),
        (lambda sd: sd.update(extra=np.zeros(1)), r"unexpected keys \(1\): extra$"),
        (
            lambda sd: sd.update({"fc.weight": np.zeros((CLASSES, 256))}),
            r"wrong shapes \(1\): fc\.weight \(10, 256\) where the model has \(10, 512\)",
        ),
        (
            lambda sd: sd.update({"bn1.running_mean": np.zeros((1, 64))}),
            r"wrong shapes \(1\): bn1\.running_mean \(1, 64\) where the model has \(64,\)",
        ),
    ],
)
def test_each_kind_of_mismatch_is_an_error(resnet18_state_dict, change, match):
    sd = dict(resnet18_state_dict)
    change(sd)
    with pytest.raises(ValueError, match=match):
        from_torchvision("resnet18", sd)


def test_num_classes_that_disagree_with_the_state_dict(resnet18_state_dict):
    with pytest.raises(ValueError, match=r"fc\.weight \(10, 512\) where the model has \(7, 512\)"):
        from_torchvision("resnet18", resnet18_state_dict, num_classes=7)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: from_torchvision("vgg16"),
            ValueError,
            r"`name` must be one of googlenet, resnet18, resnet50, resnet34, resnet101, "
            r"resnet152, resnext50_32x4d, wide_resnet50_2, mobilenetv2 \(or an alias: "
            r"mobilenet_v2\), got 'vgg16'",
        ),
        (lambda: from_torchvision("resnet18", [1]), TypeError, r"`state_dict` must be a mapping"),
        (lambda: from_torchvision("resnet18", aux_logits=True), ValueError, r"'googlenet' only"),
        (
            lambda: from_torchvision("mobilenet_v2", transform_input=True),
            ValueError,
            r"`transform_input` applies to 'googlenet' only",
        ),
        (lambda: from_torchvision("resnet18", rngs=0), TypeError, r"`rngs` must be an nnx\.Rngs"),
        (
            lambda: from_torchvision("resnet18", num_classes=0),
            ValueError,
            r"`num_classes`",
        ),
        (
            lambda: to_torchvision_state_dict(nnx.Linear(2, 2, rngs=nnx.Rngs(0))),
            TypeError,
            r"`model` must be a jaxconv ResNet",
        ),
    ],
)
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        nnx.eval_shape(call)


def test_a_paper_googlenet_does_not_export():
    model = nnx.eval_shape(lambda: GoogLeNet(aux_logits=False, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"BatchNorm after every conv"):
        to_torchvision_state_dict(model)
