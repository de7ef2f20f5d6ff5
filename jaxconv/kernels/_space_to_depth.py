"""The ``space_to_depth`` lowering: a strided conv as a stride-1 conv on a space-to-depth input.

A ``k×k`` conv with stride ``s`` reads the input on an ``s×s`` phase grid, so folding each
``s×s`` block of pixels into channels (``[N, H/s, W/s, s·s·C]``) and the kernel likewise
(zero-padded to a multiple of ``s``: ``[⌈k/s⌉, ⌈k/s⌉, s·s·C, C_out]``) gives the same sums as a
stride-1 conv, which :mod:`xla_eigen <jaxconv.kernels._eigen>` then keeps on Eigen in the
forward and both gradients. XLA's own gradients of a strided conv are what this is for: the
input gradient becomes an input-dilated conv and the weight gradient a kernel-dilated one, both
slow on XLA:CPU (GoogLeNet conv1 7×7/2, 224², batch 8: dx 84 ms → 35 ms, dw 228 ms → 26 ms; the
forward stays at 24 ms, for (8/7)² more MACs).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxconv.kernels import _eigen, _xla
from jaxconv.kernels._spec import ConvSpec, unmet

name = "space_to_depth"
backends = ("cpu",)
error_factor = 1.0
roles = ("fwd", "dx", "dw")  # it computes its own gradients
reference = _xla.conv


def supports(spec: ConvSpec) -> str | None:
    return unmet(spec, name, "2d", "nhwc", "strided", "no dilation", "groups 1", "padding >= 0")


def conv(x: jax.Array, w: jax.Array, spec: ConvSpec) -> jax.Array:
    """``[N, H, W, C] ⋆ [kh, kw, C, O]`` (strided) as a stride-1 ``xla_eigen`` conv."""
    (sh, sw), (kh, kw), (ho, wo) = spec.stride, spec.kernel, spec.out_spatial
    n, h, w_, c = x.shape
    k2h, k2w = -(-kh // sh), -(-kw // sw)
    hp, wp = (ho - 1 + k2h) * sh, (wo - 1 + k2w) * sw  # the padded input rows/cols read
    (hlo, _), (wlo, _) = spec.padding
    xp = jnp.pad(x, ((0, 0), (hlo, max(0, hp - h - hlo)), (wlo, max(0, wp - w_ - wlo)), (0, 0)))
    xs = xp[:, :hp, :wp].reshape(n, hp // sh, sh, wp // sw, sw, c)
    xs = xs.transpose(0, 1, 3, 2, 4, 5).reshape(n, hp // sh, wp // sw, sh * sw * c)
    wk = jnp.pad(w, ((0, k2h * sh - kh), (0, k2w * sw - kw), (0, 0), (0, 0)))
    wk = wk.reshape(k2h, sh, k2w, sw, c, -1).transpose(0, 2, 1, 3, 4, 5)
    wk = wk.reshape(k2h, k2w, sh * sw * c, -1)
    inner = dataclasses.replace(
        spec, batch=n, in_spatial=xs.shape[1:3], in_channels=xs.shape[3], kernel=(k2h, k2w),
        stride=(1, 1), padding=((0, 0), (0, 0)))
    return _eigen.conv(xs, wk, inner)
