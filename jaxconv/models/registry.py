"""The model registry: every model of :mod:`jaxconv.models` under one canonical name.

One :class:`ModelEntry` per name says how to build the model and in which variants: the
``reference`` model (its paper's, at its input size and classes: what the bench times), the
``train`` model (what ``python -m jaxconv.train --model NAME`` trains on 32×32 images) and,
where torchvision has the model, the ``torchvision`` one (torchvision's layer for layer:
what :func:`~jaxconv.models.from_torchvision` loads weights into). Old spellings are the
entry's ``aliases``; :func:`canonical_name` turns either into the name.

Everything that names a model reads this table: :func:`~jaxconv.models.from_torchvision`, the
training CLI (``jaxconv.train.model_names``), the bench's ``model`` suite and the torch
transcriptions of ``bench/torch_models.py``. Adding a model is its own file and one entry
below; one that loads torchvision's weights also needs its name rewrites in ``_torchvision.py``
(they are per class: they name a lone block's arrays too) and a transcription in
``bench/torch_models.py`` to be tested against.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flax import nnx

from jaxconv._check import check_int
from jaxconv.models._googlenet import TORCHVISION_GOOGLENET, GoogLeNet
from jaxconv.models._mini_inception import MiniInception
from jaxconv.models._mobilenet import MobileNetV2
from jaxconv.models._nin import NiN
from jaxconv.models._resnet import (
    ResNet18,
    ResNet34,
    ResNet50,
    ResNet101,
    ResNet152,
    ResNeXt50_32x4d,
    WideResNet50_2,
)

__all__ = ["MODELS", "ModelEntry", "TorchvisionLayout", "canonical_name", "model_entry"]


def _frozen(options: Mapping[str, Any]) -> Mapping[str, Any]:
    return types.MappingProxyType(dict(options))


def _no_options() -> Mapping[str, Any]:
    return types.MappingProxyType({})


@dataclasses.dataclass(frozen=True)
class TorchvisionLayout:
    """How a registry model is torchvision's model of the same name.

    Attributes:
      classifier: the ``state_dict`` key whose rows count the classes (``"fc.weight"``).
      options: keywords, over the entry's ``options``, that give torchvision's architecture
        (empty where the reference model already is torchvision's).
      aux_heads: key prefixes of torchvision's auxiliary heads (``("aux1.", "aux2.")``): the
        model takes ``aux_logits`` and, without them, such keys are dropped as torchvision
        drops them.
      aux_classifier: the layer of each auxiliary head that counts the classes (``"fc2"``).
      transform_input: the model takes torchvision's ``transform_input``.

    Examples:
      >>> from jaxconv.models import model_entry
      >>> model_entry("googlenet").torchvision.heads(aux_logits=True)
      ('fc.', 'aux1.fc2.', 'aux2.fc2.')
    """

    classifier: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=_no_options)
    aux_heads: tuple[str, ...] = ()
    aux_classifier: str = ""
    transform_input: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", _frozen(self.options))
        object.__setattr__(self, "aux_heads", tuple(self.aux_heads))
        if self.aux_heads and not self.aux_classifier:
            raise ValueError("a layout with `aux_heads` must name their `aux_classifier`")

    def heads(self, aux_logits: bool = False) -> tuple[str, ...]:
        """Key prefixes of the layers that count the classes: the classifier's (``"fc."``)
        and, with ``aux_logits``, each auxiliary head's — what
        :func:`~jaxconv.models.from_torchvision` re-initializes for other classes."""
        aux = self.aux_heads if aux_logits else ()
        return (
            self.classifier.rsplit(".", 1)[0] + ".",
            *(f"{h}{self.aux_classifier}." for h in aux),
        )


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One model of the registry: its name, how to build it, its variants.

    Attributes:
      name: the canonical name.
      module: the class (or function) ``module(num_classes, *, rngs, **keywords)`` that builds
        it.
      summary: one line for ``--help``: the model, and what its ``train`` variant changes.
      input_size: side of the reference model's square input (224 for ImageNet models).
      num_classes: the reference model's classes (1000 for ImageNet models).
      options: keywords of ``module`` for the reference model (the paper's).
      train: keywords, over ``options``, of the model the training CLI trains on 32×32
        images: the CIFAR stem of an ImageNet model, BatchNorm where the paper's model trains
        poorly from scratch without it.
      torchvision: how it maps onto torchvision's model (None: torchvision has none).
      aliases: other names that resolve to this one (the old spellings).

    Examples:
      >>> from flax import nnx
      >>> from jaxconv.models import model_entry
      >>> entry = model_entry("mobilenet_v2")   # an alias
      >>> entry.name, entry.input_size, entry.num_classes, entry.variants
      ('mobilenetv2', 224, 1000, ('reference', 'train', 'torchvision'))
      >>> entry.keywords("train")
      {'stem': 'cifar'}
      >>> model = nnx.eval_shape(lambda: entry.build(10, variant="train", rngs=nnx.Rngs(0)))
      >>> model.stem, model.num_classes
      ('cifar', 10)
    """

    name: str
    module: Callable[..., nnx.Module]
    summary: str
    input_size: int = 224
    num_classes: int = 1000
    options: Mapping[str, Any] = dataclasses.field(default_factory=_no_options)
    train: Mapping[str, Any] = dataclasses.field(default_factory=_no_options)
    torchvision: TorchvisionLayout | None = None
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in (self.name, *self.aliases):
            if not isinstance(name, str) or not name:
                raise ValueError(f"a model's name and aliases must be non-empty str, got {name!r}")
        check_int(self.input_size, "input_size")
        check_int(self.num_classes, "num_classes")
        for field in ("options", "train"):
            object.__setattr__(self, field, _frozen(getattr(self, field)))
        object.__setattr__(self, "aliases", tuple(self.aliases))

    @property
    def variants(self) -> tuple[str, ...]:
        """The variants :meth:`keywords` and :meth:`build` take."""
        return ("reference", "train") + (("torchvision",) if self.torchvision else ())

    def keywords(self, variant: str = "reference") -> dict[str, Any]:
        """The keywords of ``module`` for ``variant`` (see :attr:`variants`).

        Raises:
          ValueError: an unknown ``variant``.
        """
        if variant == "reference":
            return dict(self.options)
        if variant == "train":
            return {**self.options, **self.train}
        if variant == "torchvision" and self.torchvision is not None:
            return {**self.options, **self.torchvision.options}
        raise ValueError(
            f"`variant` must be one of {', '.join(self.variants)} for {self.name}, got {variant!r}"
        )

    def build(
        self,
        num_classes: int | None = None,
        *,
        variant: str = "reference",
        rngs: nnx.Rngs,
        **kwargs: Any,
    ) -> nnx.Module:
        """The model of ``variant`` (in training mode, as Flax builds it).

        Args:
          num_classes: classes of the classifier (None: :attr:`num_classes`).
          variant: ``"reference"``, ``"train"`` or ``"torchvision"`` (see :attr:`variants`).
          rngs: ``nnx.Rngs`` for the initialization (and dropout).
          **kwargs: more keywords of ``module`` (e.g. ``dtype``); they override the variant's.

        Returns:
          ``module(num_classes, rngs=rngs, **keywords(variant), **kwargs)``.
        """
        classes = self.num_classes if num_classes is None else num_classes
        return self.module(classes, rngs=rngs, **{**self.keywords(variant), **kwargs})


_MODELS: dict[str, ModelEntry] = {}


def _register(*entries: ModelEntry) -> None:
    for entry in entries:
        taken = {*_MODELS, *(a for e in _MODELS.values() for a in e.aliases)}
        clash = sorted(taken & {entry.name, *entry.aliases})
        if clash or entry.name in entry.aliases:
            raise ValueError(f"model name(s) registered twice: {', '.join(clash or [entry.name])}")
        _MODELS[entry.name] = entry


# The table. The `train` variants are the CIFAR ports that `python -m jaxconv.train` has always
# trained; its `--model` list is this order.
_register(
    ModelEntry(
        "nin",
        NiN,
        "NiN (Lin et al. 2013, CIFAR-10 model), trained with BatchNorm after every conv",
        input_size=32,
        num_classes=10,
        train={"batch_norm": True},
    ),
    ModelEntry(
        "googlenet",
        GoogLeNet,
        "GoogLeNet (Szegedy et al. 2015), trained with BN and the CIFAR stem (3x3 conv, no "
        "early pools), auxiliary classifiers weighted by --aux-weight",
        train={"batch_norm": True, "stem": "cifar"},
        torchvision=TorchvisionLayout(
            "fc.weight",
            TORCHVISION_GOOGLENET,
            aux_heads=("aux1.", "aux2."),
            aux_classifier="fc2",
            transform_input=True,
        ),
    ),
    ModelEntry(
        "inception-bottleneck",
        MiniInception,
        "MiniInception: a small Inception net for 32x32, 1x1 reduce before 5x5",
        input_size=32,
        num_classes=10,
        options={"bottleneck": True},
    ),
    ModelEntry(
        "inception-direct5x5",
        MiniInception,
        "the same without the 1x1 reduce before each 5x5",
        input_size=32,
        num_classes=10,
        options={"bottleneck": False},
    ),
    ModelEntry(
        "nin-paper",
        NiN,
        "NiN as in the paper, without BN (slow to start training from scratch)",
        input_size=32,
        num_classes=10,
    ),
    ModelEntry(
        "resnet18",
        ResNet18,
        "ResNet-18 (He et al. 2016, torchvision's v1.5), trained with the CIFAR stem (3x3/1 "
        "conv, no max pool)",
        train={"stem": "cifar"},
        torchvision=TorchvisionLayout("fc.weight"),
    ),
    ModelEntry(
        "resnet34",
        ResNet34,
        "ResNet-34: ResNet-18's basic blocks, (3, 4, 6, 3) of them",
        train={"stem": "cifar"},
        torchvision=TorchvisionLayout("fc.weight"),
    ),
    ModelEntry(
        "resnet50",
        ResNet50,
        "ResNet-50: bottleneck blocks, (3, 4, 6, 3) of them",
        train={"stem": "cifar"},
        torchvision=TorchvisionLayout("fc.weight"),
    ),
    ModelEntry(
        "resnet101",
        ResNet101,
        "ResNet-101: ResNet-50's bottlenecks, (3, 4, 23, 3) of them",
        train={"stem": "cifar"},
        torchvision=TorchvisionLayout("fc.weight"),
    ),
    ModelEntry(
        "resnet152",
        ResNet152,
        "ResNet-152: ResNet-50's bottlenecks, (3, 8, 36, 3) of them",
        train={"stem": "cifar"},
        torchvision=TorchvisionLayout("fc.weight"),
    ),
    ModelEntry(
        "resnext50_32x4d",
        ResNeXt50_32x4d,
        "ResNeXt-50 32x4d (Xie et al. 2017): ResNet-50 with 32 groups in each 3x3",
        train={"stem": "cifar"},
        torchvision=TorchvisionLayout("fc.weight"),
    ),
    ModelEntry(
        "wide_resnet50_2",
        WideResNet50_2,
        "Wide ResNet-50-2: ResNet-50 with each bottleneck's 3x3 twice as wide",
        train={"stem": "cifar"},
        torchvision=TorchvisionLayout("fc.weight"),
    ),
    ModelEntry(
        "mobilenetv2",
        MobileNetV2,
        "MobileNetV2 (Sandler et al. 2018), trained with the CIFAR stem (stride 1 in the stem "
        "and the first stride-2 row)",
        train={"stem": "cifar"},
        torchvision=TorchvisionLayout("classifier.1.weight"),
        aliases=("mobilenet_v2",),  # torchvision's name
    ),
)

#: Canonical name → :class:`ModelEntry`, in the order ``--model`` lists them (read-only).
MODELS: Mapping[str, ModelEntry] = types.MappingProxyType(_MODELS)


def canonical_name(name: str, names: Iterable[str] | None = None, *, argument: str = "name") -> str:
    """The canonical name of ``name`` (itself, or the model it is an alias of).

    Args:
      name: a model's name or alias.
      names: the canonical names accepted (default: every model of :data:`MODELS`); aliases
        of these are accepted too.
      argument: the caller's argument, named in the error.

    Returns:
      the canonical name, one of ``names``.

    Raises:
      ValueError: ``name`` is none of ``names`` nor an alias of one; the message lists them.

    Examples:
      >>> from jaxconv.models import canonical_name
      >>> canonical_name("mobilenet_v2"), canonical_name("resnet50")
      ('mobilenetv2', 'resnet50')
      >>> canonical_name("vgg", ["resnet18", "mobilenetv2"])
      Traceback (most recent call last):
      ...
      ValueError: `name` must be one of resnet18, mobilenetv2 (or an alias: mobilenet_v2), got 'vgg'
    """
    known = tuple(MODELS if names is None else names)
    aliases = {alias: e.name for e in MODELS.values() for alias in e.aliases if e.name in known}
    if isinstance(name, str) and aliases.get(name, name) in known:
        return aliases.get(name, name)
    listed = f" (or an alias: {', '.join(aliases)})" if aliases else ""
    raise ValueError(f"`{argument}` must be one of {', '.join(known)}{listed}, got {name!r}")


def model_entry(name: str, *, argument: str = "name") -> ModelEntry:
    """The :class:`ModelEntry` of ``name`` (a canonical name or an alias).

    Args:
      name: a model's name or alias.
      argument: the caller's argument, named in the error.

    Returns:
      the entry in :data:`MODELS`.

    Raises:
      ValueError: an unknown ``name``; the message lists the known ones.

    Examples:
      >>> from flax import nnx
      >>> from jaxconv.models import model_entry
      >>> entry = model_entry("googlenet")
      >>> entry.module.__name__, entry.input_size, entry.torchvision.aux_heads
      ('GoogLeNet', 224, ('aux1.', 'aux2.'))
      >>> model = nnx.eval_shape(lambda: entry.build(variant="torchvision", rngs=nnx.Rngs(0)))
      >>> model.pool4.window, model.fc.out_features   # torchvision's 2×2 pool4; 1000 classes
      ((2, 2), 1000)
    """
    return MODELS[canonical_name(name, argument=argument)]
