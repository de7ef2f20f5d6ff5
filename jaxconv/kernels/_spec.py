"""The frozen, hashable description of one convolution that every lowering receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp


@dataclass(frozen=True)
class ConvSpec:
    """Everything static about a convolution call, canonicalized once by :mod:`jaxconv.ops`.

    Spatial tuples have one entry per spatial dim. ``padding`` holds explicit zero-padding
    ``(lo, hi)`` pairs; padding *modes* (CIRCULAR, REFLECT, REPLICATE) have already been applied
    to the input by the time a lowering sees the spec (``padding`` is then all zeros).

    Attributes:
      ndim: number of spatial dims (1, 2 or 3).
      channels_last: NHWC/HWIO when True, NCHW/OIHW when False.
      batch: N.
      in_spatial: spatial input sizes (undilated).
      in_channels: C_in.
      out_channels: C_out.
      kernel: spatial kernel sizes.
      stride, dilation, input_dilation: per spatial dim.
      padding: ``(lo, hi)`` per spatial dim.
      groups: feature groups.
      dtype: input dtype name.
      precision: ``lax.Precision`` (or None), hashable.
      preferred_element_type: dtype name or None.
      out_spatial: spatial output sizes.
    """

    ndim: int
    channels_last: bool
    batch: int
    in_spatial: tuple[int, ...]
    in_channels: int
    out_channels: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    input_dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    groups: int
    dtype: str
    precision: Any
    preferred_element_type: str | None
    out_spatial: tuple[int, ...]

    @property
    def is_pointwise(self) -> bool:
        """A 1×1 conv with stride 1, no dilation, no padding and one group: a matmul."""
        return (
            all(k == 1 for k in self.kernel)
            and all(s == 1 for s in self.stride)
            and all(d == 1 for d in self.input_dilation)
            and all(p == (0, 0) for p in self.padding)
            and self.groups == 1
        )

    @property
    def lhs_spec(self) -> str:
        sp = "DHW"[3 - self.ndim :]
        return f"N{sp}C" if self.channels_last else f"NC{sp}"

    @property
    def rhs_spec(self) -> str:
        sp = "DHW"[3 - self.ndim :]
        return f"{sp}IO" if self.channels_last else f"OI{sp}"

    @property
    def out_shape(self) -> tuple[int, ...]:
        if self.channels_last:
            return (self.batch, *self.out_spatial, self.out_channels)
        return (self.batch, self.out_channels, *self.out_spatial)

    @property
    def out_dtype(self) -> Any:
        return jnp.dtype(self.preferred_element_type or self.dtype)
