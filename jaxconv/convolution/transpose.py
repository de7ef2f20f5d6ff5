"""Transposed convolution: ``conv_transpose``, PyTorch's and Flax's conventions in one function.

A transposed convolution scatters every input pixel ``i`` through the kernel: tap ``t`` adds
``x[i]·w[t]`` to output position ``i·stride + t·dilation - pad_lo``. It runs as a stride-1
:func:`jaxconv.conv` on the input dilated by ``stride`` with the kernel flipped, so it takes
the same dispatch as every conv (on a CPU with the extension: oneDNN's deconvolution).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxconv import _geometry as geo
from jaxconv._check import check_array, check_bias, check_bool, check_groups, check_int
from jaxconv.convolution.conv import add_bias, conv
from jaxconv.convolution.lowering import Plan

__all__ = ["conv_transpose"]

Array = jax.Array


def _spatial_axes(ndim: int, channels_last: bool) -> tuple[int, ...]:
    """The spatial axes of an ``[N, *spatial, C]`` (or ``[N, C, *spatial]``) array."""
    return tuple(range(1, ndim + 1)) if channels_last else tuple(range(2, ndim + 2))


def _to_hwio(w: Array, channels_last: bool) -> Array:
    """``w`` as ``[*kernel, I, O]``; a channels-first kernel is ``[O, I, *kernel]``."""
    if channels_last:
        return w
    return jnp.moveaxis(jnp.moveaxis(w, 0, -1), 0, -2)


def _from_hwio(w: Array, channels_last: bool) -> Array:
    if channels_last:
        return w
    return jnp.moveaxis(jnp.moveaxis(w, -1, 0), -1, 1)


def _forward_kernel(w: Array, groups: int, c_in: int) -> Array:
    """A forward conv's HWIO kernel ``[*k, C_out/groups, C_in]`` (``transpose_kernel=True``)
    as the transposed conv's ``[*k, C_in/groups, C_out]``: the kernel of the conv whose
    transpose this is, channels swapped within each group."""
    *ks, c_out_g, c_in_w = w.shape
    if c_in_w != c_in:
        raise ValueError(
            f"with `transpose_kernel=True`, `w` out-channel dim (={c_in_w}) must equal the "
            f"input channels of `x` (={c_in}): `w` is the kernel of the conv whose transpose "
            f"this is, [*kernel, C_out/groups, C_in]; got shape {tuple(w.shape)}"
        )
    check_groups(groups, c_in, groups * c_out_g)
    g_w = w.reshape(*ks, c_out_g, groups, c_in // groups)
    g_w = jnp.swapaxes(g_w, -3, -1)  # [*k, C_in/g, g, C_out/g]
    return g_w.reshape(*ks, c_in // groups, groups * c_out_g)


def conv_transpose(
    x: Array,
    w: Array,
    b: Array | None = None,
    *,
    stride: Any = 1,
    padding: Any = "SAME",
    output_padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    layout: str = "NHWC",
    precision: Any = None,
    preferred_element_type: Any = None,
    transpose_kernel: bool = False,
    implementation: str | Plan | None = None,
) -> Array:
    """N-d transposed convolution ("deconvolution"): PyTorch's ``ConvTranspose`` padding with
    ints, Flax's with ``"SAME"``/``"VALID"``; the default is ``"SAME"`` (``n·stride``
    outputs), as for every conv op and ``nnx.ConvTranspose``. PyTorch's default is
    ``padding=0``: pass it.

    Every input pixel ``i`` is scattered through the kernel: tap ``t`` adds ``x[i]·w[t]`` to
    output position ``i·stride + t·dilation - pad_lo``, so the output size per dim is
    ``(n-1)·stride - pad_lo - pad_hi + dilation·(k-1) + output_padding + 1``.

    The conventions side by side (users have been bitten by the difference for years: jax
    #11252, flax #3137):

    ==================  ==========================================  ==========================
    ``padding``         PyTorch ``ConvTranspose2d`` (int / pairs)   Flax ``nnx.ConvTranspose``
                                                                    (``"SAME"``, ``"VALID"``)
    ==================  ==========================================  ==========================
    what it pads        crops ``p`` from each end of the full        pads the stride-dilated
                        output (``(lo, hi)`` crops per side)         input, ``lax``'s rule
    output size         ``(n-1)s - 2p + d(k-1) + a + 1``             SAME: ``n·s``; VALID:
                                                                    ``n·s + max(d(k-1)+1-s, 0)``
    ``output_padding``  ``a`` extra outputs on the high side,        not available (error)
                        ``a < max(stride, dilation)``
    ==================  ==========================================  ==========================

    And the kernel (HWIO like every jaxconv kernel; OIHW for a channels-first ``layout``):

    - ``transpose_kernel=False`` (default): ``w`` is ``[*kernel, C_in/groups, C_out]``, the
      weights that scatter ``x``'s channels into the output's, not flipped. For ``groups=1``
      that is PyTorch's ``ConvTranspose2d.weight`` ``(C_in, C_out, kh, kw)`` transposed by
      ``(2, 3, 0, 1)``; for ``groups=g`` reshape it to ``(g, C_in/g, C_out/g, kh, kw)``,
      transpose by ``(3, 4, 1, 0, 2)`` and reshape to ``(kh, kw, C_in/g, C_out)``. Flax's
      ``nnx.ConvTranspose(transpose_kernel=False)`` kernel ``k`` runs an *unflipped* conv on the
      dilated input: it equals this function with ``w = jnp.flip(k, spatial axes)``.
    - ``transpose_kernel=True``: ``w`` is the kernel of the forward conv whose transpose (VJP)
      this is, ``[*kernel, C_out/groups, C_in]`` — Flax's and ``lax.conv_transpose``'s
      ``transpose_kernel=True`` (the same kernel gives the same result). With ints this is
      exactly the gradient of ``jaxconv.conv(·, w, stride, padding, dilation, groups)`` — and
      with ``layout="NCHW"`` the OIHW kernel is PyTorch's ``ConvTranspose2d.weight``
      ``(C_in, C_out/groups, kh, kw)`` as it is.

    Args:
      x: ``[N, *spatial, C_in]`` (``"NHWC"``, the default) or ``[N, C_in, *spatial]``
        (``"NCHW"``); 1-D, 2-D and 3-D.
      w: the kernel, see above. Must have ``x``'s dtype.
      b: optional bias ``[C_out]``.
      stride: int or one per spatial dim: the upsampling factor.
      padding: ``"SAME"`` (default) / ``"VALID"`` (Flax's), or an int or one int or
        ``(lo, hi)`` pair per dim, each ``>= 0`` (PyTorch's: crop the output; PyTorch's
        default is ``0``).
      output_padding: int or one per dim, ``>= 0`` and ``< max(stride, dilation)``: extra
        outputs on the high side (PyTorch's; only with int/pair padding).
      dilation: kernel dilation.
      groups: feature groups (``C_in`` and ``C_out`` both divisible).
      layout: ``"NHWC"`` (default) or ``"NCHW"`` (also ``NWC``/``NDHWC``/``NCW``/``NCDHW``).
      precision, preferred_element_type: as for :func:`jaxconv.conv`.
      transpose_kernel: which kernel convention ``w`` follows (above).
      implementation: the lowering of the underlying input-dilated conv (see
        :func:`jaxconv.conv`); pads beyond the kernel's reach are added as zeros around it, so
        oneDNN's deconvolution applies to every padding.

    Returns:
      ``[N, *spatial_out, C_out]`` (or channels-first).

    Examples:
      PyTorch's ``ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)`` doubles the
      size; so does Flax's ``"SAME"``:

      >>> import jax.numpy as jnp
      >>> from jaxconv.convolution import conv_transpose
      >>> x = jnp.ones((1, 7, 7, 8))
      >>> w = jnp.ones((3, 3, 8, 4))
      >>> conv_transpose(x, w, stride=2, padding=1, output_padding=1).shape
      (1, 14, 14, 4)
      >>> conv_transpose(x, w, stride=2, padding="SAME").shape
      (1, 14, 14, 4)
      >>> conv_transpose(x, w, stride=2).shape   # the default, "SAME"
      (1, 14, 14, 4)
      >>> conv_transpose(x, w, stride=2, padding=0).shape   # PyTorch's default: (7-1)·2 + 3
      (1, 15, 15, 4)

      Each input pixel is scattered through the kernel (1-D, stride 2, padding 0):

      >>> x1 = jnp.array([1.0, 10.0]).reshape(1, 2, 1)
      >>> w1 = jnp.array([1.0, 2.0, 3.0]).reshape(3, 1, 1)
      >>> conv_transpose(x1, w1, stride=2, padding=0, layout="NWC")[0, :, 0]
      Array([ 1.,  2., 13., 20., 30.], dtype=float32)
    """
    with jax.named_scope("jaxconv.conv_transpose"):
        x, w = check_array(x, "x", empty_batch=True), check_array(w, "w")
        check_bool(transpose_kernel, "transpose_kernel")
        channels_last = geo.channels_last(layout)
        if w.ndim not in (3, 4, 5) or x.ndim != w.ndim:
            raise ValueError(
                f"`x` and `w` must have the same rank, 3, 4 or 5 (1-3 spatial dims), got "
                f"shapes {tuple(x.shape)} and {tuple(w.shape)}"
            )
        ndim = x.ndim - 2
        groups = check_int(groups, "groups")
        c_in = x.shape[-1] if channels_last else x.shape[1]
        w_hwio = _to_hwio(w, channels_last)
        if transpose_kernel:
            w_hwio = _forward_kernel(w_hwio, groups, c_in)
        kernel = tuple(w_hwio.shape[:ndim])
        pads = geo.conv_transpose_padding(
            kernel,
            stride=stride,
            padding=padding,
            output_padding=output_padding,
            dilation=dilation,
        )
        strides = geo.canonicalize_spatial(stride, ndim, "stride")
        dilations = geo.canonicalize_spatial(dilation, ndim, "dilation")
        spatial = x.shape[1:-1] if channels_last else x.shape[2:]
        spans = tuple(geo.dilated_size(k, d) - 1 for k, d in zip(kernel, dilations))
        out_sizes = [
            geo.conv_transpose_output_size(
                n, k, stride=s, padding=pad, dilation=d, padding_name=f"`padding` (={padding!r})"
            )
            for n, k, s, d, pad in zip(spatial, kernel, strides, dilations, pads)
        ]
        # Pads past the kernel's reach (d·(k-1)) only add zero outputs and negative pads only
        # crop: the conv gets pads clamped to [0, d·(k-1)] (what oneDNN's deconvolution takes)
        # and the rest is done on its output.
        inner = tuple((min(max(lo, 0), e), min(max(hi, 0), e)) for (lo, hi), e in zip(pads, spans))
        # XLA's limits in this function's words (the conv below would name `input_dilation`).
        n_batch, c_out = x.shape[0], w_hwio.shape[-1]
        out_shape = (n_batch, *out_sizes, c_out) if channels_last else (n_batch, c_out, *out_sizes)
        geo.check_xla_limits(
            spatial=tuple(spatial),
            kernel=kernel,
            stride=(1,) * ndim,
            dilation=dilations,
            input_dilation=strides,
            padding=inner,
            sizes=(
                ("`x` batch", n_batch),
                ("`x` channels", c_in),
                ("`w` output channels", c_out),
                *(
                    (f"the output size ({n}-1)·{s} + 1 + {lo} + {hi} - {e} of `x` and `w`", size)
                    for n, s, e, (lo, hi), size in zip(spatial, strides, spans, pads, out_sizes)
                ),
            ),
            arrays=(
                ("`x`", x.shape),
                ("`w`", w.shape),
                ("the output of `x`, `w`, `stride` and `padding`", out_shape),
            ),
            names={
                "input_dilation": "`stride`",
                "kernel": "`w` kernel size",
                "padding": "the pads `w` and `padding` give",
            },
        )
        zeros = tuple((max(lo - e, 0), max(hi - e, 0)) for (lo, hi), e in zip(pads, spans))
        crops = tuple((max(-lo, 0), max(-hi, 0)) for lo, hi in pads)
        flipped = jnp.flip(w_hwio, tuple(range(ndim)))
        padded = any(v for pair in zeros for v in pair)
        y = conv(
            x,
            _from_hwio(flipped, channels_last),
            None if padded else b,
            padding=inner,
            dilation=dilations,
            input_dilation=strides,
            groups=groups,
            layout=layout,
            precision=precision,
            preferred_element_type=preferred_element_type,
            implementation=implementation,
        )
        axes = _spatial_axes(ndim, channels_last)
        if any(v for pair in crops for v in pair):
            index = [slice(None)] * y.ndim
            for axis, (lo, hi) in zip(axes, crops):
                index[axis] = slice(lo, y.shape[axis] - hi)
            y = y[tuple(index)]
        if padded:
            widths = [(0, 0)] * y.ndim
            for axis, pair in zip(axes, zeros):
                widths[axis] = pair
            y = jnp.pad(y, widths)
            y = add_bias(y, b, channels_last)
        else:
            check_bias(b, y.shape[-1] if channels_last else y.shape[1])
        return y
