"""Models built from :mod:`jaxconv.nn`, each with its widths in one table that cites the paper.

- :class:`GoogLeNet` — Szegedy et al. 2015, Table 1 (:data:`GOOGLENET_INCEPTION`).
- :class:`NiN` — Lin et al. 2013, the CIFAR-10 model (:data:`NIN_CIFAR10`).
- :class:`ResNet50` (18/34/101/152) — He et al. 2016, Table 1 (:data:`RESNET_LAYERS`), in
  torchvision's v1.5 layout (stride on the 3×3).
- :class:`MobileNetV2` — Sandler et al. 2018, Table 2 (:data:`MOBILENETV2_BLOCKS`).
- :class:`MiniInception` — a small Inception net for 32×32 inputs, with or without the 1×1
  reduce before each 5×5 (:data:`MINI_INCEPTION`).

:func:`from_torchvision` builds torchvision's GoogLeNet, ResNet-18/50 or MobileNetV2 and loads
a torchvision ``state_dict``; :func:`to_torchvision_state_dict` goes back.

Models take NHWC input; train/eval behaviour follows ``model.train()`` / ``model.eval()``.
Importing ``jaxconv.models`` imports Flax.
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
from jaxconv.models._torchvision import from_torchvision as from_torchvision
from jaxconv.models._torchvision import to_torchvision_state_dict as to_torchvision_state_dict

__all__ = [
    "GOOGLENET_INCEPTION",
    "MINI_INCEPTION",
    "MOBILENETV2_BLOCKS",
    "NIN_CIFAR10",
    "RESNET_LAYERS",
    "RESNET_WIDTHS",
    "AuxClassifier",
    "GoogLeNet",
    "GoogLeNetOutputs",
    "MiniInception",
    "MobileNetV2",
    "NiN",
    "ResNet",
    "ResNet18",
    "ResNet34",
    "ResNet50",
    "ResNet101",
    "ResNet152",
    "aux_pool_geometry",
    "from_torchvision",
    "make_divisible",
    "minimum_input_size",
    "stage_sizes",
    "to_torchvision_state_dict",
]
