"""DepthwiseConv, SeparableConv, ConvTranspose: trees, the ops they call, PyTorch and Flax
modules with copied weights, jit/grad, costs and errors."""

from __future__ import annotations

from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tol
from flax import nnx

import jaxconv
from jaxconv.nn import Conv, ConvTranspose, DepthwiseConv, SeparableConv


def param_paths(module) -> list[str]:
    return sorted(".".join(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(module, nnx.Param)))


def randn(rng, *shape):
    return jnp.asarray(rng.standard_normal(shape), jnp.float32)


def randomize(module, rng):
    """Every parameter drawn from N(0, 1), so zero-initialized biases are exercised too."""
    for _, var in nnx.to_flat_state(nnx.state(module, nnx.Param)):
        var[...] = randn(rng, *var.shape)
    return module


# --- DepthwiseConv ---------------------------------------------------------------------------


@pytest.mark.parametrize("multiplier", [1, 3])
def test_depthwise_tree_shapes_and_the_op(rng, multiplier):
    dw = randomize(
        DepthwiseConv(
            4,
            (3, 2),
            multiplier=multiplier,
            stride=(2, 1),
            padding=((1, 0), (0, 1)),
            dilation=(1, 2),
            rngs=nnx.Rngs(0),
        ),
        rng,
    )
    assert param_paths(dw) == ["bias", "kernel"]
    assert dw.kernel.shape == (3, 2, 1, 4 * multiplier)
    assert dw.bias.shape == (4 * multiplier,)
    assert (dw.in_features, dw.out_features, dw.multiplier) == (4, 4 * multiplier, multiplier)
    x = randn(rng, 2, 7, 6, 4)
    want = jaxconv.depthwise_conv(
        x,
        dw.kernel[...],
        dw.bias[...],
        stride=(2, 1),
        padding=((1, 0), (0, 1)),
        dilation=(1, 2),
    )
    y = dw(x)
    assert y.shape == (2, 3, 5, 4 * multiplier)  # (7+1-3)//2+1, 6+1-3+1
    np.testing.assert_array_equal(y, want)
    # ... which is the grouped Conv with the same kernel.
    conv = Conv(
        4,
        4 * multiplier,
        (3, 2),
        stride=(2, 1),
        padding=((1, 0), (0, 1)),
        dilation=(1, 2),
        groups=4,
        rngs=nnx.Rngs(0),
    )
    conv.kernel[...], conv.bias[...] = dw.kernel[...], dw.bias[...]
    np.testing.assert_allclose(y, conv(x), atol=tol("float32", 6), rtol=0)


def test_depthwise_without_bias_activation_and_dtype(rng):
    dw = DepthwiseConv(3, 3, use_bias=False, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    assert dw.bias is None and param_paths(dw) == ["kernel"]
    assert dw.kernel.dtype == jnp.float32
    assert dw(jnp.ones((1, 5, 5, 3))).dtype == jnp.bfloat16
    plain = randomize(DepthwiseConv(3, 3, rngs=nnx.Rngs(1)), rng)
    relu = DepthwiseConv(3, 3, activation=jax.nn.relu, rngs=nnx.Rngs(1))
    relu.kernel[...], relu.bias[...] = plain.kernel[...], plain.bias[...]
    x = randn(rng, 2, 6, 6, 3)
    np.testing.assert_array_equal(relu(x), jax.nn.relu(plain(x)))


@pytest.mark.parametrize(
    "multiplier, stride, padding, dilation",
    [(1, 1, 1, 1), (2, 2, 1, 1), (1, 2, 0, 2), (3, 1, 2, 2)],
)
def test_depthwise_matches_torch_conv2d_groups(rng, multiplier, stride, padding, dilation):
    torch = pytest.importorskip("torch")
    c = 5
    layer = torch.nn.Conv2d(
        c, c * multiplier, 3, stride=stride, padding=padding, dilation=dilation, groups=c
    )
    dw = DepthwiseConv(
        c,
        3,
        multiplier=multiplier,
        stride=stride,
        padding=padding,
        dilation=dilation,
        rngs=nnx.Rngs(0),
    )
    # The loading rule of the docstring: (C·m, 1, kh, kw) → (kh, kw, 1, C·m).
    dw.kernel[...] = jnp.asarray(layer.weight.detach().numpy().transpose(2, 3, 1, 0))
    dw.bias[...] = jnp.asarray(layer.bias.detach().numpy())
    x = rng.standard_normal((2, c, 11, 9)).astype(np.float32)
    with torch.no_grad():
        ref = layer(torch.from_numpy(x)).numpy()
    y = dw(jnp.asarray(x.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(np.asarray(y).transpose(0, 3, 1, 2), ref, atol=tol("float32", 9))


def test_depthwise_keras_kernel_reshape_keeps_the_channel_order(rng):
    """Keras's depthwise_kernel (kh, kw, C, m) puts filter j of channel c at output c·m + j;
    reshaped to (kh, kw, 1, C·m) it gives the same outputs here."""
    c, m = 3, 2
    keras_kernel = randn(rng, 3, 3, c, m)
    dw = DepthwiseConv(c, 3, multiplier=m, use_bias=False, rngs=nnx.Rngs(0))
    dw.kernel[...] = keras_kernel.reshape(3, 3, 1, c * m)
    x = randn(rng, 1, 6, 6, c)
    y = dw(x)
    for ch in range(c):
        for j in range(m):
            one = jaxconv.conv(x[..., ch : ch + 1], keras_kernel[:, :, ch : ch + 1, j : j + 1])
            np.testing.assert_allclose(y[..., ch * m + j], one[..., 0], atol=tol("float32", 9))


def test_depthwise_cost_is_the_cost_model():
    dw = nnx.eval_shape(lambda: DepthwiseConv(32, 3, multiplier=2, stride=2, rngs=nnx.Rngs(0)))
    cost = dw.cost((4, 112, 112, 32))
    assert cost == jaxconv.depthwise_cost((112, 112, 32), 3, multiplier=2, stride=2, batch=4)
    assert cost.macs == 4 * 56 * 56 * 9 * 64 and cost.params == 9 * 64 + 64


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(multiplier=0), ValueError, r"`multiplier` must be a positive int, got 0"),
        (dict(multiplier=1.5), TypeError, r"`multiplier` must be an int, got 1.5"),
        (dict(multiplier=True), TypeError, r"`multiplier` must be an int, got True"),
        (dict(in_features=0), ValueError, r"`in_features` must be a positive int, got 0"),
        (dict(kernel_size=(3, 3, 3, 3)), ValueError, r"`kernel_size` must be an int"),
        (dict(stride=(1, 2, 3)), ValueError, r"`stride` must have one entry per spatial dim"),
        (dict(padding="FULL"), ValueError, r"`padding` must be one of"),
        (dict(implementation="cudnn"), ValueError, r"`implementation` must be None or one of"),
        (dict(activation="relu"), TypeError, r"`activation` must be a callable or None"),
    ],
)
def test_depthwise_constructor_errors(kwargs, err, match):
    args = dict(in_features=4, kernel_size=3) | kwargs
    with pytest.raises(err, match=match):
        DepthwiseConv(**args, rngs=nnx.Rngs(0))


# --- SeparableConv ---------------------------------------------------------------------------


def test_separable_tree_and_biases():
    sep = nnx.eval_shape(lambda: SeparableConv(8, 16, 3, multiplier=2, rngs=nnx.Rngs(0)))
    assert param_paths(sep) == ["depthwise.kernel", "pointwise.bias", "pointwise.kernel"]
    assert sep.depthwise.kernel.shape == (3, 3, 1, 16)
    assert sep.pointwise.kernel.shape == (1, 1, 16, 16)
    assert (sep.in_features, sep.out_features, sep.multiplier) == (8, 16, 2)
    both = nnx.eval_shape(lambda: SeparableConv(8, 4, 3, use_depthwise_bias=True, rngs=nnx.Rngs(0)))
    assert param_paths(both) == [
        "depthwise.bias",
        "depthwise.kernel",
        "pointwise.bias",
        "pointwise.kernel",
    ]
    assert both.depthwise.bias.shape == (8,) and both.pointwise.bias.shape == (4,)
    none = nnx.eval_shape(lambda: SeparableConv(8, 4, 3, use_bias=False, rngs=nnx.Rngs(0)))
    assert param_paths(none) == ["depthwise.kernel", "pointwise.kernel"]


@pytest.mark.parametrize("activation", [None, jax.nn.relu, jax.nn.relu6])
def test_separable_is_the_op_and_its_submodules_in_sequence(rng, activation):
    sep = randomize(
        SeparableConv(
            4,
            6,
            3,
            multiplier=2,
            stride=2,
            padding=1,
            activation=activation,
            use_depthwise_bias=True,
            rngs=nnx.Rngs(0),
        ),
        rng,
    )
    x = randn(rng, 2, 9, 8, 4)
    y = sep(x)
    assert y.shape == (2, 5, 4, 6)
    want = jaxconv.separable_conv(
        x,
        sep.depthwise.kernel[...],
        sep.pointwise.kernel[...].reshape(8, 6),
        sep.depthwise.bias[...],
        sep.pointwise.bias[...],
        activation=activation,
        stride=2,
        padding=1,
    )
    np.testing.assert_array_equal(y, want)
    h = sep.depthwise(x)
    h = h if activation is None else activation(h)
    np.testing.assert_allclose(y, sep.pointwise(h), atol=tol("float32", 9 + 8), rtol=0)


@pytest.mark.parametrize("multiplier, stride", [(1, 1), (2, 2)])
def test_separable_matches_a_torch_depthwise_pointwise_pair(rng, multiplier, stride):
    torch = pytest.importorskip("torch")
    c, c_out = 4, 7
    pair = torch.nn.Sequential(
        torch.nn.Conv2d(c, c * multiplier, 3, stride=stride, padding=1, groups=c),
        torch.nn.ReLU(),
        torch.nn.Conv2d(c * multiplier, c_out, 1),
    )
    sep = SeparableConv(
        c,
        c_out,
        3,
        multiplier=multiplier,
        stride=stride,
        padding=1,
        activation=jax.nn.relu,
        use_depthwise_bias=True,
        rngs=nnx.Rngs(0),
    )
    # The docstring's table: both torch weights transposed by (2, 3, 1, 0), biases as they are.
    weights = {name: t.detach().numpy() for name, t in pair.state_dict().items()}
    sep.depthwise.kernel[...] = jnp.asarray(weights["0.weight"].transpose(2, 3, 1, 0))
    sep.depthwise.bias[...] = jnp.asarray(weights["0.bias"])
    sep.pointwise.kernel[...] = jnp.asarray(weights["2.weight"].transpose(2, 3, 1, 0))
    sep.pointwise.bias[...] = jnp.asarray(weights["2.bias"])
    x = rng.standard_normal((2, c, 10, 9)).astype(np.float32)
    with torch.no_grad():
        ref = pair(torch.from_numpy(x)).numpy()
    y = sep(jnp.asarray(x.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(
        np.asarray(y).transpose(0, 3, 1, 2), ref, atol=tol("float32", 9 * c * multiplier)
    )


def test_separable_cost_is_the_two_convs_against_a_standard_one():
    sep = nnx.eval_shape(lambda: SeparableConv(512, 512, 3, rngs=nnx.Rngs(0)))
    cost = sep.cost((2, 14, 14, 512))
    assert cost.depthwise == sep.depthwise.cost((2, 14, 14, 512))
    assert cost.pointwise == sep.pointwise.cost((2, 14, 14, 512))
    assert cost.depthwise.params == 9 * 512  # no depthwise bias by default
    assert cost.pointwise.params == 512 * 512 + 512
    assert cost.macs_separable == 2 * 14 * 14 * 512 * (9 + 512)
    assert cost.macs_ratio == Fraction(1, 512) + Fraction(1, 9)  # MobileNet's eq. (5)
    plain = jaxconv.separable_cost((14, 14, 512), 512, 3, batch=2)
    assert cost.macs_standard == plain.macs_standard
    assert cost.weights_ratio == plain.weights_ratio


def test_separable_errors():
    with pytest.raises(ValueError, match=r"`multiplier` must be a positive int, got -1"):
        SeparableConv(4, 8, 3, multiplier=-1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"`out_features` must be a positive int, got 0"):
        SeparableConv(4, 0, 3, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match=r"`activation` must be a callable or None"):
        SeparableConv(4, 8, 3, activation="relu", rngs=nnx.Rngs(0))
    sep = nnx.eval_shape(lambda: SeparableConv(4, 8, 3, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"SeparableConv expects `x` with 4 input channels"):
        sep(jnp.ones((1, 6, 6, 5)))


# --- ConvTranspose ---------------------------------------------------------------------------


@pytest.mark.parametrize("transpose_kernel", [False, True])
def test_transpose_tree_shapes_and_the_op(rng, transpose_kernel):
    up = randomize(
        ConvTranspose(
            4,
            6,
            (3, 2),
            stride=(2, 3),
            padding=((1, 0), 1),
            output_padding=(1, 0),
            dilation=(1, 2),
            groups=2,
            transpose_kernel=transpose_kernel,
            rngs=nnx.Rngs(0),
        ),
        rng,
    )
    assert param_paths(up) == ["bias", "kernel"]
    assert up.kernel.shape == ((3, 2, 3, 4) if transpose_kernel else (3, 2, 2, 6))
    assert up.bias.shape == (6,)
    assert up.padding == ((1, 0), (1, 1)) and up.output_padding == (1, 0)
    x = randn(rng, 2, 5, 4, 4)
    want = jaxconv.conv_transpose(
        x,
        up.kernel[...],
        up.bias[...],
        stride=(2, 3),
        padding=((1, 0), 1),
        output_padding=(1, 0),
        dilation=(1, 2),
        groups=2,
        transpose_kernel=transpose_kernel,
    )
    y = up(x)
    # (5-1)·2 - 1 + 2 + 1 + 1 = 11; (4-1)·3 - 2 + 2 + 0 + 1 = 10
    assert y.shape == (2, 11, 10, 6)
    np.testing.assert_array_equal(y, want)


def test_transpose_without_bias_activation_and_1d_3d(rng):
    up = ConvTranspose(3, 4, 3, use_bias=False, transpose_kernel=True, rngs=nnx.Rngs(0))
    assert up.bias is None and param_paths(up) == ["kernel"]
    plain = randomize(ConvTranspose(3, 4, 3, stride=2, rngs=nnx.Rngs(1)), rng)
    relu = ConvTranspose(3, 4, 3, stride=2, activation=jax.nn.relu, rngs=nnx.Rngs(1))
    relu.kernel[...], relu.bias[...] = plain.kernel[...], plain.bias[...]
    x = randn(rng, 2, 4, 4, 3)
    np.testing.assert_array_equal(relu(x), jax.nn.relu(plain(x)))
    one = ConvTranspose(3, 4, (4,), stride=2, padding=1, rngs=nnx.Rngs(0))
    assert one.kernel.shape == (4, 3, 4)
    assert one(jnp.ones((1, 5, 3))).shape == (1, 10, 4)
    three = ConvTranspose(2, 2, (2, 2, 2), stride=2, rngs=nnx.Rngs(0))
    assert three(jnp.ones((1, 3, 3, 3, 2))).shape == (1, 6, 6, 6, 2)


def _torch_cases():
    for stride, dilation in [(1, 1), (2, 1), (3, 1), (2, 2)]:
        for padding in range(3):
            for extra in range(max(stride, dilation)):
                yield stride, dilation, padding, extra


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("transpose_kernel", [False, True])
@pytest.mark.parametrize("stride, dilation, padding, extra", list(_torch_cases()))
def test_transpose_matches_torch_conv_transpose2d(
    rng, stride, dilation, padding, extra, groups, transpose_kernel
):
    """Every padding/output_padding on the grid, the weight loaded as the docstring says."""
    torch = pytest.importorskip("torch")
    c_in, c_out, kh, kw = 4, 6, 3, 2
    layer = torch.nn.ConvTranspose2d(
        c_in,
        c_out,
        (kh, kw),
        stride=stride,
        padding=padding,
        output_padding=extra,
        dilation=dilation,
        groups=groups,
    )
    up = ConvTranspose(
        c_in,
        c_out,
        (kh, kw),
        stride=stride,
        padding=padding,
        output_padding=extra,
        dilation=dilation,
        groups=groups,
        transpose_kernel=transpose_kernel,
        rngs=nnx.Rngs(0),
    )
    w = layer.weight.detach().numpy()  # (C_in, C_out/g, kh, kw)
    if transpose_kernel:
        kernel = w.transpose(2, 3, 1, 0)
    elif groups == 1:
        kernel = w.transpose(2, 3, 0, 1)
    else:
        kernel = w.reshape(groups, c_in // groups, c_out // groups, kh, kw)
        kernel = kernel.transpose(3, 4, 1, 0, 2).reshape(kh, kw, c_in // groups, c_out)
    up.kernel[...] = jnp.asarray(kernel)
    up.bias[...] = jnp.asarray(layer.bias.detach().numpy())
    x = rng.standard_normal((2, c_in, 5, 4)).astype(np.float32)
    with torch.no_grad():
        ref = layer(torch.from_numpy(x)).numpy()
    y = up(jnp.asarray(x.transpose(0, 2, 3, 1)))
    assert up.cost((2, 5, 4, c_in)).output_shape == (*ref.shape[2:], c_out)
    np.testing.assert_allclose(
        np.asarray(y).transpose(0, 3, 1, 2), ref, atol=tol("float32", kh * kw * c_in), rtol=0
    )


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("transpose_kernel", [False, True])
def test_transpose_matches_flax_conv_transpose(rng, padding, stride, transpose_kernel):
    flax_layer = nnx.ConvTranspose(
        3,
        5,
        (4, 3),
        strides=stride,
        padding=padding,
        transpose_kernel=transpose_kernel,
        rngs=nnx.Rngs(0),
    )
    flax_layer.bias[...] = randn(rng, 5)
    up = ConvTranspose(
        3,
        5,
        (4, 3),
        stride=stride,
        padding=padding.lower(),
        transpose_kernel=transpose_kernel,
        rngs=nnx.Rngs(1),
    )
    assert up.padding == padding and up.kernel.shape == flax_layer.kernel.shape
    k = flax_layer.kernel[...]
    # The docstring's rule: Flax's transpose_kernel=False kernel is flipped, True's taken as is.
    up.kernel[...] = k if transpose_kernel else jnp.flip(k, (0, 1))
    up.bias[...] = flax_layer.bias[...]
    x = randn(rng, 2, 6, 5, 3)
    ref = flax_layer(x)
    y = up(x)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=tol("float32", 3 * 12), rtol=0)


def test_transpose_default_padding_is_flax_default(rng):
    """Issue 25, item 5: ``ConvTranspose(8, 4, 3, stride=2)`` on 8×8 gives
    ``nnx.ConvTranspose``'s 16×16 (its default ``"SAME"``), not PyTorch's 17×17."""
    flax_layer = nnx.ConvTranspose(8, 4, (3, 3), strides=2, rngs=nnx.Rngs(0))
    flax_layer.bias[...] = randn(rng, 4)
    up = ConvTranspose(8, 4, 3, stride=2, rngs=nnx.Rngs(1))
    up.kernel[...] = jnp.flip(flax_layer.kernel[...], (0, 1))
    up.bias[...] = flax_layer.bias[...]
    x = randn(rng, 2, 8, 8, 8)
    ref = flax_layer(x)
    assert up.padding == "SAME" and up(x).shape == ref.shape == (2, 16, 16, 4)
    np.testing.assert_allclose(up(x), ref, atol=tol("float32", 8 * 9), rtol=0)
    torch_default = ConvTranspose(8, 4, 3, stride=2, padding=0, rngs=nnx.Rngs(1))
    assert torch_default(x).shape == (2, 17, 17, 4)


def test_transpose_flax_explicit_padding_maps_to_crops(rng):
    """Flax's explicit pads (lo, hi) of the dilated input are padding (d(k-1)-lo, d(k-1)-hi)."""
    flax_layer = nnx.ConvTranspose(
        3, 4, (3, 3), strides=2, padding=((1, 2), (2, 0)), rngs=nnx.Rngs(0)
    )
    up = ConvTranspose(
        3, 4, 3, stride=2, padding=((2 - 1, 2 - 2), (2 - 2, 2 - 0)), rngs=nnx.Rngs(1)
    )
    up.kernel[...] = jnp.flip(flax_layer.kernel[...], (0, 1))
    x = randn(rng, 1, 5, 4, 3)
    ref = flax_layer(x)
    np.testing.assert_allclose(up(x), ref, atol=tol("float32", 27), rtol=0)


def test_transpose_cost_is_the_forward_convs():
    """The scatter MACs equal those of the conv whose gradient the layer is."""
    up = nnx.eval_shape(
        lambda: ConvTranspose(64, 32, 3, stride=2, padding=1, output_padding=1, rngs=nnx.Rngs(0))
    )
    cost = up.cost((2, 7, 7, 64))
    forward = jaxconv.conv_cost((14, 14, 32), 64, 3, stride=2, padding=1, bias=False, batch=2)
    assert forward.output_shape == (7, 7, 64)
    assert cost.output_shape == (14, 14, 32)
    assert cost.macs == forward.macs == 2 * 7 * 7 * 9 * 64 * 32
    assert cost.weights == forward.weights and cost.params == forward.weights + 32
    assert cost.bytes == (2 * 7 * 7 * 64 + cost.params + 2 * 14 * 14 * 32) * 4
    grouped = nnx.eval_shape(lambda: ConvTranspose(8, 4, 2, stride=2, groups=2, rngs=nnx.Rngs(0)))
    assert grouped.cost((1, 3, 3, 8)).macs == 3 * 3 * 4 * 4 * 4
    with pytest.raises(ValueError, match=r"`input_shape` must be \(N, \*spatial, 64\)"):
        up.cost((2, 7, 7, 32))
    # padding 1 crops a 1-tap scatter of one pixel to nothing: (1-1)·1 + 1 - 1 - 1 - 0 = -1
    crop = nnx.eval_shape(lambda: ConvTranspose(4, 4, 1, padding=1, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"the output size \(=-1 = .*\) must be positive"):
        crop.cost((1, 1, 1, 4))


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (
            dict(stride=2, padding=0, output_padding=2),
            ValueError,
            r"`output_padding` \(=\(2, 2\)\) must be smaller than either `stride`",
        ),
        (  # the default padding is "SAME"; PyTorch's output_padding needs PyTorch's padding
            dict(stride=2, output_padding=1),
            ValueError,
            r"`output_padding` .* needs an int .* pass `padding=0`, PyTorch's default",
        ),
        (
            dict(stride=1, padding=1, output_padding=1),
            ValueError,
            r"`output_padding` .* must be smaller than either `stride` \(=\(1, 1\)\)",
        ),
        (
            dict(stride=2, padding="SAME", output_padding=1),
            ValueError,
            r"`output_padding` .* needs an int or per-dim `padding`",
        ),
        (dict(padding="CIRCULAR"), ValueError, r"`padding` must be 'SAME' or 'VALID'"),
        (dict(padding=-1), ValueError, r"`padding` must not be negative"),
        (dict(output_padding=-1), ValueError, r"`output_padding`"),
        (dict(groups=4), ValueError, r"`groups` \(=4\) must divide `in_features` \(=6\)"),
        (dict(groups=3), ValueError, r"`groups` \(=3\) must divide `out_features` \(=4\)"),
        (dict(transpose_kernel=1), TypeError, r"`transpose_kernel` must be a bool"),
        (dict(stride=0), ValueError, r"`stride`"),
        (dict(implementation="cudnn"), ValueError, r"`implementation` must be None or one of"),
    ],
)
def test_transpose_constructor_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        ConvTranspose(6, 4, 3, **kwargs, rngs=nnx.Rngs(0))


def test_transpose_call_errors():
    up = ConvTranspose(6, 4, 3, padding=3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"ConvTranspose expects `x` with 6 input channels"):
        up(jnp.ones((1, 4, 4, 5)))
    with pytest.raises(ValueError, match=r"the output size .* must be positive"):
        up(jnp.ones((1, 2, 2, 6)))  # (2-1) + 2 - 6 = -3


# --- all three: jit and grad -----------------------------------------------------------------


@pytest.mark.parametrize(
    "make, x_shape",
    [
        (lambda: DepthwiseConv(4, 3, multiplier=2, stride=2, rngs=nnx.Rngs(0)), (2, 8, 8, 4)),
        (
            lambda: SeparableConv(
                4, 6, 3, activation=jax.nn.relu, use_depthwise_bias=True, rngs=nnx.Rngs(0)
            ),
            (2, 8, 8, 4),
        ),
        (
            lambda: ConvTranspose(4, 6, 3, stride=2, padding=1, output_padding=1, rngs=nnx.Rngs(0)),
            (2, 5, 5, 4),
        ),
        (
            lambda: ConvTranspose(
                4, 6, 3, stride=2, padding="SAME", transpose_kernel=True, rngs=nnx.Rngs(0)
            ),
            (2, 5, 5, 4),
        ),
    ],
)
def test_jit_equals_eager_and_grads_match_finite_differences(rng, make, x_shape):
    module = randomize(make(), rng)
    x = randn(rng, *x_shape)
    np.testing.assert_allclose(nnx.jit(lambda m, v: m(v))(module, x), module(x), atol=1e-5)

    def loss(m, v):
        return jnp.sum(jnp.sin(m(v)))

    grads = nnx.grad(loss)(module, x)
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    # A directional derivative along a random parameter direction, against central differences.
    direction = jax.tree.map(lambda p: randn(rng, *p.shape), params)

    def along(t):
        moved = jax.tree.map(lambda p, d: p + t * d, params, direction)
        return loss(nnx.merge(graphdef, moved, rest), x)

    eps = 1e-3  # unit-scale parameters and outputs: sin is far from linear over 1e-2
    numeric = (along(eps) - along(-eps)) / (2 * eps)
    analytic = sum(
        jnp.vdot(g, d)
        for g, d in zip(jax.tree.leaves(grads), jax.tree.leaves(direction), strict=True)
    )
    np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=2e-2)


def test_summary_counts_the_modern_modules():
    """summary's rows: the depthwise conv's, the transposed conv's and the separable pair's
    MACs from their cost() (the separable conv as one row: its submodules never run alone)."""
    from jaxconv.nn import ConvTranspose, DepthwiseConv, SeparableConv, summary

    x = jax.ShapeDtypeStruct((2, 8, 8, 4), jnp.float32)
    for module in (
        DepthwiseConv(4, 3, multiplier=2, rngs=nnx.Rngs(0)),
        SeparableConv(4, 6, 3, rngs=nnx.Rngs(0)),
        ConvTranspose(4, 6, 3, stride=2, rngs=nnx.Rngs(0)),
    ):
        cost = module.cost(x.shape)
        macs = getattr(cost, "macs_separable", None) or cost.macs
        assert summary(module, x, xla=None).total.macs == macs > 0
