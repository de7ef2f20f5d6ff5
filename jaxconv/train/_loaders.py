"""Datasets on disk: the CIFAR-10 python pickles and ``.npz`` files; :func:`load_dataset` picks one.

Never downloads anything.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from typing import Any

import numpy as np

from jaxconv.train._dataset import Dataset, make_dataset
from jaxconv.train._synthetic import synthetic_dataset

__all__ = ["load_cifar10", "load_dataset", "load_npz"]

_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"


def _check_images(images: Any, labels: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"{where}: images must be uint8 [N, H, W, C] with C in (1, 3), got shape {images.shape}"
        )
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.floating) or images.min() < 0 or images.max() > 1:
            raise ValueError(
                f"{where}: images must be uint8 in [0, 255] or float in [0, 1], "
                f"got dtype {images.dtype.name}"
            )
        images = np.rint(images * 255).astype(np.uint8)
    labels = labels.reshape(-1) if labels.ndim == 2 and labels.shape[1] == 1 else labels
    if (
        labels.ndim != 1
        or len(labels) != len(images)
        or not np.issubdtype(labels.dtype, np.integer)
    ):
        raise ValueError(
            f"{where}: labels must be integers [N] with N = {len(images)} images, "
            f"got {labels.dtype.name} shape {labels.shape}"
        )
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
        raise ValueError(f"`data` file {path} is not a CIFAR-10 python batch: {err}") from None
    if not isinstance(batch, dict):
        raise ValueError(f"`data` file {path} is not a CIFAR-10 python batch (not a dict)")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise ValueError(
            f"`data` file {path} is not a CIFAR-10 python batch: it needs "
            f"'data' and 'labels', has {sorted(batch)}"
        )
    data = np.asarray(batch["data"])
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.dtype != np.uint8:
        raise ValueError(
            f"`data` file {path}: 'data' must be uint8 [N, 3072], got "
            f"{data.dtype.name} {data.shape}"
        )
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
        raise ValueError(f"`data` directory {path} does not exist")
    nested = os.path.join(path, "cifar-10-batches-py")
    if not os.path.exists(os.path.join(path, _CIFAR_TEST)) and os.path.isdir(nested):
        path = nested
    train_files = [
        os.path.join(path, n) for n in _CIFAR_TRAIN if os.path.exists(os.path.join(path, n))
    ]
    test_file = os.path.join(path, _CIFAR_TEST)
    if not train_files or not os.path.exists(test_file):
        raise ValueError(
            f"`data` directory {path} is not CIFAR-10: it needs data_batch_1..5 "
            f"and test_batch (the python pickles), has {sorted(os.listdir(path))}"
        )
    train = [_unpickle(f) for f in train_files]
    test = _unpickle(test_file)
    x, y = _check_images(
        np.concatenate([b["images"] for b in train]),
        np.concatenate([b["labels"] for b in train]),
        path,
    )
    xt, yt = _check_images(test["images"], test["labels"], test_file)
    return make_dataset("cifar10", (x, y), (xt, yt), os.path.abspath(path), num_classes=10)


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
        raise ValueError(f"`data` file {path} does not exist")
    not_an_archive = (
        f"`data` file {path} is not a valid image archive (an .npz as np.savez writes it: a "
        f"zip of .npy arrays)"
    )
    # Anything but a zip, np.load takes for a pickle and advises allow_pickle=True: wrong for
    # random bytes, and unsafe. So a non-zip is refused before np.load sees it.
    if not zipfile.is_zipfile(path):
        raise ValueError(not_an_archive)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{not_an_archive}: {err}") from None
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
                raise ValueError(
                    f"`data` file {path} has too few images (={len(labels)}) "
                    f"to hold out a test split"
                )
            train, test = (images[:cut], labels[:cut]), (images[cut:], labels[cut:])
    else:
        raise ValueError(
            f"`data` file {path} needs keys 'images' and 'labels' (or x_train, "
            f"y_train, x_test, y_test), has {sorted(arrays)}"
        )
    if train[0].shape[1:] != test[0].shape[1:]:
        raise ValueError(
            f"`data` file {path}: train images {train[0].shape[1:]} and test "
            f"images {test[0].shape[1:]} differ in shape"
        )
    return make_dataset("npz", train, test, os.path.abspath(path))


def load_dataset(
    data: str | None, *, seed: int = 0, train_size: int = 10_000, test_size: int = 1_000
) -> Dataset:
    """Picks the loader for ``data``: ``None`` → synthetic, ``*.npz`` → npz, dir → CIFAR-10.

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
            raise ValueError(f"`data` {data} must be a CIFAR-10 directory or an .npz file")
        return load_npz(data)
    raise ValueError(f"`data` path {data} does not exist")
