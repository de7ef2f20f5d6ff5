"""``freeze``: a model for inference, with BatchNorm folded into its convs, bias, ReLU and
the residual add fused into them, and their weights packed once for oneDNN.

How it works, in three passes over a copy of the model (the model itself is never changed):

1. **Trace** the forward pass (``jax.make_jaxpr`` on an example input) with every conv module
   and every ``nnx.BatchNorm`` recording its calls. A BatchNorm is folded into a conv when it
   reads that conv's output, and nothing else does: each conv output is marked in the trace
   (an ``optimization_barrier``) and its uses are counted in the jaxpr. A conv called several
   times folds only if every call feeds the same BatchNorm and that BatchNorm reads nothing
   else.
2. **Rebuild**: each traced conv becomes a :class:`FrozenConv` (the kernel scaled by
   ``scale/sqrt(var+eps)``, the bias ``(b - mean)·scale/sqrt(var+eps) + shift``, computed in
   float64), each folded BatchNorm an :class:`Identity`. Where the unit that holds them is
   jaxconv's own (:class:`~jaxconv.nn.ConvBN`, the residual blocks, :class:`~jaxconv.nn.Inception`),
   the activation after the BatchNorm, the residual add and the fused 1×1s move into the conv.
3. **Pack**: trace the rebuilt model once more and pack each frozen conv's weights into the
   layout oneDNN's primitive wants for that call (:func:`jaxconv.convolution.frozen.pack`).

``frozen.report`` says what was folded, fused and packed, and what was not and why.
"""

from __future__ import annotations

import contextvars
import dataclasses
import threading
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.nnx.nn.dtypes import promote_dtype
from jax.extend.core import Literal

from jaxconv import _check
from jaxconv.convolution import conv_spec
from jaxconv.convolution.frozen import Packing, frozen_conv, fusable, pack, why_not_onednn
from jaxconv.nn._blocks import BasicBlock, InvertedResidual, ResNetBottleneck
from jaxconv.nn._conv import Conv, Conv1x1, ConvBN
from jaxconv.nn._depthwise import DepthwiseConv
from jaxconv.nn._inception import Inception

__all__ = ["FreezeReport", "FrozenConv", "Identity", "PackedWeights", "freeze"]

#: The conv modules freeze rebuilds (their kernels are HWIO, output channels last).
_CONVS = (Conv, Conv1x1, DepthwiseConv)


class Identity(nnx.Module):
    """What a folded BatchNorm becomes: ``x`` → ``x``."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return x


class PackedWeights(nnx.Variable):
    """A frozen conv's kernel in oneDNN's own layout, as bytes (``uint8``); its module's
    ``packing`` says which layout and for which input shape."""


class FrozenConv(nnx.Module):
    """A conv for inference: ``activation(conv(x, kernel) + bias (+ residual))`` in one call.

    Built by :func:`freeze`, not by hand. ``kernel`` (HWIO) and ``bias`` ``[C_out]`` are plain
    arrays — BatchNorm folded in — so ``jax.export`` and every platform run standard
    StableHLO; on a CPU with the oneDNN extension the call is one primitive with the residual
    add and ReLU as post-ops, on ``packed``, the kernel packed once into the layout the
    primitive wants (``packing``: its fingerprint and the input shape it was packed for). A
    call whose primitive wants another layout reorders the plain kernel instead and warns
    (:class:`jaxconv.convolution.frozen.FrozenLayoutWarning`).

    Call:
      ``x`` ``[N, *spatial, C_in]`` (or unbatched) and optional ``residual`` shaped like the
      output → ``[N, *spatial_out, C_out]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.nn import ConvBN, freeze
      >>> unit = freeze(ConvBN(3, 8, 3, rngs=nnx.Rngs(0)), jnp.ones((2, 8, 8, 3)))
      >>> type(unit.conv).__name__, unit.conv.post_op, unit.conv(jnp.ones((2, 8, 8, 3))).shape
      ('FrozenConv', 'relu', (2, 8, 8, 8))
    """

    kernel: nnx.Param[jax.Array]
    bias: nnx.Param[jax.Array]
    packed: PackedWeights
    packing: Packing | None

    def __init__(
        self,
        kernel: Any,
        bias: Any,
        *,
        stride: tuple[int, ...],
        padding: Any,
        dilation: tuple[int, ...],
        groups: int,
        activation: Callable[..., Any] | None,
        dtype: Any,
        precision: Any,
        implementation: str | None,
    ):
        self.kernel = nnx.Param(jnp.asarray(kernel))
        self.bias = nnx.Param(jnp.asarray(bias))
        self.packed = PackedWeights(jnp.zeros((0,), jnp.uint8))
        self.packing = None
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
        self.activation = activation
        self.dtype = dtype
        self.precision = precision
        self.implementation = implementation

    @property
    def post_op(self) -> str | None:
        """The activation as the primitive's post-op (None: none, or it runs in XLA)."""
        return fusable(self.activation)

    def _inputs(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, Any]:
        kernel = self.kernel[...]
        nsp = x.ndim - 2
        if kernel.ndim != nsp + 2 and kernel.shape[:-2] == (1,) * (kernel.ndim - 2):
            kernel = kernel.reshape((1,) * nsp + kernel.shape[-2:])  # a Conv1x1's, any rank
        x, w, b = promote_dtype((x, kernel, self.bias[...]), dtype=self.dtype)
        spec = conv_spec(
            x,
            w,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            precision=self.precision,
        )
        return x, w, b, spec

    def __call__(self, x: Any, residual: Any = None) -> jax.Array:
        x = _check.as_array(x, "x")
        if x.ndim == self.kernel.ndim - 1:  # unbatched, as the conv modules take it
            r = None if residual is None else _check.as_array(residual, "residual")[None]
            return self(x[None], r)[0]
        x, w, b, spec = self._inputs(x)
        if residual is not None:
            residual = _check.as_array(residual, "residual")
            if tuple(residual.shape) != tuple(spec.out_shape):
                raise ValueError(
                    f"`residual` must have the conv's output shape {tuple(spec.out_shape)}, "
                    f"got {tuple(residual.shape)}"
                )
        recorder = _PACKING.get()
        if recorder is not None:
            recorder.append((self, spec, w.dtype, residual is not None))
        post = self.post_op
        y = frozen_conv(
            x,
            w,
            b,
            spec,
            activation=post,
            residual=residual,
            packed=self.packed[...],
            packing=self.packing,
            implementation=self.implementation,
        )
        return y if self.activation is None or post is not None else self.activation(y)


@dataclasses.dataclass(frozen=True)
class FreezeReport:
    """What :func:`freeze` did, by module path (dotted, as ``nnx.iter_graph`` names them).

    Attributes:
      folded: ``(conv, batchnorm)`` pairs folded.
      fused: ``(conv, what)``: the bias, activation and residual add each frozen conv computes
        in its one call.
      packed: ``(conv, bytes)``: convs whose weights are packed for oneDNN.
      kept: ``(module, why)``: what was not folded, fused or packed, and why.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.nn import ConvBN, freeze
      >>> report = freeze(ConvBN(3, 8, 3, rngs=nnx.Rngs(0)), jnp.ones((1, 8, 8, 3))).report
      >>> report.folded, report.fused
      ((('conv', 'bn'),), (('conv', 'bias + relu'),))
    """

    folded: tuple[tuple[str, str], ...] = ()
    fused: tuple[tuple[str, str], ...] = ()
    packed: tuple[tuple[str, int], ...] = ()
    kept: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        lines = [
            f"folded {len(self.folded)} BatchNorm(s), {len(self.fused)} frozen conv(s), "
            f"{len(self.packed)} packed"
        ]
        lines += [f"  fold  {bn} -> {conv}" for conv, bn in self.folded]
        lines += [f"  fuse  {conv}: {what}" for conv, what in self.fused]
        lines += [f"  pack  {conv}: {n} bytes" for conv, n in self.packed]
        lines += [f"  keep  {path}: {why}" for path, why in self.kept]
        return "\n".join(lines)


# --- pass 1: trace ----------------------------------------------------------------------------


@dataclasses.dataclass
class _Call:
    kind: str  # "conv" or "bn"
    module: nnx.Module
    value: Any  # conv: its (marked) output; bn: the conv call it reads, or None
    plain: bool = True  # bn: called as bn(x), nothing else


_TRACE: contextvars.ContextVar[list[_Call] | None] = contextvars.ContextVar(
    "jaxconv_freeze_trace", default=None
)
_PACKING: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "jaxconv_freeze_packing", default=None
)
_PATCH_LOCK = threading.Lock()


def _recording_conv(call: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        y = call(self, *args, **kwargs)
        calls = _TRACE.get()
        if calls is None:
            return y
        y = jax.lax.optimization_barrier(y)  # marks this output in the jaxpr
        calls.append(_Call("conv", self, y))
        return y

    return wrapped


def _recording_bn(call: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(self: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        calls = _TRACE.get()
        if calls is None:
            return call(self, x, *args, **kwargs)
        source = next((c for c in calls if c.kind == "conv" and c.value is x), None)
        calls.append(_Call("bn", self, source, plain=not args and not kwargs))
        return call(self, jax.lax.optimization_barrier(x), *args, **kwargs)

    return wrapped


def _trace(model: nnx.Module, example: jax.ShapeDtypeStruct) -> tuple[list[_Call], Any]:
    """Every conv and BatchNorm call of ``model(example)``, in order, and the jaxpr."""
    classes = {
        type(node)
        for _, node in nnx.iter_graph(model)
        if isinstance(node, (*_CONVS, nnx.BatchNorm))
    }
    calls: list[_Call] = []
    with _PATCH_LOCK:
        saved = {cls: cls.__dict__.get("__call__") for cls in classes}
        for cls in classes:
            wrap = _recording_bn if issubclass(cls, nnx.BatchNorm) else _recording_conv
            cls.__call__ = wrap(cls.__call__)  # type: ignore[method-assign]
        token = _TRACE.set(calls)
        try:
            jaxpr = jax.make_jaxpr(lambda x: model(x))(example)
        finally:
            _TRACE.reset(token)
            for cls, original in saved.items():
                if original is None:
                    delattr(cls, "__call__")
                else:
                    cls.__call__ = original  # type: ignore[method-assign]
    return calls, jaxpr


def _uses(jaxpr: Any) -> tuple[list[Any], dict[Any, list[int]]]:
    """The top-level marks (``optimization_barrier`` equations) in order, and every
    variable's users (equation indices; -1 for an output of the program)."""
    marks: list[Any] = []
    users: dict[Any, list[int]] = {}
    for i, eqn in enumerate(jaxpr.jaxpr.eqns):
        if eqn.primitive.name == "optimization_barrier":
            marks.append(eqn)
        for v in eqn.invars:
            if not isinstance(v, Literal):
                users.setdefault(v, []).append(i)
    for v in jaxpr.jaxpr.outvars:
        users.setdefault(v, []).append(-1)
    return marks, users


def _pairs(calls: list[_Call], jaxpr: Any) -> tuple[dict[int, Any], dict[int, str]]:
    """``{id(conv): batchnorm}`` for the pairs that fold, and ``{id(module): why not}``."""
    marks, users = _uses(jaxpr)
    eqn_index = {id(eqn): i for i, eqn in enumerate(jaxpr.jaxpr.eqns)}
    why: dict[int, str] = {}
    if len(marks) != len(calls):
        reason = "the forward pass runs inside a nested transformation; nothing was folded"
        return {}, {id(c.module): reason for c in calls}
    bn_of_mark: dict[int, _Call] = {}
    for call, eqn in zip(calls, marks):
        if call.kind == "bn":
            bn_of_mark[eqn_index[id(eqn)]] = call
    candidate: dict[int, Any] = {}
    unnormalized: set[int] = set()  # convs with a call that no BatchNorm reads
    for call, eqn in zip(calls, marks):
        if call.kind != "conv":
            continue
        conv = call.module
        readers = users.get(eqn.outvars[0], [])
        bns = {id(bn_of_mark[i].module): bn_of_mark[i] for i in readers if i in bn_of_mark}
        if not bns:  # no BatchNorm after this call: nothing to fold here
            unnormalized.add(id(conv))
            continue
        if len(readers) != 1 or len(bns) != 1:
            why[id(conv)] = "its output is read by something besides one BatchNorm"
            continue
        (bn,) = bns.values()
        if id(conv) in candidate and candidate[id(conv)] is not bn.module:
            why[id(conv)] = "its calls feed different BatchNorms"
            continue
        candidate[id(conv)] = bn.module
    for conv_id in unnormalized & set(candidate):  # a shared conv, normalized on one call only
        del candidate[conv_id]
        why[conv_id] = "another of its calls is not followed by the BatchNorm"
    for call in calls:  # each BatchNorm call must read its conv's output, plainly
        if call.kind != "bn":
            continue
        source = call.value
        ok = (
            call.plain
            and source is not None
            and candidate.get(id(source.module)) is call.module
            and id(source.module) not in why
        )
        if not ok:
            for conv_id, bn in list(candidate.items()):
                if bn is call.module:
                    del candidate[conv_id]
                    why[conv_id] = "its BatchNorm also reads another input"
            why[id(call.module)] = (
                "it does not read a conv's output alone"
                if call.plain
                else "it is called with arguments besides x"
            )
    for conv_id, bn in list(candidate.items()):
        problem = _unfoldable_bn(bn) or _unfoldable_conv(
            next(c.module for c in calls if id(c.module) == conv_id)
        )
        if problem:
            del candidate[conv_id]
            why[conv_id] = why[id(bn)] = problem
    return candidate, why


def _unfoldable_bn(bn: Any) -> str | None:
    if not getattr(bn, "use_running_average", False):
        return "the BatchNorm is not in eval mode"
    if getattr(bn, "axis", -1) != -1:
        return f"the BatchNorm normalizes axis {bn.axis}, not the channels (-1)"
    return None


def _unfoldable_conv(conv: Any) -> str | None:
    if not isinstance(conv, _CONVS):
        return f"{type(conv).__name__} is not a conv freeze rebuilds"
    if conv.activation is not None:
        return "the conv applies an activation before the BatchNorm"
    return None


# --- pass 2: rebuild --------------------------------------------------------------------------


def _paths(model: nnx.Module) -> dict[int, tuple[Any, ...]]:
    """Each module's first path in ``model``."""
    paths: dict[int, tuple[Any, ...]] = {}
    for path, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Module):
            paths.setdefault(id(node), tuple(path))
    return paths


def _name(path: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in path) or "(model)"


def _node(model: nnx.Module, path: tuple[Any, ...]) -> Any:
    node: Any = model
    for p in path:
        node = node[p] if isinstance(p, int) else getattr(node, p)
    return node


def _replace(model: nnx.Module, path: tuple[Any, ...], new: Any) -> None:
    parent = _node(model, path[:-1])
    if isinstance(path[-1], int):
        parent[path[-1]] = new
    else:
        setattr(parent, path[-1], new)


def _geometry(conv: Any) -> dict[str, Any]:
    """A conv module's window, as :class:`FrozenConv` takes it."""
    if isinstance(conv, Conv1x1):
        return dict(stride=1, padding="VALID", dilation=1, groups=1)
    groups = conv.in_features if isinstance(conv, DepthwiseConv) else conv.groups
    return dict(stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=groups)


def _unfreezable(conv: Any) -> str | None:
    if isinstance(conv, Conv):
        if any(v != 1 for v in conv.input_dilation):
            return "an input-dilated conv is kept as it is"
        if conv.preferred_element_type is not None:
            return "a conv with preferred_element_type is kept as it is"
    return None


def _folded(conv: Any, bn: Any) -> tuple[np.ndarray, np.ndarray]:
    """The conv's kernel and bias with ``bn`` folded in, in float64, as the parameters'
    dtype."""
    w = np.asarray(conv.kernel[...], np.float64)
    dtype = conv.kernel[...].dtype
    b = np.zeros(w.shape[-1]) if conv.bias is None else np.asarray(conv.bias[...], np.float64)
    if bn is not None:
        scale = np.ones(w.shape[-1]) if bn.scale is None else np.asarray(bn.scale[...], np.float64)
        shift = np.zeros(w.shape[-1]) if bn.bias is None else np.asarray(bn.bias[...], np.float64)
        mean = np.asarray(bn.mean[...], np.float64)
        var = np.asarray(bn.var[...], np.float64)
        s = scale / np.sqrt(var + bn.epsilon)
        w = w * s
        b = (b - mean) * s + shift
    return w.astype(dtype), b.astype(dtype)


def _activation_name(f: Callable[..., Any] | None) -> str:
    return "" if f is None else getattr(f, "__name__", repr(f))


def freeze(model: Any, x: Any = None) -> Any:
    """``model`` for inference: BatchNorm folded into its convs, the bias, ReLU and the
    residual add fused into them, their weights packed once for oneDNN.

    Works on every jaxconv model and on a user's own model built from ``jaxconv.nn``. The
    result is a copy of ``model`` in eval mode (``model`` itself is unchanged), called as
    ``frozen(x)`` like the model, with the same ``nnx.split``/``merge`` and ``jax.jit``; it
    differs only in its state: each traced conv is a :class:`FrozenConv`, each folded BatchNorm
    an :class:`Identity`. ``frozen.report`` (a :class:`FreezeReport`) lists what was folded,
    fused and packed, and what was not and why.

    - Conv→BatchNorm pairs are found by tracing the forward pass, not by names: a BatchNorm
      folds when it reads a conv's output and nothing else reads it (see the module notes).
    - Activations: ``jax.nn.relu`` after a folded BatchNorm (in :class:`~jaxconv.nn.ConvBN`)
      or in a conv module runs in the conv, and so does a residual block's add
      (:class:`~jaxconv.nn.BasicBlock`, :class:`~jaxconv.nn.ResNetBottleneck`,
      :class:`~jaxconv.nn.InvertedResidual`). NaN propagates as through ``jax.nn.relu``.
      Other activations (MobileNetV2's ReLU6 among them: oneDNN 3.2 has no exact,
      NaN-keeping clamp at 6) run in XLA after the conv.
    - Weights are packed for the input shape of ``x``; another batch size needs no re-freeze
      (a shape whose primitive wants another layout reorders the plain weights and warns).
    - Without the oneDNN extension, on another platform and under ``jax.export``, the frozen
      convs run XLA's convs on the folded weights.
    - Inference only: differentiate the model, not the frozen copy.

    Args:
      model: an ``nnx.Module``.
      x: an example input — an array or a ``jax.ShapeDtypeStruct`` of the shape the frozen
        model will mostly be called with. Default: a batch of one 224×224 image for a model
        with ``in_features`` and ``layout`` attributes (every jaxconv model).

    Returns:
      The frozen copy, with ``report``.

    Raises:
      TypeError: ``model`` is not an ``nnx.Module``, or ``x`` is missing for a model that
        does not say its input.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.models import ResNet18
      >>> from jaxconv.nn import freeze
      >>> model = ResNet18(num_classes=10, rngs=nnx.Rngs(0))
      >>> x = jnp.ones((2, 64, 64, 3))
      >>> frozen = freeze(model, x)
      >>> len(frozen.report.folded)          # every conv's BatchNorm
      20
      >>> model.eval()
      >>> bool(jnp.allclose(frozen(x), model(x), atol=1e-4))
      True
    """
    if not isinstance(model, nnx.Module):
        raise TypeError(f"`model` must be an nnx.Module, got {type(model).__name__}")
    example = _example(model, x)
    frozen: Any = nnx.clone(model)
    frozen.eval()
    inceptions = [m for _, m in nnx.iter_graph(frozen) if isinstance(m, Inception)]
    fused_1x1 = {id(m): m.fuse_1x1 for m in inceptions}
    for m in inceptions:  # trace each 1×1 unit as a conv and its BatchNorm
        m.fuse_1x1 = False
    calls, jaxpr = _trace(frozen, example)
    pairs, why = _pairs(calls, jaxpr)
    paths = _paths(frozen)
    convs: dict[int, Any] = {id(c.module): c.module for c in calls if c.kind == "conv"}
    bns = {id(c.module): c.module for c in calls if c.kind == "bn"}
    folded, kept = [], []
    rebuilt: dict[int, FrozenConv] = {}
    for conv_id, conv in convs.items():
        problem = _unfreezable(conv)
        if problem:
            kept.append((_name(paths[conv_id]), problem))
            continue
        bn = pairs.get(conv_id)
        if bn is None and conv_id in why:
            kept.append((_name(paths[conv_id]), f"BatchNorm not folded: {why[conv_id]}"))
        kernel, bias = _folded(conv, bn)
        rebuilt[conv_id] = FrozenConv(
            kernel,
            bias,
            **_geometry(conv),
            activation=conv.activation,
            dtype=conv.dtype,
            precision=conv.precision,
            implementation=getattr(conv, "implementation", None),
        )
        if bn is not None:
            folded.append((_name(paths[conv_id]), _name(paths[id(bn)])))
            _replace(frozen, paths[id(bn)], Identity())
        _replace(frozen, paths[conv_id], rebuilt[conv_id])
    for bn_id, bn in bns.items():
        if bn_id in why and bn not in pairs.values():
            kept.append((_name(paths[bn_id]), f"not folded: {why[bn_id]}"))
    for node_id, path in paths.items():  # other convs (nnx.Conv, ConvTranspose, ...) stay
        node = _node(frozen, path)
        kernel_shape = getattr(getattr(node, "kernel", None), "shape", ())
        if node_id in convs or isinstance(node, FrozenConv) or len(kernel_shape) < 3:
            continue  # a rebuilt conv, or not a conv (nnx.Linear's kernel is a matrix)
        if isinstance(node, _CONVS):
            kept.append((_name(path), "not called in the forward pass for this input"))
        else:
            kept.append((_name(path), f"{type(node).__name__} is not a conv freeze rebuilds"))
    _fuse_units(frozen)
    for m in inceptions:
        m.fuse_1x1 = fused_1x1[id(m)]
        if m.fuse_1x1:
            _fuse_pointwise(m, kept, paths)
    report = _pack(frozen, example, paths, folded, kept)
    frozen.report = report
    return frozen


def _example(model: nnx.Module, x: Any) -> jax.ShapeDtypeStruct:
    if x is None:
        c, layout = getattr(model, "in_features", None), getattr(model, "layout", None)
        if not isinstance(c, int) or layout not in ("NHWC", "NCHW"):
            raise TypeError(
                f"`x` is needed: {type(model).__name__} does not say its input (it has no "
                "`in_features` and `layout`); pass an example batch, e.g. freeze(model, x)"
            )
        shape = (1, 224, 224, c) if layout == "NHWC" else (1, c, 224, 224)
        return jax.ShapeDtypeStruct(shape, jnp.float32)
    if isinstance(x, jax.ShapeDtypeStruct):
        return x
    x = _check.as_array(x, "x")
    return jax.ShapeDtypeStruct(x.shape, x.dtype)


def _units(model: nnx.Module) -> Iterator[nnx.Module]:
    for _, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Module):
            yield node


def _fuse_units(frozen: nnx.Module) -> None:
    """Moves each folded ConvBN's activation, and each residual block's add and activation,
    into the frozen conv that precedes them."""
    folded_units: list[ConvBN] = []
    unit: Any
    for unit in _units(frozen):
        if (
            isinstance(unit, ConvBN)
            and isinstance(unit.conv, FrozenConv)
            and isinstance(unit.bn, Identity)
        ):
            folded_units.append(unit)
            if unit.conv.activation is None:
                unit.conv.activation, unit.activation = unit.activation, None
    for unit in _units(frozen):
        last: Any = None
        if isinstance(unit, (BasicBlock, ResNetBottleneck)):
            last = unit.conv3 if isinstance(unit, ResNetBottleneck) else unit.conv2
            activation = unit.activation
        elif isinstance(unit, InvertedResidual) and unit.use_residual:
            last, activation = unit.project, None
        if last is None or last not in folded_units:
            continue
        if last.activation is None and last.conv.activation is None:
            last.conv.activation = activation
            unit.fused_add = True


def _fuse_pointwise(block: Inception, kept: list[tuple[str, str]], paths: dict) -> None:
    """An Inception block's input-reading 1×1 units as one frozen conv, when each is one."""
    b3, b5 = block.branch_3x3, block.branch_5x5
    units = [block.branch_1x1, *(b.reduce for b in (b3, b5) if b.reduce is not None)]
    convs: list[Any] = [u.conv if isinstance(u, ConvBN) else u for u in units]
    ok = all(
        isinstance(c, FrozenConv)
        and (not isinstance(u, ConvBN) or (u.activation is None and isinstance(u.bn, Identity)))
        for u, c in zip(units, convs)
    )
    if not ok or len({(c.activation, c.dtype) for c in convs if isinstance(c, FrozenConv)}) != 1:
        kept.append((_name(paths[id(block)]), "its 1×1 units are not all frozen alike: not fused"))
        block.fuse_1x1 = False
        return
    first = convs[0]
    kernel = jnp.concatenate([c.kernel[...] for c in convs], axis=-1)
    bias = jnp.concatenate([c.bias[...] for c in convs])
    block.pointwise = FrozenConv(
        kernel,
        bias,
        stride=first.stride,
        padding=first.padding,
        dilation=first.dilation,
        groups=1,
        activation=first.activation,
        dtype=first.dtype,
        precision=first.precision,
        implementation=first.implementation,
    )
    block.pointwise_splits = tuple(int(c.kernel.shape[-1]) for c in convs)


# --- pass 3: pack -----------------------------------------------------------------------------


def _pack(
    frozen: nnx.Module,
    example: jax.ShapeDtypeStruct,
    paths: dict[int, tuple[Any, ...]],
    folded: list[tuple[str, str]],
    kept: list[tuple[str, str]],
) -> FreezeReport:
    """Packs every frozen conv ``frozen(example)`` calls, for that call; the report."""
    calls: list[Any] = []
    token = _PACKING.set(calls)
    try:
        jax.eval_shape(lambda x: frozen(x), example)
    finally:
        _PACKING.reset(token)
    paths = {**paths, **_paths(frozen)}
    fused, packed, seen = [], [], set()
    for conv, spec, dtype, residual in calls:
        if id(conv) in seen:
            continue
        seen.add(id(conv))
        name = _name(paths.get(id(conv), ("?",)))
        parts = ["bias"]
        if residual:
            parts.append("residual add")
        if conv.activation is not None:
            how = "" if conv.post_op else " (in XLA)"
            parts.append(_activation_name(conv.activation) + how)
        fused.append((name, " + ".join(parts)))
        why = (
            why_not_onednn(spec)
            if conv.implementation in (None, "onednn")
            else f"the module asks for implementation={conv.implementation!r}"
        )
        if why is not None:
            kept.append((name, f"runs on XLA: {why}"))
            continue
        w = np.asarray(conv.kernel[...]).reshape(spec.w_shape).astype(dtype)
        result = pack(w, spec, conv.post_op, residual)
        if result is None:
            continue
        data, packing = result
        conv.packed = PackedWeights(jnp.asarray(data))
        conv.packing = packing
        packed.append((name, int(data.size)))
    return FreezeReport(tuple(folded), tuple(fused), tuple(packed), tuple(kept))
