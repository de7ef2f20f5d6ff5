"""Inception's bottleneck: :func:`bottleneck`, a 1×1 reduce, an activation, then a k×k conv
(and, optionally, the activation after it)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxconv import _geometry as geo
from jaxconv._check import check_activation, check_array, check_bias, check_same_dtype
from jaxconv.convolution.conv import apply
from jaxconv.convolution.conv1x1 import _check_matrix
from jaxconv.convolution.lowering import Plan
from jaxconv.convolution.lowerings.onednn import block
from jaxconv.convolution.lowerings.onednn.geometry import Geometry
from jaxconv.convolution.lowerings.onednn.lowering import why_not_onednn
from jaxconv.convolution.plan import choose
from jaxconv.convolution.spec import ConvSpec, conv_spec

__all__ = ["bottleneck"]

Array = jax.Array


def _as_kernel(w_reduce: Array, x: Array, layout: str) -> Array:
    """The 1×1 reduce (checked by :func:`check_array`) as a kernel in ``layout``: a matrix
    gets unit spatial dims."""
    channels_last = geo.channels_last(layout)
    if w_reduce.ndim == 2:
        check_same_dtype(x, w_reduce, "w_reduce")
        _check_matrix(x, w_reduce, layout, "w_reduce")
        unit = (1,) * (x.ndim - 2)
        shape = unit + tuple(w_reduce.shape) if channels_last else tuple(w_reduce.shape) + unit
        return w_reduce.reshape(shape)
    kernel = w_reduce.shape[:-2] if channels_last else w_reduce.shape[2:]
    if any(k != 1 for k in kernel):
        raise ValueError(
            f"`w_reduce` must be a 1×1 kernel or a matrix, got shape {tuple(w_reduce.shape)}"
        )
    return w_reduce


def _two_calls(x, k_reduce, b_reduce, w_spatial, b_spatial, spec, spatial, relus, plans):
    """The bottleneck as two convs by their plans (the reduce's, the k×k's), ``relus`` saying
    whether a ReLU follows each: what :func:`_one_call` stands for."""
    after_reduce, after_spatial = (jax.nn.relu if r else None for r in relus)
    h = apply(x, k_reduce, b_reduce, spec, plans[0], after_reduce, b_name="b_reduce")
    return apply(h, w_spatial, b_spatial, spatial, plans[1], after_spatial, b_name="b_spatial")


@functools.partial(jax.custom_jvp, nondiff_argnums=(5, 6, 7, 8))
def _one_call(x, k_reduce, b_reduce, w_spatial, b_spatial, spec, spatial, relus, plans):
    """The bottleneck as one oneDNN call (:mod:`~jaxconv.convolution.lowerings.onednn.block`);
    differentiated as the two convs it computes (:func:`_two_calls`), so every derivative is
    the unfused bottleneck's."""
    del plans
    dtype = spatial.out_dtype
    return block.bottleneck(
        x,
        k_reduce,
        jnp.zeros((spec.out_channels,), dtype) if b_reduce is None else b_reduce,
        w_spatial,
        jnp.zeros((spatial.out_channels,), dtype) if b_spatial is None else b_spatial,
        reduce=Geometry.of(spec),
        spatial=Geometry.of(spatial),
        out_dtype=dtype,
        activation="relu" if relus[0] else None,
        out_activation="relu" if relus[1] else None,
    )


@_one_call.defjvp
def _one_call_jvp(spec, spatial, relus, plans, primals, tangents):
    two_calls = functools.partial(_two_calls, spec=spec, spatial=spatial, relus=relus, plans=plans)
    return jax.jvp(two_calls, primals, tangents)


def _runs_as_one_call(
    spec: ConvSpec,
    spatial: ConvSpec,
    weights: tuple[Any, Any],
    activations: tuple[Any, Any],
    plans: Any,
) -> bool:
    """Whether the bottleneck runs as one oneDNN call: float32 throughout, ReLU or no
    activation after each conv (``activations``), and both convs' plans (``plans``: the
    reduce's, the k×k's) on oneDNN for the forward, as frozen convs can be."""
    if any(a not in (None, jax.nn.relu) for a in activations) or spec.batch == 0:
        return False
    if any(w.dtype != jnp.float32 for w in weights) or any(p.fwd != "onednn" for p in plans):
        return False
    return all(
        s.dtype == s.out_dtype == "float32" and why_not_onednn(s) is None for s in (spec, spatial)
    )


def bottleneck(
    x: Array,
    w_reduce: Array,
    w_spatial: Array,
    b_reduce: Array | None = None,
    b_spatial: Array | None = None,
    *,
    activation: Callable[[Array], Array] | None = jax.nn.relu,
    out_activation: Callable[[Array], Array] | None = None,
    stride: Any = 1,
    padding: geo.Padding = "SAME",
    dilation: Any = 1,
    groups: int = 1,
    layout: str = "NHWC",
    precision: Any = None,
    preferred_element_type: Any = None,
    implementation: str | Plan | None = None,
    reduce_implementation: str | Plan | None = None,
) -> Array:
    """Inception's bottleneck: 1×1 reduce → activation → k×k conv.

    The 1×1 cuts the channels the k×k has to read: on the seed's layer (14×14×480 → 48 5×5
    filters, 16-channel reduce) 112.9M MACs become 1.5M + 3.8M = 5.3M. The output is returned
    before any activation unless ``out_activation`` is given: the caller chooses the block's
    non-linearity, and ``out_activation=jax.nn.relu`` fuses it into the k×k conv (as
    :func:`conv`'s ``activation`` does).

    Args:
      x: ``[N, H, W, C_in]`` (or NCHW with ``layout="NCHW"``; 1-D/3-D also work).
      w_reduce: the 1×1 reduce, either ``[C_in, C_r]`` (``[C_r, C_in]`` for NCHW) or a 1×1 kernel
        in ``w_spatial``'s layout.
      w_spatial: the k×k kernel ``[kh, kw, C_r/groups, C_out]`` (HWIO; OIHW for NCHW).
      b_reduce, b_spatial: optional biases ``[C_r]`` and ``[C_out]``.
      activation: applied after the reduce (None for none).
      out_activation: applied after the k×k conv (None, the default, for none).
      stride, padding, dilation, groups: of the k×k conv (see :func:`conv`).
      layout, precision, preferred_element_type: as for :func:`conv`.
      implementation: lowering of the k×k conv (see :func:`conv`).
      reduce_implementation: lowering of the 1×1, chosen like ``implementation`` (None: the
        plan :func:`jaxconv.convolution.choose` picks for that 1×1 conv).

    On a CPU with the oneDNN extension, a float32 bottleneck whose two convs both go to oneDNN
    (the default there), with ``jax.nn.relu`` or no activation after each, runs as one call:
    with at least two images per core, each core takes whole images and runs the reduce and
    the k×k conv on one image after the other, so the reduced maps never leave its cache
    (:mod:`jaxconv.convolution.lowerings.onednn.block`). NaN propagates as through
    ``jax.nn.relu``; derivatives (any order), ``vmap`` and ``jax.export`` are the two convs'.

    Returns:
      ``[N, H_out, W_out, C_out]``.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxconv
      >>> k = jax.random.split(jax.random.key(0), 3)
      >>> x = jax.random.normal(k[0], (1, 14, 14, 480))
      >>> w_r = jax.random.normal(k[1], (480, 16))
      >>> w_s = jax.random.normal(k[2], (5, 5, 16, 48))
      >>> jaxconv.bottleneck(x, w_r, w_s).shape
      (1, 14, 14, 48)
      >>> y = jaxconv.bottleneck(x, w_r, w_s, out_activation=jax.nn.relu)  # Inception's branch
      >>> bool((y >= 0).all())
      True
    """
    with jax.named_scope("jaxconv.bottleneck"):
        check_activation(activation)
        check_activation(out_activation, "out_activation")
        w_reduce = check_array(w_reduce, "w_reduce")
        x = check_array(x, "x", empty_batch=True)
        k_reduce = _as_kernel(w_reduce, x, layout)
        spec = conv_spec(
            x,
            k_reduce,
            padding="VALID",
            layout=layout,
            precision=precision,
            preferred_element_type=preferred_element_type,
            names={"w": "w_reduce"},
        )
        w_spatial = check_array(w_spatial, "w_spatial")
        if w_spatial.ndim == x.ndim and type(groups) is int:  # other errors are conv's to report
            w_in = w_spatial.shape[-2] if spec.channels_last else w_spatial.shape[1]
            if w_in * groups != spec.out_channels:
                raise ValueError(
                    f"`w_spatial` in-channel dim (={w_in}) times `groups` (={groups}) must "
                    f"equal the reduced channels (={spec.out_channels}) that `w_reduce` "
                    f"{tuple(w_reduce.shape)} produces"
                )
        h_dtype = spec.out_dtype if preferred_element_type is None else w_spatial.dtype
        spatial = conv_spec(
            jax.ShapeDtypeStruct(spec.out_shape, h_dtype),
            w_spatial,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            layout=layout,
            precision=precision,
            preferred_element_type=preferred_element_type,
            names={"w": "w_spatial"},
        )
        b_reduce = check_bias(b_reduce, spec.out_channels, "b_reduce")
        b_spatial = check_bias(b_spatial, spatial.out_channels, "b_spatial")
        # chosen once, reduce first (what explain and autotune record), then run as chosen
        plans = (choose(spec, reduce_implementation).plan, choose(spatial, implementation).plan)
        activations = (activation, out_activation)
        if _runs_as_one_call(spec, spatial, (k_reduce, w_spatial), activations, plans):
            relus = (activation is not None, out_activation is not None)
            return _one_call(
                x, k_reduce, b_reduce, w_spatial, b_spatial, spec, spatial, relus, plans
            )
        h = apply(x, k_reduce, b_reduce, spec, plans[0], activation, b_name="b_reduce")
        if preferred_element_type is not None:
            h = h.astype(w_spatial.dtype)
        return apply(h, w_spatial, b_spatial, spatial, plans[1], out_activation, b_name="b_spatial")
