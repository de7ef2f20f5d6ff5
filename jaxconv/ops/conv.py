"""Pure convolution functions: ``conv``, ``conv1x1``, ``bottleneck`` and ``explain``.

Each runs the same three steps: :func:`jaxconv.kernels.conv_spec` validates and canonicalizes
the call once (at trace time: shapes are static under ``jit``), :func:`jaxconv.kernels.choose`
picks a plan, :func:`jaxconv.kernels.run` runs it with the bias. All are jit-, grad- and
vmap-compatible.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxconv import _geometry as geo
from jaxconv import kernels
from jaxconv.kernels.lowerings.einsum import matmul
from jaxconv.kernels.spec import (
    canonical_precision,
    canonical_preferred,
    check_array,
    check_same_dtype,
)

__all__ = ["bottleneck", "conv", "conv1x1", "explain"]

Array = jax.Array


def _check_bias(b: Any, c: int, name: str = "b") -> None:
    if b is None:
        return
    check_array(b, name)
    if tuple(b.shape) != (c,):
        raise ValueError(
            f"`{name}` must have shape ({c},) (one per output channel), got {tuple(b.shape)}"
        )


def _check_activation(activation: Any) -> None:
    if activation is not None and not callable(activation):
        raise TypeError(f"`activation` must be a callable or None, got {activation!r}")


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
    activation: Callable[[Array], Array] | None = None,
    implementation: str | kernels.Plan | None = None,
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
        ``"SAME_LOWER"``, ``"CIRCULAR"``, ``"REFLECT"``, ``"REPLICATE"`` (``flax.nnx.Conv``'s
        amounts ``((k_eff - 1) // 2, k_eff // 2)`` filled by that rule, then VALID: SAME's at
        stride 1, not above), an int, or one int or ``(lo, hi)`` pair per spatial dim.
      dilation: kernel (atrous) dilation.
      input_dilation: input dilation (transposed convolution); SAME is computed on the dilated
        input size ``(n - 1)·input_dilation + 1``.
      groups: feature groups (``groups == C_in`` with ``C_out = m·C_in`` is depthwise).
      layout: ``"NHWC"`` (default) or ``"NCHW"`` (also ``NWC``/``NDHWC``/``NCW``/``NCDHW``).
      precision: ``lax.Precision`` or its name, passed to XLA.
      preferred_element_type: accumulation/output dtype, passed to XLA.
      activation: applied last, after the bias (None for none); ``jax.nn.relu`` is fused into
        the lowering's call where it can (oneDNN: a post-op).
      implementation: None for the plan :func:`jaxconv.kernels.choose` picks (a tuning table
        entry for this device kind, else the cost model: ``"onednn"`` on a CPU where the
        extension is loaded, else ``"einsum"`` for a pointwise 1×1 and ``"xla"`` for the rest);
        a name from ``jaxconv.kernels.LOWERINGS`` or a :class:`jaxconv.kernels.Plan` forces
        one and raises ``ValueError`` if it does not apply. :func:`jaxconv.explain` says which
        plan a call gets and why. With ``onednn`` the bias is added inside oneDNN's conv.

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
        spec = kernels.conv_spec(
            x,
            w,
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
        _check_activation(activation)
        relu = activation is jax.nn.relu
        y = kernels.run(kernels.choose(spec, implementation).plan, x, w, spec, b, relu=relu)
        return y if activation is None or relu else activation(y)


def explain(x: Any, w: Any, **conv_kwargs: Any) -> kernels.Choice:
    """Which plan :func:`conv` gives this call, and why — from the function dispatch uses.

    Args:
      x, w: arrays or ``jax.ShapeDtypeStruct`` (only shapes and dtypes matter).
      **conv_kwargs: :func:`conv`'s keyword arguments (``implementation`` included).

    Returns:
      A :class:`jaxconv.kernels.Choice`: the plan, its source (``"implementation"``,
      ``"table"`` or ``"cost model"``), the reason, and every lowering's answer; ``print`` it.

    Examples:
      >>> import jax.numpy as jnp, jaxconv
      >>> choice = jaxconv.explain(jnp.ones((1, 8, 8, 4)), jnp.ones((3, 3, 4, 4)),
      ...                          implementation="xla")
      >>> choice.plan, choice.source
      (Plan(fwd='xla', dx='xla', dw='xla'), 'implementation')
    """
    implementation = conv_kwargs.pop("implementation", None)
    conv_kwargs.pop("b", None)
    return kernels.choose(kernels.conv_spec(x, w, **conv_kwargs), implementation)


def _add_bias(y: Array, b: Any, channels_last: bool, name: str = "b") -> Array:
    c = y.shape[-1] if channels_last else y.shape[1]
    _check_bias(b, c, name)
    if b is None:
        return y
    shape = (1,) * (y.ndim - 1) + (c,) if channels_last else (1, c) + (1,) * (y.ndim - 2)
    # Documented rule: the bias is cast to the output dtype.
    return y + jnp.reshape(b, shape).astype(y.dtype)


def _check_matrix(x: Any, w: Any, layout: str, name: str) -> bool:
    """Checks a 1×1 conv's matrix ``w`` against ``x``; returns whether ``layout`` is
    channels-last."""
    channels_last = geo._channels_last(layout)
    if w.ndim != 2:
        raise ValueError(
            f"`{name}` must be a matrix ([C_in, C_out], or [C_out, C_in] for NCHW), got shape "
            f"{tuple(w.shape)} (for a kernel with spatial dims use `conv`)"
        )
    if x.ndim < (1 if channels_last else 2):
        form = "[..., C_in]" if channels_last else "[N, C_in, ...]"
        raise ValueError(
            f"`x` must have rank >= {1 if channels_last else 2} ({form}), got shape "
            f"{tuple(x.shape)}"
        )
    c_x, c_w = (x.shape[-1], w.shape[0]) if channels_last else (x.shape[1], w.shape[1])
    if c_x != c_w:
        wdim = "first" if channels_last else "second"
        raise ValueError(
            f"`{name}` {wdim} dim (={c_w}) must equal the input channels of `x` (={c_x}); "
            f"{name} has shape {tuple(w.shape)}, x has shape {tuple(x.shape)}"
        )
    return channels_last


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
        check_array(x, "x")
        check_array(w, "w")
        check_same_dtype(x, w)
        channels_last = _check_matrix(x, w, layout, "w")
        c_out = w.shape[-1] if channels_last else w.shape[0]
        out = (*x.shape[:-1], c_out) if channels_last else (x.shape[0], c_out, *x.shape[2:])
        output = ("the output of `x` and `w`", out)
        geo.check_xla_limits(arrays=(("`x`", x.shape), ("`w`", w.shape), output))
        y = matmul(
            x,
            w,
            channels_last=channels_last,
            precision=canonical_precision(precision),
            preferred_element_type=canonical_preferred(preferred_element_type, x.dtype),
        )
        return _add_bias(y, b, channels_last)


def _as_kernel(w_reduce: Array, x: Any, layout: str) -> Array:
    """The 1×1 reduce as a kernel in ``layout``: a matrix gets unit spatial dims."""
    check_array(w_reduce, "w_reduce")
    check_array(x, "x", empty_batch=True)
    channels_last = geo._channels_last(layout)
    if w_reduce.ndim == 2:
        check_same_dtype(x, w_reduce, "w_reduce")
        _check_matrix(x, w_reduce, layout, "w_reduce")
        unit = (1,) * (x.ndim - 2)
        shape = unit + tuple(w_reduce.shape) if channels_last else tuple(w_reduce.shape) + unit
        return w_reduce.reshape(shape)
    kernel = w_reduce.shape[:-2] if channels_last else w_reduce.shape[2:]
    if any(k != 1 for k in kernel):
        raise ValueError(
            f"`w_reduce` must be a 1×1 kernel or a matrix, got shape {tuple(w_reduce.shape)}"
        )
    return w_reduce


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
    implementation: str | kernels.Plan | None = None,
    reduce_implementation: str | kernels.Plan | None = None,
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
      reduce_implementation: lowering of the 1×1, chosen like ``implementation`` (None: the
        plan :func:`jaxconv.kernels.choose` picks for that 1×1 conv). When ``activation`` is
        ``jax.nn.relu`` it is fused into the reduce's call where the lowering can (oneDNN:
        one conv with the bias and ReLU as post-ops).

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
        _check_activation(activation)
        k_reduce = _as_kernel(w_reduce, x, layout)
        try:
            spec = kernels.conv_spec(
                x,
                k_reduce,
                padding="VALID",
                layout=layout,
                precision=precision,
                preferred_element_type=preferred_element_type,
            )
        except (TypeError, ValueError) as err:  # in the words of the bottleneck's arguments
            raise type(err)(str(err).replace("`w`", "`w_reduce`")) from None
        _check_bias(b_reduce, spec.out_channels, "b_reduce")
        check_array(w_spatial, "w_spatial")
        channels_last = spec.channels_last
        if w_spatial.ndim == x.ndim and type(groups) is int:  # other errors are conv's to report
            w_in = w_spatial.shape[-2] if channels_last else w_spatial.shape[1]
            if w_in * groups != spec.out_channels:
                raise ValueError(
                    f"`w_spatial` in-channel dim (={w_in}) times `groups` (={groups}) must "
                    f"equal the reduced channels (={spec.out_channels}) that `w_reduce` "
                    f"{tuple(w_reduce.shape)} produces"
                )
        plan = kernels.choose(spec, reduce_implementation).plan
        relu = activation is jax.nn.relu
        h = kernels.run(plan, x, k_reduce, spec, b_reduce, relu=relu)
        if activation is not None and not relu:
            h = activation(h)
        if preferred_element_type is not None:
            h = h.astype(w_spatial.dtype)
        try:
            return conv(
                h,
                w_spatial,
                b_spatial,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
                layout=layout,
                precision=precision,
                preferred_element_type=preferred_element_type,
                implementation=implementation,
            )
        except (TypeError, ValueError) as err:  # in the words of the bottleneck's arguments
            message = str(err).replace("`w`", "`w_spatial`").replace("`b`", "`b_spatial`")
            raise type(err)(message) from None
