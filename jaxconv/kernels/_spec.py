"""The frozen, hashable description of one convolution that every lowering receives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
from jax import lax


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


#: Rules a lowering may require, with the reason it gives when a spec breaks one.
RULES: dict[str, tuple[Callable[[ConvSpec], bool], str]] = {
    "2d": (lambda s: s.ndim == 2, "needs a 2-D conv, got {s.ndim}-D"),
    "nhwc": (lambda s: s.channels_last, "needs a channels-last layout (NHWC)"),
    "stride 1": (lambda s: all(v == 1 for v in s.stride), "needs stride 1, got {s.stride}"),
    "strided": (lambda s: any(v != 1 for v in s.stride),
                "is for strided convs, got stride {s.stride}"),
    "no input dilation": (lambda s: all(v == 1 for v in s.input_dilation),
                          "needs input_dilation 1, got {s.input_dilation}"),
    "no dilation": (lambda s: all(v == 1 for v in s.dilation + s.input_dilation),
                    "needs no dilation, got dilation {s.dilation} and input_dilation "
                    "{s.input_dilation}"),
    "groups 1": (lambda s: s.groups == 1, "needs groups=1, got {s.groups}"),
    "padding >= 0": (lambda s: all(p >= 0 for pair in s.padding for p in pair),
                     "needs non-negative padding, got {s.padding}"),
}


def unmet(spec: ConvSpec, name: str, *rules: str) -> str | None:
    """The reason (``"<name> needs …, got …"``) for the first of :data:`RULES` ``spec`` breaks."""
    for rule in rules:
        holds, reason = RULES[rule]
        if not holds(spec):
            return f"{name} {reason.format(s=spec)}"
    return None


def map_chunks(fn: Callable[[Any], Any], x: Any, bytes_per_image: int, budget: int) -> Any:
    """``fn(x)`` over chunks of ``x``'s batch under ``lax.map``, each about ``budget`` bytes of
    ``fn``'s temporaries: the largest divisor of the batch that fits (a divisor, so one compiled
    body serves every step). One call when the whole batch fits."""
    batch = x.shape[0]
    fit = max(1, budget // max(bytes_per_image, 1))
    size = max(d for d in range(1, min(fit, batch) + 1) if batch % d == 0)
    if size == batch:
        return fn(x)
    y = lax.map(fn, x.reshape(-1, size, *x.shape[1:]))
    return y.reshape(batch, *y.shape[2:])
