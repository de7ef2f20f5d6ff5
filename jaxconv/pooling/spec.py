"""The frozen description of one pooling call: :class:`PoolSpec` and :func:`pool_spec`.

Pooling takes conv's padding vocabulary plus Caffe/PyTorch ``ceil_mode``: :func:`pool_spec`
validates a call once into a frozen :class:`PoolSpec`, and each pool runs from it
(``_reduce_windows``: the shared ``lax.reduce_window`` form).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv import _geometry as geo
from jaxconv._check import check_array, check_bool

__all__ = ["PoolSpec", "pool_spec"]

Array = jax.Array


@dataclass(frozen=True)
class PoolSpec:
    """A pooling call, validated and canonicalized once (see :func:`pool_spec`).

    Attributes:
      channels_last: NHWC when True, NCHW when False.
      in_spatial: spatial input sizes (before any pre-pad).
      window, stride: per spatial dim.
      padding: ``(lo, hi)`` per spatial dim (zero/-inf padding; all zeros after a pre-pad).
      extra: high-side cells ``ceil_mode`` adds beyond the padding, per spatial dim.
      out_spatial: spatial output sizes.
      padding_mode: ``"wrap"``, ``"reflect"``, ``"edge"`` or None.
      pre_pad: ``(lo, hi)`` per spatial dim filled with ``padding_mode`` first (``()`` if none).
    """

    channels_last: bool
    in_spatial: tuple[int, ...]
    window: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    extra: tuple[int, ...]
    out_spatial: tuple[int, ...]
    padding_mode: str | None = None
    pre_pad: tuple[tuple[int, int], ...] = ()

    def full(self, spatial_items: tuple, fill: Any) -> tuple:
        """``spatial_items`` with ``fill`` at the batch and channel positions."""
        if self.channels_last:
            return (fill, *spatial_items, fill)
        return (fill, fill, *spatial_items)

    @property
    def padded_spatial(self) -> tuple[int, ...]:
        """The spatial sizes the windows slide over, after any pre-pad."""
        return tuple(
            n + lo + hi
            for n, (lo, hi) in zip(
                self.in_spatial, self.pre_pad or ((0, 0),) * len(self.in_spatial)
            )
        )

    def prepare(self, x: Array) -> Array:
        """``x`` with the padding mode applied (unchanged without one)."""
        if self.padding_mode is None:
            return x
        return jnp.pad(x, self.full(self.pre_pad, (0, 0)), mode=self.padding_mode)


def pool_spec(
    x: Any,
    window: Any,
    *,
    stride: Any = None,
    padding: geo.Padding = "VALID",
    ceil_mode: bool = False,
    layout: str = "NHWC",
) -> PoolSpec:
    """Validates a pooling call (the arguments of :func:`max_pool`) into a :class:`PoolSpec`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> x = jax.ShapeDtypeStruct((1, 112, 112, 64), jnp.float32)
      >>> pool_spec(x, 3, stride=2, ceil_mode=True).out_spatial
      (56, 56)
    """
    x = check_array(x, "x", empty_batch=True)
    channels_last = geo.channels_last(layout)
    if x.ndim < 3:
        form = "(N, *spatial, C)" if channels_last else "(N, C, *spatial)"
        raise ValueError(f"`x` must have rank >= 3 {form}, got shape {tuple(x.shape)}")
    check_bool(ceil_mode, "ceil_mode")
    ndim = x.ndim - 2
    spatial = tuple(x.shape[1:-1]) if channels_last else tuple(x.shape[2:])
    win = geo.canonicalize_spatial(window, ndim, "window")
    strides = win if stride is None else geo.canonicalize_spatial(stride, ndim, "stride")
    pads = geo.resolve_padding(padding, spatial, win, strides, (1,) * ndim)
    if any(lo < 0 or hi < 0 for lo, hi in pads):
        raise ValueError(f"`padding` must not be negative for pooling, got {pads}")
    mode = geo.padding_mode(padding)
    pre_pad: tuple[tuple[int, int], ...] = ()
    sizes = spatial
    if mode is not None:  # pad with values first, then pool the padded input as VALID
        pre_pad, pads = pads, ((0, 0),) * ndim
        sizes = tuple(n + lo + hi for n, (lo, hi) in zip(spatial, pre_pad))
    try:
        outs = tuple(
            geo.pool_out_size(n, k, s, lo, hi, ceil_mode)
            for n, k, s, (lo, hi) in zip(sizes, win, strides, pads)
        )
    except ValueError as err:
        raise ValueError(f"{err}{_layout_hint(tuple(x.shape), win, channels_last)}") from None
    for n, k, s, (lo, _), o in zip(sizes, win, strides, pads, outs):
        # A window lying wholly in the padding would give -inf (max) or 0/0 (avg) silently.
        if lo >= k or (o - 1) * s >= n + lo:
            raise ValueError(
                f"every pooling window must overlap the input: `padding` (={pads}) puts a whole "
                f"`window` (={win}) in the padding of an input of size {spatial}; keep each pad "
                f"smaller than the window"
            )
    extra = tuple(
        max((o - 1) * s + k - (n + lo + hi), 0)
        for o, n, k, s, (lo, hi) in zip(outs, sizes, win, strides, pads)
    )
    padded = tuple(n + lo + hi + e for n, (lo, hi), e in zip(sizes, pads, extra))
    n_c = (x.shape[0], x.shape[-1] if channels_last else x.shape[1])
    geo.check_xla_limits(
        spatial=spatial,
        kernel=win,
        stride=strides,
        padding=pre_pad or pads,
        extra=extra,
        arrays=(
            ("`x`", x.shape),
            (
                f"`x` padded by `padding` {padding!r} for `window` {win}",
                _with_batch_channels(padded, n_c, channels_last),
            ),
            (
                f"the output of `x` and `window` {win}",
                _with_batch_channels(outs, n_c, channels_last),
            ),
        ),
        names={
            "kernel": "`window`",
            "padding": f"`padding` {padding!r}" if isinstance(padding, str) else "`padding`",
        },
    )
    if mode is not None:
        return PoolSpec(channels_last, spatial, win, strides, pads, extra, outs, mode, pre_pad)
    return PoolSpec(channels_last, spatial, win, strides, pads, extra, outs)


def _with_batch_channels(
    spatial: tuple[int, ...], n_c: tuple[int, int], channels_last: bool
) -> tuple[int, ...]:
    """The full shape of ``spatial`` sizes with batch and channels ``n_c`` in the layout."""
    n, c = n_c
    return (n, *spatial, c) if channels_last else (n, c, *spatial)


def _layout_hint(shape: tuple[int, ...], window: tuple[int, ...], channels_last: bool) -> str:
    """When the window does not fit the spatial dims of ``shape`` but would fit them read in
    the other layout, a sentence suggesting that layout (``""`` otherwise).

    A pool sees no kernel, so NCHW data under the NHWC default (or the reverse) shows only when
    a channel count is smaller than the window; then it is worth saying.
    """
    other = shape[2:] if channels_last else shape[1:-1]
    if not all(n >= k for n, k in zip(other, window)):
        return ""
    if channels_last:
        return (
            f'; `x` {shape} looks channels-first (NCHW): pass `layout="NCHW"` or give NHWC '
            f"`x` (the default)"
        )
    return f'; `x` {shape} looks channels-last (NHWC): drop `layout="NCHW"` (NHWC is the default)'


def _reduce_windows(x: Array, init: Any, op: Any, spec: PoolSpec) -> Array:
    """``lax.reduce_window`` over the spatial dims of the prepared ``x``, cut to exactly
    ``spec.out_spatial`` windows.

    With ``ceil_mode`` and a high pad of a window or more, the padded length fits one window
    more than ceil_mode keeps (that one would start in the padding), hence the cut.
    """
    pads = spec.full(tuple((lo, hi + e) for (lo, hi), e in zip(spec.padding, spec.extra)), (0, 0))
    y = lax.reduce_window(x, init, op, spec.full(spec.window, 1), spec.full(spec.stride, 1), pads)
    return y[spec.full(tuple(slice(0, o) for o in spec.out_spatial), slice(None))]
