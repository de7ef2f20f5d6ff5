"""The argument checks only the NNX modules need: the channels and rank of their input, the
lowering a module is built with, and the keywords of ``flax.nnx.Conv`` (or PyTorch) that jaxconv
spells differently.

Every other check (ints, dtypes, bools) comes from :mod:`jaxconv._check` directly.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from jaxconv import convolution
from jaxconv._check import as_array, check_int

__all__ = [
    "check_channels",
    "check_implementation",
    "foreign_spellings",
    "window_size",
    "with_batch",
]

Init = TypeVar("Init", bound=Callable[..., None])

#: Keywords of ``nnx.Conv``/``nnx.ConvTranspose`` (and PyTorch's ``Conv2d``) that a jaxconv
#: module does not take, with what to write instead. A module that does take one of these
#: names (``groups``, ``use_bias``…) is never affected.
FOREIGN_SPELLINGS = {
    "strides": "jaxconv spells it `stride=`",
    "kernel_dilation": "jaxconv spells it `dilation=`",
    "rhs_dilation": "jaxconv spells it `dilation=`",
    "lhs_dilation": "jaxconv spells it `input_dilation=`",
    "feature_group_count": "jaxconv spells it `groups=`",
    "bias": "jaxconv spells it `use_bias=`",
    "in_channels": "jaxconv spells it `in_features=`",
    "out_channels": "jaxconv spells it `out_features=`",
    "padding_mode": 'jaxconv takes the mode as `padding=` (e.g. `padding="REFLECT"`)',
    "depth_multiplier": "jaxconv spells it `multiplier=`",
    "conv_general_dilated": (
        "jaxconv chooses the lowering by name with `implementation=` (see jaxconv.convolution)"
    ),
    "mask": "jaxconv has no kernel mask; multiply the kernel parameter by the mask instead",
    "promote_dtype": "jaxconv promotes with Flax's promote_dtype; set `dtype=` instead",
    "use_bias": (
        "it has no bias (BatchNorm's shift replaces it); use jaxconv.nn.Conv for a biased conv"
    ),
    "groups": (
        "a depthwise conv has one group per input channel; set `multiplier=` for "
        "C_out = multiplier·C_in, or use jaxconv.nn.Conv(groups=...)"
    ),
}


def foreign_spellings(init: Init) -> Init:
    """Wraps a module's ``__init__`` so that a keyword from :data:`FOREIGN_SPELLINGS` it does
    not take raises a TypeError naming the jaxconv spelling (Python's own error names none)."""
    accepted = set(inspect.signature(init).parameters)

    @functools.wraps(init)
    def checked(self: Any, *args: Any, **kwargs: Any) -> None:
        for name in kwargs:
            if name not in accepted and name in FOREIGN_SPELLINGS:
                raise TypeError(
                    f"{type(self).__name__}() got an unexpected keyword argument {name!r}: "
                    f"{FOREIGN_SPELLINGS[name]}"
                )
        init(self, *args, **kwargs)

    return checked  # type: ignore[return-value]


def check_implementation(implementation: Any) -> str | None:
    """``implementation`` if it is None or a lowering's name: a module checks the name when it
    is built, so a misspelling fails there rather than at the first call."""
    if implementation is not None:
        convolution.get(implementation)
    return implementation


def check_channels(x: Any, expected: int, owner: str) -> Any:
    """``x`` as an array (:func:`jaxconv._check.as_array`: a PyTorch tensor becomes a JAX
    array); raises if its last (channel) dim is not ``expected``. Callers use the returned
    value."""
    x = as_array(x, "x")
    shape = tuple(getattr(x, "shape", ()))
    if not shape:
        raise TypeError(f"{owner} expects an array `x` with channels last, got {type(x).__name__}")
    if shape[-1] != expected:
        raise ValueError(
            f"{owner} expects `x` with {expected} input channels (`in_features`, the last dim), "
            f"got {shape[-1]} channels in shape {shape}"
        )
    return x


def window_size(value: Any, name: str = "kernel_size") -> tuple[int, ...]:
    """A window (a conv's ``kernel_size``, a pool's ``window``) as one int per spatial dim: an
    int is a square 2-D window (never a silent 1-D one, as ``nnx.Conv`` reads an int); a
    sequence has 1-3 entries (a 1-D window is a 1-tuple)."""
    if isinstance(value, (list, tuple)):
        if not 1 <= len(value) <= 3:
            noun = "kernel" if name == "kernel_size" else "window"
            raise ValueError(
                f"`{name}` must be an int (square 2-D {noun}) or 1-3 ints, got {tuple(value)!r}"
            )
        return tuple(check_int(k, name) for k in value)
    k = check_int(value, name)
    return (k, k)


def with_batch(
    x: Any,
    window: tuple[int, ...],
    owner: str,
    apply: Callable[[Any], Any],
    name: str = "kernel_size",
) -> Any:
    """``apply(x)`` for ``x`` ``[N, *spatial, C]``; for an unbatched ``x`` ``[*spatial, C]``
    (as ``nnx.Conv`` accepts) a batch axis is added for ``apply`` and removed after. A PyTorch
    tensor is read as a JAX array first (:func:`jaxconv._check.as_array`).

    Any other rank is a ValueError naming the window argument ``name``, whose length fixes the
    spatial dims.
    """
    x = as_array(x, "x")
    shape = tuple(getattr(x, "shape", ()))
    ndim = len(window)
    if len(shape) == ndim + 2:
        return apply(x)
    if len(shape) == ndim + 1:
        return apply(x[None])[0]
    hint = ""
    if 1 <= len(shape) - 2 <= 3:
        hint = (
            f"; for a {len(shape) - 2}-D {'conv' if name == 'kernel_size' else 'pool'} give "
            f"`{name}` {len(shape) - 2} entries (an int is a square 2-D "
            f"{'kernel' if name == 'kernel_size' else 'window'})"
        )
    raise ValueError(
        f"{owner} has a {ndim}-D `{name}` (={window}), so `x` must have rank "
        f"{ndim + 2} (N, *spatial, C) or {ndim + 1} (unbatched *spatial, C), got rank "
        f"{len(shape)} with shape {shape}{hint}"
    )
