"""The benchmark harness: ``python -m bench --quick`` end to end, its records, the fusion report
parser on known HLO, and the command line's errors. No timings are asserted (never time things in
unit tests); the smoke run only checks that the harness measures and writes what it promises."""

from __future__ import annotations

import functools
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import jaxconv

# bench/ is a top-level folder beside the package, not installed: pyproject's pytest
# `pythonpath` puts the repo root on sys.path.
from bench import __main__ as cli
from bench._fusion import fusion_report, parse_hlo
from bench._harness import REQUIRED_KEYS, Options, compile_timed, device_dirname, round_robin
from jaxconv import convolution as kernels

ROOT = Path(__file__).resolve().parents[1]


def _bench(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _snapshot(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in folder.rglob("*")} if folder.exists() else {}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One ``--quick`` run of the default suite plus conv1x1, shared by the checks below."""
    out = tmp_path_factory.mktemp("bench")
    results_before = _snapshot(ROOT / "bench" / "results")
    proc = _bench("bottleneck", "conv1x1", "--quick", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc, results_before


def _load(out: Path, suite: str) -> dict:
    return json.loads((out / f"{suite}.json").read_text())


def test_quick_writes_json_markdown_png_into_out_only(quick_run):
    out, proc, results_before = quick_run
    for suite in ("bottleneck", "conv1x1"):
        assert (out / f"{suite}.json").stat().st_size > 0
        assert "| variant |" in (out / f"{suite}.md").read_text()
        assert (out / f"{suite}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "bench: bottleneck" in proc.stdout and "speedup vs direct" in proc.stdout
    assert _snapshot(ROOT / "bench" / "results") == results_before  # --out means only there


def test_json_records_have_the_schema(quick_run):
    out, _, _ = quick_run
    for suite in ("bottleneck", "conv1x1"):
        data = _load(out, suite)
        assert data["suite"] == suite
        for key in (
            "device_kind",
            "cpu_model",
            "cpu_count",
            "jax",
            "jaxlib",
            "xla_flags",
            "git",
            "date",
            "gemm_peak_gflops",
        ):
            assert key in data["env"], key
        assert data["records"]
        for rec in data["records"]:
            missing = [k for k in REQUIRED_KEYS if k not in rec]
            assert not missing, (rec["variant"], missing)
            assert rec["suite"] == suite and isinstance(rec["default"], bool)
            assert rec["dtype"] == "float32" and rec["batch"] in (1, 2)
            assert 0 < rec["min_s"] <= rec["median_s"] <= rec["max_s"]
            assert math.isclose(rec["gflops"], 2 * rec["macs"] / rec["median_s"] / 1e9)


def test_bottleneck_records_match_the_cost_model(quick_run):
    out, _, _ = quick_run
    records = _load(out, "bottleneck")["records"]
    for batch in (1, 2):
        rows = {r["variant"]: r for r in records if r["batch"] == batch}
        assert {
            "a: direct 5x5",
            "b: op-by-op, no jit",
            "c: jit, 1x1 as lax.conv",
            "d: jit, jaxconv default",
        } <= set(rows)
        assert {v for v, r in rows.items() if r["default"]} == {
            "a: direct 5x5",
            "d: jit, jaxconv default",
        }
        # the tiny --quick layer: 7×7×32 → 4-channel 1×1 reduce → 8 5×5 filters
        cost = jaxconv.bottleneck_cost((7, 7, 32), 8, 5, 4, batch=batch)
        direct, default = rows["a: direct 5x5"], rows["d: jit, jaxconv default"]
        assert direct["macs"] == cost.macs_direct and default["macs"] == cost.macs_bottleneck
        assert default["analytic_ratio"] == pytest.approx(cost.macs_ratio)
        assert direct["speedup_vs_direct"] == 1.0
        assert default["speedup_vs_direct"] == pytest.approx(
            direct["median_s"] / default["median_s"]
        )
        assert default["kernels"] >= 1  # one oneDNN call with both ReLUs, where it applies
        assert rows["b: op-by-op, no jit"]["compile_s"] is None  # eager: nothing compiled
        parts = [r for v, r in rows.items() if v.startswith("(d) part")]
        assert sorted(r["macs"] for r in parts) == sorted([cost.reduce.macs, cost.spatial.macs])
        assert all(r["info"] and not r["default"] for r in parts)
        # the roofline: the reduce at the bandwidth (or the peak), the 5×5 at the direct's pace
        spatial_s = cost.spatial.flops / cost.direct.flops * direct["median_s"]
        assert default["roofline_spatial_s"] == pytest.approx(spatial_s)
        assert default["roofline_reduce_s"] > 0
        assert default["roofline_speedup"] == pytest.approx(
            direct["median_s"] / (default["roofline_reduce_s"] + spatial_s)
        )
        fastest_spatial_s = cost.spatial.flops / cost.direct.flops * direct["min_s"]
        assert default["roofline_speedup_fastest"] == pytest.approx(
            direct["min_s"] / (default["roofline_reduce_s"] + fastest_spatial_s)
        )


def test_conv1x1_records_compare_against_lax_conv(quick_run):
    out, _, _ = quick_run
    records = _load(out, "conv1x1")["records"]
    peer = {"torch conv2d 1x1"} if _has_torch() else set()  # by default where it is installed
    assert {r["variant"] for r in records} == {"einsum", "lax.conv", "jnp.dot"} | peer
    for rec in records:
        cost = jaxconv.conv_cost(
            (rec["spatial"],) * 2 + (rec["c_in"],),
            rec["c_out"],
            1,
            padding="VALID",
            batch=rec["batch"],
        )
        assert rec["macs"] == cost.macs
        assert rec["default"] == (rec["variant"] == "einsum")
        assert 0 < rec["roofline_s"] and rec["roofline_fraction"] > 0
        # the three run the same GEMM: XLA counts the same flops for each (none for torch)
        assert rec["xla_flops"] == (None if rec.get("peer") else pytest.approx(2 * cost.macs))


def test_xla_counts_are_none_where_a_custom_call_runs():
    """XLA counts a custom call (a oneDNN conv) as -1 flop and -1 byte, not its work: a record
    then has no XLA count rather than a wrong one; plain lax.conv keeps XLA's."""
    x, w = jnp.ones((2, 8, 8, 4)), jnp.ones((3, 3, 4, 8))
    lax_conv = functools.partial(jaxconv.conv, implementation="xla")
    plain = compile_timed(lax_conv, x, w)
    assert plain.xla_flops == jaxconv.xla_cost(lax_conv, x, w).flops > 0
    if kernels.available(kernels.conv_spec(x, w))["onednn"] is None:
        custom = compile_timed(lambda a, b: jaxconv.conv(a, b, implementation="onednn"), x, w)
        assert custom.xla_flops is None and custom.xla_bytes is None


@pytest.fixture(scope="module")
def groups_run(tmp_path_factory):
    """One ``--quick`` run of the ``groups`` suite (both default dtypes, no peer)."""
    out = tmp_path_factory.mktemp("bench_groups")
    proc = _bench("groups", "--quick", "--peers", "none", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_groups_records_time_every_applicable_lowering(groups_run):
    from bench.suites import groups

    out, proc = groups_run
    assert "bench: groups" in proc.stdout and "speedup vs lax" in proc.stdout
    for ext in ("json", "md"):
        assert (out / f"groups.{ext}").stat().st_size > 0
    records = _load(out, "groups")["records"]
    assert {r["dtype"] for r in records} == {"float32", "bfloat16"}
    assert {r["layer"] for r in records} == {s.name for s in groups.TINY}
    for s in groups.TINY:
        for dtype in ("float32", "bfloat16"):
            spec = groups._spec(s, dtype)
            onednn = jaxconv.convolution.available(spec)["onednn"]
            rows = {
                r["variant"]: r for r in records if r["layer"] == s.name and r["dtype"] == dtype
            }
            expected = {"default", "xla"} | ({"onednn"} if onednn is None else set())
            assert set(rows) == {f"{v} {p}" for v in expected for p in groups.PASSES}
            fwd = rows["default fwd"]
            assert fwd["default"] and fwd["plan"] and fwd["batch"] == 1
            assert (fwd["skipped"] or {}).get("onednn") == onednn  # the reason, when skipped
            # every tap that meets the input; a transposed conv's zero taps are not counted
            cost = jaxconv.conv_cost(
                (s.size, s.size, s.c_in), s.c_out, s.k, bias=False, **s.conv_args()
            )
            assert fwd["macs"] == cost.macs // (s.stride**2 if s.transposed else 1)
            assert rows["default fwd+bwd"]["macs"] == 3 * fwd["macs"]
            assert rows["xla fwd"]["speedup_vs_lax"] == 1.0
            for rec in rows.values():
                assert rec["default"] == rec["variant"].startswith("default")
                assert 0 < rec["min_s"] <= rec["median_s"] <= rec["max_s"]
    if any(r.get("skipped") for r in records):
        assert any("skipped on" in n for n in _load(out, "groups")["notes"])


def test_untuned_times_the_default_against_lax_at_two_batches(tmp_path):
    from bench.suites import untuned

    proc = _bench("untuned", "--quick", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = _load(tmp_path, "untuned")
    records = data["records"]
    assert {r["layer"] for r in records} == {s.name for s in untuned.TINY}
    assert {r["batch"] for r in records} == {1, 2}
    for s in untuned.TINY:
        for batch in (1, 2):
            rows = {
                r["variant"]: r for r in records if r["layer"] == s.name and r["batch"] == batch
            }
            spec = untuned._spec(s, batch, "float32")
            fallback = untuned.without_extension(spec, "cpu")
            assert ("einsum" in fallback) == (s.kernel == (1,) * len(s.kernel))
            variants = {"default", "xla"} | ({"no extension"} if "einsum" in fallback else set())
            assert set(rows) == {f"{v} {p}" for v in variants for p in untuned.PASSES}
            fwd = rows["default fwd"]
            assert fwd["plan"] == "/".join(jaxconv.convolution.choose(spec, platform="cpu").plan)
            assert fwd["without_extension"] == "/".join(fallback)
            cost = jaxconv.conv_cost(
                (*s.spatial, s.c_in), s.c_out, s.kernel, bias=False, batch=batch, **s.conv_args()
            )
            assert fwd["macs"] == cost.macs and rows["default fwd+bwd"]["macs"] == 3 * cost.macs
            assert rows["xla fwd"]["speedup_vs_lax"] == 1.0
    rule = [n for n in data["notes"] if "plain lax's speed" in n]
    assert len(rule) == 2 * 2 * 2  # (default, without the extension) × passes × batches


@pytest.mark.parametrize("name", ["tiny.g4_3x3", "tiny.dw3x3_m2", "tiny.transposed_4x4_s2"])
def test_torch_peer_runs_the_same_grouped_and_transposed_conv(name):
    pytest.importorskip("torch")
    import jax

    from bench._harness import Context
    from bench._peers import TorchPeer, check_agreement
    from bench.suites import groups

    (s,) = [t for t in groups.TINY if t.name == name]
    transposed = s.transposed
    ctx = Context(
        options=Options(quick=True), device=jax.devices("cpu")[0], env={}, peer=TorchPeer("cpu")
    )
    x, w, dy = ctx.rng_arrays(
        0,
        [(s.batch, s.size, s.size, s.c_in), s.kernel_shape, groups._spec(s, "float32").out_shape],
        "float32",
    )
    y = groups.conv_functions(None, **s.conv_args())[0](x, w[::-1, ::-1] if transposed else w)
    *_, y_torch = groups._torch(ctx, s, x, w, dy, "float32")
    assert check_agreement(s.name, y, y_torch, 1e-4) < 1e-5
    with pytest.raises(RuntimeError, match="not the same computation"):
        check_agreement(s.name, y + 1, y_torch, 1e-4)


def test_inception_peer_runs_the_same_block_with_jaxconvs_weights():
    """The inception suite's torch peer: jaxconv's weights, jaxconv's output, and gradients
    for every weight and bias in its fwd+bwd."""
    pytest.importorskip("torch")
    import jax

    from bench._harness import Context
    from bench._peers import TorchPeer, check_agreement
    from bench.suites import inception

    block = inception.TINY
    ctx = Context(
        options=Options(quick=True), device=jax.devices("cpu")[0], env={}, peer=TorchPeer("cpu")
    )
    (x,) = ctx.rng_arrays(0, [(2, block.size, block.size, block.c_in)], "float32")
    params, passes = inception._functions(block, "float32", fuse=False)
    forward, forward_backward, y_torch = inception._torch(ctx, block, params, x, "float32")
    y = passes["forward"](params, x)
    assert check_agreement(block.name, y, y_torch, 1e-4) < 1e-5
    assert bool((forward() == y_torch).all())
    grads = forward_backward()
    assert len(grads) == 12 and all(float(g.abs().sum()) > 0 for g in grads)
    with pytest.raises(RuntimeError, match="not the same computation"):
        check_agreement(block.name, y[..., ::-1], y_torch, 1e-4)


@pytest.mark.parametrize(
    "name, size, torchvision", [("mobilenetv2", 32, False), ("googlenet", 64, True)]
)
def test_torch_peer_runs_the_same_model_with_jaxconvs_weights(name, size, torchvision):
    """The model suite's torch peer gets jaxconv's weights and must give its logits; on
    torchvision's GoogLeNet its train step adds the auxiliary losses."""
    pytest.importorskip("torch")
    import jax

    from bench._harness import Context
    from bench._peers import TorchPeer
    from bench.suites import model

    case = model.ModelCase(name, size, 10, torchvision=torchvision)
    ctx = Context(
        options=Options(quick=True), device=jax.devices("cpu")[0], env={}, peer=TorchPeer("cpu")
    )
    x, labels = ctx.rng_arrays(0, [(2, size, size, 3), (2,)], "float32")
    labels = (abs(labels) * 10).astype("int32") % 10
    fns = model._functions(case, "float32", x)
    inference, eval_state = fns.inference, fns.eval_state
    logits = jax.jit(inference)(eval_state, x)
    np.testing.assert_allclose(
        jax.jit(fns.frozen)(fns.frozen_state, x), logits, rtol=1e-4, atol=1e-4
    )
    runners, err = model._torch_runners(ctx, case, eval_state, x, labels, "float32", logits)
    assert err < 1e-4
    assert set(runners) == {"torch inference", "torch train step"}
    assert tuple(runners["torch inference"]().shape) == (2, 10)
    assert float(runners["torch train step"]()) > 0


# --- the fusion report on known HLO -----------------------------------------------------------

YNN_BOTTLENECK_HLO = """\
HloModule jit_bott, is_scheduled=true

%fused_computation (param_0: f32[32,14,14,16], param_1: f32[5,5,16,48]) -> f32[32,14,14,48] {
  %param_0 = f32[32,14,14,16]{3,2,1,0} parameter(0)
  %param_1 = f32[5,5,16,48]{3,2,1,0} parameter(1)
  ROOT %conv.0 = f32[32,14,14,48]{3,2,1,0} convolution(%param_0, %param_1), window={size=5x5 pad=2_2x2_2}, dim_labels=b01f_01io->b01f
}

%fused_computation.1 (param_0.1: f32[6272,480], param_1.1: f32[480,16]) -> f32[6272,16] {
  %param_0.1 = f32[6272,480]{1,0} parameter(0)
  %param_1.1 = f32[480,16]{1,0} parameter(1)
  ROOT %dot.1 = f32[6272,16]{1,0} dot(%param_0.1, %param_1.1), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

%fused_computation.2 (param_0.4: f32[32,14,14,48], param_1.5: f32[48]) -> f32[32,14,14,48] {
  %param_0.4 = f32[32,14,14,48]{3,2,1,0} parameter(0)
  %param_1.5 = f32[48]{0} parameter(1)
  %add.1 = f32[32,14,14,48]{3,2,1,0} broadcast(%param_1.5), dimensions={3}
  %add.0 = f32[32,14,14,48]{3,2,1,0} add(%param_0.4, %add.1)
  %constant.4 = f32[] constant(0)
  %max.9 = f32[32,14,14,48]{3,2,1,0} broadcast(%constant.4), dimensions={}
  ROOT %max.8 = f32[32,14,14,48]{3,2,1,0} maximum(%add.0, %max.9)
}

%fused_computation.3 (param_0.7: f32[16], param_1.10: f32[6272,16]) -> f32[32,14,14,16] {
  %param_1.10 = f32[6272,16]{1,0} parameter(1)
  %bitcast.2 = f32[32,14,14,16]{3,2,1,0} bitcast(%param_1.10)
  %param_0.7 = f32[16]{0} parameter(0)
  %add.3 = f32[32,14,14,16]{3,2,1,0} broadcast(%param_0.7), dimensions={3}
  %add.2 = f32[32,14,14,16]{3,2,1,0} add(%bitcast.2, %add.3)
  %constant.5 = f32[] constant(0)
  %max.11 = f32[32,14,14,16]{3,2,1,0} broadcast(%constant.5), dimensions={}
  ROOT %max.10 = f32[32,14,14,16]{3,2,1,0} maximum(%add.2, %max.11)
}

ENTRY %main.3 (x.1: f32[32,14,14,480], wr.1: f32[480,16], br.1: f32[16], ws.1: f32[5,5,16,48], bd.1: f32[48]) -> f32[32,14,14,48] {
  %x.1 = f32[32,14,14,480]{3,2,1,0} parameter(0), metadata={op_name="x"}
  %wr.1 = f32[480,16]{1,0} parameter(1)
  %br.1 = f32[16]{0} parameter(2)
  %ws.1 = f32[5,5,16,48]{3,2,1,0} parameter(3)
  %bd.1 = f32[48]{0} parameter(4)
  %bitcast = f32[6272,480]{1,0} bitcast(%x.1)
  %ynn_fusion.1 = f32[6272,16]{1,0} fusion(%bitcast, %wr.1), kind=kCustom, calls=%fused_computation.1, backend_config={"fusion_config":{"kind":"__ynn_fusion"},"outer_dimension_partitions":[]}
  %bias_relu.1 = f32[32,14,14,16]{3,2,1,0} fusion(%br.1, %ynn_fusion.1), kind=kLoop, calls=%fused_computation.3, backend_config={"outer_dimension_partitions":["2"]}
  %ynn_fusion = f32[32,14,14,48]{3,2,1,0} fusion(%bias_relu.1, %ws.1), kind=kCustom, calls=%fused_computation, backend_config={"fusion_config":{"kind":"__ynn_fusion"},"outer_dimension_partitions":[]}
  ROOT %bias_relu = f32[32,14,14,48]{3,2,1,0} fusion(%ynn_fusion, %bd.1), kind=kLoop, calls=%fused_computation.2
}
"""  # noqa: E501 (HLO lines are long)

CUDNN_HLO = """\
HloModule jit_direct

ENTRY %main (x: f32[8,480,14,14], w: f32[48,480,5,5], b: f32[48]) -> f32[8,48,14,14] {
  %x = f32[8,480,14,14]{3,2,1,0} parameter(0)
  %w = f32[48,480,5,5]{3,2,1,0} parameter(1)
  %b = f32[48]{0} parameter(2)
  %cudnn-conv-bias-activation = (f32[8,48,14,14]{3,2,1,0}, u8[0]{0}) custom-call(%x, %w, %b), window={size=5x5 pad=2_2x2_2}, dim_labels=bf01_oi01->bf01, custom_call_target="__cudnn$convBiasActivationForward", backend_config={"cudnn_conv_backend_config":{"activation_mode":"kRelu","conv_result_scale":1}}
  ROOT %get-tuple-element = f32[8,48,14,14]{3,2,1,0} get-tuple-element(%cudnn-conv-bias-activation), index=0
}
"""  # noqa: E501 (HLO lines are long)

EIGEN_BF16_HLO = """\
HloModule jit_direct

%convert_computation (p: bf16[2,8,8,4]) -> f32[2,8,8,4] {
  %p = bf16[2,8,8,4]{3,2,1,0} parameter(0)
  ROOT %c = f32[2,8,8,4]{3,2,1,0} convert(%p)
}

%epilogue (q: f32[2,8,8,8]) -> bf16[2,8,8,8] {
  %q = f32[2,8,8,8]{3,2,1,0} parameter(0)
  %zero = f32[] constant(0)
  %zeros = f32[2,8,8,8]{3,2,1,0} broadcast(%zero), dimensions={}
  %relu = f32[2,8,8,8]{3,2,1,0} maximum(%q, %zeros)
  ROOT %out = bf16[2,8,8,8]{3,2,1,0} convert(%relu)
}

ENTRY %main (x: bf16[2,8,8,4], w: f32[3,3,4,8]) -> bf16[2,8,8,8] {
  %x = bf16[2,8,8,4]{3,2,1,0} parameter(0)
  %w = f32[3,3,4,8]{3,2,1,0} parameter(1)
  %upcast = f32[2,8,8,4]{3,2,1,0} fusion(%x), kind=kLoop, calls=%convert_computation
  %conv = f32[2,8,8,8]{3,2,1,0} convolution(%upcast, %w), window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f
  ROOT %down = bf16[2,8,8,8]{3,2,1,0} fusion(%conv), kind=kLoop, calls=%epilogue
}
"""  # noqa: E501 (HLO lines are long)


def test_fusion_report_on_ynnpack_bottleneck_hlo():
    computations, entry = parse_hlo(YNN_BOTTLENECK_HLO)
    assert entry == "main.3" and len(computations) == 5
    report = fusion_report(YNN_BOTTLENECK_HLO, "cpu")
    assert (report.kernels, report.fusions) == (4, 4)
    assert report.libraries == ("YNNPACK", "YNNPACK")
    dot, conv = report.anchors
    assert (dot.op, dot.kernel, dot.library, dot.fused) == ("dot", "ynn_fusion.1", "YNNPACK", ())
    # bias add + ReLU are not in the library call: they run as the next loop fusion
    assert dot.epilogue == {"bias_relu.1": ("add", "maximum")}
    assert conv.prologue == {"bias_relu.1": ("add", "maximum")}
    assert (conv.op, conv.epilogue) == ("convolution", {"bias_relu": ("add", "maximum")})
    assert "convolution [YNNPACK] in ynn_fusion" in report.summary()


def test_fusion_report_on_cudnn_custom_call():
    report = fusion_report(CUDNN_HLO, "gpu")
    assert (report.kernels, report.fusions) == (1, 0)
    assert report.custom_calls == ("__cudnn$convBiasActivationForward",)
    (anchor,) = report.anchors
    assert (anchor.op, anchor.library, anchor.fused) == ("custom-call", "cuDNN", ("add", "relu"))


def test_fusion_report_on_bare_convolution_with_converts():
    report = fusion_report(EIGEN_BF16_HLO, "cpu")
    (anchor,) = report.anchors
    assert (anchor.op, anchor.library, anchor.fused) == ("convolution", "Eigen", ())
    assert anchor.prologue == {"upcast": ("convert",)}
    assert anchor.epilogue == {"down": ("convert", "maximum")}
    assert fusion_report(EIGEN_BF16_HLO, "gpu").anchors[0].library == "XLA"


def test_fusion_report_needs_an_entry_computation():
    with pytest.raises(ValueError, match="no ENTRY computation"):
        fusion_report("HloModule empty\n")


# --- the harness ------------------------------------------------------------------------------


def test_round_robin_interleaves_primes_and_counts_runs():
    calls = []
    runners = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    timings = round_robin(runners, repeats=3, warmup=1)
    assert {n: len(t.times) for n, t in timings.items()} == {"a": 3, "b": 3, "c": 3}
    # warm-up, then rotating rounds where every timed call follows an untimed one of itself
    assert "".join(calls) == "abc" + "aabbcc" + "bbccaa" + "ccaabb"


def test_a_slow_baseline_gets_at_most_three_primed_samples_and_no_warmup():
    import jax

    from bench._harness import BASELINE_REPEATS, Context

    ctx = Context(options=Options(repeats=7, warmup=2), device=jax.devices("cpu")[0], env={})
    calls = []
    runners = {name: (lambda n=name: calls.append(n)) for name in "ab"}
    timed = ctx.time(runners)
    assert {n: len(t.times) for n, t in timed.items()} == {"a": 7, "b": 7}
    calls.clear()
    lax = ctx.time({"x": lambda: calls.append("x")}, baseline=True)
    assert BASELINE_REPEATS == 3 and len(lax["x"].times) == 3 and calls == ["x"] * 6


def test_queued_timing_queues_calls_and_syncs_once_per_sample():
    calls, finishes = [], []
    runner = lambda: calls.append(1)  # noqa: E731
    runner.finish = lambda: finishes.append(1)  # a torch runner's cuda.synchronize
    timings = round_robin({"a": runner}, repeats=3, warmup=1, target_s=1.0)
    # 1 warm-up + 1 sizing call, then per sample a primer and MAX_CALLS queued calls
    from jaxconv._timing import MAX_CALLS

    assert len(timings["a"].times) == 3 and len(calls) == 2 + 3 * (1 + MAX_CALLS)
    assert len(finishes) == 2 + 3 * 2  # once per synced unit, never per queued call


def test_device_timing_on_a_gpu_or_when_forced(monkeypatch):
    import types

    import jax
    import jax.numpy as jnp
    import numpy as np

    from bench._harness import TIMER_ENV, Context, uses_device_timing

    monkeypatch.delenv(TIMER_ENV, raising=False)
    gpu = Context(options=Options(), device=types.SimpleNamespace(platform="gpu"), env={})
    assert gpu.device_timing and gpu.target_s and gpu.dtypes() == ("bfloat16",)
    cpu = Context(options=Options(quick=True), device=jax.devices("cpu")[0], env={})
    assert not cpu.device_timing and cpu.target_s is None and cpu.dtypes() == ("float32",)
    assert not cpu.compile(jnp.sin, jnp.ones(4)).copies
    monkeypatch.setenv(TIMER_ENV, "queued")  # what the device check's dry run sets
    assert uses_device_timing("cpu") and cpu.target_s
    compiled = cpu.compile(jnp.negative, jnp.arange(4.0))
    assert len(compiled.copies) == 2 and compiled.copies[1][0] is not compiled.args[0]
    for _ in range(3):
        np.testing.assert_array_equal(compiled(), -np.arange(4.0))
    assert compiled._next == 1  # cycled: copy 0, 1, 0
    assert compiled.rotate(1 << 20, max_copies=4) == 4  # 16 bytes per copy: the cap


#: Szegedy et al. 2015, Table 1, "ops" column (millions of MACs per image). 5a's printed 54M
#: disagrees with the paper's own widths (51.1M), so it is left out.
TABLE1_OPS = {
    "inception_3a": 128,
    "inception_3b": 304,
    "inception_4a": 73,
    "inception_4b": 88,
    "inception_4c": 100,
    "inception_4d": 119,
    "inception_4e": 170,
    "inception_5b": 71,
}


def test_inception_suite_macs_match_the_paper():
    from bench.suites import inception
    from bench.suites._googlenet import BY_NAME

    for name, ops in TABLE1_OPS.items():
        assert abs(inception.block_macs(BY_NAME[name], 1) / 1e6 - ops) < 1, name
    assert inception.block_macs(BY_NAME["inception_4a"], 4) == 4 * inception.block_macs(
        BY_NAME["inception_4a"], 1
    )


def test_model_suite_macs_come_from_the_summary():
    from bench.suites import model

    nin = model.ModelCase("nin", 32, 10)
    # NiN on 32×32: mlpconv1 at 32×32, mlpconv2 at 16×16, mlpconv3 at 8×8 (Lin et al. 2013)
    expected = (
        32 * 32 * (5 * 5 * 3 * 192 + 192 * 160 + 160 * 96)
        + 16 * 16 * (5 * 5 * 96 * 192 + 192 * 192 + 192 * 192)
        + 8 * 8 * (3 * 3 * 192 * 192 + 192 * 192 + 192 * 10)
    )
    assert model.forward_macs(nin, 2, train=False) == 2 * expected
    assert model.forward_macs(nin, 2, train=True) == 2 * expected


def test_results_go_to_a_folder_per_device_kind():
    import jax

    # bench/results/<jaxconv.convolution.device_kind()>/: "cpu-x86_64-avx2-2c", not a bare "cpu"
    cpu = jax.devices("cpu")[0]
    assert device_dirname(cpu) == jaxconv.convolution.device_kind("cpu")
    assert re.fullmatch(r"cpu-[a-z0-9_]+-[a-z0-9_]+-\d+c", device_dirname(cpu))


def test_missing_torch_is_a_clear_error(monkeypatch):
    from bench import _peers

    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(ValueError, match=r"`--peers torch` needs PyTorch.*pip install torch"):
        _peers.load(("torch",), "cpu")


# --- the command line -------------------------------------------------------------------------


def test_parse_args_defaults_and_lists():
    assert cli.parse_args([]) == Options(suites=("bottleneck",))
    opts = cli.parse_args(
        [
            "conv1x1",
            "bottleneck",
            "--batch",
            "1,8,32",
            "--dtype",
            "float32,bfloat16",
            "--repeats",
            "5",
            "--warmup",
            "0",
            "--full",
        ]
    )
    assert opts.suites == ("conv1x1", "bottleneck") and opts.batches == (1, 8, 32)
    assert opts.dtypes == ("float32", "bfloat16") and (opts.n_repeats, opts.n_warmup) == (5, 0)
    assert opts.full and not opts.quick
    assert (Options(quick=True).n_repeats, Options().n_repeats) == (3, 20)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--batch", "0"], r"`--batch` must be comma-separated ints > 0, got '0'"),
        (["--batch", "8,x"], r"`--batch` must be comma-separated ints > 0, got '8,x'"),
        (["--dtype", "float8"], r"`--dtype` must be comma-separated of float32, bfloat16, float16"),
        (["--repeats", "0"], r"`--repeats` must be an int >= 1, got '0'"),
        (["--warmup", "-1"], r"`--warmup` must be an int >= 0, got '-1'"),
        (["nosuch"], r"unknown suite 'nosuch'; choose from bottleneck, conv1x1"),
        (["--full", "--quick"], r"argument --quick: not allowed with argument --full"),
        (["--peers", "tf"], r"`--peers` must be 'none' or comma-separated of torch, .*, got 'tf'"),
        (["--bogus"], r"unrecognized arguments: --bogus"),
        (["--out", ".", "--update-results"], r"--update-results: not allowed with argument --out"),
        (["lowering", "--only", "a", "--update-results"], r"`--only` times a subset: it cannot"),
        (["--quick", "--update-results"], r"`--quick` times tiny shapes: it cannot replace"),
        (
            ["bottleneck", "--only", "a"],
            r"`--only` works with lowering, groups, inception, untuned, not",
        ),
        (["lowering", "--only", ","], r"`--only` must be comma-separated shape or block names"),
    ],
)
def test_bad_flags_are_one_line_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m bench: error: ")
    assert re.search(message, err), err


def test_only_times_the_named_shapes_and_says_when_it_names_none(tmp_path):
    proc = _bench(
        "lowering", "--quick", "--only", "tiny.3x3", "--peers", "none", "--out", str(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {r["layer"] for r in _load(tmp_path, "lowering")["records"]} == {"tiny.3x3"}
    assert cli.parse_args(["inception", "--only", "inception_3a,inception_3a"]).only == (
        "inception_3a",
    )
    proc = _bench("lowering", "--quick", "--only", "nosuch", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert re.search(
        r"python -m bench: error: `--only` \(nosuch\) names nothing in suite 'lowering'; its "
        r"names: tiny\.3x3, tiny\.1x1",
        proc.stderr,
    ), proc.stderr[-2000:]


def test_out_must_be_a_directory(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("")
    with pytest.raises(SystemExit):
        cli.parse_args(["--out", str(target)])
    assert re.search(
        r"`--out` must be a directory, got the file .*file\.txt", capsys.readouterr().err
    )


def test_unknown_device_exits_2_with_one_line():
    proc = _bench("--quick", "--device", "nosuchplatform", timeout=60)
    assert proc.returncode == 2
    assert re.fullmatch(
        r"python -m bench: error: `--device` \(='nosuchplatform'\) is not "
        r"available here .*; available: .*cpu.*\n",
        proc.stderr,
    ), proc.stderr


def test_help_lists_every_suite_in_the_registry():
    from bench.suites import REGISTRY

    proc = _bench("--help", timeout=60)
    assert proc.returncode == 0, proc.stderr
    epilog = " ".join(proc.stdout.split("suites:")[-1].split())
    for name in REGISTRY:  # lowering and groups were once left out of a hand-written list
        assert re.search(rf"\b{name}: \w", epilog), (name, epilog)
    assert "groups: depthwise, grouped and transposed convs against PyTorch;" in epilog


def test_default_output_is_a_fresh_folder_outside_the_repo(tmp_path):
    from bench.__main__ import output_dir

    kind = "cpu-test-1c"
    first, second = output_dir(Options(), kind), output_dir(Options(), kind)
    assert first != second and first.is_dir() and kind in first.name
    assert ROOT not in first.resolve().parents
    assert output_dir(Options(out=tmp_path), kind) == tmp_path
    assert output_dir(Options(update_results=True), kind) == ROOT / "bench" / "results" / kind
    assert cli.parse_args(["--update-results"]).update_results


def test_quick_without_out_leaves_the_committed_results_alone():
    before = _snapshot(ROOT / "bench" / "results")
    proc = _bench("bottleneck", "--quick", "--no-plots", "--repeats", "1", "--warmup", "0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _snapshot(ROOT / "bench" / "results") == before
    written = re.search(r"→ (\S*jaxconv-bench-\S+)/", proc.stdout.replace("\n", ""))
    assert written and (Path(written.group(1)) / "bottleneck.json").is_file(), proc.stdout


def test_help_explains_every_option():
    text = cli.build_parser({"bottleneck": "b", "conv1x1": "c"}).format_help()
    for flag in (
        "--batch",
        "--dtype",
        "--repeats",
        "--warmup",
        "--full",
        "--quick",
        "--out",
        "--update-results",
        "--peers",
        "--device",
        "--only",
        "--replot",
    ):
        assert flag in text
