"""depthwise_conv and separable_conv against the NumPy float64 reference and PyTorch's grouped
conv2d; their costs against MobileNet's ratio 1/N + 1/D_k² (Howard et al. 2017, eq. 5)."""

from __future__ import annotations

import functools
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference
from conftest import tol
from jax.test_util import check_grads

from jaxconv._cost import conv_cost, depthwise_cost, separable_cost
from jaxconv.convolution import depthwise_conv, separable_conv

IMPLEMENTATIONS = (None, "xla", "onednn")


def _applies(impl, x, w, **kwargs):
    if impl is None or impl == "xla":
        return True
    try:
        jax.eval_shape(lambda x, w: depthwise_conv(x, w, implementation=impl, **kwargs), x, w)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    "spatial,kernel,stride,dilation,padding,multiplier",
    [
        ((9, 8), (3, 3), 1, 1, "SAME", 1),
        ((9, 8), (5, 3), 2, 1, "VALID", 2),
        ((7, 7), (3, 3), 1, 2, ((1, 2), (0, 3)), 3),
        ((10,), (4,), 3, 1, "SAME", 2),
        ((4, 5, 3), (3, 2, 2), 1, 1, "SAME", 1),
    ],
)
@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=str)
def test_depthwise_matches_reference(
    rng, spatial, kernel, stride, dilation, padding, multiplier, impl
):
    c = 5
    x = rng.standard_normal((2, *spatial, c)).astype(np.float32)
    w = rng.standard_normal((*kernel, 1, c * multiplier)).astype(np.float32)
    b = rng.standard_normal(c * multiplier).astype(np.float32)
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    layout = {1: "NWC", 2: "NHWC", 3: "NDHWC"}[len(spatial)]
    if not _applies(impl, jnp.asarray(x), jnp.asarray(w), layout=layout, **kw):
        pytest.skip(f"{impl} does not apply")
    y = depthwise_conv(
        jnp.asarray(x),
        jnp.asarray(w),
        jnp.asarray(b),
        multiplier=multiplier,
        layout=layout,
        implementation=impl,
        **kw,
    )
    ref = reference.conv(x, w, b, groups=c, **kw)
    np.testing.assert_allclose(y, ref, atol=tol("float32", int(np.prod(kernel))), rtol=0)


@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 0, 1), (1, 2, 2), (2, 1, 1)])
def test_depthwise_matches_torch(rng, multiplier, stride, padding, dilation):
    torch = pytest.importorskip("torch")
    c = 6
    x = rng.standard_normal((2, c, 9, 8)).astype(np.float32)
    wt = rng.standard_normal((c * multiplier, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(c * multiplier).astype(np.float32)
    ref = torch.nn.functional.conv2d(
        torch.from_numpy(x),
        torch.from_numpy(wt),
        torch.from_numpy(b),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=c,
    ).numpy()
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    # NCHW: PyTorch's weight as it is; NHWC: transposed by (2, 3, 1, 0).
    y_first = depthwise_conv(jnp.asarray(x), jnp.asarray(wt), jnp.asarray(b), layout="NCHW", **kw)
    y_last = depthwise_conv(
        jnp.asarray(x.transpose(0, 2, 3, 1)),
        jnp.asarray(wt.transpose(2, 3, 1, 0)),
        jnp.asarray(b),
        **kw,
    )
    np.testing.assert_allclose(y_first, ref, atol=tol("float32", 9), rtol=0)
    np.testing.assert_allclose(
        np.asarray(y_last).transpose(0, 3, 1, 2), ref, atol=tol("float32", 9), rtol=0
    )


@pytest.mark.parametrize("activation", [None, jax.nn.relu, jax.nn.relu6])
@pytest.mark.parametrize("stride", [1, 2])
def test_separable_matches_torch(rng, activation, stride):
    torch = pytest.importorskip("torch")
    c, m, c_out = 4, 2, 7
    x = rng.standard_normal((2, c, 9, 9)).astype(np.float32)
    w_dw = rng.standard_normal((c * m, 1, 3, 3)).astype(np.float32)
    w_pw = rng.standard_normal((c_out, c * m, 1, 1)).astype(np.float32)
    b_dw = rng.standard_normal(c * m).astype(np.float32)
    b_pw = rng.standard_normal(c_out).astype(np.float32)
    t = torch.from_numpy
    h = torch.nn.functional.conv2d(t(x), t(w_dw), t(b_dw), stride=stride, padding=1, groups=c)
    if activation is jax.nn.relu:
        h = torch.relu(h)
    elif activation is jax.nn.relu6:
        h = torch.nn.functional.relu6(h)
    ref = torch.nn.functional.conv2d(h, t(w_pw), t(b_pw)).numpy()
    y = separable_conv(
        jnp.asarray(x.transpose(0, 2, 3, 1)),
        jnp.asarray(w_dw.transpose(2, 3, 1, 0)),
        jnp.asarray(w_pw[:, :, 0, 0].T),
        jnp.asarray(b_dw),
        jnp.asarray(b_pw),
        activation=activation,
        stride=stride,
        padding=1,
        multiplier=m,
    )
    np.testing.assert_allclose(
        np.asarray(y).transpose(0, 3, 1, 2), ref, atol=tol("float32", 9 * c * m), rtol=0
    )
    y_first = separable_conv(
        jnp.asarray(x),
        jnp.asarray(w_dw),
        jnp.asarray(w_pw[:, :, 0, 0]),
        jnp.asarray(b_dw),
        jnp.asarray(b_pw),
        activation=activation,
        stride=stride,
        padding=1,
        layout="NCHW",
    )
    np.testing.assert_allclose(y_first, ref, atol=tol("float32", 9 * c * m), rtol=0)


def test_separable_matches_reference(rng):
    x = rng.standard_normal((1, 6, 7, 3)).astype(np.float32)
    w_dw = rng.standard_normal((3, 3, 1, 3)).astype(np.float32)
    w_pw = rng.standard_normal((3, 5)).astype(np.float32)
    y = separable_conv(jnp.asarray(x), jnp.asarray(w_dw), jnp.asarray(w_pw), padding="VALID")
    ref = reference.conv(reference.conv(x, w_dw, groups=3), w_pw[None, None])
    np.testing.assert_allclose(y, ref, atol=tol("float32", 27), rtol=0)


@pytest.mark.parametrize("pointwise_impl", [None, "xla", "onednn"], ids=str)
def test_separable_out_activation(rng, pointwise_impl):
    """``out_activation`` follows the pointwise conv, on its lowering (a ReLU as the conv's
    ``activation``), against the float64 reference; another activation runs after it, NaN
    stays NaN and the gradients are the unfused block's."""
    x = rng.standard_normal((2, 6, 7, 3)).astype(np.float32)
    w_dw = rng.standard_normal((3, 3, 1, 3)).astype(np.float32)
    w_pw = rng.standard_normal((3, 5)).astype(np.float32)
    b_pw = rng.standard_normal(5).astype(np.float32)
    kw = dict(activation=jax.nn.relu, padding="VALID", pointwise_implementation=pointwise_impl)

    def block(x, w_dw, w_pw, out_activation=jax.nn.relu, **more):
        return separable_conv(x, w_dw, w_pw, None, b_pw, out_activation=out_activation, **more)

    args = tuple(map(jnp.asarray, (x, w_dw, w_pw)))
    try:
        jax.eval_shape(lambda *a: block(*a, **kw), *args)
    except ValueError:
        pytest.skip(f"{pointwise_impl} does not apply")
    h = np.maximum(reference.conv(x, w_dw, groups=3), 0)
    want = reference.conv(h, w_pw[None, None], b_pw)
    atol = tol("float32", 27)
    got = jax.jit(lambda *a: block(*a, **kw))(*args)
    np.testing.assert_allclose(got, np.maximum(want, 0), atol=atol, rtol=0)
    np.testing.assert_allclose(block(*args, jnp.tanh, **kw), np.tanh(want), atol=atol, rtol=0)
    with_nan = args[0].at[1, 2, 3, 0].set(jnp.nan)
    got = np.asarray(jax.jit(lambda *a: block(*a, **kw))(with_nan, *args[1:]))
    assert np.isnan(got[1]).any() and not np.isnan(got[0]).any()

    def loss(impl, *a):
        return jnp.sum(jnp.sin(block(*a, **{**kw, "pointwise_implementation": impl})))

    for g, want_g in zip(
        jax.grad(functools.partial(loss, pointwise_impl), argnums=(0, 1, 2))(*args),
        jax.grad(functools.partial(loss, "xla"), argnums=(0, 1, 2))(*args),
    ):
        np.testing.assert_allclose(g, want_g, rtol=1e-4, atol=1e-4)


def test_transformations(rng):
    x = rng.standard_normal((3, 2, 6, 6, 4)).astype(np.float32)
    w_dw = jnp.asarray(rng.standard_normal((3, 3, 1, 8)).astype(np.float32))
    w_pw = jnp.asarray(rng.standard_normal((8, 5)).astype(np.float32))
    f = lambda x: separable_conv(x, w_dw, w_pw, activation=jax.nn.relu, stride=2)  # noqa: E731
    eager = jnp.stack([f(v) for v in jnp.asarray(x)])
    atol = 2 * tol("float32", 9 * 8)  # a 3x3 depthwise, then a pointwise over 8 channels
    np.testing.assert_allclose(jax.jit(jax.vmap(f))(jnp.asarray(x)), eager, atol=atol, rtol=0)
    with jax.enable_x64(True):
        xs = jnp.asarray(x[0], jnp.float64)
        wd = jnp.asarray(np.asarray(w_dw), jnp.float64)
        wp = jnp.asarray(np.asarray(w_pw), jnp.float64)
        check_grads(
            lambda x, a, b: separable_conv(x, a, b, activation=jnp.tanh),
            (xs, wd, wp),
            order=2,
            modes=("fwd", "rev"),
        )
        check_grads(
            lambda x, a: depthwise_conv(x, a, stride=2), (xs, wd), order=1, modes=("fwd", "rev")
        )


@pytest.mark.parametrize(
    "call,err,match",
    [
        (
            lambda x: depthwise_conv(x, jnp.ones((3, 3, 2, 8))),
            ValueError,
            "must be a depthwise kernel",
        ),
        (
            lambda x: depthwise_conv(x, jnp.ones((3, 3, 1, 6))),
            ValueError,
            "must be a depthwise kernel",
        ),
        (
            lambda x: depthwise_conv(x, jnp.ones((3, 3, 1, 8)), multiplier=3),
            ValueError,
            r"`multiplier` \(=3\) times the input channels \(=4\)",
        ),
        (
            lambda x: depthwise_conv(x, jnp.ones((3, 3, 1, 8)), multiplier=0),
            ValueError,
            "`multiplier` must be a positive int",
        ),
        (
            lambda x: depthwise_conv(x, jnp.ones((3, 3, 1, 8)), multiplier=1.5),
            TypeError,
            "multiplier",
        ),
        (lambda x: depthwise_conv(x, jnp.ones((3, 1, 8))), ValueError, "same rank"),
        (
            lambda x: separable_conv(x, jnp.ones((3, 3, 1, 4)), jnp.ones((5, 2))),
            ValueError,
            r"`w_pointwise` in-channel dim \(=5\) must equal the depthwise conv's output "
            r"channels \(=4",
        ),
        (
            lambda x: separable_conv(x, jnp.ones((3, 3, 1, 4)), jnp.ones((4, 2)), activation=1),
            TypeError,
            "`activation` must be a callable",
        ),
        (
            lambda x: separable_conv(
                x, jnp.ones((3, 3, 1, 4)), jnp.ones((4, 2)), out_activation="relu"
            ),
            TypeError,
            "`out_activation` must be a callable or None, got 'relu'",
        ),
        (
            lambda x: separable_conv(x, jnp.ones((3, 3, 1, 4)), jnp.ones((4, 2)), jnp.ones(3)),
            ValueError,
            "`b_depthwise` must have shape",
        ),
        (
            lambda x: separable_conv(
                x, jnp.ones((3, 3, 1, 4)), jnp.ones((4, 2)), None, jnp.ones(3)
            ),
            ValueError,
            "`b_pointwise` must have shape",
        ),
        (
            lambda x: separable_conv(x, jnp.ones((3, 3, 1, 4)), jnp.ones((4, 2), jnp.bfloat16)),
            TypeError,
            "`w_pointwise` dtype",
        ),
    ],
)
def test_errors(call, err, match):
    with pytest.raises(err, match=match):
        call(jnp.ones((1, 6, 6, 4)))


# --- costs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,n,k,stride,padding",
    [
        ((112, 112, 32), 64, 3, 1, "SAME"),
        ((14, 14, 512), 512, 3, 1, "SAME"),
        ((7, 7, 1024), 1024, 3, 2, "SAME"),
        ((15, 13, 24), 40, 5, 2, "VALID"),
        ((9, 9, 8), 16, (3, 5), 1, 1),
    ],
)
def test_separable_ratio_is_mobilenets(shape, n, k, stride, padding):
    s = separable_cost(shape, n, k, stride=stride, padding=padding, bias=False)
    kh, kw = (k, k) if isinstance(k, int) else k
    assert s.macs_ratio == Fraction(1, n) + Fraction(1, kh * kw)
    assert s.weights_ratio == Fraction(1, n) + Fraction(1, kh * kw)
    h, w = s.standard.output_shape[:2]
    m = shape[-1]
    # MobileNet eq. (4): D_k²·M·D_F² + M·N·D_F²
    assert s.macs_separable == kh * kw * m * h * w + m * n * h * w
    assert s.macs_standard == kh * kw * m * n * h * w


def test_separable_ratio_with_multiplier():
    s = separable_cost((14, 14, 32), 64, 3, multiplier=2)
    assert s.macs_ratio == 2 * (Fraction(1, 64) + Fraction(1, 9))
    assert s.depthwise.output_shape == (14, 14, 64)


def test_depthwise_cost_is_grouped_conv_cost():
    d = depthwise_cost((28, 28, 16), (3, 5), multiplier=3, stride=2, dtype="bfloat16")
    c = conv_cost((28, 28, 16), 48, (3, 5), stride=2, groups=16, dtype="bfloat16")
    assert d == c
    assert d.weights == 3 * 5 * 48 and d.macs == 14 * 14 * 48 * 15


def test_cost_errors():
    with pytest.raises(ValueError, match="`multiplier`"):
        depthwise_cost((8, 8, 4), 3, multiplier=0)
    with pytest.raises(ValueError, match="`input_shape`"):
        depthwise_cost((4,), 3)
