"""Argument checks shared by the NNX modules (messages name the argument, rule and value)."""

from __future__ import annotations

import operator
from typing import Any

import jax.numpy as jnp


def check_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """``value`` as a Python int ``>= minimum``; TypeError for a non-int, ValueError below."""
    if isinstance(value, bool):
        raise TypeError(f"`{name}` must be an int, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"`{name}` must be an int, got {value!r}") from None
    if value < minimum:
        rule = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"`{name}` must be {rule}, got {value}")
    return int(value)


def check_channels(x: Any, expected: int, owner: str) -> None:
    """Raises if ``x``'s last (channel) dim is not ``expected``."""
    shape = tuple(getattr(x, "shape", ()))
    if not shape:
        raise TypeError(f"{owner} expects an array `x` with channels last, got {type(x).__name__}")
    if shape[-1] != expected:
        raise ValueError(
            f"{owner} expects `x` with {expected} input channels (`in_features`, the last dim), "
            f"got {shape[-1]} channels in shape {shape}"
        )


def check_dtype(dtype: Any, name: str) -> Any:
    """``None`` or a dtype; TypeError otherwise."""
    if dtype is None:
        return None
    try:
        return jnp.dtype(dtype)
    except TypeError:
        raise TypeError(f"`{name}` must be None or a dtype, got {dtype!r}") from None
