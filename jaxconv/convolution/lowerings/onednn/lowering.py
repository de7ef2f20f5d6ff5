"""The ``onednn`` :class:`~jaxconv.convolution.Lowering`: where it applies (:func:`supports`,
with oneDNN's 32-bit limits in :func:`int32_problem`), AMX group merging and the forward.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv._geometry import INT32_LIMIT, dilated_size
from jaxconv.convolution.lowering import ROLES, Lowering, Role
from jaxconv.convolution.lowerings.onednn.geometry import Geometry
from jaxconv.convolution.lowerings.onednn.library import NAME, amx, native_bf16, unavailable
from jaxconv.convolution.lowerings.onednn.primitives import _as, _bind, forward, fused_p
from jaxconv.convolution.spec import ConvSpec

# oneDNN 3.2's jit kernels keep geometry and offsets in 32-bit ints: every value below must be
# under INT32_LIMIT (2**31, the bound XLA's own geometry has too). Past it a conv crashed the
# process (dilation 1431655766 on a 6x5 input), failed to create its primitive, or gave wrong
# values (dilation 2**32 + 1).


def _int32_quantities(spec: ConvSpec) -> list[tuple[str, int]]:
    """Every geometry value of ``spec`` oneDNN sees, and every 32-bit quantity it forms from them:
    sizes, strides, dilations, padding, the dilated kernel span ``(k-1)·d``, the padded (and
    input-dilated) input, and the bytes of one image (padded input, output) and of the kernel,
    which bound the element and byte offsets its kernels compute, e.g. ``(k-1)·d·C·itemsize``."""
    itemsize = np.dtype(spec.dtype).itemsize
    out_itemsize = np.dtype(spec.out_dtype).itemsize
    quantities: list[tuple[str, int]] = [
        ("the batch", spec.batch),
        ("input channels", spec.in_channels),
        ("output channels", spec.out_channels),
    ]
    padded = [  # the input as oneDNN's kernels walk it: input-dilated, then padded
        dilated_size(n, v) + lo + hi
        for n, v, (lo, hi) in zip(spec.in_spatial, spec.input_dilation, spec.padding)
    ]
    for i, (n, k, s, d, v, (lo, hi), o) in enumerate(
        zip(
            spec.in_spatial,
            spec.kernel,
            spec.stride,
            spec.dilation,
            spec.input_dilation,
            spec.padding,
            spec.out_spatial,
        )
    ):
        quantities += [
            (f"input size[{i}]", n),
            (f"kernel size[{i}]", k),
            (f"stride[{i}]", s),
            (f"dilation[{i}]", d),
            (f"input_dilation[{i}]", v),
            (f"padding[{i}]", max(abs(lo), abs(hi))),
            (f"dilated kernel span (k-1)·d [{i}]", (k - 1) * d),
            (f"padded input size[{i}]", padded[i]),
            (f"output size[{i}]", o),
        ]
        if v != 1:  # a deconvolution: its stride is v; one step of it spans these bytes
            step = v * math.prod(padded[i + 1 :]) * spec.in_channels * itemsize
            quantities.append((f"input_dilation[{i}] times one input row's bytes", step))
    quantities += [
        ("one padded input image's bytes", math.prod(padded) * spec.in_channels * itemsize),
        (
            "one output image's bytes",
            math.prod(spec.out_spatial) * spec.out_channels * out_itemsize,
        ),
        ("the kernel's bytes", math.prod(spec.w_shape) * itemsize),
    ]
    return quantities


def int32_problem(spec: ConvSpec) -> str | None:
    """Why oneDNN cannot run ``spec`` exactly because a value it keeps in 32 bits would not
    fit (see :data:`INT32_LIMIT`), else None. The one statement of these limits.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jaxconv.convolution import conv_spec
      >>> spec = conv_spec(jax.ShapeDtypeStruct((1, 6, 5, 2), jnp.float32),
      ...                  jax.ShapeDtypeStruct((2, 2, 2, 3), jnp.float32),
      ...                  dilation=(1431655766, 1))
      >>> print(int32_problem(spec))  # (what crashed oneDNN 3.2's jit kernel)
      onednn keeps geometry in 32-bit ints: one padded input image's bytes (=68719477056) must
      be < 2**31 (XLA runs this conv)
    """
    for name, value in _int32_quantities(spec):
        if not 0 <= value < INT32_LIMIT:
            return (
                f"onednn keeps geometry in 32-bit ints: {name} (={value}) must be < 2**31 "
                f"(XLA runs this conv)"
            )
    return None


def supports(spec: ConvSpec) -> str | None:
    """None where the extension runs ``spec`` exactly, else why not."""
    why = unavailable()
    if why is not None:
        return why
    if spec.dtype not in ("float32", "bfloat16"):
        return f"onednn needs float32 or bfloat16 inputs, got {spec.dtype}"
    if spec.dtype == "bfloat16" and not native_bf16():
        return (
            "onednn's bfloat16 convs need AVX512_BF16 or AMX, which this CPU lacks (oneDNN "
            "would run slow reference kernels; XLA's f32 upcast is faster)"
        )
    if spec.preferred_element_type not in (None, "float32", spec.dtype):
        return (
            f"onednn computes in float32 or bfloat16, got preferred_element_type "
            f"{spec.preferred_element_type}"
        )
    if any(p < 0 for pair in spec.padding for p in pair):
        return f"onednn needs non-negative padding, got {spec.padding}"
    too_big = int32_problem(spec)
    if too_big is not None:
        return too_big
    if any(v != 1 for v in spec.input_dilation):
        # A deconvolution in oneDNN: its padding k_eff - 1 - p must not be negative.
        span = tuple((k - 1) * d for k, d in zip(spec.kernel, spec.dilation))
        if any(v != 1 for v in spec.stride):
            return (
                f"onednn needs stride 1 with input_dilation {spec.input_dilation}, got "
                f"stride {spec.stride}"
            )
        if any(max(p) > e for p, e in zip(spec.padding, span)):
            return (
                f"onednn needs padding <= (kernel - 1)·dilation {span} with input "
                f"dilation, got {spec.padding}"
            )
    return None


# --- the lowering interface ----------------------------------------------------------------


def _empty(x: jax.Array, w: jax.Array, spec: ConvSpec) -> jax.Array:
    return jnp.zeros(Geometry.of(spec).out_shape(x.shape, w.shape), spec.out_dtype)


def _oriented(w: jax.Array, geometry: Geometry) -> jax.Array:
    """The kernel as oneDNN's primitive wants it: flipped spatially for a deconvolution."""
    if not geometry.transposed:
        return w
    nsp = len(geometry.stride)
    return jnp.flip(w, tuple(range(nsp)) if geometry.channels_last else tuple(range(2, nsp + 2)))


# AMX multiplies bf16 tiles 16 rows deep: a group narrower than that wastes the unit, and
# oneDNN 3.2 has no AMX kernel for one (it falls back to AVX-512, 3-8x slower).
_AMX_GROUP_CHANNELS = 16


def merged_groups(spec: ConvSpec) -> int:
    """How many adjacent groups :func:`conv` merges into one block-diagonal group (1: none).

    On a CPU with AMX, a bfloat16 conv with fewer than 16 input channels per group runs as a
    conv with ``m`` times fewer groups, ``m·C_in/G`` channels each (up to 16), whose kernel is
    block diagonal with the original groups' kernels on the diagonal: ``m`` times the
    multiply-adds, but on oneDNN's AMX kernels. Measured here (Xeon, 2 cores, batch 32,
    3×3, fwd / fwd+bwd ms): ResNeXt's 32 groups of 8 at 28×28×256 20.5 / 32.5 → 2.65 / 10.3;
    groups of 4 at 56×56×128 30 / 145 → 5.6 / 25; a depthwise conv with channel multiplier
    2 at 112×112×16 45 / 250 → 6.6 / 67. A plain depthwise conv (one channel in, one out per
    group) is not merged: oneDNN's depthwise kernel is faster forward (5.6 vs 9.1 ms at
    112×112×32). float32 is not merged either (no AMX; 2x the work measured slower)."""
    cin = spec.in_channels // spec.groups
    cout = spec.out_channels // spec.groups
    if (
        spec.dtype != "bfloat16"
        or spec.groups == 1
        or cin >= _AMX_GROUP_CHANNELS
        or cin == cout == 1
        or not amx()
    ):
        return 1
    factors = range(1, _AMX_GROUP_CHANNELS // cin + 1)  # m·cin <= 16
    return max(m for m in factors if spec.groups % m == 0)


def _block_diagonal(w: jax.Array, groups: int, m: int, channels_last: bool) -> jax.Array:
    """The kernel of ``groups // m`` groups, each ``m`` of ``w``'s groups on its diagonal:
    HWIO ``[*k, I/G, O]`` → ``[*k, m·I/G, O]``, OIHW ``[O, I/G, *k]`` → ``[O, m·I/G, *k]``
    (the output channels keep their order). Its transpose, for the weight gradient, keeps
    the diagonal blocks."""
    if channels_last:
        *k, cin, cout = w.shape
        # [*k, i, G/m, b, o] -> [*k, a, i, G/m, b, o], nonzero where a == b
        blocks = w.reshape(*k, 1, cin, groups // m, m, cout // groups)
        eye = np.eye(m, dtype=bool).reshape((1,) * len(k) + (m, 1, 1, m, 1))
        return jnp.where(eye, blocks, 0).reshape(*k, m * cin, cout)
    cout, cin, *k = w.shape
    # [G/m, b, o, i, *k] -> [G/m, b, o, a, i, *k], nonzero where a == b
    blocks = w.reshape(groups // m, m, cout // groups, 1, cin, *k)
    eye = np.eye(m, dtype=bool).reshape((1, m, 1, m, 1) + (1,) * len(k))
    return jnp.where(eye, blocks, 0).reshape(cout, m * cin, *k)


def _prepared(w: jax.Array, spec: ConvSpec) -> tuple[jax.Array, Geometry]:
    """The kernel and geometry oneDNN's primitive gets for ``spec``: groups merged on AMX
    (:func:`merged_groups`), flipped for a deconvolution."""
    geometry = Geometry.of(spec)
    m = merged_groups(spec)
    if m > 1:
        w = _block_diagonal(w, spec.groups, m, spec.channels_last)
        geometry = geometry._replace(groups=spec.groups // m)
    return _oriented(w, geometry), geometry


def conv(x: jax.Array, w: jax.Array, spec: ConvSpec) -> jax.Array:
    """The spec's conv as one oneDNN forward primitive (an input-dilated, transposed conv as a
    oneDNN deconvolution); its transposes are oneDNN's backward primitives."""
    if math.prod(x.shape) == 0:
        return _empty(x, w, spec)
    w, geometry = _prepared(w, spec)
    return forward(x, w, geometry, spec.out_dtype)


def conv_bias(x: jax.Array, w: jax.Array, b: jax.Array, spec: ConvSpec) -> jax.Array:
    """``conv(x, w) + b`` as one oneDNN primitive with the bias as a post-op; ``b`` is
    ``[C_out]``, cast to the output dtype. No derivative rule of its own:
    :func:`jaxconv.convolution.run` differentiates it through :func:`conv`."""
    if math.prod(x.shape) == 0:
        return _empty(x, w, spec)
    w, geometry = _prepared(w, spec)
    return _bind(fused_p, x, w, _as(b, spec.out_dtype), geometry=geometry, out_dtype=spec.out_dtype)


def why_not_onednn(spec: ConvSpec) -> str | None:
    """None where ``spec`` runs as one oneDNN primitive with packed weights and post-ops (a
    frozen conv, a one-call bottleneck), else why not."""
    why = supports(spec)
    if why is not None:
        return why
    if spec.padding_mode is not None:
        return f"padding mode {spec.padding_mode!r} is applied in XLA"
    if any(v != 1 for v in spec.input_dilation):
        return "an input-dilated (transposed) conv is not frozen"
    if merged_groups(spec) > 1:
        return "groups merged for AMX are not packed"
    return None


def prefers(spec: ConvSpec, platform: str) -> tuple[Role, ...]:
    """Every role, on the CPU, wherever it applies: PyTorch's own CPU kernels, 0.94–1.23×
    PyTorch's speed on GoogLeNet's convs (bench/results/), ahead of XLA:CPU's everywhere it
    was measured."""
    del spec
    return ROLES if platform == "cpu" else ()


LOWERING = Lowering(
    name=NAME,
    supports=supports,
    fwd=conv,
    roles=ROLES,
    backends=("cpu",),
    fused=conv_bias,
    prefers=prefers,
    summary="oneDNN's conv primitives through XLA's FFI (PyTorch's CPU kernels)",
)
