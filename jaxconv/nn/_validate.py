"""The one argument check only the NNX modules need: the channels of their input.

Every other check (ints, dtypes, bools) comes from :mod:`jaxconv._check` directly.
"""

from __future__ import annotations

from typing import Any


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
