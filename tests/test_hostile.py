"""The oneDNN path keeps the promises ``lax.conv_general_dilated`` keeps, tried as a hostile
user and as a JAX power user would (issue 23). One section per promise:

1. geometry oneDNN keeps in 32 bits is declined (XLA runs it) — no crash, no wrong value;
2. NaN propagates through every fused activation, forward and gradients; Inf·zero padding is
   the one documented difference (README, "Semantics and export");
3. every transformation on the default path equals ``implementation="xla"``;
4. ``shard_map`` (``check_vma=True``), ``pmap`` and sharded ``jit``;
5. ``jax.export`` of functions, modules and models, on every platform, without custom calls;
6. loading that cannot be hijacked and always falls back;
7. bounded native state: an LRU primitive cache, a bounded scratchpad, safe eviction.

Anything that could take the process down runs in a subprocess. (Sizes that would abort XLA
itself are swept in ``test_size_limits.py``.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tol
from flax import nnx

import jaxconv
from jaxconv import convolution as kernels
from jaxconv import nn as jnn
from jaxconv.convolution.lowerings import onednn

needs_onednn = pytest.mark.skipif(
    onednn.unavailable() is not None, reason=f"onednn: {onednn.unavailable()}"
)


def _python(script: str, *, cwd=None, timeout=300, **env) -> subprocess.CompletedProcess:
    """``script`` in a fresh interpreter on the CPU (``env`` added to a minimal environment)."""
    base = {"JAX_PLATFORMS": "cpu", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**base, **env},
        timeout=timeout,
    )


def _spec(x_shape, w_shape, dtype="float32", **kwargs):
    return kernels.conv_spec(
        jax.ShapeDtypeStruct(x_shape, dtype), jax.ShapeDtypeStruct(w_shape, dtype), **kwargs
    )


# --- 1. 32-bit geometry ---------------------------------------------------------------------

LIMIT = 2**31

#: (what the reason names, a conv just inside the limit, the same conv just past it)
BOUNDS = [
    (
        "stride[0]",
        dict(x=(1, 5, 5, 2), w=(2, 2, 2, 3), stride=(LIMIT - 1, 1), padding="VALID"),
        dict(x=(1, 5, 5, 2), w=(2, 2, 2, 3), stride=(LIMIT, 1), padding="VALID"),
    ),
    (
        "dilation[1]",
        dict(x=(1, 5, 5, 1), w=(1, 2, 1, 1), dilation=(1, 2**26), padding="SAME"),
        dict(x=(1, 5, 5, 1), w=(1, 2, 1, 1), dilation=(1, LIMIT), padding="SAME"),
    ),
    (
        "padding[0]",
        dict(x=(1, 5, 5, 1), w=(1, 1, 1, 1), padding=((2**26, 0), (0, 0))),
        dict(x=(1, 5, 5, 1), w=(1, 1, 1, 1), padding=((LIMIT, 0), (0, 0))),
    ),
    (
        "input size[0]",
        dict(x=(1, 2**29 - 1, 1, 1), w=(1, 1, 1, 1), padding="VALID"),
        dict(x=(1, LIMIT, 1, 1), w=(1, 1, 1, 1), padding="VALID"),
    ),
    (
        "the batch",
        dict(x=(LIMIT - 1, 1, 1, 1), w=(1, 1, 1, 1), padding="VALID"),
        dict(x=(LIMIT, 1, 1, 1), w=(1, 1, 1, 1), padding="VALID"),
    ),
    (
        "input channels",
        dict(x=(1, 1, 1, 2**29 - 1), w=(1, 1, 2**29 - 1, 1), padding="VALID"),
        dict(x=(1, 1, 1, LIMIT), w=(1, 1, LIMIT, 1), padding="VALID"),
    ),
    (
        "one padded input image's bytes",  # 4-byte floats: 2**29 elements is the limit
        dict(x=(1, 2**14, 2**15 - 1, 1), w=(1, 1, 1, 1), padding="VALID"),
        dict(x=(1, 2**14, 2**15, 1), w=(1, 1, 1, 1), padding="VALID"),
    ),
    (
        "one output image's bytes",
        dict(x=(1, 2**14, 2**13, 1), w=(1, 1, 1, 3), padding="VALID"),
        dict(x=(1, 2**14, 2**13, 1), w=(1, 1, 1, 4), padding="VALID"),
    ),
    (
        "the kernel's bytes",
        dict(x=(1, 1, 1, 2**14), w=(1, 1, 2**14, 2**15 - 1), padding="VALID"),
        dict(x=(1, 1, 1, 2**14), w=(1, 1, 2**14, 2**15), padding="VALID"),
    ),
    (
        "input_dilation[0] times one input row's bytes",  # oneDNN's deconvolution failed
        dict(x=(1, 2, 1, 4), w=(1, 1, 4, 1), input_dilation=(2**27 - 1, 1), padding="VALID"),
        dict(x=(1, 2, 1, 4), w=(1, 1, 4, 1), input_dilation=(2**27, 1), padding="VALID"),
    ),
    (
        "input_dilation[0]",
        dict(x=(1, 2, 1, 1), w=(1, 1, 1, 1), input_dilation=(2**28, 1), padding="VALID"),
        dict(x=(1, 2, 1, 1), w=(1, 1, 1, 1), input_dilation=(LIMIT, 1), padding="VALID"),
    ),
]


@pytest.mark.parametrize("name, inside, outside", BOUNDS, ids=[b[0] for b in BOUNDS])
def test_int32_limit_both_sides(name, inside, outside):
    """Nothing allocated: the rule reads shapes only. Just inside, the rule is silent (another
    value may still be past it, never this one); just past, the reason names this value —
    unless it is past XLA's own 32-bit geometry too, which conv_spec refuses for every
    lowering (tests/test_size_limits.py), so oneDNN never sees it."""
    inside, outside = dict(inside), dict(outside)
    spec = _spec(inside.pop("x"), inside.pop("w"), **inside)
    assert name not in (onednn.int32_problem(spec) or "")
    try:
        spec = _spec(outside.pop("x"), outside.pop("w"), **outside)
    except ValueError as e:
        assert "must be < 2**31" in str(e) or "must lie in (-2**31, 2**31)" in str(e), e
        return
    why = onednn.int32_problem(spec)
    assert why is not None and name in why and "2**31" in why


def test_int32_limit_is_silent_for_real_convs():
    for x, w in (((256, 224, 224, 3), (7, 7, 3, 64)), ((32, 14, 14, 480), (5, 5, 480, 48))):
        assert onednn.int32_problem(_spec(x, w, stride=2)) is None


@needs_onednn
def test_past_the_limit_the_default_is_lax_and_onednn_is_refused():
    """The issue's crash (dilation 1431655766: SIGSEGV inside oneDNN) runs on XLA, exact;
    asking for onednn there is a ValueError naming it. Its wrong values (dilation 2**32 + 1,
    (2**31, 1)) are past XLA's own 32-bit geometry too (lax's weight gradient is wrong there):
    a ValueError naming `dilation` whatever the implementation (tests/test_size_limits.py)."""
    out = _python("""
        import jax, jax.numpy as jnp, numpy as np, jaxconv
        rng = np.random.default_rng(0)
        for kw in (dict(dilation=2**32 + 1), dict(dilation=(2**31, 1))):
            x = jnp.asarray(rng.standard_normal((1, 5, 5, 2)), jnp.float32)
            w = jnp.asarray(rng.standard_normal((3, 3, 2, 3)), jnp.float32)
            for impl in (None, "xla", "onednn"):
                try:
                    jaxconv.conv(x, w, implementation=impl, **kw)
                except ValueError as e:
                    assert "`dilation`" in str(e) and "2**31" in str(e), e
                else:
                    raise AssertionError(f"{impl} ran {kw}")
        cases = [((1, 6, 5, 2), (2, 2, 2, 3), dict(dilation=(1431655766, 1)))]
        for xs, ws, kw in cases:
            x = jnp.asarray(rng.standard_normal(xs), jnp.float32)
            w = jnp.asarray(rng.standard_normal(ws), jnp.float32)
            assert jaxconv.explain(x, w, **kw).plan.fwd == "xla", kw
            np.testing.assert_array_equal(
                jaxconv.conv(x, w, **kw), jaxconv.conv(x, w, implementation="xla", **kw))
            try:
                jaxconv.conv(x, w, implementation="onednn", **kw)
            except ValueError as e:
                assert "`implementation`" in str(e) and "2**31" in str(e), e
            else:
                raise AssertionError(f"onednn ran {kw}")
        # just inside: oneDNN runs it, and agrees with lax
        x = jnp.asarray(rng.standard_normal((2, 5, 5, 2)), jnp.float32)
        w = jnp.asarray(rng.standard_normal((2, 2, 2, 3)), jnp.float32)
        kw = dict(stride=(2**31 - 1, 1), padding="VALID")
        assert jaxconv.explain(x, w, **kw).plan.fwd == "onednn"
        np.testing.assert_allclose(jaxconv.conv(x, w, **kw),
                                   jaxconv.conv(x, w, implementation="xla", **kw), atol=1e-5)
        # an input dilation (oneDNN's deconvolution stride) of 2**31 - 1 on a one-pixel input
        # failed to create oneDNN's primitive (INTERNAL): declined, XLA's value and gradient
        x1 = jnp.asarray(rng.standard_normal((1, 1, 5, 2)), jnp.float32)
        w1 = jnp.asarray(rng.standard_normal((3, 3, 2, 3)), jnp.float32)
        kw = dict(input_dilation=(2**31 - 1, 1))
        assert jaxconv.explain(x1, w1, **kw).plan.fwd == "xla"
        loss = lambda impl: lambda a, c: jnp.sum(jaxconv.conv(a, c, implementation=impl, **kw))
        got, want = (jax.grad(loss(impl), (0, 1))(x1, w1) for impl in (None, "xla"))
        for g, r in zip(got, want):
            np.testing.assert_allclose(g, r, atol=1e-5)
        kw = dict(stride=(2**31 - 1, 1), padding="VALID")
        np.testing.assert_allclose(jaxconv.conv(x, w, **kw),
                                   jaxconv.conv(x, w, implementation="xla", **kw), atol=1e-5)
        print("ok")
    """)
    assert out.returncode == 0 and out.stdout.split() == ["ok"], (out.returncode, out.stderr)


# --- 2. IEEE semantics ------------------------------------------------------------------------


def _nan_cases(rng):
    x = rng.standard_normal((2, 6, 6, 4)).astype(np.float32)
    w = rng.standard_normal((3, 3, 4, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    x_nan = x.copy()
    x_nan[0, 2, 3, 1] = np.nan
    b_nan = b.copy()
    b_nan[2] = np.nan
    w_nan = w.copy()
    w_nan[1, 1, 0, 3] = np.nan  # the centre tap: never in the padding
    return {"x": (x_nan, w, b), "b": (x, w, b_nan), "w": (x, w_nan, b)}


@pytest.mark.parametrize("where", ["x", "w", "b"])
@pytest.mark.parametrize(
    "op",
    ["conv_relu", "conv_1x1_relu", "bottleneck", "depthwise_relu", "separable_relu", "nn_conv"],
)
def test_nan_propagates_through_fused_activations(rng, op, where):
    """NaN in x, w or the bias comes out where lax puts it (oneDNN's ReLU post-op used to turn
    it into 0), forward and in both gradients, and jax.debug_nans sees it."""
    x, w, b = _nan_cases(rng)[where]
    relu = jax.nn.relu

    def f(impl):
        def g(x, w, b):
            if op == "conv_relu":
                return jaxconv.conv(x, w, b, activation=relu, implementation=impl)
            if op == "conv_1x1_relu":
                return jaxconv.conv(x, w[1:2, 1:2], b, activation=relu, implementation=impl)
            if op == "bottleneck":  # the reduce's ReLU: its default activation
                w_spatial = w[:, :, :1, :].repeat(5, 2)
                return jaxconv.bottleneck(x, w[1, 1], w_spatial, b, implementation=impl)
            if op == "depthwise_relu":
                k = w[:, :, :1, :4]
                return jaxconv.depthwise_conv(x, k, b[:4], activation=relu, implementation=impl)
            if op == "separable_relu":
                k = w[:, :, :1, :4]
                return jaxconv.separable_conv(
                    x, k, w[1, 1], b[:4], b, activation=relu, implementation=impl
                )
            conv = jnn.Conv(4, 5, 3, activation=relu, implementation=impl, rngs=nnx.Rngs(0))
            conv.kernel[...], conv.bias[...] = w, b  # (a module built per call: w may be traced)
            return conv(x)

        return g

    y = f(None)(x, w, b)
    assert np.isnan(y).any()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(f("xla")(x, w, b)))
    for got, want in zip(
        jax.grad(lambda *a: jnp.sum(f(None)(*a)), argnums=(0, 1, 2))(x, w, b),
        jax.grad(lambda *a: jnp.sum(f("xla")(*a)), argnums=(0, 1, 2))(x, w, b),
    ):  # (a NaN bias gives finite gradients: jax.nn.relu's derivative at NaN is 0)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    with jax.debug_nans(True), pytest.raises(FloatingPointError):
        jax.block_until_ready(jax.jit(f(None))(x, w, b))


def test_nan_mask_equals_lax_forward_and_gradients(rng):
    """The exact positions: the default path's NaNs are lax's, in y, dx, dw and db."""
    for x, w, b in _nan_cases(rng).values():

        def loss(impl):
            return lambda *a: jnp.sum(
                jaxconv.conv(*a, activation=jax.nn.relu, implementation=impl) ** 2
            )

        for got, want in zip(
            jax.grad(loss(None), argnums=(0, 1, 2))(x, w, b),
            jax.grad(loss("xla"), argnums=(0, 1, 2))(x, w, b),
        ):
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want))


@needs_onednn
def test_inf_weight_next_to_zero_padding_is_the_documented_difference():
    """lax multiplies zero padding by an Inf tap (0·Inf = NaN at the border); oneDNN skips
    padding taps (finite there). Elsewhere both give the same Inf. README documents it."""
    x = jnp.ones((1, 5, 5, 2))
    w = jnp.ones((3, 3, 2, 3)).at[0, 0, 0, 0].set(jnp.inf)
    lax_y = np.asarray(jaxconv.conv(x, w, implementation="xla"))[0, :, :, 0]
    one_y = np.asarray(jaxconv.conv(x, w))[0, :, :, 0]
    border = np.zeros((5, 5), bool)
    border[0, :] = border[:, 0] = True  # where the (0, 0) tap meets the low padding
    assert np.isnan(lax_y[border]).all() and np.isfinite(one_y[border]).all()
    np.testing.assert_array_equal(lax_y[~border], one_y[~border])
    assert np.isposinf(one_y[~border]).all()
    # explicit padding instead of the conv's own: both give lax's NaN
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    np.testing.assert_array_equal(
        np.isnan(jaxconv.conv(xp, w, padding="VALID"))[0, :, :, 0], np.isnan(lax_y)
    )


# --- 3. transformations -----------------------------------------------------------------------

X = np.random.default_rng(0).standard_normal((2, 7, 7, 3)).astype(np.float32)
W = (0.3 * np.random.default_rng(1).standard_normal((3, 3, 3, 4))).astype(np.float32)
B = np.random.default_rng(2).standard_normal(4).astype(np.float32)


def _loss(impl):
    def loss(x, w):
        y = jaxconv.conv(x, w, B, stride=(1, 2), activation=jnp.tanh, implementation=impl)
        return jnp.sum(y**2)

    return loss


def _transforms(impl):
    loss = _loss(impl)
    dx = jax.grad(loss, 0)
    dw = jax.grad(loss, 1)
    return {
        "d/dw |dL/dx|^2": jax.grad(lambda x, w: jnp.sum(dx(x, w) ** 2), 1),
        "d/dx |dL/dx|^2": jax.grad(lambda x, w: jnp.sum(dx(x, w) ** 2), 0),
        "d/dw |dL/dw|^2": jax.grad(lambda x, w: jnp.sum(dw(x, w) ** 2), 1),
        "d/dx |dL/dw|^2": jax.grad(lambda x, w: jnp.sum(dw(x, w) ** 2), 0),
        "jvp of vjp": lambda x, w: jax.jvp(lambda c: dw(x, c), (w,), (jnp.ones_like(w),))[1],
        "hvp": lambda x, w: jax.jvp(jax.grad(lambda c: loss(x, c)), (w,), (w,))[1],
        "linearize": lambda x, w: jax.linearize(lambda c: loss(x, c), w)[1](w),
        "checkpoint": jax.grad(jax.checkpoint(loss), (0, 1)),
        "scan": lambda x, w: jax.lax.scan(
            lambda c, xi: (c + jax.grad(loss, 1)(xi[None], w), None), jnp.zeros_like(w), x
        )[0],
    }


@pytest.mark.parametrize("name", list(_transforms(None)))
@pytest.mark.parametrize("mapped", [False, True], ids=["plain", "vmap"])
def test_every_transformation_equals_xla(name, mapped):
    got_f, want_f = _transforms(None)[name], _transforms("xla")[name]
    if mapped:  # vmap over a stack of inputs (and of kernels: a per-example kernel)
        xs, ws = np.stack([X, X[::-1]]), np.stack([W, -W])
        got, want = jax.vmap(got_f)(xs, ws), jax.vmap(want_f)(xs, ws)
    else:
        got, want = got_f(X, W), want_f(X, W)
    for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        scale = max(1.0, float(np.abs(r).max()))
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=scale * tol("float32", 27 * 27))


@needs_onednn
def test_transformations_stay_on_onednn():
    jaxpr = str(jax.make_jaxpr(_transforms(None)["d/dw |dL/dx|^2"])(X, W))
    assert "onednn_conv" in jaxpr and "conv_general_dilated" not in jaxpr


# --- 4. devices -----------------------------------------------------------------------------


def test_shard_map_pmap_and_sharded_jit_equal_xla():
    """Two CPU devices. shard_map with check_vma=True used to fail on the input gradient
    ("Expected cotangent type float32[...]{V:d}"): the primitives dropped the varying axes."""
    out = _python(
        """
        import jax, jax.numpy as jnp, numpy as np, jaxconv
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        mesh = Mesh(np.array(jax.devices()), ("d",))
        rng = np.random.default_rng(0)
        x = rng.standard_normal((4, 9, 9, 3)).astype(np.float32)
        w = rng.standard_normal((3, 3, 3, 5)).astype(np.float32)
        def loss(impl):
            return lambda a, c: jnp.sum(jnp.tanh(jaxconv.conv(a, c, implementation=impl)) ** 2)
        def close(a, b):
            for g, r in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
                np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-3)
        for argnums, out_specs in ((0, P("d")), (1, P()), ((0, 1), (P("d"), P()))):
            got, want = (
                jax.jit(jax.shard_map(jax.grad(loss(impl), argnums), mesh=mesh,
                        in_specs=(P("d"), P()), out_specs=out_specs, check_vma=True))(x, w)
                for impl in (None, "xla"))
            close(got, want)
            # and vmap inside shard_map
            got, want = (
                jax.jit(jax.shard_map(jax.vmap(jax.grad(loss(impl), argnums), (0, None)),
                        mesh=mesh, in_specs=(P("d"), P()),
                        out_specs=jax.tree.map(lambda s: s, out_specs), check_vma=True))(
                    x[:, None], w) for impl in (None, "xla"))
            close(got, want)
        got, want = (jax.pmap(jax.grad(loss(impl), (0, 1)), in_axes=(0, None))(
            x.reshape(2, 2, 9, 9, 3), w) for impl in (None, "xla"))
        close(got, want)
        xs = jax.device_put(x, NamedSharding(mesh, P("d")))
        got, want = (jax.jit(jax.grad(loss(impl), (0, 1)))(xs, w) for impl in (None, "xla"))
        close(got, want)
        print("ok", jax.device_count())
        """,
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
    )
    assert out.returncode == 0 and out.stdout.split() == ["ok", "2"], out.stderr[-3000:]


# --- 5. export --------------------------------------------------------------------------------

PLATFORMS = ("cpu", "cuda", "tpu")


def _exports(f, *args):
    """``f`` exported for the CPU (serialized, deserialized, run: equal to the jitted ``f``)
    and for every platform (no custom call in the module)."""
    exported = jax.export.export(jax.jit(f))(*args)
    assert "custom_call" not in exported.mlir_module()
    restored = jax.export.deserialize(exported.serialize())
    for got, want in zip(jax.tree.leaves(restored.call(*args)), jax.tree.leaves(jax.jit(f)(*args))):
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)
    everywhere = jax.export.export(jax.jit(f), platforms=PLATFORMS)(*args)
    assert everywhere.platforms == PLATFORMS
    assert "custom_call" not in everywhere.mlir_module()


def test_export_functional_ops():
    x = jnp.asarray(X)
    w1 = jnp.asarray(W[1, 1])
    ops = {
        "conv": lambda x: jaxconv.conv(x, jnp.asarray(W), B, stride=2, activation=jax.nn.relu),
        "conv1x1": lambda x: jaxconv.conv1x1(x, w1),
        "bottleneck": lambda x: jaxconv.bottleneck(x, w1, jnp.asarray(W)[:, :, :1].repeat(4, 2)),
        "depthwise": lambda x: jaxconv.depthwise_conv(x, jnp.asarray(W)[:, :, :1, :3]),
        "separable": lambda x: jaxconv.separable_conv(x, jnp.asarray(W)[:, :, :1, :3], w1),
        "transpose": lambda x: jaxconv.conv_transpose(x, jnp.asarray(W), stride=2),
        "max_pool": lambda x: jaxconv.max_pool(x, 3, stride=2),
        "grad": jax.grad(lambda x: jnp.sum(jaxconv.conv(x, jnp.asarray(W)) ** 2)),
    }
    for name, f in ops.items():
        try:
            _exports(f, x)
        except Exception as e:
            raise AssertionError(name) from e


@pytest.mark.slow
@pytest.mark.parametrize("name", ["googlenet", "resnet18", "mobilenetv2", "nin", "nn_conv"])
def test_export_models(name):
    from jaxconv import models

    rngs = nnx.Rngs(0)
    make = {
        "googlenet": lambda: models.GoogLeNet(10, stem="cifar", aux_logits=False, rngs=rngs),
        "resnet18": lambda: models.ResNet18(10, stem="cifar", rngs=rngs),
        "mobilenetv2": lambda: models.MobileNetV2(10, rngs=rngs),
        "nin": lambda: models.NiN(rngs=rngs),
        "nn_conv": lambda: jnn.Conv(3, 8, 3, activation=jax.nn.relu, rngs=rngs),
    }
    model = make[name]()
    model.eval()
    graphdef, state = nnx.split(model)
    leaves, treedef = jax.tree.flatten(state)  # plain arrays: what an exported call takes

    def forward(leaves, x):
        return nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves))(x)

    x = np.random.default_rng(0).standard_normal((1, 32, 32, 3)).astype(np.float32)
    _exports(forward, leaves, jnp.asarray(x))


def test_plain_jit_keeps_onednn():
    if onednn.unavailable() is not None:
        pytest.skip(onednn.unavailable())
    text = jax.jit(lambda x: jaxconv.conv(x, jnp.asarray(W))).lower(X).as_text()
    assert "jaxconv_onednn_fwd" in text


# --- 6. loading -------------------------------------------------------------------------------


@needs_onednn
def test_planted_distributions_in_the_working_directory_are_never_loaded(tmp_path):
    """A ``*.dist-info`` + ``libdnnl.so.3`` (and an extension) planted in the current directory,
    which ``python -c`` puts first on ``sys.path``, are not what gets loaded."""
    real = onednn.library._dnnl_path()
    assert real is not None
    for dist, lib in (
        ("onednn_cpu_gomp-9.9.9", "libdnnl.so.3"),
        ("jaxconv-9.9.9", onednn.LIBRARY),
    ):
        info = tmp_path / f"{dist}.dist-info"
        info.mkdir()
        name = dist.split("-")[0].replace("_", "-")
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 9.9.9\n")
        (info / "RECORD").write_text(f"{lib},,\n")
        (tmp_path / lib).write_bytes(real.read_bytes())  # a loadable library, planted
    out = _python(
        """
        import jax.numpy as jnp, jaxconv
        from jaxconv.convolution.lowerings import onednn
        assert onednn.unavailable() is None, onednn.unavailable()
        jaxconv.conv(jnp.ones((1, 5, 5, 2)), jnp.ones((3, 3, 2, 2))).block_until_ready()
        print(open("/proc/self/maps").read())
        """,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "libdnnl.so.3" in out.stdout and str(tmp_path) not in out.stdout


def _fallback(patch: str) -> subprocess.CompletedProcess:
    return _python(f"""
        import warnings, jax.numpy as jnp, numpy as np, jaxconv
        from jaxconv.convolution.lowerings import onednn
        {patch}
        x, w = jnp.ones((1, 5, 5, 2)), jnp.ones((3, 3, 2, 2))
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            want = jaxconv.conv(x, w, implementation="xla")
            loaded = onednn.library._load.cache_info().currsize
            assert not seen and loaded == 0, "xla touched onednn"
            for _ in range(3):
                y = jaxconv.conv(x, w)
            assert jaxconv.explain(x, w).plan.fwd == "xla"
        np.testing.assert_array_equal(y, want)
        mine = [w for w in seen if issubclass(w.category, onednn.OnednnUnavailableWarning)]
        print(len(mine), "|", *(str(w.message) for w in mine))
    """)


@needs_onednn
def test_a_stale_build_missing_a_symbol_warns_once_and_runs_xla():
    stale = onednn.library._dnnl_path()  # loads fine, has none of the extension's symbols
    out = _fallback(
        f"onednn.library._extension_path = lambda: __import__('pathlib').Path({str(stale)!r})"
    )
    assert out.returncode == 0, out.stderr[-3000:]
    count, message = out.stdout.split("|", 1)
    assert count.strip() == "1" and "cannot be used" in message and "jaxconv_onednn" in message


@needs_onednn
def test_a_build_of_another_version_warns_once_and_runs_xla():
    out = _fallback("onednn.library.__version__ = '0.0.0'")
    assert out.returncode == 0, out.stderr[-3000:]
    count, message = out.stdout.split("|", 1)
    assert count.strip() == "1" and "built for jaxconv" in message and "0.0.0" in message


def test_no_warning_where_onednn_is_disabled_or_not_built():
    for patch, env in (
        ("", {"JAXCONV_DISABLE_ONEDNN": "1"}),
        ("onednn.library._extension_path = lambda: None", {}),
    ):
        out = (
            _fallback(patch)
            if not env
            else _python(
                """
            import warnings
            warnings.simplefilter("error")
            import jax.numpy as jnp, jaxconv
            from jaxconv.convolution.lowerings import onednn
            jaxconv.conv(jnp.ones((1, 5, 5, 2)), jnp.ones((3, 3, 2, 2))).block_until_ready()
            assert "disabled" in onednn.unavailable()
            print("0 |")
            """,
                **env,
            )
        )
        assert out.returncode == 0, out.stderr[-3000:]
        assert out.stdout.split("|")[0].strip() == "0", out.stdout


@needs_onednn
def test_extension_has_no_runpath_and_matches_this_version():
    path = onednn.library._extension_path()
    data = path.read_bytes()
    assert b"$ORIGIN" not in data
    lib, _ = onednn.library._load()
    assert lib.jaxconv_onednn_version().decode() == jaxconv.__version__


# --- 7. bounded native state ------------------------------------------------------------------


@needs_onednn
def test_primitive_cache_is_lru_bounded_and_rss_stops_growing():
    out = _python(
        """
        import os, jax, jax.numpy as jnp, numpy as np, jaxconv
        from jaxconv.convolution.lowerings import onednn
        assert onednn.cache_capacity() == 8  # from the environment
        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        w = jnp.ones((3, 3, 8, 8))
        def shapes(start, n):  # n distinct convs, each a forward and both gradients
            for i in range(start, start + n):
                x = jnp.ones((1, 8 + i, 9, 8))
                loss = lambda a, c: jnp.sum(jaxconv.conv(a, c))
                jax.block_until_ready(jax.grad(loss, (0, 1))(x, w))
                jax.clear_caches()
        shapes(0, 16)  # twice the bound in distinct shapes
        assert onednn.cache_size() == 8, onednn.cache_size()
        shapes(16, 16)
        before = rss()
        shapes(32, 48)
        grown = (rss() - before) / 2**20
        assert onednn.cache_size() == 8
        assert grown < 32, f"RSS grew {grown:.1f} MiB over 48 more shapes"
        assert onednn.scratchpad_bytes() <= 64 << 20
        onednn.cache_capacity(2)
        assert onednn.cache_size() == 2
        print("ok")
    """,
        JAXCONV_ONEDNN_CACHE_CAPACITY="8",
    )
    assert out.returncode == 0 and out.stdout.split() == ["ok"], out.stderr[-3000:]


@needs_onednn
def test_eviction_never_frees_a_primitive_another_thread_runs():
    """A cache of one primitive, four threads running different convs (every lookup evicts
    another thread's primitive while it may be running): results equal lax, no crash."""
    out = _python("""
        import threading, jax, jax.numpy as jnp, numpy as np, jaxconv
        from jaxconv.convolution.lowerings import onednn
        onednn.cache_capacity(1)
        rng = np.random.default_rng(0)
        xs = [jnp.asarray(rng.standard_normal((2, 10 + i, 11, 6)), jnp.float32) for i in range(4)]
        w = jnp.asarray(rng.standard_normal((3, 3, 6, 8)), jnp.float32)
        def dw(a, s, impl=None):
            loss = lambda c: jnp.sum(jaxconv.conv(a, c, stride=s, implementation=impl) ** 2)
            return jax.grad(loss)(w)
        fs = [jax.jit(lambda a, s=s: dw(a, s)) for s in (1, 2)]
        wants = [[dw(x, s, "xla") for s in (1, 2)] for x in xs]
        errors = []
        def run(i):
            for j in range(30):
                got = fs[j % 2](xs[i])
                if not np.allclose(got, wants[i][j % 2], rtol=1e-4, atol=1e-2):
                    errors.append((i, j))
        threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert not errors, errors
        assert onednn.cache_size() == 1
        print("ok")
    """)
    assert out.returncode == 0 and out.stdout.split() == ["ok"], out.stderr[-3000:]
