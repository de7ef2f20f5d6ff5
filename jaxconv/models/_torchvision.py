"""torchvision's weights in jaxconv models and back: :func:`from_torchvision`,
:func:`to_torchvision_state_dict`.

A torchvision ``state_dict`` names modules (``layer1.0.bn2``), a jaxconv model names
submodules (``layer1[0].conv2.bn``); one table of regular-expression rewrites per model turns
the dotted path of each jaxconv conv, BatchNorm and linear layer into torchvision's module name,
and the leaf names map one to one: ``kernel`` → ``weight`` (HWIO ↔ OIHW for a conv, ``[in, out]``
↔ ``[out, in]`` for a linear layer), ``bias`` → ``bias``, BatchNorm's ``scale`` / ``mean`` /
``var`` → ``weight`` / ``running_mean`` / ``running_var``. torch is never imported: a torch
tensor is read through ``.detach().cpu().numpy()``.

Which names :func:`from_torchvision` takes, and how it builds each model, is the registry's
(:mod:`jaxconv.models.registry`: an entry's ``torchvision`` layout). The rewrite tables stay
here, by class: they also name a lone block's arrays.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxconv._check import check_int
from jaxconv.models._googlenet import GoogLeNet
from jaxconv.models._mobilenet import MobileNetV2
from jaxconv.models._resnet import ResNet
from jaxconv.models.registry import MODELS, canonical_name
from jaxconv.nn._blocks import BasicBlock, InvertedResidual, ResNetBottleneck

__all__ = ["from_torchvision", "to_torchvision_state_dict"]

_LEAF = {
    "kernel": "weight",
    "bias": "bias",
    "scale": "weight",
    "mean": "running_mean",
    "var": "running_var",
}
#: torch's BatchNorm counter: accepted and ignored on import, exported as 0 (jaxconv does not
#: count batches; torch reads the count only with ``momentum=None``).
_COUNTER = "num_batches_tracked"

#: Rewrites of a jaxconv module path (dotted, list indices as numbers) into torchvision's, in
#: order. ResNet's also name a lone ``BasicBlock`` / ``ResNetBottleneck``.
_RESNET_RULES = (
    (r"(^|\.)conv(\d)\.conv$", r"\1conv\2"),  # ConvBN convK = torchvision's convK + bnK
    (r"(^|\.)conv(\d)\.bn$", r"\1bn\2"),
    (r"(^|\.)downsample\.conv$", r"\1downsample.0"),
    (r"(^|\.)downsample\.bn$", r"\1downsample.1"),
)
_GOOGLENET_RULES = (
    (r"^conv2\.", "conv3."),  # the paper's conv2 is torchvision's conv3 …
    (r"^conv2_reduce\.", "conv2."),  # … and its conv2_reduce torchvision's conv2
    (r"^inception_(\d[a-e])\.", r"inception\1."),
    (r"\.branch_1x1\.", ".branch1."),
    (r"\.branch_3x3\.reduce\.", ".branch2.0."),
    (r"\.branch_3x3\.conv\.", ".branch2.1."),
    (r"\.branch_5x5\.reduce\.", ".branch3.0."),
    (r"\.branch_5x5\.conv\.", ".branch3.1."),
    (r"\.branch_pool\.proj\.", ".branch4.1."),
    (r"^aux_4a\.", "aux1."),
    (r"^aux_4d\.", "aux2."),
)
_MOBILENET_RULES = (
    (
        r"^features\.(\d+)\.conv$",
        r"features.\1.0",
    ),  # the stem and last ConvBN: Conv2dNormActivation
    (r"^features\.(\d+)\.bn$", r"features.\1.1"),
    (r"^classifier$", "classifier.1"),  # classifier.0 is the dropout
)
#: An InvertedResidual's units in torchvision's ``conv`` Sequential, with and without ``expand``.
_INVERTED_RESIDUAL = {
    True: {"expand.conv": "0.0", "expand.bn": "0.1", "depthwise.conv": "1.0"},
    False: {"depthwise.conv": "0.0"},
}
_INVERTED_RESIDUAL[True] |= {"depthwise.bn": "1.1", "project.conv": "2", "project.bn": "3"}
_INVERTED_RESIDUAL[False] |= {"depthwise.bn": "0.1", "project.conv": "1", "project.bn": "2"}
_BLOCK_UNIT = re.compile(r"^(?:(.*)\.)?((?:expand|depthwise|project)\.(?:conv|bn))$")

#: Linear layers that read a flattened feature map: torchvision flattens ``[C, H, W]``, jaxconv
#: ``[H, W, C]``, so their input rows are permuted on the way.
_FLATTENED_INPUTS = {r"^aux[12]\.fc1$": (128, 4, 4)}  # GoogLeNet's InceptionAux: 128 × 4 × 4


def _rewrite(rules: tuple[tuple[str, str], ...], path: str) -> str:
    for pattern, replacement in rules:
        path = re.sub(pattern, replacement, path)
    return path


def _mobilenet_name(path: str, model: nnx.Module) -> str:
    match = _BLOCK_UNIT.match(path)
    if match is None:
        return _rewrite(_MOBILENET_RULES, path)
    block_path, unit = match.groups()
    block: Any = model
    for part in block_path.split(".") if block_path else ():
        block = block[int(part)] if part.isdigit() else getattr(block, part)
    prefix = f"{block_path}.conv." if block_path else "conv."
    return prefix + _INVERTED_RESIDUAL[block.expand is not None][unit]


@dataclasses.dataclass(frozen=True)
class _Entry:
    """One array: its torchvision name, the jaxconv Variable, and how the layouts differ."""

    variable: nnx.Variable
    kind: str  # "conv" (HWIO ↔ OIHW), "linear" ([in, out] ↔ [out, in]), "flat" (+ CHW rows), "same"
    flattened: tuple[int, int, int] | None = None

    def torch_shape(self) -> tuple[int, ...]:
        shape = tuple(self.variable.get_value().shape)
        if self.kind == "conv":
            h, w, i, o = shape
            return (o, i, h, w)
        if self.kind in ("linear", "flat"):
            return shape[::-1]
        return shape

    def to_jax(self, value: np.ndarray) -> np.ndarray:
        if self.kind == "conv":
            return value.transpose(2, 3, 1, 0)
        if self.kind == "flat" and self.flattened is not None:
            c, h, w = self.flattened
            return value.reshape(-1, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, -1)
        if self.kind == "linear":
            return value.T
        return value

    def to_torch(self, value: np.ndarray) -> np.ndarray:
        if self.kind == "conv":
            return np.ascontiguousarray(value.transpose(3, 2, 0, 1))
        if self.kind == "flat" and self.flattened is not None:
            c, h, w = self.flattened
            value = value.reshape(h, w, c, -1).transpose(3, 2, 0, 1).reshape(-1, c * h * w)
            return np.ascontiguousarray(value)
        if self.kind == "linear":
            return np.ascontiguousarray(value.T)
        return value


def _namer(module: nnx.Module) -> tuple[str, Callable[[str], str]]:
    """(what ``module`` is, the function from its module paths to torchvision's names)."""
    if isinstance(module, (ResNet, BasicBlock, ResNetBottleneck)):
        return type(module).__name__, lambda path: _rewrite(_RESNET_RULES, path)
    if isinstance(module, (MobileNetV2, InvertedResidual)):
        return type(module).__name__, lambda path: _mobilenet_name(path, module)
    if isinstance(module, GoogLeNet):
        if module.conv2_reduce is None or not hasattr(module.conv1, "bn"):
            raise ValueError(
                "torchvision's GoogLeNet has BatchNorm after every conv and the ImageNet stem: "
                "this GoogLeNet was built without batch_norm=True or with stem='cifar' (build "
                "it with from_torchvision('googlenet'))"
            )
        return "GoogLeNet", lambda path: _rewrite(_GOOGLENET_RULES, path)
    raise TypeError(
        "`model` must be a jaxconv ResNet, MobileNetV2 or GoogLeNet (or a ResNet / MobileNetV2 "
        f"block), got {type(module).__name__}"
    )


def _entries(module: nnx.Module) -> tuple[str, dict[str, _Entry]]:
    """(what ``module`` is, its arrays by torchvision name)."""
    what, name = _namer(module)
    entries: dict[str, _Entry] = {}
    state = nnx.state(module, nnx.Any(nnx.Param, nnx.BatchStat))
    for path, variable in nnx.to_flat_state(state):
        *owner, leaf = map(str, path)
        prefix = name(".".join(owner))
        ndim = variable.get_value().ndim
        kind = {4: "conv", 2: "linear"}.get(ndim, "same") if leaf == "kernel" else "same"
        flattened = next((v for k, v in _FLATTENED_INPUTS.items() if re.match(k, prefix)), None)
        if kind == "linear" and flattened is not None:
            kind = "flat"
        entries[f"{prefix}.{_LEAF[leaf]}"] = _Entry(variable, kind, flattened)
    return what, entries


def _as_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, read without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _counters(entries: Mapping[str, _Entry]) -> set[str]:
    suffix = "." + _LEAF["mean"]
    return {k[: -len(suffix)] + "." + _COUNTER for k in entries if k.endswith(suffix)}


def load_state_dict(
    module: nnx.Module, state_dict: Mapping[str, Any], *, dropped: tuple[str, ...] = ()
) -> None:
    """Fill ``module`` in place from torchvision-named arrays, all of them or none.

    ``dropped``: key prefixes ignored on purpose (torchvision drops GoogLeNet's ``aux1.`` and
    ``aux2.`` the same way when its model has no auxiliary heads).
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            "`state_dict` must be a mapping of torchvision's names to arrays (a torch "
            f"state_dict() or a dict of NumPy arrays), got {type(state_dict).__name__}"
        )
    what, entries = _entries(module)
    counters = _counters(entries)
    given = {k: v for k, v in state_dict.items() if not str(k).startswith(dropped)}
    missing = sorted(set(entries) - set(given))
    unexpected = sorted(str(k) for k in set(given) - set(entries) - counters)
    values = {k: _as_numpy(given[k]) for k in entries if k in given}
    wrong = sorted(
        f"{k} {tuple(v.shape)} where the model has {entries[k].torch_shape()}"
        for k, v in values.items()
        if tuple(v.shape) != entries[k].torch_shape()
    )
    problems = [
        f"{label} ({len(keys)}): {', '.join(keys)}"
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("wrong shapes", wrong),
        )
        if keys
    ]
    if problems:
        raise ValueError(
            f"`state_dict` does not fit torchvision's layout of this {what} (nothing was "
            "loaded): " + "; ".join(problems)
        )
    for key, entry in entries.items():
        dtype = entry.variable.get_value().dtype
        entry.variable.set_value(jnp.asarray(entry.to_jax(values[key]), dtype=dtype))


def to_torchvision_state_dict(model: nnx.Module) -> dict[str, np.ndarray]:
    """The parameters and BatchNorm statistics of ``model`` as a torchvision ``state_dict``.

    Conv kernels become OIHW (``[C_out, C_in/groups, kh, kw]``), linear kernels ``[out, in]``,
    BatchNorm ``scale`` / ``bias`` / ``mean`` / ``var`` its ``weight`` / ``bias`` /
    ``running_mean`` / ``running_var``; each BatchNorm also gets torch's ``num_batches_tracked``
    (an int64 0: jaxconv does not count batches), so the keys are exactly the torchvision
    model's and ``torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in
    sd.items()})`` accepts it with ``strict=True``. :func:`from_torchvision` reads it back to
    identical parameters.

    The names are torchvision's whatever the model's options; its shapes are the model's (a
    ResNet with ``stem="cifar"`` exports a 3×3 ``conv1.weight`` that torchvision's ResNet
    rejects).

    Args:
      model: a :class:`ResNet` (any depth), :class:`MobileNetV2` or a GoogLeNet in
        torchvision's variant (:func:`from_torchvision`'s; other GoogLeNets raise); also a
        lone ``BasicBlock``, ``ResNetBottleneck`` or ``InvertedResidual``.

    Returns:
      ``{torchvision name: NumPy array}``, in the model's order.

    Raises:
      TypeError: ``model`` is not one of these.
      ValueError: a GoogLeNet without BatchNorm or with the CIFAR stem.

    Examples:
      >>> import numpy as np
      >>> from flax import nnx
      >>> from jaxconv.models import from_torchvision, to_torchvision_state_dict
      >>> sd = to_torchvision_state_dict(from_torchvision("resnet18", num_classes=10))
      >>> sd["conv1.weight"].shape, sd["fc.weight"].shape, sd["layer2.0.downsample.1.bias"].shape
      ((64, 3, 7, 7), (10, 512), (128,))
      >>> sd["bn1.num_batches_tracked"]
      array(0)
      >>> again = to_torchvision_state_dict(from_torchvision("resnet18", sd))   # a round trip
      >>> all(np.array_equal(sd[k], again[k]) for k in sd)
      True

      A lone block exports under its torchvision names too:

      >>> from jaxconv.nn import BasicBlock
      >>> sorted(to_torchvision_state_dict(BasicBlock(64, 128, stride=2, rngs=nnx.Rngs(0))))[:4]
      ['bn1.bias', 'bn1.num_batches_tracked', 'bn1.running_mean', 'bn1.running_var']
    """
    _, entries = _entries(model)
    out: dict[str, np.ndarray] = {}
    for key, entry in entries.items():
        # np.array copies: writable arrays of their own (torch.from_numpy warns on read-only)
        out[key] = entry.to_torch(np.array(entry.variable.get_value()))
        if key.endswith("." + _LEAF["var"]):
            out[key.rsplit(".", 1)[0] + "." + _COUNTER] = np.array(0, np.int64)
    return out


def from_torchvision(
    name: str,
    state_dict: Mapping[str, Any] | None = None,
    *,
    num_classes: int | None = None,
    aux_logits: bool | None = None,
    transform_input: bool | None = None,
    rngs: nnx.Rngs | None = None,
) -> nnx.Module:
    """torchvision's ``name`` as a jaxconv model, with ``state_dict``'s weights, in eval mode.

    The architecture is torchvision's layer for layer, so logits on an NHWC input equal
    torchvision's on the same input in NCHW, to float32 rounding: every model of the registry
    (:data:`MODELS`) with a ``torchvision`` layout, built in its ``"torchvision"`` variant:

    - ``"resnet18"``, ``"resnet34"``, ``"resnet50"``, ``"resnet101"``, ``"resnet152"``
      (:class:`ResNet18` … :class:`ResNet152`: v1.5, BN eps 1e-5), ``"resnext50_32x4d"``
      (:class:`ResNeXt50_32x4d`) and ``"wide_resnet50_2"`` (:class:`WideResNet50_2`);
    - ``"mobilenetv2"`` (:class:`MobileNetV2`; torchvision's ``"mobilenet_v2"`` is its
      alias);
    - ``"googlenet"``: torchvision's variant of :class:`GoogLeNet`, which differs from the
      paper: conv + BatchNorm (eps 1e-3, torch momentum 0.1) + ReLU everywhere and no LRN, a
      3×3 conv in each inception's "5×5" branch, a 2×2/2 ``pool4``, dropout 0.2, auxiliary
      heads with an adaptive average pool to 4×4, and ``transform_input``.

    Nothing is ever downloaded: pass the weights, e.g. ``torchvision.models.resnet50(
    weights="DEFAULT").state_dict()``, a ``torch.load``-ed checkpoint, or a dict of NumPy
    arrays (:func:`to_torchvision_state_dict`'s). torch tensors are read through
    ``.detach().cpu().numpy()``; jaxconv never imports torch. Every key must match: a missing,
    unexpected or wrongly shaped key is a ``ValueError`` that names each of them, and nothing is
    loaded. ``num_batches_tracked`` entries are accepted and ignored.

    With a ``state_dict``, the model is built abstractly (``nnx.eval_shape``) and filled from
    it, so no initializer runs; its dropout RNG streams come from ``rngs``.

    Args:
      name: ``"googlenet"``, ``"resnet18"``, ``"resnet34"``, ``"resnet50"``,
        ``"resnet101"``, ``"resnet152"``, ``"resnext50_32x4d"``, ``"wide_resnet50_2"`` or
        ``"mobilenetv2"`` (or an alias: ``"mobilenet_v2"``).
      state_dict: torchvision's names → torch tensors or arrays (OIHW conv weights, ``[out,
        in]`` linear weights, BatchNorm ``weight``/``bias``/``running_mean``/``running_var``);
        None for a fresh random initialization (jaxconv's initializers for the model).
      num_classes: classes of the classifier; None reads them from ``state_dict``'s
        ``fc.weight`` (``classifier.1.weight`` for MobileNetV2), else 1000.
      aux_logits: GoogLeNet only: build the auxiliary heads ``aux_4a`` / ``aux_4d``
        (torchvision's ``aux1`` / ``aux2``), which then must be in ``state_dict``. None or
        False: no heads, and ``aux1.*`` / ``aux2.*`` keys are dropped, as torchvision's
        ``googlenet(weights=...)`` drops them unless asked for ``aux_logits=True`` (its
        published heads are not trained).
      transform_input: GoogLeNet only: re-normalize the input as torchvision does (see
        :class:`GoogLeNet`). None: on with a ``state_dict`` (torchvision's pretrained
        default), off without.
      rngs: ``nnx.Rngs`` for the initialization and the dropout streams (default
        ``nnx.Rngs(0)``).

    Returns:
      The model in eval mode (``model.train()`` for fine-tuning): ``[N, H, W, 3]`` →
      ``[N, num_classes]``. GoogLeNet needs inputs of at least 15×15.

    Raises:
      ValueError: an unknown ``name`` (the message lists the known ones), a ``state_dict``
        that does not match (every bad key named), or a GoogLeNet option for another model.
      TypeError: ``state_dict`` not a mapping, ``rngs`` not an ``nnx.Rngs``.

    Examples:
      The architecture alone (random weights), abstractly so nothing is computed:

      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.models import from_torchvision, to_torchvision_state_dict
      >>> model = nnx.eval_shape(lambda: from_torchvision("googlenet", num_classes=10))
      >>> model.inception_3a.branch_5x5.conv.conv.kernel.shape   # torchvision's 3×3
      (3, 3, 16, 32)
      >>> model.conv1.bn.epsilon, model.pool4.window, model.transform_input
      (0.001, (2, 2), False)

      Weights in: here a random ResNet-18 exported to torchvision's names and read back.

      >>> sd = to_torchvision_state_dict(from_torchvision("resnet18", num_classes=10))
      >>> sorted(sd)[:3]
      ['bn1.bias', 'bn1.num_batches_tracked', 'bn1.running_mean']
      >>> model = from_torchvision("resnet18", sd)   # 10 classes, from fc.weight
      >>> model(jnp.ones((1, 64, 64, 3))).shape
      (1, 10)
      >>> del sd["fc.bias"]
      >>> from_torchvision("resnet18", sd)
      Traceback (most recent call last):
      ...
      ValueError: `state_dict` does not fit ... ResNet18 ...: missing keys (1): fc.bias
    """
    layouts = {n: e.torchvision for n, e in MODELS.items() if e.torchvision is not None}
    canonical = canonical_name(name, layouts)
    entry, layout = MODELS[canonical], layouts[canonical]
    if rngs is None:
        rngs = nnx.Rngs(0)
    if not isinstance(rngs, nnx.Rngs):
        raise TypeError(f"`rngs` must be an nnx.Rngs, got {type(rngs).__name__}")
    if state_dict is not None and not isinstance(state_dict, Mapping):
        raise TypeError(
            "`state_dict` must be a mapping of torchvision's names to arrays (a torch "
            f"state_dict() or a dict of NumPy arrays), got {type(state_dict).__name__}"
        )
    takers = {
        "aux_logits": [n for n, tv in layouts.items() if tv.aux_heads],
        "transform_input": [n for n, tv in layouts.items() if tv.transform_input],
    }
    for option, value in (("aux_logits", aux_logits), ("transform_input", transform_input)):
        if value is not None and canonical not in takers[option]:
            raise ValueError(
                f"`{option}` applies to {', '.join(map(repr, takers[option]))} only, "
                f"got name={name!r}"
            )
    options: dict[str, Any] = {}
    if layout.aux_heads:
        options["aux_logits"] = bool(aux_logits)
    if layout.transform_input:
        with_weights = state_dict is not None
        options["transform_input"] = with_weights if transform_input is None else transform_input
    if num_classes is None:
        head = None if state_dict is None else state_dict.get(layout.classifier)
        num_classes = entry.num_classes if head is None else int(head.shape[0])
    num_classes = check_int(num_classes, "num_classes")

    def build(rngs: nnx.Rngs) -> nnx.Module:
        return entry.build(num_classes, variant="torchvision", rngs=rngs, **options)

    if state_dict is None:
        model = build(rngs)
    else:
        model = nnx.eval_shape(lambda: build(nnx.Rngs(0)))
        dropped = () if aux_logits else layout.aux_heads
        load_state_dict(model, state_dict, dropped=dropped)
        for _, variable in nnx.to_flat_state(nnx.state(model, nnx.RngState)):
            if isinstance(variable, nnx.RngKey):
                variable.set_value(rngs.dropout())
            else:  # the stream's counter
                variable.set_value(jnp.zeros((), variable.get_value().dtype))
    model.eval()
    return model
