"""The ``xla_eigen`` lowering: one ``lax.conv_general_dilated`` that XLA:CPU runs with Eigen.

XLA:CPU hands a 2-D f32 convolution to YNNPACK unless the conv fails YNNPACK's gate
(``IsConvolutionOpSupportedByYnn`` in XLA's ``ynn_support.cc``): among its rules, no output or
kernel spatial dim may exceed the input's. YNNPACK runs on ONE core when C_out <= 64, and its
weight gradient is very slow on large maps (GoogLeNet 3a 3×3, batch 32: 1279 ms vs Eigen 95 ms);
Eigen uses every core. So, with no compile option, this lowering shapes the conv to fail the gate
in all three convs that training runs:

- forward and weight gradient: the output gets ``e`` extra rows (more bottom padding) so it is
  taller than the input; the weight-gradient conv then has a "kernel" (the output gradient)
  taller than its input, which fails the same rule;
- input gradient: ``x`` gets one explicit zero column on the right (taken from the conv's
  right padding when there is some, else one extra output column) so the input-gradient conv's
  output (``x``'s shape) is wider than its input (the output gradient).

The extra rows/column are sliced off; the cost is ``e/H_out`` more MACs and a copy. The same
call on a backend without YNNPACK is just a slightly larger conv (``backends`` limits selection
to the CPU). The rule is a property of XLA's current gate (jaxlib 0.10.2): if a future XLA lets
YNNPACK take these shapes, the result stays exact and ``tests/test_kernels.py`` reports the
routing change.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv.kernels import _xla
from jaxconv.kernels._spec import ConvSpec, unmet

name = "xla_eigen"
backends = ("cpu",)
error_factor = 1.0
roles = ("fwd", "dx", "dw")  # it computes its own gradients
reference = _xla.conv


def supports(spec: ConvSpec) -> str | None:
    # 1-D and 3-D convs already run on Eigen; a strided output cannot outgrow its input.
    return unmet(spec, name, "2d", "stride 1", "no input dilation", "padding >= 0")


def conv(x: jax.Array, w: jax.Array, spec: ConvSpec) -> jax.Array:
    """The spec's conv with ``e`` extra output rows and a zero input column, sliced back."""
    (hlo, hhi), (wlo, whi) = spec.padding
    (h, _), (ho, wo) = spec.in_spatial, spec.out_spatial
    extra_rows = max(1, h - ho + 1)
    extra_col = 0 if whi >= 1 else 1
    hw = (1, 2) if spec.channels_last else (2, 3)
    pad = [(0, 0)] * 4
    pad[hw[1]] = (0, 1)
    y = lax.conv_general_dilated(
        jnp.pad(x, pad),
        w,
        window_strides=(1, 1),
        padding=((hlo, hhi + extra_rows), (wlo, whi - 1 + extra_col)),
        rhs_dilation=spec.dilation,
        dimension_numbers=(spec.lhs_spec, spec.rhs_spec, spec.lhs_spec),
        feature_group_count=spec.groups,
        precision=spec.precision,
        preferred_element_type=spec.preferred_element_type,
    )
    y = lax.slice_in_dim(y, 0, ho, axis=hw[0])
    return lax.slice_in_dim(y, 0, wo, axis=hw[1])
