"""One training step and one evaluation step, on Flax NNX objects (the Flax-documented form).

Both update their arguments in place, like ``nnx.Optimizer.update``; :class:`Trainer` jits
them through ``nnx.split`` / ``nnx.merge``, and the ``model`` benchmark times the same
:func:`train_step`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxconv.train._loss import AUX_WEIGHT, classification_loss

__all__ = ["eval_metrics", "eval_step", "train_step"]


def train_step(
    model: nnx.Module,
    optimizer: nnx.Optimizer,
    images: jax.Array,
    labels: jax.Array,
    *,
    num_classes: int,
    label_smoothing: float = 0.0,
    aux_weight: float = AUX_WEIGHT,
) -> dict[str, jax.Array]:
    """One optimizer step on :func:`classification_loss`; updates ``model`` and ``optimizer``.

    Args:
      model: maps ``float32[B, H, W, C]`` to logits ``[B, K]`` (or ``(logits, *aux)``).
      optimizer: an ``nnx.Optimizer`` of ``model`` (``wrt=nnx.Param``).
      images: ``float32[B, H, W, C]``.
      labels: ``int32[B]``.
      num_classes: ``K``.
      label_smoothing: see :func:`classification_loss`.
      aux_weight: see :func:`classification_loss`.

    Returns:
      ``{"loss", "grad_norm", "accuracy"}``: scalars of this batch, before the update.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> from flax import nnx
      >>> from jaxconv.train import train_step
      >>> model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
      >>> optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
      >>> metrics = train_step(model, optimizer, jnp.ones((4, 3)), jnp.zeros(4, jnp.int32),
      ...                      num_classes=2)
      >>> sorted(metrics), int(optimizer.step[...])
      (['accuracy', 'grad_norm', 'loss'], 1)
    """

    def loss_fn(model: nnx.Module) -> tuple[jax.Array, jax.Array]:
        return classification_loss(
            model(images),
            labels,
            num_classes=num_classes,
            label_smoothing=label_smoothing,
            aux_weight=aux_weight,
        )

    (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    optimizer.update(model, grads)
    return {
        "loss": loss,
        "grad_norm": optax.tree.norm(grads),
        "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels),
    }


def eval_metrics() -> nnx.MultiMetric:
    """Fresh evaluation totals: the mean ``loss`` and the ``accuracy``.

    Examples:
      >>> from jaxconv.train import eval_metrics
      >>> sorted(eval_metrics().compute())
      ['accuracy', 'loss']
    """
    return nnx.MultiMetric(loss=nnx.metrics.Average("loss"), accuracy=nnx.metrics.Accuracy())


def eval_step(
    model: nnx.Module,
    metrics: nnx.MultiMetric,
    images: jax.Array,
    labels: jax.Array,
    mask: jax.Array,
) -> None:
    """Adds one batch's cross-entropy and correct answers to ``metrics`` (:func:`eval_metrics`).

    Args:
      model: in eval mode; an auxiliary-head tuple output is reduced to its main logits.
      metrics: the totals, updated in place.
      images: ``float32[B, H, W, C]``.
      labels: ``int32[B]``.
      mask: ``float32[B]``: 1 for a real example, 0 for padding (not counted).

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.train import eval_metrics, eval_step
      >>> model, metrics = nnx.Linear(3, 2, rngs=nnx.Rngs(0)), eval_metrics()
      >>> eval_step(model, metrics, jnp.ones((4, 3)), jnp.zeros(4, jnp.int32),
      ...           jnp.array([1.0, 1.0, 0.0, 0.0]))
      >>> int(metrics.loss.count[...]), int(metrics.accuracy.count[...])
      (2, 2)
    """
    logits = model(images)
    logits = logits[0] if isinstance(logits, (tuple, list)) else logits
    logits = logits.astype(jnp.float32)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    metrics.update(loss=loss, logits=logits, labels=labels, mask=mask)
