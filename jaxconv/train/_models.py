"""Which model ``--model`` names: a small registry over ``jaxconv.models`` (no model code here)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from flax import nnx

__all__ = ["MODELS", "build_model", "model_names", "register_model", "registered_model"]

ModelFactory = Callable[[int, nnx.Rngs], nnx.Module]


def _nin(batch_norm: bool) -> ModelFactory:
    def factory(num_classes: int, rngs: nnx.Rngs, **kwargs: Any) -> nnx.Module:
        from jaxconv.models import NiN

        return NiN(num_classes=num_classes, batch_norm=batch_norm, rngs=rngs, **kwargs)

    return factory


def _googlenet(num_classes: int, rngs: nnx.Rngs, **kwargs: Any) -> nnx.Module:
    from jaxconv.models import GoogLeNet

    # The CIFAR port: a 3×3 stem and no early pools, so the inception stages run at 32/16/8.
    return GoogLeNet(
        num_classes, aux_logits=True, batch_norm=True, stem="cifar", rngs=rngs, **kwargs
    )


def _inception(bottleneck: bool) -> ModelFactory:
    def factory(num_classes: int, rngs: nnx.Rngs, **kwargs: Any) -> nnx.Module:
        from jaxconv.models import MiniInception

        return MiniInception(num_classes=num_classes, bottleneck=bottleneck, rngs=rngs, **kwargs)

    return factory


def _resnet(depth: int) -> ModelFactory:
    def factory(num_classes: int, rngs: nnx.Rngs, **kwargs: Any) -> nnx.Module:
        from jaxconv.models._resnet import ResNet18, ResNet50

        model = {18: ResNet18, 50: ResNet50}[depth]
        # The CIFAR port: a 3×3/1 stem and no max pool, so the stages run at 32/16/8/4.
        return model(num_classes, stem="cifar", rngs=rngs, **kwargs)

    return factory


def _mobilenetv2(num_classes: int, rngs: nnx.Rngs, **kwargs: Any) -> nnx.Module:
    from jaxconv.models._mobilenet import MobileNetV2

    # The CIFAR port: stride 1 in the stem and the first stride-2 row, ending on 4×4 maps.
    return MobileNetV2(num_classes, stem="cifar", rngs=rngs, **kwargs)


#: ``--model`` name → factory ``(num_classes, rngs, **kwargs) -> nnx.Module`` (kwargs: the
#: model's own, e.g. ``dtype=jnp.bfloat16``).
#: ``nin`` is NiN with BatchNorm after every conv: the paper's NiN (``nin-paper``: no BN, a
#: ReLU on the logits) sits at chance for its first hundreds of steps from scratch.
#: ``resnet18``, ``resnet50`` and ``mobilenetv2`` are the ImageNet models with their CIFAR stems.
MODELS: dict[str, ModelFactory] = {
    "nin": _nin(batch_norm=True),
    "googlenet": _googlenet,
    "inception-bottleneck": _inception(True),
    "inception-direct5x5": _inception(False),
    "nin-paper": _nin(batch_norm=False),
    "resnet18": _resnet(18),
    "resnet50": _resnet(50),
    "mobilenetv2": _mobilenetv2,
}


def register_model(name: str, factory: ModelFactory) -> None:
    """Makes ``factory`` available as ``--model name`` (e.g. a variant with other widths).

    Args:
      name: the ``--model`` name.
      factory: ``(num_classes, rngs) -> nnx.Module``, which must also take ``dtype=`` (the
        compute dtype) to train with ``--dtype bfloat16``; the module maps
        ``float32[N, H, W, C]`` to logits ``[N, num_classes]`` — or, in train mode, to a
        tuple ``(logits, *aux)`` whose auxiliary logits are weighted by ``aux_weight`` in
        the loss.

    Raises:
      TypeError: ``factory`` is not callable.

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
    MODELS[name] = factory


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
    previous = MODELS.get(name)
    register_model(name, factory)
    try:
        yield
    finally:
        if previous is None:
            del MODELS[name]
        else:
            MODELS[name] = previous


def model_names() -> tuple[str, ...]:
    """The registered ``--model`` names.

    Examples:
      >>> from jaxconv.train import model_names
      >>> model_names()[:2]
      ('nin', 'googlenet')
    """
    return tuple(MODELS)


def build_model(name: str, num_classes: int, rngs: nnx.Rngs, **kwargs: Any) -> nnx.Module:
    """Instantiates the registered model ``name``.

    Args:
      name: a registered ``--model`` name.
      num_classes: the classifier's width.
      rngs: the initialization (and dropout) RNG streams.
      **kwargs: passed on to the factory.

    Returns:
      the ``nnx.Module``, in training mode.

    Raises:
      ValueError: ``name`` is not registered.

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
    if name not in MODELS:
        raise ValueError(f"`model` must be one of {', '.join(MODELS)}, got {name!r}")
    return MODELS[name](num_classes, rngs, **kwargs)
