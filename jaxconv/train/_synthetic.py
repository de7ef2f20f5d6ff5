"""The embedded, download-free dataset: ten classes of oriented patterns and shapes with random
colours, positions, sizes, tilt and pixel noise, generated from a seed."""

from __future__ import annotations

import numpy as np

from jaxconv.train._dataset import Dataset, make_dataset

__all__ = ["CLASS_NAMES", "synthetic_dataset"]

#: Class names of the embedded dataset, in label order.
CLASS_NAMES = (
    "horizontal-stripes",
    "vertical-stripes",
    "diagonal-stripes",
    "disc",
    "ring",
    "square-outline",
    "plus",
    "cross",
    "triangle-up",
    "triangle-down",
)


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
    foreground = np.where(
        np.abs(background + delta - 0.5) <= 0.5, background + delta, background - delta
    ).astype(np.float32)
    blob_colour = rng.uniform(0.0, 1.0, (n, 1, 1, 3)).astype(np.float32)
    gradient = rng.uniform(-0.15, 0.15, (n, 1, 1, 3)).astype(np.float32)
    image = background + gradient * (xx[None, :, :, None] / size - 0.5)
    image = np.where(blob[..., None], blob_colour, image)
    image = np.where(mask[..., None], foreground, image)
    image += noise * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


def synthetic_dataset(
    train_size: int = 10_000,
    test_size: int = 1_000,
    *,
    seed: int = 0,
    image_size: int = 32,
    noise: float = 0.12,
) -> Dataset:
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
        chunks = [
            _render(labels[i : i + 2048], rng, image_size, noise) for i in range(0, count, 2048)
        ]
        splits.append((np.concatenate(chunks), labels))
    source = (
        f"synthetic(seed={seed}, train={train_size}, test={test_size}, "
        f"size={image_size}, noise={noise})"
    )
    return make_dataset("synthetic", splits[0], splits[1], source, num_classes=len(CLASS_NAMES))
