"""What a run shows on the terminal (process 0): its config, a progress bar, its summary."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

if TYPE_CHECKING:  # annotations only: the run module imports this one
    from jaxconv.train._checkpoint import Checkpoints
    from jaxconv.train._run import RunSummary
    from jaxconv.train._trainer import Trainer

__all__ = ["config_table", "progress_bar", "summary_table"]


def progress_bar(console: Console, enabled: bool) -> Progress:
    """The training progress bar, with the running loss, accuracy and images/s.

    Examples:
      >>> from rich.console import Console
      >>> from jaxconv.train._console import progress_bar
      >>> progress_bar(Console(quiet=True), enabled=False).disable
      True
    """
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "loss {task.fields[loss]:.4f}  acc {task.fields[acc]:6.1%}  "
            "{task.fields[ips]:7.1f} img/s"
        ),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled or jax.process_index() != 0,
    )


def config_table(trainer: Trainer, start: int, ckpt: Checkpoints | None) -> Table:
    """The run's settings: model, data, devices, optimization, checkpoints."""
    cfg = trainer.config
    table = Table(title="jaxconv.train", show_header=False, box=None)
    table.add_row(
        "model", f"{cfg.model}, {cfg.model_variant()} variant  ({trainer.num_params:,} parameters)"
    )
    if cfg.init is not None:
        table.add_row("init", cfg.init)
    table.add_row(
        "data",
        f"{trainer.data.source}  ({len(trainer.data.train_labels)} train / "
        f"{len(trainer.data.test_labels)} test, {trainer.data.num_classes} classes)",
    )
    if cfg.image_size is not None:
        size = "×".join(map(str, trainer.input_shape[:2]))
        table.add_row(
            "image size",
            f"{size}  (resized from {trainer.data.image_shape[0]}×{trainer.data.image_shape[1]})",
        )
    table.add_row(
        "devices",
        f"{trainer.mesh.devices.size} × {jax.devices()[0].platform}"
        f"  (batch {cfg.batch_size} split over axis 'data')",
    )
    for name in (
        "steps",
        "batch_size",
        "optimizer",
        "lr",
        "momentum",
        "weight_decay",
        "warmup_steps",
        "clip_norm",
        "label_smoothing",
        "augment",
        "seed",
    ):
        if name == "warmup_steps":
            default = " (default: min(10, 10% of the steps))" if cfg.warmup_steps is None else ""
            table.add_row(name, f"{cfg.warmup()}{default}")
        elif name != "momentum" or cfg.optimizer == "sgd":
            table.add_row(name, str(getattr(cfg, name)))
    if cfg.export_torchvision is not None:
        table.add_row("export", f"{cfg.export_torchvision}  (torchvision state_dict, at the end)")
    if ckpt is not None:
        table.add_row(
            "checkpoints",
            f"{ckpt.directory} (every {cfg.ckpt_every} steps, keep "
            f"{cfg.keep})" + (f" — resumed at step {start}" if start else ""),
        )
    return table


def summary_table(summary: RunSummary) -> Table:
    """What the run did: steps, losses, accuracies, time, last checkpoint."""
    table = Table(title="summary", show_header=False, box=None)
    rows = [
        ("steps", f"{summary.start_step} → {summary.step}"),
        ("train loss / acc", f"{summary.train_loss:.4f} / {summary.train_accuracy:.1%}"),
        ("test loss / acc", f"{summary.test_loss:.4f} / {summary.test_accuracy:.1%}"),
        (
            "time",
            f"{summary.seconds:.1f} s  ({summary.step_seconds * 1e3:.0f} ms/step, "
            f"{summary.images_per_second:.1f} img/s)",
        ),
        ("checkpoint", summary.checkpoint or "-"),
    ]
    if summary.interrupted:
        rows.append(("interrupted", f"by {summary.interrupted}; run again to resume"))
    for row in rows:
        table.add_row(*row)
    return table
