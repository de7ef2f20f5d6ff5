"""The ``im2col`` lowering: a k×k conv as the patch matrix and ONE GEMM.

The patches ``[N·H_out·W_out, kh·kw·C_in]`` are built per chunk of the batch under ``lax.map``
so they stay cache-sized (about 8 MB). It earns its place in the input gradient of convs with
very few input channels (an RGB stem: its transpose is a GEMM and a patch scatter, where Eigen's
is a poor contraction). Measured and deleted: ``shifted_gemm`` (a sum of per-tap GEMMs) and
``split_batch`` (two half-batch convs), see the commit that removed them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv.kernels import _xla
from jaxconv.kernels._spec import ConvSpec, map_chunks, unmet

name = "im2col"
backends = None  # every platform
error_factor = 1.0
roles = ("fwd", "dx", "dw")  # it computes its own gradients
reference = _xla.conv

#: Target bytes of the patch matrix per ``lax.map`` step.
CHUNK_BYTES = 8 << 20


def supports(spec: ConvSpec) -> str | None:
    reason = unmet(spec, name, "2d", "nhwc", "groups 1", "no input dilation", "padding >= 0")
    if reason is None and all(k == 1 for k in spec.kernel):
        return f"{name} is for k×k kernels (a 1×1 is the einsum lowering), got {spec.kernel}"
    return reason


def _patches(x: jax.Array, spec: ConvSpec) -> jax.Array:
    """``[N, H_out, W_out, kh·kw·C_in]``: the strided views of the padded input, tap-major."""
    xp = jnp.pad(x, ((0, 0), *spec.padding, (0, 0)))
    (ho, wo), (sh, sw), (dh, dw) = spec.out_spatial, spec.stride, spec.dilation
    taps = [
        lax.slice(xp, (0, i * dh, j * dw, 0),
                  (xp.shape[0], i * dh + sh * (ho - 1) + 1, j * dw + sw * (wo - 1) + 1,
                   xp.shape[3]), (1, sh, sw, 1))
        for i in range(spec.kernel[0]) for j in range(spec.kernel[1])
    ]
    return jnp.concatenate(taps, axis=-1)


def conv(x: jax.Array, w: jax.Array, spec: ConvSpec) -> jax.Array:
    """``[N, H, W, C_in] ⋆ [kh, kw, C_in, C_out]`` as ``patches @ w.reshape(-1, C_out)``."""
    flat = w.reshape(-1, w.shape[-1])

    def gemm(xc: jax.Array) -> jax.Array:
        return jnp.einsum("nhwk,ko->nhwo", _patches(xc, spec), flat, precision=spec.precision,
                          preferred_element_type=spec.preferred_element_type)

    per_image = spec.out_spatial[0] * spec.out_spatial[1] * flat.shape[0] * 4
    return map_chunks(gemm, x, per_image, CHUNK_BYTES)
