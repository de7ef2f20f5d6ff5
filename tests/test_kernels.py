"""Every lowering against the NumPy float64 reference on a seeded grid of the shapes it supports;
``supports`` reasons; explicit-but-inapplicable requests; plans (fwd/dx/dw split) run by the one
derivative rule; the cost model and ``choose``; no recompiles."""

from __future__ import annotations

import dataclasses
import math
import re
import typing

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference
from conftest import highest, tol
from jax import lax

import jaxconv
from jaxconv import convolution as kernels
from jaxconv.convolution.lowerings import onednn

LOWERINGS = tuple(kernels.LOWERINGS)


def _spec_of(x_shape, w_shape, dtype="float32", **kwargs):
    return kernels.conv_spec(
        jax.ShapeDtypeStruct(x_shape, dtype), jax.ShapeDtypeStruct(w_shape, dtype), **kwargs
    )


def _sample(name: str, count: int, seed: int) -> list[dict]:
    """Up to ``count`` small conv configurations that lowering ``name`` supports."""
    rng = np.random.default_rng(seed)
    lowering = kernels.get(name)
    found: list[dict] = []
    for _ in range(4000):
        if len(found) == count:
            break
        k = int(rng.choice([1, 1, 3, 3, 5, 2]))
        kernel = (k, k) if rng.random() < 0.8 else (k, int(rng.integers(1, 4)))
        pointwise_like = kernel == (1, 1) and rng.random() < 0.7
        cfg = dict(
            x=(
                int(rng.integers(1, 3)),
                int(rng.integers(max(kernel[0], 4), 11)),
                int(rng.integers(max(kernel[1], 4), 11)),
            ),
            kernel=kernel,
            c_in=int(rng.integers(1, 9)),
            c_out=int(rng.integers(1, 9)),
            stride=1 if pointwise_like else int(rng.choice([1, 1, 2])),
            dilation=1 if pointwise_like else int(rng.choice([1, 1, 1, 2])),
            padding="VALID" if pointwise_like else rng.choice(["SAME", "VALID", "pairs"]).item(),
            groups=1 if rng.random() < 0.8 else 2,
            layout="NHWC" if rng.random() < 0.75 else "NCHW",
            seed=int(rng.integers(1 << 30)),
        )
        if cfg["padding"] == "pairs":
            cfg["padding"] = tuple(tuple(int(v) for v in rng.integers(0, 3, 2)) for _ in range(2))
        if cfg["groups"] == 2:
            cfg["c_in"], cfg["c_out"] = 2 * max(cfg["c_in"] // 2, 1), 2 * max(cfg["c_out"] // 2, 1)
        spec = _spec(cfg)
        if spec is not None and lowering.supports(spec) is None:
            found.append(cfg)
    return found


def _spec(cfg: dict):
    n, h, w = cfg["x"]
    x_shape = (n, h, w, cfg["c_in"]) if cfg["layout"] == "NHWC" else (n, cfg["c_in"], h, w)
    w_shape = (
        (*cfg["kernel"], cfg["c_in"] // cfg["groups"], cfg["c_out"])
        if cfg["layout"] == "NHWC"
        else (cfg["c_out"], cfg["c_in"] // cfg["groups"], *cfg["kernel"])
    )
    try:
        spec = _spec_of(
            x_shape,
            w_shape,
            stride=cfg["stride"],
            padding=cfg["padding"],
            dilation=cfg["dilation"],
            groups=cfg["groups"],
            layout=cfg["layout"],
        )
    except ValueError:  # a kernel larger than the padded input
        return None
    return spec


def _data(cfg: dict):
    rng = np.random.default_rng(cfg["seed"])
    n, h, w = cfg["x"]
    x = rng.standard_normal((n, h, w, cfg["c_in"])).astype(np.float32).astype(np.float64)
    k = rng.standard_normal((*cfg["kernel"], cfg["c_in"] // cfg["groups"], cfg["c_out"]))
    return x, k.astype(np.float32).astype(np.float64)


def _call(cfg: dict, x, w, implementation):
    if cfg["layout"] == "NCHW":
        x, w = np.moveaxis(x, -1, 1), np.transpose(w, (3, 2, 0, 1))
    y = jaxconv.conv(
        jnp.asarray(x, jnp.float32),
        jnp.asarray(w, jnp.float32),
        stride=cfg["stride"],
        padding=cfg["padding"],
        dilation=cfg["dilation"],
        groups=cfg["groups"],
        layout=cfg["layout"],
        implementation=implementation,
    )
    y = np.asarray(y, np.float64)
    return np.moveaxis(y, 1, -1) if cfg["layout"] == "NCHW" else y


GRID = [(name, cfg) for i, name in enumerate(LOWERINGS) for cfg in _sample(name, 6, 100 + i)]


def test_every_lowering_is_one_frozen_record():
    assert list(kernels.LOWERINGS)[-1] == "xla"  # the fallback last
    for name, lowering in kernels.LOWERINGS.items():
        assert isinstance(lowering, kernels.Lowering) and lowering.name == name
        assert callable(lowering.supports) and callable(lowering.fwd)
        assert lowering.error_factor >= 1 and lowering.summary
        assert lowering.backends is None or set(lowering.backends) <= {"cpu", "gpu", "tpu"}
        assert set(lowering.roles) <= set(kernels.ROLES) and "fwd" in lowering.roles
    with pytest.raises(TypeError):
        kernels.LOWERINGS["mine"] = kernels.LOWERINGS["xla"]  # immutable


def test_grid_reaches_every_lowering():
    assert {name for name, _ in GRID} == set(LOWERINGS)


@pytest.mark.parametrize(("name", "cfg"), GRID, ids=[f"{n}-{i}" for i, (n, _) in enumerate(GRID)])
def test_lowering_matches_float64_reference(name, cfg):
    x, w = _data(cfg)
    expected = reference.conv(
        x,
        w,
        stride=cfg["stride"],
        padding=cfg["padding"],
        dilation=cfg["dilation"],
        groups=cfg["groups"],
    )
    reduction = math.prod(cfg["kernel"]) * cfg["c_in"] // cfg["groups"]
    atol = tol("float32", reduction) * kernels.get(name).error_factor
    np.testing.assert_allclose(_call(cfg, x, w, name), expected, rtol=0, atol=atol)


def _grads(fn, x, w, dy):
    return jax.jit(lambda x, w, dy: jax.vjp(fn, x, w)[1](dy))(x, w, dy)


@pytest.mark.parametrize("name", [n for n in LOWERINGS if n != "xla"])
def test_lowering_gradients_match_xla(name, rng):
    """dx and dw of each lowering (autodiff or its own rule) against xla at HIGHEST."""
    cfg = _sample(name, 1, 7)[0]
    spec = _spec(cfg)
    xs = (cfg["x"][0], *spec.in_spatial, cfg["c_in"])
    if not spec.channels_last:
        xs = (xs[0], xs[3], xs[1], xs[2])
    ws = (
        (*spec.kernel, cfg["c_in"] // cfg["groups"], cfg["c_out"])
        if spec.channels_last
        else (cfg["c_out"], cfg["c_in"] // cfg["groups"], *spec.kernel)
    )
    x, w = (jnp.asarray(rng.standard_normal(s), jnp.float32) for s in (xs, ws))
    dy = jnp.asarray(rng.standard_normal(spec.out_shape), jnp.float32)
    hi = dataclasses.replace(spec, precision=lax.Precision.HIGHEST)
    plan = kernels.Plan(name, name, name)
    got = _grads(lambda x, w: kernels.run(plan, x, w, spec), x, w, dy)
    want = _grads(lambda x, w: kernels.get("xla").fwd(x, w, hi), x, w, dy)
    k_dx = math.prod(spec.kernel) * spec.out_channels // spec.groups
    k_dw = math.prod(spec.out_shape[:-1] if spec.channels_last else (spec.batch, *spec.out_spatial))
    factor = kernels.get(name).error_factor
    np.testing.assert_allclose(got[0], want[0], rtol=0, atol=tol("float32", k_dx) * factor)
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=tol("float32", k_dw) * factor)


# --- supports(): reasons, and explicit requests that do not apply ----------------------------


_REJECTIONS = [
    ("einsum", ((1, 8, 8, 4), (3, 3, 4, 4)), {}, r"einsum needs a 1×1 kernel, got \(3, 3\)"),
    ("einsum", ((1, 8, 8, 4), (1, 1, 4, 4)), dict(stride=2), r"einsum needs stride 1"),
    ("einsum", ((1, 8, 8, 4), (1, 1, 2, 4)), dict(groups=2), r"einsum needs groups=1, got 2"),
    ("onednn", ((1, 8, 8, 4), (3, 3, 4, 4), "float16"), {}, r"float32 or bfloat16|onednn"),
    (
        "onednn",
        ((1, 8, 8, 4), (3, 3, 4, 4)),
        dict(padding=((-1, 0), (0, 0))),
        r"non-negative padding|onednn",
    ),
    (
        "onednn",
        ((1, 8, 8, 4), (4, 4, 4, 4)),
        dict(input_dilation=2, stride=2),
        r"needs stride 1 with input_dilation|onednn",
    ),
]
#: The rejections of the lowerings registered here.
REJECTIONS = [r for r in _REJECTIONS if r[0] in kernels.LOWERINGS]
FIRST_REJECTIONS = [
    r for i, r in enumerate(REJECTIONS) if r[0] not in {q[0] for q in REJECTIONS[:i]}
]


@pytest.mark.parametrize(
    ("name", "shapes", "kwargs", "reason"),
    REJECTIONS,
    ids=[f"{r[0]}-{i}" for i, r in enumerate(REJECTIONS)],
)
def test_supports_gives_the_reason(name, shapes, kwargs, reason):
    spec = _spec_of(*shapes, **kwargs)
    assert re.search(reason, kernels.get(name).supports(spec))
    assert re.search(reason, kernels.available(spec)[name])
    assert name not in kernels.candidates(spec, "cpu")


@pytest.mark.parametrize(
    ("name", "shapes", "kwargs", "reason"), FIRST_REJECTIONS, ids=[r[0] for r in FIRST_REJECTIONS]
)
def test_explicit_inapplicable_lowering_raises_with_reason(name, shapes, kwargs, reason):
    x_shape, w_shape = shapes[:2]
    dtype = shapes[2] if len(shapes) > 2 else "float32"
    x, w = jnp.zeros(x_shape, dtype), jnp.zeros(w_shape, dtype)
    with pytest.raises(
        ValueError,
        match=rf"`implementation` \(='{name}'\) does not apply: "
        rf".*{reason}",
    ):
        jaxconv.conv(
            x,
            w,
            implementation=name,
            layout=kwargs.get("layout", "NHWC"),
            **{k: v for k, v in kwargs.items() if k != "layout"},
        )


def test_xla_applies_everywhere_and_is_the_fallback():
    # input dilation with stride 2: no lowering but xla expresses it
    spec = _spec_of((1, 5, 5, 5, 2), (2, 2, 2, 2, 3), groups=1, input_dilation=2, stride=2)
    assert kernels.available(spec)["xla"] is None
    assert kernels.default_plan(spec, "cpu") == kernels.Plan("xla", "xla", "xla")


# --- jit: the selection is static, so the second call does not retrace ------------------------
def test_jit_does_not_retrace_with_selection():
    traces = []

    @jax.jit
    def f(x, w):
        traces.append(1)
        return jaxconv.conv(x, w)

    x, w = jnp.ones((2, 10, 10, 32)), jnp.ones((3, 3, 32, 32))
    f(x, w).block_until_ready()
    f(x + 1, w).block_until_ready()
    assert len(traces) == 1


# --- the cost model ----------------------------------------------------------------------------
def test_default_plan_rules(monkeypatch):
    """onednn for every role wherever it applies; else on a CPU einsum for a pointwise conv
    (for a channels-last 1-D one only the weight gradient), else xla — on a GPU always xla
    (cuDNN/cuBLAS); never a lowering tuned on another machine (only a measured table picks
    those)."""
    pointwise = _spec_of((8, 28, 28, 192), (1, 1, 192, 64), padding="VALID")
    seed_5x5 = _spec_of((32, 14, 14, 480), (5, 5, 480, 48))
    stem = _spec_of((8, 224, 224, 3), (7, 7, 3, 64), stride=2, padding=3)
    depthwise = _spec_of((32, 112, 112, 32), (3, 3, 1, 32), groups=32)
    transposed = _spec_of((2, 8, 8, 4), (4, 4, 4, 4), input_dilation=2, padding=2)
    strided_transposed = _spec_of((2, 8, 8, 4), (4, 4, 4, 4), input_dilation=2, stride=2)
    plan = kernels.Plan
    for spec in (pointwise, seed_5x5, stem, depthwise, transposed):
        assert kernels.default_plan(spec, "gpu") == plan("xla", "xla", "xla")
    assert kernels.default_plan(strided_transposed, "cpu") == plan("xla", "xla", "xla")
    if onednn.unavailable() is None:
        for spec in (pointwise, seed_5x5, stem, depthwise, transposed):
            assert kernels.default_plan(spec, "cpu") == plan("onednn", "onednn", "onednn")
    monkeypatch.setattr(onednn.lowering, "unavailable", lambda: "switched off for this test")
    assert kernels.default_plan(pointwise, "cpu") == plan("einsum", "einsum", "einsum")
    # a channels-last 1-D 1×1: XLA's own forward and input gradient, einsum's weight gradient
    pointwise_1d = _spec_of((32, 1000, 256), (1, 256, 64), padding="VALID")
    assert kernels.default_plan(pointwise_1d, "cpu") == plan("xla", "xla", "einsum")
    assert (
        "per role, fwd=xla, dx=xla, dw=einsum are preferred"
        in kernels.choose(pointwise_1d, platform="cpu").reason
    )
    pointwise_ncw = _spec_of((32, 256, 1000), (64, 256, 1), padding="VALID", layout="NCHW")
    assert kernels.default_plan(pointwise_ncw, "cpu") == plan("einsum", "einsum", "einsum")
    for spec in (seed_5x5, stem, depthwise, transposed):
        assert kernels.default_plan(spec, "cpu") == plan("xla", "xla", "xla")


# --- choose(): implementation, table, cost model ----------------------------------------------
def test_choose_explicit_name_plan_and_errors():
    spec = _spec_of((2, 8, 8, 4), (1, 1, 4, 4), padding="VALID")
    assert kernels.choose(spec, "einsum").plan == kernels.Plan("einsum", "einsum", "einsum")
    mixed = kernels.Plan("einsum", "xla", "einsum")
    choice = kernels.choose(spec, mixed)
    assert choice.plan == mixed and choice.source == "implementation"
    with pytest.raises(ValueError, match=r"`implementation` \(='nope'\) .*|one of"):
        kernels.choose(spec, kernels.Plan("einsum", "nope", "xla"))
    with pytest.raises(ValueError, match=r"einsum needs a 1×1 kernel"):
        kernels.choose(_spec_of((2, 8, 8, 4), (3, 3, 4, 4)), kernels.Plan("xla", "einsum", "xla"))


def test_choose_reads_the_table_it_is_given_and_says_so():
    spec = _spec_of((8, 8, 8, 4), (3, 3, 4, 4))
    key = kernels.tables.spec_key(spec)
    table = kernels.tables.Table(None, {key: {8: kernels.Plan("xla", "xla", "xla")}})
    choice = kernels.choose(spec, table=table, platform="cpu")
    assert choice.plan == kernels.Plan("xla", "xla", "xla") and choice.source == "table"
    stale = kernels.tables.Table(None, {key: {8: kernels.Plan("winograd_f2", "xla", "xla")}})
    choice = kernels.choose(spec, table=stale, platform="cpu")
    assert choice.source == "cost model" and "is not one of" in choice.reason
    assert choice.plan == kernels.default_plan(spec, "cpu")
    assert kernels.choose(spec, table=kernels.tables.Table(None), platform="cpu").source == (
        "cost model"
    )


def test_cpu_only_lowerings_are_never_chosen_for_a_gpu():
    """onednn declares ``backends=("cpu",)``: a GPU neither gets it from the cost model nor from
    a table entry (a CPU table copied over, say) — only an explicit ``implementation=``."""
    assert kernels.get("onednn").backends == ("cpu",)
    assert kernels.get("xla").backends is None and kernels.get("einsum").backends is None
    spec = _spec_of((8, 28, 28, 192), (1, 1, 192, 64), padding="VALID")
    assert "onednn" not in kernels.candidates(spec, "gpu")
    assert set(kernels.candidates(spec, "gpu")) == {"einsum", "xla"}
    cpu_entry = kernels.Plan("onednn", "onednn", "onednn")
    table = kernels.tables.Table(None, {kernels.tables.spec_key(spec): {8: cpu_entry}})
    choice = kernels.choose(spec, table=table, platform="gpu")
    assert choice.plan == kernels.Plan("xla", "xla", "xla") and choice.source == "cost model"
    if onednn.unavailable() is None:  # else the entry fails earlier: onednn does not apply
        assert "targets cpu, not gpu" in choice.reason
        assert kernels.choose(spec, table=table, platform="cpu").plan == cpu_entry
    einsum = kernels.Plan("einsum", "einsum", "einsum")  # a measured GPU win is taken
    table = kernels.tables.Table(None, {kernels.tables.spec_key(spec): {8: einsum}})
    assert kernels.choose(spec, table=table, platform="gpu").plan == einsum


def test_explain_is_what_dispatch_runs():
    x, w = jnp.ones((2, 8, 8, 4)), jnp.ones((3, 3, 4, 4))
    choice = jaxconv.explain(x, w, stride=2)
    assert choice.spec == kernels.conv_spec(x, w, stride=2)
    assert choice.plan == kernels.choose(choice.spec).plan
    assert "plan: fwd=" in str(choice) and "xla: applies" in str(choice)
    with kernels.recording() as seen:
        jax.eval_shape(lambda x, w: jaxconv.conv(x, w, stride=2), x, w)
    assert seen == [choice.spec]


# --- plans that split fwd / dx / dw ------------------------------------------------------------
SPLIT = kernels.Plan("einsum", "xla", "einsum")


def test_split_plan_values_and_all_derivatives(rng):
    spec = _spec_of((2, 7, 6, 3), (1, 1, 3, 4), padding="VALID")
    x = jnp.asarray(rng.standard_normal((2, 7, 6, 3)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((1, 1, 3, 4)), jnp.float32)
    b = jnp.asarray(rng.standard_normal((4,)), jnp.float32)
    ref = lambda x, w: kernels.get("xla").fwd(x, w, spec) + b[None, None, None]  # noqa: E731
    f = lambda x, w: kernels.run(SPLIT, x, w, spec, b)  # noqa: E731
    atol = tol("float32", 3)
    np.testing.assert_allclose(f(x, w), ref(x, w), rtol=0, atol=atol)
    tx, tw = jnp.ones_like(x), -jnp.ones_like(w)
    np.testing.assert_allclose(
        jax.jvp(f, (x, w), (tx, tw))[1], jax.jvp(ref, (x, w), (tx, tw))[1], rtol=0, atol=atol
    )
    dy = jnp.asarray(rng.standard_normal(spec.out_shape), jnp.float32)
    for got, want in zip(_grads(f, x, w, dy), _grads(ref, x, w, dy)):
        np.testing.assert_allclose(got, want, rtol=0, atol=tol("float32", 84))

    def hess(g):
        return jax.grad(lambda x: jnp.sum(jax.grad(lambda x: jnp.sum(g(x, w) ** 2))(x) ** 2))(x)

    # The same algebra through other lowerings, so at full float32 (not TF32 on a GPU): a
    # second derivative and a ReLU mask amplify rounding differences between the lowerings.
    with highest():
        np.testing.assert_allclose(hess(f), hess(ref), rtol=1e-4, atol=1e-2)
        db = jax.grad(lambda b: kernels.run(SPLIT, x, w, spec, b, relu=True).sum())(b)
        plain = kernels.get("xla").fwd(x, w, spec)
        want = jax.grad(lambda b: jax.nn.relu(plain + b[None, None, None]).sum())(b)
    np.testing.assert_allclose(db, want, rtol=1e-6, atol=1e-5)


def test_split_plan_roles_use_their_lowerings():
    """The forward and weight gradient are einsum's dots; the input gradient is lax's conv
    (which XLA may rewrite into a dot for a 1×1: the op names say where each came from)."""
    spec = _spec_of((2, 8, 8, 4), (1, 1, 4, 4), padding="VALID")
    x, w = jnp.ones((2, 8, 8, 4)), jnp.ones((1, 1, 4, 4))
    compiled = lambda f: jax.jit(f).lower(x, w).compile().as_text()  # noqa: E731
    fwd = compiled(lambda x, w: kernels.run(SPLIT, x, w, spec))
    dx = compiled(jax.grad(lambda x, w: kernels.run(SPLIT, x, w, spec).sum()))
    dw = compiled(jax.grad(lambda x, w: kernels.run(SPLIT, x, w, spec).sum(), argnums=1))
    einsum = "mi,io->mo"  # the einsum lowering's contraction
    assert einsum in fwd and "conv_general_dilated" not in fwd
    assert "conv_general_dilated" in dx and einsum not in dx
    assert einsum in dw and "conv_general_dilated" not in dw


def test_implementation_literal_is_the_registry():
    # The names `implementation=` is typed with are exactly the registered lowerings, in order.
    assert typing.get_args(kernels.Implementation) == tuple(kernels.LOWERINGS)


def test_default_plan_reads_only_what_each_lowering_prefers(monkeypatch):
    # A lowering that prefers nothing is never the cost model's choice, even where it applies.
    spec = kernels.conv_spec(jnp.ones((2, 8, 8, 4)), jnp.ones((1, 1, 4, 4)), padding="VALID")
    einsum = kernels.LOWERINGS["einsum"]
    patched = dict(kernels.LOWERINGS)
    patched["einsum"] = dataclasses.replace(einsum, prefers=lambda spec, platform: ())
    monkeypatch.setattr(kernels.plan, "LOWERINGS", patched)
    assert kernels.default_plan(spec, "cpu", without=("onednn",)) == kernels.Plan(
        "xla", "xla", "xla"
    )


def test_every_conv_op_answers_explain_and_implementation():
    # Every public conv op runs through choose: explain(fn, ...) lists its convs, and
    # implementation="xla" reaches each of them.
    x = jnp.ones((2, 8, 8, 4))
    cases = {
        "conv": (jaxconv.conv, (x, jnp.ones((3, 3, 4, 6))), [(3, 3)]),
        "conv1x1": (jaxconv.conv1x1, (x, jnp.ones((4, 6))), [(1, 1)]),
        "bottleneck": (
            jaxconv.bottleneck,
            (x, jnp.ones((4, 2)), jnp.ones((5, 5, 2, 6))),
            [(1, 1), (5, 5)],
        ),
        "depthwise_conv": (jaxconv.depthwise_conv, (x, jnp.ones((3, 3, 1, 4))), [(3, 3)]),
        "separable_conv": (
            jaxconv.separable_conv,
            (x, jnp.ones((3, 3, 1, 4)), jnp.ones((4, 6))),
            [(3, 3), (1, 1)],
        ),
        "conv_transpose": (jaxconv.conv_transpose, (x, jnp.ones((3, 3, 4, 6))), [(3, 3)]),
    }
    for name, (fn, args, kernels_run) in cases.items():
        got = jaxconv.explain(fn, *args)
        assert [c.spec.kernel for c in got] == kernels_run, name
        assert all(c.source in ("cost model", "op default", "table") for c in got), name
        forced = jaxconv.explain(lambda *a, fn=fn: fn(*a, implementation="xla"), *args)
        xla = kernels.Plan("xla", "xla", "xla")
        assert any(c.plan == xla and c.source == "implementation" for c in forced), name


def test_conv1x1_keeps_the_mission_einsum_as_its_own_default():
    # conv1x1 runs through choose as its 1x1 conv, but its default is the einsum it always ran
    # (faster forward than oneDNN on most 1x1s measured), shown by explain; implementation=
    # still reaches any lowering, and conv with the same 1x1 kernel keeps the cost model's plan.
    x, w = jnp.ones((2, 8, 8, 16)), jnp.ones((16, 4))
    (choice,) = jaxconv.explain(jaxconv.conv1x1, x, w)
    assert choice.spec.is_pointwise
    assert (choice.plan, choice.source) == (
        kernels.Plan("einsum", "einsum", "einsum"),
        "op default",
    )
    (conv_choice,) = jaxconv.explain(lambda x, w: jaxconv.conv(x, w[None, None]), x, w)
    assert conv_choice.source == "cost model"
    assert conv_choice.plan == kernels.default_plan(choice.spec, jax.default_backend())
    (forced,) = jaxconv.explain(lambda x, w: jaxconv.conv1x1(x, w, implementation="xla"), x, w)
    assert forced.plan == kernels.Plan("xla", "xla", "xla")
    want = jnp.einsum("nhwc,co->nhwo", x, w)
    for implementation in (None, "xla", "einsum"):
        y = jaxconv.conv1x1(x, w, implementation=implementation)
        np.testing.assert_allclose(y, want, rtol=1e-6)
    for shape in ((16,), (3, 16), (2, 3, 4, 5, 6, 16)):  # any leading dims
        a = jnp.arange(math.prod(shape), dtype=jnp.float32).reshape(shape) / 100
        np.testing.assert_allclose(jaxconv.conv1x1(a, w), a @ w, rtol=1e-5)
