"""The classification loss, with GoogLeNet's auxiliary heads."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

__all__ = ["AUX_WEIGHT", "classification_loss"]

#: Weight of each auxiliary classifier's loss: "the losses of the auxiliary classifiers were
#: weighted by 0.3" (Szegedy et al. 2015, §5). The one default for the config, the loss and
#: the benchmark.
AUX_WEIGHT = 0.3


def classification_loss(
    outputs: Any,
    labels: jax.Array,
    *,
    num_classes: int,
    label_smoothing: float = 0.0,
    aux_weight: float = AUX_WEIGHT,
) -> tuple[jax.Array, jax.Array]:
    """Mean softmax cross-entropy; auxiliary heads (a tuple output) add ``aux_weight`` each.

    Args:
      outputs: logits ``[B, K]``, or a tuple ``(logits, *aux_logits)`` (GoogLeNet in training).
      labels: ``int32[B]``.
      num_classes: ``K``.
      label_smoothing: mass spread uniformly over the ``K`` classes.
      aux_weight: weight of each auxiliary loss (:data:`AUX_WEIGHT`, GoogLeNet §5).

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
