"""Every lowering by name: the immutable :data:`LOWERINGS` and the questions asked of it."""

from __future__ import annotations

from types import MappingProxyType
from typing import Literal

import jax

from jaxconv.convolution.lowering import Lowering, Role
from jaxconv.convolution.lowerings import einsum, onednn, xla
from jaxconv.convolution.spec import ConvSpec

__all__ = ["LOWERINGS", "Implementation", "available", "candidates", "get"]

#: The names ``implementation=`` takes (besides a :class:`~jaxconv.convolution.Plan`).
Implementation = Literal["onednn", "einsum", "xla"]

#: Every lowering by name, in the order selection prefers them (the reference ``"xla"`` last).
LOWERINGS: MappingProxyType[str, Lowering] = MappingProxyType(
    {m.LOWERING.name: m.LOWERING for m in (onednn, einsum, xla)}
)


def get(name: str) -> Lowering:
    """The lowering called ``name``.

    Raises:
      TypeError: ``name`` is not a string.
      ValueError: no lowering has that name.

    Examples:
      >>> get("xla").name
      'xla'
    """
    if not isinstance(name, str):
        raise TypeError(f"`implementation` must be a lowering name, a Plan or None, got {name!r}")
    try:
        return LOWERINGS[name]
    except KeyError:
        known = ", ".join(repr(k) for k in LOWERINGS)
        raise ValueError(f"`implementation` must be None or one of {known}, got {name!r}") from None


def available(spec: ConvSpec) -> dict[str, str | None]:
    """Every lowering's answer for ``spec``: None where it applies, else the reason it doesn't."""
    return {name: lowering.supports(spec) for name, lowering in LOWERINGS.items()}


def candidates(
    spec: ConvSpec, platform: str | None = None, role: Role | None = None
) -> tuple[str, ...]:
    """The lowerings selection may choose for ``spec`` on ``platform`` (default: jax's default
    backend): those that apply, whose ``backends`` include the platform and, given a ``role``,
    that own it."""
    platform = platform or jax.default_backend()
    return tuple(
        name
        for name, lowering in LOWERINGS.items()
        if lowering.supports(spec) is None
        and (lowering.backends is None or platform in lowering.backends)
        and (role is None or role in lowering.roles)
    )
