"""The optax optimizer: clipping · decoupled weight decay · SGD+momentum or AdamW · schedule."""

from __future__ import annotations

import jax
import optax

from jaxconv._check import check_number

__all__ = ["OPTIMIZERS", "decay_mask", "learning_rate_schedule", "make_optimizer"]

#: The optimizers ``--optimizer`` accepts.
OPTIMIZERS = ("sgd", "adamw")


def decay_mask(params):
    """Which parameters get weight decay: kernels (rank >= 2), not biases or norm scales.

    Biases, BatchNorm scales/offsets and any other vector are rank 1 (scalars rank 0); every
    conv and dense kernel is rank >= 2 — a rule that needs no parameter names.

    Args:
      params: a pytree of arrays (what optax passes a ``mask`` callable).

    Returns:
      a pytree of bools with the same structure.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxconv.train import decay_mask
      >>> decay_mask({"kernel": jnp.ones((3, 3, 8, 16)), "bias": jnp.ones(16)})
      {'bias': False, 'kernel': True}
    """
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def learning_rate_schedule(lr: float, steps: int, warmup_steps: int) -> optax.Schedule:
    """Linear warmup from 0 to ``lr`` over ``warmup_steps``, then cosine decay to 0 at ``steps``.

    Args:
      lr: the peak learning rate.
      steps: the schedule's length (the run's total steps).
      warmup_steps: linear-warmup steps (clamped to ``steps - 1``).

    Returns:
      an optax schedule ``step -> lr``.

    Examples:
      >>> from jaxconv.train import learning_rate_schedule
      >>> s = learning_rate_schedule(0.1, steps=100, warmup_steps=10)
      >>> [round(float(s(i)), 4) for i in (0, 5, 10, 55, 100)]
      [0.0, 0.05, 0.1, 0.05, 0.0]
    """
    warmup = max(0, min(warmup_steps, steps - 1))
    return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(steps, warmup + 1), 0.0)


def make_optimizer(
    name: str,
    *,
    lr: float,
    steps: int,
    warmup_steps: int,
    weight_decay: float,
    momentum: float = 0.9,
    clip_norm: float = 0.0,
) -> optax.GradientTransformation:
    """Builds the training optimizer.

    ``sgd``: global-norm clipping → decoupled weight decay (masked by :func:`decay_mask`) →
    SGD with Nesterov momentum on the warmup + cosine schedule. ``adamw``: clipping → AdamW
    with the same mask and schedule.

    Args:
      name: ``"sgd"`` or ``"adamw"``.
      lr: peak learning rate.
      steps: total steps (the cosine horizon).
      warmup_steps: linear-warmup steps.
      weight_decay: decoupled weight-decay coefficient (0 turns it off).
      momentum: SGD momentum (ignored by AdamW).
      clip_norm: clip gradients to this global norm (0 turns clipping off).

    Returns:
      an ``optax.GradientTransformation``.

    Raises:
      ValueError: unknown ``name`` or a negative (or NaN) coefficient.
      TypeError: a coefficient is not a number.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxconv.train import make_optimizer
      >>> tx = make_optimizer("sgd", lr=0.1, steps=10, warmup_steps=0, weight_decay=1e-4)
      >>> params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}
      >>> updates, _ = tx.update(params, tx.init(params), params)
      >>> float(updates["bias"][0])  # step 0 of a cosine from 0.1; no decay on the bias
      -0.19
    """
    if name not in OPTIMIZERS:
        raise ValueError(
            f"`name` (the optimizer) must be one of {', '.join(OPTIMIZERS)}, got {name!r}"
        )
    for arg, value in (
        ("lr", lr),
        ("weight_decay", weight_decay),
        ("clip_norm", clip_norm),
        ("momentum", momentum),
    ):
        check_number(value, arg, 0.0)
    schedule = learning_rate_schedule(lr, steps, warmup_steps)
    clip = optax.clip_by_global_norm(clip_norm) if clip_norm > 0 else optax.identity()
    if name == "sgd":
        return optax.chain(
            clip,
            optax.add_decayed_weights(weight_decay, mask=decay_mask),
            optax.sgd(schedule, momentum=momentum or None, nesterov=momentum > 0),
        )
    return optax.chain(clip, optax.adamw(schedule, weight_decay=weight_decay, mask=decay_mask))
