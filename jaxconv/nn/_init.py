"""Parameter initializers that compile once, not once per parameter shape.

Flax's initializers (``jax.nn.initializers``) draw ``shape`` directly: JAX compiles the draw
and the scaling for every distinct shape, so building GoogLeNet eagerly (≈60 distinct kernel
shapes) spent a minute in XLA. These draw *unit* samples in fixed-size chunks of
:data:`CHUNK` from one compiled sampler per distribution — chunk ``i`` comes from
``jax.random.fold_in(key, i)`` — then cut, reshape and scale them in NumPy (exact float32
arithmetic, no compile) and hand the result to the device. Under a trace (``nnx.jit``,
``nnx.eval_shape``, ``jax.jit``: the key is a tracer) the same steps run in ``jax.numpy`` and
give the same values.

The distributions are ``jax.nn.initializers``' own (same fan rule, same truncation, same
scales); the values for a given key differ from Flax's, which draws the whole shape at once.
Any Flax initializer can still be passed wherever these are the default.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv._check import check_number

__all__ = ["CHUNK", "Normal", "VarianceScaling", "zeros"]

Array = jax.Array

#: Unit samples per call of the compiled sampler: a parameter of ``n`` entries takes
#: ``ceil(n / CHUNK)`` calls, and every shape reuses the same compiled program.
CHUNK = 1 << 16

#: Standard deviation of N(0, 1) truncated to (-2, 2) (``jax.nn.initializers``' constant).
_TRUNCATED_STD = 0.87962566103423978

Distribution = Literal["truncated_normal", "normal", "uniform"]
Mode = Literal["fan_in", "fan_out", "fan_avg"]


@functools.partial(jax.jit, static_argnames="distribution")
def _unit_chunk(key: Array, index: Array, distribution: str) -> Array:
    """``CHUNK`` float32 unit draws of ``distribution`` from ``fold_in(key, index)``."""
    key = jax.random.fold_in(key, index)
    if distribution == "truncated_normal":
        return jax.random.truncated_normal(key, -2.0, 2.0, (CHUNK,), jnp.float32)
    if distribution == "normal":
        return jax.random.normal(key, (CHUNK,), jnp.float32)
    return jax.random.uniform(key, (CHUNK,), jnp.float32, -1.0, 1.0)


def _draw(key: Array, shape: Any, dtype: Any, distribution: str, stddev: float) -> Array:
    """``shape`` unit draws of ``distribution`` times ``stddev``, cast to ``dtype``."""
    shape = tuple(int(d) for d in shape)
    dtype = jax.dtypes.canonicalize_dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"`dtype` must be a floating dtype, got {dtype}")
    n = math.prod(shape)
    chunks = [_unit_chunk(key, i, distribution) for i in range(-(-n // CHUNK))]
    scale = np.float32(stddev)
    if isinstance(key, jax.core.Tracer):  # under a trace: the same steps, in jax.numpy
        units = jnp.concatenate(chunks)[:n] if chunks else jnp.zeros((0,), jnp.float32)
        return (units.reshape(shape) * scale).astype(dtype)
    host = np.concatenate([np.asarray(c) for c in chunks]) if chunks else np.zeros(0, np.float32)
    # NumPy's float32 multiply and its casts (bfloat16 through ml_dtypes) round like XLA's.
    return jax.device_put((host[:n].reshape(shape) * scale).astype(dtype))


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` by ``jax.nn.initializers``' rule: input axis -2, output axis -1,
    the leading axes the receptive field (``[*kernel, C_in/groups, C_out]`` or ``[in, out]``)."""
    if len(shape) < 2:
        raise ValueError(
            f"variance scaling needs a kernel of rank >= 2 ([..., fan_in axis, fan_out axis]), "
            f"got shape {shape}"
        )
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


@dataclasses.dataclass(frozen=True)
class VarianceScaling:
    """``jax.nn.initializers.variance_scaling(scale, mode, distribution)``, compiled once.

    Draws with variance ``scale / fan``, where ``fan`` is ``fan_in``, ``fan_out`` or their
    mean for ``mode`` ``"fan_in"``, ``"fan_out"``, ``"fan_avg"``. As in JAX, axis -2 is the
    input axis, axis -1 the output axis and the leading axes the receptive field, so an HWIO
    kernel ``[kh, kw, C_in/groups, C_out]`` has ``fan_in = kh·kw·C_in/groups`` and
    ``fan_out = kh·kw·C_out``, and a dense ``[in, out]`` kernel ``fan_in = in``. The
    ``distribution`` is ``"truncated_normal"`` (N(0, 1) cut to ±2 and rescaled to unit
    variance, as JAX's), ``"normal"`` or ``"uniform"`` (on ``[-√(3·variance), √(3·variance))``).

    Samples are float32, cast to ``dtype``. See the module docstring for why this is fast;
    the values for a key differ from JAX's, the distribution does not.

    Args:
      scale: the variance numerator (1 for LeCun, 2 for He); a number >= 0.
      mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``.
      distribution: ``"truncated_normal"``, ``"normal"`` or ``"uniform"``.

    Call:
      ``init(key, shape, dtype=jnp.float32)`` → an array of ``shape`` (rank >= 2), like any
      ``jax.nn.initializers`` function.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jaxconv.nn import VarianceScaling
      >>> he = VarianceScaling(2.0, "fan_in", "normal")
      >>> w = he(jax.random.key(0), (3, 3, 64, 128))
      >>> w.shape, w.dtype
      ((3, 3, 64, 128), dtype('float32'))
      >>> round(float(w.std() * (3 * 3 * 64 / 2) ** 0.5), 1)  # unit std after unscaling
      1.0
      >>> lecun = VarianceScaling(1.0, "fan_in", "truncated_normal")
      >>> bool(jnp.abs(lecun(jax.random.key(1), (256, 10))).max() <= 2 / 16 / 0.8796)
      True
      >>> VarianceScaling(1.0, "fan", "normal")
      Traceback (most recent call last):
      ...
      ValueError: `mode` must be one of 'fan_in', 'fan_out', 'fan_avg', got 'fan'
    """

    scale: float
    mode: Mode
    distribution: Distribution

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", check_number(self.scale, "scale", 0.0))
        for name, allowed in (
            ("mode", ("fan_in", "fan_out", "fan_avg")),
            ("distribution", ("truncated_normal", "normal", "uniform")),
        ):
            value = getattr(self, name)
            if value not in allowed:
                choices = ", ".join(repr(a) for a in allowed)
                raise ValueError(f"`{name}` must be one of {choices}, got {value!r}")

    def __call__(self, key: Array, shape: Any, dtype: Any = jnp.float32) -> Array:
        shape = tuple(int(d) for d in shape)
        fan_in, fan_out = _fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        stddev = math.sqrt(self.scale / fan) if fan else 0.0  # fan 0: an empty kernel
        if self.distribution == "truncated_normal":
            stddev /= _TRUNCATED_STD
        elif self.distribution == "uniform":
            stddev *= math.sqrt(3.0)  # U(-1, 1) has variance 1/3
        return _draw(key, shape, dtype, self.distribution, stddev)


@dataclasses.dataclass(frozen=True)
class Normal:
    """``jax.nn.initializers.normal(stddev)``: N(0, ``stddev``²), compiled once.

    Samples are float32, cast to ``dtype``; any shape (a bias too). See the module docstring.

    Args:
      stddev: the standard deviation, a number >= 0 (default 0.01, JAX's).

    Call:
      ``init(key, shape, dtype=jnp.float32)`` → an array of ``shape``.

    Examples:
      >>> import jax
      >>> from jaxconv.nn import Normal
      >>> w = Normal(0.01)(jax.random.key(0), (1280, 1000))
      >>> w.shape, round(float(w.std()), 3)
      ((1280, 1000), 0.01)
    """

    stddev: float = 0.01

    def __post_init__(self) -> None:
        object.__setattr__(self, "stddev", check_number(self.stddev, "stddev", 0.0))

    def __call__(self, key: Array, shape: Any, dtype: Any = jnp.float32) -> Array:
        return _draw(key, shape, dtype, "normal", self.stddev)


def zeros(key: Array, shape: Any, dtype: Any = jnp.float32) -> Array:
    """``jax.nn.initializers.zeros`` without a compile per shape (NumPy zeros, put on device).

    Args:
      key: unused (the initializer signature); a tracer means "under a trace": then
        ``jnp.zeros``.
      shape, dtype: of the result.

    Examples:
      >>> import jax
      >>> from jaxconv.nn._init import zeros
      >>> zeros(jax.random.key(0), (3,))
      Array([0., 0., 0.], dtype=float32)
    """
    if isinstance(key, jax.core.Tracer):
        return jnp.zeros(shape, dtype)
    return jax.device_put(np.zeros(shape, jax.dtypes.canonicalize_dtype(dtype)))
