"""Which model ``--model`` names: the registry of :mod:`jaxconv.models` (its ``train`` variants)
and the models registered here at run time (no model code here)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from flax import nnx

from jaxconv.models.registry import MODELS, canonical_name

__all__ = ["build_model", "model_names", "register_model", "registered_model"]

ModelFactory = Callable[..., nnx.Module]

#: ``--model`` names added with :func:`register_model` → factory ``(num_classes, rngs,
#: **kwargs) -> nnx.Module``; they come after (and may shadow) the registry's.
_REGISTERED: dict[str, ModelFactory] = {}


def register_model(name: str, factory: ModelFactory) -> None:
    """Makes ``factory`` available as ``--model name`` (e.g. a variant with other widths).

    jaxconv's own models are in :data:`jaxconv.models.MODELS` (the registry); this adds one of
    yours to training only.

    Args:
      name: the ``--model`` name.
      factory: ``(num_classes, rngs) -> nnx.Module``, which must also take ``dtype=`` (the
        compute dtype) to train with ``--dtype bfloat16``; the module maps
        ``float32[N, H, W, C]`` to logits ``[N, num_classes]`` — or, in train mode, to a
        tuple ``(logits, *aux)`` whose auxiliary logits are weighted by ``aux_weight`` in
        the loss.

    Raises:
      TypeError: ``factory`` is not callable.
      ValueError: ``name`` is an alias of a registry model.

    Examples:
      Call it once at start-up; tests and examples use :func:`registered_model`, which
      leaves the registry as it found it. Checked before anything is registered:

      >>> from jaxconv.train import register_model
      >>> register_model("linear", "nnx.Linear")
      Traceback (most recent call last):
      ...
      TypeError: `factory` must be callable, got str
    """
    if not callable(factory):
        raise TypeError(f"`factory` must be callable, got {type(factory).__name__}")
    aliases = {alias: entry.name for entry in MODELS.values() for alias in entry.aliases}
    if name in aliases:
        raise ValueError(f"`name` {name!r} is an alias of the registry's {aliases[name]!r}")
    _REGISTERED[name] = factory


@contextlib.contextmanager
def registered_model(name: str, factory: ModelFactory) -> Iterator[None]:
    """:func:`register_model` for the ``with`` block only; then the registry is as before.

    A model that is built stays usable after the block; only the name goes (or gets its
    previous factory back).

    Raises:
      TypeError: ``factory`` is not callable.

    Examples:
      >>> from flax import nnx
      >>> from jaxconv.train import model_names, registered_model
      >>> with registered_model("linear", lambda k, rngs: nnx.Linear(3, k, rngs=rngs)):
      ...     "linear" in model_names()
      True
      >>> "linear" in model_names()
      False
    """
    previous = _REGISTERED.get(name)
    register_model(name, factory)
    try:
        yield
    finally:
        if previous is None:
            del _REGISTERED[name]
        else:
            _REGISTERED[name] = previous


def model_names() -> tuple[str, ...]:
    """The ``--model`` names: the registry's (:data:`jaxconv.models.MODELS`), then those
    added with :func:`register_model`. The registry's aliases are accepted too.

    Examples:
      >>> from jaxconv.train import model_names
      >>> model_names()[:2]
      ('nin', 'googlenet')
    """
    return (*MODELS, *(name for name in _REGISTERED if name not in MODELS))


def build_model(name: str, num_classes: int, rngs: nnx.Rngs, **kwargs: Any) -> nnx.Module:
    """Instantiates the model ``--model name`` trains: a registry model's ``train`` variant
    (see :mod:`jaxconv.models.registry`), or a factory added with :func:`register_model`.

    Args:
      name: a ``--model`` name (or a registry alias).
      num_classes: the classifier's width.
      rngs: the initialization (and dropout) RNG streams.
      **kwargs: passed on to the model (e.g. ``dtype``).

    Returns:
      the ``nnx.Module``, in training mode.

    Raises:
      ValueError: ``name`` is not registered; the message lists the names.

    Examples:
      >>> from flax import nnx
      >>> from jaxconv.train import build_model
      >>> model = nnx.eval_shape(lambda: build_model("nin", 10, nnx.Rngs(0)))
      >>> model.mlpconv1.conv.conv.kernel.shape  # NiN with BatchNorm: ConvBN.conv
      (5, 5, 3, 192)
      >>> build_model("vgg", 10, nnx.Rngs(0))
      Traceback (most recent call last):
      ...
      ValueError: `model` must be one of nin, googlenet, ..., got 'vgg'
    """
    name = canonical_model_name(name)
    if name in _REGISTERED:
        return _REGISTERED[name](num_classes, rngs, **kwargs)
    return MODELS[name].build(num_classes, variant="train", rngs=rngs, **kwargs)


def canonical_model_name(name: str) -> str:
    """``name`` as :func:`model_names` spells it (a registry alias resolved).

    Raises:
      ValueError: ``name`` is not a ``--model`` name; the message lists them.
    """
    return canonical_name(name, model_names(), argument="model")
