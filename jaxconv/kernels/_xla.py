"""The XLA lowering: one ``lax.conv_general_dilated``. Applies to every spec; the fallback."""

from __future__ import annotations

import jax
from jax import lax

from jaxconv.kernels._spec import ConvSpec

name = "xla"
backends = None  # every platform
error_factor = 1.0
roles = ("fwd", "dx", "dw")  # it computes its own gradients


def supports(spec: ConvSpec) -> str | None:
    del spec
    return None


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


# The reference for every other lowering is this one (and, in tests, NumPy float64).
reference = conv
