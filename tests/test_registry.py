"""The model registry (``jaxconv.models.MODELS``) and everything that names a model by it.

Each consumer — ``from_torchvision``, the training CLI, the bench's ``model`` suite and
``bench/torch_models.py`` — must take exactly the registry's names (and aliases), build what
it built before the registry, and pick up a new entry with nothing else edited.
"""

from __future__ import annotations

import re

import jax
import pytest
from flax import nnx

from jaxconv.models import (
    MODELS,
    GoogLeNet,
    MiniInception,
    MobileNetV2,
    ModelEntry,
    NiN,
    ResNet18,
    ResNet34,
    ResNet50,
    ResNet101,
    ResNet152,
    ResNeXt50_32x4d,
    TorchvisionLayout,
    WideResNet50_2,
    canonical_name,
    from_torchvision,
    model_entry,
    registry,
)
from jaxconv.models._torchvision import _entries
from jaxconv.train import TrainConfig, build_model, model_names, register_model
from jaxconv.train._cli import build_parser

#: The spellings each consumer took before the registry: every one must keep working.
NAMES_BEFORE = {
    "train": (
        "nin",
        "googlenet",
        "inception-bottleneck",
        "inception-direct5x5",
        "nin-paper",
        "resnet18",
        "resnet50",
        "mobilenetv2",
    ),
    "bench": ("googlenet", "resnet50", "mobilenetv2", "nin"),
    "from_torchvision": ("googlenet", "resnet18", "resnet50", "mobilenet_v2"),
    "torch_models": ("resnet18", "resnet50", "mobilenet_v2", "googlenet"),
}

#: What ``--model NAME`` built before the registry (the old ``train/_models.py`` factories).
TRAIN_BEFORE = {
    "nin": (NiN, {"batch_norm": True}),
    "googlenet": (GoogLeNet, {"aux_logits": True, "batch_norm": True, "stem": "cifar"}),
    "inception-bottleneck": (MiniInception, {"bottleneck": True}),
    "inception-direct5x5": (MiniInception, {"bottleneck": False}),
    "nin-paper": (NiN, {"batch_norm": False}),
    "resnet18": (ResNet18, {"stem": "cifar"}),
    "resnet50": (ResNet50, {"stem": "cifar"}),
    "mobilenetv2": (MobileNetV2, {"stem": "cifar"}),
}

#: The models added since (issue 25: torchvision's other ResNets), each trained as a CIFAR port.
TRAIN_ADDED = {
    "resnet34": (ResNet34, {"stem": "cifar"}),
    "resnet101": (ResNet101, {"stem": "cifar"}),
    "resnet152": (ResNet152, {"stem": "cifar"}),
    "resnext50_32x4d": (ResNeXt50_32x4d, {"stem": "cifar"}),
    "wide_resnet50_2": (WideResNet50_2, {"stem": "cifar"}),
}

#: What the bench's model suite timed before the registry (class, keywords, size, classes).
BENCH_BEFORE = {
    "googlenet": (GoogLeNet, {"aux_logits": True}, 224, 1000),
    "resnet50": (ResNet50, {}, 224, 1000),
    "mobilenetv2": (MobileNetV2, {}, 224, 1000),
    "nin": (NiN, {}, 32, 10),
}


def _torchvision_names() -> list[str]:
    return [name for name, entry in MODELS.items() if entry.torchvision is not None]


def _shapes(model: nnx.Module) -> dict:
    """The model's graph (its modules and their static attributes: rates, epsilons, strides…)
    and every parameter and statistic's path → (shape, dtype)."""
    state = nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))
    leaves = {p: (v.get_value().shape, v.get_value().dtype) for p, v in nnx.to_flat_state(state)}
    return {"graph": nnx.graphdef(model), **leaves}


def _abstract(make) -> dict:
    return _shapes(nnx.eval_shape(make))


# --- the registry itself ----------------------------------------------------------------------


def test_names_are_unique_and_aliases_resolve():
    aliases = {alias: e.name for e in MODELS.values() for alias in e.aliases}
    assert not set(aliases) & set(MODELS)
    assert aliases == {"mobilenet_v2": "mobilenetv2"}
    for name, entry in MODELS.items():
        assert entry.name == name and canonical_name(name) == name
        assert model_entry(name) is entry
    for alias, name in aliases.items():
        assert canonical_name(alias) == name and model_entry(alias) is MODELS[name]


@pytest.mark.parametrize("consumer", sorted(NAMES_BEFORE))
def test_every_name_that_worked_before_still_resolves(consumer):
    for name in NAMES_BEFORE[consumer]:
        assert canonical_name(name) in MODELS


def test_unknown_names_list_the_known_ones():
    listed = ", ".join(MODELS) + " (or an alias: mobilenet_v2), got 'vgg'"
    with pytest.raises(ValueError, match=f"^`name` must be one of {re.escape(listed)}$"):
        model_entry("vgg")
    with pytest.raises(ValueError, match=r"^`model` must be one of nin, googlenet, .*got 'vgg'$"):
        build_model("vgg", 10, nnx.Rngs(0))
    torchvision = ", ".join(_torchvision_names())
    with pytest.raises(ValueError, match=rf"^`name` must be one of {torchvision} \(or an "):
        from_torchvision("nin")  # in the registry, but torchvision has no NiN


def test_entries_check_their_variants_and_the_table_its_names():
    with pytest.raises(ValueError, match=r"`variant` must be one of reference, train for nin"):
        MODELS["nin"].keywords("torchvision")
    with pytest.raises(ValueError, match=r"registered twice: nin"):
        registry._register(ModelEntry("nin", NiN, "again"))
    with pytest.raises(ValueError, match=r"registered twice: mobilenet_v2"):
        registry._register(ModelEntry("mobilenet-v2", MobileNetV2, "x", aliases=("mobilenet_v2",)))
    with pytest.raises(ValueError, match=r"non-empty str"):
        ModelEntry("", NiN, "no name")
    assert "mobilenet-v2" not in MODELS
    with pytest.raises(TypeError):
        MODELS["vgg"] = MODELS["nin"]  # type: ignore[index]


# --- the consumers ----------------------------------------------------------------------------


def test_the_training_cli_takes_the_registrys_names():
    assert model_names()[: len(MODELS)] == tuple(MODELS)
    assert set(TRAIN_BEFORE) | set(TRAIN_ADDED) == set(MODELS)
    parser = build_parser()
    model_help = next(a.help for a in parser._actions if a.dest == "model")
    assert model_help == f"one of {', '.join(model_names())} (default: nin)"
    epilog = parser.epilog or ""
    for name, entry in MODELS.items():
        assert f"\n  {name:<22}{entry.summary.split()[0]}" in epilog
    assert parser.parse_args(["--model", "mobilenet_v2"]).model == "mobilenet_v2"
    config = TrainConfig(model="mobilenet_v2", steps=1).resolved(num_train=100)
    assert config.model == "mobilenetv2"  # a checkpoint's identity names the model once


@pytest.mark.parametrize("name", sorted(TRAIN_BEFORE))
def test_the_training_cli_builds_what_it_built_before(name):
    module, keywords = TRAIN_BEFORE[name]
    got = _abstract(lambda: build_model(name, 10, nnx.Rngs(0)))
    assert got == _abstract(lambda: module(10, rngs=nnx.Rngs(0), **keywords))


def test_the_training_cli_trains_the_added_resnets_as_cifar_ports():
    """Each new ``--model`` is its ResNet with the CIFAR stem, like resnet18/resnet50: the
    variant that trains on the CLI's 32×32 images (nothing added silently to its list)."""
    epilog = build_parser().epilog or ""
    for name, (module, keywords) in TRAIN_ADDED.items():
        assert f"\n  {name:<22}" in epilog
        assert MODELS[name].module is module and MODELS[name].options == {}
        assert MODELS[name].keywords("train") == keywords


# resnet101/152 are resnet50 with more blocks: spared their ~10 s abstract builds here
@pytest.mark.parametrize("name", ["resnet34", "resnext50_32x4d", "wide_resnet50_2"])
def test_the_added_resnets_train_on_32x32(name):
    module, _ = TRAIN_ADDED[name]
    model = nnx.eval_shape(lambda: build_model(name, 10, nnx.Rngs(0)))
    assert type(model) is module and model.stem == "cifar" and model.maxpool is None
    model.eval()
    out = jax.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((2, 32, 32, 3), "float32"))
    assert out.shape == (2, 10)


def test_an_alias_trains_the_same_model():
    assert _abstract(lambda: build_model("mobilenet_v2", 10, nnx.Rngs(0))) == _abstract(
        lambda: build_model("mobilenetv2", 10, nnx.Rngs(0))
    )
    with pytest.raises(ValueError, match=r"`name` 'mobilenet_v2' is an alias of .*'mobilenetv2'"):
        register_model("mobilenet_v2", lambda k, rngs: nnx.Linear(3, k, rngs=rngs))


def test_the_bench_times_registry_models_as_before():
    from bench.suites import model as suite

    assert [case.name for case in suite.CASES] == list(BENCH_BEFORE)
    for case in suite.CASES:
        entry = MODELS[case.name]
        assert (case.size, case.classes) == BENCH_BEFORE[case.name][2:]
        assert (entry.input_size, entry.num_classes) == BENCH_BEFORE[case.name][2:]
    peers = {case.name for case in suite.CASES if suite.has_torch_peer(case.name)}
    assert peers == {"resnet50", "mobilenetv2"}


@pytest.mark.parametrize("name", list(BENCH_BEFORE))
def test_the_bench_builds_what_it_built_before(name):
    from bench.suites import model as suite

    module, keywords, size, classes = BENCH_BEFORE[name]
    got = _abstract(lambda: suite._build(suite.ModelCase(name, size, classes), "float32"))
    rngs, dtype = {"params": 0, "dropout": 1}, jax.numpy.dtype("float32")
    want = _abstract(lambda: module(classes, dtype=dtype, rngs=nnx.Rngs(**rngs), **keywords))
    assert got == want


@pytest.mark.parametrize("name", _torchvision_names())
def test_from_torchvision_takes_the_registrys_names(name):
    layout = MODELS[name].torchvision
    assert layout is not None
    model = nnx.eval_shape(lambda: from_torchvision(name, num_classes=7))
    assert isinstance(model, MODELS[name].module)
    _, arrays = _entries(model)
    assert arrays[layout.classifier].torch_shape()[0] == 7  # the key that counts the classes
    for alias in MODELS[name].aliases:
        assert _shapes(nnx.eval_shape(lambda alias=alias: from_torchvision(alias))) == _shapes(
            nnx.eval_shape(lambda: from_torchvision(name))
        )


def test_the_torch_transcriptions_are_keyed_by_the_registry():
    pytest.importorskip("torch")
    from bench import torch_models

    assert list(torch_models.MODELS) == _torchvision_names()


# --- adding a model is one entry --------------------------------------------------------------


def test_a_new_entry_reaches_every_consumer(monkeypatch):
    from bench.suites import model as suite

    name = "resnet34-copy"  # no such model: ResNet34 under another name
    entry = ModelEntry(
        name,
        ResNet34,
        "ResNet-34, trained with the CIFAR stem",
        train={"stem": "cifar"},
        torchvision=TorchvisionLayout("fc.weight"),
    )
    monkeypatch.setitem(registry._MODELS, name, entry)
    assert model_entry(name) is entry
    assert name in model_names() and f"\n  {name} " in (build_parser().epilog or "")
    trained = nnx.eval_shape(lambda: build_model(name, 10, nnx.Rngs(0)))
    assert isinstance(trained, ResNet34) and trained.stem == "cifar"
    loaded = nnx.eval_shape(lambda: from_torchvision(name))
    assert isinstance(loaded, ResNet34) and loaded.stem == "imagenet"
    timed = nnx.eval_shape(lambda: suite._build(suite.ModelCase(name, 224, 1000), "float32"))
    assert isinstance(timed, ResNet34) and suite.has_torch_peer(name)
    out = jax.eval_shape(lambda m, x: m(x), timed, jax.ShapeDtypeStruct((1, 64, 64, 3), "float32"))
    assert out.shape == (1, 1000)
