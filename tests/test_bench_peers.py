"""Benchmarks a reader understands: each suite's peer table (median, worst and where, against
torch and plain lax), the plot of jaxconv against the fastest peer per row, ``--replot`` on the
committed results, torch as the default peer where it is installed, the model suite's tiny
torch-peered ResNet-18 under ``--quick``, flags no suite reads, and goals reported as status.
Nothing here asserts a timing: the records are synthetic or committed ones."""

from __future__ import annotations

import doctest
import json
import shutil
import sys
from pathlib import Path

import jax
import pytest

from bench import __main__ as cli
from bench import _compare, _report
from bench._harness import Options

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted((ROOT / "bench" / "results").glob("*/*.json"))


def _rec(layer, variant, median_s, *, batch=8, dtype="float32", macs=100, **extra):
    """A record with the fields the comparisons read (and the tables print)."""
    rec = {
        "suite": "s",
        "variant": variant,
        "default": not extra.get("peer") and not variant.startswith("xla"),
        "batch": batch,
        "dtype": dtype,
        "median_s": median_s,
        "min_s": median_s,
        "max_s": median_s,
        "macs": macs,
        "xla_flops": None,
        "gflops": 2 * macs / median_s / 1e9,
        "repeats": 3,
        "layer": layer,
    }
    return rec | extra


def _lowering_like():
    """Three convs, fwd, each timed as jaxconv's default, torch and plain lax: jaxconv is
    1.25×, 0.8× and 2× torch's speed; lax is slower everywhere but on ``b``, where it beats
    torch."""
    records = []
    for layer, own, torch_s, lax_s in (
        ("a", 1.0, 1.25, 3.0),
        ("b", 1.0, 0.8, 0.7),
        ("c", 1.0, 2.0, 4.0),
    ):
        records += [
            _rec(layer, "onednn fwd", own, speedup_vs_lax=lax_s / own, **{"pass": "fwd"}),
            _rec(layer, "xla fwd", lax_s, speedup_vs_lax=1.0, **{"pass": "fwd"}),
            _rec(
                layer,
                "torch fwd",
                torch_s,
                peer="torch",
                ratio_vs_jaxconv=torch_s / own,
                **{"pass": "fwd"},
            ),
        ]
    return records


def test_summary_gives_median_worst_and_where_per_peer():
    comps = _compare.comparisons(_lowering_like())
    torch, lax = _compare.summary(comps)
    assert (torch.peer, torch.what, torch.dtype, torch.count) == ("torch", "fwd", "float32", 3)
    assert torch.median == pytest.approx(1.25) and torch.worst == pytest.approx(0.8)
    assert torch.worst_at == "b"
    assert (lax.peer, lax.median, lax.worst, lax.worst_at) == ("lax", 3.0, 0.7, "b")


def test_best_peer_per_row_is_the_fastest_one():
    best = {c.layer: c for c in _compare.best_per_row(_compare.comparisons(_lowering_like()))}
    assert {k: (c.peer, round(c.ratio, 3)) for k, c in best.items()} == {
        "a": ("torch", 1.25),
        "b": ("lax", 0.7),  # plain lax beat torch on b: jaxconv is compared with lax there
        "c": ("torch", 2.0),
    }


def test_old_peer_records_without_a_ratio_find_their_jaxconv_row():
    """The committed model and inception results predate ``ratio_vs_jaxconv`` on the peer's
    records: the peer is matched to jaxconv's default record of the same row and MACs."""
    records = [
        _rec("resnet50", "inference", 2.0, macs=10),
        _rec("resnet50", "train step", 6.0, macs=30),
        _rec("resnet50", "torch inference", 1.8, macs=10, peer="torch"),
        _rec("resnet50", "torch train step", 4.8, macs=30, peer="torch"),
        _rec("googlenet", "inference", 1.0, macs=10),
    ]
    comps = _compare.comparisons(records)
    assert [(c.what, round(c.ratio, 3)) for c in comps] == [("inference", 0.9), ("train step", 0.8)]
    assert _compare.unpeered(records, comps) == ["googlenet"]


def test_labels_name_the_batch_only_where_a_layer_repeats():
    rows = [
        _compare.Comparison("torch", "4a", "d", "float32", n, q) for n, q in ((1, 1.2), (32, 0.9))
    ]
    (line,) = _compare.summary(rows)
    assert line.worst_at == "4a, batch 32"
    assert _compare.labels(rows, keep_layer=False) == ["batch 1", "batch 32"]


def test_the_peer_table_leads_the_markdown_and_ends_the_terminal_output():
    from rich.console import Console

    records = _lowering_like()
    headers, rows = _report.peer_table(records, {})
    assert headers == ["peer", "rows", "median", "worst", "worst at"]  # one pass, one dtype
    assert rows == [
        ["torch", "3", "1.25×", "0.80×", "b"],
        ["plain lax", "3", "3.00×", "0.70×", "b"],
    ]
    page = _report.markdown("s", {}, [], records, "s.png")
    assert page.index("## jaxconv vs its peers") < page.index("| environment |")
    assert "| torch | 3 | 1.25× | 0.80× | b |" in page and "![s: " in page
    console = Console(width=120, record=True)
    console.print(_report.rich_peer_table("s", records, {"peer_note": "how to add torch"}))
    text = console.export_text()
    assert "s: jaxconv vs its peers" in text and "> 1 = jaxconv faster" in text
    assert "plain lax" in text and "s: how to add torch" in text


def test_the_plot_draws_one_sorted_bar_per_row_against_the_fastest_peer():
    fig = _report.peer_figure("lowering", _lowering_like(), {"device_kind": "cpu"})
    (ax,) = fig.axes
    bars = [p.get_width() for p in ax.patches]
    assert bars == pytest.approx([0.7, 1.25, 2.0])  # one bar per conv, the worst on top
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "a", "c"]
    assert ax.get_xscale() == "linear" and ax.get_xlim()[0] == 0  # ratios span < 10×
    assert any(list(line.get_xdata()) == [1.0, 1.0] for line in ax.get_lines())  # the line at 1
    colors = {p.get_facecolor()[:3] for p in ax.patches}
    assert len(colors) == 2  # coloured by which peer was the fastest, and only by that
    assert "> 1 = jaxconv faster" in fig.get_suptitle()
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["torch", "plain lax"]
    wide = [_rec("a", "onednn fwd", 1.0, speedup_vs_lax=40.0, **{"pass": "fwd"})]
    wide += [_rec("b", "onednn fwd", 1.0, speedup_vs_lax=0.9, **{"pass": "fwd"})]
    (ax,) = _report.peer_figure("lowering", wide, {}).axes
    assert ax.get_xscale() == "log" and "log scale" in ax.get_xlabel()
    assert _report.peer_figure("s", [_rec("a", "onednn fwd", 1.0)], {}) is None  # no peer


@pytest.fixture
def nothing_runs(monkeypatch):
    """Makes any timing or compilation fail the test."""
    from bench import _harness

    def forbidden(*args, **kwargs):
        raise AssertionError("--replot must time and compile nothing")

    monkeypatch.setattr(_harness, "round_robin", forbidden)
    monkeypatch.setattr(_harness, "compile_timed", forbidden)
    monkeypatch.setattr(cli, "run", forbidden)


@pytest.mark.parametrize("committed", COMMITTED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_replot_redraws_every_committed_result_and_runs_nothing(
    committed, tmp_path, nothing_runs, capsys
):
    shutil.copy(committed, tmp_path)
    assert cli.main(["--replot", str(tmp_path)]) == 0
    suite = committed.stem
    assert (tmp_path / f"{suite}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / f"{suite}.md").read_text()
    assert "## jaxconv vs its peers" in page and f"![{suite}: " in page
    out = capsys.readouterr().out
    assert f"{suite}: jaxconv vs its peers" in out and f"redrawn from {suite}.json" in out


def test_replot_takes_suite_names_and_no_run_flags(tmp_path, nothing_runs, capsys):
    for path in COMMITTED[:2]:
        shutil.copy(path, tmp_path)
    first = COMMITTED[0].stem
    assert cli.main(["--replot", str(tmp_path), first]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [f"{first}.png"]
    capsys.readouterr()
    assert cli.main(["--replot", str(tmp_path), "model"]) == 2  # no model.json there
    assert "found no results to redraw in" in capsys.readouterr().err
    for flags, message in (
        (["--batch", "8"], r"`--replot` runs nothing and redraws in DIR: `--batch` has no effect"),
        (["--peers", "torch"], r"`--peers` has no effect"),
        (["--no-plots"], r"`--no-plots` has no effect"),
        (["--out", str(tmp_path)], r"`--out` has no effect"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            cli.parse_args(["--replot", str(tmp_path), *flags])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err.replace("\\", "")
    with pytest.raises(SystemExit):
        cli.parse_args(["--replot", str(tmp_path / "nosuch")])
    assert "`--replot` must be a directory of results" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["--replot", str(empty)]) == 2
    assert "found no results to redraw" in capsys.readouterr().err


# --- the default peer -----------------------------------------------------------------------------


def test_the_default_bench_times_torch_where_it_is_installed():
    pytest.importorskip("torch")
    from bench._peers import TorchPeer

    ctx = cli._setup(cli.parse_args([]))
    assert isinstance(ctx.peer, TorchPeer) and "peer_note" not in ctx.env
    assert ctx.env["torch"].startswith(ctx.peer.version)
    assert cli._setup(cli.parse_args(["--peers", "none"])).peer is None


def test_without_torch_the_default_bench_says_how_to_add_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    ctx = cli._setup(cli.parse_args([]))
    assert ctx.peer is None
    note = ctx.env["peer_note"]
    assert "\n" not in note and "`pip install torch`" in note and "plain lax" in note
    assert "error" not in note.lower()
    # a suite without a torch peer does not look for torch, nor say anything about it
    assert "peer_note" not in cli._setup(cli.parse_args(["untuned"])).env
    assert "peer_note" not in cli._setup(cli.parse_args(["--peers", "none"])).env


def test_without_torch_the_bottleneck_suite_still_has_a_peer_table():
    from bench.suites import bottleneck

    assert bottleneck.XLA_DIRECT and bottleneck.XLA_BOTTLENECK  # plain lax: the same two paths
    records = [
        _rec("4a", bottleneck.DIRECT, 2.0, macs=9, speedup_vs_lax=1.5),
        _rec("4a", bottleneck.EINSUM, 0.2, macs=1, speedup_vs_lax=1.1),
    ]
    lines = _compare.summary(_compare.comparisons(records))
    assert [(line.peer, line.what) for line in lines] == [
        ("lax", bottleneck.DIRECT),
        ("lax", bottleneck.EINSUM),
    ]


# --- flags that would be ignored ------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["untuned", "--peers", "torch"], r"`--peers torch` has no effect on untuned; it applies"),
        (["model", "--full"], r"`--full` has no effect on model; it applies to bottleneck"),
        (["--peers", "torch,none"], r"`--peers` takes 'none' alone, not with a peer"),
    ],
)
def test_a_flag_no_named_suite_reads_is_a_usage_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_a_flag_only_some_named_suites_read_gets_a_note(capsys):
    options = cli.parse_args(["lowering", "untuned", "--peers", "torch", "--full"])
    assert options.peers == ("torch",) and options.full
    err = capsys.readouterr().err
    assert "note: `--full` has no effect on untuned" in err
    assert "note: `--peers torch` has no effect on untuned" in err


def test_peers_default_none_and_torch():
    assert cli.parse_args([]).peers is None  # torch where installed
    assert cli.parse_args(["--peers", "none"]).peers == ()
    assert cli.parse_args(["--peers", "torch"]).peers == ("torch",)


# --- the model suite's --quick --------------------------------------------------------------------


def test_quick_model_suite_keeps_a_tiny_resnet18_with_a_torch_peer():
    from bench.suites import model

    peered = [c for c in model.TINY if model.has_torch_peer(c.name)]
    assert [(c.name, c.size) for c in peered] == [("resnet18", 32)]


@pytest.mark.slow
def test_quick_model_suite_times_resnet18_against_torch(tmp_path):
    pytest.importorskip("torch")
    options = cli.parse_args(
        [
            *("model", "--quick", "--peers", "torch", "--repeats", "1", "--warmup", "0"),
            *("--no-plots", "--out", str(tmp_path)),
        ]
    )
    records = cli.run(options)["model"]
    rows = {(r["layer"], r["variant"]): r for r in records}
    assert {("resnet18", "torch inference"), ("resnet18", "torch train step")} <= set(rows)
    assert rows[("resnet18", "torch inference")]["ratio_vs_jaxconv"] > 0
    assert rows[("resnet18", "torch inference")]["base"] == "frozen inference"
    assert rows[("resnet18", "torch inference")]["ratio_vs_unfrozen"] > 0
    assert rows[("resnet18", "inference")]["batch"] == 2
    assert rows[("resnet18", "frozen inference")]["max_rel_err_vs_unfrozen"] <= 1e-4
    lines = _compare.summary(_compare.comparisons(records))
    assert [(line.peer, line.what, line.worst_at) for line in lines] == [
        ("torch", "frozen inference", "resnet18"),
        ("torch", "train step", "resnet18"),
    ]
    assert "No peer for nin." in (tmp_path / "model.md").read_text()


# --- goals ----------------------------------------------------------------------------------------


def test_a_goal_not_met_is_reported_as_its_status():
    from bench.suites import bottleneck

    missed = bottleneck.goal_status(14.7, 21.4, "inception_4a, batch 32, float32")
    assert missed.startswith("goal: the default path (d) ≥ 0.9 × the analytic speedup")
    assert "— not met: 14.7×, 0.69 × analytic" in missed
    assert "NOT" not in missed and "error" not in missed.lower()
    assert "— met: 20.0×" in bottleneck.goal_status(20.0, 21.4, "x")


def test_the_roofline_goal_needs_all_three_parts():
    from bench.suites import bottleneck

    status = bottleneck.roofline_goal_status
    assert "— met: 0.95 × roofline (19.0× of 20.0×)" in status(19.0, 20.0, 13.0, 1.0, "x")
    assert "— not met: 0.85 × roofline" in status(17.0, 20.0, 13.0, 1.1, "x")  # the roofline
    assert "— not met" in status(19.0, 20.0, 19.5, 1.1, "x")  # torch's own speedup is higher
    assert "— not met" in status(19.0, 20.0, 13.0, 0.97, "x")  # torch's direct 5×5 is faster
    assert "— not met: 0.95 × roofline (19.0× of 20.0×), torch not measured" in status(
        19.0, 20.0, None, None, "x"
    )


def test_a_goal_not_met_leaves_the_exit_code_alone(monkeypatch, tmp_path):
    """The bench exits 0 whatever its goals say (no flag asks for otherwise)."""
    from bench import suites

    def missed(ctx):
        ctx.note(suites.bottleneck.goal_status(1.0, 21.4, "synthetic"))
        return [_rec("4a", "d: jit, jaxconv default", 1.0, speedup_vs_lax=1.2)]

    monkeypatch.setitem(suites.REGISTRY, "bottleneck", missed)
    monkeypatch.setattr(cli, "_setup", lambda options: _context(options))
    argv = ["--quick", "--peers", "none", "--no-plots", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    notes = json.loads((tmp_path / "bottleneck.json").read_text())["notes"]
    assert notes == [suites.bottleneck.goal_status(1.0, 21.4, "synthetic")]


def _context(options: Options):
    import jax

    from bench._harness import Context

    ctx = Context(options=options, device=jax.devices("cpu")[0], env={})
    ctx._peaks.update({"float32": 1.0, "_bw": 1.0})  # no peak measured: nothing timed
    return ctx


# --- the examples in bench's docstrings -----------------------------------------------------------


@pytest.mark.parametrize("module", ["bench._compare", "bench._engines", "bench.suites.bottleneck"])
def test_docstring_examples(module):
    import importlib

    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    result = doctest.testmod(importlib.import_module(module), optionflags=flags)
    assert result.attempted > 0 and result.failed == 0


def test_an_engine_alone_times_no_torch_eager_in_other_suites(tmp_path, monkeypatch):
    """``--peers openvino model lowering``: torch is loaded to build the engines' networks,
    but lowering, which can only time torch eager, gets no peer (it timed torch unasked)."""
    from bench import _harness
    from bench.suites import REGISTRY

    seen = {}

    def suite(name):
        def run(ctx):
            seen[name] = ctx.peer
            return []

        return run

    for name in ("model", "lowering"):
        monkeypatch.setitem(REGISTRY, name, suite(name))
    monkeypatch.setattr(_harness.Context, "gemm_peak", lambda self, dtype: None)
    monkeypatch.setattr(_harness.Context, "bandwidth", lambda self: None)
    options = cli.parse_args(
        ["model", "lowering", "--peers", "openvino", "--out", str(tmp_path), "--no-plots"]
    )
    peer = object()  # what _setup loads for the engine: torch, to build their networks
    ctx = _harness.Context(options=options, device=jax.devices()[0], env={}, peer=peer)
    cli.run(options, ctx)
    assert seen == {"model": peer, "lowering": None}
