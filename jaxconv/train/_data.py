"""Datasets and the deterministic batch stream.

Three sources, one :class:`Dataset` shape (uint8 NHWC images, int32 labels):

- :func:`synthetic_dataset` — the embedded, download-free default: ten classes of oriented
  patterns and shapes with random colours, positions, sizes, tilt and pixel noise.
- :func:`load_cifar10` — the CIFAR-10 "python version" pickles (``data_batch_1..5``,
  ``test_batch``) from a local directory.
- :func:`load_npz` — an ``.npz`` holding images and labels.

Batches are a pure function of ``(seed, step)`` (:func:`train_batch`): the epoch's permutation
comes from ``(seed, epoch)`` and the random crop + flip from ``(seed, step)``, so the data
position of a run is just its step number — nothing else needs checkpointing.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CLASS_NAMES",
    "Dataset",
    "augment",
    "batch_indices",
    "eval_batches",
    "load_cifar10",
    "load_dataset",
    "load_npz",
    "synthetic_dataset",
    "train_batch",
]

#: Class names of the embedded dataset, in label order.
CLASS_NAMES = (
    "horizontal-stripes", "vertical-stripes", "diagonal-stripes", "disc", "ring",
    "square-outline", "plus", "cross", "triangle-up", "triangle-down",
)
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"
# Random-crop padding of the standard CIFAR recipe (pad 4, crop back, flip).
_CROP_PAD = 4


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
        return tuple(self.train_images.shape[1:])  # type: ignore[return-value]

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


def _make(name: str, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
          source: str, num_classes: int | None = None) -> Dataset:
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


# --------------------------------------------------------------------------- synthetic data

def _render(labels: np.ndarray, rng: np.random.Generator, size: int, noise: float) -> np.ndarray:
    """Draws one image per label; returns ``uint8[N, size, size, 3]``."""
    n = len(labels)
    s = size / 32.0  # every length below is for 32×32 and scales with the image
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)

    def draw(low: float, high: float) -> np.ndarray:
        return rng.uniform(low, high, (n, 1, 1)).astype(np.float32)

    cx, cy = draw(10 * s, size - 10 * s), draw(10 * s, size - 10 * s)
    tilt = np.deg2rad(draw(-12, 12))
    r, width, period = draw(4.5 * s, 9 * s), draw(1.2 * s, 2.5 * s), draw(4 * s, 7 * s)
    phase = draw(0, 2 * np.pi)
    diagonal = np.where(draw(0, 1) < 0.5, 45.0, -45.0).astype(np.float32)
    # A small distractor blob of its own colour, in half of the images, anywhere.
    blob_x, blob_y, blob_r = draw(0, size), draw(0, size), draw(1.5 * s, 3 * s)
    blob_r = np.where(draw(0, 1) < 0.5, blob_r, -1.0)
    mask = np.zeros((n, size, size), dtype=bool)
    for cls in range(len(CLASS_NAMES)):
        sel = labels == cls
        u, v = xx - cx[sel], yy - cy[sel]
        co, si = np.cos(tilt[sel]), np.sin(tilt[sel])
        a, b = u * co + v * si, v * co - u * si  # the shape's tilted axes (b points down)
        rr, ww = r[sel], width[sel] / 2 + 0.5
        if cls < 3:
            angle = np.deg2rad((0.0, 90.0)[cls] if cls < 2 else diagonal[sel])
            across = a * np.sin(angle) + b * np.cos(angle)
            m = np.sin(2 * np.pi * across / period[sel] + phase[sel]) > 0
            m &= a * a + b * b <= (rr + 4 * s) ** 2  # stripes fill a disc a bit larger
        elif cls in (3, 4):
            dist = np.sqrt(a * a + b * b)
            m = (dist <= rr) & (dist >= (rr - 2 * ww if cls == 4 else -1))
        elif cls == 5:
            box = np.maximum(np.abs(a), np.abs(b))
            m = (box <= rr) & (box >= rr - 2 * ww + 1)
        elif cls in (6, 7):
            p, q = (a, b) if cls == 6 else ((a + b) / np.sqrt(2), (a - b) / np.sqrt(2))
            m = ((np.abs(p) <= ww) & (np.abs(q) <= rr)) | ((np.abs(q) <= ww) & (np.abs(p) <= rr))
        else:  # an isosceles triangle of height 2r and base 2r, apex up (8) or down (9)
            apex = b if cls == 8 else -b
            m = (np.abs(b) <= rr) & (np.abs(a) <= (apex + rr) / 2)
        mask[sel] = m
    blob = (xx - blob_x) ** 2 + (yy - blob_y) ** 2 <= blob_r * np.abs(blob_r)
    background = rng.uniform(0.0, 1.0, (n, 1, 1, 3)).astype(np.float32)
    # The foreground differs from the background by at least 0.35 in every channel it moves.
    delta = rng.uniform(0.35, 0.8, (n, 1, 1, 3)) * rng.choice([-1.0, 1.0], (n, 1, 1, 3))
    foreground = np.where(np.abs(background + delta - 0.5) <= 0.5, background + delta,
                          background - delta).astype(np.float32)
    blob_colour = rng.uniform(0.0, 1.0, (n, 1, 1, 3)).astype(np.float32)
    gradient = rng.uniform(-0.15, 0.15, (n, 1, 1, 3)).astype(np.float32)
    image = background + gradient * (xx[None, :, :, None] / size - 0.5)
    image = np.where(blob[..., None], blob_colour, image)
    image = np.where(mask[..., None], foreground, image)
    image += noise * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


def synthetic_dataset(train_size: int = 10_000, test_size: int = 1_000, *, seed: int = 0,
                      image_size: int = 32, noise: float = 0.12) -> Dataset:
    """The embedded 10-class RGB dataset, generated procedurally (no download).

    Classes (:data:`CLASS_NAMES`): horizontal, vertical and diagonal stripes, disc, ring, square
    outline, plus, cross, triangle up, triangle down — each with random colours, position, size,
    tilt (±12°), a background gradient and Gaussian pixel noise. Every class is closed under a
    horizontal flip, so the flip augmentation never changes a label. The test split is drawn
    from an independent stream of the same seed.

    Args:
      train_size: training images (classes balanced to within one).
      test_size: test images.
      seed: the generator seed; the same seed gives the same bytes.
      image_size: height = width of the images (32 like CIFAR-10).
      noise: standard deviation of the pixel noise, in ``[0, 1]`` units.

    Returns:
      a :class:`Dataset` with ``uint8[N, image_size, image_size, 3]`` images.

    Raises:
      ValueError: a size is not positive or ``image_size`` is below 16.

    Examples:
      >>> from jaxconv.train import synthetic_dataset
      >>> data = synthetic_dataset(20, 10, seed=0)
      >>> data.train_images.shape, data.train_images.dtype.name, data.num_classes
      ((20, 32, 32, 3), 'uint8', 10)
      >>> bool((synthetic_dataset(20, 10, seed=0).train_images == data.train_images).all())
      True
    """
    for name, value in (("train_size", train_size), ("test_size", test_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive int, got {value!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 16:
        raise ValueError(f"`image_size` must be an int >= 16, got {image_size!r}")
    if not noise >= 0:
        raise ValueError(f"`noise` must be >= 0, got {noise!r}")
    splits = []
    for stream, count in ((0, train_size), (1, test_size)):
        rng = np.random.default_rng([seed, stream])
        labels = rng.permutation(np.arange(count) % len(CLASS_NAMES)).astype(np.int32)
        chunks = [_render(labels[i:i + 2048], rng, image_size, noise)
                  for i in range(0, count, 2048)]
        splits.append((np.concatenate(chunks), labels))
    source = (f"synthetic(seed={seed}, train={train_size}, test={test_size}, "
              f"size={image_size}, noise={noise})")
    return _make("synthetic", splits[0], splits[1], source, num_classes=len(CLASS_NAMES))


# --------------------------------------------------------------------------- files on disk

def _check_images(images: Any, labels: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"{where}: images must be uint8 [N, H, W, C] with C in (1, 3), "
                         f"got shape {images.shape}")
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.floating) or images.min() < 0 or images.max() > 1:
            raise ValueError(f"{where}: images must be uint8 in [0, 255] or float in [0, 1], "
                             f"got dtype {images.dtype.name}")
        images = np.rint(images * 255).astype(np.uint8)
    labels = labels.reshape(-1) if labels.ndim == 2 and labels.shape[1] == 1 else labels
    if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype,
                                                                           np.integer):
        raise ValueError(f"{where}: labels must be integers [N] with N = {len(images)} images, "
                         f"got {labels.dtype.name} shape {labels.shape}")
    if len(labels) == 0 or labels.min() < 0:
        raise ValueError(f"{where}: labels must be non-empty and >= 0")
    if images.shape[-1] == 1:  # grayscale: repeated to RGB, the models' input
        images = np.repeat(images, 3, axis=-1)
    return images, labels.astype(np.int32)


def _unpickle(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise ValueError(f"`--data` file {path} is not a CIFAR-10 python batch: {err}") from None
    if not isinstance(batch, dict):
        raise ValueError(f"`--data` file {path} is not a CIFAR-10 python batch (not a dict)")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"`--data` file {path} is not a CIFAR-10 python batch: it needs "
                         f"'data' and 'labels', has {sorted(batch)}")
    data = np.asarray(batch["data"])
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.dtype != np.uint8:
        raise ValueError(f"`--data` file {path}: 'data' must be uint8 [N, 3072], got "
                         f"{data.dtype.name} {data.shape}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # CIFAR stores CHW rows
    return {"images": images, "labels": np.asarray(batch["labels"])}


def load_cifar10(path: str) -> Dataset:
    """Loads CIFAR-10 from its python pickles in a local directory (never downloads).

    Args:
      path: a directory holding ``data_batch_1`` … ``data_batch_5`` and ``test_batch`` (the
        extracted ``cifar-10-batches-py``; a parent directory holding that folder also works).
        Missing training batches are allowed as long as one is present.

    Returns:
      a :class:`Dataset` with ``uint8[N, 32, 32, 3]`` images.

    Raises:
      ValueError: the directory or ``test_batch`` is missing, or a file is not a CIFAR-10 batch.

    Examples:
      >>> import os, pickle, tempfile, numpy as np
      >>> from jaxconv.train import load_cifar10
      >>> d = tempfile.mkdtemp()
      >>> for name in ("data_batch_1", "test_batch"):
      ...     batch = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 9]}
      ...     with open(os.path.join(d, name), "wb") as f:
      ...         pickle.dump(batch, f)
      >>> load_cifar10(d).train_images.shape
      (4, 32, 32, 3)
    """
    if not os.path.isdir(path):
        raise ValueError(f"`--data` directory {path} does not exist")
    nested = os.path.join(path, "cifar-10-batches-py")
    if not os.path.exists(os.path.join(path, _CIFAR_TEST)) and os.path.isdir(nested):
        path = nested
    train_files = [os.path.join(path, n) for n in _CIFAR_TRAIN
                   if os.path.exists(os.path.join(path, n))]
    test_file = os.path.join(path, _CIFAR_TEST)
    if not train_files or not os.path.exists(test_file):
        raise ValueError(f"`--data` directory {path} is not CIFAR-10: it needs data_batch_1..5 "
                         f"and test_batch (the python pickles), has {sorted(os.listdir(path))}")
    train = [_unpickle(f) for f in train_files]
    test = _unpickle(test_file)
    x, y = _check_images(np.concatenate([b["images"] for b in train]),
                         np.concatenate([b["labels"] for b in train]), path)
    xt, yt = _check_images(test["images"], test["labels"], test_file)
    return _make("cifar10", (x, y), (xt, yt), os.path.abspath(path), num_classes=10)


def load_npz(path: str, *, test_fraction: float = 0.1) -> Dataset:
    """Loads images and labels from an ``.npz`` file.

    Accepted keys: ``x_train, y_train, x_test, y_test``; or ``images, labels`` (optionally
    with ``test_images, test_labels``; without them the last ``test_fraction`` of the rows is
    held out for testing).

    Args:
      path: the ``.npz`` file. Images are ``uint8[N, H, W, C]`` (or float in ``[0, 1]``) with
        ``C`` in (1, 3) (grayscale is repeated to RGB); labels are integers ``[N]``.
      test_fraction: the held-out share when the file has no test split.

    Returns:
      a :class:`Dataset`; ``num_classes`` is the largest label plus one.

    Raises:
      ValueError: the file is missing, unreadable, or holds the wrong keys, shapes or dtypes.

    Examples:
      >>> import os, tempfile, numpy as np
      >>> from jaxconv.train import load_npz
      >>> f = os.path.join(tempfile.mkdtemp(), "d.npz")
      >>> np.savez(f, images=np.zeros((10, 8, 8, 3), np.uint8), labels=np.arange(10) % 3)
      >>> data = load_npz(f)
      >>> len(data.train_labels), len(data.test_labels), data.num_classes
      (9, 1, 3)
    """
    if not os.path.isfile(path):
        raise ValueError(f"`--data` file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"`--data` file {path} is not a readable .npz: {err}") from None
    if {"x_train", "y_train", "x_test", "y_test"} <= arrays.keys():
        train = _check_images(arrays["x_train"], arrays["y_train"], path)
        test = _check_images(arrays["x_test"], arrays["y_test"], path)
    elif {"images", "labels"} <= arrays.keys():
        images, labels = _check_images(arrays["images"], arrays["labels"], path)
        if {"test_images", "test_labels"} <= arrays.keys():
            train = (images, labels)
            test = _check_images(arrays["test_images"], arrays["test_labels"], path)
        else:
            if not 0 < test_fraction < 1:
                raise ValueError(f"`test_fraction` must be in (0, 1), got {test_fraction!r}")
            cut = len(labels) - max(1, round(len(labels) * test_fraction))
            if cut < 1:
                raise ValueError(f"`--data` file {path} has too few images (={len(labels)}) "
                                 f"to hold out a test split")
            train, test = (images[:cut], labels[:cut]), (images[cut:], labels[cut:])
    else:
        raise ValueError(f"`--data` file {path} needs keys 'images' and 'labels' (or x_train, "
                         f"y_train, x_test, y_test), has {sorted(arrays)}")
    if train[0].shape[1:] != test[0].shape[1:]:
        raise ValueError(f"`--data` file {path}: train images {train[0].shape[1:]} and test "
                         f"images {test[0].shape[1:]} differ in shape")
    return _make("npz", train, test, os.path.abspath(path))


def load_dataset(data: str | None, *, seed: int = 0, train_size: int = 10_000,
                 test_size: int = 1_000) -> Dataset:
    """Picks the loader for ``--data``: ``None`` → synthetic, ``*.npz`` → npz, dir → CIFAR-10.

    Args:
      data: ``None``, a CIFAR-10 directory or an ``.npz`` file.
      seed: the synthetic dataset's seed.
      train_size: synthetic training images.
      test_size: synthetic test images.

    Returns:
      the :class:`Dataset`.

    Raises:
      ValueError: the path is missing or in an unknown format.

    Examples:
      >>> from jaxconv.train import load_dataset
      >>> load_dataset(None, train_size=10, test_size=10).name
      'synthetic'
    """
    if data is None:
        return synthetic_dataset(train_size, test_size, seed=seed)
    if os.path.isdir(data):
        return load_cifar10(data)
    if data.endswith(".npz") or os.path.isfile(data):
        if not data.endswith(".npz"):
            raise ValueError(f"`--data` {data} must be a CIFAR-10 directory or an .npz file")
        return load_npz(data)
    raise ValueError(f"`--data` path {data} does not exist")


# --------------------------------------------------------------------------- batches

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
        raise ValueError(f"`batch_size` (={batch_size}) must not exceed the training set "
                         f"(={num_examples} images)")
    epoch, offset = divmod(step, per_epoch)
    order = np.random.default_rng([seed, 1, epoch]).permutation(num_examples)
    return order[offset * batch_size:(offset + 1) * batch_size]


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
    flip = rng.random(b) < 0.5
    padded = np.pad(images, ((0, 0), (_CROP_PAD,) * 2, (_CROP_PAD,) * 2, (0, 0)))
    rows = dy[:, None] + np.arange(h)[None, :]
    cols = np.where(flip[:, None], np.arange(w)[::-1][None, :], np.arange(w)[None, :])
    cols = dx[:, None] + cols
    return padded[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]


def _normalize(images: np.ndarray, data: Dataset) -> np.ndarray:
    scale = (1.0 / (255.0 * data.std)).astype(np.float32)
    return images.astype(np.float32) * scale - (data.mean / data.std).astype(np.float32)


def train_batch(data: Dataset, batch_size: int, seed: int, step: int, *,
                augmentation: bool = True) -> tuple[np.ndarray, np.ndarray]:
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


def eval_batches(data: Dataset, batch_size: int, *, split: str = "test",
                 limit: int | None = None):
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
        images = all_images[start:min(start + batch_size, n)]
        labels = all_labels[start:min(start + batch_size, n)]
        mask = np.ones(len(labels), np.float32)
        short = batch_size - len(labels)
        if short:
            images = np.concatenate([images, np.zeros((short, *images.shape[1:]), np.uint8)])
            labels = np.concatenate([labels, np.zeros(short, np.int32)])
            mask = np.concatenate([mask, np.zeros(short, np.float32)])
        yield _normalize(images, data), labels, mask
