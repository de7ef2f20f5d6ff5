"""jaxconv.nn.summary: Table 1 of the GoogLeNet paper, aggregation, the module tree in place
(containers with their children, ``depth=``), XLA flops only on request, printing, and that it
neither patches classes nor touches the model."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import jaxconv
from jaxconv.models import GoogLeNet, MobileNetV2, ResNet18
from jaxconv.nn import Conv, Conv1x1, Inception, summary

#: Szegedy et al. 2015, Table 1: output size of each row, and the ops column (millions) of the
#: inception rows. 5a's printed 54M disagrees with the table's own widths (see the test).
TABLE_1_OUTPUT = {
    "conv1": (112, 112, 64),
    "pool1": (56, 56, 64),
    "conv2": (56, 56, 192),
    "pool2": (28, 28, 192),
    "inception_3a": (28, 28, 256),
    "inception_3b": (28, 28, 480),
    "pool3": (14, 14, 480),
    "inception_4a": (14, 14, 512),
    "inception_4b": (14, 14, 512),
    "inception_4c": (14, 14, 512),
    "inception_4d": (14, 14, 528),
    "inception_4e": (14, 14, 832),
    "pool4": (7, 7, 832),
    "inception_5a": (7, 7, 832),
    "inception_5b": (7, 7, 1024),
    "avg_pool": (1, 1, 1024),
    "dropout": (1, 1, 1024),
    "fc": (1, 1, 1000),
}
TABLE_1_OPS_M = {
    "inception_3a": 128,
    "inception_3b": 304,
    "inception_4a": 73,
    "inception_4b": 88,
    "inception_4c": 100,
    "inception_4d": 119,
    "inception_4e": 170,
    "inception_5b": 71,
}
IMAGE = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)


@pytest.fixture(scope="module")
def googlenet():
    model = nnx.eval_shape(lambda: GoogLeNet(rngs=nnx.Rngs(0)))
    model.eval()
    return model


@pytest.fixture(scope="module")
def table(googlenet):
    return summary(googlenet, IMAGE, xla=None)


def test_table_1_output_sizes(table):
    for path, size in TABLE_1_OUTPUT.items():
        assert table.row(path).output_shape == (1, *size), path
    assert table.total.output_shape == (1, 1000)


def test_table_1_ops_column(table):
    for path, ops in TABLE_1_OPS_M.items():
        # The paper prints whole millions, sometimes truncated (4a: 73.6), sometimes rounded.
        assert abs(table.row(path).macs / 1e6 - ops) < 1, path
    # The "convolution 3×3/1 … 360M" row is the 1×1 reduce and the 3×3 together.
    assert abs((table.row("conv2_reduce").macs + table.row("conv2").macs) / 1e6 - 360) < 1
    # 5a has the same widths as 4e but a 7×7 map: 51.1M, not the printed 54M.
    macs_5a = table.row("inception_5a").macs
    assert macs_5a == 7 * 7 * (
        832 * 256 + 832 * 160 + 160 * 320 * 9 + 832 * 32 + 32 * 128 * 25 + 832 * 128
    )
    assert round(macs_5a / 1e6, 1) == 51.1


def test_totals_paper_faithful_googlenet(table):
    # Paper-faithful: conv biases, no BN, no auxiliary heads (built here, but not run in eval).
    aux = table.row("aux_4a").params + table.row("aux_4d").params
    assert table.total.params - aux == 6_998_552
    assert round(table.total.macs / 1e9, 2) == 1.58
    assert table.total.flops == 2 * table.total.macs
    assert table.total.xla_flops is None


def test_rows_cover_the_tree_and_blocks_aggregate_children(googlenet, table):
    paths = [r.path for r in table]
    assert sorted(paths) == sorted(
        ".".join(map(str, p)) for p, _ in nnx.iter_modules(googlenet) if p
    )
    assert len(set(paths)) == len(paths)
    by_path = {r.path: r for r in table}
    for row in table:
        children = [r for r in table if r.path.rsplit(".", 1)[0] == row.path and "." in r.path]
        if children and row.kind != "GoogLeNet":
            assert row.macs == sum(c.macs for c in children), row.path
            assert row.params == sum(c.params for c in children), row.path
    # Calls come in network order, a block before its children.
    assert (
        paths.index("inception_4a")
        < paths.index("inception_4a.branch_1x1")
        < paths.index("pool4")
        < paths.index("fc")
    )
    assert by_path["inception_4a.branch_5x5.reduce"].kind == "Conv1x1"
    assert sum(r.macs for r in table if r.depth == 0) == table.total.macs


def test_conv_rows_use_the_cost_model(table):
    # The 1×1-convolution notes' example: inception (4a)'s 5×5 branch.
    seed = jaxconv.bottleneck_cost((14, 14, 480), 48, 5, 16)
    assert table.row("inception_4a.branch_5x5.reduce").macs == seed.reduce.macs == 1_505_280
    assert table.row("inception_4a.branch_5x5.conv").macs == seed.spatial.macs
    assert table.row("inception_4a.branch_5x5").macs == seed.macs_bottleneck
    conv1 = jaxconv.conv_cost((224, 224, 3), 64, 7, stride=2, padding=3)
    assert table.row("conv1").macs == conv1.macs
    assert table.row("conv1").params == conv1.params
    assert table.row("fc").macs == 1024 * 1000


def test_modules_that_did_not_run_have_no_shape(googlenet, table):
    aux = table.row("aux_4a")
    assert aux.output_shape is None and aux.macs == 0 and aux.calls == 0 and aux.params > 0
    assert [r.path for r in table][-1].startswith("aux_4d")  # not-run rows come last
    googlenet.train()
    try:
        trained = summary(googlenet, IMAGE, xla=None)
    finally:
        googlenet.eval()
    assert trained.row("aux_4a").output_shape == (1, 1000)
    assert trained.row("aux_4a.fc1").input_shape == (1, 2048)
    assert trained.total.output_shape == ((1, 1000), (1, 1000), (1, 1000))
    assert trained.total.macs > table.total.macs


def test_fused_inception_has_the_same_rows_and_is_left_unchanged():
    x = jax.ShapeDtypeStruct((2, 8, 8, 16), jnp.float32)
    widths = (8, 4, 8, 2, 4, 4)
    fused = nnx.eval_shape(lambda: Inception(16, widths, fuse_1x1=True, rngs=nnx.Rngs(0)))
    plain = nnx.eval_shape(lambda: Inception(16, widths, rngs=nnx.Rngs(0)))
    a, b = summary(fused, x, xla=None), summary(plain, x, xla=None)
    assert a == b and a.total == b.total
    assert a.row("branch_1x1").macs == 2 * 8 * 8 * 16 * 8
    assert fused.fuse_1x1 is True


def test_xla_flops_beside_the_cost_model():
    block = nnx.eval_shape(
        lambda: Inception(16, (8, 4, 8, 2, 4, 4), implementation="xla", rngs=nnx.Rngs(0))
    )
    x = jax.ShapeDtypeStruct((1, 8, 8, 16), jnp.float32)
    rows = summary(block, x, xla="rows")
    # XLA cannot count a oneDNN call: rows that run one say so with None, never a -1 count
    onednn = jaxconv.convolution.available(
        jaxconv.convolution.conv_spec(x, jnp.ones((1, 1, 16, 8)))
    )
    uncounted = {"branch_1x1", "branch_3x3.reduce", "branch_5x5.reduce", "branch_pool.proj"}
    uncounted |= {"branch_3x3", "branch_5x5", "branch_pool"}
    for row in rows:
        if onednn["onednn"] is None and row.path in uncounted | {""}:
            assert row.xla_flops is None, row.path
        else:
            assert row.xla_flops is not None and row.xla_flops > 0, row.path
    if onednn["onednn"] is not None:  # the 1×1s are XLA's: count them
        for path in ("branch_1x1", "branch_3x3.reduce", "branch_pool.proj"):  # no padding
            row = rows.row(path)
            out = row.output_shape[1] * row.output_shape[2] * row.output_shape[3]
            # + the bias adds and the ReLU, which the unit applies itself
            assert 2 * row.macs <= row.xla_flops <= 2 * row.macs + 2 * out, path
    # XLA skips the taps that fall in the SAME padding; the cost model counts them.
    assert 0 < rows.row("branch_5x5.conv").xla_flops < 2 * rows.row("branch_5x5.conv").macs
    assert 2 * rows.row("branch_3x3.conv").macs * 0.5 < rows.row("branch_3x3.conv").xla_flops
    total_only = summary(block, x, xla="total")
    assert total_only.total.xla_flops == rows.total.xla_flops
    assert all(r.xla_flops is None for r in total_only)


def _abstract(build):
    model = nnx.eval_shape(build)
    model.eval()
    return model


SMALL = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)


@pytest.fixture(scope="module")
def resnet18():
    return summary(_abstract(lambda: ResNet18(rngs=nnx.Rngs(0))), SMALL)


def test_containers_come_in_place_with_their_children(resnet18):
    # ResNet's layer1..4 are nnx.Lists: iterated, never called. Each comes right after the
    # module before it and is followed by its blocks, before the next stage.
    paths = [r.path for r in resnet18]
    top = [p for p in paths if "." not in p]
    assert top == ["conv1", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]
    start, end = paths.index("layer1"), paths.index("layer2")
    assert paths[start + 1] == "layer1.0"
    assert all(p.startswith("layer1.") for p in paths[start + 1 : end])
    assert paths[start + 1 : end] == sorted(paths[start + 1 : end], key=paths.index)
    assert paths.index("layer1.1") < paths.index("layer1.1.conv2.bn") < end
    # each row's parent comes before it, and nothing but its parent's subtree in between
    for i, path in enumerate(paths):
        parent = path.rpartition(".")[0]
        if parent:
            j = paths.index(parent)
            assert j < i and all(p.startswith(parent + ".") for p in paths[j + 1 : i]), path
    # a stage's blocks ran as a chain: the stage has their input and output shapes
    layer2 = resnet18.row("layer2")
    assert layer2.kind == "List" and layer2.calls == 0
    assert layer2.input_shape == resnet18.row("layer2.0").input_shape == (1, 8, 8, 64)
    assert layer2.output_shape == resnet18.row("layer2.1").output_shape == (1, 4, 4, 128)
    assert layer2.macs == resnet18.row("layer2.0").macs + resnet18.row("layer2.1").macs
    lines = [line.split()[1] for line in str(resnet18).splitlines() if line.startswith("│")]
    assert lines.index("layer1") + 1 == lines.index("0") < lines.index("layer2")


def test_mobilenet_features_come_before_the_classifier():
    s = summary(_abstract(lambda: MobileNetV2(rngs=nnx.Rngs(0))), SMALL, depth=2)
    paths = [r.path for r in s]
    assert paths == [
        "features",
        *(f"features.{i}" for i in range(19)),
        "avgpool",
        "dropout",
        "classifier",
    ]
    assert s.row("features").input_shape == (1, 32, 32, 3)
    assert s.row("features").output_shape == s.row("features.18").output_shape


def test_a_container_that_is_not_a_chain_has_no_shape():
    class Branches(nnx.Module):  # both on the same input: not a chain
        def __init__(self, rngs):
            self.heads = nnx.List([nnx.Linear(3, 2, rngs=rngs), nnx.Linear(3, 4, rngs=rngs)])

        def __call__(self, x):
            return [head(x) for head in self.heads]

    s = summary(Branches(nnx.Rngs(0)), jnp.ones((1, 3)))
    assert [r.path for r in s] == ["heads", "heads.0", "heads.1"]
    heads = s.row("heads")
    assert heads.output_shape is None and heads.input_shape is None
    assert heads.params == 3 * 2 + 2 + 3 * 4 + 4 and heads.macs == 3 * 2 + 3 * 4
    assert s.total.output_shape == ((1, 2), (1, 4))


def test_depth_folds_deeper_rows_into_their_parents(resnet18):
    model = _abstract(lambda: ResNet18(rngs=nnx.Rngs(0)))
    one, two = summary(model, SMALL, depth=1), summary(model, SMALL, depth=2)
    assert [r.path for r in one] == [r.path for r in resnet18 if r.depth == 0]
    assert list(one) == [r for r in two if r.depth == 0] == [r for r in resnet18 if r.depth == 0]
    assert list(two) == [r for r in resnet18 if r.depth < 2]
    assert "layer1.0" in [r.path for r in two] and "layer1.0.conv1" not in [r.path for r in two]
    assert one.total == two.total == resnet18.total
    assert sum(r.params for r in one) == one.total.params
    assert sum(r.macs for r in one) == one.total.macs
    text = str(one)
    assert "layer4" in text and "downsample" not in text
    assert summary(model, SMALL, depth=99) == resnet18


def test_the_default_compiles_nothing(monkeypatch):
    class Compiled(Exception):
        pass

    def refuse(*args, **kwargs):
        raise Compiled

    monkeypatch.setattr(jax.stages.Lowered, "compile", refuse)
    block = nnx.eval_shape(lambda: Inception(16, (8, 4, 8, 2, 4, 4), rngs=nnx.Rngs(0)))
    x = jax.ShapeDtypeStruct((1, 8, 8, 16), jnp.float32)
    s = summary(block, x)
    assert s.total.xla_flops is None and all(r.xla_flops is None for r in s)
    assert s.total.macs > 0 and "XLA flops" not in str(s)
    with pytest.raises(Compiled):  # asked for: it compiles
        summary(block, x, xla="total")


def test_printing(table, monkeypatch):
    text = str(table)
    assert text == repr(table)
    for token in (
        "path",
        "MACs",
        "inception_4a",
        "branch_5x5",
        "14×14×512",
        f"{table.total.params:,}",
        "total",
    ):
        assert token in text
    assert "XLA flops" not in text  # not requested
    monkeypatch.setitem(sys.modules, "rich.console", None)  # without rich: plain columns
    plain = str(table)
    assert plain.splitlines()[0].split() == ["path", "kind", "output", "shape", "params", "MACs"]
    assert "inception_4a" in plain and "1×1×1000" in plain


def test_summary_errors(table):
    block = nnx.eval_shape(lambda: Inception(16, (8, 4, 8, 2, 4, 4), rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"`xla` must be None, 'total' or 'rows', got 'all'"):
        summary(block, jnp.ones((1, 4, 4, 16)), xla="all")
    with pytest.raises(TypeError, match=r"`model` must be a flax.nnx.Module, got function"):
        summary(lambda x: x, jnp.ones((1, 4, 4, 16)))
    with pytest.raises(ValueError, match=r"`depth` must be a positive int, got 0"):
        summary(block, jnp.ones((1, 4, 4, 16)), depth=0)
    with pytest.raises(TypeError, match=r"`depth` must be an int, got '2'"):
        summary(block, jnp.ones((1, 4, 4, 16)), depth="2")
    with pytest.raises(KeyError, match=r"no module at path 'inception_9z'"):
        table.row("inception_9z")


def test_import_jaxconv_stays_free_of_flax():
    code = (
        "import sys, jaxconv; assert 'flax' not in sys.modules; "
        "assert not hasattr(jaxconv, 'summary'); "
        "from jaxconv.nn import SummaryRow; assert 'flax' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_summary_leaves_the_classes_and_the_model_alone(googlenet):
    classes = (GoogLeNet, Inception, Conv, Conv1x1, nnx.Linear)
    calls = {cls: cls.__call__ for cls in classes}
    types = {path: type(m) for path, m in nnx.iter_modules(googlenet)}
    seen = []

    class Spy(Conv):  # a user's subclass: its own __call__ runs once per call, recorded once
        def __call__(self, x):
            seen.append(x.shape)
            return super().__call__(x)

    spy = nnx.eval_shape(lambda: Spy(3, 4, 3, rngs=nnx.Rngs(0)))
    rows = summary(spy, jax.ShapeDtypeStruct((1, 8, 8, 3), jnp.float32), xla=None)
    assert seen == [(1, 8, 8, 3)] and rows.total.calls == 1 and rows.total.kind == "Spy"
    summary(googlenet, IMAGE, xla=None)
    assert {cls: cls.__call__ for cls in classes} == calls
    assert {path: type(m) for path, m in nnx.iter_modules(googlenet)} == types
    assert type(spy) is Spy
