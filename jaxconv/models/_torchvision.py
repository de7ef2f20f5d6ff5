"""torchvision's weights in jaxconv models and back: :func:`from_torchvision`,
:func:`load_torchvision_state_dict`, :func:`to_torchvision_state_dict`.

A torchvision ``state_dict`` names modules (``layer1.0.bn2``), a jaxconv model names
submodules (``layer1[0].conv2.bn``); one table of regular-expression rewrites per model turns
the dotted path of each jaxconv conv, BatchNorm and linear layer into torchvision's module name,
and the leaf names map one to one: ``kernel`` → ``weight`` (HWIO ↔ OIHW for a conv, ``[in, out]``
↔ ``[out, in]`` for a linear layer), ``bias`` → ``bias``, BatchNorm's ``scale`` / ``mean`` /
``var`` → ``weight`` / ``running_mean`` / ``running_var``. torch is never imported: a torch
tensor is read through ``.detach().cpu().numpy()`` (DLPack for bfloat16).

Which names :func:`from_torchvision` takes, and how it builds each model, is the registry's
(:mod:`jaxconv.models.registry`: an entry's ``torchvision`` layout). The rewrite tables stay
here, by class: they also name a lone block's arrays.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxconv._check import as_array, check_bool, check_int
from jaxconv.models._googlenet import GoogLeNet
from jaxconv.models._input import check_model_layout
from jaxconv.models._mobilenet import MobileNetV2
from jaxconv.models._resnet import ResNet
from jaxconv.models.registry import MODELS, canonical_name
from jaxconv.nn._blocks import BasicBlock, InvertedResidual, ResNetBottleneck

__all__ = [
    "LoadResult",
    "from_torchvision",
    "load_torchvision_state_dict",
    "to_torchvision_state_dict",
]

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


def _as_numpy(value: Any, key: str) -> np.ndarray:
    """A ``state_dict`` value as NumPy: a torch tensor is detached and moved to the CPU first
    (a model's parameters may require grad or sit on a GPU), then read as every op reads one
    (:func:`jaxconv._check.as_array`: DLPack, which bfloat16 needs, else ``__array__``)."""
    if hasattr(value, "detach"):  # a torch tensor, read without importing torch
        value = value.detach().cpu()
    return np.asarray(as_array(value, f"state_dict[{key!r}]"))


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(value.shape) if hasattr(value, "shape") else np.shape(value)


def _counters(entries: Mapping[str, _Entry]) -> set[str]:
    suffix = "." + _LEAF["mean"]
    return {k[: -len(suffix)] + "." + _COUNTER for k in entries if k.endswith(suffix)}


#: Prefixes torch puts on every key of a wrapped model's ``state_dict``: ``nn.DataParallel``'s
#: and ``DistributedDataParallel``'s ``module.``, ``torch.compile``'s ``_orig_mod.``.
_WRAPPERS = ("module.", "_orig_mod.")
#: How many keys an error lists before it gives the count of the rest.
_LISTED = 8


def _check_state_dict(state_dict: Any) -> None:
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            "`state_dict` must be a mapping of torchvision's names to arrays (a torch "
            f"state_dict() or a dict of NumPy arrays), got {type(state_dict).__name__}"
        )


def _wrapper_prefix(keys: Collection[str]) -> str:
    """The wrappers' prefixes that every key carries (``"module."``, ``"_orig_mod.module."``
    …), outermost first; ``""`` when none does. No jaxconv model has such a submodule."""
    prefix = ""
    while keys:
        wrapper = next((w for w in _WRAPPERS if all(k.startswith(prefix + w) for k in keys)), None)
        if wrapper is None:
            return prefix
        prefix += wrapper
    return prefix


def _common_prefix(keys: Collection[str]) -> str:
    """The dotted module path every key starts with (``"backbone."``), or ``""``."""
    split = [k.split(".")[:-1] for k in keys]  # a key's last part is its leaf
    common = []
    for parts in zip(*split) if split else ():
        if len(set(parts)) > 1:
            break
        common.append(parts[0])
    return "".join(part + "." for part in common)


def _listed(keys: Sequence[str]) -> str:
    """``keys`` joined, cut short after :data:`_LISTED` with a count of the rest."""
    shown = ", ".join(keys[:_LISTED])
    return shown + (f", … and {len(keys) - _LISTED} more" if len(keys) > _LISTED else "")


@dataclasses.dataclass(frozen=True)
class LoadResult:
    """What :func:`load_torchvision_state_dict` did, key by key (torchvision's names, without
    the stripped ``prefix``).

    Every array of the model is in exactly one of ``replaced``, ``missing`` and
    ``mismatched``; every key of the ``state_dict`` is in ``replaced``, ``mismatched`` or
    ``unexpected``, but BatchNorm's ``num_batches_tracked`` (accepted and ignored).

    Attributes:
      replaced: the model's arrays loaded from the ``state_dict``, in the model's order.
      missing: the model's arrays the ``state_dict`` lacks: they keep their values (with
        ``strict=False``; ``strict=True`` raises).
      unexpected: keys of the ``state_dict`` the model has no array for: ignored.
      mismatched: keys of both whose shapes differ: not loaded, so the model's arrays keep
        their values.
      prefix: the prefix stripped from every key (``"module."`` from ``nn.DataParallel``,
        ``"_orig_mod."`` from ``torch.compile``), or ``""``.

    Examples:
      >>> from jaxconv.models import LoadResult
      >>> LoadResult(("fc.weight",), missing=("fc.bias",), prefix="module.")
      LoadResult(replaced=('fc.weight',), missing=('fc.bias',), unexpected=(), mismatched=(),
                 prefix='module.')
    """

    replaced: tuple[str, ...]
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    mismatched: tuple[str, ...] = ()
    prefix: str = ""


@dataclasses.dataclass(frozen=True)
class _Reading:
    """A ``state_dict`` read against a model, before anything is written."""

    what: str  # the model's class
    entries: dict[str, _Entry]  # the model's arrays, by key
    result: LoadResult
    values: dict[str, np.ndarray]  # the arrays to load, by key
    problems: str  # the keys that do not load, as errors and warnings list them ("": none)


def _read(
    module: nnx.Module, state_dict: Mapping[str, Any], *, strict: bool, skip: tuple[str, ...] = ()
) -> _Reading:
    """What loading ``state_dict`` into ``module`` does; nothing is written.

    Keys under the prefixes ``skip`` are left out on both sides: torchvision drops GoogLeNet's
    ``aux1.`` / ``aux2.`` the same way when its model has no auxiliary heads, and a head
    re-initialized for other classes keeps its values.

    Raises:
      TypeError: ``state_dict`` is not a mapping.
      ValueError: with ``strict``, a key missing, unexpected or of the wrong shape (each kind
        listed, cut short with a count).
    """
    _check_state_dict(state_dict)
    what, entries = _entries(module)
    prefix = _wrapper_prefix([str(k) for k in state_dict])
    given = {str(k)[len(prefix) :]: v for k, v in state_dict.items()}
    given = {k: v for k, v in given.items() if not k.startswith(skip)}
    shapes = {k: _shape(given[k]) for k in entries if k in given}
    wrong = {
        k: f"{k} {shape} where the model has {entries[k].torch_shape()}"
        for k, shape in shapes.items()
        if shape != entries[k].torch_shape()
    }
    counters = _counters(entries)
    result = LoadResult(
        replaced=tuple(k for k in shapes if k not in wrong),
        missing=tuple(sorted(k for k in entries if k not in given and not k.startswith(skip))),
        unexpected=tuple(sorted(k for k in given if k not in entries and k not in counters)),
        mismatched=tuple(sorted(wrong)),
        prefix=prefix,
    )
    problems = "; ".join(
        f"{label} ({len(keys)}): {_listed(keys)}"
        for label, keys in (
            ("missing keys", result.missing),
            ("unexpected keys", result.unexpected),
            ("wrong shapes", [wrong[k] for k in result.mismatched]),
        )
        if keys
    )
    if strict and problems:
        raise ValueError(
            f"`state_dict` does not fit torchvision's layout of this {what} (nothing was "
            f"loaded): {problems}{_prefix_note(given, entries, prefix)}"
        )
    values = {k: _as_numpy(given[k], k) for k in result.replaced}
    return _Reading(what, entries, result, values, problems)


def _prefix_note(given: Collection[str], entries: Collection[str], stripped: str) -> str:
    """What the keys' prefixes tell about a ``state_dict`` that does not fit (``""``: nothing):
    the wrapper prefix that was stripped, or a prefix every key has and no array of the model."""
    note = f" (the prefix {stripped!r} was stripped from every key)" if stripped else ""
    common = _common_prefix(given)
    if common and not any(k.startswith(common) for k in entries):
        note += (
            f"; every key of `state_dict` starts with {common!r}, which no key of the model "
            f"does: strip it, e.g. {{k.removeprefix({common!r}): v for k, v in "
            "state_dict.items()}"
        )
    return note


def _write(entries: Mapping[str, _Entry], values: Mapping[str, np.ndarray]) -> None:
    for key, value in values.items():
        variable = entries[key].variable
        dtype = variable.get_value().dtype
        variable.set_value(jnp.asarray(entries[key].to_jax(value), dtype=dtype))


def load_torchvision_state_dict(
    model: nnx.Module, state_dict: Mapping[str, Any], *, strict: bool = True
) -> LoadResult:
    """Loads a torchvision ``state_dict`` into ``model`` in place; says what it loaded.

    The names and layouts are :func:`to_torchvision_state_dict`'s: OIHW conv weights
    (``[C_out, C_in/groups, kh, kw]``), ``[out, in]`` linear weights, BatchNorm ``weight`` /
    ``bias`` / ``running_mean`` / ``running_var``; ``num_batches_tracked`` is accepted and
    ignored. torch tensors (bfloat16 included) are read without importing torch. A prefix
    that torch puts on every key of a wrapped model — ``module.`` (``nn.DataParallel``,
    ``DistributedDataParallel``), ``_orig_mod.`` (``torch.compile``) — is stripped and
    reported.

    Args:
      model: a :class:`ResNet` (any depth, ResNeXt and Wide ResNet included),
        :class:`MobileNetV2` or GoogLeNet in torchvision's variant (as
        :func:`from_torchvision` builds them), or a lone ``BasicBlock``,
        ``ResNetBottleneck`` or ``InvertedResidual``.
      state_dict: torchvision's names → torch tensors or arrays.
      strict: True: every key must fit — a missing, unexpected or wrongly shaped key is a
        ``ValueError`` that lists them, and nothing is loaded. False: load every key that
        fits; the model's other arrays keep their values (their initialization from the
        model's ``rngs``), keys the model lacks and keys of the wrong shape are not loaded;
        the result lists all three.

    Returns:
      A :class:`LoadResult`: the keys ``replaced``, ``missing``, ``unexpected`` and
      ``mismatched`` (wrong shape), and the stripped ``prefix``.

    Raises:
      TypeError: ``model`` is none of these models, ``state_dict`` not a mapping.
      ValueError: with ``strict=True``, a key that does not fit (each kind listed, the first
        8 of each and a count of the rest; a prefix that every key has and the model has not
        is named).

    Examples:
      Fine-tuning a checkpoint of another head: everything but ``fc`` loads, and ``fc``
      keeps its initialization.

      >>> import numpy as np
      >>> from flax import nnx
      >>> from jaxconv.models import ResNet18, load_torchvision_state_dict
      >>> from jaxconv.models import to_torchvision_state_dict
      >>> sd = to_torchvision_state_dict(ResNet18(1000, rngs=nnx.Rngs(0)))
      >>> model = ResNet18(10, rngs=nnx.Rngs(1))
      >>> result = load_torchvision_state_dict(model, sd, strict=False)
      >>> len(result.replaced), result.missing, result.unexpected, result.mismatched
      (100, (), (), ('fc.bias', 'fc.weight'))
      >>> np.array_equal(model.conv1.conv.kernel, sd["conv1.weight"].transpose(2, 3, 1, 0))
      True

      A ``state_dict`` saved from ``nn.DataParallel``:

      >>> wrapped = {"module." + k: v for k, v in to_torchvision_state_dict(model).items()}
      >>> load_torchvision_state_dict(model, wrapped).prefix
      'module.'
    """
    strict = check_bool(strict, "strict")
    reading = _read(model, state_dict, strict=strict)
    _write(reading.entries, reading.values)
    return reading.result


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


#: The warning of a GoogLeNet whose ``transform_input`` was not given with weights.
_TRANSFORM_INPUT_DEFAULT = (
    "from_torchvision({name!r}, state_dict) turns `transform_input` on, as torchvision's "
    "googlenet(weights=...) does: the input, normalized with ImageNet's mean and std, is "
    "re-normalized to mean = std = 0.5 before conv1, as torchvision's published GoogLeNet "
    "weights expect. Weights trained without it give wrong logits this way: pass "
    "transform_input=False for those, or transform_input=True to silence this warning"
)


def from_torchvision(
    name: str,
    state_dict: Mapping[str, Any] | None = None,
    *,
    num_classes: int | None = None,
    aux_logits: bool | None = None,
    transform_input: bool | None = None,
    layout: str = "NHWC",
    strict: bool = True,
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
    arrays (:func:`to_torchvision_state_dict`'s). They are read by
    :func:`load_torchvision_state_dict`: torch tensors without importing torch, a
    ``module.`` / ``_orig_mod.`` prefix on every key stripped (with a warning naming it), and
    with ``strict=True`` (the default) every key must match — a missing, unexpected or wrongly
    shaped key is a ``ValueError`` that lists them, and nothing is loaded.

    Fine-tuning: a ``num_classes`` other than the checkpoint's loads everything but the
    head — ``fc`` (MobileNetV2's ``classifier.1``; with ``aux_logits`` also GoogLeNet's
    ``aux1.fc2`` and ``aux2.fc2``) — and initializes the head from ``rngs``, as a fresh model
    is (timm's ``pretrained=True, num_classes=...``); a ``UserWarning`` names the head's keys
    and both class counts. ``strict=False`` loads every key that fits, initializes the rest
    from ``rngs`` and warns with what did not load (:func:`load_torchvision_state_dict`
    returns the same lists without a warning).

    When every array comes from ``state_dict``, the model is built abstractly
    (``nnx.eval_shape``) and filled from it, so no initializer runs; its dropout RNG streams
    come from ``rngs``.

    Args:
      name: ``"googlenet"``, ``"resnet18"``, ``"resnet34"``, ``"resnet50"``,
        ``"resnet101"``, ``"resnet152"``, ``"resnext50_32x4d"``, ``"wide_resnet50_2"`` or
        ``"mobilenetv2"`` (or an alias: ``"mobilenet_v2"``).
      state_dict: torchvision's names → torch tensors or arrays (OIHW conv weights, ``[out,
        in]`` linear weights, BatchNorm ``weight``/``bias``/``running_mean``/``running_var``);
        None for a fresh random initialization (jaxconv's initializers for the model).
      num_classes: classes of the classifier; None reads them from ``state_dict``'s
        ``fc.weight`` (``classifier.1.weight`` for MobileNetV2), else 1000. Other classes
        than the checkpoint's re-initialize the head (see above).
      aux_logits: GoogLeNet only: build the auxiliary heads ``aux_4a`` / ``aux_4d``
        (torchvision's ``aux1`` / ``aux2``), which then must be in ``state_dict``. None or
        False: no heads, and ``aux1.*`` / ``aux2.*`` keys are dropped, as torchvision's
        ``googlenet(weights=...)`` drops them unless asked for ``aux_logits=True`` (its
        published heads are not trained).
      transform_input: GoogLeNet only: re-normalize the input as torchvision does (see
        :class:`GoogLeNet`). None: on with a ``state_dict`` (torchvision's pretrained
        default), with a ``UserWarning`` naming it — weights trained without it give wrong
        logits; pass it to say which — and off without one (random weights: the default of
        torchvision's ``GoogLeNet`` and of :class:`GoogLeNet`).
      layout: ``"NHWC"`` (default) or ``"NCHW"``: the layout of the batches the model takes
        (an NCHW batch is transposed once, at the stem; the logits are the same).
      strict: True: every key of ``state_dict`` must fit; False: load what fits (see above).
      rngs: ``nnx.Rngs`` for the initialization and the dropout streams (default
        ``nnx.Rngs(0)``).

    Returns:
      The model in eval mode (``model.train()`` for fine-tuning): ``[N, H, W, 3]`` (``[N, 3,
      H, W]`` with ``layout="NCHW"``) → ``[N, num_classes]``. GoogLeNet needs inputs of at
      least 15×15.

    Raises:
      ValueError: an unknown ``name`` (the message lists the known ones), a ``state_dict``
        that does not match with ``strict=True`` (the bad keys listed), or a GoogLeNet
        option for another model.
      TypeError: ``state_dict`` not a mapping, ``rngs`` not an ``nnx.Rngs``.

    Examples:
      The architecture alone (random weights), abstractly so nothing is computed:

      >>> import warnings
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
      >>> nchw = from_torchvision("resnet18", sd, layout="NCHW")   # PyTorch's batches
      >>> nchw(jnp.ones((1, 3, 64, 64))).shape
      (1, 10)

      Fine-tuning for 5 classes: the 10-class head is re-initialized, with a warning.

      >>> with warnings.catch_warnings(record=True) as caught:
      ...     warnings.simplefilter("always")
      ...     model = from_torchvision("resnet18", sd, num_classes=5)
      >>> model.fc.kernel.shape, str(caught[0].message)[:62]
      ((512, 5), "from_torchvision('resnet18'): the checkpoint's head has 10 cla")

      A key that does not fit:

      >>> del sd["fc.bias"]
      >>> from_torchvision("resnet18", sd)
      Traceback (most recent call last):
      ...
      ValueError: `state_dict` does not fit ... ResNet18 ...: missing keys (1): fc.bias
    """
    layouts = {n: e.torchvision for n, e in MODELS.items() if e.torchvision is not None}
    canonical = canonical_name(name, layouts)
    entry, tv = MODELS[canonical], layouts[canonical]
    if rngs is None:
        rngs = nnx.Rngs(0)
    if not isinstance(rngs, nnx.Rngs):
        raise TypeError(f"`rngs` must be an nnx.Rngs, got {type(rngs).__name__}")
    strict = check_bool(strict, "strict")
    if state_dict is not None:
        _check_state_dict(state_dict)
    takers = {
        "aux_logits": [n for n, t in layouts.items() if t.aux_heads],
        "transform_input": [n for n, t in layouts.items() if t.transform_input],
    }
    for option, value in (("aux_logits", aux_logits), ("transform_input", transform_input)):
        if value is not None and canonical not in takers[option]:
            raise ValueError(
                f"`{option}` applies to {', '.join(map(repr, takers[option]))} only, "
                f"got name={name!r}"
            )
    options: dict[str, Any] = {"layout": check_model_layout(layout)}  # before any trace
    if tv.aux_heads:
        options["aux_logits"] = bool(aux_logits)
    if tv.transform_input:
        if transform_input is None and state_dict is not None:
            warnings.warn(_TRANSFORM_INPUT_DEFAULT.format(name=name), UserWarning, stacklevel=2)
        with_weights = state_dict is not None
        options["transform_input"] = with_weights if transform_input is None else transform_input
    trained = None  # the checkpoint's classes
    if state_dict is not None:
        head = state_dict.get(_wrapper_prefix([str(k) for k in state_dict]) + tv.classifier)
        trained = None if head is None else int(_shape(head)[0])
    if num_classes is None:
        num_classes = entry.num_classes if trained is None else trained
    num_classes = check_int(num_classes, "num_classes")

    def build(rngs: nnx.Rngs) -> nnx.Module:
        return entry.build(num_classes, variant="torchvision", rngs=rngs, **options)

    if state_dict is None:
        model = build(rngs)
        model.eval()
        return model
    heads = tv.heads(bool(aux_logits)) if trained not in (None, num_classes) else ()
    skip = heads + (() if aux_logits else tv.aux_heads)
    model = nnx.eval_shape(lambda: build(nnx.Rngs(0)))
    reading = _read(model, state_dict, strict=strict, skip=skip)
    if heads:
        keys = ", ".join(k for k in reading.entries if k.startswith(heads))
        warnings.warn(
            f"from_torchvision({name!r}): the checkpoint's head has {trained} classes "
            f"({tv.classifier}) and `num_classes` is {num_classes}: {keys} are initialized "
            f"from `rngs`, everything else is loaded (leave `num_classes` out to load the "
            "head too)",
            UserWarning,
            stacklevel=2,
        )
    if reading.result.prefix:
        warnings.warn(
            f"from_torchvision({name!r}): every key of `state_dict` starts with "
            f"{reading.result.prefix!r} (a model wrapped in nn.DataParallel or torch.compile); "
            "it was stripped, so the keys are torchvision's",
            UserWarning,
            stacklevel=2,
        )
    if reading.problems:  # strict=False, or it would have raised
        warnings.warn(
            f"from_torchvision({name!r}, strict=False) loaded {len(reading.result.replaced)} "
            f"arrays; the model's others are initialized from `rngs`. Not loaded: "
            f"{reading.problems}",
            UserWarning,
            stacklevel=2,
        )
    if heads or reading.result.missing or reading.result.mismatched:
        model = build(rngs)  # the arrays not loaded keep a fresh model's values
        _write(_entries(model)[1], reading.values)
    else:
        _write(reading.entries, reading.values)
        for _, variable in nnx.to_flat_state(nnx.state(model, nnx.RngState)):
            if isinstance(variable, nnx.RngKey):
                variable.set_value(rngs.dropout())
            else:  # the stream's counter
                variable.set_value(jnp.zeros((), variable.get_value().dtype))
    model.eval()
    return model
