"""Argument checks shared by the NNX modules (messages name the argument, rule and value)."""

from __future__ import annotations

from typing import Any

from jaxconv._check import check_dtype as check_dtype
from jaxconv._check import check_int as check_int


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
