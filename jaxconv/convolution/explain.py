""":func:`explain`: which plan a conv call gets, and why."""

from __future__ import annotations

from typing import Any

import jax

from jaxconv._check import as_arrays
from jaxconv.convolution.plan import Choice, choices, choose
from jaxconv.convolution.spec import conv_spec

__all__ = ["explain"]

Array = jax.Array


def explain(x: Any, *args: Any, **kwargs: Any) -> Choice | list[Choice]:
    """Which plan a conv gets, and why — from the function dispatch uses.

    Two forms:

    - ``explain(x, w, **conv_kwargs)``: the :class:`Choice` :func:`jaxconv.conv` makes for
      that call.
    - ``explain(fn, *args, **kwargs)``: every :class:`Choice` made while ``fn(*args,
      **kwargs)`` runs, in order — for any op (``jaxconv.conv1x1``, ``jaxconv.bottleneck``:
      its reduce and its k×k, ``jaxconv.separable_conv``, ``jaxconv.conv_transpose``…), a
      module or a whole model. It is traced with ``jax.eval_shape``: nothing is computed.

    Args:
      x: the conv's input, or a function.
      *args: ``w`` for the conv form (arrays, PyTorch tensors or ``jax.ShapeDtypeStruct``:
        only shapes and dtypes matter); the function's arguments for the other (a PyTorch
        tensor among them is read as a JAX array, as every op reads one).
      **kwargs: :func:`jaxconv.conv`'s keyword arguments (``implementation`` included), or
        the function's.

    Returns:
      A :class:`jaxconv.convolution.Choice` (conv form) or a list of them: the plan, its
      source (``"implementation"``, ``"table"`` or ``"cost model"``), the reason, and every
      lowering's answer; ``print`` it.

    Examples:
      >>> import jax.numpy as jnp, jaxconv
      >>> choice = jaxconv.explain(jnp.ones((1, 8, 8, 4)), jnp.ones((3, 3, 4, 4)),
      ...                          implementation="xla")
      >>> choice.plan, choice.source
      (Plan(fwd='xla', dx='xla', dw='xla'), 'implementation')
      >>> [c.spec.kernel for c in jaxconv.explain(
      ...     jaxconv.bottleneck, jnp.ones((1, 14, 14, 480)), jnp.ones((480, 16)),
      ...     jnp.ones((5, 5, 16, 48)))]
      [(1, 1), (5, 5)]
    """
    if callable(x):
        with choices() as seen:
            jax.eval_shape(lambda *a: x(*a, **kwargs), *as_arrays(args))
        return seen
    (w,) = args
    implementation = kwargs.pop("implementation", None)
    kwargs.pop("b", None)
    return choose(conv_spec(x, w, **kwargs), implementation)
