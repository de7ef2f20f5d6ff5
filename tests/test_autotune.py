"""``jaxconv.autotune`` and the per-device-kind tables: persistence round-trip in a temporary
cache dir, the one place a table enters dispatch, when a change takes effect, nearest batch,
stale and corrupt tables. Timings are measured on tiny shapes with one repeat and never
asserted on."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxconv
from jaxconv import convolution as kernels
from jaxconv.convolution import autotune as autotune_module
from jaxconv.convolution import tables


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty table dir for the test."""
    monkeypatch.setenv(tables.CACHE_ENV, str(tmp_path))
    return tmp_path


def _spec(batch=2, size=8, c_in=4, c_out=4, k=3, **kwargs):
    return kernels.conv_spec(
        jax.ShapeDtypeStruct((batch, size, size, c_in), jnp.float32),
        jax.ShapeDtypeStruct((k, k, c_in, c_out), jnp.float32),
        **kwargs,
    )


def _layer(x, w):
    return jax.nn.relu(jaxconv.conv(x, w))


def _table_file(cache):
    return cache / f"{kernels.device_kind()}.json"


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv(tables.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tables.cache_dir() == tmp_path / "xdg" / "jaxconv"
    monkeypatch.setenv(tables.CACHE_ENV, str(tmp_path / "mine"))
    assert tables.cache_dir() == tmp_path / "mine"


def test_device_kind_names_the_cpu_class():
    kind = kernels.device_kind("cpu")
    arch, isa, cores = kind.split("-", 1)[1].rsplit("-", 2)
    assert arch and isa in ("amx", "avx512", "avx2", "neon", "asimd", "generic")
    assert cores.endswith("c") and int(cores[:-1]) >= 1
    assert kernels.device_kind("gpu", "NVIDIA H200") == "gpu-nvidia-h200"
    assert kernels.cpu_model()


def test_spec_key_is_readable_and_distinguishes_specs():
    key = tables.spec_key(_spec(batch=32, size=28, c_in=96, c_out=128, padding=1))
    assert key == "2d NHWC 28x28x96 k3x3 o128 s1x1 d1x1 i1x1 p1_1x1_1 g1 float32"
    assert tables.spec_key(_spec(stride=2)) != tables.spec_key(_spec())
    assert tables.spec_key(_spec()) == tables.spec_key(_spec(batch=9))
    # a padding mode is the same conv for the lowering: the pre-padded input, VALID
    assert tables.spec_key(_spec(padding="REFLECT")) == tables.spec_key(
        _spec(size=10, padding="VALID")
    )


def test_autotune_round_trip(cache):
    x, w = jnp.ones((2, 8, 8, 4)), jnp.ones((3, 3, 4, 4))
    plans = jaxconv.autotune(_layer, x, w, repeats=1, warmup=0)
    spec = _spec()
    assert list(plans) == [spec]
    table = json.loads(_table_file(cache).read_text())
    entry = table["entries"][tables.spec_key(spec)]["2"]
    assert kernels.Plan(entry["fwd"], entry["dx"], entry["dw"]) == plans[spec]
    for role in kernels.ROLES:
        assert set(entry["ms"][role]) == set(kernels.candidates(spec, "cpu", role=role))
    # The whole step: the per-role winners together and each lowering that does every role.
    if len(kernels.candidates(spec, "cpu")) > 1:
        whole = entry["ms"]["fwd+bwd"]
        uniform = {f"{n}/{n}/{n}" for n in kernels.candidates(spec, "cpu", role="dw")}
        assert uniform <= set(whole) and len(set(whole) - uniform) <= 1
        assert "/".join(plans[spec]) == min(whole, key=whole.get)
    assert table["jaxlib"] and table["device_kind"] == kernels.device_kind()
    assert table["version"] == tables.FORMAT
    # Dispatch reads it back from disk (the one place: choose), and says so.
    choice = kernels.choose(spec)
    assert choice.plan == plans[spec] and choice.source == "table"
    assert choice.table == _table_file(cache)
    np.testing.assert_allclose(
        _layer(x, w), jax.nn.relu(jaxconv.conv(x, w, implementation="xla")), rtol=0, atol=1e-4
    )


def test_a_table_change_takes_effect_at_the_next_trace(cache):
    spec = _spec(c_out=8)
    x, w = jnp.ones((2, 8, 8, 4)), jnp.ones((3, 3, 4, 8))
    uses_onednn = kernels.choose(spec).plan.fwd == "onednn"
    jitted = jax.jit(jaxconv.conv)
    assert ("jaxconv_onednn" in jitted.lower(x, w).as_text()) == uses_onednn
    tables.save(kernels.device_kind(), {spec: {"fwd": "xla", "dx": "xla", "dw": "xla"}})
    assert kernels.choose(spec).plan == kernels.Plan("xla", "xla", "xla")  # read again
    # jit's trace cache (keyed by function and shapes) keeps the traced plan ...
    assert ("jaxconv_onednn" in jitted.lower(x, w).as_text()) == uses_onednn
    # ... until the function is traced again
    jax.clear_caches()
    hlo = jitted.lower(x, w).as_text()
    assert "convolution" in hlo and "jaxconv_onednn" not in hlo


def test_autotune_sees_convs_inside_jitted_functions_and_merges(cache):
    inner = jax.jit(_layer)
    x4, w = jax.ShapeDtypeStruct((4, 8, 8, 4), jnp.float32), jnp.ones((3, 3, 4, 4))
    jaxconv.autotune(lambda x, w: inner(x, w), x4, w, repeats=1, warmup=0, lowerings=("xla",))
    jaxconv.autotune(specs=[_spec()], grad=False, repeats=1, warmup=0, lowerings=("xla",))
    entries = json.loads(_table_file(cache).read_text())["entries"]
    assert set(entries) == {tables.spec_key(_spec())}
    assert set(entries[tables.spec_key(_spec())]) == {"2", "4"}
    fwd_only = entries[tables.spec_key(_spec())]["2"]
    assert set(fwd_only["ms"]) == {"fwd"} and set(fwd_only["ms"]["fwd"]) == {"xla"}
    default = kernels.default_plan(_spec(), "cpu")
    assert (fwd_only["dx"], fwd_only["dw"]) == (default.dx, default.dw)


def test_autotune_without_save_writes_nothing(cache):
    plans = jaxconv.autotune(specs=[_spec()], repeats=1, warmup=0, save=False, lowerings=("xla",))
    assert plans == {_spec(): kernels.Plan("xla", "xla", "xla")}
    assert not list(cache.iterdir())


def test_user_table_nearest_batch(cache):
    plan = kernels.Plan("xla", "xla", "xla")
    tables.save(kernels.device_kind(), {_spec(batch=8): plan._asdict()})
    assert kernels.choose(_spec(batch=8)).plan == plan
    assert kernels.choose(_spec(batch=6)).plan == plan  # same conv, nearest batch
    other = _spec(batch=6, c_out=8)
    assert kernels.choose(other).plan == kernels.default_plan(other, "cpu")


def test_stale_entries_fall_back_to_the_cost_model(cache):
    tables.save(
        kernels.device_kind(),
        {
            _spec(): {"fwd": "no_such_lowering", "dx": "xla", "dw": "xla"},
            _spec(c_out=8): {"fwd": "einsum", "dx": "xla", "dw": "xla"},  # einsum: 1×1 only
        },
    )
    for spec in (_spec(), _spec(c_out=8)):
        choice = kernels.choose(spec)
        assert choice.plan == kernels.default_plan(spec, "cpu")
        assert choice.source == "cost model" and "table entry" in choice.reason


@pytest.mark.parametrize("text", ["{not json", '{"entries": {"2d NHWC n2 8x8x4": {}}}'])
def test_corrupt_or_old_table_is_ignored_and_explained(cache, text):
    _table_file(cache).write_text(text)
    choice = kernels.choose(_spec())
    assert choice.plan == kernels.default_plan(_spec(), "cpu")
    assert "unreadable" in choice.reason or "format" in choice.reason


def test_autotune_keeps_a_uniform_plan_when_the_per_role_winners_lose_together(cache, monkeypatch):
    spec = _spec(k=1, padding="VALID")
    mixed = kernels.Plan("einsum", "xla", "einsum")
    winners = iter(mixed)  # roles are timed in order fwd, dx, dw

    def rigged(fns, args, repeats, warmup):  # per role: the mixed plan's parts win ...
        names = list(fns)
        if all("/" not in n for n in names):
            best = next(winners)
            return {n: 1.0 if n == best else 2.0 for n in names}
        # ... but together they are slower than xla throughout
        assert "/".join(mixed) in names and "xla/xla/xla" in names
        return {n: 0.5 if n == "xla/xla/xla" else 3.0 for n in names}

    monkeypatch.setattr(autotune_module, "_medians", rigged)
    plans = jaxconv.autotune(
        specs=[spec], repeats=1, warmup=0, save=False, lowerings=("einsum", "xla")
    )
    assert plans[spec] == kernels.Plan("xla", "xla", "xla")


def test_device_family_drops_what_tuning_does_not_depend_on():
    assert kernels.device_family("cpu-x86_64-amx-2c") == "cpu-x86_64-amx"
    assert kernels.device_family("cpu-aarch64-neon-64c") == "cpu-aarch64-neon"
    for gpu in ("gpu-nvidia-h200", "gpu-nvidia-h100-80gb-hbm3"):
        assert kernels.device_family(gpu, "9.0") == "gpu-sm90"
    assert kernels.device_family("gpu-nvidia-a100-sxm4-40gb", "8.0") == "gpu-sm80"
    assert kernels.device_family("gpu-nvidia-h200") is None  # no compute capability known
    assert kernels.device_family("tpu-tpu-v5-lite") is None
    kind = kernels.device_kind("cpu")
    assert kernels.device_kinds("cpu") == (kind, kernels.device_family(kind))


def test_tables_fall_back_from_the_device_kind_to_its_family(cache, monkeypatch):
    """An H200 without a table of its own uses one tuned on any sm90 (an H100), conv by conv,
    before the cost model; its own entries win where it has them."""
    from jaxconv.convolution import plan as plan_module

    monkeypatch.setattr(plan_module, "_kinds", lambda platform: ("gpu-nvidia-h200", "gpu-sm90"))
    spec, other = _spec(k=1, padding="VALID"), _spec()
    xla, einsum = kernels.Plan("xla", "xla", "xla"), kernels.Plan("einsum", "einsum", "einsum")
    assert kernels.choose(spec, platform="gpu").source == "cost model"
    tables.save("gpu-sm90", {spec: einsum._asdict(), other: xla._asdict()})
    choice = kernels.choose(spec, platform="gpu")
    assert (choice.plan, choice.source, choice.device_kind) == (einsum, "table", "gpu-sm90")
    assert choice.table == cache / "gpu-sm90.json"
    tables.save("gpu-nvidia-h200", {spec: xla._asdict()})  # measured on this very kind
    choice = kernels.choose(spec, platform="gpu")
    assert (choice.plan, choice.device_kind) == (xla, "gpu-nvidia-h200")
    assert kernels.choose(other, platform="gpu").device_kind == "gpu-sm90"  # not in the H200's


def test_autotune_on_a_gpu_never_times_a_cpu_only_lowering(cache, monkeypatch):
    timed: list[str] = []

    def record(fns, args, repeats, warmup):
        timed.extend(n for name in fns for n in name.split("/"))
        return dict.fromkeys(fns, 1.0)

    monkeypatch.setattr(autotune_module, "_medians", record)
    monkeypatch.setattr(autotune_module.jax, "default_backend", lambda: "gpu")
    monkeypatch.setattr(autotune_module, "device_kind", lambda platform: "gpu-fake")
    spec = _spec(k=1, padding="VALID")
    plans = jaxconv.autotune(specs=[spec], repeats=1, warmup=0)
    assert set(timed) == {"einsum", "xla"}
    assert (cache / "gpu-fake.json").exists() and set(plans[spec]) <= {"einsum", "xla"}
