"""Training: data, optax, data parallelism, orbax checkpoints, ``python -m jaxconv.train``.

Importing ``jaxconv.train`` imports Flax, optax and orbax. The pieces compose bottom-up:

- data: :func:`synthetic_dataset` (the embedded default), :func:`load_cifar10`,
  :func:`load_npz`; batches are a pure function of ``(seed, step)`` (:func:`train_batch`).
- optimizer: :func:`make_optimizer` (clipping, masked weight decay, SGD+momentum or AdamW,
  warmup + cosine :func:`learning_rate_schedule`).
- scale: :func:`make_mesh`, :func:`shard_batch` — batch split over a ``"data"`` axis,
  parameters replicated; :func:`initialize_distributed` for multi-host.
- checkpoints: :class:`Checkpoints` over orbax ``CheckpointManager``.
- steps: :func:`classification_loss`, :func:`train_step`, :func:`eval_step` on NNX objects.
- loop: :class:`Trainer` (compiled steps) and :func:`train` (the whole run, resumable).
- models: :func:`register_model` (:func:`registered_model` for a ``with`` block)
  maps ``--model`` names to ``jaxconv.models`` factories; :func:`model_variants` (the CIFAR
  ``train`` ports, torchvision's architectures), :func:`minimum_image_size`.
"""

from jaxconv.train._batches import augment as augment
from jaxconv.train._batches import batch_indices as batch_indices
from jaxconv.train._batches import eval_batches as eval_batches
from jaxconv.train._batches import train_batch as train_batch
from jaxconv.train._checkpoint import CheckpointMismatchError as CheckpointMismatchError
from jaxconv.train._checkpoint import Checkpoints as Checkpoints
from jaxconv.train._checkpoint import PartialCheckpointWarning as PartialCheckpointWarning
from jaxconv.train._checkpoint import state_signature as state_signature
from jaxconv.train._checkpoint import state_to_tree as state_to_tree
from jaxconv.train._checkpoint import tree_to_state as tree_to_state
from jaxconv.train._cli import main as main
from jaxconv.train._config import TrainConfig as TrainConfig
from jaxconv.train._dataset import Dataset as Dataset
from jaxconv.train._loaders import load_cifar10 as load_cifar10
from jaxconv.train._loaders import load_dataset as load_dataset
from jaxconv.train._loaders import load_npz as load_npz
from jaxconv.train._loss import AUX_WEIGHT as AUX_WEIGHT
from jaxconv.train._loss import classification_loss as classification_loss
from jaxconv.train._models import build_model as build_model
from jaxconv.train._models import check_image_size as check_image_size
from jaxconv.train._models import minimum_image_size as minimum_image_size
from jaxconv.train._models import model_names as model_names
from jaxconv.train._models import model_variants as model_variants
from jaxconv.train._models import register_model as register_model
from jaxconv.train._models import registered_model as registered_model
from jaxconv.train._models import torchvision_model_names as torchvision_model_names
from jaxconv.train._optim import decay_mask as decay_mask
from jaxconv.train._optim import learning_rate_schedule as learning_rate_schedule
from jaxconv.train._optim import make_optimizer as make_optimizer
from jaxconv.train._run import RunSummary as RunSummary
from jaxconv.train._run import train as train
from jaxconv.train._sharding import check_batch_size as check_batch_size
from jaxconv.train._sharding import data_sharding as data_sharding
from jaxconv.train._sharding import initialize_distributed as initialize_distributed
from jaxconv.train._sharding import make_mesh as make_mesh
from jaxconv.train._sharding import put_replicated as put_replicated
from jaxconv.train._sharding import replicated as replicated
from jaxconv.train._sharding import shard_batch as shard_batch
from jaxconv.train._steps import eval_metrics as eval_metrics
from jaxconv.train._steps import eval_step as eval_step
from jaxconv.train._steps import train_step as train_step
from jaxconv.train._synthetic import CLASS_NAMES as CLASS_NAMES
from jaxconv.train._synthetic import synthetic_dataset as synthetic_dataset
from jaxconv.train._trainer import Trainer as Trainer

__all__ = [
    "AUX_WEIGHT",
    "CLASS_NAMES",
    "CheckpointMismatchError",
    "Checkpoints",
    "Dataset",
    "PartialCheckpointWarning",
    "RunSummary",
    "TrainConfig",
    "Trainer",
    "augment",
    "batch_indices",
    "build_model",
    "check_batch_size",
    "check_image_size",
    "classification_loss",
    "data_sharding",
    "decay_mask",
    "eval_batches",
    "eval_metrics",
    "eval_step",
    "initialize_distributed",
    "learning_rate_schedule",
    "load_cifar10",
    "load_dataset",
    "load_npz",
    "main",
    "make_mesh",
    "make_optimizer",
    "minimum_image_size",
    "model_names",
    "model_variants",
    "put_replicated",
    "register_model",
    "registered_model",
    "replicated",
    "shard_batch",
    "state_signature",
    "state_to_tree",
    "synthetic_dataset",
    "torchvision_model_names",
    "train",
    "train_batch",
    "train_step",
    "tree_to_state",
]
