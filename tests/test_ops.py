"""Pure functions against the NumPy float64 reference, identities, shapes and transformations.

The grid is SAMPLED with a fixed seed (not the full product): 1-D/2-D/3-D, non-square kernels
1..7, stride and dilation 1..3, input dilation, groups (incl. depthwise), every padding form,
NHWC and NCHW, with and without bias, float32 and bfloat16; each case runs through
``implementation=None`` and every lowering in ``jaxconv.convolution.LOWERINGS`` that applies.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import conftest
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference
from conftest import tol
from jax import lax
from jax.test_util import check_grads

import jaxconv

LOWERINGS = tuple(jaxconv.convolution.LOWERINGS)
PADDING_FORMS = (
    "VALID",
    "SAME",
    "SAME_LOWER",
    "int",
    "pairs",
    "negative",
    "CIRCULAR",
    "REFLECT",
    "REPLICATE",
)


def _to_channels_first(x):
    return np.moveaxis(x, -1, 1)


def _from_channels_first(y):
    return np.moveaxis(np.asarray(y), 1, -1)


def _hwio_to_oihw(w):
    return np.moveaxis(np.moveaxis(w, -1, 0), -1, 1)


@dataclass(frozen=True)
class Case:
    """One sampled convolution; ``x``/``w`` are channels-last, ``layout`` is what conv sees."""

    ndim: int
    batch: int
    spatial: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    input_dilation: tuple[int, ...]
    groups: int
    c_in: int
    c_out: int
    padding: object
    layout: str
    bias: bool
    dtype: str
    seed: int

    @property
    def reduction(self) -> int:
        return math.prod(self.kernel) * (self.c_in // self.groups) + int(self.bias)

    def __str__(self) -> str:
        pad = (
            self.padding
            if isinstance(self.padding, (str, int))
            else "x".join(f"{lo}:{hi}" for lo, hi in self.padding)
        )
        dims = lambda t, sep="": sep.join(map(str, t))  # noqa: E731
        return (
            f"{self.ndim}d-n{dims(self.spatial, 'x')}-k{dims(self.kernel, 'x')}"
            f"-s{dims(self.stride)}-d{dims(self.dilation)}-i{dims(self.input_dilation)}"
            f"-g{self.groups}-{self.c_in}to{self.c_out}-{pad}-{self.layout}"
            f"-{'b' if self.bias else 'nob'}-{self.dtype}"
        )


def _sample_cases(count: int, seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(count):
        ndim = int(rng.choice([1, 2, 2, 3]))
        small = ndim == 3  # keep 3-D cheap
        pointwise = i % 9 == 0  # the einsum lowering's territory
        kernel = (
            (1,) * ndim
            if pointwise
            else tuple(int(v) for v in rng.integers(1, 4 if small else 8, ndim))
        )
        stride = (1,) * ndim if pointwise else tuple(int(v) for v in rng.integers(1, 4, ndim))
        dilation = tuple(int(v) for v in rng.integers(1, 3 if small else 4, ndim))
        form = "VALID" if pointwise else str(rng.choice(PADDING_FORMS))
        use_in_dil = not pointwise and form not in ("CIRCULAR", "REFLECT", "REPLICATE")
        input_dilation = tuple(
            int(v)
            for v in (
                rng.integers(1, 3, ndim)
                if use_in_dil and rng.random() < 0.3
                else np.ones(ndim, int)
            )
        )
        spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
        # Input sizes such that the dilated input covers the dilated kernel (negative padding
        # may crop up to 2 per side, so leave room for it).
        margin = 4 if form == "negative" else 0
        spatial = tuple(
            max(-(-(span + margin - 1) // i_d) + 1, 1) + int(rng.integers(0, 3 if small else 5))
            for span, i_d in zip(spans, input_dilation)
        )
        if form == "int":
            padding = int(rng.integers(0, 4))
        elif form in ("pairs", "negative"):
            low = -2 if form == "negative" else 0
            padding = tuple(tuple(int(v) for v in rng.integers(low, 4, 2)) for _ in range(ndim))
        else:
            padding = form
        kind = (
            "depthwise"
            if pointwise and i % 2
            else str(rng.choice(["dense", "grouped", "depthwise"]))
        )
        if pointwise:
            kind = "dense"
        if kind == "dense":
            groups, c_in = 1, int(rng.integers(1, 6))
            c_out = int(rng.integers(1, 6))
        elif kind == "grouped":
            groups = int(rng.integers(2, 4))
            c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        else:
            groups = c_in = int(rng.integers(2, 5))
            c_out = c_in * int(rng.integers(1, 3))  # channel multiplier 1 or 2
        cases.append(
            Case(
                ndim=ndim,
                batch=1 if small else 2,
                spatial=spatial,
                kernel=kernel,
                stride=stride,
                dilation=dilation,
                input_dilation=input_dilation,
                groups=groups,
                c_in=c_in,
                c_out=c_out,
                padding=padding,
                layout=str(rng.choice(["NHWC", "NCHW"])),
                bias=bool(rng.random() < 0.5),
                dtype="bfloat16" if rng.random() < 0.25 else "float32",
                seed=seed + i,
            )
        )
    return cases


def _square_cases() -> list[Case]:
    """Dense 2-D NHWC float32 k×k stride-1 convs, which the sampler rarely draws: the specs
    library kernels specialize most (so every kernel oneDNN picks meets the reference too)."""
    common = dict(
        ndim=2,
        batch=2,
        stride=(1, 1),
        dilation=(1, 1),
        input_dilation=(1, 1),
        groups=1,
        layout="NHWC",
        dtype="float32",
    )
    shapes = [  # spatial, kernel, c_in, c_out, padding, bias
        ((10, 9), 3, 5, 7, "SAME", True),
        ((12, 11), 5, 3, 4, "VALID", False),
        ((9, 9), 3, 4, 4, ((1, 0), (2, 1)), True),
        ((8, 13), 5, 2, 6, "REFLECT", True),
    ]
    return [
        Case(
            spatial=n, kernel=(k, k), c_in=ci, c_out=co, padding=p, bias=b, seed=9000 + i, **common
        )
        for i, (n, k, ci, co, p, b) in enumerate(shapes)
    ]


CASES = _sample_cases(96, seed=1234) + _square_cases()


def _data(case: Case):
    """Unit-scale channels-last data, rounded to ``case.dtype`` (so the reference sees exactly
    the values jaxconv sees), as float64 NumPy arrays."""
    rng = np.random.default_rng(case.seed)
    x = rng.standard_normal((case.batch, *case.spatial, case.c_in))
    w = rng.standard_normal((*case.kernel, case.c_in // case.groups, case.c_out))
    b = rng.standard_normal(case.c_out) if case.bias else None

    def cast(a):
        return (
            None
            if a is None
            else np.asarray(jnp.asarray(a, case.dtype).astype(jnp.float32), np.float64)
        )

    return cast(x), cast(w), cast(b)


def _run(case: Case, x, w, b, **kwargs):
    """jaxconv.conv on channels-last float64 data in ``case``'s layout and dtype; result is
    channels-last float64."""
    to = lambda a: None if a is None else jnp.asarray(a, case.dtype)  # noqa: E731
    if case.layout == "NCHW":
        x, w = _to_channels_first(x), _hwio_to_oihw(w)
    # jitted: one compile per lowering instead of one per op (Winograd's transforms are many
    # ops); eager execution has its own test (test_jit_equals_eager)
    conv = jax.jit(
        functools.partial(
            jaxconv.conv,
            stride=case.stride,
            padding=case.padding,
            dilation=case.dilation,
            input_dilation=case.input_dilation,
            groups=case.groups,
            layout=case.layout,
            **kwargs,
        )
    )
    y = conv(to(x), to(w), to(b))
    assert y.dtype == jnp.dtype(case.dtype)
    y = np.asarray(y.astype(jnp.float32), np.float64)
    return _from_channels_first(y) if case.layout == "NCHW" else y


@pytest.mark.parametrize("case", CASES, ids=str)
def test_conv_matches_float64_reference(case: Case):
    x, w, b = _data(case)
    expected = reference.conv(
        x,
        w,
        b,
        stride=case.stride,
        padding=case.padding,
        dilation=case.dilation,
        input_dilation=case.input_dilation,
        groups=case.groups,
    )
    # Plus the output's own rounding: a bfloat16 result is rounded once by the conv and once
    # more by the bias add, each up to half an ulp, i.e. up to eps relative in all.
    rtol = float(jnp.finfo(case.dtype).eps)
    factors = {}  # lowering -> its documented error bound, in units of the tolerance table
    for name in LOWERINGS:
        try:
            y = _run(case, x, w, b, implementation=name)
        except ValueError as e:  # a named lowering that does not apply says so, and why
            assert "does not apply" in str(e), e
            continue
        factors[name] = getattr(jaxconv.convolution.get(name), "error_factor", 1.0)
        assert y.shape == expected.shape
        np.testing.assert_allclose(
            y,
            expected,
            rtol=rtol,
            atol=tol(case.dtype, case.reduction) * factors[name],
            err_msg=name,
        )
    assert "xla" in factors  # the fallback applies to everything
    # implementation=None may pick any lowering that applies
    atol = tol(case.dtype, case.reduction) * max(factors.values())
    y = _run(case, x, w, b)
    np.testing.assert_allclose(y, expected, rtol=rtol, atol=atol, err_msg="None")
    if case.dtype == "bfloat16":
        # ... and against the upcast float32 computation at Precision.HIGHEST
        upcast = _run(
            Case(**{**case.__dict__, "dtype": "float32"}), x, w, b, precision=lax.Precision.HIGHEST
        )
        atol_f32 = tol("float32", case.reduction, highest=True) * max(factors.values())
        np.testing.assert_allclose(upcast, expected, rtol=0, atol=atol_f32)
        np.testing.assert_allclose(y, upcast, rtol=rtol, atol=atol)


def test_float32_tolerance_follows_the_platform_and_precision(monkeypatch):
    monkeypatch.setattr(conftest, "PLATFORM", "gpu")
    assert tol("float32", 4) == 2 * conftest.TOLERANCE["tensorfloat32"]
    assert tol("float32", 4, highest=True) == 2 * conftest.TOLERANCE["float32"]
    assert tol("bfloat16") == conftest.TOLERANCE["bfloat16"]
    monkeypatch.setattr(conftest, "PLATFORM", "cpu")
    assert tol("float32") == tol("float32", highest=True) == conftest.TOLERANCE["float32"]


@conftest.gpu_only
def test_gpu_float32_runs_tf32_by_default_and_float32_at_highest(rng):
    """What a GPU user gets: DEFAULT is TF32 (within its entry, beyond float32's), HIGHEST and
    ``conftest.highest()`` full float32."""
    x = jnp.asarray(rng.standard_normal((8, 14, 14, 64)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 64, 64)), jnp.float32)
    expected = reference.conv(np.asarray(x), np.asarray(w), padding="SAME")
    k = 9 * 64
    default = jaxconv.conv(x, w, padding="SAME")
    np.testing.assert_allclose(default, expected, rtol=0, atol=tol("float32", k))
    assert np.abs(np.asarray(default) - expected).max() > tol("float32", k, highest=True)
    same = functools.partial(jaxconv.conv, padding="SAME")
    for y in (same(x, w, precision="highest"), _under_highest(same, x, w)):
        np.testing.assert_allclose(y, expected, rtol=0, atol=tol("float32", k, highest=True))


def _under_highest(fn, *args):
    with conftest.highest():
        return jax.jit(fn)(*args)


def test_grid_covers_what_it_claims():
    seen = lambda f: {f(c) for c in CASES}  # noqa: E731
    assert seen(lambda c: c.ndim) == {1, 2, 3}
    assert seen(lambda c: c.layout) == {"NHWC", "NCHW"}
    assert seen(lambda c: c.dtype) == {"float32", "bfloat16"}
    assert seen(lambda c: c.bias) == {True, False}
    assert {1, 2, 3} <= seen(lambda c: max(c.stride)) and {1, 2, 3} <= seen(
        lambda c: max(c.dilation)
    )
    assert 7 in seen(lambda c: max(c.kernel)) and any(len(set(c.kernel)) > 1 for c in CASES)
    assert 2 in seen(lambda c: max(c.input_dilation))
    assert any(c.groups == c.c_in > 1 for c in CASES)  # depthwise
    assert any(1 < c.groups < c.c_in for c in CASES)  # grouped
    forms = seen(
        lambda c: (
            "int"
            if isinstance(c.padding, int)
            else ("negative" if any(p < 0 for pair in c.padding for p in pair) else "pairs")
            if isinstance(c.padding, tuple)
            else c.padding
        )
    )
    assert forms == set(PADDING_FORMS)
    # every lowering meets the reference on at least one case (checked by tracing only)
    for name in LOWERINGS:
        assert any(_applies(c, name) for c in CASES), f"no case in the grid exercises {name!r}"


def _applies(case: Case, implementation: str) -> bool:
    x_shape = (case.batch, *case.spatial, case.c_in)
    w_shape = (*case.kernel, case.c_in // case.groups, case.c_out)
    if case.layout == "NCHW":
        x_shape = (x_shape[0], x_shape[-1], *x_shape[1:-1])
        w_shape = (w_shape[-1], w_shape[-2], *w_shape[:-2])
    kw = dict(
        stride=case.stride,
        padding=case.padding,
        dilation=case.dilation,
        input_dilation=case.input_dilation,
        groups=case.groups,
        layout=case.layout,
    )
    try:
        jax.eval_shape(
            functools.partial(jaxconv.conv, implementation=implementation, **kw),
            jax.ShapeDtypeStruct(x_shape, case.dtype),
            jax.ShapeDtypeStruct(w_shape, case.dtype),
        )
    except ValueError as e:
        assert "does not apply" in str(e), e
        return False
    return True


# --- identities ------------------------------------------------------------------------------
def _randn(rng, *shape, dtype=np.float32):
    return jnp.asarray(rng.standard_normal(shape), dtype)


def test_grouped_conv_is_per_group_convs_concatenated(rng):
    groups, cig, cog = 3, 2, 4
    x = _randn(rng, 2, 9, 8, groups * cig)
    w = _randn(rng, 3, 2, cig, groups * cog)
    y = jaxconv.conv(x, w, groups=groups, stride=(2, 1))
    parts = [
        jaxconv.conv(
            x[..., g * cig : (g + 1) * cig], w[..., g * cog : (g + 1) * cog], stride=(2, 1)
        )
        for g in range(groups)
    ]
    np.testing.assert_allclose(
        y, jnp.concatenate(parts, axis=-1), rtol=0, atol=tol("float32", 3 * 2 * cig)
    )


@pytest.mark.parametrize("kernel, stride, dilation", [(3, 1, 1), (4, 2, 1), (3, 3, 2), (2, 1, 3)])
@pytest.mark.parametrize("same", ["SAME", "SAME_LOWER"])
def test_same_is_explicit_padding(rng, kernel, stride, dilation, same):
    x = _randn(rng, 2, 11, 10, 3)
    w = _randn(rng, kernel, kernel, 3, 4)
    pads = jaxconv.resolve_padding(same, (11, 10), (kernel,) * 2, (stride,) * 2, (dilation,) * 2)
    kw = dict(stride=stride, dilation=dilation)
    y = jaxconv.conv(x, w, padding=same, **kw)
    atol = tol("float32", kernel * kernel * 3)
    np.testing.assert_allclose(y, jaxconv.conv(x, w, padding=pads, **kw), rtol=0, atol=atol)
    padded = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    np.testing.assert_allclose(y, jaxconv.conv(padded, w, padding="VALID", **kw), rtol=0, atol=atol)
    assert y.shape[1:3] == (-(-11 // stride), -(-10 // stride))


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_conv1x1_is_conv_with_a_1x1_kernel(rng, layout):
    x = _randn(rng, 2, 5, 6, 7)
    w = _randn(rng, 7, 9)
    b = _randn(rng, 9)
    if layout == "NHWC":
        y = jaxconv.conv1x1(x, w, b)
        y_conv = jaxconv.conv(x, w.reshape(1, 1, 7, 9), b, padding="VALID", implementation="xla")
    else:
        xc = jnp.moveaxis(x, -1, 1)
        y = jnp.moveaxis(jaxconv.conv1x1(xc, w.T, b, layout="NCHW"), 1, -1)
        y_conv = jnp.moveaxis(
            jaxconv.conv(xc, w.T.reshape(9, 7, 1, 1), b, layout="NCHW", implementation="xla"), 1, -1
        )
    np.testing.assert_allclose(y, y_conv, rtol=0, atol=tol("float32", 8))
    np.testing.assert_allclose(
        y,
        np.asarray(x, np.float64) @ np.asarray(w, np.float64) + np.asarray(b, np.float64),
        rtol=0,
        atol=tol("float32", 8),
    )


def test_conv1x1_any_leading_dims(rng):
    x = _randn(rng, 3, 2, 4, 5)
    w = _randn(rng, 5, 2)
    np.testing.assert_allclose(
        jaxconv.conv1x1(x[0, 0], w), jaxconv.conv1x1(x, w)[0, 0], rtol=0, atol=tol("float32", 5)
    )


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_nhwc_and_nchw_agree(rng, ndim):
    x = _randn(rng, 2, *(6,) * ndim, 4)
    w = _randn(rng, *(3,) * ndim, 2, 6)
    kw = dict(stride=2, padding="SAME_LOWER", groups=2, dilation=1)
    y = jaxconv.conv(x, w, **kw)
    y_cf = jaxconv.conv(
        jnp.moveaxis(x, -1, 1), jnp.asarray(_hwio_to_oihw(np.asarray(w))), layout="NCHW", **kw
    )
    np.testing.assert_allclose(
        y, jnp.moveaxis(y_cf, 1, -1), rtol=0, atol=tol("float32", 3**ndim * 2)
    )


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_bottleneck_is_conv1x1_relu_conv(rng, layout):
    x = _randn(rng, 2, 7, 7, 12)
    w_r, b_r = _randn(rng, 12, 4), _randn(rng, 4)
    w_s, b_s = _randn(rng, 3, 3, 4, 6), _randn(rng, 6)
    if layout == "NCHW":
        x, w_r, w_s = jnp.moveaxis(x, -1, 1), w_r.T, jnp.asarray(_hwio_to_oihw(np.asarray(w_s)))
    y = jaxconv.bottleneck(x, w_r, w_s, b_r, b_s, stride=2, layout=layout)
    h = jax.nn.relu(jaxconv.conv1x1(x, w_r, b_r, layout=layout))
    expected = jaxconv.conv(h, w_s, b_s, stride=2, layout=layout)
    atol = tol("float32", 9 * 4 * 12)
    np.testing.assert_allclose(y, expected, rtol=0, atol=atol)
    # the 1x1 through another lowering, given as a matrix or as a 1x1 kernel, agrees
    w_r_kernel = w_r.reshape(1, 1, 12, 4) if layout == "NHWC" else w_r.reshape(4, 12, 1, 1)
    for w_reduce in (w_r, w_r_kernel):
        y2 = jaxconv.bottleneck(
            x, w_reduce, w_s, b_r, b_s, stride=2, layout=layout, reduce_implementation="xla"
        )
        np.testing.assert_allclose(y2, expected, rtol=0, atol=atol)


def test_bottleneck_on_the_seed_layer(rng):
    # 14x14x480 -> 16-channel reduce -> 48 5x5 filters (the seed's 112.9M -> 5.3M example)
    x = _randn(rng, 1, 14, 14, 480)
    w_r, w_s = _randn(rng, 480, 16), _randn(rng, 5, 5, 16, 48)
    y = jaxconv.bottleneck(x, w_r, w_s, activation=None)
    assert y.shape == (1, 14, 14, 48)
    h = reference.conv(np.asarray(x), np.asarray(w_r).reshape(1, 1, 480, 16))
    expected = reference.conv(h, np.asarray(w_s, np.float64), padding="SAME")
    # The 5x5 sums 400 products with reduced maps of scale sqrt(480); its own rounding and the
    # propagated rounding of the 480-term reduce are each ~tol(f32, 400)·sqrt(480).
    np.testing.assert_allclose(y, expected, rtol=0, atol=2 * tol("float32", 400) * math.sqrt(480))


# --- padding modes: flax.nnx.Conv's amounts at every stride ---------------------------------
def test_the_issues_circular_example():
    # issue 12: x = [1..5], kernel [1, 2, 1], stride 3, CIRCULAR → Flax [9, 16] (5 1 2 | 3 4 5 |
    # 1 after padding (1, 1)); the SAME amounts (0, 1) used to give [8, 15]
    x = jnp.arange(1.0, 6.0).reshape(1, 5, 1)
    w = jnp.array([1.0, 2.0, 1.0]).reshape(3, 1, 1)
    assert jaxconv.conv(x, w, stride=3, padding="CIRCULAR").tolist() == [[[9.0], [16.0]]]


def _flax_mode_cases():
    rng = np.random.default_rng(1212)
    cases = []
    for ndim in (1, 2):
        for mode in ("CIRCULAR", "REFLECT"):
            for k in (1, 2, 3, 4, 5):
                stride = tuple(int(v) for v in rng.integers(1, 4, ndim))
                dilation = tuple(int(v) for v in rng.integers(1, 3, ndim))
                kernel = (k, *(int(v) for v in rng.integers(1, 6, ndim - 1)))
                cases.append((mode, kernel, stride, dilation))
    # every stride and both dilations with the issue's kernel
    cases += [("CIRCULAR", (3,), (s,), (d,)) for s in (1, 2, 3, 4) for d in (1, 2)]
    return cases


FLAX_MODE_CASES = _flax_mode_cases()


@pytest.mark.parametrize("mode, kernel, stride, dilation", FLAX_MODE_CASES, ids=str)
def test_padding_modes_equal_flax_nnx_conv(rng, mode, kernel, stride, dilation):
    from flax import nnx

    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    spatial = tuple(span + int(rng.integers(1, 6)) for span in spans)  # REFLECT: pads < n
    flax_conv = nnx.Conv(
        3,
        4,
        kernel,
        strides=stride,
        padding=mode,
        kernel_dilation=dilation,
        rngs=nnx.Rngs(int(rng.integers(1000))),
    )
    flax_conv.bias[...] = jnp.asarray(rng.standard_normal(4), jnp.float32)
    x = _randn(rng, 2, *spatial, 3)
    want = flax_conv(x)
    w, b = flax_conv.kernel[...], flax_conv.bias[...]
    kw = dict(stride=stride, padding=mode, dilation=dilation)
    ran = []
    for impl in (None, *LOWERINGS):
        try:
            got = jaxconv.conv(x, w, b, implementation=impl, **kw)
        except ValueError as err:  # a lowering that does not take this conv says so
            assert impl is not None and "`implementation`" in str(err), err
            continue
        assert got.shape == want.shape, (impl, kw)
        np.testing.assert_allclose(got, want, rtol=0, atol=tol("float32", 3 * math.prod(kernel)))
        ran.append(impl)
    assert len(ran) >= 2, ran  # the default and at least one explicit lowering
    # and the float64 reference (written from Flax's rule) agrees
    expected = reference.conv(np.asarray(x), np.asarray(w), np.asarray(b), **kw)
    np.testing.assert_allclose(want, expected, rtol=0, atol=tol("float32", 3 * math.prod(kernel)))


def test_replicate_equals_pytorch_replicate_padding(rng):
    # Flax has no REPLICATE; PyTorch's padding_mode="replicate" with (k_eff - 1) // 2 per side
    # is the same rule for odd spans, at any stride
    torch = pytest.importorskip("torch")
    for k, s, d in ((3, 2, 1), (5, 3, 1), (3, 3, 2), (1, 2, 1)):
        span = d * (k - 1) + 1
        conv = torch.nn.Conv2d(
            2, 3, k, stride=s, dilation=d, padding=(span - 1) // 2, padding_mode="replicate"
        )
        x = rng.standard_normal((1, 2, 9, 8)).astype(np.float32)
        with torch.no_grad():
            want = conv(torch.from_numpy(x)).numpy()
            w = conv.weight.numpy().transpose(2, 3, 1, 0)  # OIHW → HWIO
            b = conv.bias.numpy()
        got = jaxconv.conv(
            jnp.asarray(x.transpose(0, 2, 3, 1)),
            jnp.asarray(w),
            jnp.asarray(b),
            stride=s,
            dilation=d,
            padding="REPLICATE",
        )
        np.testing.assert_allclose(
            np.moveaxis(np.asarray(got), -1, 1), want, rtol=0, atol=tol("float32", 2 * k * k)
        )


# --- the seed's 1x1 example ------------------------------------------------------------------
def test_seed_1x1_example_through_every_path():
    x = jnp.arange(1.0, 17.0).reshape(1, 4, 4, 1)
    expected = np.arange(2.0, 33.0, 2.0).reshape(4, 4)
    np.testing.assert_array_equal(jaxconv.conv1x1(x, jnp.full((1, 1), 2.0))[0, :, :, 0], expected)
    w = jnp.full((1, 1, 1, 1), 2.0)
    for implementation in (None, *LOWERINGS):
        try:
            y = jaxconv.conv(x, w, padding="VALID", implementation=implementation)
        except ValueError as e:  # a lowering that does not apply to a 1x1 says so
            assert implementation is not None and "does not apply" in str(e), e
            continue
        np.testing.assert_array_equal(y[0, :, :, 0], expected)


# --- output shapes equal geometry over an exhaustive small grid ------------------------------
def _shape_or_error(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ValueError as e:
        return ("ValueError", str(e))


def _conv_shape(x_shape, w_shape, **kwargs):
    """conv's output shape by tracing only (``jax.eval_shape``), or its ValueError."""

    def shape():
        return jax.eval_shape(
            functools.partial(jaxconv.conv, **kwargs),
            jax.ShapeDtypeStruct(x_shape, jnp.float32),
            jax.ShapeDtypeStruct(w_shape, jnp.float32),
        ).shape

    return _shape_or_error(shape)


def test_conv_shapes_equal_geometry_exhaustive_1d():
    paddings = ("VALID", "SAME", "SAME_LOWER", 1, ((2, 0),), ((-1, 1),), "CIRCULAR", "REPLICATE")
    checked = errors = 0
    for n in range(1, 7):
        for k in (1, 2, 3):
            for s in (1, 2, 3):
                for d in (1, 2):
                    for i_d in (1, 2):
                        for padding in paddings:
                            if (
                                i_d > 1
                                and isinstance(padding, str)
                                and padding in ("CIRCULAR", "REPLICATE")
                            ):
                                continue  # rejected by design (see test_errors)
                            kw = dict(stride=s, padding=padding, dilation=d, input_dilation=i_d)
                            got = _conv_shape((2, n, 3), (k, 3, 5), **kw)
                            want = _shape_or_error(jaxconv.conv_output_shape, (2, n, 3), k, 5, **kw)
                            assert got == want, (n, k, kw)
                            checked += 1
                            errors += isinstance(want[0], str)
    assert checked > 1000 and 0 < errors < checked // 2


def test_conv_shapes_equal_geometry_2d_mixed(rng):
    for _ in range(150):
        k = tuple(int(v) for v in rng.integers(1, 5, 2))
        s = tuple(int(v) for v in rng.integers(1, 4, 2))
        d = tuple(int(v) for v in rng.integers(1, 3, 2))
        n = tuple(int(v) for v in rng.integers(1, 12, 2))
        padding = [
            ("SAME", "VALID", "SAME_LOWER", "REPLICATE")[int(rng.integers(4))],
            tuple((int(a), int(b)) for a, b in rng.integers(-1, 3, (2, 2))),
        ][int(rng.integers(2))]
        layout = ("NHWC", "NCHW")[int(rng.integers(2))]
        x_shape = (1, *n, 2) if layout == "NHWC" else (1, 2, *n)
        w_shape = (*k, 2, 3) if layout == "NHWC" else (3, 2, *k)
        kw = dict(stride=s, padding=padding, dilation=d, layout=layout)
        want = _shape_or_error(jaxconv.conv_output_shape, x_shape, k, 3, **kw)
        assert _conv_shape(x_shape, w_shape, **kw) == want, kw


@pytest.mark.parametrize(
    "shape, kernel, c_out, stride, padding, expected",
    [
        ((1, 6, 6, 1), 3, 1, 1, "VALID", (1, 4, 4, 1)),
        ((1, 28, 28, 8), 3, 8, 1, "VALID", (1, 26, 26, 8)),
        ((1, 28, 28, 8), 3, 8, 2, "VALID", (1, 13, 13, 8)),
        ((1, 28, 28, 8), 3, 8, 1, "SAME", (1, 28, 28, 8)),
        ((1, 29, 29, 8), 3, 8, 2, "VALID", (1, 14, 14, 8)),
    ],
)
def test_seed_output_table_through_conv(shape, kernel, c_out, stride, padding, expected):
    w_shape = (kernel, kernel, shape[-1], c_out)
    assert _conv_shape(shape, w_shape, stride=stride, padding=padding) == expected


# --- transformations -------------------------------------------------------------------------
JIT_CONFIGS = [
    dict(stride=2, padding="SAME", groups=2),
    dict(padding=((1, -1), (2, 0)), dilation=(2, 1), layout="NCHW"),
    dict(padding="REFLECT", input_dilation=1, stride=(1, 2)),
    dict(padding="VALID", input_dilation=2),
]


@pytest.mark.parametrize("config", JIT_CONFIGS, ids=str)
def test_jit_equals_eager(rng, config):
    x = _randn(rng, 2, 4, 9, 8) if config.get("layout") == "NCHW" else _randn(rng, 2, 9, 8, 4)
    w = (
        _randn(rng, 6, 4 // config.get("groups", 1), 3, 3)
        if config.get("layout") == "NCHW"
        else _randn(rng, 3, 3, 4 // config.get("groups", 1), 6)
    )
    b = _randn(rng, 6)
    eager = jaxconv.conv(x, w, b, **config)
    jitted = jax.jit(lambda x, w, b: jaxconv.conv(x, w, b, **config))(x, w, b)
    np.testing.assert_allclose(eager, jitted, rtol=0, atol=tol("float32", 9 * 4))


def test_no_recompilation_on_a_second_call(rng):
    traces = []

    @jax.jit
    def f(x, w, b):
        traces.append(1)
        return jaxconv.conv(x, w, b, stride=2, padding=((1, 2), (0, 1)), groups=2)

    x, w, b = _randn(rng, 2, 9, 9, 4), _randn(rng, 3, 3, 2, 6), _randn(rng, 6)
    f(x, w, b)
    f(x + 1.0, w * 2.0, b - 1.0)  # new values, same shapes
    assert len(traces) == 1
    assert f._cache_size() == 1
    # static configuration is hashable: conv itself jits with its config as static arguments,
    # and equal configurations built afresh hit the same cache entry
    g = jax.jit(jaxconv.conv, static_argnames=("stride", "padding", "groups", "implementation"))
    for _ in range(2):
        g(x, w, b, stride=(2, 2), padding=((1, 2), (0, 1)), groups=2, implementation="xla")
    assert g._cache_size() == 1
    g(x[:1], w, b, stride=(2, 2), padding=((1, 2), (0, 1)), groups=2, implementation="xla")
    assert g._cache_size() == 2  # a new shape does compile (the counter can move)


GRAD_CONFIGS = [
    ((1, 6, 6, 4), (3, 3, 2, 4), dict(stride=2, padding="SAME", groups=2)),
    ((2, 3, 7), (4, 3, 3), dict(padding=((2, -1),), dilation=2, layout="NCW")),
    ((1, 4, 4, 3, 2), (2, 2, 1, 2, 3), dict(padding="SAME_LOWER")),
    ((1, 5, 4, 2), (3, 2, 2, 2), dict(padding="VALID", input_dilation=(2, 1))),
    ((1, 6, 6, 2), (3, 3, 2, 2), dict(padding="REFLECT")),
]


@pytest.mark.parametrize("x_shape, w_shape, config", GRAD_CONFIGS, ids=str)
def test_conv_grads(rng, x_shape, w_shape, config):
    with jax.enable_x64(True):
        x = jnp.asarray(rng.standard_normal(x_shape))
        w = jnp.asarray(rng.standard_normal(w_shape))
        c_out = w_shape[0] if config.get("layout", "NHWC")[1] == "C" else w_shape[-1]
        b = jnp.asarray(rng.standard_normal(c_out))
        f = lambda x, w, b: jaxconv.conv(x, w, b, **config)  # noqa: E731  (eager: op caches)
        check_grads(f, (x, w, b), order=2, modes=("fwd", "rev"))


def test_conv1x1_and_bottleneck_grads(rng):
    with jax.enable_x64(True):
        x = jnp.asarray(rng.standard_normal((1, 5, 5, 6)))
        w_r = jnp.asarray(rng.standard_normal((6, 3)))
        w_s = jnp.asarray(rng.standard_normal((3, 3, 3, 4)))
        b_r = jnp.asarray(rng.standard_normal(3))
        check_grads(jaxconv.conv1x1, (x, w_r, b_r), order=2, modes=("fwd", "rev"))
        # tanh instead of the default relu: finite differences need a smooth activation
        f = lambda *a: jaxconv.bottleneck(*a, activation=jnp.tanh, stride=2)  # noqa: E731
        check_grads(f, (x, w_r, w_s, b_r), order=2, modes=("fwd", "rev"))


def test_vmap_over_an_extra_leading_axis_equals_a_loop(rng):
    xs = _randn(rng, 3, 2, 7, 7, 4)
    ws = _randn(rng, 3, 3, 3, 4, 5)
    conv = lambda x, w: jaxconv.conv(x, w, stride=2, padding="SAME_LOWER")  # noqa: E731
    atol = tol("float32", 9 * 4)
    loop_x = jnp.stack([conv(x, ws[0]) for x in xs])
    np.testing.assert_allclose(
        jax.vmap(conv, in_axes=(0, None))(xs, ws[0]), loop_x, rtol=0, atol=atol
    )
    loop_w = jnp.stack([conv(xs[0], w) for w in ws])
    np.testing.assert_allclose(
        jax.vmap(conv, in_axes=(None, 0))(xs[0], ws), loop_w, rtol=0, atol=atol
    )
    loop_xw = jnp.stack([conv(x, w) for x, w in zip(xs, ws)])
    np.testing.assert_allclose(jax.vmap(conv)(xs, ws), loop_xw, rtol=0, atol=atol)
    w1 = _randn(rng, 4, 5)
    np.testing.assert_allclose(
        jax.vmap(lambda x: jaxconv.conv1x1(x, w1))(xs),
        jnp.stack([jaxconv.conv1x1(x, w1) for x in xs]),
        rtol=0,
        atol=tol("float32", 4),
    )


@pytest.mark.parametrize("implementation", [None, "xla"])
@pytest.mark.parametrize("activation", [jax.nn.relu, jnp.tanh])
def test_conv_activation_after_the_bias_values_and_gradients(implementation, activation, rng):
    x = jnp.asarray(rng.standard_normal((2, 7, 7, 4)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 4, 5)), jnp.float32)
    b = jnp.asarray(rng.standard_normal(5), jnp.float32)

    def fused(x, w, b):
        return jaxconv.conv(x, w, b, activation=activation, implementation=implementation)

    def plain(x, w, b):
        return activation(jaxconv.conv(x, w, b, implementation="xla"))

    np.testing.assert_allclose(fused(x, w, b), plain(x, w, b), rtol=0, atol=tol("float32", 36))
    grads = [
        jax.grad(lambda *a, f=f: jnp.sum(f(*a) ** 2), argnums=(0, 1, 2))(x, w, b)
        for f in (fused, plain)
    ]
    for got, want in zip(*grads):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_conv_relu_runs_in_xla_after_one_onednn_conv(rng):
    """The conv is one oneDNN call; its ReLU is XLA's maximum, which propagates NaN (oneDNN
    3.2's ReLU post-op turned it into 0: tests/test_hostile.py)."""
    x, w = jnp.ones((2, 8, 8, 4)), jnp.ones((3, 3, 4, 4))
    if jaxconv.explain(x, w).plan.fwd != "onednn":
        pytest.skip("the onednn lowering is not available here")
    hlo = jax.jit(lambda x, w: jaxconv.conv(x, w, activation=jax.nn.relu)).lower(x, w)
    text = hlo.compile().as_text()
    assert text.count("jaxconv_onednn_fwd") == 1 and "maximum" in text


def test_conv_activation_must_be_callable():
    with pytest.raises(TypeError, match=r"`activation` must be a callable or None, got 'relu'"):
        jaxconv.conv(jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 2)), activation="relu")


@pytest.mark.parametrize("n, kernel", [((2,), (7,)), ((1,), (3,)), ((3, 2), (5, 7))], ids=str)
def test_reflect_with_pads_as_large_as_the_input_equals_flax(rng, n, kernel):
    """REFLECT pads past the input's size reflect again (jnp.pad's and Flax's rule) instead of
    raising: nnx.Conv and the float64 reference agree."""
    from flax import nnx

    flax_conv = nnx.Conv(2, 3, kernel, padding="REFLECT", rngs=nnx.Rngs(0))
    x = _randn(rng, 2, *n, 2)
    want = flax_conv(x)
    w, b = flax_conv.kernel[...], flax_conv.bias[...]
    got = jaxconv.conv(x, w, b, padding="REFLECT")
    np.testing.assert_allclose(got, want, rtol=0, atol=tol("float32", 2 * math.prod(kernel)))
    expected = reference.conv(np.asarray(x), np.asarray(w), np.asarray(b), padding="REFLECT")
    np.testing.assert_allclose(got, expected, rtol=0, atol=tol("float32", 2 * math.prod(kernel)))
