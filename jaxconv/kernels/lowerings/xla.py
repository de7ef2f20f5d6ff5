"""The ``xla`` lowering: one ``lax.conv_general_dilated``. It applies to every spec on every
platform: the reference the other lowerings are tested against, and the fallback."""

from __future__ import annotations

import jax
from jax import lax

from jaxconv.kernels.lowering import Lowering
from jaxconv.kernels.spec import ConvSpec

__all__ = ["LOWERING", "conv"]


def conv(x: jax.Array, w: jax.Array, spec: ConvSpec) -> jax.Array:
    """``lax.conv_general_dilated`` with the spec's explicit padding and dimension numbers."""
    return lax.conv_general_dilated(
        x,
        w,
        window_strides=spec.stride,
        padding=spec.padding,
        lhs_dilation=spec.input_dilation,
        rhs_dilation=spec.dilation,
        dimension_numbers=(spec.lhs_spec, spec.rhs_spec, spec.lhs_spec),
        feature_group_count=spec.groups,
        precision=spec.precision,
        preferred_element_type=spec.preferred_element_type,
    )


def _supports(spec: ConvSpec) -> str | None:
    del spec
    return None


LOWERING = Lowering(
    name="xla",
    supports=_supports,
    fwd=conv,
    summary="lax.conv_general_dilated: every spec, every platform; the reference and fallback",
)
