"""Geometry: spatial-argument canonicalization, padding, output sizes, receptive fields.

Plain Python on ints and tuples — no arrays — so every other layer (cost, kernels, ops, nn,
models, bench) gets its padding and output-size answers from one formula in one place::

    out = floor((n + lo + hi - d·(k - 1) - 1) / s) + 1

where ``n`` is the (input-dilated) spatial size, ``(lo, hi)`` the padding, ``k`` the kernel
size, ``d`` the kernel dilation and ``s`` the stride.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jaxconv._check import check_int

__all__ = [
    "ELEMENT_LIMIT",
    "INT32_LIMIT",
    "PADDING_MODES",
    "PADDING_STRINGS",
    "Padding",
    "ReceptiveField",
    "canonicalize_padding",
    "canonicalize_spatial",
    "channels_last",
    "check_xla_limits",
    "conv_output_shape",
    "conv_output_size",
    "conv_transpose_output_size",
    "conv_transpose_padding",
    "dilated_size",
    "out_size",
    "padding_mode",
    "pool_out_size",
    "pool_output_size",
    "receptive_field",
    "resolve_padding",
]

#: Padding strings that compute zero-padding amounts.
PADDING_STRINGS = ("VALID", "SAME", "SAME_LOWER")
#: Padding modes: pad ``((k_eff - 1) // 2, k_eff // 2)`` filled by this rule, then VALID (Flax's
#: rule, see :func:`resolve_padding`). Value = the ``jnp.pad`` mode.
PADDING_MODES = {"CIRCULAR": "wrap", "REFLECT": "reflect", "REPLICATE": "edge"}

Padding = str | int | Sequence[int | Sequence[int]]


def canonicalize_spatial(value: Any, ndim: int, name: str, *, minimum: int = 1) -> tuple[int, ...]:
    """Turns an int or a sequence of ints into one int per spatial dim.

    An int broadcasts to every spatial dim (never a silent 1-D conv); a sequence must have one
    entry per spatial dim. Every entry must be ``>= minimum``.

    Args:
      value: int or sequence of ``ndim`` ints.
      ndim: number of spatial dims.
      name: argument name used in error messages.
      minimum: smallest allowed entry.

    Returns:
      A tuple of ``ndim`` Python ints.

    Examples:
      >>> canonicalize_spatial(3, 2, "kernel")
      (3, 3)
      >>> canonicalize_spatial((1, 2, 3), 3, "stride")
      (1, 2, 3)
    """
    if isinstance(value, (list, tuple)):
        if len(value) != ndim:
            raise ValueError(
                f"`{name}` must have one entry per spatial dim ({ndim}), got {tuple(value)!r}"
            )
        out = tuple(check_int(v, name, minimum=None) for v in value)
    else:
        out = (check_int(value, name, minimum=None),) * ndim
    for v in out:
        if v < minimum:
            raise ValueError(f"`{name}` entries must be >= {minimum}, got {value!r}")
    return out


#: Bound on the window geometry XLA holds in 32-bit ints: strides, dilations, pads, kernel and
#: window sizes and every position a window reaches (the input-dilated and the padded input),
#: plus a conv's batch and channel counts. Past it XLA:CPU's convolution kernels (Eigen's
#: transposed-conv path keeps sizes, pads and loop counters in ``int``) and cuDNN's descriptors
#: overflow: lax on XLA:CPU segfaulted (a low pad and a stride of 2**31 on a 5×5 input), gave
#: NaN and garbage outputs (``padding`` and ``stride`` 2**31 - 1) and wrong weight gradients
#: (``dilation`` 2**31 - 1 under SAME) (``tests/test_size_limits.py``).
INT32_LIMIT = 2**31
#: Bound on the elements of any one array an op builds (inputs, kernel, output and the padded
#: or expanded intermediates XLA makes): XLA counts an array's bytes in int64 and aborts the
#: whole process past 2**63 ("overflow in static extent product": ``conv_transpose(x, w,
#: stride=2**32 + 1)`` on a 4×4 input did); 2**60 elements keeps every dtype of up to 8 bytes
#: inside that.
ELEMENT_LIMIT = 2**60

_WHY_INT32 = (
    "XLA holds convolution and pooling geometry in 32-bit ints and crashes or computes wrong "
    "values past it"
)
_WHY_INT64 = "XLA counts an array's bytes in int64 and aborts the process past 2**63"


def check_xla_limits(
    *,
    spatial: Sequence[int] = (),
    kernel: Sequence[int] = (),
    stride: Sequence[int] = (),
    dilation: Sequence[int] | None = None,
    input_dilation: Sequence[int] | None = None,
    padding: Sequence[tuple[int, int]] | None = None,
    extra: Sequence[int] | None = None,
    sizes: Sequence[tuple[str, int]] = (),
    arrays: Sequence[tuple[str, Sequence[int]]] = (),
    names: dict[str, str] | None = None,
) -> None:
    """``ValueError`` unless XLA can run this geometry: the one place jaxconv's size limits live.

    Every op calls it at trace time with what it hands XLA, so a size that would abort XLA, make
    it read out of bounds or compute a wrong value is an error naming the argument, the rule
    and the value instead. Two rules:

    - :data:`INT32_LIMIT` (2**31), per spatial dim: the input size, each stride, dilation,
      input dilation, kernel size and pad (in ``(-2**31, 2**31)``), the input-dilated size
      ``(n - 1)·input_dilation + 1``, the dilated kernel ``dilation·(kernel - 1) + 1`` and the
      padded input; and each of ``sizes`` (a conv's batch and channel counts, whatever else an
      op's kernels hold in 32 bits).
    - :data:`ELEMENT_LIMIT` (2**60): the elements of each of ``arrays``.

    Args:
      spatial: input sizes, one per spatial dim (before any input dilation or padding).
      kernel: kernel (or window) sizes.
      stride: strides.
      dilation, input_dilation: kernel and input dilations (None: 1).
      padding: ``(lo, hi)`` per dim (None: no padding); negative amounts crop.
      extra: cells a pool's ``ceil_mode`` adds past the high padding, per dim (None: 0).
      sizes: ``(label, size)`` of other sizes held in 32 bits.
      arrays: ``(label, shape)`` of every array the op builds.
      names: labels for the messages, by key: ``"x"`` (input sizes, default "`x` spatial
        size"), ``"kernel"`` ("the kernel size"), ``"stride"``, ``"dilation"``,
        ``"input_dilation"``, ``"padding"`` (each default its own name in backticks).

    Raises:
      ValueError: naming the first value past a limit.

    Examples:
      >>> check_xla_limits(spatial=(224,), kernel=(3,), stride=(2,), padding=((1, 1),))
      >>> check_xla_limits(spatial=(5,), kernel=(3,), stride=(2**32 + 1,))
      Traceback (most recent call last):
      ...
      ValueError: `stride` (=4294967297) must be < 2**31: XLA holds convolution ...
    """
    label = {
        "x": "`x` spatial size",
        "kernel": "the kernel size",
        "stride": "`stride`",
        "dilation": "`dilation`",
        "input_dilation": "`input_dilation`",
        "padding": "`padding`",
        **(names or {}),
    }
    ndim = len(spatial)
    ones = (1,) * ndim
    dilation = ones if dilation is None else dilation
    input_dilation = ones if input_dilation is None else input_dilation
    padding = ((0, 0),) * ndim if padding is None else padding
    extra = (0,) * ndim if extra is None else extra

    def too_big(what: str, value: int, made: str = "") -> ValueError:
        rule = f"{made}, which must be < 2**31" if made else " must be < 2**31"
        return ValueError(f"{what} (={value}){rule}: {_WHY_INT32}")

    for key, values in (
        ("x", spatial),
        ("kernel", kernel),
        ("stride", stride),
        ("dilation", dilation),
        ("input_dilation", input_dilation),
    ):
        for v in values:
            if v >= INT32_LIMIT:
                raise too_big(label[key], v)
    for n, k, d, i in zip(spatial, kernel, dilation, input_dilation):
        n_dil = dilated_size(n, i)
        if n_dil >= INT32_LIMIT:
            made = f" stretches the input size {n} to ({n}-1)·{i}+1 = {n_dil}"
            raise too_big(label["input_dilation"], i, made)
        span = dilated_size(k, d)
        if span >= INT32_LIMIT:
            made = f" spreads the kernel size {k} over {d}·({k}-1)+1 = {span}"
            raise too_big(label["dilation"], d, made)
    for what, v in sizes:
        if v >= INT32_LIMIT:
            raise too_big(what, v)
    for lo, hi in padding:
        if not -INT32_LIMIT < min(lo, hi) <= max(lo, hi) < INT32_LIMIT:
            raise ValueError(
                f"{label['padding']} (=({lo}, {hi})) must lie in (-2**31, 2**31): {_WHY_INT32}"
            )
    for n, i, (lo, hi), e in zip(spatial, input_dilation, padding, extra):
        n_dil = dilated_size(n, i)
        if n_dil + lo + hi + e >= INT32_LIMIT:
            more = f" + {e} (`ceil_mode`)" if e else ""
            raise ValueError(
                f"the padded input (={n_dil + lo + hi + e}: size {n_dil} + {label['padding']} "
                f"{lo} + {hi}{more}) must be < 2**31: {_WHY_INT32}"
            )
    for what, shape in arrays:
        if math.prod(shape) >= ELEMENT_LIMIT:
            raise ValueError(
                f"{what} (shape {tuple(shape)}: {math.prod(shape)} elements) must have fewer "
                f"than 2**60 elements: {_WHY_INT64}"
            )


def dilated_size(n: int, dilation: int) -> int:
    """Size of ``n`` samples with ``dilation - 1`` holes between them: ``d·(n - 1) + 1``.

    Examples:
      >>> dilated_size(5, 2)   # a 5-tap kernel with dilation 2 spans 9 pixels
      9
    """
    return 0 if n == 0 else dilation * (n - 1) + 1


def padding_mode(padding: Padding) -> str | None:
    """The ``jnp.pad`` mode for a padding mode string (``"CIRCULAR"`` → ``"wrap"``), else None.

    Examples:
      >>> padding_mode("REFLECT"), padding_mode("SAME")
      ('reflect', None)
    """
    if isinstance(padding, str):
        return PADDING_MODES.get(padding.upper())
    return None


def _same_pads(n: int, k_eff: int, s: int, lower: bool) -> tuple[int, int]:
    out = -(-n // s)  # ceil(n / s)
    total = max((out - 1) * s + k_eff - n, 0)
    small, big = total // 2, total - total // 2
    return (big, small) if lower else (small, big)


def resolve_padding(
    padding: Padding,
    input_size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> tuple[tuple[int, int], ...]:
    """Resolves any padding spec to explicit ``(lo, hi)`` pairs, one per spatial dim.

    Accepted forms:

    - ``"VALID"``: no padding.
    - ``"SAME"``: XLA's rule, ``out = ceil(n / stride)``; the odd pad pixel goes on the high side.
    - ``"SAME_LOWER"``: like SAME with the odd pixel on the low side (ONNX's SAME_LOWER).
    - ``"CIRCULAR"``, ``"REFLECT"``, ``"REPLICATE"``: ``((k_eff - 1) // 2, k_eff // 2)`` with
      ``k_eff = dilation·(kernel - 1) + 1``, filled by that rule instead of zeros (see
      :func:`padding_mode`), then VALID. This is ``flax.nnx.Conv``'s rule for ``"CIRCULAR"`` and
      ``"REFLECT"`` (REPLICATE follows it too): the amounts depend on the kernel only, not on
      the stride or the input size. At stride 1 they equal the SAME amounts (same-size
      output); at stride > 1 they differ from SAME, and so do the outputs (for ``n = 5``,
      ``k = 3``, stride 3: modes pad ``(1, 1)`` → 2 outputs starting at -1; SAME pads
      ``(0, 1)`` → windows starting at 0).
    - an int ``p``: ``(p, p)`` on every dim.
    - a sequence with one entry per dim, each an int ``p`` or a pair ``(lo, hi)``.

    Negative amounts are allowed in explicit pairs (they crop), as in ``lax``.

    Args:
      padding: the padding spec.
      input_size: spatial input sizes (after input dilation).
      kernel: spatial kernel sizes (undilated).
      stride: strides.
      dilation: kernel dilations.

    Returns:
      ``tuple`` of ``(lo, hi)`` int pairs.

    Examples:
      >>> resolve_padding("SAME", (28, 28), (3, 3), (1, 1), (1, 1))
      ((1, 1), (1, 1))
      >>> resolve_padding("SAME", (28,), (3,), (2,), (1,))   # odd pixel on the high side
      ((0, 1),)
      >>> resolve_padding(((1, 2), 3), (8, 8), (3, 3), (1, 1), (1, 1))
      ((1, 2), (3, 3))
      >>> resolve_padding("CIRCULAR", (5, 5), (3, 4), (3, 3), (1, 1))  # Flax's: not SAME's
      ((1, 1), (1, 2))
    """
    ndim = len(input_size)
    form = canonicalize_padding(padding, ndim)
    if form == "VALID":
        return ((0, 0),) * ndim
    if form in PADDING_MODES:  # Flax's rule: from the (dilated) kernel alone
        return tuple(
            ((k_eff - 1) // 2, k_eff // 2) for k_eff in map(dilated_size, kernel, dilation)
        )
    if isinstance(form, str):  # SAME or SAME_LOWER
        lower = form == "SAME_LOWER"
        return tuple(
            _same_pads(n, dilated_size(k, d), s, lower)
            for n, k, s, d in zip(input_size, kernel, stride, dilation)
        )
    return form


def canonicalize_padding(padding: Padding, ndim: int) -> str | tuple[tuple[int, int], ...]:
    """Validates the *form* of a padding spec, without sizes, and makes it hashable.

    A string comes back upper-cased (one of :data:`PADDING_STRINGS` or :data:`PADDING_MODES`);
    an int or per-dim entries come back as explicit ``(lo, hi)`` pairs. Modules call this once
    at construction; :func:`resolve_padding` turns the result into amounts for given sizes.

    Args:
      padding: any padding :func:`resolve_padding` accepts.
      ndim: number of spatial dims.

    Returns:
      The upper-cased string, or a tuple of ``ndim`` ``(lo, hi)`` int pairs.

    Examples:
      >>> canonicalize_padding("same", 2)
      'SAME'
      >>> canonicalize_padding((1, (0, 2)), 2)
      ((1, 1), (0, 2))
    """
    if isinstance(padding, str):
        key = padding.upper()
        if key in PADDING_STRINGS or key in PADDING_MODES:
            return key
        valid = ", ".join(repr(p) for p in (*PADDING_STRINGS, *PADDING_MODES))
        raise ValueError(
            f"`padding` must be one of {valid}, an int or (lo, hi) pairs; got {padding!r}"
        )
    form_error = f"`padding` must be a string, an int or (lo, hi) pairs, got {padding!r}"
    if isinstance(padding, bool):
        raise TypeError(form_error)
    if not isinstance(padding, (list, tuple)):
        try:
            p = check_int(padding, "padding", minimum=None)  # an int, or a NumPy integer
        except TypeError:
            raise TypeError(form_error) from None
        return ((p, p),) * ndim
    if len(padding) != ndim:
        raise ValueError(f"`padding` must have one entry per spatial dim ({ndim}), got {padding!r}")
    pairs = []
    for entry in padding:
        if isinstance(entry, (list, tuple)):
            if len(entry) != 2:
                raise ValueError(
                    f"`padding` entries must be an int or a (lo, hi) pair, got {entry!r}"
                )
            lo, hi = (check_int(v, "padding", minimum=None) for v in entry)
            pairs.append((lo, hi))
        else:
            p = check_int(entry, "padding", minimum=None)
            pairs.append((p, p))
    return tuple(pairs)


def _one_dim(padding: Padding) -> Padding:
    """A bare ``(lo, hi)`` pair given for a single dim, as the per-dim form ``((lo, hi),)``."""
    if (
        isinstance(padding, (list, tuple))
        and len(padding) == 2
        and all(not isinstance(p, (list, tuple)) for p in padding)
    ):
        pair: tuple[Any, Any] = (padding[0], padding[1])
        return (pair,)
    return padding


def conv_output_size(
    n: int, kernel: int, *, stride: int = 1, padding: Padding = "VALID", dilation: int = 1
) -> int:
    """Output length of a convolution along one spatial dim.

    ``floor((n + lo + hi - dilation·(kernel - 1) - 1) / stride) + 1`` with ``(lo, hi)`` from
    :func:`resolve_padding`. This is right for odd sizes, where the common shortcut
    ``(n - k + 1) / s`` is not (29, 3×3, stride 2, VALID gives 14, not 13.5).

    Args:
      n: input length.
      kernel: kernel length.
      stride: stride.
      padding: any padding form accepted by :func:`resolve_padding`, for one dim.
      dilation: kernel dilation.

    Returns:
      The output length (an int >= 1).

    Raises:
      ValueError: if the dilated kernel is larger than the padded input.

    Examples:
      >>> conv_output_size(28, 3)                          # VALID
      26
      >>> conv_output_size(28, 3, stride=2), conv_output_size(29, 3, stride=2)
      (13, 14)
      >>> conv_output_size(28, 3, padding="SAME")
      28
    """
    (n,) = canonicalize_spatial(n, 1, "n", minimum=0)
    (k,) = canonicalize_spatial(kernel, 1, "kernel")
    (s,) = canonicalize_spatial(stride, 1, "stride")
    (d,) = canonicalize_spatial(dilation, 1, "dilation")
    ((lo, hi),) = resolve_padding(_one_dim(padding), (n,), (k,), (s,), (d,))
    return out_size(n, k, s, d, lo, hi)


def conv_transpose_output_size(
    n: int,
    kernel: int,
    *,
    stride: int = 1,
    padding: tuple[int, int] = (0, 0),
    dilation: int = 1,
    padding_name: str = "the padding",
) -> int:
    """Output length of a transposed convolution along one spatial dim.

    A transposed conv is the stride-1 conv of the input dilated by ``stride``, so this is
    :func:`conv_output_size`'s formula at stride 1 on ``dilated_size(n, stride)`` inputs:
    ``(n - 1)·stride + 1 + lo + hi - dilation·(kernel - 1)``.

    Args:
      n: input length.
      kernel: kernel length.
      stride: the upsampling factor.
      padding: ``(lo, hi)`` of the stride-dilated input, as
        :func:`jaxconv.conv_transpose_padding` gives them for every padding
        :func:`jaxconv.conv_transpose` takes (PyTorch's ``padding`` ``p`` and
        ``output_padding`` ``a``: ``(d·(k-1) - p, d·(k-1) - p + a)``); negative amounts crop.
      dilation: kernel dilation.
      padding_name: what the caller calls the padding, for the error.

    Returns:
      The output length (an int >= 1).

    Raises:
      ValueError: if the padding crops every output.

    Examples:
      >>> conv_transpose_output_size(7, 3, stride=2, padding=(1, 2))  # p=1, output_padding=1
      14
      >>> conv_transpose_output_size(7, 3, stride=2, padding=(2, 2))  # p=0: (7-1)·2 + 3
      15
    """
    span = dilated_size(kernel, dilation) - 1
    lo, hi = padding
    size = dilated_size(n, stride) + lo + hi - span
    if size < 1:
        raise ValueError(
            f"the output size (={size} = ({n}-1)·{stride} + 1 + {lo} + {hi} - {span}) must be "
            f"positive: {padding_name} crops more than the transposed conv produces for input "
            f"size {n}"
        )
    return size


def _check_fits(n: int, k: int, d: int, lo: int, hi: int, what: str) -> None:
    if n + lo + hi >= dilated_size(k, d):
        return
    size = (
        f"the {what} (={k})"
        if d == 1
        else (f"the dilated {what} (={dilated_size(k, d)} = {d}·({k}-1)+1)")
    )
    raise ValueError(
        f"{size} must fit in the padded input (={n + lo + hi}: size {n} + `padding` {lo} + {hi})"
    )


def out_size(n: int, k: int, s: int, d: int, lo: int, hi: int, what: str = "kernel") -> int:
    """The conv output-size formula on one dim, for canonical ints: ``floor((n + lo + hi -
    d·(k-1) - 1) / s) + 1``, after checking the (dilated) ``what`` fits the padded input."""
    _check_fits(n, k, d, lo, hi, what)
    return (n + lo + hi - dilated_size(k, d)) // s + 1


def conv_output_shape(
    input_shape: Sequence[int],
    kernel: Sequence[int] | int,
    out_channels: int,
    *,
    stride: Any = 1,
    padding: Padding = "SAME",
    dilation: Any = 1,
    input_dilation: Any = 1,
    layout: str = "NHWC",
) -> tuple[int, ...]:
    """Full output shape of a convolution.

    Args:
      input_shape: ``(N, *spatial, C)`` for channels-last layouts (``"NHWC"``, ``"NWC"``,
        ``"NDHWC"``), ``(N, C, *spatial)`` for channels-first ones (``"NCHW"``, …).
      kernel: spatial kernel size(s); an int broadcasts.
      out_channels: number of output feature maps.
      stride, padding, dilation, input_dilation: as for :func:`jaxconv.conv`.
      layout: the data layout; only whether channels come last matters.

    Returns:
      The output shape in the same layout.

    Examples:
      >>> conv_output_shape((8, 28, 28, 3), 3, 16, stride=2)
      (8, 14, 14, 16)
      >>> conv_output_shape((8, 3, 28, 28), (3, 3), 16, padding="VALID", layout="NCHW")
      (8, 16, 26, 26)
    """
    last = channels_last(layout)
    ndim = len(input_shape) - 2
    if ndim < 1:
        raise ValueError(f"`input_shape` must be (N, *spatial, C), got {tuple(input_shape)!r}")
    spatial = tuple(input_shape[1:-1]) if last else tuple(input_shape[2:])
    ks = canonicalize_spatial(kernel, ndim, "kernel")
    ss = canonicalize_spatial(stride, ndim, "stride")
    ds = canonicalize_spatial(dilation, ndim, "dilation")
    ids = canonicalize_spatial(input_dilation, ndim, "input_dilation")
    ns = tuple(dilated_size(n, i) for n, i in zip(spatial, ids))
    pads = resolve_padding(padding, ns, ks, ss, ds)
    out = tuple(out_size(n, k, s, d, lo, hi) for n, k, s, d, (lo, hi) in zip(ns, ks, ss, ds, pads))
    n_batch = input_shape[0]
    return (n_batch, *out, out_channels) if last else (n_batch, out_channels, *out)


def channels_last(layout: str) -> bool:
    """Whether ``layout`` puts the channels last (``"NHWC"``…) or first (``"NCHW"``…).

    The one reading of a ``layout`` argument: every op, pool and geometry function calls it, so
    the accepted spellings (any case) and the error are the same everywhere.

    Examples:
      >>> channels_last("NHWC"), channels_last("ncw")
      (True, False)
    """
    if not isinstance(layout, str):
        raise TypeError(f"`layout` must be a string such as 'NHWC' or 'NCHW', got {layout!r}")
    key = layout.upper()
    if key in ("NWC", "NHWC", "NDHWC"):
        return True
    if key in ("NCW", "NCHW", "NCDHW"):
        return False
    raise ValueError(
        f"`layout` must be channels-last ('NWC', 'NHWC', 'NDHWC') or channels-first "
        f"('NCW', 'NCHW', 'NCDHW'), got {layout!r}"
    )


def pool_output_size(
    n: int,
    window: int,
    *,
    stride: int | None = None,
    padding: Padding = "VALID",
    ceil_mode: bool = False,
) -> int:
    """Output length of a pooling window along one dim, with Caffe/PyTorch ``ceil_mode``.

    With ``ceil_mode`` the division rounds up, so a last partial window is kept — but a window
    must start inside the input or its low padding (the rule Caffe and PyTorch share). That
    includes PyTorch's partial window when the window is larger than the padded input: a
    window overhanging it by less than the stride gives one output (window 4, stride 3 on 3
    pixels: 1); by the stride or more, none, and that is an error.

    Args:
      n: input length.
      window: window length.
      stride: stride (defaults to ``window``).
      padding: one-dim padding form.
      ceil_mode: round up instead of down.

    Returns:
      The output length.

    Examples:
      >>> pool_output_size(112, 3, stride=2), pool_output_size(112, 3, stride=2, ceil_mode=True)
      (55, 56)
      >>> pool_output_size(32, 3, stride=2, ceil_mode=True)   # NiN on CIFAR: 32 → 16
      16
      >>> pool_output_size(3, 4, stride=3, ceil_mode=True)    # a partial window, as PyTorch
      1
    """
    stride = window if stride is None else stride
    padding = _one_dim(padding)
    (s,) = canonicalize_spatial(stride, 1, "stride")
    (k,) = canonicalize_spatial(window, 1, "window")
    ((lo, hi),) = resolve_padding(padding, (n,), (k,), (s,), (1,))
    if padding_mode(padding) is not None:  # value-filled: the padded input is all input
        n, lo, hi = n + lo + hi, 0, 0
    return pool_out_size(n, k, s, lo, hi, ceil_mode)


def pool_out_size(n: int, k: int, s: int, lo: int, hi: int, ceil_mode: bool) -> int:
    """The pool output-size formula on one dim, for canonical ints (``ceil_mode``: PyTorch's
    last partial window, when it starts inside the input or its low padding)."""
    if not ceil_mode:
        return out_size(n, k, s, 1, lo, hi, what="window")
    out = -(-(n + lo + hi - k) // s) + 1  # ceil; below 1 when k overhangs by >= s
    if out < 1:
        raise ValueError(
            f"the window (={k}) must fit in the padded input (={n + lo + hi}: size {n} + "
            f"`padding` {lo} + {hi}) or, with `ceil_mode`, overhang it by less than the "
            f"`stride` (={s})"
        )
    if (out - 1) * s >= n + lo:  # the last window would start in the high padding: drop it
        out -= 1
    return out


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field after a layer: ``size`` input pixels seen by one output pixel, ``jump``
    (distance in input pixels between neighbouring outputs) and ``start`` (input index of the
    centre of the first output's field; negative when it lies in the padding).

    Examples:
      >>> rf = receptive_field([(11, 4), (3, 2)])[-1]   # AlexNet conv1 + pool1
      >>> rf.size, rf.jump, rf.start
      (19, 8, 9.0)
    """

    size: int
    jump: int
    start: float


def receptive_field(
    layers: Sequence[tuple[int, int] | tuple[int, int, Any] | tuple[int, int, Any, int]],
) -> list[ReceptiveField]:
    """Receptive field of a stack of conv/pool layers along one spatial dim.

    Args:
      layers: one entry per layer: ``(kernel, stride)``, ``(kernel, stride, padding)`` or
        ``(kernel, stride, padding, dilation)``; padding takes an int or a ``(lo, hi)`` pair
        (the low side moves the start), default 0.

    Returns:
      One :class:`ReceptiveField` per layer, after that layer.

    Examples:
      >>> [r.size for r in receptive_field([(3, 1), (3, 1), (3, 1)])]  # three 3×3 see 7×7
      [3, 5, 7]
      >>> receptive_field([(7, 2, 3), (3, 2, 1)])[-1]  # GoogLeNet's stem conv + pool
      ReceptiveField(size=11, jump=4, start=0.0)
    """
    size, jump, start = 1, 1, 0.0
    out = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, (list, tuple)) or not 2 <= len(layer) <= 4:
            raise ValueError(
                f"`layers[{i}]` must be (kernel, stride[, padding[, dilation]]), got {layer!r}"
            )
        k = check_int(layer[0], f"layers[{i}] kernel", minimum=None)
        s = check_int(layer[1], f"layers[{i}] stride", minimum=None)
        pad = layer[2] if len(layer) > 2 else 0
        d = check_int(layer[3], f"layers[{i}] dilation", minimum=None) if len(layer) > 3 else 1
        if k < 1 or s < 1 or d < 1:
            raise ValueError(
                f"`layers[{i}]` kernel, stride and dilation must be >= 1, got {layer!r}"
            )
        lo = pad[0] if isinstance(pad, (list, tuple)) else pad
        lo = check_int(lo, f"layers[{i}] padding", minimum=None)
        k_eff = dilated_size(k, d)
        start = start + ((k_eff - 1) / 2 - lo) * jump
        size = size + (k_eff - 1) * jump
        jump = jump * s
        out.append(ReceptiveField(size=size, jump=jump, start=start))
    return out


#: The string paddings :func:`jaxconv.conv_transpose` accepts (Flax's meaning).
TRANSPOSE_PADDINGS = ("SAME", "VALID")


def _flax_pads(k_eff: int, s: int, padding: str) -> tuple[int, int]:
    """``lax.conv_transpose``'s pads on the dilated input for a string padding (what
    ``flax.nnx.ConvTranspose`` uses): SAME gives ``n·s`` outputs, VALID ``n·s + max(k - s, 0)``."""
    if padding == "SAME":
        total = k_eff + s - 2
        lo = k_eff - 1 if s > k_eff - 1 else -(-total // 2)
    else:  # VALID
        total = k_eff + s - 2 + max(k_eff - s, 0)
        lo = k_eff - 1
    return lo, total - lo


def conv_transpose_padding(
    kernel: Any,
    *,
    stride: Any = 1,
    padding: Any = "SAME",
    output_padding: Any = 0,
    dilation: Any = 1,
) -> tuple[tuple[int, int], ...]:
    """The ``(lo, hi)`` padding of the stride-dilated input :func:`jaxconv.conv_transpose`
    convolves.

    Plain integers, no arrays: a PyTorch ``padding`` ``p`` and ``output_padding`` ``a`` give
    ``(d·(k-1) - p, d·(k-1) - p + a)``; ``"SAME"``/``"VALID"`` give ``lax.conv_transpose``'s
    pads. Output size per dim: ``(n-1)·s + 1 + lo + hi - d·(k-1)``.

    Args:
      kernel: spatial kernel size(s); its length (or 1 for an int) sets the number of dims.
      stride, padding, output_padding, dilation: as for :func:`jaxconv.conv_transpose`
        (``padding`` defaults to ``"SAME"`` there and here).

    Returns:
      One ``(lo, hi)`` pair per spatial dim (negative where the output is cropped past the
      kernel's reach).

    Examples:
      >>> conv_transpose_padding((3, 3), stride=2, padding=1, output_padding=1)
      ((1, 2), (1, 2))
      >>> conv_transpose_padding((3,), stride=2, padding="SAME")   # lax: 2n outputs
      ((2, 1),)
    """
    ks = (kernel,) if isinstance(kernel, int) else tuple(kernel)
    ndim = len(ks)
    ks = canonicalize_spatial(ks, ndim, "kernel")
    ss = canonicalize_spatial(stride, ndim, "stride")
    ds = canonicalize_spatial(dilation, ndim, "dilation")
    spans = tuple(dilated_size(k, d) - 1 for k, d in zip(ks, ds))
    if isinstance(padding, str):
        key = padding.upper()
        if key not in TRANSPOSE_PADDINGS:
            raise ValueError(
                f"`padding` must be 'SAME' or 'VALID' (Flax's nnx.ConvTranspose meaning), an "
                f"int or one int or (lo, hi) pair per spatial dim (PyTorch's meaning); got "
                f"{padding!r}"
            )
        extra = canonicalize_spatial(output_padding, ndim, "output_padding", minimum=0)
        if any(extra):
            raise ValueError(
                f"`output_padding` (={output_padding!r}) needs an int or per-dim `padding` "
                f"(PyTorch's convention: pass `padding=0`, PyTorch's default); with the string "
                f"padding {padding!r} the output size is fixed by Flax's rule"
            )
        return tuple(_flax_pads(e + 1, s, key) for e, s in zip(spans, ss))
    pairs = canonicalize_padding(padding, ndim)
    assert not isinstance(pairs, str)  # a string was handled above
    if any(p < 0 for pair in pairs for p in pair):
        raise ValueError(
            f"`padding` must not be negative (it crops the output, as in PyTorch), got {padding!r}"
        )
    extra = canonicalize_spatial(output_padding, ndim, "output_padding", minimum=0)
    for a, s, d in zip(extra, ss, ds):
        if a >= max(s, d):
            raise ValueError(
                f"`output_padding` (={output_padding!r}) must be smaller than either `stride` "
                f"(={ss}) or `dilation` (={ds}) in every dim, as in PyTorch"
            )
    return tuple((e - lo, e - hi + a) for e, (lo, hi), a in zip(spans, pairs, extra))
