"""The Inception block (Szegedy et al. 2015, Fig. 2b) and its branches.

Parameter paths are the checkpoint format and never change::

    branch_1x1                  1×1 conv
    branch_3x3.reduce           1×1 reduce (absent when its width is 0)
    branch_3x3.conv             3×3 conv
    branch_5x5.reduce, .conv    the same for the 5×5 branch
    branch_pool.proj            1×1 projection after the 3×3 max pool (absent with
                                ``pool_size=None``)

The names are those of the paper's branches whatever ``kernel_sizes`` says: with
``kernel_sizes=(3, 7)`` the 7×7 lives in ``branch_5x5`` (the second k×k branch), so a port keeps
one checkpoint layout.

With ``norm="batch"`` each of these is a :class:`~jaxconv.nn.ConvBN` (``.conv.kernel``,
``.bn.scale``…); without, a :class:`~jaxconv.nn.Conv1x1` / :class:`~jaxconv.nn.Conv`
(``.kernel``, ``.bias``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypedDict

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn.dtypes import promote_dtype
from jax import lax

from jaxconv._check import check_activation, check_bool, check_int, check_number
from jaxconv.nn._conv import (
    Activation,
    Conv,
    Conv1x1,
    ConvBN,
    Initializer,
    activate,
    default_kernel_init,
    pointwise,
)
from jaxconv.nn._pool import MaxPool
from jaxconv.nn._validate import check_channels

__all__ = ["Bottleneck", "Inception", "PoolProjection"]

Array = jax.Array
Unit = Conv | Conv1x1 | ConvBN

#: The six numbers of a row of Table 1, in the paper's column order.
WIDTH_NAMES = ("#1×1", "#3×3 reduce", "#3×3", "#5×5 reduce", "#5×5", "pool proj")
_NORMS = (None, "batch")


def _check_norm(norm: Any) -> str | None:
    if norm not in _NORMS:
        raise ValueError(f"`norm` must be None or 'batch', got {norm!r}")
    return norm


class BatchNormOptions(TypedDict, total=False):
    """The BatchNorm keywords of :class:`ConvBN` a block passes down (absent: ConvBN's default)."""

    momentum: float
    epsilon: float


def bn_options(norm: str | None, momentum: Any, epsilon: Any) -> BatchNormOptions:
    """The BatchNorm keywords of :class:`ConvBN` that were given (None: ConvBN's default).

    ``momentum`` must be in ``[0, 1)`` and ``epsilon`` positive; either one set without
    BatchNorm (``norm=None``) is an error rather than silently ignored.

    Examples:
      >>> bn_options("batch", 0.9, None)
      {'momentum': 0.9}
      >>> bn_options(None, None, 1e-3)
      Traceback (most recent call last):
      ...
      ValueError: `epsilon` needs BatchNorm (norm='batch'), got epsilon=0.001 with norm=None
    """
    for name, value in (("momentum", momentum), ("epsilon", epsilon)):
        if value is not None and norm != "batch":
            raise ValueError(
                f"`{name}` needs BatchNorm (norm='batch'), got {name}={value!r} with norm={norm!r}"
            )
    options = BatchNormOptions()
    if momentum is not None:
        options["momentum"] = check_number(momentum, "momentum", 0.0, 1.0)
    if epsilon is not None:
        options["epsilon"] = check_number(epsilon, "epsilon", 0.0)
        if options["epsilon"] <= 0:
            raise ValueError(f"`epsilon` must be a positive number, got {epsilon!r}")
    return options


def check_kernel_init(kernel_init: Any) -> Initializer:
    """``kernel_init`` if it is callable (an ``nnx.initializers`` function); TypeError otherwise."""
    if not callable(kernel_init):
        raise TypeError(
            f"`kernel_init` must be an initializer (a callable such as "
            f"nnx.initializers.lecun_normal()), got {kernel_init!r}"
        )
    return kernel_init


class UnitOptions(TypedDict):
    """What a block passes to every unit :func:`make_unit` builds (and its branch blocks take
    as keywords), with the BatchNorm keywords checked once by :func:`unit_options`."""

    norm: str | None
    activation: Activation | None
    kernel_init: Initializer
    dtype: Any
    param_dtype: Any
    precision: Any


def unit_options(
    norm: Any,
    activation: Any,
    momentum: Any,
    epsilon: Any,
    kernel_init: Any,
    dtype: Any,
    param_dtype: Any,
    precision: Any,
) -> tuple[UnitOptions, BatchNormOptions]:
    """A block's constructor options for its units, checked: ``norm``, ``activation`` and
    ``kernel_init`` with the numerics as given, and the BatchNorm keywords (:func:`bn_options`).
    """
    norm = _check_norm(norm)
    activation = check_activation(activation)
    bn = bn_options(norm, momentum, epsilon)
    options = UnitOptions(
        norm=norm,
        activation=activation,
        kernel_init=check_kernel_init(kernel_init),
        dtype=dtype,
        param_dtype=param_dtype,
        precision=precision,
    )
    return options, bn


def make_unit(
    in_features: int,
    out_features: int,
    kernel_size: int,
    *,
    norm: str | None,
    activation: Activation | None,
    rngs: nnx.Rngs,
    implementation: str | None = None,
    bn: BatchNormOptions | None = None,
    **common: Any,
) -> Unit:
    """One conv of a block, followed by ``activation``.

    ``norm="batch"`` gives a :class:`ConvBN` (no conv bias) with the BatchNorm keywords ``bn``
    (from :func:`bn_options`); otherwise a :class:`Conv1x1` for a 1×1 and a :class:`Conv`
    (SAME padding) for a k×k. ``common`` (dtype, param_dtype, precision, kernel_init) goes to
    every conv; :func:`unit_options` gathers all of these.
    """
    if norm == "batch":
        return ConvBN(
            in_features,
            out_features,
            kernel_size,
            activation=activation,
            implementation=implementation,
            rngs=rngs,
            **(bn or {}),
            **common,
        )
    if bn:
        raise ValueError(f"BatchNorm options {bn!r} need norm='batch', got norm={norm!r}")
    if kernel_size == 1:
        return Conv1x1(in_features, out_features, activation=activation, rngs=rngs, **common)
    return Conv(
        in_features,
        out_features,
        kernel_size,
        activation=activation,
        implementation=implementation,
        rngs=rngs,
        **common,
    )


@jax.custom_jvp
def concat_channels(ys: list[Array]) -> Array:
    """``jnp.concatenate(ys, axis=-1)``; 16-bit floats are concatenated as their bits.

    XLA:CPU copies bfloat16 through float32 element by element: Inception 3a's output
    (8×28×28×256) took 1.55 ms to concatenate as bfloat16 and 0.37 ms as uint16 (float32:
    0.49). A bitcast is free on every backend. The derivative is the plain concatenate's.
    """
    dtype = ys[0].dtype
    if not jnp.issubdtype(dtype, jnp.floating) or dtype.itemsize != 2:
        return jnp.concatenate(ys, axis=-1)
    bits = [lax.bitcast_convert_type(y, jnp.uint16) for y in ys]
    return lax.bitcast_convert_type(jnp.concatenate(bits, axis=-1), dtype)


@concat_channels.defjvp
def _concat_channels_jvp(primals, tangents):
    ((ys,), (ts,)) = primals, tangents
    return concat_channels(ys), jnp.concatenate(ts, axis=-1)


def _pointwise_parts(unit: Unit) -> tuple[Array, Array | None, Callable[[Array], Array]]:
    """A 1×1 unit as (``[C_in, C_out]`` matrix, bias or None, what follows the matmul)."""
    if isinstance(unit, ConvBN):
        conv = unit.conv
        return (conv.kernel[...].reshape(conv.in_features, conv.out_features), None, unit.finish)
    if not isinstance(unit, Conv1x1):
        raise TypeError(f"a fused 1×1 unit must be a Conv1x1 or a ConvBN, got {unit!r}")
    bias = None if unit.bias is None else unit.bias[...]
    return unit.matrix(), bias, functools.partial(activate, activation=unit.activation)


class Bottleneck(nnx.Module):
    """One Inception branch: optional 1×1 ``reduce`` → activation → k×k ``conv`` → activation.

    Args:
      in_features: input channels.
      reduce_features: channels after the 1×1 reduce; 0 for no reduce (the k×k reads the
        input directly — the "direct 5×5" of the 1×1-convolution notes).
      out_features: output channels of the k×k.
      kernel_size: k.
      norm: None, or ``"batch"`` for :class:`ConvBN` units without conv biases.
      activation: the non-linearity after each conv.
      momentum, epsilon: of every BatchNorm (None: :class:`ConvBN`'s defaults, 0.9 and
        1e-5); only with ``norm="batch"``.
      kernel_init: initializer of every conv kernel.
      dtype, param_dtype, precision: as for :class:`Conv`.
      implementation: lowering of the k×k conv.
      rngs: ``nnx.Rngs``.

    Call:
      ``[N, H, W, in_features]`` → ``[N, H, W, out_features]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.nn import Bottleneck
      >>> b = Bottleneck(480, 16, 48, 5, rngs=nnx.Rngs(0))
      >>> b.reduce.kernel.shape, b.conv.kernel.shape
      ((1, 1, 480, 16), (5, 5, 16, 48))
      >>> b(jnp.ones((1, 14, 14, 480))).shape
      (1, 14, 14, 48)
    """

    in_features: int
    out_features: int
    reduce: Unit | None
    conv: Unit

    def __init__(
        self,
        in_features: int,
        reduce_features: int,
        out_features: int,
        kernel_size: int,
        *,
        norm: str | None = None,
        activation: Activation | None = jax.nn.relu,
        momentum: float | None = None,
        epsilon: float | None = None,
        kernel_init: Initializer = default_kernel_init,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        implementation: str | None = None,
        rngs: nnx.Rngs,
    ):
        options, bn = unit_options(
            norm, activation, momentum, epsilon, kernel_init, dtype, param_dtype, precision
        )
        self.in_features = check_int(in_features, "in_features")
        kernel_size = check_int(kernel_size, "kernel_size")
        reduce_features = check_int(reduce_features, "reduce_features", minimum=0)
        if reduce_features:
            self.reduce = make_unit(in_features, reduce_features, 1, bn=bn, rngs=rngs, **options)
        else:
            self.reduce = nnx.data(None)
        self.conv = make_unit(
            reduce_features or in_features,
            out_features,
            kernel_size,
            implementation=implementation,
            bn=bn,
            rngs=rngs,
            **options,
        )
        self.out_features = self.conv.out_features

    def __call__(self, x: Array) -> Array:
        return self.conv(x if self.reduce is None else self.reduce(x))


class PoolProjection(nnx.Module):
    """Inception's pool branch: 3×3 max ``pool`` (stride 1, SAME) → 1×1 ``proj`` → activation.

    Args:
      in_features: input channels.
      out_features: channels of the projection.
      pool_size: the max-pool window (3 in the paper).
      norm, activation, momentum, epsilon, kernel_init, dtype, param_dtype, precision, rngs:
        as for :class:`Bottleneck`.

    Call:
      ``[N, H, W, in_features]`` → ``[N, H, W, out_features]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.nn import PoolProjection
      >>> PoolProjection(192, 32, rngs=nnx.Rngs(0))(jnp.ones((1, 28, 28, 192))).shape
      (1, 28, 28, 32)
    """

    in_features: int
    out_features: int
    pool: MaxPool
    proj: Unit

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        pool_size: int = 3,
        norm: str | None = None,
        activation: Activation | None = jax.nn.relu,
        momentum: float | None = None,
        epsilon: float | None = None,
        kernel_init: Initializer = default_kernel_init,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        rngs: nnx.Rngs,
    ):
        self.pool = MaxPool(check_int(pool_size, "pool_size"), stride=1, padding="SAME")
        options, bn = unit_options(
            norm, activation, momentum, epsilon, kernel_init, dtype, param_dtype, precision
        )
        self.proj = make_unit(in_features, out_features, 1, bn=bn, rngs=rngs, **options)
        self.in_features = self.proj.in_features
        self.out_features = self.proj.out_features

    def __call__(self, x: Array) -> Array:
        return self.proj(self.pool(x))


class Inception(nnx.Module):
    """The Inception block with dimension reductions (Szegedy et al. 2015, Fig. 2b).

    Four branches read the block input and are concatenated on the channels, in this order:
    ``branch_1x1`` (1×1); ``branch_3x3`` (1×1 reduce → 3×3); ``branch_5x5`` (1×1 reduce → 5×5);
    ``branch_pool`` (3×3 max pool, stride 1, SAME → 1×1 projection). Each conv is followed by
    ``activation``. ``kernel_sizes`` and ``pool_size`` change the k×k sizes and the pool window
    (the branch names, i.e. the parameter paths, stay); ``pool_size=None`` drops the pool
    branch.

    ``fuse_1x1`` is an execution choice, not a parameterization: the 1×1 convs that read the
    block input (``branch_1x1``, ``branch_3x3.reduce``, ``branch_5x5.reduce``) run as ONE 1×1
    conv over their kernels concatenated at call time (with the bias and ReLU inside it:
    one oneDNN primitive where the extension loads). The parameter tree is
    the same either way, so the same ``rngs`` give the same parameters and the fused and
    unfused outputs agree to float rounding.

    Args:
      in_features: input channels.
      widths: the six numbers of a row of Table 1 — ``(#1×1, #3×3 reduce, #3×3, #5×5 reduce,
        #5×5, pool proj)``, e.g. ``(64, 96, 128, 16, 32, 32)`` for inception (3a). A reduce width
        of 0 drops that 1×1 reduce (the k×k reads the block input directly); every other width
        must be positive, except pool proj, which is 0 exactly when ``pool_size`` is None.
      kernel_sizes: the k of ``branch_3x3`` and of ``branch_5x5`` (positive ints; default
        ``(3, 5)`` as the paper), e.g. ``(3, 7)`` for a 7×7 second branch.
      pool_size: the pool branch's max-pool window (3 in the paper), or None for no pool
        branch (``branch_pool`` is None and ``widths[5]`` must be 0).
      norm: None (the paper: conv biases) or ``"batch"`` (every conv a :class:`ConvBN`).
      activation: the non-linearity after every conv.
      momentum, epsilon: of every BatchNorm (None: :class:`ConvBN`'s defaults, 0.9 and
        1e-5); only with ``norm="batch"``.
      kernel_init: initializer of every conv kernel (default: :class:`Conv`'s LeCun normal).
      fuse_1x1: run the input-reading 1×1 convs as one conv (see above). The default, False:
        on the 2-core AVX-512/AMX CPU of ``bench/results/cpu-x86_64-amx-2c/inception.md`` the
        fused form was faster on 3 of GoogLeNet's 9 blocks in float32 (forward, and
        forward+backward), on 7 and 6 of 9 in bfloat16 (the ``inception`` bench suite
        re-measures it; fusing should pay more on a GPU). This attribute is the option's one
        home: to switch it in a built model, ``model.set_attributes(fuse_1x1=True)`` (as
        ``model.eval()`` sets its flags).
      dtype, param_dtype, precision: as for :class:`Conv`.
      implementation: lowering of the 3×3 and 5×5 convs.
      rngs: ``nnx.Rngs`` with a ``params`` stream.

    Attributes:
      out_features: ``#1×1 + #3×3 + #5×5 + pool proj``.
      kernel_sizes, pool_size: as given.

    Raises:
      ValueError / TypeError: ``widths`` not six non-negative ints as above, a kernel size or
        pool window that is not a positive int, a pool proj width that does not match
        ``pool_size``, or BatchNorm options without ``norm="batch"``.

    Call:
      ``[N, H, W, in_features]`` → ``[N, H, W, out_features]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.nn import Inception
      >>> block = Inception(192, (64, 96, 128, 16, 32, 32), rngs=nnx.Rngs(0))   # 3a
      >>> block.out_features
      256
      >>> block(jnp.ones((1, 8, 8, 192))).shape
      (1, 8, 8, 256)
      >>> block.branch_5x5.reduce.kernel.shape
      (1, 1, 192, 16)

      A 7×7 second branch and no pool branch (its width 0):

      >>> block = Inception(192, (64, 96, 128, 16, 32, 0), kernel_sizes=(3, 7), pool_size=None,
      ...                   rngs=nnx.Rngs(0))
      >>> block.branch_5x5.conv.kernel.shape, block.branch_pool, block.out_features
      ((7, 7, 16, 32), None, 224)
      >>> block(jnp.ones((1, 8, 8, 192))).shape
      (1, 8, 8, 224)
    """

    in_features: int
    out_features: int
    widths: tuple[int, ...]
    norm: str | None
    fuse_1x1: bool
    dtype: Any
    precision: Any
    branch_1x1: Unit
    branch_3x3: Bottleneck
    branch_5x5: Bottleneck
    branch_pool: PoolProjection | None
    kernel_sizes: tuple[int, int]
    pool_size: int | None
    pointwise: Any = None  # jaxconv.nn.freeze's: the fused 1×1 units as one frozen conv
    pointwise_splits: tuple[int, ...] = ()

    def __init__(
        self,
        in_features: int,
        widths: Sequence[int],
        *,
        kernel_sizes: Sequence[int] = (3, 5),
        pool_size: int | None = 3,
        norm: str | None = None,
        activation: Activation | None = jax.nn.relu,
        momentum: float | None = None,
        epsilon: float | None = None,
        kernel_init: Initializer = default_kernel_init,
        fuse_1x1: bool = False,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None,
        implementation: str | None = None,
        rngs: nnx.Rngs,
    ):
        if not isinstance(widths, (list, tuple)) or len(widths) != 6:
            got = (
                f"{len(widths)}: {tuple(widths)!r}"
                if isinstance(widths, (list, tuple))
                else repr(widths)
            )
            raise ValueError(
                f"`widths` must be the paper's six numbers ({', '.join(WIDTH_NAMES)}), got {got}"
            )
        pool_size = check_int(pool_size, "pool_size", allow_none=True)
        # The reduces may be 0 (no reduce); pool proj is 0 exactly when there is no pool branch.
        minimums = (1, 0, 1, 0, 1, 0 if pool_size is None else 1)
        widths = tuple(
            check_int(w, f"widths[{i}] ({name})", minimum=minimum)
            for i, (w, name, minimum) in enumerate(zip(widths, WIDTH_NAMES, minimums))
        )
        n1, r3, n3, r5, n5, pp = widths
        if not isinstance(kernel_sizes, (list, tuple)) or len(kernel_sizes) != 2:
            raise ValueError(
                "`kernel_sizes` must be two ints (the k of branch_3x3 and of branch_5x5), "
                f"got {kernel_sizes!r}"
            )
        k3, k5 = (
            check_int(k, f"kernel_sizes[{i}] ({branch})")
            for i, (k, branch) in enumerate(zip(kernel_sizes, ("branch_3x3", "branch_5x5")))
        )
        if pool_size is None and pp != 0:
            raise ValueError(
                f"`widths[5] (pool proj)` must be 0 with pool_size=None (no pool branch), got {pp}"
            )
        self.in_features = check_int(in_features, "in_features")
        self.widths = widths
        self.kernel_sizes = (k3, k5)
        self.pool_size = pool_size
        options, bn = unit_options(
            norm, activation, momentum, epsilon, kernel_init, dtype, param_dtype, precision
        )
        self.norm = options["norm"]
        self.fuse_1x1 = check_bool(fuse_1x1, "fuse_1x1")
        self.dtype = dtype
        self.precision = precision
        self.branch_1x1 = make_unit(in_features, n1, 1, bn=bn, rngs=rngs, **options)
        self.branch_3x3 = Bottleneck(
            in_features, r3, n3, k3, implementation=implementation, rngs=rngs, **bn, **options
        )
        self.branch_5x5 = Bottleneck(
            in_features, r5, n5, k5, implementation=implementation, rngs=rngs, **bn, **options
        )
        if pool_size is None:
            self.branch_pool = nnx.data(None)
        else:
            self.branch_pool = PoolProjection(
                in_features, pp, pool_size=pool_size, rngs=rngs, **bn, **options
            )
        self.out_features = n1 + n3 + n5 + pp

    def _fused_pointwise(self, x: Array, units: list[Unit]) -> list[Array]:
        """The input-reading 1×1 units as one 1×1 conv (:func:`pointwise`); returns each
        unit's activated output. When the units share their activation (the paper: ReLU
        everywhere) it runs inside that conv, fused by oneDNN where it can."""
        parts = [_pointwise_parts(u) for u in units]
        w = jnp.concatenate([m for m, _, _ in parts], axis=1)
        b = None
        if any(p[1] is not None for p in parts):
            b = jnp.concatenate(
                [
                    bias if bias is not None else jnp.zeros((m.shape[1],), m.dtype)
                    for m, bias, _ in parts
                ]
            )
        x, w, b = promote_dtype((x, w, b), dtype=self.dtype)
        shared = len({u.activation for u in units}) == 1 and all(
            isinstance(u, Conv1x1) for u in units
        )
        activation = units[0].activation if shared else None
        y = pointwise(x, w, b, precision=self.precision, activation=activation)
        splits = [m.shape[1] for m, _, _ in parts]
        cuts = [sum(splits[: i + 1]) for i in range(len(splits) - 1)]
        pieces = jnp.split(y, cuts, axis=-1)
        if shared:
            return pieces
        return [after(part) for (_, _, after), part in zip(parts, pieces)]

    def __call__(self, x: Array) -> Array:
        x = check_channels(x, self.in_features, type(self).__name__)
        if not self.fuse_1x1:
            ys = [self.branch_1x1(x), self.branch_3x3(x), self.branch_5x5(x)]
            if self.branch_pool is not None:
                ys.append(self.branch_pool(x))
            return concat_channels(ys)
        b3, b5 = self.branch_3x3, self.branch_5x5
        units = [self.branch_1x1, *(b.reduce for b in (b3, b5) if b.reduce is not None)]
        if self.pointwise is not None:  # frozen (jaxconv.nn.freeze): the units as one conv
            splits = self.pointwise_splits
            cuts = [sum(splits[: i + 1]) for i in range(len(splits) - 1)]
            outs = iter(jnp.split(self.pointwise(x), cuts, axis=-1))
        else:
            outs = iter(self._fused_pointwise(x, units))
        y1 = next(outs)
        h3 = next(outs) if b3.reduce is not None else x
        h5 = next(outs) if b5.reduce is not None else x
        ys = [y1, b3.conv(h3), b5.conv(h5)]
        if self.branch_pool is not None:
            ys.append(self.branch_pool(x))
        return concat_channels(ys)
