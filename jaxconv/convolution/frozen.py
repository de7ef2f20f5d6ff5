"""A frozen conv: ``act(conv(x, w) + b (+ residual))`` for inference, the op behind
:func:`jaxconv.nn.freeze`.

On a CPU with the oneDNN extension it is one primitive, with the residual add and ReLU as
post-ops, on weights packed once (:func:`pack`); everywhere else — another platform, an
exported program, a conv oneDNN declines, a CPU without the extension — it is the conv that
:func:`jaxconv.convolution.choose` picks, followed by the same arithmetic in XLA. Either way a
NaN propagates as it does through ``jax.nn.relu``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv.convolution.lowerings.onednn import inference
from jaxconv.convolution.lowerings.onednn.geometry import Geometry
from jaxconv.convolution.lowerings.onednn.lowering import why_not_onednn
from jaxconv.convolution.plan import choose
from jaxconv.convolution.run import run
from jaxconv.convolution.spec import ConvSpec

__all__ = ["FrozenLayoutWarning", "Packing", "frozen_conv", "fusable", "pack", "why_not_onednn"]

#: The activations a frozen conv fuses, by the function a module holds.
#: ReLU6 is not one: oneDNN 3.2 has no post-op chain that clamps at 6 exactly and keeps NaN
#: (its min/max post-ops give the bound for NaN; ``6 - relu(6 - x)`` rounds a small ``x`` to 0,
#: which turned a randomly initialized MobileNetV2's logits, all below 1e-9, into zeros).
_FUSABLE: dict[Callable[..., Any], str] = {jax.nn.relu: "relu"}


class FrozenLayoutWarning(UserWarning):
    """A frozen conv's packed weights do not fit the primitive this call needs (another CPU,
    or another input shape whose kernel blocks the weights differently): the call reorders
    the plain weights instead, as the unfrozen model does on every call."""


class Packing(NamedTuple):
    """What a frozen conv's packed weights were packed for: the layout's fingerprint and
    size, and the input shape whose primitive asked for it."""

    fingerprint: int
    nbytes: int
    x_shape: tuple[int, ...]


def fusable(activation: Callable[..., Any] | None) -> str | None:
    """The post-op name of ``activation`` (``"relu"``), or None where it has none
    (it then runs in XLA after the conv)."""
    return None if activation is None else _FUSABLE.get(activation)


def _flat(spec: ConvSpec, activation: str | None, residual: bool) -> np.ndarray:
    dtypes = (spec.dtype, spec.dtype, spec.out_dtype, spec.out_dtype)
    return inference._flat(
        Geometry.of(spec), spec.x_shape, spec.w_shape, dtypes, activation, residual
    )


def pack(
    w: Any, spec: ConvSpec, activation: str | None, residual: bool
) -> tuple[np.ndarray, Packing] | None:
    """``w`` packed for the frozen conv of ``spec`` (host bytes and their :class:`Packing`), or
    None where that conv does not run on oneDNN."""
    if why_not_onednn(spec) is not None:
        return None
    flat = _flat(spec, activation, residual)
    data, layout = inference.pack(flat, np.asarray(w))
    return data, Packing(layout.fingerprint, layout.nbytes, tuple(spec.x_shape))


def frozen_conv(
    x: jax.Array,
    w: jax.Array,
    b: jax.Array,
    spec: ConvSpec,
    *,
    activation: str | None = None,
    residual: jax.Array | None = None,
    packed: jax.Array | None = None,
    packing: Packing | None = None,
    implementation: str | None = None,
) -> jax.Array:
    """``act(conv(x, w) + b (+ residual))`` for a validated ``spec`` (inference only).

    Args:
      x, w: the input and kernel ``spec`` describes.
      b: the bias ``[C_out]`` (a frozen conv always has one: BatchNorm's shift).
      spec: from :func:`jaxconv.convolution.conv_spec`.
      activation: None or ``"relu"`` (the primitive's post-op).
      residual: added before the activation, shaped like the output.
      packed, packing: ``w`` packed by :func:`pack` and what for; used where the primitive
        wants that very layout, else the plain ``w`` is reordered on each call (with a
        :class:`FrozenLayoutWarning` when the call is traced).
      implementation: the module's ``implementation=``; anything but None or ``"onednn"``
        runs that lowering's conv with the rest in XLA.

    Returns:
      ``spec.out_shape`` of ``spec.out_dtype``.
    """
    onednn = implementation in (None, "onednn") and why_not_onednn(spec) is None
    if not onednn or spec.batch == 0:
        y = run(choose(spec, implementation).plan, x, w, spec, b)
        if residual is not None:
            y = y + residual.astype(y.dtype)
        return y if activation is None else inference._APPLY[activation](y)
    fingerprint = 0
    if packed is not None and packing is not None:
        want = inference.cached_layout(tuple(_flat(spec, activation, residual is not None)))
        if want is not None and want.fingerprint == packing.fingerprint:
            fingerprint = packing.fingerprint
        else:
            warnings.warn(
                f"a frozen conv's weights were packed for input {packing.x_shape}; for "
                f"{tuple(spec.x_shape)} on this CPU oneDNN wants another layout, so each call "
                "reorders the plain weights. Freeze again with an input of this shape "
                "(jaxconv.nn.freeze(model, x)) to pack for it",
                FrozenLayoutWarning,
                stacklevel=2,
            )
    if fingerprint == 0 or packed is None:
        packed = jnp.zeros((0,), jnp.uint8)
    return inference.conv(
        x,
        w,
        b,
        packed,
        residual,
        geometry=Geometry.of(spec),
        out_dtype=spec.out_dtype,
        activation=activation,
        packed_format=fingerprint,
    )
