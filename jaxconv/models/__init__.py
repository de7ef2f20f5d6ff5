"""Models built from :mod:`jaxconv.nn`, each with its widths in one table that cites the paper.

- :class:`GoogLeNet` — Szegedy et al. 2015, Table 1 (:data:`GOOGLENET_INCEPTION`).
- :class:`NiN` — Lin et al. 2013, the CIFAR-10 model (:data:`NIN_CIFAR10`).
- :class:`ResNet50` (18/34/101/152) — He et al. 2016, Table 1 (:data:`RESNET_LAYERS`), in
  torchvision's v1.5 layout (stride on the 3×3); :class:`ResNeXt50_32x4d` and
  :class:`WideResNet50_2`, torchvision's grouped and wide ResNet-50s.
- :class:`MobileNetV2` — Sandler et al. 2018, Table 2 (:data:`MOBILENETV2_BLOCKS`).
- :class:`MiniInception` — a small Inception net for 32×32 inputs, with or without the 1×1
  reduce before each 5×5 (:data:`MINI_INCEPTION`).

:func:`from_torchvision` builds torchvision's GoogLeNet, ResNets (18, 34, 50, 101, 152,
ResNeXt-50 32×4d, Wide ResNet-50-2) or MobileNetV2 and loads a torchvision ``state_dict``
through :func:`load_torchvision_state_dict` (which also loads into a model you built, and says
what it loaded: a :class:`LoadResult`); :func:`to_torchvision_state_dict` goes back.

Models take NHWC input, or NCHW when built with ``layout="NCHW"``; train/eval behaviour
follows ``model.train()`` / ``model.eval()``.
Importing ``jaxconv.models`` imports Flax.

The registry (:mod:`jaxconv.models.registry`)
----------------------------------------------
:data:`MODELS` maps each model's one canonical name to its :class:`ModelEntry`:

>>> from flax import nnx
>>> from jaxconv.models import MODELS, model_entry
>>> tuple(MODELS)
('nin', 'googlenet', 'inception-bottleneck', 'inception-direct5x5', 'nin-paper', 'resnet18',
 'resnet34', 'resnet50', 'resnet101', 'resnet152', 'resnext50_32x4d', 'wide_resnet50_2',
 'mobilenetv2')

An entry holds:

- ``name`` and ``aliases``: old spellings that still work (``mobilenet_v2``, torchvision's name
  for ``mobilenetv2``); :func:`canonical_name` resolves them, :func:`model_entry` returns the
  entry. An unknown name is a ``ValueError`` that lists the known ones.
- ``module``: the class. Its variants are keywords for it (``entry.keywords(variant)``,
  ``entry.build(num_classes, variant=..., rngs=...)``):

  - ``"reference"`` (``options``): the paper's model, at ``input_size`` × ``input_size`` with
    ``num_classes`` classes (224 and 1000 for the ImageNet models); the bench times it.
  - ``"train"`` (``options`` + ``train``): what ``python -m jaxconv.train --model NAME``
    trains on 32×32 images: the CIFAR stem, BatchNorm where the paper's model trains poorly
    from scratch without it.
  - ``"torchvision"`` (``options`` + ``torchvision.options``), where torchvision has the
    model: its variant (GoogLeNet's differs from the paper's), which :func:`from_torchvision`
    builds; the :class:`TorchvisionLayout` also names the ``state_dict`` key that counts the
    classes, the auxiliary heads and whether it takes ``transform_input``.

- ``summary``: the line ``--help`` shows.

:func:`from_torchvision`, the training CLI (``jaxconv.train.model_names``), the bench's
``model`` suite and the PyTorch transcriptions in ``bench/torch_models.py`` (keyed by these
names) all read it: adding a model is its own file and one ``ModelEntry`` line in
``registry.py`` (plus, for torchvision weights, its name rewrites in ``_torchvision.py``).

>>> model_entry("mobilenet_v2").name
'mobilenetv2'
>>> model = nnx.eval_shape(lambda: MODELS["resnet18"].build(10, variant="train", rngs=nnx.Rngs(0)))
>>> model.stem, model.num_classes
('cifar', 10)
"""

from jaxconv.models._googlenet import GOOGLENET_INCEPTION as GOOGLENET_INCEPTION
from jaxconv.models._googlenet import AuxClassifier as AuxClassifier
from jaxconv.models._googlenet import GoogLeNet as GoogLeNet
from jaxconv.models._googlenet import GoogLeNetOutputs as GoogLeNetOutputs
from jaxconv.models._googlenet import aux_pool_geometry as aux_pool_geometry
from jaxconv.models._googlenet import minimum_input_size as minimum_input_size
from jaxconv.models._googlenet import stage_sizes as stage_sizes
from jaxconv.models._mini_inception import MINI_INCEPTION as MINI_INCEPTION
from jaxconv.models._mini_inception import MiniInception as MiniInception
from jaxconv.models._mobilenet import MOBILENETV2_BLOCKS as MOBILENETV2_BLOCKS
from jaxconv.models._mobilenet import MobileNetV2 as MobileNetV2
from jaxconv.models._mobilenet import make_divisible as make_divisible
from jaxconv.models._nin import NIN_CIFAR10 as NIN_CIFAR10
from jaxconv.models._nin import NiN as NiN
from jaxconv.models._resnet import RESNET_LAYERS as RESNET_LAYERS
from jaxconv.models._resnet import RESNET_WIDTHS as RESNET_WIDTHS
from jaxconv.models._resnet import ResNet as ResNet
from jaxconv.models._resnet import ResNet18 as ResNet18
from jaxconv.models._resnet import ResNet34 as ResNet34
from jaxconv.models._resnet import ResNet50 as ResNet50
from jaxconv.models._resnet import ResNet101 as ResNet101
from jaxconv.models._resnet import ResNet152 as ResNet152
from jaxconv.models._resnet import ResNeXt50_32x4d as ResNeXt50_32x4d
from jaxconv.models._resnet import WideResNet50_2 as WideResNet50_2
from jaxconv.models._torchvision import LoadResult as LoadResult
from jaxconv.models._torchvision import from_torchvision as from_torchvision
from jaxconv.models._torchvision import (
    load_torchvision_state_dict as load_torchvision_state_dict,
)
from jaxconv.models._torchvision import to_torchvision_state_dict as to_torchvision_state_dict
from jaxconv.models.registry import MODELS as MODELS
from jaxconv.models.registry import ModelEntry as ModelEntry
from jaxconv.models.registry import TorchvisionLayout as TorchvisionLayout
from jaxconv.models.registry import canonical_name as canonical_name
from jaxconv.models.registry import model_entry as model_entry

__all__ = [
    "GOOGLENET_INCEPTION",
    "MINI_INCEPTION",
    "MOBILENETV2_BLOCKS",
    "MODELS",
    "NIN_CIFAR10",
    "RESNET_LAYERS",
    "RESNET_WIDTHS",
    "AuxClassifier",
    "GoogLeNet",
    "GoogLeNetOutputs",
    "LoadResult",
    "MiniInception",
    "MobileNetV2",
    "ModelEntry",
    "NiN",
    "ResNeXt50_32x4d",
    "ResNet",
    "ResNet18",
    "ResNet34",
    "ResNet50",
    "ResNet101",
    "ResNet152",
    "TorchvisionLayout",
    "WideResNet50_2",
    "aux_pool_geometry",
    "canonical_name",
    "from_torchvision",
    "load_torchvision_state_dict",
    "make_divisible",
    "minimum_input_size",
    "model_entry",
    "stage_sizes",
    "to_torchvision_state_dict",
]
