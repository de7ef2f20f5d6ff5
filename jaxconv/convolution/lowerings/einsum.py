"""The einsum lowering: a pointwise (1×1) conv as ONE ``jnp.einsum`` over the channel dim.

XLA:CPU turns this into a dot that uses every core, where ``lax.conv`` with a 1×1 kernel goes
to a conv library that may run on one core (2–3.5× slower on this project's 2-core AMD EPYC
VM for C_out <= 64). Its transposes are dots too, so it owns all three roles.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxconv.convolution.lowering import ROLES, Lowering, Role
from jaxconv.convolution.spec import ConvSpec

__all__ = ["LOWERING", "conv", "matmul", "prefers"]


def _supports(spec: ConvSpec) -> str | None:
    if spec.is_pointwise:
        return None
    if not all(k == 1 for k in spec.kernel):
        return f"einsum needs a 1×1 kernel, got {spec.kernel}"
    if not all(s == 1 for s in spec.stride):
        return f"einsum needs stride 1, got {spec.stride}"
    if not all(d == 1 for d in spec.input_dilation):
        return f"einsum needs input_dilation 1, got {spec.input_dilation}"
    if not all(p == (0, 0) for p in spec.padding):
        return f"einsum needs zero padding, got {spec.padding}"
    return f"einsum needs groups=1, got {spec.groups}"


def prefers(spec: ConvSpec, platform: str) -> tuple[Role, ...]:
    """On a CPU, every role of a pointwise conv (a dot XLA runs on every core, where its conv
    may run on one) — but of a channels-last 1-D one only the weight gradient: XLA turns that
    conv into a dot itself and its forward and input gradient beat the einsum's (forward of
    32×1000×256 → 256: 23.5 against 30.1 ms; forward+backward of 32×1000×64 → 256: 24.1 ms
    with xla/xla/einsum, all-einsum 29.8, all-xla 43.2; bench ``untuned``). Elsewhere none: on
    a GPU cuBLAS and cuDNN both run through XLA, and only a measured table overrides."""
    if platform != "cpu":
        return ()
    return ("dw",) if spec.ndim == 1 and spec.channels_last else ROLES


def matmul(
    x: jax.Array,
    w: jax.Array,
    *,
    channels_last: bool = True,
    precision=None,
    preferred_element_type=None,
) -> jax.Array:
    """The channel contraction: ``x[..., C_in] @ w[C_in, C_out]`` (channels last) or
    ``x[N, C_in, ...] , w[C_out, C_in] -> [N, C_out, ...]`` (channels first).

    Channels last, the leading dims are flattened first (a free reshape) so the einsum is a 2-D
    ``[M, C_in] @ [C_in, C_out]``: its weight gradient is then a plain ``x^T @ dy``, where the
    N-d form's gradient contracts N, H and W and XLA:CPU copies both operands into a transposed
    layout first (NiN cccp 32×55×55×96→96 forward+backward 65 → 50 ms)."""
    if not channels_last:
        return jnp.einsum(
            "ni...,oi->no...",
            x,
            w,
            precision=precision,
            preferred_element_type=preferred_element_type,
        )
    lead = x.shape[:-1]
    y = jnp.einsum(
        "mi,io->mo",
        x.reshape(math.prod(lead), x.shape[-1]),
        w,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )
    return y.reshape(*lead, w.shape[-1])


def conv(x: jax.Array, w: jax.Array, spec: ConvSpec) -> jax.Array:
    """A 1×1 kernel (HWIO or OIHW) squeezed to a matrix, then :func:`matmul`."""
    if spec.channels_last:
        w2 = w.reshape(w.shape[-2], w.shape[-1])  # (1, 1, I, O) -> (I, O)
    else:
        w2 = w.reshape(w.shape[0], w.shape[1])  # (O, I, 1, 1) -> (O, I)
    return matmul(
        x,
        w2,
        channels_last=spec.channels_last,
        precision=spec.precision,
        preferred_element_type=spec.preferred_element_type,
    )


LOWERING = Lowering(
    name="einsum",
    supports=_supports,
    fwd=conv,
    prefers=prefers,
    summary="a pointwise conv as one dot over the channels (XLA runs dots on every core)",
)
