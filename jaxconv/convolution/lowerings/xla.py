"""The ``xla`` lowering: one ``lax.conv_general_dilated``. It applies to every spec on every
platform: the reference the other lowerings are tested against, and the fallback."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv.convolution.lowering import Lowering
from jaxconv.convolution.spec import ConvSpec

__all__ = ["LOWERING", "conv"]


def _crop(x: jax.Array, spec: ConvSpec) -> tuple[jax.Array, tuple[tuple[int, int], ...]]:
    """``x`` and pads with every negative pad done as a slice of ``x``: the same conv.

    XLA:CPU reads out of bounds on a negative low pad beside a positive high one — garbage
    values for padding ``((-1, 1), (0, 0))`` on a 5×5 input, a segfault for
    ``((-(2**31 - 1), 2**31 - 1), (0, 0))`` (``tests/test_size_limits.py``) — so lax never sees
    one. A crop of ``c`` cells of the input-dilated input keeps the pixels from
    ``ceil(c / input_dilation)`` on and pads the holes before the first of them; where a crop
    leaves no pixel, a one-pixel zero input stands in (the output reads only padding there).
    """
    if all(lo >= 0 and hi >= 0 for lo, hi in spec.padding):
        return x, spec.padding
    first = 1 if spec.channels_last else 2
    pads = []
    for d, (n, i, (lo, hi)) in enumerate(zip(spec.in_spatial, spec.input_dilation, spec.padding)):
        axis, last = first + d, (n - 1) * i  # the position of the last pixel, input-dilated
        start = -(-max(-lo, 0) // i)  # the first pixel left after the low crop
        stop = (last - max(-hi, 0)) // i  # the last one left after the high crop
        if start > stop:  # nothing left: zeros the size of one pixel, all the rest padding
            shape = (*x.shape[:axis], 1, *x.shape[axis + 1 :])
            x = jnp.zeros(shape, x.dtype)
            pads.append((0, last + lo + hi))
            continue
        x = lax.slice_in_dim(x, start, stop + 1, axis=axis)
        pads.append(
            (
                lo if lo >= 0 else start * i + lo,
                hi if hi >= 0 else last - max(-hi, 0) - stop * i,
            )
        )
    return x, tuple(pads)


def conv(x: jax.Array, w: jax.Array, spec: ConvSpec) -> jax.Array:
    """``lax.conv_general_dilated`` with the spec's explicit padding and dimension numbers
    (negative pads done as slices first, see :func:`_crop`)."""
    x, padding = _crop(x, spec)
    return lax.conv_general_dilated(
        x,
        w,
        window_strides=spec.stride,
        padding=padding,
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
