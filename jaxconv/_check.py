"""Argument checks every layer shares; each message names the argument, the rule and the value.

Plain Python at the bottom of the package (geometry, kernels, ops, nn, train and bench use it),
so a rule such as "an int, not a bool, at least 1" is written once.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

__all__ = [
    "check_activation",
    "check_array",
    "check_bias",
    "check_bool",
    "check_dtype",
    "check_groups",
    "check_int",
    "check_number",
    "check_same_dtype",
]


def check_int(value: Any, name: str, *, minimum: int | None = 1, allow_none: bool = False) -> Any:
    """``value`` as a Python int ``>= minimum`` (no lower bound when ``minimum`` is None).

    NumPy integers are accepted (``operator.index``); a bool is not an int here.

    Raises:
      TypeError: ``value`` is not an int (or None where ``allow_none``).
      ValueError: ``value`` is below ``minimum``.

    Examples:
      >>> check_int(3, "groups")
      3
      >>> check_int(0, "groups")
      Traceback (most recent call last):
      ...
      ValueError: `groups` must be a positive int, got 0
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool):
        raise TypeError(f"`{name}` must be an int, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"`{name}` must be an int, got {value!r}") from None
    if minimum is not None and value < minimum:
        rule = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"`{name}` must be {rule}, got {value}")
    return int(value)


def check_groups(
    groups: Any,
    in_channels: int,
    out_channels: int,
    *,
    in_name: str = "the input channels",
    out_name: str = "the output channels",
    hint: Callable[[int], str] | None = None,
) -> int:
    """``groups`` as a positive int that divides ``in_channels`` and ``out_channels``.

    The one home of the feature-groups rule: the conv contract, the NNX modules and the cost
    model call it, each naming the channels as its caller knows them.

    Args:
      groups: the value to check.
      in_channels, out_channels: the channel counts ``groups`` must divide.
      in_name, out_name: how the messages name them (``"`in_features`"`` in a module).
      hint: called with the checked ``groups`` when they do not divide ``in_channels``; its
        text is appended to the message (the conv contract's layout hint).

    Raises:
      TypeError: ``groups`` is not an int.
      ValueError: ``groups`` is below 1 or does not divide one of the channel counts.

    Examples:
      >>> check_groups(4, 32, 64)
      4
      >>> check_groups(3, 8, 6, in_name="`in_features`")
      Traceback (most recent call last):
      ...
      ValueError: `groups` (=3) must divide `in_features` (=8)
    """
    groups = check_int(groups, "groups")
    if in_channels % groups:
        more = hint(groups) if hint is not None else ""
        raise ValueError(f"`groups` (={groups}) must divide {in_name} (={in_channels}){more}")
    if out_channels % groups:
        raise ValueError(f"`groups` (={groups}) must divide {out_name} (={out_channels})")
    return groups


def check_number(value: Any, name: str, low: float = -math.inf, high: float = math.inf) -> float:
    """``value`` as a float in ``[low, high)``; a bool is not a number here.

    Examples:
      >>> check_number(0.5, "momentum", 0.0, 1.0)
      0.5
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a number, got {value!r}")
    if not low <= value < high:
        if high < math.inf:
            bound = f"in [{low}, {high})"
        else:
            bound = f">= {low}"
        raise ValueError(f"`{name}` must be a number {bound}, got {value!r}")
    return float(value)


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is a bool; TypeError otherwise (no truthiness of strings or arrays)."""
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool, got {value!r}")
    return value


def check_dtype(dtype: Any, name: str) -> Any:
    """``None`` or a NumPy/JAX dtype; TypeError otherwise.

    Examples:
      >>> check_dtype("bfloat16", "dtype").name
      'bfloat16'
    """
    if dtype is None:
        return None
    import jax.numpy as jnp  # keeps this module importable without initializing jax

    try:
        return jnp.dtype(dtype)
    except TypeError:
        raise TypeError(f"`{name}` must be None or a dtype, got {dtype!r}") from None


def check_array(value: Any, name: str, empty_batch: bool = False) -> Any:
    """``value`` if it has a ``shape`` and ``dtype`` and no zero-size dim (but the first, when
    ``empty_batch``); TypeError / ValueError naming ``name`` otherwise."""
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        raise TypeError(f"`{name}` must be an array, got {type(value).__name__}")
    dims = value.shape[1:] if empty_batch else value.shape
    if any(d == 0 for d in dims):
        raise ValueError(f"`{name}` must not have zero-size dims, got shape {tuple(value.shape)}")
    return value


def check_same_dtype(x: Any, w: Any, w_name: str = "w", x_name: str = "x") -> None:
    """TypeError unless ``w`` has ``x``'s dtype (jaxconv does not promote silently)."""
    import jax.numpy as jnp  # keeps this module importable without initializing jax

    if jnp.dtype(x.dtype) != jnp.dtype(w.dtype):
        raise TypeError(
            f"`{w_name}` dtype (={jnp.dtype(w.dtype).name}) must equal `{x_name}` dtype "
            f"(={jnp.dtype(x.dtype).name}); cast one of them (jaxconv does not promote silently)"
        )


def check_bias(b: Any, c: int, name: str = "b") -> None:
    """TypeError / ValueError unless ``b`` is None or an array of shape ``(c,)`` (one per output
    channel), naming ``name``."""
    if b is None:
        return
    check_array(b, name)
    if tuple(b.shape) != (c,):
        raise ValueError(
            f"`{name}` must have shape ({c},) (one per output channel), got {tuple(b.shape)}"
        )


def check_activation(activation: Any) -> Callable[..., Any] | None:
    """``activation`` if it is None or a callable; TypeError otherwise."""
    if activation is not None and not callable(activation):
        raise TypeError(f"`activation` must be a callable or None, got {activation!r}")
    return activation
