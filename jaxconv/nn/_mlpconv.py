"""NiN's mlpconv block (Lin et al. 2013, "Network In Network", §2.3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxconv._check import check_activation, check_int
from jaxconv.nn._conv import Activation, Conv, ConvBN
from jaxconv.nn._inception import _check_norm, make_unit
from jaxconv.nn._validate import check_channels

__all__ = ["MLPConv"]

Array = jax.Array


class MLPConv(nnx.Module):
    """An mlpconv block: a k×k conv followed by 1×1 convs, each followed by the activation.

    The 1×1 convs are NiN's "cascaded cross channel parametric pooling": a small MLP applied at
    every position. Submodules: ``conv`` (the k×k), then ``pointwise_1``, ``pointwise_2``, …

    Args:
      in_features: input channels.
      features: output channels of each conv in order: ``(k×k, 1×1, 1×1, …)``; e.g.
        ``(192, 160, 96)`` for NiN's first CIFAR-10 block. At least one entry.
      kernel_size: k of the first conv (an int is a square kernel).
      stride, padding: of the k×k conv (see :func:`jaxconv.conv`).
      norm: None or ``"batch"`` (every conv a :class:`ConvBN`).
      activation: after every conv (the paper: ReLU).
      dtype, param_dtype, precision: as for :class:`Conv`.
      implementation: lowering of the k×k conv.
      rngs: ``nnx.Rngs`` with a ``params`` stream.

    Call:
      ``[N, H, W, in_features]`` → ``[N, H_out, W_out, features[-1]]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.nn import MLPConv
      >>> block = MLPConv(3, (192, 160, 96), 5, rngs=nnx.Rngs(0))
      >>> block(jnp.ones((1, 32, 32, 3))).shape
      (1, 32, 32, 96)
      >>> block.pointwise_2.kernel.shape
      (1, 1, 160, 96)
    """

    features: tuple[int, ...]
    in_features: int
    out_features: int
    conv: Conv | ConvBN

    def __init__(
        self,
        in_features: int,
        features: Sequence[int],
        kernel_size: int | Sequence[int],
        *,
        stride: int | Sequence[int] = 1,
        padding: Any = "SAME",
        norm: str | None = None,
        activation: Activation | None = jax.nn.relu,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        implementation: str | None = None,
        rngs: nnx.Rngs,
    ):
        if not isinstance(features, (list, tuple)) or not features:
            raise ValueError(
                f"`features` must be a non-empty sequence (k×k width, then the 1×1 widths), "
                f"got {features!r}"
            )
        self.features = tuple(check_int(f, f"features[{i}]") for i, f in enumerate(features))
        self.in_features = check_int(in_features, "in_features")
        self.out_features = self.features[-1]
        norm = _check_norm(norm)
        common: dict[str, Any] = dict(
            activation=check_activation(activation),
            dtype=dtype,
            param_dtype=param_dtype,
            precision=precision,
        )
        first = ConvBN if norm == "batch" else Conv  # a Conv even for k = 1, as before
        self.conv = first(
            in_features,
            self.features[0],
            kernel_size,
            stride=stride,
            padding=padding,
            implementation=implementation,
            rngs=rngs,
            **common,
        )
        for i, (c_in, c_out) in enumerate(zip(self.features, self.features[1:]), start=1):
            setattr(
                self, f"pointwise_{i}", make_unit(c_in, c_out, 1, norm=norm, rngs=rngs, **common)
            )

    def __call__(self, x: Array) -> Array:
        x = check_channels(x, self.in_features, type(self).__name__)
        y = self.conv(x)
        for i in range(1, len(self.features)):
            y = getattr(self, f"pointwise_{i}")(y)
        return y
