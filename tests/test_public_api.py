"""The public surface: ``jaxconv.__all__`` is pinned, documented and light to import."""

from __future__ import annotations

import importlib.resources
import inspect
import pathlib
import subprocess
import sys

import pytest

import jaxconv

PUBLIC = [
    "BottleneckCost",
    "ConvCost",
    "ConvSpec",
    "Plan",
    "ReceptiveField",
    "ResidualBlockCost",
    "SeparableCost",
    "XlaCost",
    "autotune",
    "avg_pool",
    "bottleneck",
    "bottleneck_cost",
    "canonicalize_padding",
    "canonicalize_spatial",
    "compiled_cost",
    "conv",
    "conv1x1",
    "conv_cost",
    "conv_output_shape",
    "conv_output_size",
    "conv_spec",
    "conv_transpose",
    "conv_transpose_cost",
    "conv_transpose_padding",
    "convolution",
    "depthwise_conv",
    "depthwise_cost",
    "explain",
    "global_avg_pool",
    "host_memory_options",
    "kernels",
    "max_pool",
    "ops",
    "pool_output_size",
    "pooling",
    "receptive_field",
    "residual_block_cost",
    "resolve_padding",
    "retain_host_memory",
    "separable_conv",
    "separable_cost",
    "xla_cost",
]

#: ``jaxconv.nn.__all__``: the NNX modules, their initializers and ``summary``.
NN_PUBLIC = [
    "AvgPool",
    "BasicBlock",
    "Bottleneck",
    "Conv",
    "Conv1x1",
    "ConvBN",
    "ConvTranspose",
    "DepthwiseConv",
    "FreezeReport",
    "FrozenConv",
    "GlobalAvgPool",
    "Inception",
    "InvertedResidual",
    "LocalResponseNorm",
    "MLPConv",
    "MaxPool",
    "Normal",
    "PoolProjection",
    "ResNetBottleneck",
    "SeparableConv",
    "Summary",
    "SummaryRow",
    "VarianceScaling",
    "freeze",
    "local_response_norm",
    "summary",
]

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # the standard library from Python 3.11
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_all_is_pinned_and_importable():
    # Adding or removing a public name is a decision: update PUBLIC here in the same commit.
    assert sorted(jaxconv.__all__) == PUBLIC
    assert len(set(jaxconv.__all__)) == len(jaxconv.__all__)
    for name in PUBLIC:
        assert getattr(jaxconv, name) is not None
    namespace: dict = {}
    exec("from jaxconv import *", namespace)
    assert set(PUBLIC) <= set(namespace)


def test_nn_surface_is_pinned_and_documented():
    nn = pytest.importorskip("jaxconv.nn")  # imports Flax, which the test extra installs
    assert sorted(nn.__all__) == NN_PUBLIC
    for name in NN_PUBLIC:
        doc = inspect.getdoc(getattr(nn, name)) or ""
        assert doc.split("\n", 1)[0].strip(), f"jaxconv.nn.{name}: no summary"
        if name not in ("Summary", "SummaryRow"):  # the result types of summary(), shown there
            assert "Examples:" in doc and ">>> " in doc, f"jaxconv.nn.{name}: no runnable Examples"


def _callables():
    for name in PUBLIC:
        obj = getattr(jaxconv, name)
        if callable(obj):
            yield name, obj
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if not attr.startswith("_") and callable(member):
                        yield f"{name}.{attr}", member


def test_every_public_callable_is_documented_with_examples():
    names = []
    for name, obj in _callables():
        doc = inspect.getdoc(obj) or ""
        summary = doc.split("\n", 1)[0]
        assert summary.strip(), f"{name} has no summary line"
        assert "Examples:" in doc and ">>> " in doc, f"{name} has no runnable Examples section"
        names.append(name)
    assert {"conv", "conv1x1", "explain", "ConvCost", "BottleneckCost.table"} <= set(names)


def test_subpackages_pin_their_surface_and_document_it():
    for module in (jaxconv.convolution, jaxconv.pooling, jaxconv.ops):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                doc = inspect.getdoc(obj) or ""
                assert doc.split("\n", 1)[0].strip(), f"{module.__name__}.{name}: no summary"
    assert not hasattr(jaxconv, "__getattr__"), "no lazy imports (docs/design.md)"


#: jaxconv.models' public names (importing it imports Flax).
MODELS = [
    "AuxClassifier",
    "GOOGLENET_INCEPTION",
    "GoogLeNet",
    "GoogLeNetOutputs",
    "LoadResult",
    "MINI_INCEPTION",
    "MOBILENETV2_BLOCKS",
    "MODELS",
    "MiniInception",
    "MobileNetV2",
    "ModelEntry",
    "NIN_CIFAR10",
    "NiN",
    "RESNET_LAYERS",
    "RESNET_WIDTHS",
    "ResNeXt50_32x4d",
    "ResNet",
    "ResNet101",
    "ResNet152",
    "ResNet18",
    "ResNet34",
    "ResNet50",
    "TorchvisionLayout",
    "WideResNet50_2",
    "aux_pool_geometry",
    "canonical_name",
    "from_torchvision",
    "load_torchvision_state_dict",
    "make_divisible",
    "minimum_input_size",
    "model_entry",
    "stage_sizes",
    "to_torchvision_state_dict",
]


def test_models_pin_their_surface():
    models = pytest.importorskip("jaxconv.models")
    assert sorted(models.__all__) == MODELS
    for name in ("from_torchvision", "load_torchvision_state_dict", "to_torchvision_state_dict"):
        doc = inspect.getdoc(getattr(models, name)) or ""
        assert all(part in doc for part in ("Args:", "Returns:", "Examples:", ">>> ")), name


def test_functions_document_their_arguments():
    for name, obj in _callables():
        if inspect.isfunction(obj) and "." not in name:
            params = [p for p in inspect.signature(obj).parameters if not p.startswith("_")]
            if params:
                assert "Args:" in inspect.getdoc(obj), f"{name} has no Args section"
                assert "Returns:" in inspect.getdoc(obj), f"{name} has no Returns section"


def test_import_does_not_load_flax_or_optax():
    code = (
        "import sys, jaxconv\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('flax', 'optax', 'orbax', 'torch', 'matplotlib', 'rich'))\n"
        "assert not heavy, heavy\n"
        "assert 'jaxconv.nn' not in sys.modules and 'jaxconv.train' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_py_typed_ships():
    assert importlib.resources.files("jaxconv").joinpath("py.typed").is_file()
    pyproject = _pyproject()
    # the wheel is the whole package directory, py.typed included
    assert pyproject["tool"]["scikit-build"]["wheel"]["packages"] == ["jaxconv"]


def test_version_matches_pyproject():
    assert jaxconv.__version__ == _pyproject()["project"]["version"]


def test_old_import_paths_are_the_new_objects():
    # jaxconv.kernels.* and jaxconv.ops.* moved after 0.1.0 (CHANGELOG.md); the old paths are
    # the very same objects, so a monkeypatch through either reaches the one module.
    import jaxconv.kernels.lowerings.onednn
    import jaxconv.kernels.tables
    from jaxconv.kernels.plan import choose
    from jaxconv.ops.conv import bottleneck, conv, conv1x1, explain
    from jaxconv.ops.depthwise import depthwise_conv, separable_conv
    from jaxconv.ops.pool import PoolSpec, avg_pool, max_pool
    from jaxconv.ops.transpose import conv_transpose

    import jaxconv.convolution.lowerings.onednn
    from jaxconv.kernels import Plan, conv_spec, run

    new = jaxconv.convolution
    assert jaxconv.kernels.lowerings.onednn is jaxconv.convolution.lowerings.onednn
    assert jaxconv.kernels.tables is new.tables and jaxconv.kernels.autotune is new.autotune
    assert (Plan, conv_spec, run, choose) == (new.Plan, new.conv_spec, new.run, new.choose)
    assert (conv, conv1x1, bottleneck, explain) == (
        jaxconv.conv,
        jaxconv.conv1x1,
        jaxconv.bottleneck,
        jaxconv.explain,
    )
    assert (depthwise_conv, separable_conv, conv_transpose) == (
        jaxconv.depthwise_conv,
        jaxconv.separable_conv,
        jaxconv.conv_transpose,
    )
    assert (PoolSpec, avg_pool, max_pool) == (
        jaxconv.pooling.PoolSpec,
        jaxconv.avg_pool,
        jaxconv.max_pool,
    )
    assert jaxconv.ops.conv is jaxconv.conv and jaxconv.kernels.run is jaxconv.convolution.run
