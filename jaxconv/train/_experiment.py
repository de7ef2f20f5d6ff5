"""The seed's experiment: the same small Inception net with and without the 1×1 reduce.

``python -m jaxconv.train --compare`` trains ``inception-direct5x5`` and
``inception-bottleneck`` (:class:`jaxconv.models.MiniInception` with ``bottleneck=False`` /
``True``) with identical settings, data and seed, and puts side by side what the 1×1
convolution notes claim: fewer parameters, less compute, less overfitting. Parameters and MACs
come from :func:`jaxconv.nn.summary` (the cost model: every kernel tap counted); time per step is
measured (median, compilation excluded); overfitting is the generalization gap — accuracy on
(un-augmented) training images minus test accuracy, both in eval mode.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxconv.train._config import TrainConfig
from jaxconv.train._loaders import load_dataset
from jaxconv.train._models import build_model
from jaxconv.train._run import prepare

__all__ = ["COMPARED", "compare", "model_cost"]

#: The two variants, direct first (the notes' "without 1×1" case).
COMPARED = ("inception-direct5x5", "inception-bottleneck")


def model_cost(name: str, num_classes: int, image_shape: tuple[int, ...]) -> tuple[int, int]:
    """``(parameters, MACs per image)`` of a registered model, from :func:`jaxconv.nn.summary`.

    Nothing is computed: the model is built and traced abstractly (eval mode).

    Examples:
      >>> from jaxconv.train._experiment import model_cost
      >>> params, macs = model_cost("inception-bottleneck", 10, (32, 32, 3))
      >>> params < model_cost("inception-direct5x5", 10, (32, 32, 3))[0]
      True
    """
    from jaxconv.nn import summary

    model = nnx.eval_shape(lambda: build_model(name, num_classes, nnx.Rngs(0)))
    model.eval()
    s = summary(model, jax.ShapeDtypeStruct((1, *image_shape), jnp.float32), xla=None)
    return int(s.total.params), int(s.total.macs)


def _suffixed(path: str | None, name: str) -> str | None:
    if path is None:
        return None
    stem, ext = os.path.splitext(path)
    return f"{stem}.{name}{ext or '.jsonl'}"


def _check_plot(plot: str | None) -> str | None:
    if plot in (None, "", "none"):
        return None
    if importlib.util.find_spec("matplotlib") is None:
        raise ValueError(
            "`plot` needs matplotlib, which is not installed: "
            "pip install 'jaxconv[bench]', or set `plot` to none"
        )
    folder = os.path.dirname(os.path.abspath(plot))
    if not os.path.isdir(folder):
        raise ValueError(f"`plot` folder {folder} does not exist")
    return plot


def _table(rows: list[dict]) -> Any:
    from rich.table import Table

    table = Table(title="1×1 reduce before each 5×5: with (bottleneck) vs without (direct)")
    for col in (
        "model",
        "params",
        "MMACs/img",
        "ms/step",
        "img/s",
        "train acc",
        "test acc",
        "gap",
        "test loss",
    ):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        table.add_row(
            r["model"],
            f"{r['params']:,}",
            f"{r['macs'] / 1e6:.1f}",
            f"{r['step_seconds'] * 1e3:.0f}",
            f"{r['images_per_second']:.1f}",
            f"{r['train_accuracy']:.1%}",
            f"{r['test_accuracy']:.1%}",
            f"{r['gap']:+.1%}",
            f"{r['test_loss']:.3f}",
        )
    if len(rows) == 2:
        direct, bottleneck = rows
        table.add_row(
            "direct / bottleneck",
            f"{direct['params'] / bottleneck['params']:.2f}×",
            f"{direct['macs'] / bottleneck['macs']:.2f}×",
            f"{direct['step_seconds'] / bottleneck['step_seconds']:.2f}×",
            "",
            "",
            "",
            "",
            "",
            style="bold",
        )
    return table


def _plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (curve, cost, fit) = plt.subplots(1, 3, figsize=(14, 4.2))
    for r in rows:
        curve.plot(
            [h["step"] for h in r["history"]],
            [h["test_accuracy"] for h in r["history"]],
            marker="o",
            label=r["model"],
        )
    curve.set(xlabel="step", ylabel="test accuracy", title="test accuracy during training")
    curve.grid(alpha=0.3)
    curve.legend(fontsize=8)
    keys = [("params", "parameters"), ("macs", "MACs / image"), ("step_seconds", "time / step")]
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        offset = (i - (len(rows) - 1) / 2) * width
        cost.bar(
            [j + offset for j in range(len(keys))],
            [r[k] / rows[0][k] for k, _ in keys],
            width,
            label=r["model"],
        )
        fit.bar(
            [j + offset for j in range(2)],
            [r["train_accuracy"], r["test_accuracy"]],
            width,
            label=f"{r['model']} (gap {r['gap']:+.1%})",
        )
    cost.set_xticks(range(len(keys)), [label for _, label in keys])
    cost.set(ylabel=f"relative to {rows[0]['model']}", title="cost")
    fit.set_xticks(range(2), ["train images", "test images"])
    fit.set(ylabel="accuracy (eval mode)", title="fit: train vs test accuracy")
    for ax in (cost, fit):
        ax.set_ylim(top=1.35 * ax.get_ylim()[1])  # room for the legend above the bars
        ax.legend(fontsize=8, loc="upper right")
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def compare(
    config: TrainConfig,
    *,
    models: tuple[str, ...] = COMPARED,
    plot: str | None = "inception-compare.png",
    report: str | None = None,
    console: Any = None,
) -> list[dict]:
    """Trains each of ``models`` with ``config`` and reports them side by side.

    Args:
      config: the shared settings (``config.model`` is ignored). A ``ckpt_dir`` gets one
        sub-directory per model; a ``metrics`` file one file per model (``m.<model>.jsonl``).
      models: registered model names (default: direct 5×5, then bottleneck).
      plot: where to save the plot (PNG; None or ``"none"``: no plot). Needs matplotlib.
      report: where to write the numbers as JSON (None: nowhere).
      console: a ``rich.console.Console``.

    Returns:
      one dict per model: ``model, params, macs, step_seconds, images_per_second,
      train_accuracy, train_loss, test_accuracy, test_loss, gap, history``.

    Raises:
      ValueError: bad settings, or a plot without matplotlib (before any training).
    """
    from rich.console import Console

    console = Console() if console is None else console
    plot = _check_plot(plot)
    config.validate()
    data = load_dataset(
        config.data, seed=config.seed, train_size=config.train_size, test_size=config.test_size
    )
    runs = []
    for name in models:  # set up both first: bad input fails before any training
        cfg = dataclasses.replace(
            config,
            model=name,
            metrics=_suffixed(config.metrics, name),
            ckpt_dir=None if config.ckpt_dir is None else os.path.join(config.ckpt_dir, name),
        )
        runs.append((name, prepare(cfg, data=data, console=console)))
    rows = []
    measured = min(len(data.test_labels), len(data.train_labels))
    for name, run in runs:
        console.rule(name)
        params, macs = model_cost(name, data.num_classes, run.trainer.input_shape)
        summary = run.run()
        train_eval = run.trainer.evaluate("train", limit=measured)
        rows.append(
            {
                "model": name,
                "params": params,
                "macs": macs,
                "step_seconds": summary.step_seconds,
                "images_per_second": summary.images_per_second,
                "train_accuracy": train_eval["train_accuracy"],
                "train_loss": train_eval["train_loss"],
                "test_accuracy": summary.test_accuracy,
                "test_loss": summary.test_loss,
                "gap": train_eval["train_accuracy"] - summary.test_accuracy,
                "steps": summary.step,
                "history": summary.history,
            }
        )
    if not console.is_terminal:  # a log file: do not squeeze the table into 80 columns
        console.width = max(console.width, 110)
    console.print(_table(rows))
    console.print(
        "MACs: jaxconv.nn.summary (cost model, every tap counted); gap: accuracy on "
        f"{measured} training images minus test accuracy, eval mode."
    )
    if plot is not None:
        _plot(rows, plot)
        console.print(f"plot: {plot}")
    if report is not None:
        with open(report, "w") as f:
            json.dump(
                {
                    "config": dataclasses.asdict(config),
                    "data": data.source,
                    "devices": [str(d) for d in jax.devices()],
                    "rows": rows,
                },
                f,
                indent=2,
            )
        console.print(f"report: {report}")
    return rows
