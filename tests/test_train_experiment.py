"""The --compare experiment's plumbing (table, plot, JSON), run on two tiny models."""

from __future__ import annotations

import importlib.util
import json

import pytest
from flax import nnx
from rich.console import Console
from test_train_support import Tiny, register

from jaxconv.train import TrainConfig, register_model
from jaxconv.train._experiment import COMPARED, compare, model_cost


class Wider(Tiny):
    def __init__(self, num_classes: int, rngs: nnx.Rngs):
        super().__init__(num_classes, rngs)
        self.head = nnx.Linear(8, num_classes, rngs=rngs)
        self.extra = nnx.Linear(8, 8, rngs=rngs)

    def __call__(self, x):
        h = nnx.relu(self.bn(self.conv(x))).mean(axis=(1, 2))
        return self.head(self.drop(self.extra(h)))


def test_compare_reports_both_models(tmp_path):
    register()
    register_model("tiny-wider", Wider)
    config = TrainConfig(
        steps=4,
        batch_size=16,
        train_size=96,
        test_size=24,
        eval_every=2,
        progress=False,
        metrics=str(tmp_path / "m.jsonl"),
    )
    out = Console(record=True, width=120)
    rows = compare(
        config,
        models=("tiny", "tiny-wider"),
        plot=str(tmp_path / "p.png"),
        report=str(tmp_path / "r.json"),
        console=out,
    )
    assert [r["model"] for r in rows] == ["tiny", "tiny-wider"]
    assert rows[1]["params"] == rows[0]["params"] + 8 * 8 + 8
    assert rows[1]["macs"] == rows[0]["macs"] + 8 * 8  # the extra dense layer, one image
    for r in rows:
        assert [h["step"] for h in r["history"]] == [2, 4]
        assert 0 <= r["train_accuracy"] <= 1 and r["gap"] == pytest.approx(
            r["train_accuracy"] - r["test_accuracy"]
        )
        assert r["step_seconds"] > 0
    text = out.export_text()
    assert "tiny-wider" in text and "direct / bottleneck" in text
    assert (tmp_path / "p.png").stat().st_size > 10_000
    with open(tmp_path / "r.json") as f:
        assert [r["model"] for r in json.load(f)["rows"]] == ["tiny", "tiny-wider"]
    assert (tmp_path / "m.tiny.jsonl").exists() and (tmp_path / "m.tiny-wider.jsonl").exists()


def test_the_seed_pair_costs_what_the_notes_say():
    direct = model_cost(COMPARED[0], 10, (32, 32, 3))
    bottleneck = model_cost(COMPARED[1], 10, (32, 32, 3))
    assert direct[0] > 2 * bottleneck[0] and direct[1] > 2 * bottleneck[1]


def test_plot_without_matplotlib_fails_before_training(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real(name, *a),
    )
    with pytest.raises(
        ValueError,
        match=r"`plot` needs matplotlib, which is not installed: "
        r"pip install 'jaxconv\[bench\]', or set `plot` to none",
    ):
        compare(TrainConfig(steps=1), plot=str(tmp_path / "p.png"))
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"`plot` folder .*nowhere does not exist"):
        compare(TrainConfig(steps=1), plot=str(tmp_path / "nowhere" / "p.png"))
