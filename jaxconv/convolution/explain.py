""":func:`explain`: which plan a conv call gets, and why."""

from __future__ import annotations

from typing import Any

import jax

from jaxconv.convolution.plan import Choice, choose
from jaxconv.convolution.spec import conv_spec

__all__ = ["explain"]

Array = jax.Array


def explain(x: Any, w: Any, **conv_kwargs: Any) -> Choice:
    """Which plan :func:`conv` gives this call, and why — from the function dispatch uses.

    Args:
      x, w: arrays or ``jax.ShapeDtypeStruct`` (only shapes and dtypes matter).
      **conv_kwargs: :func:`conv`'s keyword arguments (``implementation`` included).

    Returns:
      A :class:`jaxconv.Choice`: the plan, its source (``"implementation"``,
      ``"table"`` or ``"cost model"``), the reason, and every lowering's answer; ``print`` it.

    Examples:
      >>> import jax.numpy as jnp, jaxconv
      >>> choice = jaxconv.explain(jnp.ones((1, 8, 8, 4)), jnp.ones((3, 3, 4, 4)),
      ...                          implementation="xla")
      >>> choice.plan, choice.source
      (Plan(fwd='xla', dx='xla', dw='xla'), 'implementation')
    """
    implementation = conv_kwargs.pop("implementation", None)
    conv_kwargs.pop("b", None)
    return choose(conv_spec(x, w, **conv_kwargs), implementation)
