"""Which model ``--model`` names: the registry of :mod:`jaxconv.models` (by default its ``train``
variants, ``--variant`` another) and the models registered here at run time (no model code
here)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxconv.models import from_torchvision
from jaxconv.models.registry import MODELS, canonical_name

__all__ = [
    "build_model",
    "check_image_size",
    "minimum_image_size",
    "model_names",
    "model_variants",
    "register_model",
    "registered_model",
    "torchvision_model_names",
]

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


def model_variants(name: str) -> tuple[str, ...]:
    """The variants ``--variant`` takes for ``--model name``: a registry model's
    (:attr:`jaxconv.models.ModelEntry.variants`), ``("train",)`` for a registered factory.

    Examples:
      >>> from jaxconv.train import model_variants
      >>> model_variants("resnet18"), model_variants("nin")
      (('reference', 'train', 'torchvision'), ('reference', 'train'))
    """
    name = canonical_model_name(name)
    return ("train",) if name in _REGISTERED else MODELS[name].variants


def torchvision_model_names() -> tuple[str, ...]:
    """The ``--model`` names that have torchvision's layout (``--init torchvision:``,
    ``--export-torchvision``).

    Examples:
      >>> from jaxconv.train import torchvision_model_names
      >>> torchvision_model_names()  # doctest: +NORMALIZE_WHITESPACE
      ('googlenet', 'resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152',
       'resnext50_32x4d', 'wide_resnet50_2', 'mobilenetv2')
    """
    return tuple(n for n in model_names() if "torchvision" in model_variants(n))


def _torchvision_options(name: str) -> dict[str, Any]:
    """The torchvision variant's options that :func:`~jaxconv.models.from_torchvision` takes
    apart: torchvision's own (GoogLeNet's ``googlenet(weights=...)``: no auxiliary heads, whose
    published weights are untrained; ``transform_input`` on), the same with weights or without."""
    layout = MODELS[name].torchvision
    assert layout is not None
    options: dict[str, Any] = {}
    if layout.aux_heads:
        options["aux_logits"] = False
    if layout.transform_input:
        options["transform_input"] = True
    return options


def build_model(
    name: str,
    num_classes: int,
    rngs: nnx.Rngs,
    *,
    variant: str = "train",
    state_dict: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> nnx.Module:
    """Instantiates the model ``--model name`` trains: a registry model's ``variant`` (see
    :mod:`jaxconv.models.registry`), or a factory added with :func:`register_model`.

    Args:
      name: a ``--model`` name (or a registry alias).
      num_classes: the classifier's width.
      rngs: the initialization (and dropout) RNG streams.
      variant: ``"train"`` (the CIFAR stems: what trains on 32×32), ``"reference"`` (the
        paper's model) or ``"torchvision"`` (torchvision's architecture, ImageNet stem), as
        :func:`model_variants` lists them for ``name``; a registered factory has ``"train"``
        only.
      state_dict: torchvision's weights for the ``"torchvision"`` variant (names → arrays,
        read by :func:`jaxconv.models.from_torchvision`); None: initialized from ``rngs``.
      **kwargs: passed on to the model (e.g. ``dtype``).

    Returns:
      the ``nnx.Module``, in training mode.

    Raises:
      ValueError: ``name`` is not registered (the message lists the names), a ``variant`` it
        does not have, or a ``state_dict`` for another variant or that does not fit.

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
    variants = model_variants(name)
    if variant not in variants:
        raise ValueError(
            f"`variant` must be one of {', '.join(variants)} for {name}, got {variant!r}"
        )
    if state_dict is not None and variant != "torchvision":
        raise ValueError(f"`state_dict` needs the torchvision variant, got variant {variant!r}")
    if name in _REGISTERED:
        return _REGISTERED[name](num_classes, rngs, **kwargs)
    entry = MODELS[name]
    if variant != "torchvision":
        return entry.build(num_classes, variant=variant, rngs=rngs, **kwargs)
    options = _torchvision_options(name)
    model = entry.build(num_classes, variant=variant, rngs=rngs, **options, **kwargs)
    if state_dict is not None:  # loaded as torchvision's model, then into this one's dtype
        loaded = from_torchvision(name, state_dict, num_classes=num_classes, rngs=rngs, **options)
        nnx.update(model, nnx.state(loaded, nnx.Any(nnx.Param, nnx.BatchStat)))
    return model


def _runs_on(model: nnx.Module, size: int, channels: int) -> bool:
    """Whether ``model`` (abstract) maps a ``[1, size, size, channels]`` batch, in training and
    in eval mode (traced, nothing computed)."""
    x = jax.ShapeDtypeStruct((1, size, size, channels), jnp.float32)

    def call(graph: Any, state: Any, x: Any) -> Any:
        return nnx.merge(graph, state)(x)

    for train in (True, False):
        model.train() if train else model.eval()
        graph, state = nnx.split(model)
        try:
            jax.eval_shape(functools.partial(call, graph), state, x)
        except (ValueError, TypeError):
            return False
    return True


def _abstract_model(name: str, variant: str) -> nnx.Module:
    return nnx.eval_shape(lambda: build_model(name, 10, nnx.Rngs(0), variant=variant))


def _smallest_side(model: nnx.Module, channels: int, largest: int) -> int | None:
    low, high = 0, 1  # low does not run (0: nothing tried), high is tried next
    while not _runs_on(model, high, channels):
        if high >= largest:
            return None
        low, high = high, min(2 * high, largest)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if _runs_on(model, middle, channels) else (middle, high)
    return high


def minimum_image_size(
    name: str, variant: str = "train", *, channels: int = 3, largest: int = 4096
) -> int | None:
    """The smallest side of the square images that ``--model name`` (``variant``) runs on.

    Found by bisection over traced (never computed) calls, in training and eval mode.

    Args:
      name: a ``--model`` name.
      variant: as for :func:`build_model`.
      channels: input channels.
      largest: the largest side tried.

    Returns:
      the side, or None when no side up to ``largest`` runs.

    Examples:
      >>> from jaxconv.train import minimum_image_size
      >>> minimum_image_size("googlenet", "torchvision")   # its 2×2 pool4
      15
    """
    return _smallest_side(_abstract_model(name, variant), channels, largest)


def check_image_size(name: str, variant: str, size: int, *, channels: int = 3) -> None:
    """Raises a ValueError naming ``image_size`` and the model's smallest input when
    ``--model name`` (``variant``) cannot run on ``size``×``size`` images.

    A model that fails on every size up to 4096 fails for another reason: that is left to the
    run's own check, which says why.

    Examples:
      >>> from jaxconv.train import check_image_size
      >>> check_image_size("googlenet", "torchvision", 8)
      Traceback (most recent call last):
      ...
      ValueError: `image_size` (=8) is too small for googlenet (...): it needs ... at least 15×15
    """
    model = _abstract_model(name, variant)
    if _runs_on(model, size, channels):
        return
    smallest = _smallest_side(model, channels, 4096)
    if smallest is not None and smallest > size:
        raise ValueError(
            f"`image_size` (={size}) is too small for {canonical_model_name(name)} ({variant} "
            f"variant): it needs images of at least {smallest}×{smallest}"
        )


def canonical_model_name(name: str) -> str:
    """``name`` as :func:`model_names` spells it (a registry alias resolved).

    Raises:
      ValueError: ``name`` is not a ``--model`` name; the message lists them.
    """
    return canonical_name(name, model_names(), argument="model")
