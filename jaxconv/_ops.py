"""Pure convolution functions: ``conv``, ``conv1x1``, ``bottleneck``.

Each canonicalizes its arguments once into a frozen :class:`~jaxconv.kernels.ConvSpec`,
validates at trace time (shapes are static under ``jit``) and calls the lowering that
:func:`jaxconv.kernels.select` picks. All are jit-, grad- and vmap-compatible.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv import _geometry as geo
from jaxconv import kernels
from jaxconv.kernels import _einsum
from jaxconv.kernels._spec import ConvSpec

__all__ = ["bottleneck", "conv", "conv1x1", "make_spec"]

Array = jax.Array


def _check_array(value: Any, name: str, empty_batch: bool = False) -> Any:
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        raise TypeError(f"`{name}` must be an array, got {type(value).__name__}")
    dims = value.shape[1:] if empty_batch else value.shape
    if any(d == 0 for d in dims):
        raise ValueError(f"`{name}` must not have zero-size dims, got shape {tuple(value.shape)}")
    return value


def _check_float_match(x: Any, w: Any, w_name: str = "w") -> None:
    if jnp.dtype(x.dtype) != jnp.dtype(w.dtype):
        raise TypeError(
            f"`{w_name}` dtype (={jnp.dtype(w.dtype).name}) must equal `x` dtype "
            f"(={jnp.dtype(x.dtype).name}); cast one of them (jaxconv does not promote silently)"
        )


def _canonical_precision(precision: Any) -> Any:
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
        return tuple(_canonical_precision(p) for p in precision)
    raise TypeError(f"`precision` must be None, a lax.Precision or a string, got {precision!r}")


def _canonical_dtype_name(dtype: Any, name: str) -> str | None:
    if dtype is None:
        return None
    try:
        return jnp.dtype(dtype).name
    except TypeError:
        raise TypeError(f"`{name}` must be None or a dtype, got {dtype!r}") from None


def _canonical_preferred(preferred: Any, in_dtype: Any) -> str | None:
    """Checks ``preferred_element_type`` against the input dtype with lax's rule, up front."""
    name = _canonical_dtype_name(preferred, "preferred_element_type")
    if name is None:
        return None
    out, inp = jnp.dtype(name), jnp.dtype(in_dtype)
    if jnp.issubdtype(inp, jnp.floating) and not jnp.issubdtype(out, jnp.floating):
        raise TypeError(
            f"`preferred_element_type` (={name}) must be a float dtype for {inp.name} inputs"
        )
    if out.itemsize < inp.itemsize:
        raise TypeError(
            f"`preferred_element_type` (={name}) must not be narrower than the input dtype "
            f"(={inp.name})"
        )
    return name


def make_spec(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    dtype: Any,
    *,
    stride: Any = 1,
    padding: geo.Padding = "SAME",
    dilation: Any = 1,
    input_dilation: Any = 1,
    groups: int = 1,
    layout: str = "NHWC",
    precision: Any = None,
    preferred_element_type: Any = None,
) -> tuple[ConvSpec, str | None, tuple[tuple[int, int], ...]]:
    """Validates a conv call and canonicalizes it.

    Returns:
      ``(spec, mode, mode_pads)``: the spec the lowering sees; and, for a padding mode
      (CIRCULAR/REFLECT/REPLICATE), the ``jnp.pad`` mode and the pairs to pre-pad the input with
      (the spec then has zero padding and the padded input sizes).
    """
    channels_last = geo._channels_last(layout)
    if len(w_shape) not in (3, 4, 5):
        hint = " (for a [C_in, C_out] matrix use `conv1x1`)" if len(w_shape) == 2 else ""
        raise ValueError(
            f"`w` must have rank 3, 4 or 5 (1-3 spatial dims + 2 channel dims), got rank "
            f"{len(w_shape)} with shape {w_shape}{hint}"
        )
    ndim = len(w_shape) - 2
    if len(x_shape) != ndim + 2:
        form = "(N, *spatial, C)" if channels_last else "(N, C, *spatial)"
        raise ValueError(
            f"`x` must have rank {ndim + 2} {form} to match the {ndim}-D kernel `w` {w_shape}, "
            f"got rank {len(x_shape)} with shape {x_shape}"
        )
    if channels_last:
        n, *spatial, c_in = x_shape
        *kernel, w_in, c_out = w_shape
    else:
        n, c_in, *spatial = x_shape
        c_out, w_in, *kernel = w_shape
    if isinstance(groups, bool) or not isinstance(groups, int):
        raise TypeError(f"`groups` must be an int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"`groups` (={groups}) must be >= 1")
    if c_in % groups:
        raise ValueError(f"`groups` (={groups}) must divide the input channels (={c_in})")
    if c_out % groups:
        raise ValueError(f"`groups` (={groups}) must divide the output channels (={c_out})")
    if w_in * groups != c_in:
        raise ValueError(
            f"`w` in-channel dim (={w_in}) times `groups` (={groups}) must equal the input "
            f"channels of `x` (={c_in}); w has shape {w_shape}, x has shape {x_shape}"
        )
    strides = geo.canonicalize_spatial(stride, ndim, "stride")
    dilations = geo.canonicalize_spatial(dilation, ndim, "dilation")
    in_dilations = geo.canonicalize_spatial(input_dilation, ndim, "input_dilation")
    kernel_t = tuple(kernel)
    spatial_t = tuple(spatial)
    dilated_in = tuple(geo.dilated_size(s, d) for s, d in zip(spatial_t, in_dilations))
    pads = geo.resolve_padding(padding, dilated_in, kernel_t, strides, dilations)
    mode = geo.padding_mode(padding)
    mode_pads: tuple[tuple[int, int], ...] = ()
    if mode is not None:
        if any(d != 1 for d in in_dilations):
            raise ValueError(
                f"`padding` mode {padding!r} cannot be combined with `input_dilation` "
                f"(={in_dilations})"
            )
        if mode == "reflect" and any(max(p) >= s for p, s in zip(pads, spatial_t)):
            raise ValueError(
                f"`padding` {padding!r} needs pads (={pads}) smaller than the input "
                f"spatial sizes (={spatial_t})"
            )
        mode_pads = pads
        spatial_t = tuple(s + lo + hi for s, (lo, hi) in zip(spatial_t, pads))
        dilated_in = spatial_t
        pads = ((0, 0),) * ndim
    out_spatial = tuple(
        geo._out_size(s, k, st, d, lo, hi)
        for s, k, st, d, (lo, hi) in zip(dilated_in, kernel_t, strides, dilations, pads)
    )
    spec = ConvSpec(
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
        dtype=jnp.dtype(dtype).name,
        precision=_canonical_precision(precision),
        preferred_element_type=_canonical_preferred(preferred_element_type, dtype),
        out_spatial=out_spatial,
    )
    return spec, mode, mode_pads


def _check_bias(b: Any, c: int, name: str = "b") -> None:
    if b is None:
        return
    _check_array(b, name)
    if tuple(b.shape) != (c,):
        raise ValueError(
            f"`{name}` must have shape ({c},) (one per output channel), got {tuple(b.shape)}"
        )


def _add_bias(y: Array, b: Any, channels_last: bool, name: str = "b") -> Array:
    c = y.shape[-1] if channels_last else y.shape[1]
    _check_bias(b, c, name)
    if b is None:
        return y
    shape = (1,) * (y.ndim - 1) + (c,) if channels_last else (1, c) + (1,) * (y.ndim - 2)
    # Documented rule: the bias is cast to the output dtype.
    return y + jnp.reshape(b, shape).astype(y.dtype)


def _pad_spatial(
    x: Array, pads: tuple[tuple[int, int], ...], mode: str, channels_last: bool
) -> Array:
    full = ((0, 0), *pads, (0, 0)) if channels_last else ((0, 0), (0, 0), *pads)
    return jnp.pad(x, full, mode=mode)


def conv(
    x: Array,
    w: Array,
    b: Array | None = None,
    *,
    stride: Any = 1,
    padding: geo.Padding = "SAME",
    dilation: Any = 1,
    input_dilation: Any = 1,
    groups: int = 1,
    layout: str = "NHWC",
    precision: Any = None,
    preferred_element_type: Any = None,
    implementation: str | None = None,
) -> Array:
    """N-d convolution (1-D, 2-D, 3-D) with the full padding vocabulary.

    Args:
      x: input, ``[N, *spatial, C_in]`` (channels-last ``layout``, the default ``"NHWC"``) or
        ``[N, C_in, *spatial]`` (``"NCHW"``). Only the channel position matters, so ``"NHWC"``
        also serves 1-D and 3-D inputs. ``N == 0`` gives an empty output, as ``lax`` does.
      w: kernel, ``[*kernel, C_in/groups, C_out]`` (HWIO) or ``[C_out, C_in/groups, *kernel]``
        (OIHW) for channels-first layouts. Must have ``x``'s dtype.
      b: optional bias ``[C_out]``, cast to the output dtype.
      stride: int or one per spatial dim.
      padding: ``"VALID"``, ``"SAME"`` (out = ceil(n/stride), odd pad pixel high),
        ``"SAME_LOWER"``, ``"CIRCULAR"``, ``"REFLECT"``, ``"REPLICATE"`` (SAME amounts filled by
        that rule), an int, or one int or ``(lo, hi)`` pair per spatial dim.
      dilation: kernel (atrous) dilation.
      input_dilation: input dilation (transposed convolution); SAME is computed on the dilated
        input size ``(n - 1)·input_dilation + 1``.
      groups: feature groups (``groups == C_in`` with ``C_out = m·C_in`` is depthwise).
      layout: ``"NHWC"`` (default) or ``"NCHW"`` (also ``NWC``/``NDHWC``/``NCW``/``NCDHW``).
      precision: ``lax.Precision`` or its name, passed to XLA.
      preferred_element_type: accumulation/output dtype, passed to XLA.
      implementation: None picks the plan of :func:`jaxconv.kernels.plan` (a tuned table entry
        for this device kind, else ``"onednn"`` on a CPU where the extension is loaded, else
        ``"einsum"`` for a pointwise 1×1 and ``"xla"`` for the rest); a name from
        ``jaxconv.kernels.LOWERINGS`` forces one and raises ``ValueError`` if it does not apply.
        With ``onednn`` the bias is added inside oneDNN's conv (a post-op).

    Returns:
      ``[N, *spatial_out, C_out]`` (or channels-first), spatial sizes from
      :func:`jaxconv.conv_output_size`.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxconv
      >>> x = jnp.ones((2, 28, 28, 8))
      >>> w = jnp.ones((3, 3, 8, 16))
      >>> jaxconv.conv(x, w, stride=2).shape
      (2, 14, 14, 16)
      >>> jaxconv.conv(x, w, padding="VALID").shape
      (2, 26, 26, 16)
      >>> float(jaxconv.conv(x, w)[0, 0, 0, 0])   # corner: 2×2 taps × 8 channels of ones
      32.0
    """
    with jax.named_scope("jaxconv.conv"):
        _check_array(x, "x", empty_batch=True)
        _check_array(w, "w")
        _check_float_match(x, w)
        spec, mode, mode_pads = make_spec(
            tuple(x.shape),
            tuple(w.shape),
            x.dtype,
            stride=stride,
            padding=padding,
            dilation=dilation,
            input_dilation=input_dilation,
            groups=groups,
            layout=layout,
            precision=precision,
            preferred_element_type=preferred_element_type,
        )
        _check_bias(b, spec.out_channels)
        if spec.batch == 0:  # nothing to compute, whatever the lowering
            return jnp.zeros(spec.out_shape, spec.out_dtype)
        lowering = kernels.select(spec, implementation)
        if mode is not None:
            x = _pad_spatial(x, mode_pads, mode, spec.channels_last)
        if b is not None and hasattr(lowering, "conv_bias"):
            return lowering.conv_bias(x, w, b, spec)
        y = lowering.conv(x, w, spec)
        return _add_bias(y, b, spec.channels_last)


def conv1x1(
    x: Array,
    w: Array,
    b: Array | None = None,
    *,
    layout: str = "NHWC",
    precision: Any = None,
    preferred_element_type: Any = None,
) -> Array:
    """A 1×1 convolution as ONE ``jnp.einsum`` over the channel dim.

    It mixes channels at every position independently, so any number of leading dims works.

    Args:
      x: ``[..., C_in]`` (channels-last, any leading dims) or ``[N, C_in, ...]`` when
        ``layout`` is channels-first (``"NCHW"``).
      w: ``[C_in, C_out]`` for channels-last; ``[C_out, C_in]`` (OI, as in an OIHW 1×1 kernel)
        for channels-first. Must have ``x``'s dtype.
      b: optional bias ``[C_out]``.
      layout: ``"NHWC"`` (default) or ``"NCHW"``.
      precision, preferred_element_type: passed to ``jnp.einsum``.

    Returns:
      ``[..., C_out]`` (or ``[N, C_out, ...]``).

    Examples:
      The seed's example: a 4×4 map of 1..16 through one 1×1 filter of weight 2.

      >>> import jax.numpy as jnp, jaxconv
      >>> x = jnp.arange(1.0, 17.0).reshape(1, 4, 4, 1)
      >>> jaxconv.conv1x1(x, jnp.full((1, 1), 2.0))[0, :, :, 0]
      Array([[ 2.,  4.,  6.,  8.],
             [10., 12., 14., 16.],
             [18., 20., 22., 24.],
             [26., 28., 30., 32.]], dtype=float32)
    """
    with jax.named_scope("jaxconv.conv1x1"):
        _check_array(x, "x")
        _check_array(w, "w")
        _check_float_match(x, w)
        channels_last = geo._channels_last(layout)
        if w.ndim != 2:
            raise ValueError(
                f"`w` must be a matrix ([C_in, C_out], or [C_out, C_in] for NCHW), got shape "
                f"{tuple(w.shape)} (for a kernel with spatial dims use `conv`)"
            )
        if channels_last:
            if x.ndim < 1:
                raise ValueError(
                    f"`x` must have rank >= 1 ([..., C_in]), got shape {tuple(x.shape)}"
                )
            c_x, c_w = x.shape[-1], w.shape[0]
        else:
            if x.ndim < 2:
                raise ValueError(
                    f"`x` must have rank >= 2 ([N, C_in, ...]), got shape {tuple(x.shape)}"
                )
            c_x, c_w = x.shape[1], w.shape[1]
        if c_x != c_w:
            wdim = "first" if channels_last else "second"
            raise ValueError(
                f"`w` {wdim} dim (={c_w}) must equal the input channels of `x` (={c_x}); "
                f"w has shape {tuple(w.shape)}, x has shape {tuple(x.shape)}"
            )
        y = _einsum.matmul(
            x,
            w,
            channels_last=channels_last,
            precision=_canonical_precision(precision),
            preferred_element_type=_canonical_preferred(preferred_element_type, x.dtype),
        )
        return _add_bias(y, b, channels_last)


def _reduce_relu_on_onednn(x: Any, w: Array, b: Array | None, layout: str, precision: Any,
                           preferred_element_type: Any) -> Array | None:
    """``relu(conv1x1(x, w) + b)`` as ONE oneDNN conv with the bias and ReLU as post-ops, where
    the plan for that 1×1 is ``onednn`` (seed layer, batch 32: the einsum reduce and its
    separate bias/ReLU fusion took 1.44 ms of the bottleneck's 4.43); else None."""
    _check_array(x, "x")
    _check_float_match(x, w, "w_reduce")
    channels_last = geo._channels_last(layout)
    kernel = (w.reshape((1,) * (x.ndim - 2) + tuple(w.shape)) if channels_last
              else w.reshape(tuple(w.shape) + (1,) * (x.ndim - 2)))
    try:
        spec, _, _ = make_spec(tuple(x.shape), tuple(kernel.shape), x.dtype, padding="VALID",
                               layout=layout, precision=precision,
                               preferred_element_type=preferred_element_type)
    except ValueError:  # conv1x1 reports this input's error in its own words
        return None
    if spec.batch == 0 or kernels.plan(spec) != kernels.Plan("onednn", "onednn", "onednn"):
        return None
    _check_bias(b, spec.out_channels, "b_reduce")
    bias = b if b is not None else jnp.zeros((spec.out_channels,), spec.out_dtype)
    return kernels.get("onednn").conv_bias(x, kernel, bias, spec, relu=True)


def bottleneck(
    x: Array,
    w_reduce: Array,
    w_spatial: Array,
    b_reduce: Array | None = None,
    b_spatial: Array | None = None,
    *,
    activation: Callable[[Array], Array] | None = jax.nn.relu,
    stride: Any = 1,
    padding: geo.Padding = "SAME",
    dilation: Any = 1,
    groups: int = 1,
    layout: str = "NHWC",
    precision: Any = None,
    preferred_element_type: Any = None,
    implementation: str | None = None,
    reduce_implementation: str | None = None,
) -> Array:
    """Inception's bottleneck: 1×1 reduce → activation → k×k conv.

    The 1×1 cuts the channels the k×k has to read: on the seed's layer (14×14×480 → 48 5×5
    filters, 16-channel reduce) 112.9M MACs become 1.5M + 3.8M = 5.3M. The output is returned
    before any activation, so the caller chooses the block's non-linearity.

    Args:
      x: ``[N, H, W, C_in]`` (or NCHW with ``layout="NCHW"``; 1-D/3-D also work).
      w_reduce: the 1×1 reduce, either ``[C_in, C_r]`` (``[C_r, C_in]`` for NCHW) or a 1×1 kernel
        in ``w_spatial``'s layout.
      w_spatial: the k×k kernel ``[kh, kw, C_r/groups, C_out]`` (HWIO; OIHW for NCHW).
      b_reduce, b_spatial: optional biases ``[C_r]`` and ``[C_out]``.
      activation: applied after the reduce (None for none).
      stride, padding, dilation, groups: of the k×k conv (see :func:`conv`).
      layout, precision, preferred_element_type: as for :func:`conv`.
      implementation: lowering of the k×k conv (see :func:`conv`).
      reduce_implementation: lowering of the 1×1 (None: with a ReLU ``activation`` and the
        ``onednn`` plan, one oneDNN conv with the bias and ReLU fused; else einsum).

    Returns:
      ``[N, H_out, W_out, C_out]``.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxconv
      >>> k = jax.random.split(jax.random.key(0), 3)
      >>> x = jax.random.normal(k[0], (1, 14, 14, 480))
      >>> w_r = jax.random.normal(k[1], (480, 16))
      >>> w_s = jax.random.normal(k[2], (5, 5, 16, 48))
      >>> jaxconv.bottleneck(x, w_r, w_s).shape
      (1, 14, 14, 48)
    """
    with jax.named_scope("jaxconv.bottleneck"):
        _check_array(w_reduce, "w_reduce")
        fused = None
        if w_reduce.ndim == 2 and reduce_implementation is None and activation is jax.nn.relu:
            fused = _reduce_relu_on_onednn(x, w_reduce, b_reduce, layout, precision,
                                           preferred_element_type)
        if fused is not None:
            h, activation = fused, None
        elif w_reduce.ndim == 2 and reduce_implementation in (None, "einsum"):
            h = conv1x1(x, w_reduce, b_reduce, layout=layout, precision=precision,
                        preferred_element_type=preferred_element_type)
        else:
            if w_reduce.ndim == 2:  # a matrix, but another lowering asked for: make it a kernel
                _check_array(x, "x")
                shape = ((1,) * (x.ndim - 2) + tuple(w_reduce.shape)
                         if geo._channels_last(layout)
                         else tuple(w_reduce.shape) + (1,) * (x.ndim - 2))
                w_reduce = w_reduce.reshape(shape)
            kernel = (w_reduce.shape[:-2] if geo._channels_last(layout) else w_reduce.shape[2:])
            if any(k != 1 for k in kernel):
                raise ValueError(
                    f"`w_reduce` must be a 1×1 kernel or a matrix, got shape "
                    f"{tuple(w_reduce.shape)}"
                )
            h = conv(x, w_reduce, b_reduce, padding="VALID", layout=layout, precision=precision,
                     preferred_element_type=preferred_element_type,
                     implementation=reduce_implementation)
        _check_array(w_spatial, "w_spatial")
        channels_last = geo._channels_last(layout)
        if w_spatial.ndim == h.ndim and type(groups) is int:  # other errors are conv's to report
            c_r = h.shape[-1] if channels_last else h.shape[1]
            w_in = w_spatial.shape[-2] if channels_last else w_spatial.shape[1]
            if w_in * groups != c_r:
                raise ValueError(
                    f"`w_spatial` in-channel dim (={w_in}) times `groups` (={groups}) must equal "
                    f"the reduced channels (={c_r}) that `w_reduce` {tuple(w_reduce.shape)} "
                    f"produces"
                )
        if activation is not None:
            h = activation(h)
        if preferred_element_type is not None:
            h = h.astype(w_spatial.dtype)
        return conv(h, w_spatial, b_spatial, stride=stride, padding=padding, dilation=dilation,
                    groups=groups, layout=layout, precision=precision,
                    preferred_element_type=preferred_element_type,
                    implementation=implementation)
