"""Datasets and the deterministic batch stream of ``jaxconv.train``."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from jaxconv.train import (
    CLASS_NAMES,
    augment,
    batch_indices,
    eval_batches,
    load_cifar10,
    load_dataset,
    load_npz,
    synthetic_dataset,
    train_batch,
)


@pytest.fixture(scope="module")
def small():
    return synthetic_dataset(200, 50, seed=3)


# --------------------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic_and_seeded(small):
    again = synthetic_dataset(200, 50, seed=3)
    other = synthetic_dataset(200, 50, seed=4)
    assert np.array_equal(small.train_images, again.train_images)
    assert np.array_equal(small.test_labels, again.test_labels)
    assert not np.array_equal(small.train_images, other.train_images)
    assert small.fingerprint() == again.fingerprint() != other.fingerprint()


def test_synthetic_shapes_balance_and_split(small):
    assert small.train_images.shape == (200, 32, 32, 3)
    assert small.train_images.dtype == np.uint8
    assert small.num_classes == len(CLASS_NAMES) == 10
    assert np.bincount(small.train_labels, minlength=10).tolist() == [20] * 10
    # the test split is an independent draw, not a copy of training images
    assert not any((small.test_images[0] == img).all() for img in small.train_images)
    assert synthetic_dataset(8, 4, image_size=48).train_images.shape == (8, 48, 48, 3)


def test_synthetic_stats_match_the_images(small):
    x = small.train_images.reshape(-1, 3).astype(np.float64) / 255
    np.testing.assert_allclose(small.mean, x.mean(0), atol=1e-6)
    np.testing.assert_allclose(small.std, x.std(0), atol=1e-6)


def test_synthetic_classes_are_separable_but_not_by_colour(small):
    # Learnable: class means of a simple shape feature (the fraction of pixels far from the
    # image's median colour) differ between a filled and an outlined shape...
    data = synthetic_dataset(400, 10, seed=1, noise=0.0)
    x = data.train_images.astype(np.float32)
    far = np.abs(x - np.median(x, axis=(1, 2), keepdims=True)).max(-1) > 60
    fill = far.mean(axis=(1, 2))
    disc, ring = fill[data.train_labels == 3].mean(), fill[data.train_labels == 4].mean()
    assert disc > 1.5 * ring
    # ...while the mean colour carries no class information.
    colour = x.mean(axis=(1, 2))
    per_class = np.stack([colour[data.train_labels == c].mean(0) for c in range(10)])
    assert per_class.std(0).max() < 0.25 * colour.std(0).min()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"train_size": 0}, r"`train_size` must be a positive int, got 0"),
        ({"test_size": -1}, r"`test_size` must be a positive int, got -1"),
        ({"image_size": 8}, r"`image_size` must be an int >= 16, got 8"),
        ({"noise": -0.1}, r"`noise` must be >= 0, got -0.1"),
    ],
)
def test_synthetic_rejects_bad_sizes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        synthetic_dataset(**{"train_size": 4, "test_size": 4, **kwargs})


# --------------------------------------------------------------------------- batches


def test_batch_indices_cover_each_epoch_once_in_a_fresh_order():
    n, b = 23, 5  # 4 batches per epoch, 3 images dropped per epoch
    epoch0 = np.concatenate([batch_indices(n, b, 7, s) for s in range(4)])
    epoch1 = np.concatenate([batch_indices(n, b, 7, s) for s in range(4, 8)])
    assert len(set(epoch0.tolist())) == 20 and len(set(epoch1.tolist())) == 20
    assert not np.array_equal(epoch0, epoch1)
    assert np.array_equal(batch_indices(n, b, 7, 5), batch_indices(n, b, 7, 5))
    assert not np.array_equal(batch_indices(n, b, 7, 0), batch_indices(n, b, 8, 0))
    with pytest.raises(
        ValueError,
        match=r"`batch_size` \(=30\) must not exceed the training "
        r"set \(=23 images\)",
    ):
        batch_indices(n, 30, 0, 0)


def test_augment_is_a_padded_crop_or_its_mirror(rng):
    x = rng.integers(1, 256, (16, 8, 8, 2), dtype=np.uint8)
    out = augment(x, seed=5, step=9)
    assert np.array_equal(out, augment(x, seed=5, step=9))
    assert not np.array_equal(out, augment(x, seed=5, step=10))
    padded = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)))
    flips = 0
    for i in range(len(x)):
        windows = [
            (padded[i, dy : dy + 8, dx : dx + 8], flip)
            for dy in range(9)
            for dx in range(9)
            for flip in (False, True)
        ]
        matches = [flip for w, flip in windows if np.array_equal(out[i], w[:, ::-1] if flip else w)]
        assert matches, f"image {i} is not a crop of the padded image"
        flips += matches[0]
    assert 0 < flips < len(x)


def test_train_batch_normalizes_and_follows_the_step(small):
    x, y = train_batch(small, 50, seed=0, step=1, augmentation=False)
    idx = batch_indices(200, 50, 0, 1)
    assert np.array_equal(y, small.train_labels[idx])
    expected = (small.train_images[idx] / 255.0 - small.mean) / small.std
    np.testing.assert_allclose(x, expected, atol=1e-5)
    whole, _ = train_batch(small, 200, seed=0, step=0, augmentation=False)
    np.testing.assert_allclose(whole.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(whole.std(axis=(0, 1, 2)), 1, atol=1e-3)


def test_eval_batches_visit_the_test_split_once(small):
    batches = list(eval_batches(small, 16))
    assert [len(m) for _, _, m in batches] == [16] * 4
    mask = np.concatenate([m for _, _, m in batches])
    labels = np.concatenate([y for _, y, _ in batches])
    assert mask.sum() == 50 and mask[50:].sum() == 0
    assert np.array_equal(labels[:50], small.test_labels)


# --------------------------------------------------------------------------- CIFAR-10 pickles


def _write_cifar(directory, rng, sizes=(3, 2, 2, 2, 2), test=4):
    os.makedirs(directory, exist_ok=True)
    batches = {}
    for i, n in enumerate((*sizes, test)):
        name = f"data_batch_{i + 1}" if i < len(sizes) else "test_batch"
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        with open(os.path.join(directory, name), "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": labels}, f)
        batches[name] = (data, labels)
    return batches


def test_cifar10_pickles_load_channels_last(tmp_path, rng):
    batches = _write_cifar(tmp_path / "cifar-10-batches-py", rng)
    for where in (tmp_path / "cifar-10-batches-py", tmp_path):  # the folder or its parent
        data = load_cifar10(str(where))
        assert data.name == "cifar10" and data.num_classes == 10
        assert data.train_images.shape == (11, 32, 32, 3)
        assert data.test_images.shape == (4, 32, 32, 3)
        raw, labels = batches["data_batch_1"]
        # CIFAR rows are 1024 red, then 1024 green, then 1024 blue values, row-major.
        assert data.train_images[0, 2, 5, 1] == raw[0, 1024 + 2 * 32 + 5]
        assert data.train_images[0, 31, 0, 2] == raw[0, 2048 + 31 * 32]
        assert data.train_labels[:3].tolist() == labels
    assert load_dataset(str(tmp_path)).name == "cifar10"


def test_cifar10_errors_name_the_path(tmp_path, rng):
    missing = tmp_path / "nope"
    with pytest.raises(ValueError, match=rf"`data` directory {missing} does not exist"):
        load_cifar10(str(missing))
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        ValueError,
        match=r"is not CIFAR-10: it needs data_batch_1..5 and "
        r"test_batch",
    ):
        load_cifar10(str(tmp_path / "empty"))
    _write_cifar(tmp_path / "bad", rng)
    (tmp_path / "bad" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match=r"test_batch is not a CIFAR-10 python batch"):
        load_cifar10(str(tmp_path / "bad"))
    with open(tmp_path / "bad" / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(
        ValueError,
        match=r"'data' must be uint8 \[N, 3072\], got uint8 "
        r"\(2, 100\)",
    ):
        load_cifar10(str(tmp_path / "bad"))


# --------------------------------------------------------------------------- npz


def test_npz_keys_and_holdout(tmp_path, rng):
    images = rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(20) % 4
    np.savez(tmp_path / "a.npz", images=images, labels=labels)
    a = load_npz(str(tmp_path / "a.npz"))
    assert (len(a.train_labels), len(a.test_labels), a.num_classes) == (18, 2, 4)
    assert np.array_equal(a.test_images, images[18:])
    np.savez(
        tmp_path / "b.npz",
        x_train=images[:15],
        y_train=labels[:15, None],
        x_test=images[15:] / 255.0,
        y_test=labels[15:],
    )
    b = load_npz(str(tmp_path / "b.npz"))
    assert np.array_equal(b.test_images, images[15:])  # floats in [0, 1] come back as uint8
    assert b.train_labels.shape == (15,)
    np.savez(tmp_path / "gray.npz", images=images[..., :1], labels=labels)
    gray = load_npz(str(tmp_path / "gray.npz"))
    assert gray.train_images.shape == (18, 8, 8, 3)
    assert np.array_equal(gray.train_images[..., 2], images[:18, ..., 0])
    assert load_dataset(str(tmp_path / "b.npz")).name == "npz"


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"pics": np.zeros((2, 4, 4, 3), np.uint8)}, r"needs keys 'images' and 'labels'"),
        (
            {"images": np.zeros((2, 4, 4), np.uint8), "labels": np.zeros(2, int)},
            r"images must be uint8 \[N, H, W, C\] with C in \(1, 3\), got shape \(2, 4, 4\)",
        ),
        (
            {"images": np.zeros((2, 4, 4, 3), np.uint8), "labels": np.zeros(3, int)},
            r"labels must be integers \[N\] with N = 2 images, got int64 shape \(3,\)",
        ),
        (
            {"images": np.full((2, 4, 4, 3), 7.0), "labels": np.zeros(2, int)},
            r"images must be uint8 in \[0, 255\] or float in \[0, 1\], got dtype float64",
        ),
        (
            {"images": np.zeros((2, 4, 4, 3), np.uint8), "labels": np.array([0, -1])},
            r"labels must be non-empty and >= 0",
        ),
    ],
)
def test_npz_rejects_malformed_files(tmp_path, arrays, match):
    np.savez(tmp_path / "f.npz", **arrays)
    with pytest.raises(ValueError, match=match):
        load_npz(str(tmp_path / "f.npz"))


def test_npz_and_dispatch_errors_name_the_path(tmp_path):
    with pytest.raises(ValueError, match=r"`data` file .*missing.npz does not exist"):
        load_npz(str(tmp_path / "missing.npz"))
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match=r"text.npz is not a valid image archive \(an .npz"):
        load_npz(str(tmp_path / "text.npz"))


def test_a_corrupt_npz_is_not_an_image_archive_never_pickle_advice(tmp_path):
    random_bytes = tmp_path / "random.npz"
    random_bytes.write_bytes(np.random.default_rng(0).bytes(4096))
    truncated = tmp_path / "truncated.npz"
    np.savez(truncated, images=np.zeros((10, 8, 8, 3), np.uint8), labels=np.arange(10) % 3)
    truncated.write_bytes(truncated.read_bytes()[:1000])
    for path in (random_bytes, truncated):
        with pytest.raises(ValueError, match=r"is not a valid image archive") as info:
            load_npz(str(path))
        assert "pickle" not in str(info.value), str(info.value)
    (tmp_path / "data.csv").write_text("1,2")
    with pytest.raises(
        ValueError,
        match=r"`data` .*data.csv must be a CIFAR-10 directory or "
        r"an .npz file",
    ):
        load_dataset(str(tmp_path / "data.csv"))
    with pytest.raises(ValueError, match=r"`data` path .*gone does not exist"):
        load_dataset(str(tmp_path / "gone"))
