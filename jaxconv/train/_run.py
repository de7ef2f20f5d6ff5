"""A whole run, as ``python -m jaxconv.train`` does it: prepare, train, checkpoint, report.

:func:`prepare` does everything that can fail on bad input (data, model, checkpoint
directory, metrics file); :meth:`Run.run` then trains, evaluating, logging, checkpointing and
stopping cleanly on SIGTERM / SIGINT (:class:`StopSignals`).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np
from rich.console import Console

from jaxconv._check import check_int
from jaxconv.models import to_torchvision_state_dict
from jaxconv.train._checkpoint import Checkpoints
from jaxconv.train._config import TrainConfig
from jaxconv.train._console import config_table, progress_bar, summary_table
from jaxconv.train._dataset import Dataset
from jaxconv.train._loaders import load_dataset
from jaxconv.train._metrics_log import MetricsLog
from jaxconv.train._signals import StopSignals
from jaxconv.train._trainer import Trainer
from jaxconv.train._weights import check_weights_package, write_state_dict

__all__ = ["Run", "RunSummary", "prepare", "train"]


def _local(x: jax.Array) -> float:
    """A replicated scalar's value; this process's copy also when others hold the rest."""
    return float(np.asarray(x.addressable_data(0)))


@dataclass
class RunSummary:
    """What :func:`train` did.

    Attributes:
      config: the resolved config (as a dict).
      start_step: the step the run started from (> 0 after a resume).
      step: the step it reached.
      num_params: trainable parameters.
      train_loss: mean training loss over the last (up to) 20 steps.
      train_accuracy: mean training-batch accuracy over the same steps.
      test_loss: test loss at the end (``nan`` if not evaluated).
      test_accuracy: test accuracy at the end (``nan`` if not evaluated).
      seconds: wall time of the training loop.
      step_seconds: median seconds per step, compilation excluded.
      images_per_second: ``batch_size / step_seconds``.
      checkpoint: the last checkpoint's directory, if any.
      exported: the torchvision state_dict file written (``export_torchvision``), if any.
      interrupted: ``"SIGTERM"``/``"SIGINT"`` when a signal stopped the run, else ``None``.
      history: the evaluation records.

    Examples:
      >>> from jaxconv.train import RunSummary
      >>> RunSummary(config={}, start_step=0, step=10, num_params=5).interrupted is None
      True
    """

    config: dict
    start_step: int
    step: int
    num_params: int
    train_loss: float = math.nan
    train_accuracy: float = math.nan
    test_loss: float = math.nan
    test_accuracy: float = math.nan
    seconds: float = 0.0
    step_seconds: float = math.nan
    images_per_second: float = math.nan
    checkpoint: str | None = None
    exported: str | None = None
    interrupted: str | None = None
    history: list = field(default_factory=list)


def train(
    config: TrainConfig,
    *,
    data: Dataset | None = None,
    stop_at: int | None = None,
    console: Any = None,
) -> RunSummary:
    """Trains (or resumes) a model as ``python -m jaxconv.train`` does.

    With ``config.ckpt_dir`` set, the newest readable checkpoint there is restored first
    (refused with :class:`CheckpointMismatchError` if it belongs to another model or config),
    checkpoints are written every ``ckpt_every`` steps and at the end, and SIGTERM / Ctrl-C
    save one before returning (``summary.interrupted`` says which).

    Args:
      config: the run's configuration.
      data: a dataset; ``None`` → loaded from ``config.data`` (synthetic when that is None).
      stop_at: stop after this many completed steps (a checkpoint is saved there), as if
        interrupted; ``None`` → run to ``config.steps``.
      console: a ``rich.console.Console`` for the config, progress and summary.

    Returns:
      a :class:`RunSummary`.

    Examples:
      >>> import tempfile
      >>> from flax import nnx
      >>> from rich.console import Console
      >>> from jaxconv.train import TrainConfig, registered_model, synthetic_dataset, train
      >>> def mean_colour(k, rngs):
      ...     return nnx.Sequential(lambda x: x.mean(axis=(1, 2)), nnx.Linear(3, k, rngs=rngs))
      >>> quiet = Console(quiet=True)
      >>> cfg = TrainConfig(model="mean-colour", steps=4, batch_size=8,
      ...                   ckpt_dir=tempfile.mkdtemp())
      >>> data = synthetic_dataset(32, 16)
      >>> with registered_model("mean-colour", mean_colour):
      ...     first = train(cfg, data=data, stop_at=2, console=quiet)
      ...     resumed = train(cfg, data=data, console=quiet)
      >>> first.step, resumed.start_step, resumed.step
      (2, 2, 4)
    """
    return prepare(config, data=data, console=console).run(stop_at)


def prepare(config: TrainConfig, *, data: Dataset | None = None, console: Any = None) -> Run:
    """Everything before the first step: what can be wrong with the input is raised here.

    Loads the data, builds and shape-checks the model, opens the checkpoint directory and
    restores from it, opens the metrics file. The CLI reports errors from here in one line;
    an error during :meth:`Run.run` is a bug and keeps its traceback.
    """
    console = Console() if console is None else console
    config.validate()
    if config.export_torchvision is not None:  # fail now, not after the training
        _check_writable(config.export_torchvision, "export_torchvision")
    if data is None:
        data = load_dataset(
            config.data, seed=config.seed, train_size=config.train_size, test_size=config.test_size
        )
    trainer = Trainer(config, data)
    cfg = trainer.config
    ckpt = None
    if cfg.ckpt_dir is not None:
        identity = {**cfg.identity(), "data": data.fingerprint(), "state": trainer.signature}
        ckpt = Checkpoints(cfg.ckpt_dir, identity, keep=cfg.keep)
        try:
            restored = ckpt.restore_latest(trainer.state, trainer.replicated)
        except BaseException:
            ckpt.close()
            raise
        if restored is not None:
            trainer.step, trainer.state, _ = restored
        ckpt.write_config(cfg.to_dict())
    try:
        metrics_log = MetricsLog(cfg.metrics, trainer.step)
    except OSError as err:
        if ckpt is not None:
            ckpt.close()
        raise ValueError(
            f"`metrics` file {cfg.metrics} cannot be written: {err.strerror}"
        ) from None
    return Run(trainer, ckpt, metrics_log, console)


def _check_writable(path: str, argument: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"`{argument}` folder {folder} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"`{argument}` {path} is a directory")
    check_weights_package(path, argument)


class Run:
    """A prepared run (see :func:`prepare`); :meth:`run` trains and closes everything."""

    def __init__(
        self, trainer: Trainer, ckpt: Checkpoints | None, metrics_log: MetricsLog, console: Any
    ):
        self.trainer, self.ckpt, self.metrics_log, self.console = (
            trainer,
            ckpt,
            metrics_log,
            console,
        )
        self.start = trainer.step
        self.saved_at = self.start if ckpt is not None and self.start > 0 else None
        self.summary = RunSummary(
            config=trainer.config.to_dict(),
            start_step=self.start,
            step=self.start,
            num_params=trainer.num_params,
        )
        self.recent: list[tuple[float, float]] = []
        self.progress: Any = None
        self.task: Any = None

    def save(self, force: bool = False) -> None:
        trainer, ckpt = self.trainer, self.ckpt
        if ckpt is not None and self.saved_at != trainer.step:
            ckpt.save(trainer.step, trainer.state, config=trainer.config.to_dict(), force=force)
            self.saved_at = trainer.step
            self.summary.checkpoint = os.path.join(ckpt.directory, str(trainer.step))

    def evaluate(self) -> None:
        step = self.trainer.step
        results = self.trainer.evaluate()
        record = {"step": step, "kind": "eval", **results}
        self.summary.test_loss = results["test_loss"]
        self.summary.test_accuracy = results["test_accuracy"]
        self.summary.history.append(record)
        self.metrics_log.write(record)
        if jax.process_index() == 0:
            self.progress.console.print(
                f"step {step:>6}  test loss {record['test_loss']:.4f}  "
                f"test acc {record['test_accuracy']:.1%}"
            )

    def record(self, step: int, metrics: dict, seconds: float) -> None:
        values = {k: _local(v) for k, v in metrics.items()}
        self.recent.append((values["loss"], values["accuracy"]))
        del self.recent[:-20]
        ips = self.trainer.config.batch_size / seconds if seconds > 0 else math.nan
        self.metrics_log.write(
            {
                "step": step,
                "kind": "train",
                **values,
                "lr": float(self.trainer.schedule(step - 1)),
                "images_per_second": ips,
            }
        )
        loss, acc = np.mean(self.recent, axis=0)
        self.progress.update(
            self.task, completed=step - self.start, loss=float(loss), acc=float(acc), ips=ips
        )

    def close(self) -> None:
        """Closes the checkpoints and the metrics file."""
        if self.ckpt is not None:
            self.ckpt.close()
        self.metrics_log.close()

    def export(self) -> None:
        """Writes the weights as a torchvision state_dict to ``export_torchvision``."""
        path = self.trainer.config.export_torchvision
        if path is None:
            return
        if jax.process_index() == 0:
            state_dict = to_torchvision_state_dict(self.trainer.model())
            write_state_dict(state_dict, path, "export_torchvision")
            self.console.print(
                f"exported: torchvision state_dict of step {self.trainer.step} "
                f"({len(state_dict)} arrays) to {path}",
                soft_wrap=True,
                markup=False,
                highlight=False,
            )
        self.summary.exported = path

    def nothing_to_do(self) -> RunSummary:
        """A run resumed at (or past) its last step: says so and where its results are (and
        exports its weights when asked)."""
        cfg, summary = self.trainer.config, self.summary
        self.close()
        where = []
        if self.ckpt is not None:
            summary.checkpoint = os.path.join(self.ckpt.directory, str(self.start))
            where.append(f"checkpoint {summary.checkpoint}")
            where.append(f"config {os.path.join(self.ckpt.directory, 'config.json')}")
        if cfg.metrics is not None:
            where.append(f"metrics {os.path.abspath(cfg.metrics)}")
        if self.start == cfg.steps:
            state = f"the run is finished: step {self.start} of {cfg.steps}"
        else:
            state = f"the checkpoint is at step {self.start}, past this run's {cfg.steps} steps"
        if jax.process_index() == 0:
            self.console.print(
                f"nothing to do: {state}. Results: {'; '.join(where) or '-'}. "
                "More steps continue training.",
                soft_wrap=True,
                markup=False,
                highlight=False,
            )
        self.export()
        return summary

    def run(self, stop_at: int | None = None) -> RunSummary:
        """Trains to ``config.steps`` (or ``stop_at``); returns the :class:`RunSummary`.

        A run resumed at its last step (or past it) trains nothing and prints "nothing to do"
        with where its results are (:attr:`RunSummary.step` is then its ``start_step``).
        """
        trainer, cfg, summary = self.trainer, self.trainer.config, self.summary
        stop_at = check_int(stop_at, "stop_at", allow_none=True)
        assert cfg.steps is not None  # set by resolved()
        if self.start >= cfg.steps:
            return self.nothing_to_do()
        if jax.process_index() == 0:
            self.console.print(config_table(trainer, self.start, self.ckpt))
        last = min(cfg.steps, stop_at) if stop_at is not None else cfg.steps
        step_times: list[float] = []
        began = time.perf_counter()
        self.progress = progress_bar(self.console, cfg.progress)
        try:
            with StopSignals() as signals, self.progress:
                self.task = self.progress.add_task(
                    "train",
                    total=max(last - self.start, 0),
                    loss=math.nan,
                    acc=math.nan,
                    ips=math.nan,
                )
                pending = None  # the previous step's metrics: read after the next is dispatched
                tick = time.perf_counter()
                while trainer.step < last and not signals.should_stop(trainer.step):
                    metrics = trainer.train_step()
                    if pending is not None:
                        self.record(*pending)
                    checkpoint_now = trainer.step % cfg.ckpt_every == 0
                    evaluate_now = cfg.evaluates_at(trainer.step)
                    if checkpoint_now or evaluate_now:
                        jax.block_until_ready(metrics)
                    now = time.perf_counter()
                    if trainer.step > self.start + 1:  # the first step includes compilation
                        step_times.append(now - tick)
                    pending = (trainer.step, metrics, now - tick)
                    if checkpoint_now:
                        self.save()
                    if evaluate_now:
                        self.record(*pending)
                        pending = None
                        self.evaluate()
                    tick = time.perf_counter()
                if pending is not None:
                    self.record(*pending)
                summary.interrupted = signals.received
                self.save(force=True)
                if (
                    summary.interrupted is None
                    and trainer.step == cfg.steps
                    and (not summary.history or summary.history[-1]["step"] != trainer.step)
                ):
                    self.evaluate()
        finally:
            self.close()
        summary.step = trainer.step
        summary.seconds = time.perf_counter() - began
        if self.recent:
            summary.train_loss, summary.train_accuracy = map(float, np.mean(self.recent, axis=0))
        if step_times:
            summary.step_seconds = float(np.median(step_times))
            summary.images_per_second = cfg.batch_size / summary.step_seconds
        if jax.process_index() == 0:
            self.console.print(summary_table(summary))
        if summary.interrupted is None and trainer.step == cfg.steps:
            self.export()
        return summary
