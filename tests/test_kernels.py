"""Every lowering against the NumPy float64 reference on a seeded grid of the shapes it supports;
``supports`` reasons; explicit-but-inapplicable requests; plans (fwd/dx/dw split) and their
derivatives; the cost model; XLA:CPU routing of ``xla_eigen``; no recompiles."""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference
from conftest import tol
from jax import lax

import jaxconv
from jaxconv import kernels
from jaxconv._ops import make_spec
from jaxconv.kernels import _winograd

LOWERINGS = tuple(kernels.LOWERINGS)


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
            x=(int(rng.integers(1, 3)), int(rng.integers(max(kernel[0], 4), 11)),
               int(rng.integers(max(kernel[1], 4), 11))),
            kernel=kernel,
            c_in=int(rng.integers(1, 9)),
            c_out=int(rng.integers(1, 9)),
            stride=1 if pointwise_like else int(rng.choice([1, 1, 2])),
            dilation=1 if pointwise_like else int(rng.choice([1, 1, 1, 2])),
            padding="VALID" if pointwise_like else
            rng.choice(["SAME", "VALID", "pairs"]).item(),
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
    w_shape = ((*cfg["kernel"], cfg["c_in"] // cfg["groups"], cfg["c_out"])
               if cfg["layout"] == "NHWC" else
               (cfg["c_out"], cfg["c_in"] // cfg["groups"], *cfg["kernel"]))
    try:
        spec, _, _ = make_spec(x_shape, w_shape, "float32", stride=cfg["stride"],
                               padding=cfg["padding"], dilation=cfg["dilation"],
                               groups=cfg["groups"], layout=cfg["layout"])
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
    y = jaxconv.conv(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32),
                     stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"],
                     groups=cfg["groups"], layout=cfg["layout"], implementation=implementation)
    y = np.asarray(y, np.float64)
    return np.moveaxis(y, 1, -1) if cfg["layout"] == "NCHW" else y


GRID = [(name, cfg) for i, name in enumerate(LOWERINGS) for cfg in _sample(name, 6, 100 + i)]


def test_every_lowering_declares_the_protocol():
    for name, lowering in kernels.LOWERINGS.items():
        assert lowering.name == name and callable(lowering.supports) and callable(lowering.conv)
        assert callable(lowering.reference) and lowering.error_factor >= 1
        assert lowering.backends is None or set(lowering.backends) <= {"cpu", "gpu", "tpu"}
        assert set(lowering.roles) <= {"fwd", "dx", "dw"} and "fwd" in lowering.roles


def test_grid_reaches_every_lowering():
    assert {name for name, _ in GRID} == set(LOWERINGS)


@pytest.mark.parametrize(("name", "cfg"), GRID,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(GRID)])
def test_lowering_matches_float64_reference(name, cfg):
    x, w = _data(cfg)
    expected = reference.conv(x, w, stride=cfg["stride"], padding=cfg["padding"],
                              dilation=cfg["dilation"], groups=cfg["groups"])
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
    ws = ((*spec.kernel, cfg["c_in"] // cfg["groups"], cfg["c_out"]) if spec.channels_last
          else (cfg["c_out"], cfg["c_in"] // cfg["groups"], *spec.kernel))
    x, w = (jnp.asarray(rng.standard_normal(s), jnp.float32) for s in (xs, ws))
    dy = jnp.asarray(rng.standard_normal(spec.out_shape), jnp.float32)
    hi = spec.__class__(**{**spec.__dict__, "precision": lax.Precision.HIGHEST})
    got = _grads(lambda x, w: kernels.get(name).conv(x, w, spec), x, w, dy)
    want = _grads(lambda x, w: kernels.get("xla").conv(x, w, hi), x, w, dy)
    k_dx = math.prod(spec.kernel) * spec.out_channels // spec.groups
    k_dw = math.prod(spec.out_shape[:-1] if spec.channels_last else
                     (spec.batch, *spec.out_spatial))
    factor = kernels.get(name).error_factor
    np.testing.assert_allclose(got[0], want[0], rtol=0, atol=tol("float32", k_dx) * factor)
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=tol("float32", k_dw) * factor)


# --- supports(): reasons, and explicit requests that do not apply ----------------------------
def _spec_of(x_shape, w_shape, dtype="float32", **kwargs):
    return make_spec(x_shape, w_shape, dtype, **kwargs)[0]


_REJECTIONS = [
    ("einsum", ((1, 8, 8, 4), (3, 3, 4, 4)), {}, r"einsum needs a 1×1 kernel, got \(3, 3\)"),
    ("xla_eigen", ((1, 16, 4), (3, 4, 4)), {}, r"needs a 2-D conv, got 1-D"),
    ("xla_eigen", ((1, 8, 8, 4), (3, 3, 4, 4)), dict(stride=2), r"needs stride 1.*\(2, 2\)"),
    ("xla_eigen", ((1, 8, 8, 4), (3, 3, 4, 4)), dict(input_dilation=2),
     r"needs input_dilation 1.*\(2, 2\)"),
    ("winograd_f2", ((1, 8, 8, 4), (7, 7, 4, 4)), {}, r"needs a 3×3 or 5×5 kernel, got \(7, 7\)"),
    ("winograd_f4", ((1, 8, 8, 4), (3, 3, 4, 4)), dict(stride=2), r"needs stride 1"),
    ("winograd_f4", ((1, 8, 8, 4), (3, 3, 2, 4)), dict(groups=2), r"needs groups=1, got 2"),
    ("winograd_f4", ((1, 4, 8, 8), (4, 4, 3, 3)), dict(layout="NCHW"), r"channels-last"),
    ("winograd_f4", ((1, 8, 8, 4), (3, 3, 4, 4)), dict(dilation=2), r"needs no dilation"),
    ("winograd_f4", ((1, 8, 8, 4), (3, 3, 4, 4), "bfloat16"), {}, r"float32/float64 only"),
    ("winograd_f2", ((1, 8, 8, 4), (3, 3, 4, 4)), dict(padding=((-1, 0), (0, 0))),
     r"non-negative padding"),
    ("space_to_depth", ((1, 8, 8, 4), (3, 3, 4, 4)), {}, r"is for strided convs"),
    ("space_to_depth", ((1, 8, 8, 4), (3, 3, 2, 4)), dict(stride=2, groups=2), r"groups=1"),
    ("im2col", ((1, 8, 8, 4), (1, 1, 4, 4)), dict(padding="VALID"), r"is for k×k kernels"),
    ("im2col", ((1, 4, 8, 8), (4, 4, 3, 3)), dict(layout="NCHW"), r"channels-last"),
]
#: The rejections of the lowerings registered here.
REJECTIONS = [r for r in _REJECTIONS if r[0] in kernels.LOWERINGS]
FIRST_REJECTIONS = [r for i, r in enumerate(REJECTIONS)
                    if r[0] not in {q[0] for q in REJECTIONS[:i]}]


@pytest.mark.parametrize(("name", "shapes", "kwargs", "reason"), REJECTIONS,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(REJECTIONS)])
def test_supports_gives_the_reason(name, shapes, kwargs, reason):
    spec = _spec_of(*shapes, **kwargs)
    assert re.search(reason, kernels.get(name).supports(spec))
    assert re.search(reason, kernels.available(spec)[name])
    assert name not in kernels.candidates(spec, "cpu")


@pytest.mark.parametrize(("name", "shapes", "kwargs", "reason"), FIRST_REJECTIONS,
                         ids=[r[0] for r in FIRST_REJECTIONS])
def test_explicit_inapplicable_lowering_raises_with_reason(name, shapes, kwargs, reason):
    x_shape, w_shape = shapes[:2]
    dtype = shapes[2] if len(shapes) > 2 else "float32"
    x, w = jnp.zeros(x_shape, dtype), jnp.zeros(w_shape, dtype)
    with pytest.raises(ValueError, match=rf"`implementation` \(='{name}'\) does not apply: "
                                         rf".*{reason}"):
        jaxconv.conv(x, w, implementation=name,
                     layout=kwargs.get("layout", "NHWC"), **{k: v for k, v in kwargs.items()
                                                            if k != "layout"})


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


# --- XLA:CPU routing: xla_eigen keeps fwd, dx and dw off YNNPACK ------------------------------
def _ynn_convs(text: str) -> int:
    """Convolutions inside YNNPACK fusions in optimized HLO (0 when all run on Eigen)."""
    comps = re.split(r"\n(?=\S)", text)
    ynn_called = set(re.findall(r'calls=(%[\w.]+).*"__ynn_fusion"', text))
    return sum("convolution(" in c for c in comps if c.split(" ", 1)[0] in ynn_called)


def _routed(name: str, spec) -> list[int]:
    """YNNPACK convs in the compiled forward, input gradient and weight gradient."""
    conv = kernels.get(name).conv
    x_shape = (spec.batch, *spec.in_spatial, spec.in_channels)
    w_shape = (*spec.kernel, spec.in_channels, spec.out_channels)
    x, w, dy = jnp.ones(x_shape), jnp.ones(w_shape), jnp.ones(spec.out_shape)
    fns = (lambda x, w, dy: conv(x, w, spec),
           lambda x, w, dy: jax.vjp(lambda a: conv(a, w, spec), x)[1](dy),
           lambda x, w, dy: jax.vjp(lambda b: conv(x, b, spec), w)[1](dy))
    return [_ynn_convs(jax.jit(f).lower(x, w, dy).compile().as_text()) for f in fns]


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="YNNPACK routing is XLA:CPU's")
def test_xla_eigen_routes_all_three_convs_to_eigen():
    spec = _spec_of((2, 14, 14, 32), (3, 3, 32, 48))
    assert _routed("xla", spec) == [1, 1, 1]  # the gate's default: YNNPACK for all three
    assert _routed("xla_eigen", spec) == [0, 0, 0]


# --- space_to_depth: a strided conv whose gradients stay on Eigen --------------------------
@pytest.mark.skipif(jax.default_backend() != "cpu", reason="YNNPACK routing is XLA:CPU's")
def test_space_to_depth_routes_all_three_convs_to_eigen():
    spec = _spec_of((2, 16, 16, 3), (7, 7, 3, 32), stride=2, padding=3)
    assert _routed("space_to_depth", spec) == [0, 0, 0]


# --- Winograd transforms -----------------------------------------------------------------------
def test_winograd_f2_3_matrices_are_lavins():
    at, g, bt = _winograd.transform_matrices(2, 3)
    np.testing.assert_array_equal(at, [[1, 1, 1, 0], [0, 1, -1, 1]])
    np.testing.assert_array_equal(g, [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    np.testing.assert_array_equal(bt, [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, -1, 0, 1]])


@pytest.mark.parametrize(("m", "r"), [(2, 3), (4, 3), (6, 3), (2, 5), (4, 5)])
def test_winograd_1d_identity_is_correlation(m, r, rng):
    at, g, bt = _winograd.transform_matrices(m, r)
    d, k = rng.standard_normal(m + r - 1), rng.standard_normal(r)
    direct = np.array([d[i:i + r] @ k for i in range(m)])
    np.testing.assert_allclose(at @ ((g @ k) * (bt @ d)), direct, rtol=1e-12, atol=1e-12)


def test_winograd_chunks_match_one_pass(monkeypatch, rng):
    """Room for 5 images per chunk and a batch of 6: lax.map over 2 chunks of 3 (a divisor)."""
    spec = _spec_of((6, 6, 6, 3), (3, 3, 3, 2))
    per_image = 16 * 9 * (3 + 2) * 4  # n² transforms · 9 tiles · (C_in + C_out) · 4 bytes
    assert _winograd._bytes_per_image(spec, 2) == per_image
    monkeypatch.setattr(_winograd, "CHUNK_BYTES", 5 * per_image)
    steps = []
    monkeypatch.setattr(_winograd, "_tiles", lambda xc, *a, f=_winograd._tiles: (
        steps.append(xc.shape[0]), f(xc, *a))[1])
    x = jnp.asarray(rng.standard_normal((6, 6, 6, 3)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 3, 2)), jnp.float32)
    chunked = _winograd._chunked(x, w, spec, 2)
    assert steps == [3]  # traced once, as the body of lax.map over 2 steps of 3 images
    np.testing.assert_allclose(chunked,
                               _winograd._tiles(x, _winograd._weights(w, spec, 2), spec, 2),
                               rtol=0, atol=1e-5)


def test_winograd_is_a_forward_only_candidate():
    spec = _spec_of((2, 16, 16, 32), (3, 3, 32, 32))
    assert {"winograd_f2", "winograd_f4"} <= set(kernels.candidates(spec, "cpu", role="fwd"))
    for role in ("dx", "dw"):
        assert not any(n.startswith("winograd") for n in kernels.candidates(spec, "cpu", role))


# --- the cost model ----------------------------------------------------------------------------
def test_default_plan_rules(monkeypatch):
    """onednn for every role wherever it applies; else einsum for a pointwise conv, else xla —
    never an XLA-only lowering tuned on another CPU (only a measured table picks those)."""
    from jaxconv.kernels import _onednn

    pointwise = _spec_of((8, 28, 28, 192), (1, 1, 192, 64), padding="VALID")
    seed_5x5 = _spec_of((32, 14, 14, 480), (5, 5, 480, 48))
    stem = _spec_of((8, 224, 224, 3), (7, 7, 3, 64), stride=2, padding=3)
    depthwise = _spec_of((32, 112, 112, 32), (3, 3, 1, 32), groups=32)
    transposed = _spec_of((2, 8, 8, 4), (4, 4, 4, 4), input_dilation=2, padding=2)
    strided_transposed = _spec_of((2, 8, 8, 4), (4, 4, 4, 4), input_dilation=2, stride=2)
    plan = kernels.Plan
    for spec in (pointwise, seed_5x5, stem, depthwise):
        assert kernels.default_plan(spec, "gpu") == plan(
            *["einsum" if spec is pointwise else "xla"] * 3)
    assert kernels.default_plan(strided_transposed, "cpu") == plan("xla", "xla", "xla")
    if _onednn.unavailable() is None:
        for spec in (pointwise, seed_5x5, stem, depthwise, transposed):
            assert kernels.default_plan(spec, "cpu") == plan("onednn", "onednn", "onednn")
    monkeypatch.setattr(_onednn, "unavailable", lambda: "switched off for this test")
    assert kernels.default_plan(pointwise, "cpu") == plan("einsum", "einsum", "einsum")
    for spec in (seed_5x5, stem, depthwise, transposed):
        assert kernels.default_plan(spec, "cpu") == plan("xla", "xla", "xla")


# --- plans that split fwd / dx / dw ------------------------------------------------------------
SPLIT = kernels.Plan("winograd_f2", "xla_eigen", "xla")


def test_split_plan_values_and_all_derivatives(rng):
    spec = _spec_of((2, 7, 6, 3), (3, 3, 3, 4))
    x = jnp.asarray(rng.standard_normal((2, 7, 6, 3)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 3, 4)), jnp.float32)
    split = kernels.Split(SPLIT)
    assert split.supports(spec) is None and split.name == "winograd_f2+xla_eigen+xla"
    ref = lambda x, w: kernels.get("xla").conv(x, w, spec)  # noqa: E731
    f = lambda x, w: split.conv(x, w, spec)  # noqa: E731
    atol = tol("float32", 27) * 8
    np.testing.assert_allclose(f(x, w), ref(x, w), rtol=0, atol=atol)
    tx, tw = jnp.ones_like(x), -jnp.ones_like(w)
    np.testing.assert_allclose(jax.jvp(f, (x, w), (tx, tw))[1], jax.jvp(ref, (x, w), (tx, tw))[1],
                               rtol=0, atol=atol)
    dy = jnp.asarray(rng.standard_normal(spec.out_shape), jnp.float32)
    for got, want in zip(_grads(f, x, w, dy), _grads(ref, x, w, dy)):
        np.testing.assert_allclose(got, want, rtol=0, atol=tol("float32", 84) * 8)
    hess = lambda g: jax.grad(lambda x: jnp.sum(jax.grad(  # noqa: E731
        lambda x: jnp.sum(g(x, w) ** 2))(x) ** 2))(x)
    np.testing.assert_allclose(hess(f), hess(ref), rtol=1e-4, atol=1e-2)


def test_split_plan_roles_use_their_lowerings():
    """The compiled forward is Winograd's batched GEMM; the input gradient is a conv."""
    spec = _spec_of((2, 8, 8, 4), (3, 3, 4, 4))
    x, w = jnp.ones((2, 8, 8, 4)), jnp.ones((3, 3, 4, 4))
    split = kernels.Split(SPLIT)
    compiled = lambda f: jax.jit(f).lower(x, w).compile().as_text()  # noqa: E731
    fwd = compiled(lambda x, w: split.conv(x, w, spec))
    dx = compiled(jax.grad(lambda x, w: split.conv(x, w, spec).sum()))
    assert " dot(" in fwd and "convolution(" not in fwd
    assert " dot(" not in dx and "convolution(" in dx
