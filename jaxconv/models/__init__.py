"""Models built from :mod:`jaxconv.nn`, each with its widths in one table that cites the paper.

- :class:`GoogLeNet` — Szegedy et al. 2015, Table 1 (:data:`GOOGLENET_INCEPTION`).
- :class:`NiN` — Lin et al. 2013, the CIFAR-10 model (:data:`NIN_CIFAR10`).
- :class:`MiniInception` — a small Inception net for 32×32 inputs, with or without the 1×1
  reduce before each 5×5 (:data:`MINI_INCEPTION`).

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
from jaxconv.models._nin import NIN_CIFAR10 as NIN_CIFAR10
from jaxconv.models._nin import NiN as NiN

__all__ = [
    "GOOGLENET_INCEPTION",
    "MINI_INCEPTION",
    "NIN_CIFAR10",
    "AuxClassifier",
    "GoogLeNet",
    "GoogLeNetOutputs",
    "MiniInception",
    "NiN",
    "aux_pool_geometry",
    "minimum_input_size",
    "stage_sizes",
]
