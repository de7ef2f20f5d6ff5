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
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxconv.models import (
    MODELS,
    GoogLeNet,
    LoadResult,
    MobileNetV2,
    ResNet18,
    from_torchvision,
    load_torchvision_state_dict,
    to_torchvision_state_dict,
)

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


#: What a test states rather than leaves to a default that warns.
_EXPLICIT = {"googlenet": {"transform_input": True}}


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
    ours = from_torchvision(name, state_dict, **_EXPLICIT.get(name, {}))  # torch tensors in
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
    _, _, state_dict, ours, *_ = loaded
    exported = to_torchvision_state_dict(ours)
    assert set(exported) == set(state_dict)  # num_batches_tracked included
    for key, value in state_dict.items():  # torch → jaxconv → torchvision names: bit-exact
        assert exported[key].dtype == value.numpy().dtype, key
        if key.endswith("num_batches_tracked"):  # not kept: exported as 0
            assert exported[key].shape == () and exported[key] == 0
        else:
            np.testing.assert_array_equal(exported[key], value.numpy(), err_msg=key)
    again = nnx.clone(ours)  # the same model, zeroed: no second build of a ResNet-152
    for _, v in nnx.to_flat_state(nnx.state(again, nnx.Any(nnx.Param, nnx.BatchStat))):
        v.set_value(jnp.zeros_like(v.get_value()))
    result = load_torchvision_state_dict(again, exported)  # NumPy arrays in
    assert result == LoadResult(tuple(k for k in exported if not k.endswith("_tracked")))
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
    plain = from_torchvision("googlenet", state_dict, transform_input=True)  # aux1/2 dropped
    assert plain.aux_4a is None and plain.aux_4d is None
    ours = from_torchvision("googlenet", state_dict, aux_logits=True, transform_input=True)
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
        from_torchvision("googlenet", without, aux_logits=True, transform_input=True)


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


def _is_zero(model, *paths: str) -> dict[str, bool]:
    """Whether each array at ``paths`` (dotted, list indices as numbers) is all zeros."""
    flat = {".".join(map(str, p)): v for p, v in nnx.to_flat_state(nnx.state(model))}
    return {path: not np.asarray(flat[path].get_value()).any() for path in paths}


def test_other_classes_reinitialize_the_head_from_rngs(resnet18_state_dict):
    """timm's ``pretrained=True, num_classes=7``: everything but ``fc`` comes from the
    10-class checkpoint (zeros here); ``fc`` is a fresh model's, from the same ``rngs``."""
    with pytest.warns(
        UserWarning,
        match=r"^from_torchvision\('resnet18'\): the checkpoint's head has 10 classes "
        r"\(fc\.weight\) and `num_classes` is 7: fc\.bias, fc\.weight are initialized from "
        r"`rngs`, everything else is loaded",
    ):
        model = from_torchvision("resnet18", resnet18_state_dict, num_classes=7, rngs=nnx.Rngs(3))
    fresh = from_torchvision("resnet18", num_classes=7, rngs=nnx.Rngs(3))
    np.testing.assert_array_equal(model.fc.kernel.get_value(), fresh.fc.kernel.get_value())
    np.testing.assert_array_equal(model.fc.bias.get_value(), fresh.fc.bias.get_value())
    assert model.fc.kernel.shape == (512, 7) and np.asarray(model.fc.kernel.get_value()).std() > 0
    loaded = _is_zero(model, "conv1.conv.kernel", "layer4.1.conv2.bn.scale", "conv1.bn.mean")
    assert all(loaded.values()), loaded
    assert model.conv1.bn.use_running_average  # in eval mode, as always


def test_other_classes_reinitialize_mobilenets_and_googlenets_heads():
    sd = _zeros_export(lambda: MobileNetV2(1000, rngs=nnx.Rngs(0)))
    with pytest.warns(
        UserWarning,
        match=r"has 1000 classes \(classifier\.1\.weight\) and "
        r"`num_classes` is 10: classifier\.1\.bias, classifier\.1\.weight are",
    ):
        model = from_torchvision("mobilenet_v2", sd, num_classes=10)
    assert _is_zero(model, "classifier.kernel", "features.18.conv.kernel") == {
        "classifier.kernel": False,
        "features.18.conv.kernel": True,
    }
    layout = {"aux_logits": True, "transform_input": True}
    sd = _zeros_export(lambda: from_torchvision("googlenet", **layout))  # 1000 classes
    heads = r"aux1\.fc2\.bias, aux1\.fc2\.weight, aux2\.fc2\.bias, aux2\.fc2\.weight, fc\.bias, "
    heads += r"fc\.weight"
    with pytest.warns(
        UserWarning, match=rf"has 1000 classes \(fc\.weight\) and `num_classes` is 5: {heads} are"
    ):
        model = from_torchvision("googlenet", sd, num_classes=5, rngs=nnx.Rngs(4), **layout)
    fresh = from_torchvision("googlenet", num_classes=5, rngs=nnx.Rngs(4), **layout)
    for ours, theirs in ((model.aux_4d.fc2, fresh.aux_4d.fc2), (model.fc, fresh.fc)):
        np.testing.assert_array_equal(ours.kernel.get_value(), theirs.kernel.get_value())
    assert model.aux_4a.fc2.kernel.shape == (1024, 5)
    assert all(_is_zero(model, "aux_4a.fc1.kernel", "inception_5b.branch_1x1.conv.kernel").values())


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: from_torchvision("vgg16"),
            ValueError,
            r"`name` must be one of googlenet, resnet18, resnet34, resnet50, resnet101, "
            r"resnet152, resnext50_32x4d, wide_resnet50_2, mobilenetv2 \(or an alias: "
            r"mobilenet_v2\), got 'vgg16'",
        ),
        (lambda: from_torchvision("resnet18", strict=0), TypeError, r"`strict` must be a bool"),
        (
            lambda: from_torchvision("resnet18", layout="NCW"),
            ValueError,
            r"`layout` of a model must be 'NHWC' or 'NCHW' \(2-D\), got 'NCW'",
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


# --- partial loads, wrapped checkpoints, long key lists (issue 25) -----------------------------


def test_strict_false_loads_what_fits_and_says_what_did_not(resnet18_state_dict):
    sd = dict(resnet18_state_dict)
    del sd["layer1.0.bn2.running_var"], sd["fc.bias"]
    sd["layer9.weight"] = np.zeros(3)
    sd["conv1.weight"] = np.zeros((64, 3, 3, 3), np.float32)
    model = ResNet18(CLASSES, rngs=nnx.Rngs(5))
    fresh = nnx.clone(model)
    result = load_torchvision_state_dict(model, sd, strict=False)
    assert result.missing == ("fc.bias", "layer1.0.bn2.running_var")
    assert result.unexpected == ("layer9.weight",)
    assert result.mismatched == ("conv1.weight",) and result.prefix == ""
    keys = set(to_torchvision_state_dict(model)) - {k for k in sd if k.endswith("_tracked")}
    assert len(result.replaced) == len(keys) - 3  # each key in exactly one list
    assert set(result.replaced) | set(result.missing) | set(result.mismatched) == keys
    # What did not load keeps its initialization; everything else is the state_dict's zeros.
    for ours, theirs in (
        (model.fc.bias, fresh.fc.bias),
        (model.layer1[0].conv2.bn.var, fresh.layer1[0].conv2.bn.var),
        (model.conv1.conv.kernel, fresh.conv1.conv.kernel),
    ):
        np.testing.assert_array_equal(ours.get_value(), theirs.get_value())
    assert np.asarray(model.conv1.conv.kernel.get_value()).std() > 0
    assert all(_is_zero(model, "fc.kernel", "layer1.0.conv2.bn.mean").values())
    with pytest.raises(ValueError, match=r"nothing was loaded"):  # strict=True: all or none
        load_torchvision_state_dict(model, sd)
    # from_torchvision: the same, initialized from rngs, with a warning that lists them.
    with pytest.warns(
        UserWarning,
        match=r"^from_torchvision\('resnet18', strict=False\) loaded 99 arrays; the model's "
        r"others are initialized from `rngs`\. Not loaded: missing keys \(2\): fc\.bias, "
        r"layer1\.0\.bn2\.running_var; unexpected keys \(1\): layer9\.weight; wrong shapes "
        r"\(1\): conv1\.weight \(64, 3, 3, 3\) where the model has \(64, 3, 7, 7\)$",
    ):
        built = from_torchvision("resnet18", sd, strict=False, rngs=nnx.Rngs(5))
    np.testing.assert_array_equal(built.fc.bias.get_value(), fresh.fc.bias.get_value())
    assert _is_zero(built, "fc.kernel", "conv1.conv.kernel") == {
        "fc.kernel": True,
        "conv1.conv.kernel": False,
    }


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "_orig_mod.module."])
def test_a_wrapped_models_prefix_is_stripped(resnet18_state_dict, prefix):
    """nn.DataParallel's ``module.``, torch.compile's ``_orig_mod.`` and both."""
    wrapped = {prefix + k: v for k, v in resnet18_state_dict.items()}
    model = ResNet18(CLASSES, rngs=nnx.Rngs(0))
    result = load_torchvision_state_dict(model, wrapped)
    assert result.prefix == prefix and not (result.missing or result.unexpected)
    assert all(_is_zero(model, "fc.kernel", "layer4.1.conv2.conv.kernel").values())
    # num_classes comes from the wrapped classifier too (10, not the default 1000)
    with pytest.warns(UserWarning, match=rf"starts with {re.escape(repr(prefix))} .* stripped"):
        built = nnx.eval_shape(lambda: from_torchvision("resnet18", wrapped))
    assert built.fc.out_features == 10
    del wrapped[prefix + "fc.bias"]
    with pytest.raises(
        ValueError,
        match=rf"missing keys \(1\): fc\.bias \(the prefix {re.escape(repr(prefix))} was "
        r"stripped from every key\)$",
    ):
        load_torchvision_state_dict(model, wrapped)


def test_long_key_lists_are_cut_short_and_a_common_prefix_is_named(resnet18_state_dict):
    """The report of issue 25: 204 keys in 6,500 characters and no hint."""
    nested = {"backbone." + k: v for k, v in resnet18_state_dict.items()}
    with pytest.raises(ValueError) as error:
        from_torchvision("resnet18", nested)
    message = str(error.value)
    assert len(message) < 1000, message
    assert re.search(r"missing keys \(102\): bn1\.bias, (\S+, ){6}\S+, … and 94 more; ", message)
    assert re.search(r"unexpected keys \(122\): (\S+, ){8}… and 114 more; every key of ", message)
    assert message.endswith(
        "every key of `state_dict` starts with 'backbone.', which no key of the model does: "
        "strip it, e.g. {k.removeprefix('backbone.'): v for k, v in state_dict.items()}"
    )
    # Keys of one part of the model share a prefix the model has too: no hint then.
    part = {k: v for k, v in resnet18_state_dict.items() if k.startswith("layer1.")}
    with pytest.raises(ValueError, match=r"missing keys \(\d+\): [^;]*$"):
        from_torchvision("resnet18", part)


def test_googlenets_transform_input_is_never_assumed_silently():
    """Issue 25: weights of a GoogLeNet trained without it loaded with no word."""
    sd = _zeros_export(lambda: from_torchvision("googlenet"))
    with pytest.warns(UserWarning, match=r"turns `transform_input` on, .* pass transform_input="):
        model = nnx.eval_shape(lambda: from_torchvision("googlenet", sd))
    assert model.transform_input  # torchvision's pretrained default, kept
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit choice never warns, nor no weights
        for given in (True, False):
            model = nnx.eval_shape(
                lambda g=given: from_torchvision("googlenet", sd, transform_input=g)
            )
            assert model.transform_input is given
        assert not nnx.eval_shape(lambda: from_torchvision("googlenet")).transform_input
    # GoogLeNet itself, and the registry's torchvision variant, default to off.
    assert not nnx.eval_shape(lambda: GoogLeNet(rngs=nnx.Rngs(0))).transform_input
    variant = MODELS["googlenet"].keywords("torchvision")
    assert "transform_input" not in variant


def test_an_nchw_model_gives_the_nhwc_models_logits():
    sd = to_torchvision_state_dict(from_torchvision("resnet18", num_classes=CLASSES))
    x = np.random.default_rng(2).standard_normal((2, 32, 32, 3)).astype(np.float32)
    nhwc, nchw = (from_torchvision("resnet18", sd, layout=lay) for lay in ("NHWC", "NCHW"))
    expected = np.asarray(nhwc(jnp.asarray(x)))
    got = np.asarray(nchw(jnp.asarray(x.transpose(0, 3, 1, 2))))
    np.testing.assert_array_equal(got, expected)
    assert nchw.layout == "NCHW" and np.abs(expected).max() > 0
    with pytest.raises(ValueError, match=r"looks channels-first \(NCHW\)"):
        nhwc(jnp.asarray(x.transpose(0, 3, 1, 2)))


def test_bfloat16_torch_tensors_load():
    torch, tm = _torch()
    ref = tm.resnet18(CLASSES)
    sd = {
        k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in ref.state_dict().items()
    }
    model = from_torchvision("resnet18", sd)
    np.testing.assert_array_equal(
        model.conv1.conv.kernel.get_value(),
        sd["conv1.weight"].float().numpy().transpose(2, 3, 1, 0),
    )
    assert model.conv1.conv.kernel.get_value().dtype == jnp.float32
