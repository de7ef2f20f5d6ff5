"""Training-mode BatchNorm (+ ReLU) on oneDNN's primitive (``lowerings/onednn/norm.py``, used
by ``ConvBN`` in training): forward and backward against a NumPy float64 reference, the
modules against the same modules on XLA, NaN, every order of derivative, vmap, export,
shard_map and a batch-sharded jit, and where it does not apply."""

from __future__ import annotations

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import run_on_two_cpu_devices, tol
from flax import nnx

from jaxconv.convolution.lowerings import onednn as _onednn
from jaxconv.nn import ConvBN
from jaxconv.nn._batch_norm import ENV, why_not_native

pytestmark = pytest.mark.skipif(
    _onednn.unavailable() is not None, reason=str(_onednn.unavailable())
)

EPS = 1e-5


def _norm():
    from jaxconv.convolution.lowerings.onednn import norm

    return norm


def reference64(x, scale, shift, dy, *, relu):
    """``(y, mean, var)`` and ``(dx, dscale, dshift)`` for ``dy``, in float64."""
    x, scale, shift, dy = (np.asarray(a, np.float64) for a in (x, scale, shift, dy))
    axes = tuple(range(x.ndim - 1))
    m = x.size // x.shape[-1]
    mean = x.mean(axes)
    var = ((x - mean) ** 2).mean(axes)
    xhat = (x - mean) / np.sqrt(var + EPS)
    z = xhat * scale + shift
    y = np.maximum(z, 0) if relu else z
    dz = np.where(z > 0, dy, 0) if relu else dy
    dshift = dz.sum(axes)
    dscale = (dz * xhat).sum(axes)
    dx = scale / np.sqrt(var + EPS) * (dz - (dshift + xhat * dscale) / m)
    return (y, mean, var), (dx, dscale, dshift)


def _args(rng, shape):
    c = shape[-1]
    x = rng.standard_normal(shape).astype(np.float32) * 2 + 0.5
    scale = rng.standard_normal(c).astype(np.float32)
    shift = rng.standard_normal(c).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    return x, scale, shift, dy


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape", [(6, 16), (2, 5, 7, 3), (3, 4, 5, 24), (2, 3, 4, 5, 8)])
def test_native_batch_norm_equals_float64(rng, relu, shape):
    x, scale, shift, dy = _args(rng, shape)
    norm = _norm()

    def f(x, scale, shift):
        return norm.batch_norm(x, scale, shift, epsilon=EPS, relu=relu)

    y, mean, var = jax.jit(f)(x, scale, shift)
    grads = jax.jit(lambda *a: jax.vjp(f, *a)[1]((dy, jnp.zeros_like(mean), jnp.zeros_like(var))))(
        x, scale, shift
    )
    (wy, wmean, wvar), wgrads = reference64(x, scale, shift, dy, relu=relu)
    m = x.size // shape[-1]
    for got, want in zip((y, mean, var), (wy, wmean, wvar)):
        np.testing.assert_allclose(got, want, rtol=0, atol=tol("float32", 4 * m) * 4)
    for got, want in zip(grads, wgrads):
        np.testing.assert_allclose(got, want, rtol=0, atol=tol("float32", 4 * m) * 20)
    text = str(jax.make_jaxpr(lambda *a: jax.vjp(f, *a)[1]((dy, mean, var)))(x, scale, shift))
    assert "onednn_batch_norm " in text.replace("[", " ") and "onednn_batch_norm_bwd" in text


def _convbn(activation=jax.nn.relu, seed=0):
    unit = ConvBN(3, 8, 3, activation=activation, rngs=nnx.Rngs(seed))
    unit.train()
    return unit


def _step(unit, x):
    """Loss, parameter gradients and the updated running statistics of one training call."""

    def loss(u):
        return jnp.sum(jnp.sin(u(x)))

    value, grads = nnx.value_and_grad(loss)(unit)
    return value, grads, (unit.bn.mean[...], unit.bn.var[...])


@pytest.mark.parametrize("activation", [jax.nn.relu, None, jax.nn.relu6])
def test_convbn_trains_on_onednn_as_on_xla(rng, monkeypatch, activation):
    """ReLU is fused into oneDNN's batch norm; any other activation follows it in XLA."""
    x = jnp.asarray(rng.standard_normal((4, 9, 9, 3)), jnp.float32)
    native = _convbn(activation)
    assert why_not_native(native.bn, jnp.zeros((4, 9, 9, 8)), activation) is None
    graph, state = nnx.split(native)
    text = str(jax.make_jaxpr(jax.grad(lambda st, a: jnp.sum(nnx.merge(graph, st)(a))))(state, x))
    assert "onednn_batch_norm_bwd" in text
    got = _step(native, x)
    monkeypatch.setenv(ENV, "xla")
    plain = _convbn(activation)
    assert why_not_native(plain.bn, x, activation) == f"{ENV}=xla"
    want = _step(plain, x)
    atol = tol("float32", 4 * 81 * 27)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=atol)
    for g, w in zip(jax.tree.leaves(got[1:]), jax.tree.leaves(want[1:])):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=atol)


@pytest.mark.parametrize("relu", [False, True])
def test_nan_and_infinity_keep_their_channel_nan(rng, relu):
    """oneDNN's fused ReLU turns NaN into 0; the handler puts the NaNs back, so the output
    and every gradient have NaN exactly where lax's have."""
    x, scale, shift, dy = _args(rng, (2, 3, 4, 16))
    x[1, 2, 0, 3] = np.nan
    x[0, 0, 1, 9] = np.inf
    scale[5] = np.nan
    norm = _norm()

    def run(impl):
        def f(x, scale, shift):
            if impl == "native":
                return norm.batch_norm(x, scale, shift, epsilon=EPS, relu=relu)[0]
            return norm.forward_reference(x, scale, shift, epsilon=EPS, relu=relu, ws_bytes=1)[0]

        y, vjp = jax.vjp(f, x, scale, shift)
        return (y, *vjp(jnp.asarray(dy)))

    for got, want in zip(jax.jit(lambda: run("native"))(), jax.jit(lambda: run("lax"))()):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    y = np.asarray(jax.jit(lambda: run("native"))()[0])
    assert np.isnan(y[..., [3, 5, 9]]).all() and not np.isnan(np.delete(y, [3, 5, 9], -1)).any()


def test_every_order_of_derivative_is_the_references(rng):
    x, scale, shift, _ = _args(rng, (3, 4, 4, 8))
    norm = _norm()

    def loss(fn):
        def f(x, scale, shift):
            y, mean, var = fn(x, scale, shift)[:3]
            return jnp.sum(jnp.sin(y)) + jnp.sum(mean**2) + jnp.sum(jnp.cos(var))

        return f

    native = loss(lambda *a: norm.batch_norm(*a, epsilon=EPS, relu=True))
    plain = loss(lambda *a: norm.forward_reference(*a, epsilon=EPS, relu=True, ws_bytes=1))
    atol = 1e-3
    for transform in (
        lambda f: jax.grad(f, (0, 1, 2)),
        lambda f: lambda *a: jax.jvp(f, a, (a[0] * 0.3, a[1], a[2]))[1],
        lambda f: lambda x, s, b: jax.hessian(lambda s: f(x, s, b))(s),
        lambda f: lambda x, s, b: jax.grad(lambda x: jnp.sum(jax.grad(f)(x, s, b) ** 2))(x),
        lambda f: lambda x, s, b: jax.jacfwd(jax.grad(f, 1), 2)(x, s, b),
    ):
        got, want = (jax.jit(transform(f))(x, scale, shift) for f in (native, plain))
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(g, w, rtol=2e-4, atol=atol)


def test_vmap_normalizes_each_element_on_its_own(rng):
    x, scale, shift, _ = _args(rng, (3, 2, 4, 4, 8))
    norm = _norm()
    f = lambda a: norm.batch_norm(a, scale, shift, epsilon=EPS, relu=True)  # noqa: E731
    got = jax.jit(jax.vmap(f))(x)
    for i in range(3):
        for g, w in zip(got, f(x[i])):
            np.testing.assert_allclose(g[i], w, rtol=0, atol=1e-5)
    grads = jax.jit(jax.vmap(jax.grad(lambda a: jnp.sum(f(a)[0] ** 2))))(x)
    np.testing.assert_allclose(grads[1], jax.grad(lambda a: jnp.sum(f(a)[0] ** 2))(x[1]), atol=1e-5)


def test_export_lowers_to_standard_ops(rng):
    x, scale, shift, _ = _args(rng, (2, 5, 5, 8))
    norm = _norm()

    def y_of(a):
        return norm.batch_norm(a, scale, shift, epsilon=EPS, relu=True)[0]

    def f(x):
        return y_of(x), jax.grad(lambda a: jnp.sum(y_of(a) ** 2))(x)

    exported = jax.export.export(jax.jit(f))(x)
    assert "stablehlo.custom_call" not in exported.mlir_module()
    for g, w in zip(exported.call(x), jax.jit(f)(x)):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-4)


def test_sharded_batch_norm_normalizes_over_the_global_or_the_shard_batch():
    """A batch-sharded jit normalizes over the whole batch (lax, not a per-shard call); inside
    shard_map each device normalizes its own shard on oneDNN, as lax does there."""
    script = textwrap.dedent("""
        import jax, jax.numpy as jnp, numpy as np
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        from jaxconv.convolution.lowerings.onednn import norm
        mesh = Mesh(np.array(jax.devices()), ("data",))
        x = np.random.default_rng(0).standard_normal((4, 5, 5, 8)).astype(np.float32)
        s = np.linspace(0.5, 2, 8, dtype=np.float32); b = np.linspace(-1, 1, 8, dtype=np.float32)
        nat = lambda a: norm.batch_norm(a, s, b, epsilon=1e-5, relu=True)[0]
        ref = lambda a: norm.forward_reference(a, s, b, epsilon=1e-5, relu=True, ws_bytes=1)[0]
        loss = lambda f: lambda a: jnp.sum(f(a) ** 2)
        xs = jax.device_put(x, NamedSharding(mesh, P("data")))
        for f in (nat, jax.grad(loss(nat))):
            np.testing.assert_allclose(jax.jit(f)(xs), jax.jit(f)(x), rtol=1e-5, atol=1e-5)
        mapped = jax.jit(jax.shard_map(jax.grad(loss(nat)), mesh=mesh, in_specs=P("data"),
                                       out_specs=P("data")))
        assert "jaxconv_onednn_batch_norm" in mapped.lower(x).compile().as_text()
        want = np.concatenate([jax.grad(loss(ref))(x[:2]), jax.grad(loss(ref))(x[2:])])
        np.testing.assert_allclose(mapped(x), want, rtol=1e-5, atol=1e-4)
        print("ok", jax.device_count())
    """)
    assert run_on_two_cpu_devices(script).split() == ["ok", "2"]


def test_where_it_does_not_apply_convbn_keeps_nnx_batchnorm(rng, monkeypatch):
    x = jnp.zeros((2, 6, 6, 8))
    unit = _convbn()
    assert why_not_native(unit.bn, x.astype(jnp.bfloat16), jax.nn.relu) is not None
    assert why_not_native(unit.bn, jnp.zeros((0, 6, 6, 8)), jax.nn.relu) is not None

    class Own(nnx.BatchNorm):
        def __call__(self, x, use_running_average=None, *, mask=None):
            return super().__call__(x, use_running_average, mask=mask) * 2

    assert "plain nnx.BatchNorm" in why_not_native(Own(8, rngs=nnx.Rngs(0)), x, jax.nn.relu)
    unit.eval()
    assert "training" in why_not_native(unit.bn, x, jax.nn.relu)
    text = str(jax.make_jaxpr(lambda a: unit(a))(jnp.zeros((2, 6, 6, 3))))
    assert "onednn_batch_norm" not in text
    monkeypatch.setenv(ENV, "cudnn")
    with pytest.raises(ValueError, match=f"{ENV} must be one of"):
        why_not_native(unit.bn, x, jax.nn.relu)
