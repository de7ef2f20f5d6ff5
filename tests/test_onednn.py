"""The ``onednn`` lowering (C++ FFI handlers in csrc/): every role against the NumPy float64
reference over 1-, 2- and 3-D convs, both layouts, strides, asymmetric padding, dilation,
input dilation (transposed convs) and groups (depthwise, channel multipliers); bfloat16; IEEE
specials; bias fusion; the transformations (jit, grad of any order, jvp, vmap, AOT, shard_map,
jit over a batch-sharded input); errors; fuzzing.

On Linux x86-64 the extension must have been built and must load: the first test fails, not
skips, when it did not (a suite that silently skips every onednn test is no test)."""

from __future__ import annotations

import functools
import math
import os
import platform
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference
from conftest import run_on_two_cpu_devices, tol

import jaxconv
from jaxconv import convolution as kernels
from jaxconv.convolution.lowerings import onednn as _onednn

LINUX_X86 = sys.platform == "linux" and platform.machine().lower() in ("x86_64", "amd64")


def make_spec(x_shape, w_shape, dtype, **kwargs):
    return kernels.conv_spec(
        jax.ShapeDtypeStruct(x_shape, dtype), jax.ShapeDtypeStruct(w_shape, dtype), **kwargs
    )


def test_extension_builds_and_loads_on_linux_x86_64():
    spec = make_spec((1, 8, 8, 4), (3, 3, 4, 4), "float32")
    reason = kernels.available(spec)["onednn"]
    if not LINUX_X86:
        assert reason is not None
        pytest.skip(f"no oneDNN extension on {sys.platform} {platform.machine()}: {reason}")
    assert reason is None, reason


needs_onednn = pytest.mark.skipif(
    _onednn.unavailable() is not None, reason=str(_onednn.unavailable())
)
pytestmark = needs_onednn if not LINUX_X86 else []


def _case(rng, ndim: int, layout: str) -> dict:
    """One random conv configuration of ``ndim`` spatial dims that the lowering supports."""
    while True:
        groups = int(rng.choice([1, 1, 2, 3]))
        depthwise = rng.random() < 0.25
        c_in = groups * int(rng.integers(1, 4))
        c_out = groups * int(rng.integers(1, 4))
        if depthwise:
            groups, c_in = c_in, c_in
            c_out = c_in * int(rng.integers(1, 3))  # channel multiplier 1 or 2
        kernel = tuple(int(k) for k in rng.integers(1, 4, ndim))
        transposed = rng.random() < 0.3  # input dilation: a oneDNN deconvolution
        cfg = dict(
            x=(int(rng.integers(1, 3)), *(int(s) for s in rng.integers(3, 9, ndim)), c_in),
            w=(*kernel, c_in // groups, c_out),
            stride=(1,) * ndim if transposed else tuple(int(s) for s in rng.integers(1, 4, ndim)),
            dilation=tuple(int(s) for s in rng.choice([1, 1, 2], ndim)),
            input_dilation=tuple(
                int(s) for s in rng.integers(2 if transposed else 1, 4 if transposed else 2, ndim)
            ),
            padding=tuple((int(lo), int(hi)) for lo, hi in rng.integers(0, 3, (ndim, 2))),
            groups=groups,
            layout=layout,
        )
        try:
            spec = make_spec(
                cfg["x"],
                cfg["w"],
                "float32",
                **{
                    k: cfg[k] for k in ("stride", "padding", "dilation", "input_dilation", "groups")
                },
            )
        except ValueError:  # kernel larger than the padded input: draw again
            continue
        if kernels.available(spec)["onednn"] is None:
            return cfg


def _layout_args(cfg: dict, x, w):
    """``x``, ``w`` (NHWC/HWIO) in the case's layout."""
    if cfg["layout"] == "NHWC":
        return x, w
    nd = x.ndim
    return np.moveaxis(x, -1, 1), np.transpose(w, (nd - 1, nd - 2, *range(nd - 2)))


def _from_layout(cfg: dict, y):
    return y if cfg["layout"] == "NHWC" else np.moveaxis(y, 1, -1)


def _kw(cfg: dict) -> dict:
    return dict(
        stride=cfg["stride"],
        padding=cfg["padding"],
        dilation=cfg["dilation"],
        input_dilation=cfg["input_dilation"],
        groups=cfg["groups"],
        layout=cfg["layout"],
    )


CASES = [(nd, layout, seed) for nd in (1, 2, 3) for layout in ("NHWC", "NCHW") for seed in range(6)]


@pytest.mark.parametrize(("ndim", "layout", "seed"), CASES)
def test_every_role_matches_float64_reference(ndim, layout, seed):
    """y, dx and dw (the vjp for a random dy) against float64 NumPy: the forward directly,
    the gradients through the reference's own vjp (autodiff of the float64 conv in jax)."""
    rng = np.random.default_rng(1000 * ndim + seed + (layout == "NCHW"))
    cfg = _case(rng, ndim, layout)
    x = rng.standard_normal(cfg["x"]).astype(np.float32)
    w = rng.standard_normal(cfg["w"]).astype(np.float32)
    want = reference.conv(
        x,
        w,
        stride=cfg["stride"],
        padding=cfg["padding"],
        dilation=cfg["dilation"],
        input_dilation=cfg["input_dilation"],
        groups=cfg["groups"],
    )
    dy = rng.standard_normal(want.shape).astype(np.float32)
    xl, wl = _layout_args(cfg, x, w)
    dyl = _layout_args(cfg, dy, w)[0]

    def f(a, b):
        return jaxconv.conv(a, b, implementation="onednn", **_kw(cfg))

    y, vjp = jax.vjp(f, jnp.asarray(xl), jnp.asarray(wl))
    dx, dw = vjp(jnp.asarray(dyl))
    k = math.prod(cfg["w"][:-2]) * cfg["w"][-2]
    np.testing.assert_allclose(
        _from_layout(cfg, np.asarray(y)), want, rtol=0, atol=tol("float32", k)
    )
    # float64 gradients: the reference conv is linear in each argument, so its vjp is exact.
    with jax.enable_x64(True):

        def ref64(a, b):
            return jaxconv.conv(a, b, implementation="xla", **_kw(cfg))

        _, vjp64 = jax.vjp(ref64, jnp.asarray(xl, jnp.float64), jnp.asarray(wl, jnp.float64))
        dx64, dw64 = (np.asarray(g) for g in vjp64(jnp.asarray(dyl, jnp.float64)))
    k_dx = math.prod(cfg["w"][:-2]) * cfg["w"][-1] // cfg["groups"]
    k_dw = math.prod(want.shape[:-1])
    np.testing.assert_allclose(np.asarray(dx), dx64, rtol=0, atol=tol("float32", k_dx))
    np.testing.assert_allclose(np.asarray(dw), dw64, rtol=0, atol=tol("float32", k_dw))


def test_float64_gradient_reference_is_numpy():
    """The float64 xla conv the gradient test trusts equals the NumPy reference."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 7, 6, 4)), rng.standard_normal((3, 2, 2, 6))
    with jax.enable_x64(True):
        got = jaxconv.conv(
            jnp.asarray(x),
            jnp.asarray(w),
            stride=2,
            padding=((1, 0), (2, 1)),
            groups=2,
            implementation="xla",
        )
    want = reference.conv(x, w, stride=2, padding=((1, 0), (2, 1)), groups=2)
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-12)


@pytest.mark.skipif(not _onednn.native_bf16(), reason="no AVX512_BF16/AMX on this CPU")
@pytest.mark.parametrize("preferred", [None, "float32"])
def test_bfloat16_with_float32_accumulation(preferred, rng):
    x = rng.standard_normal((2, 9, 9, 16)).astype(np.float32)
    w = rng.standard_normal((3, 3, 8, 12)).astype(np.float32)
    xb, wb = jnp.asarray(x, jnp.bfloat16), jnp.asarray(w, jnp.bfloat16)
    want = reference.conv(
        np.asarray(xb, np.float64), np.asarray(wb, np.float64), padding=1, groups=2
    )

    def f(a, b):
        return jaxconv.conv(
            a, b, padding=1, groups=2, preferred_element_type=preferred, implementation="onednn"
        )

    y = f(xb, wb)
    assert y.dtype == jnp.dtype(preferred or "bfloat16")
    k = 9 * 8
    # f32 accumulation: a bfloat16 result is one rounding of the exact sum, an f32 one none.
    atol = tol("float32", k) if preferred else 2**-8 * np.abs(want).max() + tol("float32", k)
    np.testing.assert_allclose(np.asarray(y, np.float64), want, rtol=0, atol=atol)
    dx, dw = jax.grad(lambda a, b: jnp.sum(f(a, b).astype(jnp.float32) ** 2), argnums=(0, 1))(
        xb, wb
    )
    rx, rw = jax.grad(
        lambda a, b: jnp.sum(jaxconv.conv(a, b, padding=1, groups=2, implementation="xla") ** 2),
        argnums=(0, 1),
    )(jnp.asarray(xb, jnp.float32), jnp.asarray(wb, jnp.float32))
    assert dx.dtype == dw.dtype == jnp.bfloat16
    for got, ref in ((dx, rx), (dw, rw)):
        np.testing.assert_allclose(
            np.asarray(got, np.float32),
            np.asarray(ref),
            rtol=0,
            atol=tol("bfloat16", 1) * float(jnp.abs(ref).max()),
        )


def test_ieee_specials_propagate_as_in_the_direct_conv(rng):
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    x[0, 2, 3, 1] = np.nan
    x[1, 5, 5, 0] = np.inf
    x[1, 0, 7, 2] = -np.inf
    w = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    got = np.asarray(jaxconv.conv(jnp.asarray(x), jnp.asarray(w), implementation="onednn"))
    want = np.asarray(jaxconv.conv(jnp.asarray(x), jnp.asarray(w), implementation="xla"))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=0, atol=tol("float32", 27))


@pytest.mark.parametrize(
    ("groups", "c_in", "c_out", "dtype", "amx", "merged"),
    [
        (32, 256, 256, "bfloat16", True, 2),  # ResNeXt's groups of 8 -> groups of 16
        (32, 128, 128, "bfloat16", True, 4),
        (16, 16, 32, "bfloat16", True, 16),  # depthwise, channel multiplier 2
        (5, 10, 20, "bfloat16", True, 5),  # the largest divisor of G that stays <= 16 wide
        (6, 36, 36, "bfloat16", True, 2),  # 6 per group: 2 groups of 6 (12 wide), not 3 (18)
        (32, 32, 32, "bfloat16", True, 1),  # plain depthwise: oneDNN's own kernel is faster
        (8, 128, 128, "bfloat16", True, 1),  # 16 per group already
        (1, 64, 64, "bfloat16", True, 1),
        (32, 256, 256, "float32", True, 1),  # no AMX for float32
        (32, 256, 256, "bfloat16", False, 1),  # AVX512_BF16 without AMX: no tile unit to feed
    ],
)
def test_merged_groups_rule(groups, c_in, c_out, dtype, amx, merged, monkeypatch):
    monkeypatch.setattr(_onednn.lowering, "amx", lambda: amx)
    spec = make_spec((2, 8, 8, c_in), (3, 3, c_in // groups, c_out), dtype, groups=groups)
    assert _onednn.merged_groups(spec) == merged


@pytest.mark.parametrize("channels_last", [True, False])
def test_block_diagonal_kernel(channels_last, rng):
    """Merging m=2 of 4 groups (3 in, 2 out each) puts each group's kernel on the diagonal of
    its merged group and zeros elsewhere; the transpose (for the weight gradient) keeps
    exactly the diagonal blocks."""
    groups, m, cin, cg = 4, 2, 3, 2
    hwio = rng.standard_normal((2, 1, cin, groups * cg)).astype(np.float32)
    want = np.zeros((2, 1, m * cin, groups * cg), np.float32)
    for g in range(groups):
        a = g % m  # the position of group g inside its merged group
        want[:, :, a * cin : (a + 1) * cin, g * cg : (g + 1) * cg] = hwio[
            ..., g * cg : (g + 1) * cg
        ]
    to_oihw = (3, 2, 0, 1)
    w, expect = (
        (hwio, want) if channels_last else (hwio.transpose(to_oihw), want.transpose(to_oihw))
    )
    got = _onednn.lowering._block_diagonal(jnp.asarray(w), groups, m, channels_last)
    np.testing.assert_array_equal(np.asarray(got), expect)
    ct = rng.standard_normal(expect.shape).astype(np.float32)
    _, vjp = jax.vjp(
        lambda v: _onednn.lowering._block_diagonal(v, groups, m, channels_last), jnp.asarray(w)
    )
    np.testing.assert_array_equal(
        np.asarray(vjp(jnp.asarray(ct))[0]), _diagonal_blocks(ct, groups, m, cin, cg, channels_last)
    )


def _diagonal_blocks(full, groups, m, cin, cg, channels_last):
    """The inverse of the block-diagonal layout in NumPy: each group's block back in place."""
    hwio = full if channels_last else full.transpose(2, 3, 1, 0)
    out = np.stack(
        [
            hwio[..., (g % m) * cin : (g % m + 1) * cin, g * cg : (g + 1) * cg]
            for g in range(groups)
        ],
        axis=-2,
    )  # [*k, cin, groups, cg]
    out = out.reshape(*out.shape[:-2], groups * cg)
    return out if channels_last else out.transpose(3, 2, 0, 1)


MERGED_CASES = [
    # (x shape, w shape, conv kwargs): all merge on AMX (see test_merged_groups_rule)
    ((2, 9, 9, 32), (3, 3, 8, 32), dict(groups=4, padding=1)),
    ((2, 9, 9, 32), (3, 3, 4, 32), dict(groups=8, stride=2, padding=((1, 0), (2, 1)))),
    ((2, 9, 9, 16), (3, 3, 1, 32), dict(groups=16, padding=1)),  # channel multiplier 2
    ((2, 32, 9, 9), (32, 8, 3, 3), dict(groups=4, padding=1, layout="NCHW")),
    ((2, 16, 9, 9), (48, 1, 3, 3), dict(groups=16, padding=2, dilation=2, layout="NCHW")),
    ((2, 11, 24), (3, 2, 24), dict(groups=12, padding="SAME")),
    ((1, 5, 5, 5, 12), (3, 3, 3, 4, 12), dict(groups=3, padding="SAME")),
    ((2, 6, 6, 32), (4, 4, 8, 16), dict(groups=4, input_dilation=2, padding=((2, 2), (1, 2)))),
    ((2, 9, 9, 10), (3, 3, 2, 20), dict(groups=5, padding=1)),
]


@pytest.mark.skipif(not _onednn.amx(), reason="no AMX on this CPU: groups are not merged")
@pytest.mark.parametrize(("x_shape", "w_shape", "kw"), MERGED_CASES)
def test_merged_groups_match_float64_reference(x_shape, w_shape, kw, rng):
    """bfloat16 convs whose groups run merged (block diagonal) on AMX: y with a fused bias and
    ReLU against the float64 reference, dx and dw against float64 autodiff."""
    spec = make_spec(x_shape, w_shape, "bfloat16", **kw)
    assert _onednn.merged_groups(spec) > 1
    channels_last = kw.get("layout", "NHWC") == "NHWC"
    x = jnp.asarray(rng.standard_normal(x_shape), jnp.bfloat16)
    w = jnp.asarray(rng.standard_normal(w_shape), jnp.bfloat16)
    b = jnp.asarray(rng.standard_normal(spec.out_channels), jnp.bfloat16)
    x64, w64, b64 = (np.asarray(v, np.float64) for v in (x, w, b))
    if not channels_last:  # the reference is channels-last
        nd = x.ndim
        x64, w64 = np.moveaxis(x64, 1, -1), np.transpose(w64, (*range(2, nd), 1, 0))
    ref_kw = {k: v for k, v in kw.items() if k != "layout"}
    if isinstance(ref_kw.get("padding"), str):
        ref_kw["padding"] = [tuple(p) for p in spec.padding]
    want = np.maximum(reference.conv(x64, w64, b64, **ref_kw), 0)
    if not channels_last:
        want = np.moveaxis(want, -1, 1)
    y = jax.jit(
        lambda a, c, d: jaxconv.conv(a, c, d, activation=jax.nn.relu, implementation="onednn", **kw)
    )(x, w, b)
    k = math.prod(spec.kernel) * spec.in_channels // spec.groups
    atol = 2**-8 * np.abs(want).max() + tol("float32", k)
    np.testing.assert_allclose(np.asarray(y, np.float64), want, rtol=0, atol=atol)

    dy = jnp.asarray(rng.standard_normal(spec.out_shape), jnp.float32)

    def loss(impl, a, c):
        return jnp.sum(jaxconv.conv(a, c, implementation=impl, **kw).astype(dy.dtype) * dy)

    dx, dw = jax.grad(functools.partial(loss, "onednn"), argnums=(0, 1))(x, w)
    with jax.enable_x64(True):
        rx, rw = jax.grad(functools.partial(loss, "xla"), argnums=(0, 1))(
            jnp.asarray(x, jnp.float64), jnp.asarray(w, jnp.float64)
        )
    for got, ref in ((dx, rx), (dw, rw)):
        np.testing.assert_allclose(
            np.asarray(got, np.float64),
            np.asarray(ref),
            rtol=0,
            atol=tol("bfloat16", 1) * float(np.abs(np.asarray(ref)).max()),
        )


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_bias_is_fused_and_differentiable(layout, rng):
    x = jnp.asarray(
        rng.standard_normal((2, 6, 6, 4) if layout == "NHWC" else (2, 4, 6, 6)), jnp.float32
    )
    w = jnp.asarray(
        rng.standard_normal((3, 3, 4, 5) if layout == "NHWC" else (5, 4, 3, 3)), jnp.float32
    )
    b = jnp.asarray(rng.standard_normal(5), jnp.float32)

    def loss(impl):
        return lambda a, c, d: jnp.sum(
            jnp.sin(jaxconv.conv(a, c, d, layout=layout, implementation=impl))
        )

    text = (
        jax.jit(lambda a, c, d: jaxconv.conv(a, c, d, layout=layout, implementation="onednn"))
        .lower(x, w, b)
        .as_text()
    )
    assert text.count("jaxconv_onednn_fwd") == 1 and "add" not in text.split("jaxconv_onednn")[-1]
    for got, want in zip(
        jax.grad(loss("onednn"), argnums=(0, 1, 2))(x, w, b),
        jax.grad(loss("xla"), argnums=(0, 1, 2))(x, w, b),
    ):
        np.testing.assert_allclose(got, want, rtol=0, atol=tol("float32", 36 * 5))


def test_bias_post_op_then_relu_and_their_gradient(rng):
    x = jnp.asarray(rng.standard_normal((2, 6, 6, 4)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 4, 5)), jnp.float32)
    b = jnp.asarray(rng.standard_normal(5), jnp.float32)
    spec = make_spec(x.shape, w.shape, "float32")

    def fused(a, c, d):
        return kernels.run(kernels.Plan("onednn", "onednn", "onednn"), a, c, spec, d, relu=True)

    def plain(a, c, d):
        return jax.nn.relu(jaxconv.conv(a, c, d, implementation="xla"))

    np.testing.assert_allclose(fused(x, w, b), plain(x, w, b), rtol=0, atol=tol("float32", 36))
    for got, want in zip(
        jax.grad(lambda *a: jnp.sum(fused(*a) ** 2), argnums=(0, 1, 2))(x, w, b),
        jax.grad(lambda *a: jnp.sum(plain(*a) ** 2), argnums=(0, 1, 2))(x, w, b),
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


# --- the bottleneck as one call -----------------------------------------------------------
#
# Batch 1 runs the two convs on the whole batch; a batch of at least two images per OpenMP
# thread runs them image by image on each thread (BottleneckImpl): both paths are tested.
_SPLIT_BATCH = 2 * (os.cpu_count() or 1) + 1


def _bottleneck_args(rng, batch, layout="NHWC"):
    x = rng.standard_normal((batch, 7, 6, 12))
    w_r, b_r = rng.standard_normal((12, 4)) / 3, rng.standard_normal(4)
    w_s, b_s = rng.standard_normal((3, 3, 4, 6)) / 6, rng.standard_normal(6)
    want = reference.conv(
        np.maximum(reference.conv(x, w_r[None, None], b_r), 0), w_s, b_s, padding="SAME"
    )
    if layout == "NCHW":
        x, w_r, w_s, want = (
            x.transpose(0, 3, 1, 2),
            w_r.T,
            w_s.transpose(3, 2, 0, 1),
            want.transpose(0, 3, 1, 2),
        )
    as32 = functools.partial(jnp.asarray, dtype=jnp.float32)
    return [as32(a) for a in (x, w_r, w_s, b_r, b_s)], want


@pytest.mark.parametrize("batch", [1, _SPLIT_BATCH])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_bottleneck_is_one_onednn_call_equal_to_float64(rng, batch, layout):
    (x, w_r, w_s, b_r, b_s), want = _bottleneck_args(rng, batch, layout)
    f = lambda *a: jaxconv.bottleneck(*a, layout=layout)  # noqa: E731
    jaxpr = str(jax.make_jaxpr(f)(x, w_r, w_s, b_r, b_s))
    assert jaxpr.count("onednn_bottleneck") == 1 and "onednn_conv" not in jaxpr, jaxpr
    atol = tol("float32", 9 * 4 * 12)
    np.testing.assert_allclose(jax.jit(f)(x, w_r, w_s, b_r, b_s), want, rtol=0, atol=atol)
    # without biases or activation: the same one call
    got = jaxconv.bottleneck(x, w_r, w_s, layout=layout, activation=None)
    want = jaxconv.bottleneck(
        x,
        w_r,
        w_s,
        layout=layout,
        activation=None,
        implementation="xla",
        reduce_implementation="xla",
    )
    np.testing.assert_allclose(got, want, rtol=0, atol=atol)


@pytest.mark.parametrize("batch", [1, _SPLIT_BATCH])
def test_bottleneck_one_call_fuses_the_relu_after_the_kxk(rng, batch):
    """``out_activation=jax.nn.relu`` is a post-op of the same one call (Inception's branch,
    both ReLUs), equal to the float64 reference; another activation runs after it in XLA."""
    (x, w_r, w_s, b_r, b_s), want = _bottleneck_args(rng, batch)
    f = lambda *a, act=jax.nn.relu: jaxconv.bottleneck(*a, out_activation=act)  # noqa: E731
    jaxpr = str(jax.make_jaxpr(f)(x, w_r, w_s, b_r, b_s))
    assert jaxpr.count("onednn_bottleneck") == 1 and "max" not in jaxpr, jaxpr
    atol = tol("float32", 9 * 4 * 12)
    got = jax.jit(f)(x, w_r, w_s, b_r, b_s)
    np.testing.assert_allclose(got, np.maximum(want, 0), rtol=0, atol=atol)
    np.testing.assert_allclose(f(x, w_r, w_s, b_r, b_s, act=jnp.tanh), np.tanh(want), atol=atol)

    # derivatives are the two convs' with their ReLUs
    def loss(impl, *a):
        kw = {} if impl is None else dict(implementation=impl, reduce_implementation=impl)
        return jnp.sum(jnp.sin(jaxconv.bottleneck(*a, out_activation=jax.nn.relu, **kw)))

    args = (x, w_r, w_s, b_r, b_s)
    for got, want in zip(
        jax.grad(functools.partial(loss, None), argnums=range(5))(*args),
        jax.grad(functools.partial(loss, "xla"), argnums=range(5))(*args),
    ):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # NaN through both post-ops, where the unfused bottleneck has it
    x = x.at[batch - 1, 3, 2, 5].set(jnp.nan)
    plain = jax.nn.relu(
        jaxconv.bottleneck(x, w_r, w_s, b_r, b_s, implementation="xla", reduce_implementation="xla")
    )
    got = np.asarray(jax.jit(f)(x, w_r, w_s, b_r, b_s))
    assert np.isnan(plain).any()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(plain))


def test_bottleneck_out_activation_must_be_callable(rng):
    (x, w_r, w_s, *_), _ = _bottleneck_args(rng, 1)
    with pytest.raises(TypeError, match="`out_activation` must be a callable or None, got 'relu'"):
        jaxconv.bottleneck(x, w_r, w_s, out_activation="relu")


@pytest.mark.parametrize("batch", [1, _SPLIT_BATCH])
def test_bottleneck_one_call_propagates_nan(rng, batch):
    (x, w_r, w_s, b_r, b_s), _ = _bottleneck_args(rng, batch)
    x = x.at[batch - 1, 3, 2, 5].set(jnp.nan)
    y = np.asarray(jax.jit(lambda a: jaxconv.bottleneck(a, w_r, w_s, b_r, b_s))(x))
    plain = jaxconv.bottleneck(
        x, w_r, w_s, b_r, b_s, implementation="xla", reduce_implementation="xla"
    )
    np.testing.assert_array_equal(np.isnan(y), np.isnan(plain))
    assert np.isnan(y[batch - 1, 2:5, 1:4]).all() and not np.isnan(y[: batch - 1]).any()


def test_bottleneck_one_call_differentiates_as_the_two_convs(rng):
    """Every derivative, of any order, is the unfused bottleneck's (its two oneDNN convs)."""
    (x, w_r, w_s, b_r, b_s), _ = _bottleneck_args(rng, 2)
    args = (x, w_r, w_s, b_r, b_s)

    def loss(impl, *a):
        kw = {} if impl is None else dict(implementation=impl, reduce_implementation=impl)
        return jnp.sum(jnp.sin(jaxconv.bottleneck(*a, **kw)))

    for got, want in zip(
        jax.grad(functools.partial(loss, None), argnums=range(5))(*args),
        jax.grad(functools.partial(loss, "xla"), argnums=range(5))(*args),
    ):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)

    # second order through both weights (no activation: the output is bilinear in them)
    def scaled(impl, s):
        kw = {} if impl is None else dict(implementation=impl, reduce_implementation=impl)
        return jnp.sum(jaxconv.bottleneck(x, s * w_r, s * w_s, b_r, b_s, activation=None, **kw))

    second = [jax.grad(jax.grad(functools.partial(scaled, i)))(1.5) for i in (None, "xla")]
    assert abs(float(second[0])) > 1e-3
    np.testing.assert_allclose(second[0], second[1], rtol=1e-4)


def test_bottleneck_one_call_vmaps_and_exports_as_standard_ops(rng):
    (x, w_r, w_s, b_r, b_s), want = _bottleneck_args(rng, 4)
    atol = tol("float32", 9 * 4 * 12)
    f = lambda a, r=w_r: jaxconv.bottleneck(a, r, w_s, b_r, b_s)  # noqa: E731
    folded = jax.vmap(f)(x.reshape(2, 2, 7, 6, 12))
    np.testing.assert_allclose(folded.reshape(want.shape), want, rtol=0, atol=atol)
    per_kernel = jax.vmap(f)(x[:, None], jnp.stack([w_r] * 4))  # one call per element
    np.testing.assert_allclose(per_kernel.reshape(want.shape), want, rtol=0, atol=atol)
    exported = jax.export.export(jax.jit(f))(x)
    assert "stablehlo.custom_call" not in exported.mlir_module()
    np.testing.assert_allclose(exported.call(x), want, rtol=0, atol=atol)


def test_bottleneck_runs_as_two_convs_where_one_call_does_not_apply(rng):
    (x, w_r, w_s, b_r, b_s), _ = _bottleneck_args(rng, 2)
    for kwargs in (
        dict(activation=jnp.tanh),
        dict(reduce_implementation="einsum"),
        dict(implementation="xla"),
    ):
        jaxpr = str(
            jax.make_jaxpr(functools.partial(jaxconv.bottleneck, **kwargs))(x, w_r, w_s, b_r, b_s)
        )
        assert "onednn_bottleneck" not in jaxpr, kwargs
    bf16 = [a.astype(jnp.bfloat16) for a in (x, w_r, w_s)]
    assert "onednn_bottleneck" not in str(jax.make_jaxpr(jaxconv.bottleneck)(*bf16))
    empty = jaxconv.bottleneck(x[:0], w_r, w_s, b_r, b_s)
    assert empty.shape == (0, 7, 6, 6)


# --- transformations ---------------------------------------------------------------------

X = np.random.default_rng(0).standard_normal((2, 7, 7, 4)).astype(np.float32)
W = np.random.default_rng(1).standard_normal((3, 3, 4, 6)).astype(np.float32)


def _both(fn):
    return fn("onednn"), fn("xla")


def test_second_order_gradients_stay_on_onednn():
    def hessian_vector(impl):
        def inner(a, b):
            return jnp.sum(jaxconv.conv(a, b, stride=2, implementation=impl) ** 2)

        return jax.grad(lambda a: jnp.sum(jax.grad(inner, argnums=1)(a, W) ** 2))(X)

    got, want = _both(hessian_vector)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3 * float(jnp.abs(want).max()))
    jaxpr = str(
        jax.make_jaxpr(
            lambda a: jax.grad(lambda b: jnp.sum(jaxconv.conv(a, b, implementation="onednn") ** 2))(
                W
            )
        )(X)
    )
    assert "conv_general_dilated" not in jaxpr and "onednn_conv_bwd_weights" in jaxpr


def test_forward_mode_jvp():
    tx, tw = np.ones_like(X), np.full_like(W, 0.5)
    got, want = _both(
        lambda impl: jax.jvp(
            lambda a, b: jaxconv.conv(a, b, implementation=impl), (X, W), (tx, tw)
        )[1]
    )
    np.testing.assert_allclose(got, want, rtol=0, atol=tol("float32", 36) * 4)


def test_vmap_folds_a_mapped_input_into_the_batch():
    xs = np.stack([X, 2 * X, -X])
    f = jax.vmap(lambda a: jaxconv.conv(a, W, implementation="onednn"))
    got = f(xs)
    want = jaxconv.conv(xs.reshape(6, 7, 7, 4), W, implementation="xla").reshape(got.shape)
    np.testing.assert_allclose(got, want, rtol=0, atol=tol("float32", 36))
    text = jax.jit(f).lower(xs).as_text()
    assert text.count("jaxconv_onednn_fwd") == 1 and "while" not in text


def test_vmap_of_per_example_gradients_and_mapped_weights():
    xs, ws = np.stack([X, 2 * X]), np.stack([W, -W])

    def per_example(impl):
        return jax.vmap(
            jax.grad(
                lambda a, b: jnp.sum(jaxconv.conv(a[None], b, implementation=impl) ** 2),
                argnums=(0, 1),
            ),
            in_axes=(0, None),
        )(X, W)

    for got, want in zip(*_both(per_example)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)
    got, want = _both(
        lambda impl: jax.vmap(lambda a, b: jaxconv.conv(a, b, implementation=impl))(xs, ws)
    )
    np.testing.assert_allclose(got, want, rtol=0, atol=tol("float32", 36))


def test_jit_aot_and_no_rebuild_on_a_second_call():
    f = jax.jit(lambda a, b: jaxconv.conv(a, b, padding=((0, 2), (1, 0)), implementation="onednn"))
    compiled = f.lower(X, W).compile()
    y = compiled(X, W)
    built = _onednn.cache_size()
    for _ in range(2):
        np.testing.assert_array_equal(f(X, W), y)
        np.testing.assert_array_equal(compiled(X + 0, W), y)
    assert _onednn.cache_size() == built
    assert f._cache_size() == 1  # one trace for every call with equal shapes


def test_eager_calls_match_jit():
    x, w = jnp.asarray(X), jnp.asarray(W)
    eager = jaxconv.conv(x, w, implementation="onednn")
    np.testing.assert_array_equal(
        eager, jax.jit(lambda a, b: jaxconv.conv(a, b, implementation="onednn"))(x, w)
    )


def test_plan_mixing_onednn_and_xla_roles(rng):
    spec = make_spec(X.shape, W.shape, "float32")
    mixed = kernels.Plan("onednn", "xla", "onednn")
    dy = rng.standard_normal(spec.out_shape).astype(np.float32)
    got = jax.vjp(lambda a, b: kernels.run(mixed, a, b, spec), X, W)[1](dy)
    want = jax.vjp(lambda a, b: kernels.get("xla").fwd(a, b, spec), X, W)[1](dy)
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=0, atol=tol("float32", 2 * 49 * 6))


def test_batch_sharded_conv_runs_per_shard_without_gathering():
    """On two CPU devices, under shard_map and under jit with a batch-sharded input, each
    device runs oneDNN on its half of the batch: no all-gather, dw summed across devices."""
    script = textwrap.dedent("""
        import jax, jax.numpy as jnp, numpy as np, jaxconv
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        mesh = Mesh(np.array(jax.devices()), ("data",))
        x = np.random.default_rng(0).standard_normal((4, 9, 9, 3)).astype(np.float32)
        w = np.random.default_rng(1).standard_normal((3, 3, 3, 5)).astype(np.float32)
        b = np.arange(5, dtype=np.float32)
        def loss(a, c, impl="onednn"):
            return jnp.sum(jaxconv.conv(a, c, b, implementation=impl) ** 2)
        want_y = jaxconv.conv(x, w, b, implementation="xla")
        want = jax.grad(loss, (0, 1))(x, w, "xla")
        # check_vma: the gradient of the replicated kernel comes back summed over devices,
        # as lax's does (an explicit psum would count it twice)
        mapped = jax.jit(jax.shard_map(
            lambda a, c: jax.grad(loss, 1)(a, c),
            mesh=mesh, in_specs=(P("data"), P()), out_specs=P()))
        xs = jax.device_put(x, NamedSharding(mesh, P("data")))
        ws = jax.device_put(w, NamedSharding(mesh, P()))
        fwd = jax.jit(lambda a, c: jaxconv.conv(a, c, b, implementation="onednn"))
        grads = jax.jit(jax.grad(loss, (0, 1)))
        for f, args in ((mapped, (x, w)), (fwd, (xs, ws)), (grads, (xs, ws))):
            text = f.lower(*args).compile().as_text()
            assert "all-gather" not in text and "jaxconv_onednn" in text, text
        np.testing.assert_allclose(mapped(x, w), want[1], rtol=1e-5, atol=1e-3)
        y = fwd(xs, ws)
        assert y.sharding.spec[0] == "data", y.sharding
        np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-4)
        for got, ref in zip(grads(xs, ws), want):
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-3)
        print("ok", jax.device_count())
    """)
    assert run_on_two_cpu_devices(script).split() == ["ok", "2"]


def test_primitives_are_built_with_every_openmp_thread(rng):
    """oneDNN fixes some kernels' work split by the OpenMP thread count of the thread that
    builds the primitive (brdgmm's depthwise among them): every primitive here is built with
    the process's count — on XLA's threads as on the caller's, forward and gradients, and the
    one-call bottleneck's per-thread ones inside its parallel region."""
    from jaxconv.convolution.lowerings.onednn import library

    x = jnp.asarray(rng.standard_normal((1, 9, 9, 8)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 1, 8)), jnp.float32)
    depthwise = jax.grad(lambda a, c: jnp.sum(jaxconv.conv(a, c, groups=8) ** 2), (0, 1))
    jax.block_until_ready(jax.jit(depthwise)(x, w))
    (xb, w_r, w_s, b_r, b_s), _ = _bottleneck_args(rng, _SPLIT_BATCH)
    jax.block_until_ready(jax.jit(jaxconv.bottleneck)(xb, w_r, w_s, b_r, b_s))
    seen = library.build_threads()
    assert seen is not None and seen.builds >= 3, seen
    assert seen.fewest == seen.most == seen.here >= 1, seen
    if seen.here > 1:  # the bottleneck split its batch over the threads: built inside the region
        assert seen.in_parallel >= 2, seen


def test_primitives_run_from_many_threads():
    """jit and eager calls from threads that come and go: a primitive built on one thread runs
    on others (a crash, not a wrong value, is what this caught: oneDNN's own scratchpad is
    thread-local to the creating thread; the extension now brings its own)."""
    script = textwrap.dedent("""
        import threading, jax, jax.numpy as jnp, numpy as np, jaxconv
        x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 12, 7, 7)), jnp.float32)
        w = jnp.asarray(np.random.default_rng(1).standard_normal((6, 4, 3, 3)), jnp.float32)
        b = jnp.ones(6)
        def conv(a, s, impl=None):
            return jaxconv.conv(a, w, b, stride=s, layout="NCHW", groups=3, implementation=impl)
        def run(i):
            for j in range(12):
                s = (i + j) % 3 + 1
                g = jax.grad(lambda a: jnp.sum(conv(a, s) ** 2))(x)
                jax.block_until_ready((conv(x, s), g))
        for _ in range(6):
            threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
            [t.start() for t in threads]
            [t.join() for t in threads]
        np.testing.assert_allclose(conv(x, 2), conv(x, 2, "xla"), rtol=0, atol=1e-4)
        print("ok")
    """)
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert out.returncode == 0 and out.stdout.split() == ["ok"], (
        out.returncode,
        out.stderr[-3000:],
    )


# --- empty batches, errors, fuzzing ------------------------------------------------------


def test_zero_size_batch_gives_an_empty_result():
    x = np.zeros((0, 7, 7, 4), np.float32)
    y = jaxconv.conv(x, W, implementation="onednn")
    assert y.shape == (0, 7, 7, 6)
    g = jax.grad(lambda b: jnp.sum(jaxconv.conv(x, b) ** 2))(W)
    assert g.shape == W.shape and not np.any(g)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((np.zeros((1, 8, 8, 4)), np.zeros((3, 3, 4, 4))), {}, r"float32 or bfloat16.*float64"),
        (
            (np.zeros((1, 8, 8, 4), np.float16), np.zeros((3, 3, 4, 4), np.float16)),
            {},
            r"float32 or bfloat16.*float16",
        ),
        (
            (X, W),
            dict(input_dilation=2, stride=2),
            r"`implementation` \(='onednn'\) does not "
            r"apply: onednn needs stride 1 with input_dilation \(2, 2\), got stride \(2, 2\)",
        ),
        (
            (X, W),
            dict(input_dilation=2, padding=3),
            r"needs padding <= \(kernel - 1\)·dilation "
            r"\(2, 2\) with input dilation, got \(\(3, 3\), \(3, 3\)\)",
        ),
        ((X, W), dict(padding=((-1, 0), (0, 0))), r"needs non-negative padding"),
    ],
)
def test_inapplicable_requests_raise_before_any_ffi_call(args, kwargs, match):
    with jax.enable_x64(True):
        x, w = (jnp.asarray(a) for a in args)
        with pytest.raises(ValueError, match=match):
            jaxconv.conv(x, w, implementation="onednn", **kwargs)


def test_internal_onednn_failure_is_a_runtime_error_with_the_shapes():
    geometry = _onednn.Geometry((1, 1), (0, 0), (0, 0), (1, 1), 1, True)
    dy = jnp.ones((1, 5, 5, 6), jnp.float32)
    with pytest.raises(
        RuntimeError,
        match=r"onednn input gradient failed for shapes "
        r"\(1, 5, 5, 6\), \(3, 3, 4, 6\) -> \(1, 9, 9, 4\)",
    ):
        # An input shape that this conv cannot have produced dy from: oneDNN refuses.
        jax.block_until_ready(
            _onednn.backward_data(dy, jnp.asarray(W), geometry, (1, 9, 9, 4), jnp.float32)
        )


def test_fuzz_strides_kernels_and_paddings_against_xla():
    """Huge strides, kernels larger than the unpadded input, odd and lopsided paddings, input
    dilation: the same result as xla where onednn applies, a clear ValueError where not."""
    rng = np.random.default_rng(11)
    for _ in range(40):
        ndim = int(rng.integers(1, 4))
        n = tuple(int(v) for v in rng.integers(1, 6, ndim))
        k = tuple(int(v) for v in rng.integers(1, 8, ndim))
        pads = tuple((int(a), int(b)) for a, b in rng.integers(0, 7, (ndim, 2)))
        stride = tuple(int(v) for v in rng.choice([1, 2, 5, 100], ndim))
        dil = tuple(int(v) for v in rng.choice([1, 2, 3], ndim))
        in_dil = tuple(int(v) for v in rng.choice([1, 1, 2, 4], ndim))
        x = rng.standard_normal((2, *n, 3)).astype(np.float32)
        w = rng.standard_normal((*k, 3, 2)).astype(np.float32)
        kw = dict(stride=stride, padding=pads, dilation=dil, input_dilation=in_dil)
        try:
            spec = make_spec(x.shape, w.shape, "float32", **kw)
        except ValueError:
            continue  # jaxconv.conv raises this before any lowering (tested in test_errors)
        if kernels.available(spec)["onednn"] is not None:
            with pytest.raises(ValueError, match="does not apply"):
                jaxconv.conv(x, w, implementation="onednn", **kw)
            continue

        def loss(a, w=w, kw=kw, impl="onednn"):
            return jnp.sum(jaxconv.conv(a, w, implementation=impl, **kw))

        want = jaxconv.conv(x, w, implementation="xla", **kw)
        got = jaxconv.conv(x, w, implementation="onednn", **kw)
        np.testing.assert_allclose(got, want, rtol=0, atol=tol("float32", math.prod(k) * 3))
        gx, rx = jax.grad(loss)(x), jax.grad(functools.partial(loss, impl="xla"))(x)
        np.testing.assert_allclose(gx, rx, rtol=0, atol=tol("float32", math.prod(k) * 2))


def test_grad_of_grad_through_the_fused_bias_and_relu(rng):
    """The fused forward has no derivative rule of its own: kernels.run differentiates itself,
    so second derivatives of conv + bias + ReLU on oneDNN equal xla's."""
    x = jnp.asarray(rng.standard_normal((2, 6, 6, 3)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 3, 4)) * 0.2, jnp.float32)
    b = jnp.asarray(rng.standard_normal(4), jnp.float32)

    def second(impl):
        def loss(x):
            y = jaxconv.conv(x, w, b, activation=jax.nn.relu, implementation=impl)
            return jnp.sum(y**3)

        return jax.grad(lambda x: jnp.sum(jax.grad(loss)(x) ** 2))(x)

    np.testing.assert_allclose(second("onednn"), second("xla"), rtol=1e-4, atol=1e-3)
