"""Running a :class:`~jaxconv.convolution.Plan`: the one derivative rule every conv goes through.

A conv is bilinear, so its tangent is ``conv(dx, w) + conv(x, dw)`` (``+ db``; times the
ReLU's mask when one is applied): :func:`run` computes the forward with the plan's ``fwd``
lowering and the two tangent terms with the ``dx`` and ``dw`` lowerings' forwards. Reverse mode
transposes those terms, so the input gradient is the transpose of the ``dx`` lowering's forward
in ``x`` and the weight gradient that of the ``dw`` lowering's in ``w``. Higher derivatives
differentiate the lowerings themselves (``lax.conv`` and oneDNN's primitives are closed under
differentiation), so grad-of-grad works for every plan.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from jaxconv.convolution.lowering import Plan
from jaxconv.convolution.registry import LOWERINGS
from jaxconv.convolution.spec import ConvSpec

__all__ = ["run"]


def _bias(y: jax.Array, b: jax.Array, spec: ConvSpec) -> jax.Array:
    shape = (1,) * (y.ndim - 1) + (-1,) if spec.channels_last else (1, -1) + (1,) * (y.ndim - 2)
    return jnp.reshape(b, shape).astype(y.dtype)  # the bias is cast to the output dtype


def _forward(
    x: jax.Array, w: jax.Array, b: jax.Array | None, spec: ConvSpec, plan: Plan, relu: bool
) -> jax.Array:
    lowering = LOWERINGS[plan.fwd]
    if b is not None and lowering.fused is not None:
        y = lowering.fused(x, w, b.astype(spec.out_dtype), spec)
    else:
        y = lowering.fwd(x, w, spec)
        if b is not None:
            y = y + _bias(y, b, spec)
    # Always in XLA, never a lowering's post-op: jax.nn.relu propagates NaN (max(NaN, 0) is
    # NaN), oneDNN 3.2's ReLU post-op gives 0 for it and would hide a diverging run.
    return jax.nn.relu(y) if relu else y


@functools.partial(jax.custom_jvp, nondiff_argnums=(3, 4, 5))
def _run(
    x: jax.Array, w: jax.Array, b: jax.Array | None, spec: ConvSpec, plan: Plan, relu: bool
) -> jax.Array:
    return _forward(x, w, b, spec, plan, relu)


def _run_jvp(spec, plan, relu, primals, tangents):
    x, w, b = primals
    tx, tw, tb = tangents
    y = _run(x, w, b, spec, plan, relu)  # itself: higher orders differentiate it again
    terms = []
    if not isinstance(tx, SymbolicZero):
        terms.append(LOWERINGS[plan.dx].fwd(tx, w, spec))
    if not isinstance(tw, SymbolicZero):
        terms.append(LOWERINGS[plan.dw].fwd(x, tw, spec))
    if b is not None and not isinstance(tb, SymbolicZero):
        terms.append(jnp.broadcast_to(_bias(y, tb, spec), y.shape))
    t = functools.reduce(jnp.add, terms) if terms else jnp.zeros_like(y)
    return y, jnp.where(y > 0, t, 0) if relu else t


_run.defjvp(_run_jvp, symbolic_zeros=True)


def run(
    plan: Plan,
    x: jax.Array,
    w: jax.Array,
    spec: ConvSpec,
    b: jax.Array | None = None,
    *,
    relu: bool = False,
) -> jax.Array:
    """``conv(x, w) (+ b) (then ReLU)`` for ``spec``, by ``plan``.

    Args:
      plan: the lowering per role (see :func:`jaxconv.convolution.choose`); every name must apply
        to ``spec`` (``choose`` checks it).
      x: the input as the caller has it (``spec``'s padding mode, if any, is applied here).
      w: the kernel, ``spec.w_shape``.
      spec: from :func:`jaxconv.convolution.conv_spec`.
      b: optional bias ``[C_out]``, cast to the output dtype.
      relu: apply ``jax.nn.relu`` last (in XLA, so a NaN propagates as it does there).

    Returns:
      ``spec.out_shape`` of ``spec.out_dtype``; empty for an empty batch, as ``lax`` gives.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxconv.convolution import Plan, conv_spec, run
      >>> x, w = jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 1))
      >>> spec = conv_spec(x, w, padding="VALID")
      >>> run(Plan("xla", "xla", "xla"), x, w, spec)[0, :, :, 0]
      Array([[18., 18.],
             [18., 18.]], dtype=float32)
    """
    if spec.batch == 0:  # nothing to compute, whatever the lowering
        return jnp.zeros(spec.out_shape, spec.out_dtype)
    if spec.padding_mode is not None:
        pads = (
            ((0, 0), *spec.pre_pad, (0, 0))
            if spec.channels_last
            else ((0, 0), (0, 0), *spec.pre_pad)
        )
        x = jnp.pad(x, pads, mode=spec.padding_mode)
    return _run(x, w, b, spec.lowered(), plan, relu)
