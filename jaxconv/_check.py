"""Argument checks every layer shares; each message names the argument, the rule and the value.

Plain Python at the bottom of the package (geometry, kernels, ops, nn, train and bench use it),
so a rule such as "an int, not a bool, at least 1" is written once.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "as_array",
    "as_arrays",
    "check_activation",
    "check_array",
    "check_bias",
    "check_bool",
    "check_dtype",
    "check_groups",
    "check_int",
    "check_number",
    "check_same_dtype",
]


def check_int(value: Any, name: str, *, minimum: int | None = 1, allow_none: bool = False) -> Any:
    """``value`` as a Python int ``>= minimum`` (no lower bound when ``minimum`` is None).

    NumPy integers are accepted (``operator.index``); a bool is not an int here.

    Raises:
      TypeError: ``value`` is not an int (or None where ``allow_none``).
      ValueError: ``value`` is below ``minimum``.

    Examples:
      >>> check_int(3, "groups")
      3
      >>> check_int(0, "groups")
      Traceback (most recent call last):
      ...
      ValueError: `groups` must be a positive int, got 0
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool):
        raise TypeError(f"`{name}` must be an int, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"`{name}` must be an int, got {value!r}") from None
    if minimum is not None and value < minimum:
        rule = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"`{name}` must be {rule}, got {value}")
    return int(value)


def check_groups(
    groups: Any,
    in_channels: int,
    out_channels: int,
    *,
    in_name: str = "the input channels",
    out_name: str = "the output channels",
    hint: Callable[[int], str] | None = None,
) -> int:
    """``groups`` as a positive int that divides ``in_channels`` and ``out_channels``.

    The one home of the feature-groups rule: the conv contract, the NNX modules and the cost
    model call it, each naming the channels as its caller knows them.

    Args:
      groups: the value to check.
      in_channels, out_channels: the channel counts ``groups`` must divide.
      in_name, out_name: how the messages name them (``"`in_features`"`` in a module).
      hint: called with the checked ``groups`` when they do not divide ``in_channels``; its
        text is appended to the message (the conv contract's layout hint).

    Raises:
      TypeError: ``groups`` is not an int.
      ValueError: ``groups`` is below 1 or does not divide one of the channel counts.

    Examples:
      >>> check_groups(4, 32, 64)
      4
      >>> check_groups(3, 8, 6, in_name="`in_features`")
      Traceback (most recent call last):
      ...
      ValueError: `groups` (=3) must divide `in_features` (=8)
    """
    groups = check_int(groups, "groups")
    if in_channels % groups:
        more = hint(groups) if hint is not None else ""
        raise ValueError(f"`groups` (={groups}) must divide {in_name} (={in_channels}){more}")
    if out_channels % groups:
        raise ValueError(f"`groups` (={groups}) must divide {out_name} (={out_channels})")
    return groups


def check_number(value: Any, name: str, low: float = -math.inf, high: float = math.inf) -> float:
    """``value`` as a float in ``[low, high)``; a bool is not a number here.

    Examples:
      >>> check_number(0.5, "momentum", 0.0, 1.0)
      0.5
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a number, got {value!r}")
    if not low <= value < high:
        if high < math.inf:
            bound = f"in [{low}, {high})"
        else:
            bound = f">= {low}"
        raise ValueError(f"`{name}` must be a number {bound}, got {value!r}")
    return float(value)


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is a bool; TypeError otherwise (no truthiness of strings or arrays)."""
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool, got {value!r}")
    return value


def check_dtype(dtype: Any, name: str) -> Any:
    """``None`` or a NumPy/JAX dtype; TypeError otherwise.

    Examples:
      >>> check_dtype("bfloat16", "dtype").name
      'bfloat16'
    """
    if dtype is None:
        return None
    import jax.numpy as jnp  # keeps this module importable without initializing jax

    try:
        return jnp.dtype(dtype)
    except TypeError:
        raise TypeError(f"`{name}` must be None or a dtype, got {dtype!r}") from None


def as_array(value: Any, name: str) -> Any:
    """``value`` as JAX reads it: a tensor of another library (PyTorch's, any object with
    ``__dlpack__`` or ``__array__``) becomes a JAX array; everything else is returned as it is
    (JAX and NumPy arrays, tracers, ``jax.ShapeDtypeStruct``, objects with ``__jax_array__``,
    and what is no array at all, for the caller to judge).

    jaxconv never imports torch: a tensor is read through DLPack first (the only way for
    ``bfloat16``, which has no NumPy form), else through ``__array__``. The result is a copy
    on JAX's default device, as ``jnp.asarray(tensor.numpy())`` would be: a JAX array must not
    change when the tensor is later changed in place, and DLPack shares the tensor's memory.

    Raises:
      ValueError: naming ``name``, when the tensor cannot be read (one that requires grad, or
        one on a device this JAX has no backend for).

    Examples:
      >>> import numpy as np
      >>> class Tensor:  # a foreign array: only the NumPy protocol
      ...     def __array__(self, dtype=None, copy=None):
      ...         return np.ones((2, 3), np.float32)
      >>> as_array(Tensor(), "x").shape
      (2, 3)
      >>> x = np.ones(3)
      >>> as_array(x, "x") is x
      True
    """
    import jax  # keeps this module importable without initializing jax
    import numpy as np

    if (
        isinstance(value, (jax.Array, np.ndarray, np.generic))
        or hasattr(value, "__jax_array__")
        or not (hasattr(value, "__dlpack__") or hasattr(value, "__array__"))
    ):
        return value
    what = f"`{name}` (a {type(value).__module__}.{type(value).__qualname__})"
    if getattr(value, "requires_grad", False) is True:  # torch refuses both protocols then
        raise ValueError(
            f"{what} requires grad, so it cannot be read as a JAX array; pass `{name}.detach()` "
            f"(differentiate with jax.grad, not autograd)"
        )
    errors = []
    if hasattr(value, "__dlpack__") and hasattr(value, "__dlpack_device__"):
        try:
            shared = jax.dlpack.from_dlpack(value)
        except Exception as err:  # BufferError, TypeError, RuntimeError: devices, views, dtypes
            errors.append(f"DLPack: {err}")
        else:
            on_host = all(d.platform == "cpu" for d in shared.devices())
            return _copy(np.asarray(shared) if on_host else shared)
    if hasattr(value, "__array__"):
        try:
            return _copy(np.asarray(value))
        except Exception as err:  # RuntimeError, TypeError: devices, dtypes NumPy lacks
            errors.append(f"NumPy: {err}")
    device = getattr(value, "device", None)
    if device is not None and not str(device).startswith("cpu"):
        fix = f"move it to the CPU first (`{name}.cpu()`)"
    else:
        fix = "convert it to a NumPy or JAX array first"
    where = f" on device {device}" if device is not None else ""
    raise ValueError(f"{what}{where} cannot be read as a JAX array ({'; '.join(errors)}); {fix}")


def as_arrays(values: Sequence[Any], name: str = "args") -> tuple[Any, ...]:
    """Each of a function's positional arguments through :func:`as_array`, named by position
    (``args[1]``): for the functions that trace another with example arguments
    (:func:`jaxconv.explain`, :func:`jaxconv.xla_cost`, :func:`jaxconv.autotune`)."""
    return tuple(as_array(v, f"{name}[{i}]") for i, v in enumerate(values))


def _copy(array: Any) -> Any:
    """A JAX copy of ``array`` (a host array goes to the default device, uncommitted, as
    ``jnp.asarray`` puts it), complete when returned, so that the source may change after.
    Made eagerly even while a ``jit`` traces: a tensor is a constant there."""
    import jax  # keeps this module importable without initializing jax

    with jax.ensure_compile_time_eval():
        copy = jax.numpy.array(array, copy=True)
    return copy.block_until_ready()


def check_array(value: Any, name: str, empty_batch: bool = False) -> Any:
    """``value`` as an array (:func:`as_array`: a PyTorch tensor becomes a JAX array) with a
    ``shape`` and ``dtype`` and no zero-size dim (but the first, when ``empty_batch``);
    TypeError / ValueError naming ``name`` otherwise. Callers use the returned value.

    Examples:
      >>> import numpy as np
      >>> check_array(np.ones((0, 3)), "x", empty_batch=True).shape
      (0, 3)
      >>> check_array([1.0, 2.0], "x")
      Traceback (most recent call last):
      ...
      TypeError: `x` must be an array, got list
    """
    value = as_array(value, name)
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        raise TypeError(f"`{name}` must be an array, got {type(value).__name__}")
    dims = value.shape[1:] if empty_batch else value.shape
    if any(d == 0 for d in dims):
        raise ValueError(f"`{name}` must not have zero-size dims, got shape {tuple(value.shape)}")
    return value


def check_same_dtype(x: Any, w: Any, w_name: str = "w", x_name: str = "x") -> None:
    """TypeError unless ``w`` has ``x``'s dtype (jaxconv does not promote silently)."""
    import jax.numpy as jnp  # keeps this module importable without initializing jax

    if jnp.dtype(x.dtype) != jnp.dtype(w.dtype):
        raise TypeError(
            f"`{w_name}` dtype (={jnp.dtype(w.dtype).name}) must equal `{x_name}` dtype "
            f"(={jnp.dtype(x.dtype).name}); cast one of them (jaxconv does not promote silently)"
        )


def check_bias(b: Any, c: int, name: str = "b") -> Any:
    """``b`` as an array (see :func:`check_array`) of shape ``(c,)`` (one per output channel),
    or None; TypeError / ValueError naming ``name`` otherwise."""
    if b is None:
        return None
    b = check_array(b, name)
    if tuple(b.shape) != (c,):
        raise ValueError(
            f"`{name}` must have shape ({c},) (one per output channel), got {tuple(b.shape)}"
        )
    return b


def check_activation(activation: Any, name: str = "activation") -> Callable[..., Any] | None:
    """``activation`` if it is None or a callable; TypeError (naming ``name``) otherwise."""
    if activation is not None and not callable(activation):
        raise TypeError(f"`{name}` must be a callable or None, got {activation!r}")
    return activation
