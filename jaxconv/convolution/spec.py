"""The frozen, hashable description of one convolution: :class:`ConvSpec` and :func:`conv_spec`.

:func:`conv_spec` validates a conv call once (at trace time: shapes are static under ``jit``)
and canonicalizes it. Every later step — choosing a plan, running it, tuning it, costing it —
takes the spec and nothing else, so a conv's arguments travel one way only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import jax.numpy as jnp
from jax import lax

from jaxconv import _geometry as geo
from jaxconv._check import check_array, check_groups, check_same_dtype

__all__ = ["ConvSpec", "conv_spec"]


@dataclass(frozen=True)
class ConvSpec:
    """Everything static about a convolution call, canonicalized once by :func:`conv_spec`.

    Spatial tuples have one entry per spatial dim. ``padding`` holds explicit zero-padding
    ``(lo, hi)`` pairs. A padding *mode* (CIRCULAR, REFLECT, REPLICATE) is carried as
    ``padding_mode`` (the ``jnp.pad`` mode) and ``pre_pad`` (the pairs the input is padded with
    first: ``((k_eff - 1) // 2, k_eff // 2)``, ``flax.nnx.Conv``'s rule, whatever the stride;
    see :func:`jaxconv.resolve_padding`); then ``padding`` is all zeros and ``in_spatial`` the
    pre-padded sizes, which is what a lowering sees.

    Attributes:
      ndim: number of spatial dims (1, 2 or 3).
      channels_last: NHWC/HWIO when True, NCHW/OIHW when False.
      batch: N.
      in_spatial: spatial input sizes a lowering sees (undilated; after any pre-pad).
      in_channels: C_in.
      out_channels: C_out.
      kernel: spatial kernel sizes.
      stride, dilation, input_dilation: per spatial dim.
      padding: ``(lo, hi)`` zero padding per spatial dim.
      groups: feature groups.
      dtype: input dtype name.
      precision: ``lax.Precision`` (or a pair, or None), hashable.
      preferred_element_type: dtype name or None.
      out_spatial: spatial output sizes.
      padding_mode: ``"wrap"``, ``"reflect"``, ``"edge"`` or None.
      pre_pad: ``(lo, hi)`` per spatial dim applied with ``padding_mode`` (``()`` without one).

    Examples:
      >>> import jax, jax.numpy as jnp, jaxconv
      >>> spec = jaxconv.conv_spec(jax.ShapeDtypeStruct((8, 14, 14, 480), jnp.float32),
      ...                          jax.ShapeDtypeStruct((1, 1, 480, 16), jnp.float32))
      >>> spec.is_pointwise, spec.out_shape
      (True, (8, 14, 14, 16))
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
    padding_mode: str | None = None
    pre_pad: tuple[tuple[int, int], ...] = ()

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
        """The input's (and output's) dimension string for ``lax``: ``"NHWC"``, ``"NCW"``…"""
        sp = "DHW"[3 - self.ndim :]
        return f"N{sp}C" if self.channels_last else f"NC{sp}"

    @property
    def rhs_spec(self) -> str:
        """The kernel's dimension string for ``lax``: ``"HWIO"`` or ``"OIHW"``…"""
        sp = "DHW"[3 - self.ndim :]
        return f"{sp}IO" if self.channels_last else f"OI{sp}"

    @property
    def x_shape(self) -> tuple[int, ...]:
        """The input shape a lowering receives (after any pre-pad)."""
        if self.channels_last:
            return (self.batch, *self.in_spatial, self.in_channels)
        return (self.batch, self.in_channels, *self.in_spatial)

    @property
    def w_shape(self) -> tuple[int, ...]:
        """The kernel shape: ``(*kernel, C_in/groups, C_out)`` or its OIHW order."""
        w_in = self.in_channels // self.groups
        if self.channels_last:
            return (*self.kernel, w_in, self.out_channels)
        return (self.out_channels, w_in, *self.kernel)

    @property
    def out_shape(self) -> tuple[int, ...]:
        """The output shape."""
        if self.channels_last:
            return (self.batch, *self.out_spatial, self.out_channels)
        return (self.batch, self.out_channels, *self.out_spatial)

    @property
    def out_dtype(self) -> Any:
        """The output dtype: ``preferred_element_type``, else the input dtype."""
        return jnp.dtype(self.preferred_element_type or self.dtype)

    def lowered(self) -> ConvSpec:
        """This spec as its lowering sees it: the pre-pad done (a padding mode no longer
        matters to which lowering is fastest, so tuning tables key on this).

        Examples:
          >>> import jax, jax.numpy as jnp, jaxconv
          >>> spec = jaxconv.conv_spec(jax.ShapeDtypeStruct((1, 8, 8, 4), jnp.float32),
          ...                          jax.ShapeDtypeStruct((3, 3, 4, 4), jnp.float32),
          ...                          padding="REFLECT")
          >>> spec.in_spatial, spec.lowered().padding_mode
          ((10, 10), None)
        """
        return replace(self, padding_mode=None, pre_pad=())


def canonical_precision(precision: Any) -> Any:
    """``precision`` as a hashable ``lax.Precision`` (or a pair of them, or None)."""
    if precision is None or isinstance(precision, lax.Precision):
        return precision
    if isinstance(precision, str):
        try:
            return lax.Precision(precision)
        except ValueError:
            raise ValueError(
                f"`precision` must be None, a lax.Precision or one of 'default', 'high', "
                f"'highest', got {precision!r}"
            ) from None
    if isinstance(precision, (tuple, list)) and len(precision) == 2:
        return tuple(canonical_precision(p) for p in precision)
    raise TypeError(f"`precision` must be None, a lax.Precision or a string, got {precision!r}")


def canonical_preferred(preferred: Any, in_dtype: Any) -> str | None:
    """``preferred_element_type`` as a dtype name, checked against the input dtype with lax's
    rule (a float for float inputs, never narrower) up front."""
    if preferred is None:
        return None
    try:
        out = jnp.dtype(preferred)
    except TypeError:
        raise TypeError(
            f"`preferred_element_type` must be None or a dtype, got {preferred!r}"
        ) from None
    inp = jnp.dtype(in_dtype)
    if jnp.issubdtype(inp, jnp.floating) and not jnp.issubdtype(out, jnp.floating):
        raise TypeError(
            f"`preferred_element_type` (={out.name}) must be a float dtype for {inp.name} inputs"
        )
    if out.itemsize < inp.itemsize:
        raise TypeError(
            f"`preferred_element_type` (={out.name}) must not be narrower than the input dtype "
            f"(={inp.name})"
        )
    return out.name


def _layout_hint(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...], groups: int, channels_last: bool
) -> str:
    """Where the shapes show which operand is in the other layout, a sentence saying so and
    how to fix it (appended to a channel-mismatch error); ``""`` when they do not.

    PyTorch's NCHW/OIHW arrays passed to the NHWC/HWIO default (or the reverse) are the common
    cause: the channel dims sit at the other end of the shape.
    """
    ndim = len(w_shape) - 2
    # The kernel's input channels as each layout reads them, times the groups.
    hwio_in, oihw_in = w_shape[-2] * groups, w_shape[1] * groups
    to_hwio = ", ".join(map(str, (*range(2, ndim + 2), 1, 0)))
    to_oihw = ", ".join(map(str, (ndim + 1, ndim, *range(ndim))))
    x_to_last = ", ".join(map(str, (0, *range(2, ndim + 2), 1)))
    x_to_first = ", ".join(map(str, (0, ndim + 1, *range(1, ndim + 1))))
    if channels_last:
        if x_shape[1] in (hwio_in, oihw_in) and x_shape[-1] not in (hwio_in, oihw_in):
            kernel = "" if x_shape[1] == oihw_in else f" and `w.transpose({to_oihw})`"
            return (
                f". `x` looks channels-first (NCHW): its dim 1 (={x_shape[1]}) matches the "
                f'kernel\'s input channels; pass `layout="NCHW"` (which reads `w` as OIHW'
                f"{kernel}), or give NHWC `x.transpose({x_to_last})`"
            )
        if x_shape[-1] == oihw_in:
            return (
                f". `w` looks OIHW (PyTorch's order): its dim 1 (={w_shape[1]}) matches the "
                f"input channels; the default layout takes an HWIO kernel: "
                f'`w.transpose({to_hwio})` (or pass NCHW `x` with `layout="NCHW"`)'
            )
        return ""
    if x_shape[-1] in (hwio_in, oihw_in) and x_shape[1] not in (hwio_in, oihw_in):
        kernel = "" if x_shape[-1] == hwio_in else f" and `w.transpose({to_hwio})`"
        return (
            f". `x` looks channels-last (NHWC): its last dim (={x_shape[-1]}) matches the "
            f'kernel\'s input channels; drop `layout="NCHW"` (the default NHWC takes an HWIO '
            f"kernel{kernel}), or give NCHW `x.transpose({x_to_first})`"
        )
    if x_shape[1] == hwio_in:
        return (
            f". `w` looks HWIO: its dim -2 (={w_shape[-2]}) matches the input channels; "
            f'`layout="NCHW"` takes an OIHW kernel: `w.transpose({to_oihw})`'
        )
    return ""


def conv_spec(
    x: Any,
    w: Any,
    *,
    stride: Any = 1,
    padding: geo.Padding = "SAME",
    dilation: Any = 1,
    input_dilation: Any = 1,
    groups: int = 1,
    layout: str = "NHWC",
    precision: Any = None,
    preferred_element_type: Any = None,
    names: Mapping[str, str] | None = None,
) -> ConvSpec:
    """Validates a conv call and canonicalizes it into a :class:`ConvSpec`.

    Args:
      x, w: the input and kernel, arrays or anything with ``shape`` and ``dtype``
        (``jax.ShapeDtypeStruct``), as :func:`jaxconv.conv` takes them.
      stride, padding, dilation, input_dilation, groups, layout, precision,
        preferred_element_type: as :func:`jaxconv.conv` takes them.
      names: what the caller calls ``x`` and ``w`` (``{"w": "w_reduce"}``), so that an
        error names the caller's argument.

    Returns:
      The :class:`ConvSpec`.

    Raises:
      TypeError, ValueError: naming the argument, the rule and the value.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> x = jax.ShapeDtypeStruct((8, 14, 14, 480), jnp.float32)
      >>> w = jax.ShapeDtypeStruct((5, 5, 480, 48), jnp.float32)
      >>> spec = conv_spec(x, w)
      >>> spec.padding, spec.out_shape
      (((2, 2), (2, 2)), (8, 14, 14, 48))
      >>> conv_spec(x, w, padding="REFLECT").pre_pad
      ((2, 2), (2, 2))
      >>> conv_spec(x, w, stride=3, padding="CIRCULAR").pre_pad  # Flax's amounts, not SAME's
      ((2, 2), (2, 2))
      >>> conv_spec(x, w, stride=3, padding="SAME").padding
      ((1, 2), (1, 2))
    """
    xn, wn = (names or {}).get("x", "x"), (names or {}).get("w", "w")
    x = check_array(x, xn, empty_batch=True)
    w = check_array(w, wn)
    check_same_dtype(x, w, wn, xn)
    x_shape, w_shape = tuple(x.shape), tuple(w.shape)
    channels_last = geo.channels_last(layout)
    if len(w_shape) not in (3, 4, 5):
        hint = " (for a [C_in, C_out] matrix use `conv1x1`)" if len(w_shape) == 2 else ""
        raise ValueError(
            f"`{wn}` must have rank 3, 4 or 5 (1-3 spatial dims + 2 channel dims), got rank "
            f"{len(w_shape)} with shape {w_shape}{hint}"
        )
    ndim = len(w_shape) - 2
    if len(x_shape) != ndim + 2:
        form = "(N, *spatial, C)" if channels_last else "(N, C, *spatial)"
        raise ValueError(
            f"`{xn}` must have rank {ndim + 2} {form} to match the {ndim}-D kernel `{wn}` "
            f"{w_shape}, got rank {len(x_shape)} with shape {x_shape}"
        )
    if channels_last:
        n, *spatial, c_in = x_shape
        *kernel, w_in, c_out = w_shape
    else:
        n, c_in, *spatial = x_shape
        c_out, w_in, *kernel = w_shape
    groups = check_groups(
        groups, c_in, c_out, hint=lambda g: _layout_hint(x_shape, w_shape, g, channels_last)
    )
    if w_in * groups != c_in:
        raise ValueError(
            f"`{wn}` in-channel dim (={w_in}) times `groups` (={groups}) must equal the input "
            f"channels of `{xn}` (={c_in}); {wn} has shape {w_shape}, {xn} has shape {x_shape}"
            + _layout_hint(x_shape, w_shape, groups, channels_last)
        )
    strides = geo.canonicalize_spatial(stride, ndim, "stride")
    dilations = geo.canonicalize_spatial(dilation, ndim, "dilation")
    in_dilations = geo.canonicalize_spatial(input_dilation, ndim, "input_dilation")
    kernel_t = tuple(kernel)
    spatial_t = tuple(spatial)
    dilated_in = tuple(geo.dilated_size(s, d) for s, d in zip(spatial_t, in_dilations))
    # A mode's amounts come from the dilated kernel alone (Flax's rule), not from SAME.
    pads = geo.resolve_padding(padding, dilated_in, kernel_t, strides, dilations)
    mode = geo.padding_mode(padding)
    pre_pad: tuple[tuple[int, int], ...] = ()
    if mode is not None:
        if any(d != 1 for d in in_dilations):
            raise ValueError(
                f"`padding` mode {padding!r} cannot be combined with `input_dilation` "
                f"(={in_dilations})"
            )
        pre_pad = pads
        spatial_t = tuple(s + lo + hi for s, (lo, hi) in zip(spatial_t, pads))
        dilated_in = spatial_t
        pads = ((0, 0),) * ndim
    out_spatial = tuple(
        geo.out_size(s, k, st, d, lo, hi)
        for s, k, st, d, (lo, hi) in zip(dilated_in, kernel_t, strides, dilations, pads)
    )
    lowered_x = (n, *spatial_t, c_in) if channels_last else (n, c_in, *spatial_t)
    out_shape = (n, *out_spatial, c_out) if channels_last else (n, c_out, *out_spatial)
    arrays = [
        (f"`{xn}`", x_shape),
        (f"`{wn}`", w_shape),
        (f"the output of `{xn}` and `{wn}`", out_shape),
    ]
    if mode is not None:
        arrays.append((f"`{xn}` padded by `padding` {padding!r}", lowered_x))
    if groups > 1:  # XLA expands a grouped conv's kernel (its gradient's) to every channel pair
        what = f"the kernel XLA expands {groups} `groups` of `{xn}`'s {c_in} channels to"
        arrays.append((what, (*kernel_t, c_in, c_out)))
    geo.check_xla_limits(
        spatial=tuple(spatial),
        kernel=kernel_t,
        stride=strides,
        dilation=dilations,
        input_dilation=in_dilations,
        padding=pre_pad or pads,
        sizes=(
            (f"`{xn}` batch", n),
            (f"`{xn}` channels", c_in),
            (f"`{wn}` output channels", c_out),
        ),
        arrays=arrays,
        names={
            "kernel": f"`{wn}` kernel size",
            "padding": f"`padding` {padding!r}" if isinstance(padding, str) else "`padding`",
        },
    )
    return ConvSpec(
        ndim=ndim,
        channels_last=channels_last,
        batch=n,
        in_spatial=spatial_t,
        in_channels=c_in,
        out_channels=c_out,
        kernel=kernel_t,
        stride=strides,
        dilation=dilations,
        input_dilation=in_dilations,
        padding=pads,
        groups=groups,
        dtype=jnp.dtype(x.dtype).name,
        precision=canonical_precision(precision),
        preferred_element_type=canonical_preferred(preferred_element_type, x.dtype),
        out_spatial=out_spatial,
        padding_mode=mode,
        pre_pad=pre_pad,
    )
