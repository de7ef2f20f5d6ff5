"""Geometry: output sizes, padding resolution, output shapes, receptive fields.

Every expected value below is derived by hand (the derivation is in the comment or the id),
never by calling the function under test.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxconv
from jaxconv._geometry import conv_transpose_output_size


# --- the seed's table ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "n, kernel, stride, padding, expected",
    [
        (6, 3, 1, "VALID", 4),  # 6x6x1, 3x3 valid, stride 1 -> 4x4x1
        (28, 3, 1, "VALID", 26),  # 28x28x8 -> 26x26x8
        (28, 3, 2, "VALID", 13),  # floor(25 / 2) + 1 = 13
        (28, 3, 1, "SAME", 28),  # SAME keeps the size at stride 1
    ],
)
def test_seed_output_size_table(n, kernel, stride, padding, expected):
    assert jaxconv.conv_output_size(n, kernel, stride=stride, padding=padding) == expected


def test_odd_size_where_the_seed_shortcut_is_wrong():
    # The seed's shortcut (n - k + 1) / s gives 27 / 2 = 13.5 for a 29-pixel input; the
    # positions a 3-tap window can start at are 0, 2, ..., 26: 14 of them.
    shortcut = (29 - 3 + 1) / 2
    assert shortcut == 13.5
    assert jaxconv.conv_output_size(29, 3, stride=2, padding="VALID") == 14
    assert jaxconv.conv_output_shape((1, 29, 29, 8), 3, 8, stride=2, padding="VALID") == (
        1,
        14,
        14,
        8,
    )


@pytest.mark.parametrize(
    "n, kernel, kwargs, expected",
    [
        (28, 3, dict(stride=2, padding="SAME"), 14),  # ceil(28 / 2)
        (29, 3, dict(stride=2, padding="SAME"), 15),  # ceil(29 / 2)
        (10, 3, dict(dilation=2), 6),  # span 5 -> 10 - 5 + 1
        (10, 3, dict(dilation=4), 2),  # span 9
        (10, 3, dict(padding=1), 10),
        (10, 3, dict(padding=(0, 2)), 10),  # a bare (lo, hi) pair for the one dim
        (10, 3, dict(padding=(-1, -1)), 6),  # negative pads crop: 8 - 3 + 1
        (7, 7, dict(stride=3), 1),
        (8, 1, dict(stride=3), 3),  # positions 0, 3, 6
        (224, 7, dict(stride=2, padding=3), 112),  # GoogLeNet/ResNet stem: (224+6-7)//2 + 1
        (5, 2, dict(stride=3, padding="SAME_LOWER"), 2),
        (1, 3, dict(padding="SAME"), 1),
    ],
)
def test_conv_output_size_hand_values(n, kernel, kwargs, expected):
    assert jaxconv.conv_output_size(n, kernel, **kwargs) == expected


def test_conv_output_size_rejects_a_kernel_larger_than_the_padded_input():
    with pytest.raises(
        ValueError,
        match=r"the dilated kernel \(=5 = 2·\(3-1\)\+1\) must fit in "
        r"the padded input \(=4: size 4 \+ `padding` 0 \+ 0\)",
    ):
        jaxconv.conv_output_size(4, 3, dilation=2)
    with pytest.raises(
        ValueError,
        match=r"the kernel \(=3\) must fit in the padded input "
        r"\(=2: size 4 \+ `padding` -1 \+ -1\)",
    ):
        jaxconv.conv_output_size(4, 3, padding=-1)
    # ceil_mode keeps a window overhanging by less than the stride (PyTorch's partial window);
    # by the stride or more it is an error (was an error for any window larger than the input)
    assert jaxconv.pool_output_size(4, 5, ceil_mode=True) == 1
    with pytest.raises(
        ValueError,
        match=r"the window \(=5\) must fit in the padded input \(=4: size 4 \+ `padding` 0 \+ 0\) "
        r"or, with `ceil_mode`, overhang it by less than the `stride` \(=1\)",
    ):
        jaxconv.pool_output_size(4, 5, stride=1, ceil_mode=True)


# --- padding resolution ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "padding, n, k, s, d, expected",
    [
        ("VALID", 9, 3, 1, 1, (0, 0)),
        ("valid", 9, 3, 1, 1, (0, 0)),  # case-insensitive
        ("SAME", 28, 3, 1, 1, (1, 1)),
        ("SAME", 28, 3, 2, 1, (0, 1)),  # out 14, total 13*2 + 3 - 28 = 1, odd pixel high
        ("SAME_LOWER", 28, 3, 2, 1, (1, 0)),  # ... odd pixel low
        ("SAME", 10, 4, 1, 1, (1, 2)),  # total 3
        ("SAME_LOWER", 10, 4, 1, 1, (2, 1)),
        ("SAME", 10, 3, 1, 2, (2, 2)),  # dilated span 5, total 4
        ("SAME", 10, 1, 3, 1, (0, 0)),  # out 4, (4-1)*3 + 1 - 10 = 0
        ("SAME", 10, 2, 3, 1, (0, 1)),  # (4-1)*3 + 2 - 10 = 1
        ("SAME", 5, 7, 1, 1, (3, 3)),  # kernel larger than the input still works
        # The modes use flax.nnx.Conv's ((k_eff - 1) // 2, k_eff // 2) whatever the stride (was
        # the SAME amounts, (0, 1) here, which differ from Flax at stride > 1: issue 12).
        ("CIRCULAR", 28, 3, 2, 1, (1, 1)),
        ("CIRCULAR", 5, 3, 3, 1, (1, 1)),  # SAME: (0, 1)
        ("REFLECT", 10, 4, 1, 1, (1, 2)),  # = SAME at stride 1
        ("REFLECT", 10, 4, 3, 1, (1, 2)),  # SAME: (1, 1)
        ("REPLICATE", 10, 3, 1, 2, (2, 2)),
        ("REPLICATE", 10, 2, 2, 3, (1, 2)),  # k_eff 4
        ("circular", 3, 6, 4, 1, (2, 3)),  # independent of the input size too
        (2, 9, 3, 1, 1, (2, 2)),
        (((1, 3),), 9, 3, 1, 1, (1, 3)),
        ((-1,), 9, 3, 1, 1, (-1, -1)),
    ],
)
def test_resolve_padding_every_form(padding, n, k, s, d, expected):
    assert jaxconv.resolve_padding(padding, (n,), (k,), (s,), (d,)) == (expected,)


def test_resolve_padding_mixed_per_dim_entries():
    pads = jaxconv.resolve_padding(((1, 2), 3, [0, -1]), (8, 8, 8), (3, 3, 3), (1,) * 3, (1,) * 3)
    assert pads == ((1, 2), (3, 3), (0, -1))
    assert all(type(v) is int for pair in pads for v in pair)
    # numpy integers are accepted and come back as Python ints
    assert jaxconv.resolve_padding(np.int64(2), (8,), (3,), (1,), (1,)) == ((2, 2),)


def test_same_gives_ceil_n_over_s_everywhere():
    for n in range(1, 20):
        for k in range(1, 6):
            for s in range(1, 4):
                for d in (1, 2):
                    ((lo, hi),) = jaxconv.resolve_padding("SAME", (n,), (k,), (s,), (d,))
                    assert hi - lo in (0, 1)
                    out = jaxconv.conv_output_size(n, k, stride=s, dilation=d, padding=(lo, hi))
                    assert out == -(-n // s), (n, k, s, d)


# --- full output shapes ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "input_shape, kernel, c_out, kwargs, expected",
    [
        ((8, 28, 28, 3), 3, 16, dict(stride=2), (8, 14, 14, 16)),  # default SAME
        ((8, 3, 28, 28), (3, 3), 16, dict(padding="VALID", layout="NCHW"), (8, 16, 26, 26)),
        ((2, 29, 17, 4), (3, 5), 6, dict(stride=(2, 1), padding="VALID"), (2, 14, 13, 6)),
        ((2, 10, 3), 3, 5, dict(padding="VALID", layout="NWC"), (2, 8, 5)),
        ((2, 3, 10), 3, 5, dict(padding="VALID", layout="NCW"), (2, 5, 8)),
        ((1, 6, 7, 8, 2), 3, 4, dict(padding="VALID", layout="NDHWC"), (1, 4, 5, 6, 4)),
        ((1, 2, 6, 7, 8), (1, 2, 3), 4, dict(stride=2, layout="NCDHW"), (1, 4, 3, 4, 4)),
        # input dilation: 5 pixels with 1 hole each -> 9; VALID 3 -> 7
        ((1, 5, 5, 1), 3, 1, dict(padding="VALID", input_dilation=2), (1, 7, 7, 1)),
        ((1, 5, 5, 1), 3, 1, dict(padding="SAME", input_dilation=2), (1, 9, 9, 1)),
        # an int kernel/stride/dilation broadcasts to every spatial dim (never a 1-D conv)
        ((1, 9, 9, 9, 1), 3, 2, dict(padding="VALID", dilation=2, stride=2), (1, 3, 3, 3, 2)),
    ],
)
def test_conv_output_shape(input_shape, kernel, c_out, kwargs, expected):
    assert jaxconv.conv_output_shape(input_shape, kernel, c_out, **kwargs) == expected


# --- transposed-conv sizes ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "n, kernel, kwargs, expected",
    [
        (7, 3, dict(stride=2, padding=(1, 2)), 14),  # PyTorch p=1, output_padding=1: 2n
        (7, 3, dict(stride=2, padding=(2, 2)), 15),  # p=0: (7-1)·2 + 3
        (2, 3, dict(stride=2, padding=(2, 2)), 5),  # two pixels scattered 2 apart by 3 taps
        (4, 3, dict(stride=1, padding=(0, 0)), 2),  # stride 1, full crop: a VALID conv
        (3, 3, dict(stride=3, padding=(4, 4), dilation=2), 11),  # (3-1)·3 + 1 + 8 - 4
        (5, 1, dict(stride=2, padding=(-1, 0)), 8),  # a negative pad crops: 9 - 1
    ],
)
def test_conv_transpose_output_size(n, kernel, kwargs, expected):
    assert conv_transpose_output_size(n, kernel, **kwargs) == expected


def test_conv_transpose_output_size_matches_conv_transpose():
    for n, k, s, p, a, d in [(7, 3, 2, 1, 1, 1), (5, 4, 3, 0, 2, 1), (6, 3, 1, 2, 0, 2)]:
        x = jax.ShapeDtypeStruct((1, n, 1), jnp.float32)
        w = jax.ShapeDtypeStruct((k, 1, 1), jnp.float32)
        kw = dict(stride=s, padding=p, output_padding=a, dilation=d)
        shape = jax.eval_shape(lambda x, w, kw=kw: jaxconv.conv_transpose(x, w, **kw), x, w).shape
        ((lo, hi),) = jaxconv.conv_transpose_padding((k,), **kw)
        size = conv_transpose_output_size(n, k, stride=s, padding=(lo, hi), dilation=d)
        assert size == shape[1], (n, k, s, p, a, d)


def test_conv_transpose_output_size_rejects_a_crop_of_everything():
    with pytest.raises(
        ValueError,
        match=r"the output size \(=-1 = \(1-1\)·1 \+ 1 \+ -1 \+ -1 - 0\) must be positive: "
        r"`padding` crops more",
    ):
        conv_transpose_output_size(1, 1, padding=(-1, -1), padding_name="`padding`")


def test_canonicalize_spatial_broadcasts_and_checks():
    assert jaxconv.canonicalize_spatial(3, 3, "kernel") == (3, 3, 3)
    assert jaxconv.canonicalize_spatial([1, 2], 2, "stride") == (1, 2)
    assert jaxconv.canonicalize_spatial(np.int32(2), 1, "stride") == (2,)
    with pytest.raises(ValueError, match=r"`stride` must have one entry per spatial dim \(2\)"):
        jaxconv.canonicalize_spatial((1, 2, 3), 2, "stride")
    with pytest.raises(ValueError, match=r"`dilation` entries must be >= 1, got 0"):
        jaxconv.canonicalize_spatial(0, 2, "dilation")
    with pytest.raises(TypeError, match=r"`kernel` must be an int, got 2.5"):
        jaxconv.canonicalize_spatial(2.5, 2, "kernel")
    with pytest.raises(TypeError, match=r"`kernel` must be an int, got True"):
        jaxconv.canonicalize_spatial(True, 2, "kernel")


# --- pooling sizes (Caffe/PyTorch ceil_mode) -------------------------------------------------
@pytest.mark.parametrize(
    "n, window, kwargs, expected",
    [
        (112, 3, dict(stride=2), 55),  # floor(109 / 2) + 1
        (112, 3, dict(stride=2, ceil_mode=True), 56),  # ceil(109 / 2) + 1: GoogLeNet
        (32, 3, dict(stride=2, ceil_mode=True), 16),  # NiN on CIFAR
        (8, 2, {}, 4),  # stride defaults to the window
        (5, 2, dict(ceil_mode=True), 3),  # last window starts at 4 < 5: kept
        # padded length 7, span 5: ceil gives 4 windows, but the 4th would start at 6 = n + lo,
        # i.e. entirely in the high padding: dropped (PyTorch's rule)
        (5, 2, dict(stride=2, padding=1, ceil_mode=True), 3),
        (5, 2, dict(stride=2, padding=1), 3),
        (7, 3, dict(stride=2, padding="SAME"), 4),
        # ceil_mode partial windows larger than the (padded) input, as PyTorch: out =
        # ceil((n + lo + hi - k) / s) + 1 as long as that is >= 1
        (3, 4, dict(stride=3, ceil_mode=True), 1),  # the issue's [1, 2, 3] → [3.]
        (3, 5, dict(stride=3, ceil_mode=True), 1),
        (3, 4, dict(stride=2, ceil_mode=True), 1),
        (3, 6, dict(stride=4, padding=2, ceil_mode=True), 2),  # second window starts at 2 < 3 + 2
        (1, 3, dict(stride=2, padding=1, ceil_mode=True), 1),
        (2, 3, dict(stride=2, ceil_mode=True), 1),  # GoogLeNet's pool4 on a 2×2 map
        # value-filling modes: the filled pads are input, so a last window may start in them
        (3, 2, dict(stride=3, padding="REPLICATE", ceil_mode=True), 2),  # padded to 4
        (3, 2, dict(stride=3, padding=(0, 1), ceil_mode=True), 1),  # zero pad: dropped
        (5, 3, dict(stride=3, padding="CIRCULAR"), 2),  # pads (1, 1), not SAME's (0, 1)
    ],
)
def test_pool_output_size(n, window, kwargs, expected):
    assert jaxconv.pool_output_size(n, window, **kwargs) == expected


def test_pool_output_size_ceil_mode_equals_pytorchs_formula():
    # PyTorch's pooling_output_shape: (n + 2p - k + (s - 1)) // s + 1, minus one when the last
    # window starts at or past n + p; it raises when that is < 1. Exhaustive over small sizes,
    # with p <= k // 2 (PyTorch's own limit).
    checked = errors = 0
    for n in range(1, 9):
        for k in range(1, 9):
            for s in range(1, 5):
                for p in range(k // 2 + 1):
                    out = (n + 2 * p - k + s - 1) // s + 1
                    if out >= 1 and (out - 1) * s >= n + p:
                        out -= 1
                    kw = dict(stride=s, padding=p, ceil_mode=True)
                    if out < 1:
                        with pytest.raises(ValueError, match=r"overhang it by less than"):
                            jaxconv.pool_output_size(n, k, **kw)
                        errors += 1
                    else:
                        assert jaxconv.pool_output_size(n, k, **kw) == out, (n, k, s, p)
                    checked += 1
    assert checked > 500 and 0 < errors < checked // 4


# --- receptive field -------------------------------------------------------------------------
def RF(size, jump, start):  # reads like the dataclass
    return jaxconv.ReceptiveField(size=size, jump=jump, start=start)


@pytest.mark.parametrize(
    "layers, expected",
    [
        # three 3x3 stride-1 convs see 7x7 (the VGG argument)
        ([(3, 1, 1)] * 3, [RF(3, 1, 0.0), RF(5, 1, 0.0), RF(7, 1, 0.0)]),
        # AlexNet: conv 11/4, pool 3/2, conv 5/1 pad 2 -> 11, 19, 51 (start 5, 9, 9)
        ([(11, 4), (3, 2), (5, 1, 2)], [RF(11, 4, 5.0), RF(19, 8, 9.0), RF(51, 8, 9.0)]),
        # GoogLeNet/ResNet stem: conv 7/2 pad 3 then pool 3/2 pad 1 -> 11, jump 4
        ([(7, 2, 3), (3, 2, 1)], [RF(7, 2, 0.0), RF(11, 4, 0.0)]),
        # conv 3 pad 1, pool 2/2, conv 3 pad 1: the 2x2 pool moves the centre by half a pixel
        ([(3, 1, 1), (2, 2), (3, 1, 1)], [RF(3, 1, 0.0), RF(4, 2, 0.5), RF(8, 2, 0.5)]),
        # dilation 2 makes a 3-tap kernel span 5; a (lo, hi) pair: only lo moves the start
        ([(3, 1, (0, 4), 2), (3, 2, (2, 0))], [RF(5, 1, 2.0), RF(7, 2, 1.0)]),
    ],
)
def test_receptive_field_hand_values(layers, expected):
    assert jaxconv.receptive_field(layers) == expected


def test_receptive_field_matches_the_gradient_support():
    # Where does output pixel j look? The non-zero input gradient of y[j] through a stack of
    # all-ones 1-D convs spans exactly [centre - (size-1)/2, centre + (size-1)/2].
    layers = [(3, 1, 1), (3, 2, 1), (5, 1, 2, 2), (2, 2, 0)]
    rf = jaxconv.receptive_field(layers)[-1]

    def net(x):
        for k, s, p, *d in layers:
            w = jnp.ones((k, 1, 1))
            x = jaxconv.conv(x, w, stride=s, padding=p, dilation=d[0] if d else 1)
        return x

    x = jnp.ones((1, 64, 1))
    j = 5
    grad = jax.grad(lambda x: net(x)[0, j, 0])(x)[0, :, 0]
    support = np.nonzero(np.asarray(grad))[0]
    centre = rf.start + j * rf.jump
    assert support[0] == centre - (rf.size - 1) / 2
    assert support[-1] == centre + (rf.size - 1) / 2
    assert support[-1] - support[0] + 1 == rf.size


def test_receptive_field_rejects_malformed_layers():
    with pytest.raises(ValueError, match=r"`layers\[1\]` must be \(kernel, stride"):
        jaxconv.receptive_field([(3, 1), (3,)])
    with pytest.raises(ValueError, match=r"`layers\[0\]` kernel, stride and dilation must be >= 1"):
        jaxconv.receptive_field([(3, 0)])
