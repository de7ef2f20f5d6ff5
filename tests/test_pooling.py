"""Pooling against the NumPy reference (PyTorch/Caffe ``ceil_mode`` and ``count_include_pad``
semantics), cross-checked with PyTorch itself where it is installed; grads, jit, vmap."""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference
from conftest import tol
from jax.test_util import check_grads

import jaxconv
from jaxconv.pooling import pool_spec
from jaxconv.pooling.max_pool import _max_pool_reference

PADDING_FORMS = ("VALID", "SAME", "int", "pairs", "CIRCULAR", "REFLECT", "REPLICATE")


@dataclass(frozen=True)
class PoolCase:
    spatial: tuple[int, ...]
    window: tuple[int, ...]
    stride: tuple[int, ...] | None
    padding: object
    ceil_mode: bool
    count_include_pad: bool
    layout: str
    dtype: str
    seed: int

    def __str__(self) -> str:
        return "-".join(str(v) for v in self.__dict__.values()).replace(" ", "")


def _sample_cases(count: int, seed: int) -> list[PoolCase]:
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(count):
        ndim = int(rng.choice([1, 2, 2, 3]))
        window = tuple(int(v) for v in rng.integers(1, 4 if ndim == 3 else 5, ndim))
        stride = None if rng.random() < 0.2 else tuple(int(v) for v in rng.integers(1, 4, ndim))
        form = str(rng.choice(PADDING_FORMS))
        ceil_mode = bool(rng.random() < 0.5)
        spatial = tuple(k + int(rng.integers(0, 5)) for k in window)
        if form == "int":
            padding = int(rng.integers(0, min(window)))  # every pad smaller than the window
        elif form == "pairs":
            # With ceil_mode a high pad may reach a whole window (the last window is dropped if
            # it would start in the padding) as long as no window lies wholly in the padding.
            padding = []
            for n, k, s in zip(spatial, window, stride or window):
                lo, hi = int(rng.integers(0, k)), int(rng.integers(0, k + 2 * ceil_mode))
                bounds = reference._pool_bounds(n, k, s, lo, hi, ceil_mode)
                padding.append((lo, hi if all(start < n for start, _, _ in bounds) else k - 1))
            padding = tuple(padding)
        else:
            padding = form
        cases.append(
            PoolCase(
                spatial=spatial,
                window=window,
                stride=stride,
                padding=padding,
                ceil_mode=ceil_mode,
                count_include_pad=bool(rng.random() < 0.5),
                layout=str(rng.choice(["NHWC", "NCHW"])),
                dtype="bfloat16" if rng.random() < 0.25 else "float32",
                seed=seed + i,
            )
        )
    return cases


CASES = _sample_cases(64, seed=4321)


def _pool(fn, case: PoolCase, x, **kwargs):
    """Runs a jaxconv pool on channels-last float64 ``x`` in ``case``'s layout and dtype."""
    xj = jnp.asarray(x, case.dtype)
    if case.layout == "NCHW":
        xj = jnp.moveaxis(xj, -1, 1)
    y = fn(
        xj,
        case.window,
        stride=case.stride,
        padding=case.padding,
        ceil_mode=case.ceil_mode,
        layout=case.layout,
        **kwargs,
    )
    assert y.dtype == jnp.dtype(case.dtype)
    if case.layout == "NCHW":
        y = jnp.moveaxis(y, 1, -1)
    return np.asarray(y.astype(jnp.float32), np.float64)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_pooling_matches_reference(case: PoolCase):
    rng = np.random.default_rng(case.seed)
    x = rng.standard_normal((2, *case.spatial, 3))
    x = np.asarray(jnp.asarray(x, case.dtype).astype(jnp.float32), np.float64)
    kw = dict(stride=case.stride, padding=case.padding, ceil_mode=case.ceil_mode)
    expected_max = reference.max_pool(x, case.window, **kw)
    np.testing.assert_array_equal(_pool(jaxconv.max_pool, case, x), expected_max)
    expected_avg = reference.avg_pool(
        x, case.window, count_include_pad=case.count_include_pad, **kw
    )
    got = _pool(jaxconv.avg_pool, case, x, count_include_pad=case.count_include_pad)
    np.testing.assert_allclose(
        got, expected_avg, rtol=0, atol=tol(case.dtype, math.prod(case.window))
    )
    # and the sizes are the geometry's
    stride = case.stride or case.window
    for n, k, s, axis in zip(case.spatial, case.window, stride, range(1, 4)):
        # a string (SAME or a value-filling mode) goes through as is: a mode's pads are input
        pad = case.padding if not isinstance(case.padding, tuple) else case.padding[axis - 1]
        assert got.shape[axis] == jaxconv.pool_output_size(
            n, k, stride=s, padding=pad, ceil_mode=case.ceil_mode
        )


def _partial_window_cases(count: int, seed: int) -> list[PoolCase]:
    """ceil_mode cases whose windows may be larger than the (padded) input: PyTorch's partial
    windows (the main grid never has an input smaller than its window)."""
    rng = np.random.default_rng(seed)
    cases: list[PoolCase] = []
    while len(cases) < count:
        ndim = int(rng.choice([1, 2]))
        window = tuple(int(v) for v in rng.integers(2, 7, ndim))
        stride = tuple(int(v) for v in rng.integers(1, 5, ndim))
        spatial = tuple(int(rng.integers(1, k + 1)) for k in window)
        padding = tuple((int(rng.integers(0, k // 2 + 1)),) * 2 for k in window)
        padding = padding if rng.random() < 0.5 else "VALID"
        pairs, _ = reference.pad_pairs(padding, spatial, window, stride, (1,) * ndim)
        sizes = [
            len(reference._pool_bounds(n, k, s, lo, hi, True))
            for n, k, s, (lo, hi) in zip(spatial, window, stride, pairs)
        ]
        if min(sizes) < 1:  # an overhang of a stride or more: an error (tested elsewhere)
            continue
        cases.append(
            PoolCase(
                spatial=spatial,
                window=window,
                stride=stride,
                padding=padding,
                ceil_mode=True,
                count_include_pad=bool(rng.random() < 0.5),
                layout=str(rng.choice(["NHWC", "NCHW"])),
                dtype="float32",
                seed=seed + len(cases),
            )
        )
    return cases


PARTIAL_CASES = _partial_window_cases(24, seed=77)


def test_partial_window_grid_has_windows_larger_than_the_padded_input():
    assert any(
        k > n + lo + hi
        for c in PARTIAL_CASES
        for n, k, (lo, hi) in zip(
            c.spatial,
            c.window,
            reference.pad_pairs(c.padding, c.spatial, c.window, c.stride, (1,) * len(c.window))[0],
        )
    )
    assert {c.count_include_pad for c in PARTIAL_CASES} == {True, False}
    assert {isinstance(c.padding, tuple) for c in PARTIAL_CASES} == {True, False}


@pytest.mark.parametrize("case", PARTIAL_CASES, ids=str)
def test_partial_windows_match_reference(case: PoolCase):
    test_pooling_matches_reference(case)


def test_grid_covers_what_it_claims():
    assert {len(c.window) for c in CASES} == {1, 2, 3}
    assert {c.ceil_mode for c in CASES} == {c.count_include_pad for c in CASES} == {True, False}
    assert {c.layout for c in CASES} == {"NHWC", "NCHW"}
    assert {c.dtype for c in CASES} == {"float32", "bfloat16"}
    forms = {
        "int"
        if isinstance(c.padding, int)
        else "pairs"
        if isinstance(c.padding, tuple)
        else c.padding
        for c in CASES
    }
    assert forms == set(PADDING_FORMS)

    def sizes(c: PoolCase, ceil_mode: bool) -> list[int]:
        stride = c.stride or c.window
        pairs, _ = reference.pad_pairs(c.padding, c.spatial, c.window, stride, (1,) * len(stride))
        return [
            len(reference._pool_bounds(n, k, s, lo, hi, ceil_mode))
            for n, k, s, (lo, hi) in zip(c.spatial, c.window, stride, pairs)
        ]

    # ceil_mode really adds outputs in some cases
    assert any(sizes(c, True) != sizes(c, False) for c in CASES if c.ceil_mode)
    # and some high pads reach a whole window (where the padded length fits one window more)
    assert any(
        hi >= k
        for c in CASES
        if isinstance(c.padding, tuple)
        for (_, hi), k in zip(c.padding, c.window)
    )


@pytest.mark.parametrize("fn", [jaxconv.max_pool, jaxconv.avg_pool], ids=lambda f: f.__name__)
def test_ceil_mode_with_a_high_pad_of_a_whole_window(fn):
    # length 3, window 3, stride 2, pads (1, 3): the padded length 7 fits windows at 0, 2, 4,
    # but the one at 4 starts in the high padding (4 >= 3 + 1): ceil_mode keeps 2 (was 3).
    x = jnp.arange(1.0, 4.0).reshape(1, 3, 1)
    y = fn(x, 3, stride=2, padding=((1, 3),), ceil_mode=True)
    assert (
        y.shape
        == (1, jaxconv.pool_output_size(3, 3, stride=2, padding=(1, 3), ceil_mode=True), 1)
        == (1, 2, 1)
    )
    # windows [pad, 1, 2] and [2, 3, pad]
    expected = [2.0, 3.0] if fn is jaxconv.max_pool else [1.0, 5 / 3]
    np.testing.assert_allclose(y[0, :, 0], expected, rtol=0, atol=tol("float32", 3))


def test_the_issues_partial_window():
    # issue 12: max_pool1d of [1, 2, 3], window 4, stride 3, ceil_mode → [3.]; avg → [2.]
    # (the overhang past the input is never in the divisor, count_include_pad or not)
    x = jnp.array([1.0, 2.0, 3.0]).reshape(1, 3, 1)
    kw = dict(stride=3, ceil_mode=True)
    assert jaxconv.max_pool(x, 4, **kw).tolist() == [[[3.0]]]
    assert jaxconv.avg_pool(x, 4, **kw).tolist() == [[[2.0]]]
    assert jaxconv.avg_pool(x, 4, count_include_pad=False, **kw).tolist() == [[[2.0]]]
    # with an explicit pad of 1 that pad counts (sum 6 / 4), the overhang does not
    y = jaxconv.avg_pool(x, 4, stride=4, padding=1, ceil_mode=True)
    assert y.tolist() == [[[1.5]]]
    # without ceil_mode a window larger than the padded input stays an error
    with pytest.raises(ValueError, match=r"the window \(=4\) must fit in the padded input \(=3"):
        jaxconv.max_pool(x, 4, stride=3)


def test_googlenet_imagenet_stem_runs_on_32x32():
    # pools 3×3/2 ceil_mode on 16 → 8 → 4 → 2 → 1: the last two need partial windows (issue 12)
    from flax import nnx

    from jaxconv.models import GoogLeNet, stage_sizes

    assert stage_sizes(32) == {"3a": 4, "4a": 2, "5a": 1}
    model = GoogLeNet(num_classes=10, aux_logits=False, rngs=nnx.Rngs(0))
    model.eval()
    y = model(jnp.ones((2, 32, 32, 3)))
    assert y.shape == (2, 10) and bool(jnp.isfinite(y).all())


# --- PyTorch as an independent oracle for the Caffe/PyTorch rules ----------------------------
@pytest.mark.parametrize(
    "n, window, stride, padding, ceil_mode, count_include_pad",
    [
        (112, 3, 2, 0, True, True),  # GoogLeNet: 112 -> 56
        (5, 2, 2, 1, True, True),  # ceil would add a window starting in the padding: dropped
        (7, 3, 2, 1, True, True),  # the last window overhangs: the overhang is not counted
        (7, 3, 2, 1, True, False),
        (6, 4, 3, 2, True, True),
        (6, 4, 3, 2, False, False),
        (9, 3, 3, 1, False, True),
        # partial windows larger than the padded input (issue 12)
        (3, 4, 3, 0, True, True),
        (3, 4, 3, 0, True, False),
        (3, 5, 4, 1, True, True),
        (3, 6, 4, 2, True, True),
        (3, 6, 4, 2, True, False),
        (2, 3, 2, 0, True, True),
        (1, 3, 2, 1, True, False),
    ],
)
def test_against_pytorch(n, window, stride, padding, ceil_mode, count_include_pad):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(n * 100 + window * 10 + stride)
    x = rng.standard_normal((1, 2, n, n)).astype(np.float32)
    kw = dict(stride=stride, padding=padding, ceil_mode=ceil_mode)
    want_max = torch.nn.functional.max_pool2d(torch.from_numpy(x), window, **kw).numpy()
    want_avg = torch.nn.functional.avg_pool2d(
        torch.from_numpy(x), window, count_include_pad=count_include_pad, **kw
    ).numpy()
    xj = jnp.asarray(x)
    got_max = jaxconv.max_pool(xj, window, layout="NCHW", **kw)
    got_avg = jaxconv.avg_pool(xj, window, layout="NCHW", count_include_pad=count_include_pad, **kw)
    np.testing.assert_array_equal(got_max, want_max)
    np.testing.assert_allclose(got_avg, want_avg, rtol=0, atol=tol("float32", window * window))


def test_ceil_mode_sizes_and_errors_against_pytorch_1d():
    # A sweep of small 1-D pools: jaxconv errors exactly where PyTorch does (an overhang of a
    # stride or more, or a window larger than the padded input without ceil_mode), and
    # otherwise gives PyTorch's values, count_include_pad both ways.
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(12)
    checked = errors = 0
    for n in range(1, 6):
        for k in range(1, 7):
            s, ceil_mode = int(rng.integers(1, 5)), bool(rng.random() < 0.7)
            p = int(rng.integers(0, k // 2 + 1))  # PyTorch's limit: p <= k // 2
            x = rng.standard_normal((1, 1, n)).astype(np.float32)
            xt, xj = torch.from_numpy(x), jnp.asarray(x)
            kw = dict(stride=s, padding=p, ceil_mode=ceil_mode)
            try:
                want = F.max_pool1d(xt, k, **kw).numpy()
            except RuntimeError:
                with pytest.raises(ValueError, match=r"must fit in the padded input"):
                    jaxconv.max_pool(xj, k, layout="NCW", **kw)
                errors += 1
                continue
            np.testing.assert_array_equal(jaxconv.max_pool(xj, k, layout="NCW", **kw), want)
            for count_pad in (True, False):
                want = F.avg_pool1d(xt, k, count_include_pad=count_pad, **kw).numpy()
                got = jaxconv.avg_pool(xj, k, layout="NCW", count_include_pad=count_pad, **kw)
                np.testing.assert_allclose(got, want, rtol=0, atol=tol("float32", k))
            checked += 1
    assert checked > 10 and errors > 1


# --- behaviour ------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_an_empty_batch_gives_an_empty_output(layout):
    # as lax and the convs do (issue 12); zero-size spatial or channel dims stay errors
    shape = (0, 7, 5, 3) if layout == "NHWC" else (0, 3, 7, 5)
    x = jnp.zeros(shape, jnp.float32)
    kw = dict(stride=2, padding=1, ceil_mode=True, layout=layout)
    sizes = tuple(
        jaxconv.pool_output_size(n, 3, stride=2, padding=1, ceil_mode=True) for n in (7, 5)
    )
    want = (0, *sizes, 3) if layout == "NHWC" else (0, 3, *sizes)
    for fn in (jaxconv.max_pool, jaxconv.avg_pool):
        assert fn(x, 3, **kw).shape == want
        assert jax.jit(lambda x: fn(x, 3, **kw))(x).shape == want  # noqa: B023
    assert jaxconv.max_pool(x, 2, padding="REFLECT", layout=layout).shape[0] == 0
    assert jaxconv.global_avg_pool(x, layout=layout).shape == (0, 3)
    y = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    assert y.shape[0] == 0  # lax's own behaviour, the one matched


def test_value_filling_modes_at_stride_above_one():
    # The modes pad ((window - 1) // 2, window // 2) whatever the stride, as flax.nnx.Conv does
    # for convs (issue 12), and the filled pads are input. [0, 1, 2, 3, 4], window 3, stride 3:
    # CIRCULAR pads (1, 1) → 4 0 1 2 3 4 0 → windows (4 0 1), (2 3 4); SAME's (0, 1) would
    # have given (0 1 2), (3 4 ·).
    x = jnp.arange(5.0).reshape(1, 5, 1)
    assert jaxconv.max_pool(x, 3, stride=3, padding="CIRCULAR")[0, :, 0].tolist() == [4, 4]
    got = jaxconv.avg_pool(x, 3, stride=3, padding="CIRCULAR")[0, :, 0]
    np.testing.assert_allclose(got, [5 / 3, 3.0], rtol=0, atol=tol("float32", 3))
    # Window 2 pads (0, 1). On [0, 1, 2], REPLICATE gives 0 1 2 2; with ceil_mode a window
    # starting in the value-filled pad is kept (it is input): (0 1), (2 2). The same amounts as
    # zero padding would start the second window in the padding, so ceil_mode drops it.
    x3 = jnp.arange(3.0).reshape(1, 3, 1)
    y = jaxconv.max_pool(x3, 2, stride=3, padding="REPLICATE", ceil_mode=True)[0, :, 0]
    assert y.tolist() == [1, 2]
    assert jaxconv.max_pool(x3, 2, stride=3, padding=((0, 1),), ceil_mode=True).shape[1] == 1


def test_padding_never_wins_max_pool():
    x = -1.0 - jnp.arange(16.0).reshape(1, 4, 4, 1)  # all negative
    y = jaxconv.max_pool(x, 3, stride=1, padding="SAME")
    assert float(y.max()) == -1.0  # a zero pad would have won
    y_int = jaxconv.max_pool(x.astype(jnp.int32), 3, stride=1, padding="SAME")
    assert y_int.dtype == jnp.int32
    np.testing.assert_array_equal(y_int, y.astype(jnp.int32))


def test_value_filling_modes_are_used_by_pooling():
    x = jnp.arange(4.0).reshape(1, 4, 1)  # 0 1 2 3
    # window 3, SAME pads (1, 1): REFLECT -> 1 0 1 2 3 2, REPLICATE -> 0 0 1 2 3 3,
    # CIRCULAR -> 3 0 1 2 3 0; then the plain mean of each window of three
    expected = {
        "REFLECT": [2 / 3, 1.0, 2.0, 7 / 3],
        "REPLICATE": [1 / 3, 1.0, 2.0, 8 / 3],
        "CIRCULAR": [4 / 3, 1.0, 2.0, 5 / 3],
    }
    for mode, want in expected.items():
        got = jaxconv.avg_pool(x, 3, stride=1, padding=mode)[0, :, 0]
        np.testing.assert_allclose(got, want, rtol=0, atol=tol("float32", 3))
    assert jaxconv.max_pool(x, 3, stride=1, padding="CIRCULAR")[0, :, 0].tolist() == [3, 2, 3, 3]


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_avg_pool(rng, layout, keepdims):
    x = jnp.asarray(rng.standard_normal((2, 5, 3, 4, 6)), jnp.float32)
    axes = (1, 2, 3) if layout == "NHWC" else (2, 3, 4)
    y = jaxconv.global_avg_pool(x, layout=layout, keepdims=keepdims)
    expected = np.asarray(x, np.float64).mean(axis=axes, keepdims=keepdims)
    np.testing.assert_allclose(y, expected, rtol=0, atol=tol("float32", 60))
    # it is the whole-map average pool
    if layout == "NHWC" and keepdims:
        full = jaxconv.avg_pool(x, x.shape[1:4])
        np.testing.assert_allclose(y, full, rtol=0, atol=tol("float32", 60))


def test_avg_pool_grads(rng):
    with jax.enable_x64(True):
        x = jnp.asarray(rng.standard_normal((1, 7, 6, 2)))
        f = lambda x: jaxconv.avg_pool(  # noqa: E731
            x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False
        )
        check_grads(f, (x,), order=2, modes=("fwd", "rev"))


def test_max_pool_grads(rng):
    with jax.enable_x64(True):
        # distinct values, far apart compared with the finite-difference step: no ties
        x = jnp.asarray(rng.permutation(84).reshape(1, 7, 6, 2) * 0.1)
        f = lambda x: jaxconv.max_pool(x, 3, stride=2, padding="SAME")  # noqa: E731
        check_grads(f, (x,), order=1, modes=("fwd", "rev"))
        # the gradient routes to the argmax only
        g = jax.grad(lambda x: jaxconv.max_pool(x, 2).sum())(x)
        assert float(g.sum()) == 3 * 3 * 2 and set(np.unique(np.asarray(g))) == {0.0, 1.0}


MAX_GRAD_CASES = [
    ((2, 9, 11, 3), dict(window=3, stride=1, padding="SAME")),  # Inception's pool branch
    ((2, 9, 11, 3), dict(window=3, stride=2, ceil_mode=True)),  # GoogLeNet's stage pools
    ((2, 8, 10, 3), dict(window=2)),  # non-overlapping: the value from reduce_window
    ((2, 8, 7, 3), dict(window=(3, 2), stride=(2, 3), padding=((1, 2), (0, 1)))),
    ((2, 10, 3), dict(window=4, stride=3, ceil_mode=True)),  # 1-D
    ((1, 5, 6, 7, 2), dict(window=2, stride=(1, 2, 1), padding="SAME")),  # 3-D
]


@pytest.mark.parametrize("values", ["distinct", "ties", "nan"])
@pytest.mark.parametrize("shape, kw", MAX_GRAD_CASES, ids=lambda v: str(v).replace(" ", ""))
def test_max_pool_gradient_goes_to_the_first_maximum(rng, shape, kw, values):
    """Forward and reverse mode against the float64 NumPy reference: each output's cotangent
    lands on the first maximum of its window in row-major order (PyTorch's and lax's rule),
    also where ReLU zeros tie, and on the first NaN where a window holds one."""
    x = rng.standard_normal(shape)
    if values != "distinct":
        x = np.maximum(np.round(x), 0.0)  # mostly ties
    if values == "nan":
        x.flat[::7] = np.nan
    x32 = jnp.asarray(x, jnp.float32)
    f = lambda v: jaxconv.max_pool(v, **kw)  # noqa: E731
    y, vjp = jax.vjp(f, x32)
    dy = rng.standard_normal(y.shape)
    got = vjp(jnp.asarray(dy, jnp.float32))[0]
    want = reference.max_pool_grad(x.astype(np.float32), dy, **kw)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # forward mode routes the same way: <jvp(t), dy> == <t, vjp(dy)>
    t = rng.standard_normal(shape)
    _, y_dot = jax.jvp(f, (x32,), (jnp.asarray(t, jnp.float32),))
    np.testing.assert_allclose(float(jnp.sum(y_dot * dy)), float(np.sum(t * want)), rtol=1e-5)
    if values != "nan":  # lax's reduce_window routes ties the same way (NaNs elsewhere)
        spec = pool_spec(x32, **{k: v for k, v in kw.items()})
        ref = jax.vjp(lambda v: _max_pool_reference(v, spec), x32)[1](jnp.asarray(dy, jnp.float32))
        np.testing.assert_allclose(got, ref[0], rtol=1e-6, atol=1e-6)


def test_max_pool_forms_by_window(rng):
    """Overlapping windows run as separable slices, value and gradient; non-overlapping ones
    take the value from reduce_window, and the gradient from the slices unless the window
    is large (then select_and_scatter). Same values every way."""
    x = jnp.asarray(rng.standard_normal((1, 18, 18, 2)), jnp.float32)

    def ops(window, stride, grad):
        f = lambda v: jaxconv.max_pool(v, window, stride=stride)  # noqa: E731
        fn = jax.grad(lambda v: f(v).sum()) if grad else f
        return str(jax.make_jaxpr(fn)(x))

    assert "reduce_window" not in ops(3, 1, False) and "reduce_window" not in ops(3, 2, True)
    assert "reduce_window_max" in ops(2, 2, False) and "select_and" not in ops(2, 2, True)
    assert "reduce_window_max" in ops(9, 9, False) and "select_and" in ops(9, 9, True)
    for window, stride in ((9, 3), (9, 9), (2, 2)):
        np.testing.assert_array_equal(
            jaxconv.max_pool(x, window, stride=stride),
            reference.max_pool(np.asarray(x), window, stride=stride),
        )


def test_pooling_jit_and_vmap(rng):
    xs = jnp.asarray(rng.standard_normal((3, 2, 9, 9, 4)), jnp.float32)
    for fn in (jaxconv.max_pool, jaxconv.avg_pool):
        f = lambda x: fn(x, 3, stride=2, ceil_mode=True)  # noqa: E731, B023
        eager = f(xs[0])
        np.testing.assert_allclose(jax.jit(f)(xs[0]), eager, rtol=0, atol=tol("float32", 9))
        np.testing.assert_allclose(
            jax.vmap(f)(xs), jnp.stack([f(x) for x in xs]), rtol=0, atol=tol("float32", 9)
        )


def test_reflect_pooling_with_a_window_larger_than_the_input(rng):
    """REFLECT pads past the input's size reflect again (as jnp.pad and Flax do)."""
    x = rng.standard_normal((1, 2, 3, 2)).astype(np.float32)
    for fn, ref in ((jaxconv.max_pool, reference.max_pool), (jaxconv.avg_pool, reference.avg_pool)):
        got = fn(jnp.asarray(x), 5, stride=1, padding="REFLECT")
        want = ref(x.astype(np.float64), 5, stride=1, padding="REFLECT")
        assert got.shape == (1, 2, 3, 2)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
