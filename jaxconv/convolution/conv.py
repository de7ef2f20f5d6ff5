"""The general convolution: :func:`conv`, N-d, every padding, through the one dispatch.

:func:`conv_spec` validates and canonicalizes the call once (at trace time: shapes are
static under ``jit``), :func:`choose` picks a plan, :func:`run` runs it with the bias. jit-,
grad- and vmap-compatible.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxconv import _geometry as geo
from jaxconv._check import check_activation, check_array, check_bias
from jaxconv.convolution.lowering import Plan
from jaxconv.convolution.plan import choose
from jaxconv.convolution.run import run
from jaxconv.convolution.spec import ConvSpec, conv_spec

__all__ = ["add_bias", "apply", "conv"]

Array = jax.Array


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
    implementation: str | Plan | None = None,
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
      implementation: None for the plan :func:`jaxconv.convolution.choose` picks (a tuning table
        entry for this device kind, else the cost model: ``"onednn"`` on a CPU where the
        extension is loaded, else ``"einsum"`` for a pointwise 1×1 and ``"xla"`` for the rest);
        a name from ``jaxconv.convolution.LOWERINGS`` or a :class:`jaxconv.Plan` forces
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
        x, w = check_array(x, "x", empty_batch=True), check_array(w, "w")
        spec = conv_spec(
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
        return apply(x, w, b, spec, implementation, activation)


def apply(
    x: Array,
    w: Array,
    b: Array | None,
    spec: ConvSpec,
    implementation: str | Plan | None = None,
    activation: Callable[[Array], Array] | None = None,
    *,
    b_name: str = "b",
    default: tuple[Plan, str] | None = None,
) -> Array:
    """``activation(conv(x, w) + b)`` for a validated ``spec``, by the plan :func:`choose`
    picks: the one body every public conv op ends in (``b_name`` names the bias in errors;
    ``default``: the op's own default plan, see :func:`choose`)."""
    b = check_bias(b, spec.out_channels, b_name)
    check_activation(activation)
    relu = activation is jax.nn.relu
    y = run(choose(spec, implementation, default=default).plan, x, w, spec, b, relu=relu)
    return y if activation is None or relu else activation(y)


def add_bias(y: Array, b: Any, channels_last: bool, name: str = "b") -> Array:
    """``y + b`` with ``b`` ``[C]`` checked (naming ``name``) and broadcast over ``y``'s channel
    dim, cast to ``y``'s dtype; ``y`` when ``b`` is None. For the ops that add a bias
    outside :func:`run` (a matmul, a cropped or padded conv output)."""
    c = y.shape[-1] if channels_last else y.shape[1]
    b = check_bias(b, c, name)
    if b is None:
        return y
    shape = (1,) * (y.ndim - 1) + (c,) if channels_last else (1, c) + (1,) * (y.ndim - 2)
    # Documented rule: the bias is cast to the output dtype.
    return y + jnp.reshape(b, shape).astype(y.dtype)
