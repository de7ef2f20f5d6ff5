"""Local response normalization, as GoogLeNet's Caffe reference used it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxconv._check import as_array, check_int

__all__ = ["LocalResponseNorm", "local_response_norm"]


def check_odd_size(size: int) -> int:
    size = check_int(size, "size")
    if size % 2 == 0:
        raise ValueError(f"`size` must be odd (a window centred on each channel), got {size}")
    return size


def local_response_norm(
    x: jax.Array, size: int = 5, *, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0
) -> jax.Array:
    """Across-channel LRN (Krizhevsky et al. 2012; Caffe's ``LRN``, ``ACROSS_CHANNELS``).

    ``y_c = x_c / (k + alpha/size · Σ_{c'} x_{c'}²)^beta`` where ``c'`` runs over the ``size``
    channels centred on ``c`` (zero beyond the edges). Caffe divides ``alpha`` by ``size``;
    GoogLeNet's reference used ``size=5, alpha=1e-4, beta=0.75``.

    Args:
      x: ``[..., C]``, channels last.
      size: odd window of channels.
      alpha, beta, k: the LRN constants.

    Returns:
      An array shaped like ``x``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxconv.nn import local_response_norm
      >>> x = jnp.full((1, 1, 1, 3), 10.0)
      >>> local_response_norm(x, 3, alpha=3.0, beta=1.0)[0, 0, 0]   # 10/(1+Σx²)
      Array([0.04975124, 0.03322259, 0.04975124], dtype=float32)
    """
    size = check_odd_size(size)
    x = as_array(x, "x")
    half = size // 2
    sq = jnp.square(x)
    padded = jnp.pad(sq, [(0, 0)] * (x.ndim - 1) + [(half, half)])
    c = x.shape[-1]
    window = sum(padded[..., i : i + c] for i in range(size))
    return x / jnp.power(k + (alpha / size) * window, beta).astype(x.dtype)


class LocalResponseNorm(nnx.Module):
    """:func:`local_response_norm` as a module (no parameters).

    Args:
      size, alpha, beta, k: as for :func:`local_response_norm`.

    Call:
      ``[..., C]`` → the same shape.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxconv.nn import LocalResponseNorm
      >>> LocalResponseNorm()(jnp.ones((1, 56, 56, 64))).shape
      (1, 56, 56, 64)
    """

    def __init__(self, size: int = 5, *, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        self.size = check_odd_size(size)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = float(k)

    def __call__(self, x: jax.Array) -> jax.Array:
        return local_response_norm(x, self.size, alpha=self.alpha, beta=self.beta, k=self.k)
