"""Lowerings behind ``implementation=`` and the dispatch that picks one.

Each lowering is a small module with ``name``, ``supports(spec) -> None | reason``, ``conv(x, w,
spec)`` and the ``reference`` it is tested against. :func:`select` walks :data:`LOWERINGS` in
priority order and takes the first that applies; ``"xla"`` applies to everything, so
``implementation=None`` always works. An explicitly requested lowering that does not apply
raises with its reason.
"""

from __future__ import annotations

from types import ModuleType

from jaxconv.kernels import _einsum, _xla
from jaxconv.kernels._spec import ConvSpec

__all__ = ["LOWERINGS", "ConvSpec", "available", "get", "select"]

#: Lowerings in priority order for ``implementation=None``.
LOWERINGS: dict[str, ModuleType] = {m.name: m for m in (_einsum, _xla)}


def get(name: str) -> ModuleType:
    """The lowering module called ``name``; raises ``ValueError`` for an unknown name."""
    if not isinstance(name, str):
        raise TypeError(f"`implementation` must be a string or None, got {name!r}")
    try:
        return LOWERINGS[name]
    except KeyError:
        known = ", ".join(repr(k) for k in LOWERINGS)
        raise ValueError(f"`implementation` must be None or one of {known}, got {name!r}") from None


def available(spec: ConvSpec) -> dict[str, str | None]:
    """Every lowering's answer for ``spec``: None where it applies, else the reason it doesn't."""
    return {name: m.supports(spec) for name, m in LOWERINGS.items()}


def select(spec: ConvSpec, implementation: str | None = None) -> ModuleType:
    """The lowering to run ``spec`` with.

    Args:
      spec: the canonical conv description.
      implementation: None for the best applicable lowering, or a name from :data:`LOWERINGS`.

    Raises:
      ValueError: for an unknown name, or a named lowering that does not apply (with why).
    """
    if implementation is not None:
        lowering = get(implementation)
        reason = lowering.supports(spec)
        if reason is not None:
            raise ValueError(f"`implementation` (={implementation!r}) does not apply: {reason}")
        return lowering
    for lowering in LOWERINGS.values():
        if lowering.supports(spec) is None:
            return lowering
    return _xla  # unreachable: xla supports everything
