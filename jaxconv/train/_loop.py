"""The training loop: jit-compiled train/eval steps on a data-parallel mesh, with checkpoints.

The whole training state — model (parameters, BatchNorm statistics, RNG streams) and optimizer
(moments, step) — is one ``nnx.State`` pytree, replicated over the mesh; the batch is split
over it. Batches are a pure function of ``(seed, step)``, so restoring that state and the step
number continues a run exactly where it stopped.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxconv.train._checkpoint import Checkpoints, state_signature
from jaxconv.train._config import TrainConfig
from jaxconv.train._data import Dataset, eval_batches, load_dataset, train_batch
from jaxconv.train._models import build_model
from jaxconv.train._optim import learning_rate_schedule, make_optimizer
from jaxconv.train._sharding import (
    check_batch_size,
    data_sharding,
    make_mesh,
    put_replicated,
    replicated,
    shard_batch,
)

__all__ = ["RunSummary", "Trainer", "classification_loss", "train"]


def classification_loss(outputs: Any, labels: jax.Array, *, num_classes: int,
                        label_smoothing: float = 0.0, aux_weight: float = 0.3
                        ) -> tuple[jax.Array, jax.Array]:
    """Mean softmax cross-entropy; auxiliary heads (a tuple output) add ``aux_weight`` each.

    Args:
      outputs: logits ``[B, K]``, or a tuple ``(logits, *aux_logits)`` (GoogLeNet in training).
      labels: ``int32[B]``.
      num_classes: ``K``.
      label_smoothing: mass spread uniformly over the ``K`` classes.
      aux_weight: weight of each auxiliary loss (0.3 in GoogLeNet, §5).

    Returns:
      ``(loss, logits)``: the scalar loss and the main head's float32 logits.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxconv.train import classification_loss
      >>> logits, labels = jnp.zeros((2, 4)), jnp.array([0, 3])
      >>> round(float(classification_loss(logits, labels, num_classes=4)[0]), 4)  # log 4
      1.3863
      >>> loss, _ = classification_loss((logits, logits), labels, num_classes=4, aux_weight=0.3)
      >>> round(float(loss), 4)  # 1.3 · log 4
      1.8022
    """
    heads = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), label_smoothing)

    def cross_entropy(logits: jax.Array) -> jax.Array:
        return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets).mean()

    logits = heads[0].astype(jnp.float32)
    loss = cross_entropy(logits)
    for aux in heads[1:]:
        loss = loss + aux_weight * cross_entropy(aux)
    return loss, logits


def _scalar(x: jax.Array) -> float:
    """A replicated scalar's value; this process's copy also when others hold the rest."""
    return float(np.asarray(x.addressable_data(0)))


def _train_step(graph: Any, loss_options: tuple, state: Any, images: jax.Array,
                labels: jax.Array) -> tuple[Any, dict[str, jax.Array]]:
    model, optimizer = nnx.merge(graph, state)
    num_classes, label_smoothing, aux_weight = loss_options

    def loss_fn(model):
        return classification_loss(model(images), labels, num_classes=num_classes,
                                   label_smoothing=label_smoothing, aux_weight=aux_weight)

    (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    optimizer.update(model, grads)
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads),
               "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)}
    return nnx.state((model, optimizer)), metrics


def _eval_step(graph: Any, state: Any, images: jax.Array, labels: jax.Array,
               mask: jax.Array) -> dict[str, jax.Array]:
    model, _ = nnx.merge(graph, state)
    logits = model(images)
    logits = logits[0] if isinstance(logits, (tuple, list)) else logits
    per_example = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32),
                                                                  labels)
    correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    return {"loss": jnp.sum(per_example * mask), "correct": jnp.sum(correct * mask),
            "count": jnp.sum(mask)}


@functools.cache
def _compiled_steps(mesh: Any) -> tuple[Any, Any]:
    """The jitted steps for ``mesh``. The graph (which holds the optimizer) is a static
    argument, so trainers of the same model and config share one compilation."""
    batch, rep = data_sharding(mesh), replicated(mesh)
    train = jax.jit(_train_step, static_argnums=(0, 1), in_shardings=(rep, batch, batch),
                    out_shardings=rep)
    evaluate = jax.jit(_eval_step, static_argnums=0, in_shardings=(rep, batch, batch, batch),
                       out_shardings=rep)
    return train, evaluate


# Equal arguments give the same transformation object, hence equal (static) graphs.
_optimizer = functools.lru_cache(maxsize=64)(make_optimizer)


class Trainer:
    """A model, its optimizer and the compiled train/eval steps on a data-parallel mesh.

    Args:
      config: a :class:`TrainConfig` (resolved here against ``data``).
      data: the dataset (its ``num_classes`` sizes the model's head).
      mesh: the mesh; ``None`` → :func:`make_mesh` ``(config.devices)``.

    Attributes:
      state: the whole training state (``nnx.State`` of ``(model, optimizer)``), replicated.
      step: completed training steps.
      config: the resolved config.
      mesh: the device mesh.

    Examples:
      >>> from flax import nnx
      >>> from jaxconv.train import Trainer, TrainConfig, register_model, synthetic_dataset
      >>> register_model("mean-colour", lambda k, rngs: nnx.Sequential(
      ...     lambda x: x.mean(axis=(1, 2)), nnx.Linear(3, k, rngs=rngs)))
      >>> data = synthetic_dataset(32, 16)
      >>> t = Trainer(TrainConfig(model="mean-colour", steps=2, batch_size=8), data)
      >>> metrics = t.train_step()
      >>> t.step, sorted(metrics)
      (1, ['accuracy', 'grad_norm', 'loss'])
      >>> sorted(t.evaluate())
      ['test_accuracy', 'test_loss']
    """

    def __init__(self, config: TrainConfig, data: Dataset, mesh: Any = None):
        self.config = config = config.resolved(len(data.train_labels))
        self.data = data
        self.mesh = make_mesh(config.devices) if mesh is None else mesh
        check_batch_size(config.batch_size, self.mesh)
        model = build_model(config.model, data.num_classes, nnx.Rngs(config.seed))
        self.num_params = sum(int(np.prod(p.shape)) for p in
                              jax.tree.leaves(nnx.state(model, nnx.Param)))
        self.schedule = learning_rate_schedule(config.lr, config.steps, config.warmup_steps)
        tx = _optimizer(config.optimizer, lr=config.lr, steps=config.steps,
                        warmup_steps=config.warmup_steps, weight_decay=config.weight_decay,
                        momentum=config.momentum, clip_norm=config.clip_norm)
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        model.train()
        self._train_graph, state = nnx.split((model, optimizer))
        model.eval()
        self._eval_graph, _ = nnx.split((model, optimizer))
        self.replicated = replicated(self.mesh)
        self.state = put_replicated(state, self.mesh)
        self.signature = state_signature(self.state)
        self.step = 0
        self._loss_options = (data.num_classes, config.label_smoothing, config.aux_weight)
        self._train_step, self._eval_step = _compiled_steps(self.mesh)
        self._check_input()

    def _check_input(self) -> None:
        """Traces the forward pass now, so that a model/data mismatch is a clear setup error.

        Only the forward pass: a failure in the gradient would be a bug, not bad input.
        """
        shape = self.data.image_shape
        images = jax.ShapeDtypeStruct((self.config.batch_size, *shape), jnp.float32)
        try:
            jax.eval_shape(lambda state, x: nnx.merge(self._eval_graph, state)[0](x),
                           self.state, images)
        except (ValueError, TypeError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"`--model` {self.config.model} cannot train on the "
                             f"{'×'.join(map(str, shape))} images of {self.data.source}: "
                             f"{reason}") from None

    def batch(self, step: int) -> tuple[jax.Array, jax.Array]:
        """The training batch of ``step``, placed on the mesh."""
        c = self.config
        images, labels = train_batch(self.data, c.batch_size, c.seed, step,
                                     augmentation=c.augment)
        return tuple(shard_batch(self.mesh, [images, labels]))  # type: ignore[return-value]

    def train_step(self) -> dict[str, jax.Array]:
        """Runs one step on the batch of :attr:`step`; returns its metrics (device scalars)."""
        images, labels = self.batch(self.step)
        self.state, metrics = self._train_step(self._train_graph, self._loss_options,
                                               self.state, images, labels)
        self.step += 1
        return metrics

    def evaluate(self, split: str = "test", limit: int | None = None) -> dict[str, float]:
        """Loss and accuracy on a split in eval mode (running BN statistics, no dropout).

        Args:
          split: ``"test"``, or ``"train"`` (un-augmented training images).
          limit: only the first ``limit`` images of the split.

        Returns:
          ``{"<split>_loss": …, "<split>_accuracy": …}``.
        """
        totals = None
        for images, labels, mask in eval_batches(self.data, self.config.batch_size, split=split,
                                                 limit=limit):
            out = self._eval_step(self._eval_graph, self.state,
                                  *shard_batch(self.mesh, [images, labels, mask]))
            totals = out if totals is None else jax.tree.map(jnp.add, totals, out)
        n = _scalar(totals["count"])
        return {f"{split}_loss": _scalar(totals["loss"]) / n,
                f"{split}_accuracy": _scalar(totals["correct"]) / n}


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
    interrupted: str | None = None
    history: list = field(default_factory=list)


class _Signals:
    """Turns the first SIGTERM / SIGINT into a flag the loop checks between steps."""

    def __init__(self):
        self.received: str | None = None
        self._old: dict = {}

    def _handle(self, signum, frame):
        if self.received is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


class _MetricsFile:
    """The ``--metrics`` JSON-lines file; on resume, lines past the resumed step are dropped."""

    def __init__(self, path: str | None, start_step: int):
        self.file = None
        if path is None or jax.process_index() != 0:
            return
        kept = []
        if start_step > 0 and os.path.exists(path):
            with open(path) as f:
                for line in f:
                    with contextlib.suppress(ValueError):
                        if json.loads(line).get("step", 0) <= start_step:
                            kept.append(line)
        self.file = open(path, "w")
        self.file.writelines(kept)
        self.file.flush()

    def write(self, record: dict) -> None:
        if self.file is not None:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _progress(console: Any, enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:6.1%}  "
                   "{task.fields[ips]:7.1f} img/s"),
        TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, disable=not enabled or jax.process_index() != 0,
    )


def _config_table(cfg: TrainConfig, trainer: Trainer, start: int, ckpt: Checkpoints | None):
    from rich.table import Table

    table = Table(title="jaxconv.train", show_header=False, box=None)
    table.add_row("model", f"{cfg.model}  ({trainer.num_params:,} parameters)")
    table.add_row("data", f"{trainer.data.source}  ({len(trainer.data.train_labels)} train / "
                  f"{len(trainer.data.test_labels)} test, {trainer.data.num_classes} classes)")
    table.add_row("devices", f"{trainer.mesh.devices.size} × {jax.devices()[0].platform}"
                  f"  (batch {cfg.batch_size} split over axis 'data')")
    for name in ("steps", "batch_size", "optimizer", "lr", "momentum", "weight_decay",
                 "warmup_steps", "clip_norm", "label_smoothing", "augment", "seed"):
        if name != "momentum" or cfg.optimizer == "sgd":
            table.add_row(name, str(getattr(cfg, name)))
    if ckpt is not None:
        table.add_row("checkpoints", f"{ckpt.directory} (every {cfg.ckpt_every} steps, keep "
                      f"{cfg.keep})" + (f" — resumed at step {start}" if start else ""))
    return table


def _summary_table(summary: RunSummary):
    from rich.table import Table

    table = Table(title="summary", show_header=False, box=None)
    rows = [
        ("steps", f"{summary.start_step} → {summary.step}"),
        ("train loss / acc", f"{summary.train_loss:.4f} / {summary.train_accuracy:.1%}"),
        ("test loss / acc", f"{summary.test_loss:.4f} / {summary.test_accuracy:.1%}"),
        ("time", f"{summary.seconds:.1f} s  ({summary.step_seconds * 1e3:.0f} ms/step, "
                 f"{summary.images_per_second:.1f} img/s)"),
        ("checkpoint", summary.checkpoint or "-"),
    ]
    if summary.interrupted:
        rows.append(("interrupted", f"by {summary.interrupted}; run again to resume"))
    for row in rows:
        table.add_row(*row)
    return table


def train(config: TrainConfig, *, data: Dataset | None = None, stop_at: int | None = None,
          console: Any = None) -> RunSummary:
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
      >>> from jaxconv.train import TrainConfig, register_model, synthetic_dataset, train
      >>> register_model("mean-colour", lambda k, rngs: nnx.Sequential(
      ...     lambda x: x.mean(axis=(1, 2)), nnx.Linear(3, k, rngs=rngs)))
      >>> quiet = Console(quiet=True)
      >>> cfg = TrainConfig(model="mean-colour", steps=4, batch_size=8,
      ...                   ckpt_dir=tempfile.mkdtemp())
      >>> data = synthetic_dataset(32, 16)
      >>> train(cfg, data=data, stop_at=2, console=quiet).step
      2
      >>> resumed = train(cfg, data=data, console=quiet)
      >>> resumed.start_step, resumed.step
      (2, 4)
    """
    return prepare(config, data=data, console=console).run(stop_at)


def prepare(config: TrainConfig, *, data: Dataset | None = None, console: Any = None) -> _Run:
    """Everything before the first step: what can be wrong with the input is raised here.

    Loads the data, builds and shape-checks the model, opens the checkpoint directory and
    restores from it, opens the metrics file. The CLI reports errors from here in one line;
    an error during :meth:`_Run.run` is a bug and keeps its traceback.
    """
    from rich.console import Console

    console = Console() if console is None else console
    if data is None:
        config.validate()
        data = load_dataset(config.data, seed=config.seed, train_size=config.train_size,
                            test_size=config.test_size)
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
        metrics_file = _MetricsFile(cfg.metrics, trainer.step)
    except OSError as err:
        if ckpt is not None:
            ckpt.close()
        raise ValueError(f"`--metrics` file {cfg.metrics} cannot be written: "
                         f"{err.strerror}") from None
    return _Run(trainer, ckpt, metrics_file, console)


class _Run:
    """A prepared run (see :func:`prepare`); :meth:`run` trains and closes everything."""

    def __init__(self, trainer: Trainer, ckpt: Checkpoints | None, metrics_file: _MetricsFile,
                 console: Any):
        self.trainer, self.ckpt, self.metrics_file, self.console = (trainer, ckpt, metrics_file,
                                                                    console)
        self.start = trainer.step
        self.saved_at = self.start if ckpt is not None and self.start > 0 else None
        self.summary = RunSummary(config=trainer.config.to_dict(), start_step=self.start,
                                  step=self.start, num_params=trainer.num_params)
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
        record = {"step": step, "kind": "eval", **self.trainer.evaluate()}
        self.summary.test_loss = record["test_loss"]
        self.summary.test_accuracy = record["test_accuracy"]
        self.summary.history.append(record)
        self.metrics_file.write(record)
        if jax.process_index() == 0:
            self.progress.console.print(f"step {step:>6}  test loss {record['test_loss']:.4f}  "
                                        f"test acc {record['test_accuracy']:.1%}")

    def record(self, step: int, metrics: dict, seconds: float) -> None:
        values = {k: _scalar(v) for k, v in metrics.items()}
        self.recent.append((values["loss"], values["accuracy"]))
        del self.recent[:-20]
        ips = self.trainer.config.batch_size / seconds if seconds > 0 else math.nan
        self.metrics_file.write({"step": step, "kind": "train", **values,
                                 "lr": float(self.trainer.schedule(step - 1)),
                                 "images_per_second": ips})
        loss, acc = np.mean(self.recent, axis=0)
        self.progress.update(self.task, completed=step - self.start, loss=float(loss),
                             acc=float(acc), ips=ips)

    def run(self, stop_at: int | None = None) -> RunSummary:
        """Trains to ``config.steps`` (or ``stop_at``); returns the :class:`RunSummary`."""
        trainer, cfg, summary = self.trainer, self.trainer.config, self.summary
        if stop_at is not None and (isinstance(stop_at, bool) or not isinstance(stop_at, int)
                                    or stop_at < 1):
            raise ValueError(f"`stop_at` must be a positive int, got {stop_at!r}")
        if jax.process_index() == 0:
            self.console.print(_config_table(cfg, trainer, self.start, self.ckpt))
        last = min(cfg.steps, stop_at) if stop_at is not None else cfg.steps
        step_times: list[float] = []
        began = time.perf_counter()
        self.progress = _progress(self.console, cfg.progress)
        try:
            with _Signals() as signals, self.progress:
                self.task = self.progress.add_task("train", total=max(last - self.start, 0),
                                                   loss=math.nan, acc=math.nan, ips=math.nan)
                pending = None  # the previous step's metrics: read after the next is dispatched
                tick = time.perf_counter()
                while trainer.step < last and signals.received is None:
                    metrics = trainer.train_step()
                    if pending is not None:
                        self.record(*pending)
                    checkpoint_now = trainer.step % cfg.ckpt_every == 0
                    evaluate_now = bool(cfg.eval_every) and trainer.step % cfg.eval_every == 0
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
                if summary.interrupted is None and trainer.step == cfg.steps and (
                        not summary.history or summary.history[-1]["step"] != trainer.step):
                    self.evaluate()
        finally:
            if self.ckpt is not None:
                self.ckpt.close()
            self.metrics_file.close()
        summary.step = trainer.step
        summary.seconds = time.perf_counter() - began
        if self.recent:
            summary.train_loss, summary.train_accuracy = map(float, np.mean(self.recent, axis=0))
        if step_times:
            summary.step_seconds = float(np.median(step_times))
            summary.images_per_second = cfg.batch_size / summary.step_seconds
        if jax.process_index() == 0:
            self.console.print(_summary_table(summary))
        return summary
