"""The kernels layer: how a convolution is computed, behind ``implementation=``.

One contract, in one direction::

    conv_spec(x, w, …) → ConvSpec      validate and canonicalize once (spec.py)
    choose(spec, implementation) → Choice(plan, source, reason)   the one selection rule (plan.py)
    run(plan, x, w, spec, b) → y       the one derivative rule for every plan (run.py)

A :class:`Lowering` (lowering.py) is a frozen record — name, ``supports(spec)``, forward,
the gradient roles it owns, backends, error factor, an optional fused bias/ReLU forward — and
:data:`LOWERINGS` the immutable mapping of all of them (registry.py; the lowerings themselves
in ``lowerings/``: ``onednn``, ``einsum`` and ``xla``, the reference and fallback). A
:class:`Plan` names one lowering per role: forward, input gradient, weight gradient.
:func:`jaxconv.autotune` measures plans and writes them to a tuning table (tables.py), which
:func:`choose` reads — the only hidden input to dispatch, and :func:`jaxconv.explain` shows it.
"""

from jaxconv._device import cpu_model as cpu_model
from jaxconv._device import device_family as device_family
from jaxconv._device import device_kind as device_kind
from jaxconv._device import device_kinds as device_kinds
from jaxconv.kernels import tables as tables
from jaxconv.kernels.lowering import ROLES as ROLES
from jaxconv.kernels.lowering import Lowering as Lowering
from jaxconv.kernels.lowering import Plan as Plan
from jaxconv.kernels.lowering import Role as Role
from jaxconv.kernels.plan import Choice as Choice
from jaxconv.kernels.plan import choose as choose
from jaxconv.kernels.plan import default_plan as default_plan
from jaxconv.kernels.plan import recording as recording
from jaxconv.kernels.registry import LOWERINGS as LOWERINGS
from jaxconv.kernels.registry import Implementation as Implementation
from jaxconv.kernels.registry import available as available
from jaxconv.kernels.registry import candidates as candidates
from jaxconv.kernels.registry import get as get
from jaxconv.kernels.run import run as run
from jaxconv.kernels.spec import ConvSpec as ConvSpec
from jaxconv.kernels.spec import conv_spec as conv_spec

__all__ = [
    "LOWERINGS",
    "ROLES",
    "Choice",
    "ConvSpec",
    "Implementation",
    "Lowering",
    "Plan",
    "Role",
    "available",
    "candidates",
    "choose",
    "conv_spec",
    "cpu_model",
    "default_plan",
    "device_family",
    "device_kind",
    "device_kinds",
    "get",
    "recording",
    "run",
    "tables",
]
