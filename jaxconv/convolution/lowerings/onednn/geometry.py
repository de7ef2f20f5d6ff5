"""The static part of a conv that oneDNN's primitives take: :class:`Geometry` (hashable, a
primitive parameter; an input-dilated conv as oneDNN's deconvolution)."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np

from jaxconv._geometry import conv_transpose_output_size, out_size
from jaxconv.convolution.spec import ConvSpec


class Geometry(NamedTuple):
    """The static part of a conv the FFI handlers need (hashable: a primitive parameter)."""

    stride: tuple[int, ...]
    pad_lo: tuple[int, ...]
    pad_hi: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    channels_last: bool
    transposed: bool = False

    @classmethod
    def of(cls, spec: ConvSpec) -> Geometry:
        """The spec as oneDNN sees it. An input-dilated conv (stride 1) is a deconvolution:
        stride = input dilation, padding ``k_eff - 1 - p`` per side, kernel flipped (done by
        :func:`conv`), so that input pixel ``i`` meets output ``i·s + lo - t·d`` at tap ``t``
        in both."""
        lo, hi = (tuple(p[j] for p in spec.padding) for j in (0, 1))
        if all(v == 1 for v in spec.input_dilation):
            return cls(spec.stride, lo, hi, spec.dilation, spec.groups, spec.channels_last)
        span = tuple((k - 1) * d for k, d in zip(spec.kernel, spec.dilation))
        return cls(
            spec.input_dilation,
            tuple(e - p for e, p in zip(span, lo)),
            tuple(e - p for e, p in zip(span, hi)),
            spec.dilation,
            spec.groups,
            spec.channels_last,
            True,
        )

    def attributes(self) -> dict[str, Any]:
        as_array = functools.partial(np.asarray, dtype=np.int64)
        return dict(
            stride=as_array(self.stride),
            pad_lo=as_array(self.pad_lo),
            pad_hi=as_array(self.pad_hi),
            dilation=as_array(self.dilation),
            groups=np.int64(self.groups),
            channels_last=np.int64(self.channels_last),
            transposed=np.int64(self.transposed),
        )

    def out_shape(self, x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> tuple[int, ...]:
        nsp = len(self.stride)
        if self.channels_last:
            spatial, kernel, c_out = x_shape[1:-1], w_shape[:nsp], w_shape[-1]
        else:
            spatial, kernel, c_out = x_shape[2:], w_shape[2:], w_shape[0]
        args = zip(spatial, kernel, self.stride, self.dilation, self.pad_lo, self.pad_hi)
        if self.transposed:  # oneDNN's deconvolution pads are d·(k-1) - the dilated input's
            out = tuple(
                conv_transpose_output_size(
                    n, k, stride=s, padding=(d * (k - 1) - lo, d * (k - 1) - hi), dilation=d
                )
                for n, k, s, d, lo, hi in args
            )
        else:
            out = tuple(out_size(n, k, s, d, lo, hi) for n, k, s, d, lo, hi in args)
        return (x_shape[0], *out, c_out) if self.channels_last else (x_shape[0], c_out, *out)
