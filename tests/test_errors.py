"""Bad input gives a clear ValueError/TypeError at trace time, naming the argument, the rule and
the value — eagerly and under ``jit`` — never a lowering error, a bare assert or an empty output.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import jaxconv

F32 = jnp.float32


def _x(*shape, dtype=F32):
    return jnp.ones(shape, dtype)


X = _x(1, 8, 8, 4)  # NHWC, C_in = 4
W = _x(3, 3, 4, 8)  # HWIO, C_out = 8
X8 = _x(1, 6, 6, 8)

# (id, function, array args, static kwargs, exception, message regex)
CONV = [
    (
        "x-rank",
        jaxconv.conv,
        (_x(8, 8, 4), W),
        {},
        ValueError,
        r"`x` must have rank 4 \(N, \*spatial, C\) to match the 2-D kernel `w` \(3, 3, 4, 8\), "
        r"got rank 3",
    ),
    (
        "w-rank-matrix",
        jaxconv.conv,
        (X, _x(4, 8)),
        {},
        ValueError,
        r"`w` must have rank 3, 4 or 5 .* got rank 2 .*use `conv1x1`",
    ),
    (
        "w-rank-6",
        jaxconv.conv,
        (X, _x(1, 1, 1, 1, 4, 8)),
        {},
        ValueError,
        r"`w` must have rank 3, 4 or 5 .*got rank 6",
    ),
    (
        "c_in-mismatch",
        jaxconv.conv,
        (X, _x(3, 3, 3, 8)),
        {},
        ValueError,
        r"`w` in-channel dim \(=3\) times `groups` \(=1\) must equal the input channels of `x` "
        r"\(=4\)",
    ),
    (
        "c_in-mismatch-groups",
        jaxconv.conv,
        (X, _x(3, 3, 1, 8)),
        dict(groups=2),
        ValueError,
        r"`w` in-channel dim \(=1\) times `groups` \(=2\) must equal the input channels of `x` "
        r"\(=4\)",
    ),
    (
        "c_in-mismatch-nchw",
        jaxconv.conv,
        (_x(1, 4, 8, 8), _x(8, 3, 3, 3)),
        dict(layout="NCHW"),
        ValueError,
        r"`w` in-channel dim \(=3\) times `groups` \(=1\)",
    ),
    (
        "groups-zero",
        jaxconv.conv,
        (X, W),
        dict(groups=0),
        ValueError,
        r"`groups` must be a positive int, got 0",
    ),
    (
        "groups-negative",
        jaxconv.conv,
        (X, W),
        dict(groups=-2),
        ValueError,
        r"`groups` must be a positive int, got -2",
    ),
    (
        "groups-not-dividing-c_in",
        jaxconv.conv,
        (X8, _x(3, 3, 2, 6)),
        dict(groups=3),
        ValueError,
        r"`groups` \(=3\) must divide the input channels \(=8\)",
    ),
    (
        "groups-not-dividing-c_out",
        jaxconv.conv,
        (X, _x(3, 3, 1, 6)),
        dict(groups=4),
        ValueError,
        r"`groups` \(=4\) must divide the output channels \(=6\)",
    ),
    (
        "groups-float",
        jaxconv.conv,
        (X, W),
        dict(groups=1.0),
        TypeError,
        r"`groups` must be an int, got 1.0",
    ),
    (
        "stride-zero",
        jaxconv.conv,
        (X, W),
        dict(stride=0),
        ValueError,
        r"`stride` entries must be >= 1, got 0",
    ),
    (
        "stride-negative-entry",
        jaxconv.conv,
        (X, W),
        dict(stride=(1, -1)),
        ValueError,
        r"`stride` entries must be >= 1, got \(1, -1\)",
    ),
    (
        "stride-length",
        jaxconv.conv,
        (X, W),
        dict(stride=(1, 1, 1)),
        ValueError,
        r"`stride` must have one entry per spatial dim \(2\), got \(1, 1, 1\)",
    ),
    (
        "stride-float",
        jaxconv.conv,
        (X, W),
        dict(stride=1.5),
        TypeError,
        r"`stride` must be an int, got 1.5",
    ),
    (
        "dilation-zero",
        jaxconv.conv,
        (X, W),
        dict(dilation=0),
        ValueError,
        r"`dilation` entries must be >= 1, got 0",
    ),
    (
        "dilation-negative",
        jaxconv.conv,
        (X, W),
        dict(dilation=-1),
        ValueError,
        r"`dilation` entries must be >= 1, got -1",
    ),
    (
        "input-dilation-zero",
        jaxconv.conv,
        (X, W),
        dict(input_dilation=0),
        ValueError,
        r"`input_dilation` entries must be >= 1, got 0",
    ),
    (
        "kernel-larger-than-input",
        jaxconv.conv,
        (X, _x(9, 3, 4, 8)),
        dict(padding="VALID"),
        ValueError,
        r"the kernel \(=9\) must fit in the padded input \(=8: size 8 \+ `padding` 0",
    ),
    (
        "dilated-kernel-larger",
        jaxconv.conv,
        (X, W),
        dict(padding="VALID", dilation=(1, 5)),
        ValueError,
        r"the dilated kernel \(=11 = 5·\(3-1\)\+1\) must fit in the padded input "
        r"\(=8: size 8 \+ `padding` 0 \+ 0\)",
    ),
    (
        "negative-padding-crops-too-much",
        jaxconv.conv,
        (X, W),
        dict(padding=((-3, -3), (0, 0))),
        ValueError,
        r"the kernel \(=3\) must fit in the padded input \(=2: size 8 \+ `padding` -3",
    ),
    (
        "padding-unknown",
        jaxconv.conv,
        (X, W),
        dict(padding="FULL"),
        ValueError,
        r"`padding` must be one of 'VALID', 'SAME', 'SAME_LOWER', 'CIRCULAR', 'REFLECT', "
        r"'REPLICATE', an int or \(lo, hi\) pairs; got 'FULL'",
    ),
    (
        "padding-triple",
        jaxconv.conv,
        (X, W),
        dict(padding=((1, 2, 3), (0, 0))),
        ValueError,
        r"`padding` entries must be an int or a \(lo, hi\) pair, got \(1, 2, 3\)",
    ),
    (
        "padding-entries",
        jaxconv.conv,
        (X, W),
        dict(padding=((1, 1),) * 3),
        ValueError,
        r"`padding` must have one entry per spatial dim \(2\)",
    ),
    (
        "padding-float",
        jaxconv.conv,
        (X, W),
        dict(padding=1.5),
        TypeError,
        r"`padding` must be a string, an int or \(lo, hi\) pairs, got 1.5",
    ),
    (
        "padding-none",
        jaxconv.conv,
        (X, W),
        dict(padding=None),
        TypeError,
        r"`padding` must be a string, an int or \(lo, hi\) pairs, got None",
    ),
    (
        "padding-float-in-pair",
        jaxconv.conv,
        (X, W),
        dict(padding=((1, 0.5), 0)),
        TypeError,
        r"`padding` must be an int, got 0.5",
    ),
    (
        "padding-mode-with-input-dilation",
        jaxconv.conv,
        (X, W),
        dict(padding="CIRCULAR", input_dilation=2),
        ValueError,
        r"`padding` mode 'CIRCULAR' cannot be combined with `input_dilation` \(=\(2, 2\)\)",
    ),
    (
        "bias-size",
        jaxconv.conv,
        (X, W, _x(7)),
        {},
        ValueError,
        r"`b` must have shape \(8,\) \(one per output channel\), got \(7,\)",
    ),
    (
        "bias-rank",
        jaxconv.conv,
        (X, W, _x(1, 8)),
        {},
        ValueError,
        r"`b` must have shape \(8,\) \(one per output channel\), got \(1, 8\)",
    ),
    (
        "dtype-mismatch",
        jaxconv.conv,
        (X, _x(3, 3, 4, 8, dtype=jnp.bfloat16)),
        {},
        TypeError,
        r"`w` dtype \(=bfloat16\) must equal `x` dtype \(=float32\)",
    ),
    (
        "implementation-unknown",
        jaxconv.conv,
        (X, W),
        dict(implementation="no_such_lowering"),
        ValueError,
        r"`implementation` must be None or one of .*'xla'.*, got 'no_such_lowering'",
    ),
    (
        "implementation-type",
        jaxconv.conv,
        (X, W),
        dict(implementation=3),
        TypeError,
        r"`implementation` must be a lowering name, a Plan or None, got 3",
    ),
    (
        "layout-unknown",
        jaxconv.conv,
        (X, W),
        dict(layout="NWHC"),
        ValueError,
        r"`layout` must be channels-last \('NWC', 'NHWC', 'NDHWC'\) or channels-first "
        r"\('NCW', 'NCHW', 'NCDHW'\), got 'NWHC'",
    ),
    (
        "layout-type",
        jaxconv.conv,
        (X, W),
        dict(layout=None),
        TypeError,
        r"`layout` must be a string such as 'NHWC' or 'NCHW', got None",
    ),
    (
        "zero-size",
        jaxconv.conv,
        (X, _x(3, 3, 4, 0)),
        {},
        ValueError,
        r"`w` must not have zero-size dims, got shape \(3, 3, 4, 0\)",
    ),
    (
        "precision-unknown",
        jaxconv.conv,
        (X, W),
        dict(precision="ultra"),
        ValueError,
        r"`precision` must be None, a lax.Precision or one of 'default', 'high', 'highest', "
        r"got 'ultra'",
    ),
    (
        "precision-type",
        jaxconv.conv,
        (X, W),
        dict(precision=3),
        TypeError,
        r"`precision` must be None, a lax.Precision or a string, got 3",
    ),
    (
        "preferred-unknown",
        jaxconv.conv,
        (X, W),
        dict(preferred_element_type="f99"),
        TypeError,
        r"`preferred_element_type` must be None or a dtype, got 'f99'",
    ),
    (
        "preferred-narrower",
        jaxconv.conv,
        (X, W),
        dict(preferred_element_type=jnp.bfloat16),
        TypeError,
        r"`preferred_element_type` \(=bfloat16\) must not be narrower than the input "
        r"dtype \(=float32\)",
    ),
    (
        "preferred-int-for-float",
        jaxconv.conv,
        (X, W),
        dict(preferred_element_type=jnp.int32),
        TypeError,
        r"`preferred_element_type` \(=int32\) must be a float dtype for float32 inputs",
    ),
]
if "einsum" in jaxconv.convolution.LOWERINGS:
    CONV.append(
        (
            "implementation-does-not-apply",
            jaxconv.conv,
            (X, W),
            dict(implementation="einsum"),
            ValueError,
            r"`implementation` \(='einsum'\) does not apply: .*\(3, 3\)",
        )
    )

CONV1X1 = [
    (
        "w-not-matrix",
        jaxconv.conv1x1,
        (X, _x(1, 1, 4, 8)),
        {},
        ValueError,
        r"`w` must be a matrix \(\[C_in, C_out\], or \[C_out, C_in\] for NCHW\), got shape "
        r"\(1, 1, 4, 8\) \(for a kernel with spatial dims use `conv`\)",
    ),
    (
        "c_in-mismatch",
        jaxconv.conv1x1,
        (X, _x(3, 8)),
        {},
        ValueError,
        r"`w` first dim \(=3\) must equal the input channels of `x` \(=4\)",
    ),
    (
        "c_in-mismatch-nchw",
        jaxconv.conv1x1,
        (_x(1, 4, 8, 8), _x(8, 3)),
        dict(layout="NCHW"),
        ValueError,
        r"`w` second dim \(=3\) must equal the input channels of `x` \(=4\)",
    ),
    (
        "x-scalar",
        jaxconv.conv1x1,
        (_x(), _x(4, 8)),
        {},
        ValueError,
        r"`x` must have rank >= 1 \(\[\.\.\., C_in\]\), got shape \(\)",
    ),
    (
        "x-rank-nchw",
        jaxconv.conv1x1,
        (_x(4), _x(8, 4)),
        dict(layout="NCHW"),
        ValueError,
        r"`x` must have rank >= 2 \(\[N, C_in, \.\.\.\]\), got shape \(4,\)",
    ),
    (
        "bias-size",
        jaxconv.conv1x1,
        (X, _x(4, 8), _x(4)),
        {},
        ValueError,
        r"`b` must have shape \(8,\) \(one per output channel\), got \(4,\)",
    ),
    (
        "dtype-mismatch",
        jaxconv.conv1x1,
        (X, _x(4, 8, dtype=jnp.float16)),
        {},
        TypeError,
        r"`w` dtype \(=float16\) must equal `x` dtype \(=float32\)",
    ),
    (
        "preferred-narrower",
        jaxconv.conv1x1,
        (X, _x(4, 8)),
        dict(preferred_element_type="float16"),
        TypeError,
        r"`preferred_element_type` \(=float16\) must not be narrower",
    ),
    (
        "layout-unknown",
        jaxconv.conv1x1,
        (X, _x(4, 8)),
        dict(layout="HWNC"),
        ValueError,
        r"`layout` must be channels-last",
    ),
]

BOTTLENECK = [
    (
        "w_reduce-not-1x1",
        jaxconv.bottleneck,
        (X, _x(3, 3, 4, 2), _x(3, 3, 2, 8)),
        {},
        ValueError,
        r"`w_reduce` must be a 1×1 kernel or a matrix, got shape \(3, 3, 4, 2\)",
    ),
    (
        "w_reduce-c_in",
        jaxconv.bottleneck,
        (X, _x(3, 2), _x(3, 3, 2, 8)),
        {},
        ValueError,
        r"`w_reduce` first dim \(=3\) must equal the input channels of `x` \(=4\)",
    ),
    (
        "w_spatial-c_in",
        jaxconv.bottleneck,
        (X, _x(4, 2), _x(3, 3, 3, 8)),
        {},
        ValueError,
        r"`w_spatial` in-channel dim \(=3\) times `groups` \(=1\) must equal the reduced channels "
        r"\(=2\) that `w_reduce` \(4, 2\) produces",
    ),
    (
        "w_spatial-c_in-groups",
        jaxconv.bottleneck,
        (X, _x(4, 4), _x(3, 3, 4, 8)),
        dict(groups=2),
        ValueError,
        r"`w_spatial` in-channel dim \(=4\) times `groups` \(=2\) must equal the "
        r"reduced channels \(=4\)",
    ),
    (
        "reduce-implementation-unknown",
        jaxconv.bottleneck,
        (X, _x(4, 2), _x(3, 3, 2, 8)),
        dict(reduce_implementation="nope"),
        ValueError,
        r"`implementation` must be None or one of .*, got 'nope'",
    ),
]

POOL = []
for _pool in (jaxconv.max_pool, jaxconv.avg_pool):
    _n = _pool.__name__
    POOL += [
        (
            f"{_n}-window-too-large",
            _pool,
            (X,),
            dict(window=9),
            ValueError,
            r"the window \(=9\) must fit in the padded input \(=8: size 8 \+ `padding` 0 \+ 0\)",
        ),
        (
            # ceil_mode keeps PyTorch's partial window when a window overhangs the input by
            # less than the stride (window 9 = stride 9 gives one output, issue 12); an
            # overhang of a stride or more is still an error
            f"{_n}-window-too-large-ceil",
            _pool,
            (X,),
            dict(window=(9, 2), stride=1, ceil_mode=True),
            ValueError,
            r"the window \(=9\) must fit in the padded input \(=8: size 8 \+ `padding` 0 \+ 0\) "
            r"or, with `ceil_mode`, overhang it by less than the `stride` \(=1\)",
        ),
        (
            f"{_n}-window-zero",
            _pool,
            (X,),
            dict(window=0),
            ValueError,
            r"`window` entries must be >= 1, got 0",
        ),
        (
            f"{_n}-window-length",
            _pool,
            (X,),
            dict(window=(2, 2, 2)),
            ValueError,
            r"`window` must have one entry per spatial dim \(2\), got \(2, 2, 2\)",
        ),
        (
            f"{_n}-stride-zero",
            _pool,
            (X,),
            dict(window=2, stride=0),
            ValueError,
            r"`stride` entries must be >= 1, got 0",
        ),
        (
            f"{_n}-negative-padding",
            _pool,
            (X,),
            dict(window=2, padding=((0, -1), (0, 0))),
            ValueError,
            r"`padding` must not be negative for pooling, got \(\(0, -1\), \(0, 0\)\)",
        ),
        (
            f"{_n}-window-in-padding",
            _pool,
            (X,),
            dict(window=3, padding=3),
            ValueError,
            r"every pooling window must overlap the input: `padding` \(=\(\(3, 3\), \(3, 3\)\)\) "
            r"puts a whole `window` \(=\(3, 3\)\) in the padding",
        ),
        (
            f"{_n}-window-in-high-padding",
            _pool,
            (X,),
            dict(window=2, stride=1, padding=((0, 2), (0, 0))),
            ValueError,
            r"every pooling window must overlap the input: `padding` \(=\(\(0, 2\), \(0, 0\)\)\)",
        ),
        (
            # a zero-size batch gives an empty output (test_pooling); other dims are errors
            f"{_n}-zero-size-spatial",
            _pool,
            (_x(2, 8, 0, 4),),
            dict(window=2),
            ValueError,
            r"`x` must not have zero-size dims, got shape \(2, 8, 0, 4\)",
        ),
        (
            f"{_n}-zero-size-channels",
            _pool,
            (_x(0, 8, 8, 0),),
            dict(window=2),
            ValueError,
            r"`x` must not have zero-size dims, got shape \(0, 8, 8, 0\)",
        ),
        (
            f"{_n}-ceil_mode-type",
            _pool,
            (X,),
            dict(window=2, ceil_mode=1),
            TypeError,
            r"`ceil_mode` must be a bool, got 1",
        ),
        (
            f"{_n}-padding-unknown",
            _pool,
            (X,),
            dict(window=2, padding="FULL"),
            ValueError,
            r"`padding` must be one of .*got 'FULL'",
        ),
        (
            f"{_n}-x-rank",
            _pool,
            (_x(8, 4),),
            dict(window=2),
            ValueError,
            r"`x` must have rank >= 3 \(N, \*spatial, C\), got shape \(8, 4\)",
        ),
        (
            f"{_n}-layout",
            _pool,
            (X,),
            dict(window=2, layout="CHWN"),
            ValueError,
            r"`layout` must be channels-last",
        ),
    ]
POOL += [
    (
        "avg_pool-count_include_pad-type",
        jaxconv.avg_pool,
        (X,),
        dict(window=2, count_include_pad="yes"),
        TypeError,
        r"`count_include_pad` must be a bool, got 'yes'",
    ),
    (
        "avg_pool-int",
        jaxconv.avg_pool,
        (_x(1, 4, 4, 1, dtype=jnp.int32),),
        dict(window=2),
        TypeError,
        r"`x` must be a float array for avg_pool, got dtype int32",
    ),
    (
        "max_pool-bool",
        jaxconv.max_pool,
        (_x(1, 4, 4, 1, dtype=jnp.bool_),),
        dict(window=2),
        TypeError,
        r"`x` must be a float or int array, got dtype bool",
    ),
    (
        "global_avg_pool-zero-size",
        jaxconv.global_avg_pool,
        (_x(0, 0, 3, 2),),
        {},
        ValueError,
        r"`x` must not have zero-size dims, got shape \(0, 0, 3, 2\)",
    ),
    (
        "global_avg_pool-rank",
        jaxconv.global_avg_pool,
        (_x(8, 4),),
        {},
        ValueError,
        r"`x` must have rank >= 3, got shape \(8, 4\)",
    ),
]

ALL = CONV + CONV1X1 + BOTTLENECK + POOL


@pytest.mark.parametrize(
    "fn, args, kwargs, exc, match",
    [c[1:] for c in ALL],
    ids=[f"{c[1].__name__}-{c[0]}" for c in ALL],
)
def test_clear_error_eagerly_and_under_jit(fn, args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fn(*args, **kwargs)
    with pytest.raises(exc, match=match):  # at trace time, with tracers for the arrays
        jax.jit(lambda *a: fn(*a, **kwargs))(*args)


def test_every_message_names_an_argument():
    # The house rule: a message names the argument (`in backticks`) — or, for size rules,
    # states the sizes involved.
    for name, *_, match in ALL:
        assert "`" in match or "must fit in the padded input" in match, name


def test_non_arrays_are_rejected_with_type_errors():
    with pytest.raises(TypeError, match=r"`x` must be an array, got list"):
        jaxconv.conv([[1.0]], W)
    with pytest.raises(TypeError, match=r"`w` must be an array, got tuple"):
        jaxconv.conv1x1(X, (1.0, 2.0))
    with pytest.raises(TypeError, match=r"`b` must be an array, got float"):
        jaxconv.conv(X, W, 1.0)
    with pytest.raises(TypeError, match=r"`x` must be an array, got NoneType"):
        jaxconv.max_pool(None, 2)


def test_geometry_and_cost_errors():
    with pytest.raises(ValueError, match=r"`padding` must have one entry per spatial dim \(1\)"):
        jaxconv.conv_output_size(8, 3, padding=((1, 1), (1, 1)))
    with pytest.raises(TypeError, match=r"`padding` must be a string, an int or \(lo, hi\) pairs"):
        jaxconv.resolve_padding(True, (8,), (3,), (1,), (1,))
    with pytest.raises(ValueError, match=r"`input_shape` must be \(N, \*spatial, C\)"):
        jaxconv.conv_output_shape((8, 3), 3, 4)
    with pytest.raises(
        ValueError,
        match=r"`groups` \(=3\) must divide the input channels \(=8\)$",
    ):
        jaxconv.conv_cost((8, 8, 8), 6, 3, groups=3)
    with pytest.raises(ValueError, match=r"`stride` entries must be >= 1, got 0"):
        jaxconv.pool_output_size(8, 2, stride=0)


# --- layout mistakes (issue 13: PyTorch's NCHW/OIHW arrays under the NHWC/HWIO default) ------

LAYOUT_MISTAKES = [
    # (id, x shape, w shape, layout, message regex)
    (
        "nchw-x-default-layout",
        (2, 3, 16, 16),
        (5, 5, 3, 8),
        "NHWC",
        r"`x` looks channels-first \(NCHW\): its dim 1 \(=3\) matches the kernel's input "
        r"channels; pass `layout=\"NCHW\"` \(which reads `w` as OIHW and `w.transpose\(3, 2, 0, "
        r"1\)`\), or give NHWC `x.transpose\(0, 2, 3, 1\)`",
    ),
    (
        "nchw-x-oihw-w-default-layout",
        (2, 3, 16, 16),
        (8, 3, 7, 7),
        "NHWC",
        r"`x` looks channels-first .* pass `layout=\"NCHW\"` \(which reads `w` as OIHW\)",
    ),
    (
        "oihw-w-default-layout",
        (2, 16, 16, 3),
        (8, 3, 7, 7),
        "NHWC",
        r"`w` looks OIHW \(PyTorch's order\): its dim 1 \(=3\) matches the input channels; the "
        r"default layout takes an HWIO kernel: `w.transpose\(2, 3, 1, 0\)`",
    ),
    (
        "oihw-w-3d",
        (2, 8, 8, 8, 3),
        (16, 3, 5, 5, 5),
        "NHWC",
        r"`w` looks OIHW .* `w.transpose\(2, 3, 4, 1, 0\)`",
    ),
    (
        "hwio-w-nchw-layout",
        (2, 3, 16, 16),
        (7, 7, 3, 8),
        "NCHW",
        r"`w` looks HWIO: its dim -2 \(=3\) matches the input channels; `layout=\"NCHW\"` takes "
        r"an OIHW kernel: `w.transpose\(3, 2, 0, 1\)`",
    ),
    (
        "nhwc-x-nchw-layout",
        (2, 16, 16, 3),
        (8, 3, 5, 5),
        "NCHW",
        r"`x` looks channels-last \(NHWC\): its last dim \(=3\) matches the kernel's input "
        r"channels; drop `layout=\"NCHW\"` \(the default NHWC takes an HWIO kernel and "
        r"`w.transpose\(2, 3, 1, 0\)`\), or give NCHW `x.transpose\(0, 3, 1, 2\)`",
    ),
]


@pytest.mark.parametrize(
    "x_shape, w_shape, layout, message",
    [case[1:] for case in LAYOUT_MISTAKES],
    ids=[case[0] for case in LAYOUT_MISTAKES],
)
def test_a_detectable_layout_mistake_says_which_operand_and_the_fix(
    x_shape, w_shape, layout, message
):
    with pytest.raises(ValueError, match=r"must equal the input channels of `x`.*" + message):
        jaxconv.conv(_x(*x_shape), _x(*w_shape), layout=layout)


def test_an_undetectable_layout_mistake_runs_and_a_right_one_gets_no_hint():
    # OIHW (8, 3, 3, 3) read as HWIO is a valid 3×8 kernel with 3 outputs: the shapes cannot
    # tell (the README documents this case); a plain channel mismatch gets no layout hint.
    assert jaxconv.conv(_x(1, 8, 8, 3), _x(8, 3, 3, 3)).shape == (1, 8, 8, 3)
    with pytest.raises(ValueError, match=r"x has shape \(1, 8, 8, 5\)$"):
        jaxconv.conv(_x(1, 8, 8, 5), _x(3, 3, 4, 8))


def test_max_pool_on_nchw_data_says_so_when_the_window_shows_it():
    with pytest.raises(
        ValueError,
        match=r"the window \(=5\) must fit .*; `x` \(1, 3, 32, 32\) looks channels-first \(NCHW\): "
        r"pass `layout=\"NCHW\"`",
    ):
        jaxconv.max_pool(_x(1, 3, 32, 32), 5)
    with pytest.raises(ValueError, match=r"looks channels-last \(NHWC\): drop `layout=\"NCHW\"`"):
        jaxconv.avg_pool(_x(1, 32, 32, 3), 5, layout="NCHW")
    with pytest.raises(
        ValueError, match=r"must fit in the padded input \(=4: size 4 \+ `padding` 0 \+ 0\)$"
    ):
        jaxconv.max_pool(_x(1, 4, 4, 4), 5)  # too small either way: no hint
