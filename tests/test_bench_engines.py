"""The model suite's inference engines (``--peers torch-compile,openvino,onnxruntime``): a
missing engine is named and skipped, each engine's settings are recorded, an engine whose
logits disagree with jaxconv's is not timed, and the summary table has a row per engine. The
engines are faked here (monkeypatch); the few real runs skip where an engine is not installed
(CI installs only torch). Nothing here asserts a timing."""

from __future__ import annotations

import numpy as np
import pytest

from bench import __main__ as cli
from bench import _compare, _engines, _report
from bench._harness import Options


def test_peers_takes_the_engines_for_the_model_suite():
    options = cli.parse_args(["model", "--peers", "torch,torch-compile,openvino,onnxruntime"])
    assert options.peers == ("torch", "torch-compile", "openvino", "onnxruntime")
    assert cli.parse_args(["model", "--peers", "openvino"]).peers == ("openvino",)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["bottleneck", "--peers", "openvino"], "`--peers openvino` has no effect on bottleneck"),
        (["model", "--peers", "none,openvino"], "takes 'none' alone"),
        (["model", "--peers", "tensorrt"], "torch-compile, openvino, onnxruntime"),
    ],
)
def test_peers_rejects_engines_where_they_cannot_run(argv, message, capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(argv)
    assert message in capsys.readouterr().err


def test_an_engine_named_with_another_suite_is_noted(capsys):
    cli.parse_args(["model", "lowering", "--peers", "torch,onnxruntime"])
    assert "note: `--peers onnxruntime` has no effect on lowering" in capsys.readouterr().err


def test_a_missing_engine_is_named_in_one_line_and_skipped(monkeypatch):
    monkeypatch.setattr(
        _engines, "missing_modules", lambda name: ["openvino"] if name == "openvino" else []
    )
    present, note = _engines.available(["torch", "openvino", "onnxruntime"])
    assert present == ("onnxruntime",)
    assert note is not None and "\n" not in note
    assert "openvino (pip install openvino)" in note and "skipped" in note
    assert "onnxruntime" not in note


def test_setup_names_the_missing_engine_for_the_peer_table(monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setattr(_engines, "missing_modules", lambda name: [name])
    ctx = cli._setup(cli.parse_args(["model", "--peers", "openvino,onnxruntime"]))
    assert "openvino (pip install openvino)" in ctx.env["peer_note"]
    assert ctx.peer is None  # no engine is left, so torch is not loaded for them


def _fake_engine(name: str, scale: float = 1.0, fail: bool = False, ran: str | None = None):
    """A builder that returns ``scale ×`` the torch network's own logits (``fail``: raises;
    ``ran``: the precision it says it compiled for, as OpenVINO does)."""

    def build(net, x, threads, dtype):
        import torch

        if fail:
            raise RuntimeError("cannot convert this graph")
        with torch.no_grad():
            out = net(torch.from_numpy(x)).numpy() * scale
        settings = {"threads": threads, "fake": name, "dtype": dtype}
        if ran is not None:
            settings["ran_precision"] = ran
        return _engines.Engine(name, "0.0", settings, 0.5, 0.25, lambda: out, out)

    return build


def _context(*peers: str):
    """A ``--quick`` context on the CPU with the torch peer and ``--peers peers``."""
    import jax

    from bench._harness import Context
    from bench._peers import TorchPeer

    options = Options(quick=True, peers=peers)
    return Context(options=options, device=jax.devices("cpu")[0], env={}, peer=TorchPeer("cpu"))


def _resnet18_context(case=None, dtype="float32"):
    """``(ctx, case, eval state, x, jaxconv's logits)`` of ``case`` (ResNet-18 at 32×32) at
    batch 1, jaxconv's model in ``dtype``."""
    import jax

    from bench.suites import model

    case = case or model.ModelCase("resnet18", 32, 10)
    ctx = _context("openvino")
    (x,) = ctx.rng_arrays(0, [(1, case.size, case.size, 3)], "float32")
    fns = model._functions(case, dtype, x)
    eval_state = fns.eval_state
    logits = jax.jit(fns.inference)(eval_state, x)
    return ctx, case, eval_state, x, logits


def test_engines_agreeing_are_timed_with_their_settings_and_disagreeing_ones_are_not(
    monkeypatch,
):
    pytest.importorskip("torch")
    from bench.suites import model

    monkeypatch.setitem(_engines.BUILDERS, "torch-compile", _fake_engine("torch-compile"))
    monkeypatch.setitem(_engines.BUILDERS, "openvino", _fake_engine("openvino", scale=1.5))
    monkeypatch.setitem(_engines.BUILDERS, "onnxruntime", _fake_engine("onnxruntime", fail=True))
    ctx, case, eval_state, x, logits = _resnet18_context()
    runners, runs = model._engine_runners(ctx, case, eval_state, x, logits, _engines.ENGINES)
    assert set(runners) == set(runs) == {"torch-compile inference"}
    fields = runs["torch-compile inference"].fields
    assert runs["torch-compile inference"].base == "frozen inference"  # model.FROZEN
    assert fields["peer"] == "torch-compile"
    assert fields["peer_settings"] == {
        "threads": ctx.peer.threads,
        "fake": "torch-compile",
        "dtype": "float32",
    }
    assert (fields["load_s"], fields["first_call_s"]) == (0.5, 0.25)
    assert fields["peer_max_rel_err"] < 1e-4
    assert np.asarray(runners["torch-compile inference"]()).shape == (1, 10)
    notes = "\n".join(ctx.notes)
    assert "resnet18, batch 1: openvino disagrees with jaxconv's logits" in notes
    assert "resnet18, batch 1: onnxruntime could not run it (RuntimeError" in notes
    assert notes.count("not timed") == 2


def test_in_bfloat16_the_engines_run_bf16_or_are_named(monkeypatch):
    """bfloat16: each engine is built for it; one that cannot run it (ONNX Runtime's CPU
    provider has no bf16 Conv) is named and not timed; an OpenVINO that compiled for f32
    (no native bf16 here) is named, and timed as it ran."""
    pytest.importorskip("torch")
    from bench.suites import model

    monkeypatch.setitem(_engines.BUILDERS, "torch-compile", _fake_engine("torch-compile"))
    monkeypatch.setitem(_engines.BUILDERS, "openvino", _fake_engine("openvino", ran="f32"))
    monkeypatch.setitem(_engines.BUILDERS, "onnxruntime", _fake_engine("onnxruntime"))
    monkeypatch.setattr(_engines, "_onnxruntime_bf16_conv", lambda: "NotImplemented: Conv(22)")
    ctx, case, eval_state, x, logits = _resnet18_context(dtype="bfloat16")
    names = _engines.ENGINES
    runners, runs = model._engine_runners(ctx, case, eval_state, x, logits, names, "bfloat16")
    assert set(runners) == {"torch-compile inference", "openvino inference"}
    assert runs["openvino inference"].fields["peer_settings"]["dtype"] == "bfloat16"
    assert runs["openvino inference"].fields["peer_max_rel_err"] <= model.PEER_TOLERANCE["bfloat16"]
    notes = "\n".join(ctx.notes)
    assert "onnxruntime cannot run bfloat16: ONNX Runtime's CPUExecutionProvider has no " in notes
    assert "openvino was asked for bf16 and compiled for f32" in notes
    assert _engines.unsupported("openvino", "float16") is not None
    with pytest.raises(ValueError, match="`dtype` must be one of float32, bfloat16"):
        _engines.build("openvino", None, np.zeros((1, 3, 2, 2)), 1, "float16")


def test_the_engines_asked_are_the_installed_ones_and_torch_eager_only_when_named(monkeypatch):
    from bench.suites import model

    ctx = type("Ctx", (), {"options": Options(peers=("openvino",)), "peer": object()})()
    monkeypatch.setattr(_engines, "missing_modules", lambda name: [])
    assert model.engines_asked(ctx) == ("openvino",)
    assert not model.times_torch_eager(ctx)  # torch is loaded only to build the engines' nets
    ctx.options = Options(peers=("torch", "onnxruntime"))
    assert model.times_torch_eager(ctx)


def test_torchvisions_googlenet_is_the_engines_googlenet(monkeypatch):
    """GoogLeNet's peers run torchvision's variant, built by from_torchvision with
    transform_input stated (tests/test_bench.py checks torch's logits and train step on it)."""
    pytest.importorskip("torch")
    from bench.suites import model

    (full,) = model.TORCHVISION
    assert (full.name, full.label, model.peered(full)) == (
        "googlenet",
        "googlenet-torchvision",
        True,
    )
    assert model.TORCHVISION_OPTIONS["googlenet"] == {"aux_logits": True, "transform_input": False}
    assert not model.has_torch_peer("googlenet")  # the reference GoogLeNet is another network
    case = full._replace(size=64, classes=10)
    assert model.forward_macs(case, 2, train=False) > 0
    monkeypatch.setitem(_engines.BUILDERS, "openvino", _fake_engine("openvino"))
    ctx, case, eval_state, x, logits = _resnet18_context(case)
    runners, _ = model._engine_runners(ctx, case, eval_state, x, logits, ("openvino",))
    assert ctx.notes == [] and set(runners) == {"openvino inference"}


@pytest.mark.parametrize("peer, quick", [(object(), False), (None, False), (object(), True)])
def test_torchvisions_googlenet_is_timed_in_float32_only_beside_a_torch_peer(
    monkeypatch, peer, quick
):
    import jax

    from bench._harness import Context
    from bench.suites import model

    timed = []
    monkeypatch.setattr(model, "_case", lambda ctx, case, n, d: timed.append((case, d)) or [])
    options = Options(quick=quick, dtypes=("float32", "bfloat16"), batches=(8,))
    model.run(Context(options=options, device=jax.devices("cpu")[0], env={}, peer=peer))
    labels = {(case.label, dtype) for case, dtype in timed}
    with_googlenet = peer is not None and not quick
    assert (("googlenet-torchvision", "float32") in labels) == with_googlenet
    assert ("googlenet-torchvision", "bfloat16") not in labels
    assert ("resnet18" if quick else "resnet50", "bfloat16") in labels


def test_the_engines_are_timed_at_batches_1_and_8_by_default(monkeypatch):
    import jax

    from bench._harness import Context
    from bench.suites import model

    batches = set()
    monkeypatch.setattr(model, "_case", lambda ctx, case, n, d: batches.add(n) or [])
    monkeypatch.setattr(_engines, "missing_modules", lambda name: [])
    for peers, expected in ((("torch", "openvino"), {1, 8}), (("torch",), {8})):
        batches.clear()
        options = Options(peers=peers)
        model.run(Context(options=options, device=jax.devices("cpu")[0], env={}, peer=object()))
        assert batches == expected


def _rec(variant, median_s, batch, **extra):
    return {
        "suite": "model",
        "variant": variant,
        "default": not extra.get("peer"),
        "batch": batch,
        "dtype": "float32",
        "median_s": median_s,
        "min_s": median_s,
        "max_s": median_s,
        "macs": 100 * batch,
        "xla_flops": None,
        "gflops": 1.0,
        "repeats": 3,
        "layer": "resnet50",
    } | extra


def test_the_peer_table_has_a_row_per_engine_and_a_load_column():
    records = []
    for batch in (1, 8):
        records.append(_rec("inference", 1.0, batch, compile_s=2.0, lower_s=1.0))
        for name, ratio in (("torch", 1.5), ("torch-compile", 1.2), ("openvino", 0.5)):
            records.append(
                _rec(
                    f"{name} inference",
                    ratio,
                    batch,
                    peer=name,
                    ratio_vs_jaxconv=ratio,
                    **({} if name == "torch" else {"load_s": 3.0, "first_call_s": 0.5}),
                )
            )
    lines = _compare.summary(_compare.comparisons(records))
    assert [(line.peer, line.count, line.median) for line in lines] == [
        ("torch", 2, 1.5),
        ("torch-compile", 2, 1.2),
        ("openvino", 2, 0.5),
    ]
    _, rows = _report.peer_table(records, {})
    assert [row[0] for row in rows] == ["torch", "torch.compile", "OpenVINO"]
    cols = dict(_report.columns(records))
    assert cols["load+first call ms"](records[2]) == "3000+500"
    assert cols["load+first call ms"](records[0]) == "—"


# --- tiny real runs where an engine is installed (CI: skipped) -----------------------------


# the engines' own warnings (torch.export's pytree, os.fork in a threaded process): not ours
@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("name", ["openvino", "onnxruntime"])
def test_a_real_engine_runs_resnet18_with_jaxconvs_weights(name):
    pytest.importorskip("torch")
    pytest.importorskip(name)
    from bench.suites import model

    ctx, case, eval_state, x, logits = _resnet18_context()
    runners, runs = model._engine_runners(ctx, case, eval_state, x, logits, (name,))
    assert ctx.notes == []
    assert runs[f"{name} inference"].fields["peer_max_rel_err"] < 1e-4
    settings = runs[f"{name} inference"].fields["peer_settings"]
    threads = ctx.peer.threads
    if name == "openvino":
        assert settings["INFERENCE_PRECISION_HINT"] == settings["ran_precision"] == "f32"
        assert settings["INFERENCE_NUM_THREADS"] == threads
    else:
        assert settings["graph_optimization_level"] == "ORT_ENABLE_ALL"
        assert settings["intra_op_num_threads"] == threads
    assert np.asarray(runners[f"{name} inference"]()).shape == (1, 10)


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_real_openvino_runs_resnet18_in_bfloat16_or_says_it_did_not():
    pytest.importorskip("torch")
    pytest.importorskip("openvino")
    from bench.suites import model

    ctx, case, eval_state, x, logits = _resnet18_context(dtype="bfloat16")
    runners, runs = model._engine_runners(
        ctx, case, eval_state, x, logits, ("openvino",), "bfloat16"
    )
    settings = runs["openvino inference"].fields["peer_settings"]
    assert settings["INFERENCE_PRECISION_HINT"] == "bf16"
    assert settings["ran_precision"] in ("bf16", "f32")
    assert (settings["ran_precision"] == "f32") == any("compiled for f32" in n for n in ctx.notes)
    assert np.asarray(runners["openvino inference"]()).shape == (1, 10)


def test_onnxruntime_says_whether_its_cpu_provider_has_a_bfloat16_conv():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    why = _engines.unsupported("onnxruntime", "bfloat16")
    assert why is None or why.startswith("ONNX Runtime's CPUExecutionProvider has no bfloat16")
    assert _engines.unsupported("onnxruntime", "float32") is None
