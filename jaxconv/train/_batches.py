"""The deterministic batch stream: batches are a pure function of ``(seed, step)``.

The epoch's permutation comes from ``(seed, epoch)`` and the random crop + flip from
``(seed, step)``, so the data position of a run is just its step number — nothing else needs
checkpointing.
"""

from __future__ import annotations

import numpy as np

from jaxconv.train._dataset import Dataset

__all__ = ["augment", "batch_indices", "eval_batches", "train_batch"]

# Random-crop padding of the standard CIFAR recipe (pad 4, crop back, flip).
_CROP_PAD = 4


def batch_indices(num_examples: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Indices of the training examples in batch ``step`` (0-based).

    Each epoch is a fresh permutation drawn from ``(seed, epoch)``; an epoch has
    ``num_examples // batch_size`` batches (the remainder is dropped that epoch).

    Args:
      num_examples: training set size.
      batch_size: the global batch size.
      seed: the run's seed.
      step: the 0-based step.

    Returns:
      ``int64[batch_size]`` indices.

    Examples:
      >>> from jaxconv.train import batch_indices
      >>> import numpy as np
      >>> first = np.concatenate([batch_indices(10, 5, 0, s) for s in (0, 1)])
      >>> sorted(first.tolist()) == list(range(10))
      True
    """
    per_epoch = num_examples // batch_size
    if per_epoch < 1:
        raise ValueError(
            f"`batch_size` (={batch_size}) must not exceed the training set "
            f"(={num_examples} images)"
        )
    epoch, offset = divmod(step, per_epoch)
    order = np.random.default_rng([seed, 1, epoch]).permutation(num_examples)
    return order[offset * batch_size : (offset + 1) * batch_size]


def augment(images: np.ndarray, seed: int, step: int) -> np.ndarray:
    """Random crop (pad 4, crop back) and horizontal flip, drawn from ``(seed, step)``.

    Args:
      images: ``uint8[B, H, W, C]``.
      seed: the run's seed.
      step: the step the batch belongs to.

    Returns:
      ``uint8[B, H, W, C]``.

    Examples:
      >>> import numpy as np
      >>> from jaxconv.train import augment
      >>> x = np.arange(2 * 8 * 8 * 1, dtype=np.uint8).reshape(2, 8, 8, 1)
      >>> bool((augment(x, 0, 3) == augment(x, 0, 3)).all()), augment(x, 0, 3).shape
      (True, (2, 8, 8, 1))
    """
    b, h, w, _ = images.shape
    rng = np.random.default_rng([seed, 2, step])
    dy, dx = rng.integers(0, 2 * _CROP_PAD + 1, (2, b))
    flip = np.less(rng.random(b), 0.5)
    padded = np.pad(images, ((0, 0), (_CROP_PAD,) * 2, (_CROP_PAD,) * 2, (0, 0)))
    rows = dy[:, None] + np.arange(h)[None, :]
    cols = np.where(flip[:, None], np.arange(w)[::-1][None, :], np.arange(w)[None, :])
    cols = dx[:, None] + cols
    return padded[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]


def _normalize(images: np.ndarray, data: Dataset) -> np.ndarray:
    scale = (1.0 / (255.0 * data.std)).astype(np.float32)
    return images.astype(np.float32) * scale - (data.mean / data.std).astype(np.float32)


def train_batch(
    data: Dataset, batch_size: int, seed: int, step: int, *, augmentation: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The global training batch of ``step``: normalized ``float32`` images and labels.

    Args:
      data: the dataset.
      batch_size: the global batch size.
      seed: the run's seed.
      step: the 0-based step.
      augmentation: random crop + flip.

    Returns:
      ``(float32[B, H, W, C], int32[B])``.

    Examples:
      >>> from jaxconv.train import synthetic_dataset, train_batch
      >>> x, y = train_batch(synthetic_dataset(16, 4), 8, seed=0, step=0)
      >>> x.shape, x.dtype.name, y.shape
      ((8, 32, 32, 3), 'float32', (8,))
    """
    idx = batch_indices(len(data.train_labels), batch_size, seed, step)
    images = data.train_images[idx]
    if augmentation:
        images = augment(images, seed, step)
    return _normalize(images, data), data.train_labels[idx]


def eval_batches(data: Dataset, batch_size: int, *, split: str = "test", limit: int | None = None):
    """Yields a split in order, un-augmented, padded to full batches with a validity mask.

    Args:
      data: the dataset.
      batch_size: the global batch size (the last batch is zero-padded up to it).
      split: ``"test"``, or ``"train"`` (to measure the generalization gap).
      limit: use only the first ``limit`` images of the split.

    Yields:
      ``(float32[B, H, W, C], int32[B], float32[B] mask)``.

    Examples:
      >>> from jaxconv.train import eval_batches, synthetic_dataset
      >>> [int(m.sum()) for _, _, m in eval_batches(synthetic_dataset(4, 5), 4)]
      [4, 1]
      >>> [int(m.sum()) for _, _, m in eval_batches(synthetic_dataset(4, 5), 3, split="train")]
      [3, 1]
    """
    if split not in ("train", "test"):
        raise ValueError(f"`split` must be 'train' or 'test', got {split!r}")
    all_images = data.test_images if split == "test" else data.train_images
    all_labels = data.test_labels if split == "test" else data.train_labels
    n = len(all_labels) if limit is None else min(limit, len(all_labels))
    for start in range(0, n, batch_size):
        images = all_images[start : min(start + batch_size, n)]
        labels = all_labels[start : min(start + batch_size, n)]
        mask = np.ones(len(labels), np.float32)
        short = batch_size - len(labels)
        if short:
            images = np.concatenate([images, np.zeros((short, *images.shape[1:]), np.uint8)])
            labels = np.concatenate([labels, np.zeros(short, np.int32)])
            mask = np.concatenate([mask, np.zeros(short, np.float32)])
        yield _normalize(images, data), labels, mask
