"""The convolution family: one contract, its lowerings and every public conv op.

One contract, in one direction::

    conv_spec(x, w, …) → ConvSpec      validate and canonicalize once (spec.py)
    choose(spec, implementation) → Choice(plan, source, reason)   the one selection rule (plan.py)
    run(plan, x, w, spec, b) → y       the one derivative rule for every plan (run.py)

A :class:`Lowering` (lowering.py) is a frozen record — name, ``supports(spec)``,
``prefers(spec, platform)``, forward, the gradient roles it owns, backends, error factor, an
optional fused bias forward — and :data:`LOWERINGS` the immutable mapping of all of them, in
preference order (registry.py; the lowerings themselves in ``lowerings/``: ``onednn``,
``einsum`` and ``xla``, the reference and fallback). A :class:`Plan` names one lowering per
role: forward, input gradient, weight gradient. :func:`jaxconv.autotune` measures plans (with
:func:`round_robin`, the timing bench uses too) and writes them to a tuning table (tables.py),
which :func:`choose` reads — the only hidden input to dispatch, and :func:`explain` shows it.

The public ops, one file each, all through that dispatch (so ``implementation=`` and
:func:`explain` answer for each): :func:`conv`, :func:`conv1x1`, :func:`bottleneck`,
:func:`depthwise_conv`, :func:`separable_conv`, :func:`conv_transpose`.
"""

from jaxconv._device import cpu_model as cpu_model
from jaxconv._device import device_family as device_family
from jaxconv._device import device_kind as device_kind
from jaxconv._device import device_kinds as device_kinds
from jaxconv._geometry import conv_transpose_padding as conv_transpose_padding
from jaxconv._timing import round_robin as round_robin
from jaxconv.convolution import autotune as autotune  # the module; jaxconv.autotune is the function
from jaxconv.convolution import tables as tables
from jaxconv.convolution.bottleneck import bottleneck as bottleneck
from jaxconv.convolution.conv import conv as conv
from jaxconv.convolution.conv1x1 import conv1x1 as conv1x1
from jaxconv.convolution.depthwise import depthwise_conv as depthwise_conv
from jaxconv.convolution.explain import explain as explain
from jaxconv.convolution.lowering import ROLES as ROLES
from jaxconv.convolution.lowering import Lowering as Lowering
from jaxconv.convolution.lowering import Plan as Plan
from jaxconv.convolution.lowering import Role as Role
from jaxconv.convolution.plan import Choice as Choice
from jaxconv.convolution.plan import choose as choose
from jaxconv.convolution.plan import default_plan as default_plan
from jaxconv.convolution.plan import recording as recording
from jaxconv.convolution.registry import LOWERINGS as LOWERINGS
from jaxconv.convolution.registry import Implementation as Implementation
from jaxconv.convolution.registry import available as available
from jaxconv.convolution.registry import candidates as candidates
from jaxconv.convolution.registry import get as get
from jaxconv.convolution.run import run as run
from jaxconv.convolution.separable import separable_conv as separable_conv
from jaxconv.convolution.spec import ConvSpec as ConvSpec
from jaxconv.convolution.spec import conv_spec as conv_spec
from jaxconv.convolution.transpose import conv_transpose as conv_transpose

__all__ = [
    "LOWERINGS",
    "ROLES",
    "Choice",
    "ConvSpec",
    "Implementation",
    "Lowering",
    "Plan",
    "Role",
    "autotune",
    "available",
    "bottleneck",
    "candidates",
    "choose",
    "conv",
    "conv1x1",
    "conv_spec",
    "conv_transpose",
    "conv_transpose_padding",
    "cpu_model",
    "default_plan",
    "depthwise_conv",
    "device_family",
    "device_kind",
    "device_kinds",
    "explain",
    "get",
    "recording",
    "round_robin",
    "run",
    "separable_conv",
    "tables",
]
