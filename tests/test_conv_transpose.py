"""conv_transpose against an independent NumPy float64 scatter loop, PyTorch's
conv_transpose2d/1d (every padding/output_padding in a small grid), Flax's nnx.ConvTranspose
(string padding, both kernel conventions), the VJP of jaxconv.conv, and transformations."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tol
from jax.test_util import check_grads

import jaxconv
from jaxconv.convolution import conv_transpose, conv_transpose_padding

IMPLEMENTATIONS = (None, *jaxconv.convolution.LOWERINGS)


def scatter_reference(x, w, b=None, *, stride, padding, output_padding, dilation, groups):
    """Transposed conv by definition, float64, channels-last: input pixel ``i`` adds
    ``x[i]·w[t]`` at ``i·s + t·d - lo``; ``padding`` is ``(lo, hi)`` per dim (crops)."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    ndim = x.ndim - 2
    n_batch, *spatial, _c_in = x.shape
    *kernel, cig, c_out = w.shape
    cog = c_out // groups
    full = [
        (n - 1) * s + d * (k - 1) + 1 + a
        for n, s, d, k, a in zip(spatial, stride, dilation, kernel, output_padding)
    ]
    y = np.zeros((n_batch, *full, c_out))
    for pos in itertools.product(*(range(n) for n in spatial)):
        for tap in itertools.product(*(range(k) for k in kernel)):
            out = tuple(i * s + t * d for i, t, s, d in zip(pos, tap, stride, dilation))
            for g in range(groups):
                contrib = (
                    x[(slice(None), *pos, slice(g * cig, (g + 1) * cig))]
                    @ w[tap][:, g * cog : (g + 1) * cog]
                )
                y[(slice(None), *out, slice(g * cog, (g + 1) * cog))] += contrib
    crop = tuple(slice(lo, n - hi) for (lo, hi), n in zip(padding, full))
    y = y[(slice(None), *crop, slice(None))]
    assert y.shape[1 : 1 + ndim] == tuple(f - lo - hi for f, (lo, hi) in zip(full, padding))
    return y if b is None else y + np.asarray(b, np.float64)


def _applies(impl, **kwargs):
    """Whether ``impl`` runs this transposed conv (None always does)."""
    if impl is None:
        return True
    x, w = kwargs.pop("x"), kwargs.pop("w")
    try:
        jax.eval_shape(lambda x, w: conv_transpose(x, w, implementation=impl, **kwargs), x, w)
    except ValueError as err:
        if "applies" in str(err) or impl in str(err):
            return False
        raise
    return True


CASES = [
    # ndim, spatial, kernel, stride, dilation, padding (lo, hi) per dim, output_padding, groups
    (1, (5,), (3,), (2,), (1,), ((1, 1),), (1,), 1),
    (1, (4,), (4,), (3,), (2,), ((0, 2),), (2,), 2),
    (2, (4, 5), (3, 2), (2, 1), (1, 2), ((1, 1), (0, 1)), (1, 0), 1),
    (2, (3, 3), (2, 3), (3, 2), (1, 1), ((2, 0), (1, 1)), (2, 1), 3),
    (2, (5, 4), (1, 1), (2, 2), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),
    (2, (6, 7), (5, 5), (2, 2), (1, 1), ((5, 5), (6, 3)), (0, 1), 1),  # crops past the reach
    (3, (2, 3, 2), (2, 2, 3), (2, 1, 2), (1, 1, 1), ((0, 0), (1, 1), (1, 2)), (1, 0, 1), 2),
]


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda v: str(v))
@pytest.mark.parametrize("bias", [False, True])
def test_matches_scatter_reference(rng, case, impl, bias):
    ndim, spatial, kernel, stride, dilation, padding, extra, groups = case
    c_in, c_out = 3 * groups, 2 * groups
    x = rng.standard_normal((2, *spatial, c_in)).astype(np.float32)
    w = rng.standard_normal((*kernel, c_in // groups, c_out)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32) if bias else None
    kwargs = dict(
        stride=stride,
        padding=padding,
        output_padding=extra,
        dilation=dilation,
        groups=groups,
        layout={1: "NWC", 2: "NHWC", 3: "NDHWC"}[ndim],
    )
    if not _applies(impl, x=jnp.asarray(x), w=jnp.asarray(w), **kwargs):
        pytest.skip(f"{impl} does not apply")
    y = conv_transpose(
        jnp.asarray(x),
        jnp.asarray(w),
        None if b is None else jnp.asarray(b),
        implementation=impl,
        **kwargs,
    )
    ref = scatter_reference(
        x,
        w,
        b,
        stride=stride,
        padding=padding,
        output_padding=extra,
        dilation=dilation,
        groups=groups,
    )
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=tol("float32", np.prod(kernel) * c_in), rtol=0)


def test_channels_first_matches_channels_last(rng):
    x = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 4)).astype(np.float32)  # HWIO, groups=2
    kw = dict(stride=2, padding=(1, 0), output_padding=1, groups=2)
    y_last = conv_transpose(jnp.asarray(x), jnp.asarray(w), **kw)
    y_first = conv_transpose(
        jnp.asarray(x.transpose(0, 3, 1, 2)),
        jnp.asarray(w.transpose(3, 2, 0, 1)),
        layout="NCHW",
        **kw,
    )
    atol = 2 * tol("float32", 3 * 2 * 3)  # two roundings of a 3x2 kernel over 3 channels
    np.testing.assert_allclose(np.asarray(y_first).transpose(0, 2, 3, 1), y_last, atol=atol)


# --- PyTorch ---------------------------------------------------------------------------------


def _torch_grid():
    for stride, dilation in [(1, 1), (2, 1), (3, 1), (1, 2), (2, 2), (3, 2)]:
        for padding in range(4):
            for extra in range(max(stride, dilation)):
                for groups in (1, 2):
                    yield stride, dilation, padding, extra, groups


@pytest.mark.parametrize("stride,dilation,padding,extra,groups", list(_torch_grid()))
def test_matches_torch_conv_transpose2d(rng, stride, dilation, padding, extra, groups):
    """Every padding/output_padding combination PyTorch accepts on this grid; the weight is
    PyTorch's (C_in, C_out/g, kh, kw) mapped to HWIO as the docstring says."""
    torch = pytest.importorskip("torch")
    c_in, c_out, kh, kw = 4, 6, 3, 2
    x = rng.standard_normal((2, c_in, 5, 4)).astype(np.float32)
    wt = rng.standard_normal((c_in, c_out // groups, kh, kw)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    kwargs = dict(
        stride=stride, padding=padding, output_padding=extra, dilation=dilation, groups=groups
    )
    out_h = (5 - 1) * stride - 2 * padding + dilation * (kh - 1) + extra + 1
    out_w = (4 - 1) * stride - 2 * padding + dilation * (kw - 1) + extra + 1
    if min(out_h, out_w) < 1:
        with pytest.raises(ValueError, match="output size"):
            conv_transpose(
                jnp.asarray(x), jnp.asarray(wt), layout="NCHW", transpose_kernel=True, **kwargs
            )
        return
    ref = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(x), torch.from_numpy(wt), torch.from_numpy(b), **kwargs
    ).numpy()
    if groups == 1:
        w = wt.transpose(2, 3, 0, 1)
    else:
        w = wt.reshape(groups, c_in // groups, c_out // groups, kh, kw)
        w = w.transpose(3, 4, 1, 0, 2).reshape(kh, kw, c_in // groups, c_out)
    y = conv_transpose(
        jnp.asarray(x.transpose(0, 2, 3, 1)), jnp.asarray(w), jnp.asarray(b), **kwargs
    )
    atol = tol("float32", kh * kw * c_in)
    np.testing.assert_allclose(np.asarray(y).transpose(0, 3, 1, 2), ref, atol=atol, rtol=0)
    # NCHW with transpose_kernel=True takes PyTorch's weight as it is.
    y_nchw = conv_transpose(
        jnp.asarray(x),
        jnp.asarray(wt),
        jnp.asarray(b),
        layout="NCHW",
        transpose_kernel=True,
        **kwargs,
    )
    np.testing.assert_allclose(y_nchw, ref, atol=atol, rtol=0)


@pytest.mark.parametrize("stride,padding,extra", [(2, 1, 1), (3, 0, 2), (1, 2, 0)])
def test_matches_torch_conv_transpose1d_and_module(rng, stride, padding, extra):
    torch = pytest.importorskip("torch")
    layer = torch.nn.ConvTranspose1d(3, 5, 4, stride=stride, padding=padding, output_padding=extra)
    x = rng.standard_normal((2, 3, 6)).astype(np.float32)
    with torch.no_grad():
        ref = layer(torch.from_numpy(x)).numpy()
    w = layer.weight.detach().numpy().transpose(2, 0, 1)  # (k, C_in, C_out)
    y = conv_transpose(
        jnp.asarray(x.transpose(0, 2, 1)),
        jnp.asarray(w),
        jnp.asarray(layer.bias.detach().numpy()),
        stride=stride,
        padding=padding,
        output_padding=extra,
        layout="NWC",
    )
    atol = 2 * tol("float32", 4 * 3)
    np.testing.assert_allclose(np.asarray(y).transpose(0, 2, 1), ref, atol=atol, rtol=0)


# --- Flax ------------------------------------------------------------------------------------


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("kernel", [(1, 1), (2, 3), (4, 3), (5, 2)])
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("transpose_kernel", [False, True])
def test_string_padding_matches_flax(rng, padding, stride, kernel, dilation, transpose_kernel):
    nnx = pytest.importorskip("flax.nnx")
    layer = nnx.ConvTranspose(
        3,
        5,
        kernel,
        strides=stride,
        padding=padding,
        kernel_dilation=dilation,
        transpose_kernel=transpose_kernel,
        rngs=nnx.Rngs(0),
    )
    layer.bias[...] = jnp.asarray(rng.standard_normal(5).astype(np.float32))
    x = jnp.asarray(rng.standard_normal((2, 6, 5, 3)).astype(np.float32))
    ref = layer(x)
    k = layer.kernel[...]
    # Flax's transpose_kernel=False runs the kernel unflipped on the dilated input.
    w = k if transpose_kernel else jnp.flip(k, (0, 1))
    y = conv_transpose(
        x,
        w,
        layer.bias[...],
        stride=stride,
        padding=padding,
        dilation=dilation,
        transpose_kernel=transpose_kernel,
    )
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=tol("float32", 3 * kernel[0] * kernel[1]), rtol=0)
    if padding == "SAME":
        assert y.shape[1:3] == (6 * stride, 5 * stride)


def test_string_padding_matches_lax_conv_transpose(rng):
    x = jnp.asarray(rng.standard_normal((1, 7, 4)).astype(np.float32))
    k = jnp.asarray(rng.standard_normal((3, 2, 4)).astype(np.float32))  # (k, C_out, C_in)
    for padding in ("SAME", "VALID"):
        ref = jax.lax.conv_transpose(x, k, (2,), padding, transpose_kernel=True)
        y = conv_transpose(x, k, stride=2, padding=padding, layout="NWC", transpose_kernel=True)
        np.testing.assert_allclose(y, ref, atol=2 * tol("float32", 3 * 4), rtol=0)


def test_the_default_padding_is_same_as_lax_and_flax_have_it(rng):
    """Issue 25, item 5: ``padding`` defaults to ``"SAME"`` (``n·stride`` outputs), as for
    every conv op; PyTorch's ``padding=0`` stays one keyword away."""
    x = jnp.asarray(rng.standard_normal((1, 7, 4)).astype(np.float32))
    k = jnp.asarray(rng.standard_normal((3, 2, 4)).astype(np.float32))  # (k, C_out, C_in)
    y = conv_transpose(x, k, stride=2, layout="NWC", transpose_kernel=True)
    ref = jax.lax.conv_transpose(x, k, (2,), "SAME", transpose_kernel=True)
    assert y.shape == ref.shape == (1, 14, 2)
    np.testing.assert_allclose(y, ref, atol=2 * tol("float32", 3 * 4), rtol=0)
    torch_default = conv_transpose(x, k, stride=2, padding=0, layout="NWC", transpose_kernel=True)
    assert torch_default.shape == (1, (7 - 1) * 2 + 3, 2)
    # the geometry and the cost model default as the op does
    assert conv_transpose_padding((3,), stride=2) == conv_transpose_padding(
        (3,), stride=2, padding="SAME"
    )
    assert jaxconv.conv_transpose_cost((7, 4), 2, (3,), stride=2).output_shape == (14, 2)


def test_every_conv_op_module_and_cost_defaults_to_same():
    nn = pytest.importorskip("jaxconv.nn")  # imports Flax, which the test extra installs
    import inspect

    takes_padding = [
        jaxconv.conv,
        jaxconv.conv_spec,
        jaxconv.bottleneck,
        jaxconv.depthwise_conv,
        jaxconv.separable_conv,
        jaxconv.conv_transpose,
        jaxconv.conv_cost,
        jaxconv.bottleneck_cost,
        jaxconv.depthwise_cost,
        jaxconv.separable_cost,
        jaxconv.conv_transpose_cost,
        jaxconv.conv_transpose_padding,
        nn.Conv,
        nn.ConvBN,
        nn.DepthwiseConv,
        nn.SeparableConv,
        nn.ConvTranspose,
        nn.MLPConv,
    ]
    defaults = {
        f.__name__: inspect.signature(f.__init__ if isinstance(f, type) else f)
        .parameters["padding"]
        .default
        for f in takes_padding
    }
    assert defaults == dict.fromkeys(defaults, "SAME")


# --- the transpose of conv -------------------------------------------------------------------


@pytest.mark.parametrize(
    "stride,padding,dilation,groups",
    [
        (2, 1, 1, 1),
        (3, (0, 2), 1, 2),
        (2, 2, 2, 4),
        (1, 0, 1, 1),
    ],
)
def test_transpose_kernel_is_the_vjp_of_conv(rng, stride, padding, dilation, groups):
    """With ``transpose_kernel=True`` and PyTorch padding, conv_transpose(y, w) is the VJP of
    jaxconv.conv(·, w) — the output_padding picks which input size the VJP is for."""
    x = jnp.asarray(rng.standard_normal((2, 9, 8, 4)).astype(np.float32))
    w = jnp.asarray(rng.standard_normal((3, 3, 4 // groups, 8)).astype(np.float32))
    pads = padding if isinstance(padding, int) else (padding, padding)
    kw = dict(stride=stride, dilation=dilation, groups=groups)
    y, vjp = jax.vjp(lambda x: jaxconv.conv(x, w, padding=pads, **kw), x)
    ct = jnp.asarray(rng.standard_normal(y.shape).astype(np.float32))
    (dx,) = vjp(ct)
    base = conv_transpose(ct, w, padding=pads, transpose_kernel=True, **kw)
    extra = tuple(n - m for n, m in zip(dx.shape[1:3], base.shape[1:3]))
    assert all(0 <= a < stride for a in extra), extra
    got = conv_transpose(ct, w, padding=pads, output_padding=extra, transpose_kernel=True, **kw)
    assert got.shape == dx.shape
    np.testing.assert_allclose(got, dx, atol=6 * tol("float32", 3 * 3 * 8), rtol=0)


# --- transformations -------------------------------------------------------------------------


def test_grads(rng):
    x = jnp.asarray(rng.standard_normal((1, 3, 4, 2)))
    w = jnp.asarray(rng.standard_normal((3, 2, 1, 4)))
    b = jnp.asarray(rng.standard_normal(4))
    with jax.enable_x64(True):
        x, w, b = (jnp.asarray(np.asarray(v), jnp.float64) for v in (x, w, b))

        def fn(x, w, b):
            return conv_transpose(
                x,
                w,
                b,
                stride=2,
                padding=(3, 0),
                output_padding=1,
                groups=2,
            )

        check_grads(fn, (x, w, b), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda v: str(v))
def test_grads_float32_against_reference_grads(rng, impl):
    x = jnp.asarray(rng.standard_normal((2, 4, 3, 4)).astype(np.float32))
    w = jnp.asarray(rng.standard_normal((3, 3, 4, 5)).astype(np.float32))
    kwargs = dict(stride=2, padding=1, output_padding=1)
    if not _applies(impl, x=x, w=w, **kwargs):
        pytest.skip(f"{impl} does not apply")
    loss = lambda f: lambda x, w: jnp.sum(f(x, w) ** 2)  # noqa: E731
    got = jax.grad(loss(lambda x, w: conv_transpose(x, w, implementation=impl, **kwargs)), (0, 1))(
        x, w
    )
    want = jax.grad(
        loss(lambda x, w: conv_transpose(x, w, implementation="xla", **kwargs)), (0, 1)
    )(x, w)
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, atol=1e-3, rtol=1e-5)


def test_jit_equals_eager_and_vmap(rng):
    x = jnp.asarray(rng.standard_normal((3, 2, 5, 5, 4)).astype(np.float32))
    w = jnp.asarray(rng.standard_normal((2, 2, 4, 3)).astype(np.float32))
    f = lambda x: conv_transpose(x, w, stride=2, padding=(0, 1), output_padding=1)  # noqa: E731
    eager = jnp.stack([f(v) for v in x])
    atol = 2 * tol("float32", 2 * 2 * 4)
    np.testing.assert_allclose(jax.jit(jax.vmap(f))(x), eager, atol=atol, rtol=0)
    np.testing.assert_allclose(jax.jit(f)(x[0]), eager[0], atol=atol, rtol=0)


def test_bias_fills_zero_outputs(rng):
    """Output positions no input reaches (pads beyond the kernel's reach) hold the bias."""
    x = jnp.ones((1, 2, 1), jnp.float32)
    w = jnp.ones((1, 1, 1), jnp.float32)
    b = jnp.array([0.5], jnp.float32)
    y = conv_transpose(x, w, b, stride=3, padding="VALID", layout="NWC")
    assert y[0, :, 0].tolist() == [1.5, 0.5, 0.5, 1.5, 0.5, 0.5]


def test_empty_batch():
    y = conv_transpose(jnp.ones((0, 4, 4, 2)), jnp.ones((3, 3, 2, 5)), stride=2, padding=1)
    assert y.shape == (0, 7, 7, 5)


def test_padding_helper():
    assert conv_transpose_padding((3, 3), stride=2, padding=1, output_padding=1) == ((1, 2),) * 2
    assert conv_transpose_padding(4, stride=2, padding="VALID") == ((3, 3),)
    assert conv_transpose_padding(1, stride=3, padding="SAME") == ((0, 2),)


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        (
            dict(stride=2, padding=0, output_padding=2),
            ValueError,
            r"`output_padding` \(=2\) must be smaller than either `stride`",
        ),
        (dict(stride=1, dilation=1, padding=0, output_padding=1), ValueError, "smaller than"),
        (
            dict(stride=2, padding="SAME", output_padding=1),
            ValueError,
            "needs an int or per-dim `padding`",
        ),
        (dict(padding="CIRCULAR"), ValueError, "must be 'SAME' or 'VALID'"),
        (dict(padding=-1), ValueError, "must not be negative"),
        (dict(padding=5), ValueError, "output size"),
        (dict(output_padding=-1), ValueError, "output_padding"),
        (dict(groups=3), ValueError, "groups"),
        (dict(transpose_kernel=1), TypeError, "`transpose_kernel` must be a bool"),
        (dict(transpose_kernel=True), ValueError, "with `transpose_kernel=True`"),
        (dict(implementation="einsum"), ValueError, "einsum"),
    ],
)
def test_errors(kwargs, err, match):
    x = jnp.ones((1, 4, 4, 4))
    w = jnp.ones((3, 3, 4, 6))
    with pytest.raises(err, match=match):
        conv_transpose(x, w, **kwargs)


def test_error_rank_and_bias():
    with pytest.raises(ValueError, match="same rank"):
        conv_transpose(jnp.ones((1, 4, 4)), jnp.ones((3, 3, 4, 6)))
    with pytest.raises(ValueError, match=r"`b` must have shape \(6,\)"):
        conv_transpose(jnp.ones((1, 4, 4, 4)), jnp.ones((3, 3, 4, 6)), jnp.ones(4), stride=2)
    with pytest.raises(ValueError, match=r"`b` must have shape \(6,\)"):
        conv_transpose(
            jnp.ones((1, 2, 4)),
            jnp.ones((1, 4, 6)),
            jnp.ones(4),
            stride=3,
            padding="VALID",
            layout="NWC",
        )
