"""The :class:`Trainer`: a model, its optimizer and the compiled steps on a data-parallel mesh.

The whole training state — model (parameters, BatchNorm statistics, RNG streams) and optimizer
(moments, step) — is one ``nnx.State`` pytree, replicated over the mesh; the batch is split
over it. Batches are a pure function of ``(seed, step)``, so restoring that state and the step
number continues a run exactly where it stopped.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxconv._host_memory import host_memory_options
from jaxconv.train._batches import eval_batches, train_batch
from jaxconv.train._checkpoint import state_signature
from jaxconv.train._config import TrainConfig
from jaxconv.train._dataset import Dataset
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
from jaxconv.train._steps import eval_metrics, eval_step, train_step
from jaxconv.train._weights import read_state_dict

__all__ = ["Trainer", "fit_images"]


def fit_images(images: jax.Array, size: int | None) -> jax.Array:
    """``images`` resized to ``size``×``size``: the shorter side scaled to ``size``
    (``jax.image.resize``, bilinear, antialiased when shrinking), then the center cropped.

    Args:
      images: ``float32[B, H, W, C]``.
      size: the side; None returns ``images`` as they are.

    Returns:
      ``float32[B, size, size, C]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxconv.train._trainer import fit_images
      >>> fit_images(jnp.ones((2, 32, 48, 3)), 64).shape   # 32×48 → 64×96 → center 64×64
      (2, 64, 64, 3)
    """
    b, h, w, c = images.shape
    if size is None or (h, w) == (size, size):
        return images
    scale = size / min(h, w)
    rh, rw = max(size, round(h * scale)), max(size, round(w * scale))
    resized = jax.image.resize(images, (b, rh, rw, c), method="bilinear")
    top, left = (rh - size) // 2, (rw - size) // 2
    return resized[:, top : top + size, left : left + size, :]


def _local(x: jax.Array) -> float:
    """A replicated scalar's value; this process's copy also when others hold the rest."""
    return float(np.asarray(x.addressable_data(0)))


class Trainer:
    """A model, its optimizer and the compiled train/eval steps on a data-parallel mesh.

    The steps are jitted once per trainer, closing over its graph (model structure and
    optimizer): each later step reuses that compilation.

    Args:
      config: a :class:`TrainConfig` (resolved here against ``data``).
      data: the dataset (its ``num_classes`` sizes the model's head).
      mesh: the mesh; ``None`` → :func:`make_mesh` ``(config.devices)``.

    The model is ``config.model`` in its ``config.variant``, started from ``config.init``'s
    torchvision weights when given; with ``config.image_size`` the steps resize each batch on
    the device (:func:`fit_images`).

    Attributes:
      state: the whole training state (``nnx.State`` of ``(model, optimizer)``), replicated.
      step: completed training steps.
      config: the resolved config.
      mesh: the device mesh.
      input_shape: ``(H, W, C)`` of the model's input (the data's, or ``image_size``'s).

    Examples:
      >>> from flax import nnx
      >>> from jaxconv.train import Trainer, TrainConfig, registered_model, synthetic_dataset
      >>> def mean_colour(k, rngs):
      ...     return nnx.Sequential(lambda x: x.mean(axis=(1, 2)), nnx.Linear(3, k, rngs=rngs))
      >>> with registered_model("mean-colour", mean_colour):
      ...     t = Trainer(TrainConfig(model="mean-colour", steps=2, batch_size=8),
      ...                 synthetic_dataset(32, 16))
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
        # float32 builds the model as registered; another dtype is its compute dtype
        # (parameters stay float32: Flax's param_dtype), which a factory must accept.
        dtype = {} if config.dtype == "float32" else {"dtype": jnp.dtype(config.dtype)}
        init = config.init_file()
        model = build_model(
            config.model,
            data.num_classes,
            nnx.Rngs(config.seed),
            variant=config.model_variant(),
            state_dict=None if init is None else read_state_dict(init, "init"),
            **dtype,
        )
        size = config.image_size
        height, width, channels = data.image_shape
        self.input_shape = (height, width, channels) if size is None else (size, size, channels)
        self.num_params = sum(
            int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(model, nnx.Param))
        )
        assert config.steps is not None and config.lr is not None  # set by resolved()
        assert config.weight_decay is not None
        self.schedule = learning_rate_schedule(config.lr, config.steps, config.warmup())
        tx = make_optimizer(
            config.optimizer,
            lr=config.lr,
            steps=config.steps,
            warmup_steps=config.warmup(),
            weight_decay=config.weight_decay,
            momentum=config.momentum,
            clip_norm=config.clip_norm,
        )
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        model.train()
        train_graph, state = nnx.split((model, optimizer))
        model.eval()
        self._eval_graph, _ = nnx.split((model, optimizer))
        eval_graph = self._eval_graph
        metrics_graph, self._fresh_metrics = nnx.split(eval_metrics())
        self.replicated = rep = replicated(self.mesh)
        self.state = put_replicated(state, self.mesh)
        self.signature = state_signature(self.state)
        self.step = 0
        num_classes, smoothing, aux_weight = (
            data.num_classes,
            config.label_smoothing,
            config.aux_weight,
        )

        def train_fn(
            state: nnx.State, images: jax.Array, labels: jax.Array
        ) -> tuple[nnx.State, dict[str, jax.Array]]:
            model, optimizer = nnx.merge(train_graph, state)
            metrics = train_step(
                model,
                optimizer,
                fit_images(images, size),
                labels,
                num_classes=num_classes,
                label_smoothing=smoothing,
                aux_weight=aux_weight,
            )
            return nnx.state((model, optimizer)), metrics

        def eval_fn(
            state: nnx.State,
            totals: nnx.State,
            images: jax.Array,
            labels: jax.Array,
            mask: jax.Array,
        ) -> nnx.State:
            (model, _), metrics = nnx.merge(eval_graph, state), nnx.merge(metrics_graph, totals)
            eval_step(model, metrics, fit_images(images, size), labels, mask)
            return nnx.state(metrics)

        batch = data_sharding(self.mesh)
        # on a CPU, XLA's temporaries in blocks glibc reuses from step to step
        options = host_memory_options(self.mesh.devices.flat[0].platform)
        self._train_fn = jax.jit(
            train_fn,
            in_shardings=(rep, batch, batch),
            out_shardings=rep,
            compiler_options=options,
        )
        self._eval_fn = jax.jit(
            eval_fn,
            in_shardings=(rep, rep, batch, batch, batch),
            out_shardings=rep,
            compiler_options=options,
        )
        self._metrics_graph = metrics_graph
        self._check_input()

    def _check_input(self) -> None:
        """Traces the forward pass now, so that a model/data mismatch is a clear setup error.

        Only the forward pass: a failure in the gradient would be a bug, not bad input.
        """
        shape = self.input_shape
        images = jax.ShapeDtypeStruct((self.config.batch_size, *shape), jnp.float32)
        try:
            jax.eval_shape(
                lambda state, x: nnx.merge(self._eval_graph, state)[0](x), self.state, images
            )
        except (ValueError, TypeError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(
                f"`model` {self.config.model} cannot train on the "
                f"{'×'.join(map(str, shape))} images of {self.data.source}: "
                f"{reason}"
            ) from None

    def model(self) -> nnx.Module:
        """The model with the current state, in eval mode: this process's copy, on its
        first device (a new object each call; changing it does not change the run)."""
        local = jax.tree.map(
            lambda x: x.addressable_data(0) if isinstance(x, jax.Array) else x, self.state
        )
        model, _ = nnx.merge(self._eval_graph, local)
        return model

    def batch(self, step: int) -> tuple[jax.Array, jax.Array]:
        """The training batch of ``step``, placed on the mesh."""
        c = self.config
        host_images, host_labels = train_batch(
            self.data, c.batch_size, c.seed, step, augmentation=c.augment
        )
        images, labels = shard_batch(self.mesh, [host_images, host_labels])
        return images, labels

    def train_step(self) -> dict[str, jax.Array]:
        """Runs one step on the batch of :attr:`step`; returns its metrics (device scalars)."""
        images, labels = self.batch(self.step)
        self.state, metrics = self._train_fn(self.state, images, labels)
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
        totals = put_replicated(self._fresh_metrics, self.mesh)
        for images, labels, mask in eval_batches(
            self.data, self.config.batch_size, split=split, limit=limit
        ):
            totals = self._eval_fn(
                self.state, totals, *shard_batch(self.mesh, [images, labels, mask])
            )
        metrics = nnx.merge(self._metrics_graph, totals)
        return {f"{split}_{name}": _local(value) for name, value in metrics.compute().items()}
