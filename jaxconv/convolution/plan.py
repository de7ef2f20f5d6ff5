"""Choosing a :class:`~jaxconv.convolution.Plan` for a conv: :func:`choose`, the one selection rule.

Dispatch (:func:`jaxconv.conv`), :func:`jaxconv.explain`, autotune and bench all call
:func:`choose`; nothing else decides which lowering runs. In order:

1. ``implementation=``: a :class:`Plan`, or a lowering name (that lowering for the forward and
   for each gradient role it owns; the cost model's choice for the others). One that does not
   apply raises ``ValueError`` with its reason.
2. the tuning table for this device kind (:mod:`jaxconv.convolution.tables`), else for its family
   (:func:`jaxconv.convolution.device_kinds`: ``gpu-nvidia-h200`` then ``gpu-sm90``), when it has an
   entry for the conv whose lowerings all still exist, apply, own their roles and target the
   platform;
3. the cost model, :func:`default_plan`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax

from jaxconv._device import device_kinds
from jaxconv.convolution import tables
from jaxconv.convolution.lowering import ROLES, Plan
from jaxconv.convolution.registry import LOWERINGS, available, candidates, get
from jaxconv.convolution.spec import ConvSpec

__all__ = ["Choice", "choices", "choose", "default_plan", "recording"]


def default_plan(spec: ConvSpec, platform: str, *, without: tuple[str, ...] = ()) -> Plan:
    """The cost model: the plan for a conv no table has measured.

    Each role goes to the first lowering, in :data:`~jaxconv.convolution.LOWERINGS` order,
    that applies on ``platform`` (:func:`~jaxconv.convolution.candidates`) and whose
    ``prefers(spec, platform)`` names the role; each lowering's ``prefers`` carries the
    measurement behind it. Today: ``onednn`` for every role on a CPU where it applies;
    else ``einsum`` on a CPU for a pointwise conv (only its weight gradient for a channels-last
    1-D one); else ``xla`` — plain ``lax.conv_general_dilated``, on a GPU cuDNN and cuBLAS
    through XLA, which only a measured table overrides. Nothing here depends on a CPU model,
    so the default is safe where nobody tuned.

    Args:
      spec: the conv.
      platform: ``"cpu"``, ``"gpu"`` or ``"tpu"``.
      without: lowerings to treat as not applying — ``("onednn",)`` gives the default of a
        machine where the extension does not load (bench ``untuned`` times it).

    Returns:
      The plan.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jaxconv.convolution import conv_spec
      >>> spec = conv_spec(jax.ShapeDtypeStruct((8, 28, 28, 64), jnp.float32),
      ...                  jax.ShapeDtypeStruct((1, 1, 64, 32), jnp.float32), padding="VALID")
      >>> default_plan(spec, "cpu").fwd in ("onednn", "einsum")
      True
      >>> default_plan(spec, "cpu", without=("onednn",))
      Plan(fwd='einsum', dx='einsum', dw='einsum')
      >>> default_plan(spec, "gpu")
      Plan(fwd='xla', dx='xla', dw='xla')
    """
    ok = [name for name in candidates(spec, platform) if name not in without]
    # the roles each prefers and owns
    preferred = {
        name: set(LOWERINGS[name].prefers(spec, platform)) & set(LOWERINGS[name].roles)
        for name in ok
    }
    return Plan(*(next((n for n in ok if role in preferred[n]), "xla") for role in ROLES))


@dataclass(frozen=True)
class Choice:
    """The plan a conv gets and why (what :func:`choose` and :func:`jaxconv.explain` return).

    Attributes:
      spec: the conv.
      plan: the lowering per role.
      source: ``"implementation"``, ``"table"``, ``"op default"`` (an op's own default, e.g.
        :func:`jaxconv.conv1x1`'s einsum) or ``"cost model"``.
      reason: one sentence on why.
      device_kind: the device kind whose table decided, else the first one consulted (None for
        a table handed to :func:`choose`).
      table: the table file consulted (None when none was).
      available: every lowering's answer for ``spec`` (None where it applies, else why not),
        asked on first read: a choice made with ``implementation="xla"`` never loads the
        oneDNN extension unless this is read.
    """

    spec: ConvSpec
    plan: Plan
    source: str
    reason: str
    device_kind: str | None
    table: Path | None

    @functools.cached_property
    def available(self) -> dict[str, str | None]:
        return available(self.spec)

    def __str__(self) -> str:
        lines = [
            f"plan: fwd={self.plan.fwd} dx={self.plan.dx} dw={self.plan.dw}",
            f"from: {self.source} — {self.reason}",
        ]
        for name, why in self.available.items():
            lines.append(f"  {name}: {'applies' if why is None else why}")
        return "\n".join(lines)


def _problem(spec: ConvSpec, plan: Plan, platform: str | None = None) -> str | None:
    """Why ``plan`` cannot run ``spec`` (a name that is no lowering, does not apply, is given a
    role it does not compute or, given a ``platform``, does not target it), else None."""
    for role, name in zip(ROLES, plan):
        lowering = LOWERINGS.get(name)
        if lowering is None:
            return f"names {name!r}, which is not one of {', '.join(map(repr, LOWERINGS))}"
        why = lowering.supports(spec)
        if why is not None:
            return f"names {name!r}, which does not apply: {why}"
        if role not in lowering.roles:
            return f"gives {name!r} the {role!r} role, which it does not compute"
        if platform is not None and lowering.backends and platform not in lowering.backends:
            return f"names {name!r}, which targets {', '.join(lowering.backends)}, not {platform}"
    return None


@contextlib.contextmanager
def _observing(observers: contextvars.ContextVar[tuple[list[Any], ...]]) -> Iterator[list[Any]]:
    """A fresh list added to ``observers`` for the block (nested blocks each get theirs)."""
    seen: list[Any] = []
    token = observers.set((*observers.get(), seen))
    try:
        yield seen
    finally:
        observers.reset(token)


#: The lists :func:`recording` collects into (a context variable: per thread and task).
_RECORDERS: contextvars.ContextVar[tuple[list[ConvSpec], ...]] = contextvars.ContextVar(
    "jaxconv_recorders", default=()
)


@contextlib.contextmanager
def recording() -> Iterator[list[ConvSpec]]:
    """Collects the spec (:meth:`ConvSpec.lowered`) of every conv :func:`choose` selects for
    with ``implementation=None`` inside the block — what :func:`jaxconv.autotune` tunes.
    Only an observer: it never changes which plan a conv gets.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxconv
      >>> with recording() as seen:  # traced afresh: a cached trace would make no choice
      ...     _ = jax.eval_shape(lambda x, w: jaxconv.conv(x, w), jnp.ones((1, 8, 8, 4)),
      ...                        jnp.ones((3, 3, 4, 4)))
      >>> [spec.kernel for spec in seen]
      [(3, 3)]
    """
    with _observing(_RECORDERS) as seen:
        yield seen


@functools.cache
def _kinds(platform: str) -> tuple[str, ...]:
    return device_kinds(platform)


def choose(
    spec: ConvSpec,
    implementation: str | Plan | None = None,
    *,
    platform: str | None = None,
    table: tables.Table | None = None,
    default: tuple[Plan, str] | None = None,
) -> Choice:
    """The plan for ``spec``, and why: see the module doc for the order.

    Args:
      spec: from :func:`jaxconv.convolution.conv_spec`.
      implementation: None, a lowering name, or a :class:`Plan`.
      platform: the platform to choose for (default: jax's default backend).
      table: the tuning table to consult (default: :func:`jaxconv.convolution.tables.load` for the
        platform's device kind, then for its family, each read again whenever its file changes
        — the one place a table enters dispatch).
      default: an op's own default ``(plan, why)``, taken instead of the cost model (after
        ``implementation`` and the tables) where it applies: :func:`jaxconv.conv1x1` keeps the
        mission's einsum this way, where the cost model would give the same 1×1 conv to
        oneDNN.

    Raises:
      TypeError, ValueError: an unknown or inapplicable ``implementation``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jaxconv.convolution import conv_spec
      >>> spec = conv_spec(jax.ShapeDtypeStruct((2, 8, 8, 4), jnp.float32),
      ...                  jax.ShapeDtypeStruct((3, 3, 4, 4), jnp.float32))
      >>> choose(spec, "xla").plan
      Plan(fwd='xla', dx='xla', dw='xla')
    """
    choice = _choose(spec, implementation, platform=platform, table=table, default=default)
    for seen in _CHOICES.get():
        seen.append(choice)
    return choice


#: The lists :func:`choices` collects into.
_CHOICES: contextvars.ContextVar[tuple[list[Choice], ...]] = contextvars.ContextVar(
    "jaxconv_choices", default=()
)


@contextlib.contextmanager
def choices() -> Iterator[list[Choice]]:
    """Collects every :class:`Choice` :func:`choose` returns inside the block, in order (what
    :func:`jaxconv.explain` shows for a function). Only an observer.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxconv
      >>> with choices() as seen:  # traced afresh: a cached trace would make no choice
      ...     _ = jax.eval_shape(lambda x, w: jaxconv.conv(x, w), jnp.ones((1, 8, 8, 4)),
      ...                        jnp.ones((3, 3, 4, 4)))
      >>> [c.spec.kernel for c in seen]
      [(3, 3)]
    """
    with _observing(_CHOICES) as seen:
        yield seen


def _choose(
    spec: ConvSpec,
    implementation: str | Plan | None,
    *,
    platform: str | None,
    table: tables.Table | None,
    default: tuple[Plan, str] | None,
) -> Choice:
    platform = platform or jax.default_backend()
    if isinstance(implementation, Plan):
        problem = _problem(spec, implementation)
        if problem is not None:
            raise ValueError(f"`implementation` {implementation} {problem}")
        return Choice(spec, implementation, "implementation", "the Plan asked for", None, None)
    if implementation is not None:
        lowering = get(implementation)
        why = lowering.supports(spec)
        if why is not None:
            raise ValueError(f"`implementation` (={implementation!r}) does not apply: {why}")
        if set(ROLES) <= set(lowering.roles):
            plan = Plan(lowering.name, lowering.name, lowering.name)
        else:
            fallback = default_plan(spec, platform)
            plan = Plan(
                *(
                    lowering.name if role in lowering.roles else getattr(fallback, role)
                    for role in ROLES
                )
            )
        reason = f"implementation={implementation!r}"
        if plan != Plan(lowering.name, lowering.name, lowering.name):
            reason += "; the roles it does not compute come from the cost model"
        return Choice(spec, plan, "implementation", reason, None, None)
    for seen in _RECORDERS.get():
        seen.append(spec.lowered())
    if table is not None:
        consulted: list[tuple[str | None, tables.Table]] = [(None, table)]
    else:  # the exact device kind's table, then its family's (device_kinds)
        consulted = [(kind, tables.load(kind)) for kind in _kinds(platform)]
    whys = []
    for kind, candidate in consulted:
        tuned = candidate.lookup(spec)
        if tuned is not None:
            problem = _problem(spec, tuned, platform)
            if problem is None:
                return Choice(
                    spec,
                    tuned,
                    "table",
                    f"measured by autotune ({candidate.path})",
                    kind,
                    candidate.path,
                )
            whys.append(f"the table entry {tuple(tuned)} {problem}")
        elif candidate.problem is not None:
            whys.append(f"the table {candidate.path} is {candidate.problem}")
    why = "; ".join(whys) or "no tuning table entry for this conv"
    kind, first = consulted[0]
    if default is not None and _problem(spec, default[0], platform) is None:
        return Choice(spec, default[0], "op default", f"{why}; {default[1]}", kind, first.path)
    plan = default_plan(spec, platform)
    if len(set(plan)) == 1:
        preferred = f"{plan.fwd} applies and is preferred"
    else:
        roles = ", ".join(f"{r}={n}" for r, n in zip(plan._fields, plan))
        preferred = f"per role, {roles} are preferred"
    return Choice(spec, plan, "cost model", f"{why}; {preferred}", kind, first.path)
