"""The one entry of every model: its ``layout=`` and the checks on the batch it is given.

Each model's ``__call__`` (and ResNet's ``stages``) starts with :func:`model_input`, which
turns the batch into the NHWC array the layers take: an ``layout="NCHW"`` model transposes it
here, once, at the stem. A batch in the other layout gets ``jaxconv.conv``'s layout hint.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxconv import _geometry as geo
from jaxconv._check import check_array

__all__ = ["check_model_layout", "model_input"]

#: The layouts a model takes (2-D images only), its default first.
MODEL_LAYOUTS = ("NHWC", "NCHW")
#: A batch's dims, by whether its channels are last.
FORMS = {True: "[N, H, W, C]", False: "[N, C, H, W]"}


def check_model_layout(layout: Any) -> str:
    """``layout`` as ``"NHWC"`` or ``"NCHW"`` (any case); an error naming it otherwise."""
    channels_last = geo.channels_last(layout)  # the one reading of a layout (type, spellings)
    if layout.upper() not in MODEL_LAYOUTS:
        raise ValueError(f"`layout` of a model must be 'NHWC' or 'NCHW' (2-D), got {layout!r}")
    return MODEL_LAYOUTS[0] if channels_last else MODEL_LAYOUTS[1]


def _hint(shape: tuple[int, ...], in_features: int, channels_last: bool) -> str:
    """Where ``shape`` reads as the other layout, what to do, as ``jaxconv.conv``'s layout
    hint says for a conv; ``""`` otherwise. A model's layout is fixed when it is built, so the
    fix is its constructor's ``layout=`` or a transpose of ``x``."""
    here, there = (1, -1) if channels_last else (-1, 1)
    if shape[here] != in_features or shape[there] == in_features:
        return ""
    if channels_last:
        return (
            f". `x` looks channels-first (NCHW): its dim 1 (={shape[1]}) is the model's input "
            'channels; build the model with `layout="NCHW"` (every model and '
            "`from_torchvision` take it), or give NHWC `x.transpose(0, 2, 3, 1)`"
        )
    return (
        f". `x` looks channels-last (NHWC): its last dim (={shape[-1]}) is the model's input "
        'channels; build the model without `layout="NCHW"`, or give NCHW '
        "`x.transpose(0, 3, 1, 2)`"
    )


def model_input(x: Any, in_features: int, layout: str, owner: str) -> jax.Array:
    """``x`` as the NHWC array a model's layers take.

    Args:
      x: the batch, ``[N, H, W, in_features]`` (``layout="NHWC"``) or ``[N, in_features, H,
        W]`` (``"NCHW"``); anything :func:`jaxconv._check.check_array` accepts.
      in_features: the model's input channels.
      layout: the model's layout (:func:`check_model_layout`'s).
      owner: the model's name, for the errors.

    Returns:
      ``x``, transposed to NHWC for an NCHW model.

    Raises:
      TypeError: ``x`` is not an array.
      ValueError: ``x`` is not rank 4, or its channel dim is not ``in_features`` (with
        ``jaxconv.conv``'s hint when ``x`` looks like the other layout).
    """
    x = check_array(x, "x", empty_batch=True)
    shape = tuple(x.shape)
    channels_last = layout == "NHWC"
    form = FORMS[channels_last]
    if len(shape) != 4:
        one = " (for one image, `x[None]`)" if len(shape) == 3 else ""
        raise ValueError(
            f"{owner} (layout={layout!r}) expects `x` of rank 4 {form}, got rank {len(shape)} "
            f"with shape {shape}{one}"
        )
    channels = shape[-1] if channels_last else shape[1]
    if channels != in_features:
        raise ValueError(
            f"{owner} (layout={layout!r}) expects `x` {form} with C = {in_features} "
            f"(`in_features`), got {channels} channels in shape {shape}"
            + _hint(shape, in_features, channels_last)
        )
    return x if channels_last else jnp.transpose(x, (0, 2, 3, 1))
