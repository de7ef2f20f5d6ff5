"""Lowerings behind ``implementation=`` and the dispatch that picks one per shape and backend.

Each lowering has ``name``, ``supports(spec) -> None | reason``, ``conv(x, w, spec)``, the
``reference`` it is tested against, ``backends`` (the platforms where selection considers it;
None for all), ``roles`` (which of forward / input gradient / weight gradient it computes
itself rather than through another lowering) and ``error_factor`` (its max error in units of
the dtype tolerance).

:func:`select` with ``implementation=None`` picks a :class:`Plan` — one lowering for the forward,
one for the input gradient, one for the weight gradient — from, in order: the tables
:func:`jaxconv.autotune` writes (user cache, then the defaults shipped for this device kind), and
the cost model :func:`default_plan`. A plan whose three names differ runs as a ``custom_jvp``:
the forward by ``fwd``, the tangent (and so, transposed, each gradient) by ``dx`` and ``dw``.
An explicitly requested lowering that does not apply raises with its reason.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from jaxconv.kernels import (
    _eigen,
    _einsum,
    _im2col,
    _onednn,
    _space_to_depth,
    _tables,
    _winograd,
    _xla,
)
from jaxconv.kernels._spec import ConvSpec
from jaxconv.kernels._tables import Plan, device_kind, spec_key

__all__ = [
    "LOWERINGS",
    "ConvSpec",
    "Plan",
    "available",
    "candidates",
    "default_plan",
    "device_kind",
    "get",
    "plan",
    "recording",
    "select",
    "spec_key",
]

#: Every lowering by name (the fallback ``"xla"`` last).
LOWERINGS: dict[str, Any] = {
    m.name: m
    for m in (_onednn, _einsum, _eigen, _space_to_depth, *_winograd.VARIANTS, _im2col, _xla)
}


def get(name: str) -> Any:
    """The lowering called ``name``; raises ``ValueError`` for an unknown name."""
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


def candidates(spec: ConvSpec, platform: str | None = None,
               role: str | None = None) -> tuple[str, ...]:
    """The lowerings selection may choose for ``spec`` on ``platform`` (default: jax's default
    backend): those that apply, whose ``backends`` include the platform and, given a ``role``
    (``"fwd"``, ``"dx"``, ``"dw"``), that compute it themselves (``roles``)."""
    platform = platform or jax.default_backend()
    return tuple(
        name for name, m in LOWERINGS.items()
        if m.supports(spec) is None and (m.backends is None or platform in m.backends)
        and (role is None or role in m.roles)
    )


def default_plan(spec: ConvSpec, platform: str | None = None) -> Plan:
    """The cost model: the plan used when no table has an entry for ``spec``.

    - ``onednn`` for all three roles wherever it applies (CPU, extension loaded, float32 or
      native bfloat16): oneDNN's primitives, PyTorch's own CPU kernels (bench/results/);
    - else ``einsum`` for a pointwise conv (a dot XLA runs on every core, where its conv may run
      on one);
    - else ``xla``: plain ``lax.conv_general_dilated``.

    Nothing here depends on a CPU model, so the default is safe where nobody tuned: the
    XLA-only lowerings (Winograd, im2col, space_to_depth, xla_eigen) won by up to 2× on the
    CPU they were tuned on and lost by up to 6× on another (issue 10: seed 5×5 at batch 1 on
    an AVX-512 Xeon, 18.9 vs 3.0 ms), so only a table — :func:`jaxconv.autotune`'s
    measurement on this device kind — selects them.

    Examples:
      >>> from jaxconv._ops import make_spec
      >>> spec, _, _ = make_spec((8, 28, 28, 64), (1, 1, 64, 32), "float32", padding="VALID")
      >>> default_plan(spec, "gpu")
      Plan(fwd='einsum', dx='einsum', dw='einsum')
    """
    platform = platform or jax.default_backend()
    ok = candidates(spec, platform)
    for name in ("onednn", "einsum"):
        if name in ok:
            return Plan(name, name, name)
    return Plan("xla", "xla", "xla")


_RECORDING: list[list[ConvSpec]] = []


@contextlib.contextmanager
def recording() -> Iterator[list[ConvSpec]]:
    """Collects the spec of every conv traced inside (with ``implementation=None``)."""
    seen: list[ConvSpec] = []
    _RECORDING.append(seen)
    try:
        yield seen
    finally:
        _RECORDING.remove(seen)


@functools.cache
def _kind(platform: str) -> str:
    return device_kind(platform)


def plan(spec: ConvSpec, platform: str | None = None) -> Plan:
    """The plan for ``spec``: a tuned table entry for this device kind, else :func:`default_plan`.
    Table entries naming a lowering that no longer exists or applies are ignored."""
    platform = platform or jax.default_backend()
    tuned = _tables.lookup(spec, _kind(platform))
    if tuned is not None and all(
        name in LOWERINGS and LOWERINGS[name].supports(spec) is None for name in tuned
    ):
        return tuned
    return default_plan(spec, platform)


class Split:
    """A plan whose roles use different lowerings, behaving like one lowering."""

    backends = None
    roles = ("fwd", "dx", "dw")

    def __init__(self, plan: Plan):
        self.plan = plan
        self.name = "+".join(dict.fromkeys(plan))
        self.error_factor = max(LOWERINGS[n].error_factor for n in plan)

    def __repr__(self) -> str:
        return f"<plan fwd={self.plan.fwd!r} dx={self.plan.dx!r} dw={self.plan.dw!r}>"

    def supports(self, spec: ConvSpec) -> str | None:
        reasons = [LOWERINGS[n].supports(spec) for n in self.plan]
        return next((r for r in reasons if r is not None), None)

    def conv(self, x: jax.Array, w: jax.Array, spec: ConvSpec) -> jax.Array:
        return _split(x, w, spec, self.plan)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _split(x: jax.Array, w: jax.Array, spec: ConvSpec, plan: Plan) -> jax.Array:
    return LOWERINGS[plan.fwd].conv(x, w, spec)


def _split_jvp(spec, plan, primals, tangents):
    x, w = primals
    tx, tw = tangents
    y = LOWERINGS[plan.fwd].conv(x, w, spec)
    # A conv is bilinear: d(x ⋆ w) = dx ⋆ w + x ⋆ dw. Each term is the jvp of its role's
    # lowering in one argument, so a lowering's own derivative rule (Winograd's) is honoured;
    # the primal each jvp also computes is dead code under jit.
    terms = []
    if not isinstance(tx, SymbolicZero):
        dx_conv = LOWERINGS[plan.dx].conv
        terms.append(jax.jvp(lambda a: dx_conv(a, w, spec), (x,), (tx,))[1])
    if not isinstance(tw, SymbolicZero):
        dw_conv = LOWERINGS[plan.dw].conv
        terms.append(jax.jvp(lambda b: dw_conv(x, b, spec), (w,), (tw,))[1])
    return y, functools.reduce(jnp.add, terms) if terms else jnp.zeros_like(y)


_split.defjvp(_split_jvp, symbolic_zeros=True)


def select(spec: ConvSpec, implementation: str | None = None) -> Any:
    """The lowering to run ``spec`` with (an object with ``.conv(x, w, spec)``).

    Args:
      spec: the canonical conv description.
      implementation: None for the :func:`plan` of this spec on the default backend, or a name
        from :data:`LOWERINGS` (used for the forward and, by autodiff, both gradients).

    Raises:
      ValueError: for an unknown name, or a named lowering that does not apply (with why).

    Examples:
      >>> from jaxconv._ops import make_spec
      >>> spec, _, _ = make_spec((2, 8, 8, 4), (3, 3, 4, 4), "float32")
      >>> select(spec, "xla").name
      'xla'
    """
    if implementation is not None:
        lowering = get(implementation)
        reason = lowering.supports(spec)
        if reason is not None:
            raise ValueError(f"`implementation` (={implementation!r}) does not apply: {reason}")
        return lowering
    for seen in _RECORDING:
        seen.append(spec)
    return for_plan(plan(spec))


def for_plan(chosen: Plan) -> Any:
    """The lowering that runs ``chosen``: the named one when all roles agree, else a
    :class:`Split`."""
    if chosen.fwd == chosen.dx == chosen.dw:
        return LOWERINGS[chosen.fwd]
    return Split(chosen)
