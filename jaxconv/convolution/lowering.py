"""What a lowering is: one frozen :class:`Lowering` record, the same for every lowering.

A lowering computes a conv's forward ``fwd(x, w, spec)``. Its gradients come from the plan's
``run`` (:mod:`jaxconv.convolution.run`): a conv is bilinear, so the input gradient is the
transpose of *some* lowering's forward in ``x`` and the weight gradient the transpose of some
lowering's forward in ``w``. ``roles`` lists which of those a lowering is fit to be: ``"fwd"``
always; ``"dx"``/``"dw"`` when JAX's transpose of its forward (or the transpose rule of its
primitives) is a good input/weight gradient. Selection only picks a lowering for a role it
owns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import jax

from jaxconv.convolution.spec import ConvSpec

__all__ = ["ROLES", "Lowering", "Plan", "Role", "everywhere"]

Role = Literal["fwd", "dx", "dw"]
#: The three gradient roles of a conv step, in :class:`~jaxconv.convolution.Plan` order.
ROLES: tuple[Role, ...] = ("fwd", "dx", "dw")


class Plan(NamedTuple):
    """The lowering names for a conv's forward, input gradient and weight gradient.

    Examples:
      >>> Plan("onednn", "onednn", "onednn").fwd
      'onednn'
    """

    fwd: str
    dx: str
    dw: str


Forward = Callable[[jax.Array, jax.Array, ConvSpec], jax.Array]
#: ``fused(x, w, b, spec)``: ``conv(x, w) + b`` as one call.
Fused = Callable[[jax.Array, jax.Array, jax.Array, ConvSpec], jax.Array]
#: ``prefers(spec, platform)``: the roles the cost model gives this lowering where it applies.
Prefers = Callable[[ConvSpec, str], tuple[Role, ...]]


def everywhere(spec: ConvSpec, platform: str) -> tuple[Role, ...]:
    """Every role, on every platform: the reference lowering's preference (the fallback)."""
    del spec, platform
    return ROLES


@dataclass(frozen=True)
class Lowering:
    """One way to compute a convolution.

    Attributes:
      name: the name ``implementation=`` takes.
      supports: ``supports(spec)`` is None where it applies, else the reason it does not.
      fwd: ``fwd(x, w, spec)`` → the conv's output (``spec.out_shape``, ``spec.out_dtype``), for
        inputs already pre-padded (``spec.x_shape``); linear in ``x`` and in ``w``.
      roles: which of ``"fwd"``, ``"dx"``, ``"dw"`` selection may give it (see the module doc).
      backends: the platforms where selection considers it (None: every platform); an explicit
        ``implementation=`` runs it anywhere it ``supports``.
      error_factor: its max error against a float64 reference, in units of the dtype tolerance
        of the tests (1 for an exact-order method).
      fused: optional ``fused(x, w, b, spec)``: ``fwd`` plus bias in one call, used for the
        forward when the plan's ``fwd`` is this lowering. (An activation is never fused here:
        :func:`jaxconv.convolution.run` applies it in XLA, where NaN propagates.)
      summary: one line on what it is and where it wins.
    """

    name: str
    supports: Callable[[ConvSpec], str | None]
    fwd: Forward
    roles: tuple[Role, ...] = ROLES
    backends: tuple[str, ...] | None = None
    error_factor: float = 1.0
    fused: Fused | None = None
    prefers: Prefers = everywhere
    summary: str = ""

    def __repr__(self) -> str:
        return f"Lowering({self.name!r})"
