"""``jaxconv.autotune`` and the per-device-kind tables: persistence round-trip in a temporary
cache dir, lookup precedence, nearest batch, stale entries, and the shipped defaults.
Timings are measured on tiny shapes with one repeat and never asserted on."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxconv
from jaxconv import kernels
from jaxconv._ops import make_spec
from jaxconv.kernels import _tables


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty user cache dir for the test (and tables re-read from disk)."""
    monkeypatch.setenv(_tables.CACHE_ENV, str(tmp_path))
    _tables.clear_memory()
    yield tmp_path
    _tables.clear_memory()


def _spec(batch=2, size=8, c_in=4, c_out=4, k=3, **kwargs):
    return make_spec((batch, size, size, c_in), (k, k, c_in, c_out), "float32", **kwargs)[0]


def _layer(x, w):
    return jax.nn.relu(jaxconv.conv(x, w))


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv(_tables.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _tables.cache_dir() == tmp_path / "xdg" / "jaxconv"
    monkeypatch.setenv(_tables.CACHE_ENV, str(tmp_path / "mine"))
    assert _tables.cache_dir() == tmp_path / "mine"


def test_device_kind_names_the_cpu_class():
    kind = kernels.device_kind("cpu")
    arch, isa, cores = kind.split("-", 1)[1].rsplit("-", 2)
    assert arch and isa in ("amx", "avx512", "avx2", "neon", "asimd", "generic")
    assert cores.endswith("c") and int(cores[:-1]) >= 1
    assert kernels.device_kind("gpu", "NVIDIA H200") == "gpu-nvidia-h200"


def test_spec_key_is_readable_and_distinguishes_specs():
    key = kernels.spec_key(_spec(batch=32, size=28, c_in=96, c_out=128, padding=1))
    assert key == "2d NHWC n32 28x28x96 k3x3 o128 s1x1 d1x1 i1x1 p1_1x1_1 g1 float32"
    assert kernels.spec_key(_spec(stride=2)) != kernels.spec_key(_spec())
    assert kernels.spec_key(_spec(), batch=False) == kernels.spec_key(_spec(batch=9), batch=False)


def test_autotune_round_trip(cache):
    x, w = jnp.ones((2, 8, 8, 4)), jnp.ones((3, 3, 4, 4))
    plans = jaxconv.autotune(_layer, x, w, repeats=1, warmup=0)
    key = kernels.spec_key(_spec())
    assert list(plans) == [key]
    table = json.loads((cache / f"{kernels.device_kind()}.json").read_text())
    entry = table["entries"][key]
    assert kernels.Plan(entry["fwd"], entry["dx"], entry["dw"]) == plans[key]
    assert set(entry["ms"]) == {"fwd", "dx", "dw", "fwd+bwd"}
    for role in _tables.ROLES:  # Winograd's gradients are another lowering's
        assert set(entry["ms"][role]) == set(kernels.candidates(_spec(), role=role))
    # The whole step: the per-role winners together and each lowering that does every role.
    whole = entry["ms"]["fwd+bwd"]
    uniform = {f"{n}/{n}/{n}" for n in kernels.candidates(_spec(), role="dw")}
    assert uniform <= set(whole) and len(set(whole) - uniform) <= 1
    assert "/".join(plans[key]) == min(whole, key=whole.get)
    assert "winograd_f2" in entry["ms"]["fwd"] and "winograd_f2" not in entry["ms"]["dw"]
    assert table["jaxlib"] and table["device_kind"] == kernels.device_kind()
    # A new process reads it back from disk and conv uses it.
    _tables.clear_memory()
    assert kernels.plan(_spec()) == plans[key]
    np.testing.assert_allclose(_layer(x, w), jax.nn.relu(jaxconv.conv(x, w, implementation="xla")),
                               rtol=0, atol=1e-4)


def test_autotune_sees_convs_inside_jitted_functions_and_merges(cache):
    inner = jax.jit(_layer)
    x4, w = jax.ShapeDtypeStruct((4, 8, 8, 4), jnp.float32), jnp.ones((3, 3, 4, 4))
    jaxconv.autotune(lambda x, w: inner(x, w), x4, w, repeats=1, warmup=0,
                     lowerings=("xla", "xla_eigen"))
    jaxconv.autotune(specs=[_spec()], grad=False, repeats=1, warmup=0,
                     lowerings=("xla", "xla_eigen"))
    entries = json.loads((cache / f"{kernels.device_kind()}.json").read_text())["entries"]
    assert set(entries) == {kernels.spec_key(_spec(batch=4)), kernels.spec_key(_spec())}
    fwd_only = entries[kernels.spec_key(_spec())]
    assert set(fwd_only["ms"]) == {"fwd"} and set(fwd_only["ms"]["fwd"]) == {"xla", "xla_eigen"}
    default = kernels.default_plan(_spec())
    assert (fwd_only["dx"], fwd_only["dw"]) == (default.dx, default.dw)


def test_autotune_without_save_writes_nothing(cache):
    plans = jaxconv.autotune(specs=[_spec()], repeats=1, warmup=0, save=False,
                             lowerings=("xla",))
    assert plans == {kernels.spec_key(_spec()): kernels.Plan("xla", "xla", "xla")}
    assert not list(cache.iterdir())


def test_user_table_overrides_and_nearest_batch(cache):
    spec = _spec(batch=8)
    plan = kernels.Plan("im2col", "xla_eigen", "xla")
    _tables.save(kernels.device_kind(), {kernels.spec_key(spec): plan._asdict()})
    assert kernels.plan(spec) == plan
    assert kernels.plan(_spec(batch=6)) == plan  # same conv, nearest batch
    assert kernels.plan(_spec(batch=6, c_out=8)) == kernels.default_plan(_spec(c_out=8))
    chosen = kernels.select(_spec(batch=6))
    assert isinstance(chosen, kernels.Split) and chosen.plan == plan


def test_stale_entries_fall_back_to_the_cost_model(cache):
    spec = _spec()
    _tables.save(kernels.device_kind(), {
        kernels.spec_key(spec): {"fwd": "no_such_lowering", "dx": "xla", "dw": "xla"},
        kernels.spec_key(_spec(stride=2)): {"fwd": "winograd_f2", "dx": "xla", "dw": "xla"},
    })
    assert kernels.plan(spec) == kernels.default_plan(spec)
    assert kernels.plan(_spec(stride=2)) == kernels.default_plan(_spec(stride=2))


def test_corrupt_table_is_ignored(cache):
    (cache / f"{kernels.device_kind()}.json").write_text("{not json")
    assert kernels.plan(_spec()) == kernels.default_plan(_spec())


def test_autotune_keeps_a_uniform_plan_when_the_per_role_winners_lose_together(cache, monkeypatch):
    from jaxconv import _autotune

    mixed = kernels.Plan("winograd_f2", "xla", "xla_eigen")

    winners = iter(mixed)  # roles are timed in order fwd, dx, dw

    def rigged(runners, args, repeats, warmup):  # per role: the mixed plan's parts win ...
        names = list(runners)
        if all("/" not in n for n in names):
            best = next(winners)
            return {n: 1.0 if n == best else 2.0 for n in names}
        # ... but together they are slower than Eigen throughout
        assert "/".join(mixed) in names and "xla_eigen/xla_eigen/xla_eigen" in names
        return {n: 0.5 if n == "xla_eigen/xla_eigen/xla_eigen" else 3.0 for n in names}

    monkeypatch.setattr(_autotune, "_round_robin", rigged)
    plans = jaxconv.autotune(specs=[_spec()], repeats=1, warmup=0, save=False,
                             lowerings=("winograd_f2", "xla", "xla_eigen"))
    assert plans[kernels.spec_key(_spec())] == kernels.Plan(*["xla_eigen"] * 3)
