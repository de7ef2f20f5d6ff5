"""Dot-based lowerings of a k×k conv, and a two-way split of one conv.

- ``shifted_gemm``: the sum over the kh·kw taps of ``einsum(shifted slice of x, w[i, j])`` —
  kh·kw GEMMs ``[N·H_out·W_out, C_in] @ [C_in, C_out]`` that XLA:CPU runs on every core.
- ``im2col``: the patches ``[N·H_out·W_out, kh·kw·C_in]`` and ONE GEMM, built per chunk of the
  batch under ``lax.map`` so the patch matrix stays cache-sized (about 8 MB).
- ``split_batch``: the ``xla`` conv on each half of the batch, concatenated — it pays only if
  XLA:CPU runs the two independent convs concurrently when YNNPACK uses one core.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv.kernels import _xla
from jaxconv.kernels._spec import ConvSpec, unmet

CHUNK_BYTES = 8 << 20


def _dense_nhwc(name: str, spec: ConvSpec) -> str | None:
    reason = unmet(spec, name, "2d", "nhwc", "groups 1", "no input dilation", "padding >= 0")
    if reason is None and all(k == 1 for k in spec.kernel):
        return f"{name} is for k×k kernels (a 1×1 is the einsum lowering), got {spec.kernel}"
    return reason


def _taps(x: jax.Array, spec: ConvSpec) -> list[jax.Array]:
    """The kh·kw strided views ``[N, H_out, W_out, C_in]`` of the padded input, row-major."""
    xp = jnp.pad(x, ((0, 0), *spec.padding, (0, 0)))
    (ho, wo), (sh, sw), (dh, dw) = spec.out_spatial, spec.stride, spec.dilation
    return [
        lax.slice(xp, (0, i * dh, j * dw, 0),
                  (xp.shape[0], i * dh + sh * (ho - 1) + 1, j * dw + sw * (wo - 1) + 1,
                   xp.shape[3]), (1, sh, sw, 1))
        for i in range(spec.kernel[0]) for j in range(spec.kernel[1])
    ]


class _Lowering:
    backends = None
    error_factor = 1.0
    reference = staticmethod(_xla.conv)

    def __repr__(self) -> str:
        return f"<lowering {self.name!r}>"


class ShiftedGemm(_Lowering):
    """Σ over taps of ``einsum(slice, w[i, j])``."""

    name = "shifted_gemm"

    def supports(self, spec: ConvSpec) -> str | None:
        return _dense_nhwc(self.name, spec)

    def conv(self, x: jax.Array, w: jax.Array, spec: ConvSpec) -> jax.Array:
        flat = w.reshape(-1, *w.shape[2:])
        terms = [jnp.einsum("nhwc,co->nhwo", t, flat[i], precision=spec.precision,
                            preferred_element_type=spec.preferred_element_type)
                 for i, t in enumerate(_taps(x, spec))]
        out = terms[0]
        for t in terms[1:]:
            out = out + t
        return out


class Im2col(_Lowering):
    """Patches and one GEMM per cache-sized chunk of the batch."""

    name = "im2col"

    def supports(self, spec: ConvSpec) -> str | None:
        return _dense_nhwc(self.name, spec)

    def conv(self, x: jax.Array, w: jax.Array, spec: ConvSpec) -> jax.Array:
        flat = w.reshape(-1, w.shape[-1])

        def gemm(xc: jax.Array) -> jax.Array:
            cols = jnp.concatenate(_taps(xc, spec), axis=-1)
            return jnp.einsum("nhwk,ko->nhwo", cols, flat, precision=spec.precision,
                              preferred_element_type=spec.preferred_element_type)

        per_image = spec.out_spatial[0] * spec.out_spatial[1] * flat.shape[0] * 4
        fit = max(1, CHUNK_BYTES // per_image)
        size = max(d for d in range(1, min(fit, spec.batch) + 1) if spec.batch % d == 0)
        if size == spec.batch:
            return gemm(x)
        y = lax.map(gemm, x.reshape(-1, size, *x.shape[1:]))
        return y.reshape(spec.batch, *y.shape[2:])


class SplitBatch(_Lowering):
    """``xla`` on each half of the batch."""

    name = "split_batch"

    def supports(self, spec: ConvSpec) -> str | None:
        if spec.ndim != 2:
            return f"split_batch needs a 2-D conv, got {spec.ndim}-D"
        if spec.batch % 2:
            return f"split_batch needs an even batch, got {spec.batch}"
        return None

    def conv(self, x: jax.Array, w: jax.Array, spec: ConvSpec) -> jax.Array:
        half = spec.batch // 2
        return jnp.concatenate([_xla.conv(x[:half], w, spec), _xla.conv(x[half:], w, spec)])


LOWERINGS = (ShiftedGemm(), Im2col(), SplitBatch())
