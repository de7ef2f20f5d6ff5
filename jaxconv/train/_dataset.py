"""The :class:`Dataset`: an image-classification dataset in host memory (uint8 NHWC images,
int32 labels)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Dataset", "make_dataset"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """An image-classification dataset held in host memory.

    Attributes:
      name: where it came from (``"synthetic"``, ``"cifar10"`` or ``"npz"``).
      train_images: ``uint8[N, H, W, C]``.
      train_labels: ``int32[N]`` in ``[0, num_classes)``.
      test_images: ``uint8[M, H, W, C]``.
      test_labels: ``int32[M]``.
      num_classes: number of classes.
      mean: ``float32[C]`` per-channel mean of the training images, in ``[0, 1]`` units.
      std: ``float32[C]`` per-channel standard deviation, in ``[0, 1]`` units.
      source: a description of the source (path, or the generator's seed and sizes).

    Examples:
      >>> from jaxconv.train import synthetic_dataset
      >>> data = synthetic_dataset(10, 5)
      >>> data.image_shape, data.num_classes, sorted(data.fingerprint())
      ((32, 32, 3), 10, ['digest', 'image_shape', 'name', 'num_classes', 'test', 'train'])
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    mean: np.ndarray
    std: np.ndarray
    source: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of one image."""
        h, w, c = self.train_images.shape[1:]
        return (h, w, c)

    def fingerprint(self) -> dict[str, Any]:
        """A JSON-able identity: checkpoints refuse to resume on a different dataset."""
        digest = hashlib.sha256()
        for array in (self.train_labels, self.test_labels, self.train_images[:64]):
            digest.update(np.ascontiguousarray(array).tobytes())
        return {
            "name": self.name,
            "train": len(self.train_labels),
            "test": len(self.test_labels),
            "image_shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "digest": digest.hexdigest()[:16],
        }


def make_dataset(
    name: str,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    source: str,
    num_classes: int | None = None,
) -> Dataset:
    """A :class:`Dataset` from ``(images, labels)`` splits; the channel moments come from the
    training images (the loaders' shared last step)."""
    (x, y), (xt, yt) = train, test
    # Exact per-channel moments from a 256-bin histogram: no float copy of the images.
    values = np.arange(256, dtype=np.float64) / 255.0
    channels = x.reshape(-1, x.shape[-1])
    hist = np.stack([np.bincount(channels[:, c], minlength=256) for c in range(x.shape[-1])])
    hist = hist / hist.sum(axis=1, keepdims=True)
    mean = hist @ values
    std = np.sqrt(np.maximum(hist @ values**2 - mean**2, 0.0))
    classes = num_classes if num_classes is not None else int(max(y.max(), yt.max())) + 1
    return Dataset(
        name=name,
        train_images=x,
        train_labels=y.astype(np.int32),
        test_images=xt,
        test_labels=yt.astype(np.int32),
        num_classes=classes,
        mean=mean.astype(np.float32),
        std=np.maximum(std, 1e-3).astype(np.float32),
        source=source,
    )
