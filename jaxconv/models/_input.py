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
from jaxconv.convolution.spec import _layout_hint

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
        # The stem as a conv would read it: a kernel whose both channel readings are the
        # model's input channels, so the hint is about `x` alone.
        kernel = (1, in_features, in_features, 1)
        other = '`layout="NCHW"` takes' if channels_last else "the default NHWC takes"
        raise ValueError(
            f"{owner} (layout={layout!r}) expects `x` {form} with C = {in_features} "
            f"(`in_features`; a model's layout is set when it is built: {other} "
            f"{FORMS[not channels_last]}), got {channels} channels in shape {shape}"
            + _layout_hint(shape, kernel, 1, channels_last)
        )
    return x if channels_last else jnp.transpose(x, (0, 2, 3, 1))
