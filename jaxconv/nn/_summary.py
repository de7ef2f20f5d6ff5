"""Per-layer summary of a Flax NNX model: output shapes, parameters, MACs and XLA's flops.

How it works: the model is split and merged into a private copy inside ``jax.eval_shape``
(nothing is computed). Each module *instance of that copy* is given a recording subclass of its
own class (``instance.__class__``), whose ``__call__`` notes the input and output shapes and
then runs the original ``__call__``. The model's classes and the model itself are never
modified, so concurrent summaries and calls of the same classes do not interfere. A conv's MACs
come from the cost model (:func:`jaxconv.conv_cost`, every tap counted); a block's row adds up
its descendants'. Rows are the module tree in call order, each container (an ``nnx.List`` too,
which is iterated, never called) followed by its children. XLA's own flop count (taps in
padding skipped) can be read beside it on request: it compiles the model.
"""

from __future__ import annotations

import functools
import io
import itertools
import math
from dataclasses import dataclass, replace
from typing import Any

import jax
from flax import nnx

import jaxconv
from jaxconv._check import check_int
from jaxconv.nn._conv import Conv, Conv1x1
from jaxconv.nn._depthwise import DepthwiseConv
from jaxconv.nn._separable import SeparableConv
from jaxconv.nn._transpose import ConvTranspose

__all__ = ["Summary", "SummaryRow", "summary"]

_XLA_MODES = (None, "total", "rows")


@dataclass(frozen=True)
class SummaryRow:
    """One module of the model (or, for :attr:`Summary.total`, the whole model).

    Attributes:
      path: dotted attribute path, e.g. ``"inception_4a.branch_5x5.reduce"`` (``""`` for the
        model itself).
      kind: the module's class name.
      input_shape: shape of the first positional argument of its first call (None if not
        called).
      output_shape: shape of its output (a tuple of ints, or that structure for tuple
        outputs); None if the module did not run in this call (e.g. auxiliary heads in eval
        mode). A container that is never called itself (an ``nnx.List`` of blocks) has its
        first child's input shape and its last child's output shape when its children ran as
        a chain, each on the previous one's output (ResNet's ``layer1``); else None.
      params: parameters (``nnx.Param`` elements) of the module and its children.
      macs: multiply-accumulates of the module and its children, cost-model convention (every
        kernel tap counted; convolutions and ``nnx.Linear`` only), over the whole batch.
      flops: ``2·macs``.
      xla_flops: XLA's ``cost_analysis`` flops for this module alone (taps on padding skipped,
        elementwise ops counted), or None when not requested or when the module runs a
        custom call XLA cannot count (a oneDNN conv: :attr:`jaxconv.XlaCost.uncounted_calls`).
      calls: how many times the module's own ``__call__`` ran (0 for a container that is
        only iterated, like an ``nnx.List``).
    """

    path: str
    kind: str
    input_shape: Any
    output_shape: Any
    params: int
    macs: int
    flops: int
    xla_flops: float | None = None
    calls: int = 0

    @property
    def depth(self) -> int:
        """Nesting depth: 0 for the model's own attributes."""
        return self.path.count(".") if self.path else -1


class Summary(list[SummaryRow]):
    """The rows of :func:`summary` (a ``list`` of :class:`SummaryRow`) and their ``total``.

    ``str(summary)`` (and so ``print``) renders a table — with ``rich`` when it is installed —
    and rich consoles render it directly.

    Attributes:
      total: the whole model: all parameters, all MACs, XLA's flops for the whole call.
    """

    total: SummaryRow

    def __init__(self, rows: list[SummaryRow], total: SummaryRow):
        super().__init__(rows)
        self.total = total

    def row(self, path: str) -> SummaryRow:
        """The row at ``path``; ``KeyError`` if there is none."""
        for r in self:
            if r.path == path:
                return r
        raise KeyError(f"no module at path {path!r}")

    def _columns(self) -> tuple[list[str], list[list[str]]]:
        xla = any(r.xla_flops is not None for r in (*self, self.total))
        header = ["path", "kind", "output shape", "params", "MACs"] + (["XLA flops"] * xla)
        body = []
        for r in (*self, self.total):
            name = "total" if r is self.total else "  " * r.depth + r.path.rsplit(".", 1)[-1]
            cells = [name, r.kind, _format_shape(r.output_shape), f"{r.params:,}", _si(r.macs)]
            if xla:
                cells.append("" if r.xla_flops is None else _si(r.xla_flops))
            body.append(cells)
        return header, body

    def __rich__(self) -> Any:
        from rich.table import Table

        header, body = self._columns()
        table = Table(title=f"{self.total.kind} · input {_format_shape(self.total.input_shape)}")
        for i, name in enumerate(header):
            table.add_column(name, justify="right" if i >= 3 else "left", no_wrap=True, footer="")
        for cells in body[:-1]:
            table.add_row(*cells)
        table.add_section()
        table.add_row(*body[-1], style="bold")
        return table

    def __str__(self) -> str:
        try:
            from rich.console import Console
        except ImportError:  # plain text without rich
            header, body = self._columns()
            widths = [max(len(c) for c in col) for col in zip(header, *body)]
            return "\n".join(
                "  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
                for line in (header, *body)
            )
        buffer = io.StringIO()
        Console(file=buffer, width=200, force_terminal=False, color_system=None).print(self)
        return buffer.getvalue().rstrip()

    __repr__ = __str__


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{unit}"
    return f"{value:.0f}"


def _format_shape(shape: Any) -> str:
    if shape is None:
        return "—"
    if isinstance(shape, tuple) and all(isinstance(d, int) for d in shape):
        return "×".join(map(str, shape))
    return ", ".join(_format_shape(s) for s in shape)


def _shapes(tree: Any) -> Any:
    """Array leaves → shape tuples, keeping tuples/NamedTuples; a single array → its shape."""
    if hasattr(tree, "shape") and hasattr(tree, "dtype"):
        return tuple(int(d) for d in tree.shape)
    if isinstance(tree, (tuple, list)):
        return tuple(_shapes(t) for t in tree)
    return None


def _own_macs(module: Any, x: Any) -> int:
    """MACs of the module's own op (not its children's)."""
    if not hasattr(x, "shape"):
        return 0
    if isinstance(module, (Conv, Conv1x1, DepthwiseConv, ConvTranspose)):
        return module.cost(tuple(x.shape)).macs
    if isinstance(module, SeparableConv):  # one op call: its submodules never run on their own
        return module.cost(tuple(x.shape)).macs_separable
    if isinstance(module, nnx.Linear):
        return math.prod(x.shape[:-1]) * module.in_features * module.out_features
    return 0


class _Recorder:
    """Collects, per module path, the first call's input and output, call counts and own
    MACs."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.records: dict[str, dict[str, Any]] = {}
        #: path → (input, output) objects of the first call: which module fed which
        self.flow: dict[str, tuple[Any, Any]] = {}

    def call(self, path: str, module: Any, run: Any, args: tuple, kwargs: dict) -> Any:
        """``run(*args, **kwargs)`` (``module``'s real ``__call__``), recorded under ``path``."""
        x = args[0] if args else None
        rec = self.records.get(path)
        first = rec is None
        if rec is None:  # registered on entry, so a block comes before its children
            self.order.append(path)
            rec = self.records[path] = dict(
                args=_abstract(args), kwargs=_abstract(kwargs), calls=0, macs=0
            )
        out = run(*args, **kwargs)
        if first:
            self.flow[path] = (x, out)
        rec["calls"] += 1
        rec["macs"] += _own_macs(module, x)
        return out


def _recording_call(self: Any, *args: Any, **kwargs: Any) -> Any:
    """``__call__`` of the recording classes: reports to the instance's recorder.

    Only instances of the traced copy have a recording class (the exact class, never a
    subclass of it), so the next class in the MRO is the module's own and ``run`` is its real
    ``__call__``.
    """
    run = super(type(self), self).__call__
    return self._summary_recorder.call(self._summary_path, self, run, args, kwargs)


@functools.cache
def _recording_class(cls: type) -> type:
    """``cls`` with :func:`_recording_call` as ``__call__``.

    Cached, one per class, because Flax registers every Module type it sees.
    """
    return type(cls.__name__, (cls,), {"__call__": _recording_call, "__module__": cls.__module__})


def _record(module: nnx.Module, path: str, recorder: _Recorder) -> None:
    """Makes this one instance (of the private copy) report its calls to ``recorder``."""
    object.__setattr__(module, "__class__", _recording_class(type(module)))
    object.__setattr__(module, "_summary_recorder", recorder)
    object.__setattr__(module, "_summary_path", path)


def _abstract(tree: Any) -> Any:
    return jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype) if hasattr(a, "shape") else a, tree
    )


def _dotted(path: tuple) -> str:
    return ".".join(map(str, path))


def summary(
    model: nnx.Module,
    *args: Any,
    depth: int | None = None,
    xla: str | None = None,
    **kwargs: Any,
) -> Summary:
    """One row per module of ``model``: output shape, parameters, MACs (and XLA's flops).

    The model is traced once with ``jax.eval_shape`` on ``args`` (arrays or
    ``jax.ShapeDtypeStruct``; nothing is computed or compiled) in its current train/eval
    mode. Rows are the module tree: each module comes right after its parent and before its
    parent's next child, children in the order they first ran, so a container that is only
    iterated (ResNet's ``layer1``, an ``nnx.List``) is followed by its blocks. Modules that
    did not run (e.g. GoogLeNet's auxiliary heads in eval mode) come after their ran siblings,
    with ``output_shape=None``. ``fuse_1x1`` is switched off in the traced copy so that each
    1×1 conv of an Inception block is its own row (the MACs are the same either way).

    Args:
      model: an ``nnx.Module`` (not modified).
      *args, **kwargs: the call's arguments, e.g. an NHWC input.
      depth: how many levels of nesting to show: 1 shows the model's own attributes only,
        2 also their children, …; a row's parameters and MACs always include its folded
        descendants', so the totals do not change. None (default): every module.
      xla: None (default) compiles nothing; ``"total"`` compiles the whole call once and
        reads XLA's flops into ``summary.total``; ``"rows"`` also compiles every module shown
        that ran, on its own (slow for big models: GoogLeNet has ~150 modules). XLA cannot
        count a oneDNN conv (a custom call): with the extension on a CPU, such a row's
        ``xla_flops`` is None.

    Returns:
      A :class:`Summary`: a list of :class:`SummaryRow` with a ``total``; ``print`` it for a
      table.

    Raises:
      ValueError: ``depth`` below 1, or an unknown ``xla``.
      TypeError: ``model`` is not an ``nnx.Module``, ``depth`` not an int.

    Examples:
      Table 1 of the GoogLeNet paper, inception (4a): 14×14×512 and "73M" ops.

      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.models import GoogLeNet, ResNet18
      >>> from jaxconv.nn import summary
      >>> model = nnx.eval_shape(lambda: GoogLeNet(aux_logits=False, rngs=nnx.Rngs(0)))
      >>> model.eval()
      >>> s = summary(model, jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32))
      >>> row = s.row("inception_4a")
      >>> row.output_shape, row.macs
      ((1, 14, 14, 512), 73608192)
      >>> s.row("inception_4a.branch_5x5.reduce").macs
      1505280
      >>> s.total.params, round(s.total.macs / 1e9, 2)
      (6998552, 1.58)

      ResNet's stages are ``nnx.List`` s of blocks; ``depth=1`` folds the blocks into them:

      >>> resnet = nnx.eval_shape(lambda: ResNet18(rngs=nnx.Rngs(0)))
      >>> s = summary(resnet, jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32), depth=1)
      >>> [r.path for r in s]
      ['conv1', 'maxpool', 'layer1', 'layer2', 'layer3', 'layer4', 'avgpool', 'fc']
      >>> s.row("layer2").output_shape, s.row("layer2").params
      ((1, 8, 8, 128), 525568)
    """
    if xla not in _XLA_MODES:
        raise ValueError(f"`xla` must be None, 'total' or 'rows', got {xla!r}")
    if not isinstance(model, nnx.Module):
        raise TypeError(f"`model` must be a flax.nnx.Module, got {type(model).__name__}")
    depth = check_int(depth, "depth", allow_none=True)
    graphdef, state = nnx.split(model)
    recorder = _Recorder()

    def traced(state: Any, args: tuple, kwargs: dict) -> Any:
        copy = nnx.merge(graphdef, state)
        # An execution choice of Inception (jaxconv.nn.Inception): one row per 1×1 conv.
        copy.set_attributes(fuse_1x1=False, raise_if_not_found=False)
        for path, module in nnx.iter_modules(copy):
            _record(module, _dotted(path), recorder)
        return copy(*args, **kwargs)

    jax.eval_shape(traced, state, args, kwargs)
    records = recorder.records

    originals = {_dotted(p): m for p, m in nnx.iter_modules(model)}
    tree = _Tree(originals, recorder)
    own_macs = {path: rec["macs"] for path, rec in records.items()}

    def subtree_macs(path: str) -> int:
        if not path:
            return sum(own_macs.values())
        return sum(v for p, v in own_macs.items() if p == path or p.startswith(path + "."))

    def n_params(module: Any) -> int:
        return sum(int(math.prod(p.shape)) for p in jax.tree.leaves(nnx.state(module, nnx.Param)))

    def make_row(path: str) -> SummaryRow:
        rec = records.get(path, {})
        macs = subtree_macs(path)
        flow = tree.flow(path)
        return SummaryRow(
            path=path,
            kind=type(originals[path]).__name__,
            input_shape=None if flow is None else _shapes(flow[0]),
            output_shape=None if flow is None else _shapes(flow[1]),
            params=n_params(originals[path]),
            macs=macs,
            flops=2 * macs,
            calls=rec.get("calls", 0),
        )

    rows = [make_row(p) for p in tree.walk("") if depth is None or p.count(".") < depth]
    total = make_row("")

    if xla is not None:
        total = replace(
            total, xla_flops=_module_xla_flops(model, _abstract(args), _abstract(kwargs))
        )
    if xla == "rows":
        rows = [
            replace(
                r,
                xla_flops=_module_xla_flops(
                    originals[r.path], records[r.path]["args"], records[r.path]["kwargs"]
                ),
            )
            if r.path in records
            else r
            for r in rows
        ]
    return Summary(rows, total)


class _Tree:
    """The module paths as a tree, children in the order they first ran.

    Args:
      paths: every module's dotted path (``""``: the model), as ``nnx.iter_modules`` gives them.
      recorder: the trace's calls.
    """

    def __init__(self, paths: Any, recorder: _Recorder):
        self.children: dict[str, list[str]] = {}
        for path in paths:
            if path:
                self.children.setdefault(path.rpartition(".")[0], []).append(path)
        rank = {path: i for i, path in enumerate(recorder.order)}
        self.first: dict[str, float] = {}

        def first(path: str) -> float:  # the first call in the subtree (inf: none ran)
            own = rank.get(path, math.inf)
            self.first[path] = min([own, *(first(c) for c in self.children.get(path, ()))])
            return self.first[path]

        first("")
        for kids in self.children.values():
            kids.sort(key=self.first.__getitem__)  # stable: the not-run keep their order
        self._flow = dict(recorder.flow)

    def walk(self, path: str) -> Any:
        """The descendants of ``path``, each followed by its own, depth first."""
        for child in self.children.get(path, ()):
            yield child
            yield from self.walk(child)

    def flow(self, path: str) -> tuple[Any, Any] | None:
        """(input, output) of the module's first call; for a container that is never called,
        its children's when they ran as a chain (each on the previous one's output)."""
        if path not in self._flow:
            ran = [c for c in self.children.get(path, ()) if self.first[c] < math.inf]
            links = [link for link in map(self.flow, ran) if link is not None]
            if not links or len(links) < len(ran):
                return None
            if any(b[0] is not a[1] for a, b in itertools.pairwise(links)):
                return None
            self._flow[path] = (links[0][0], links[-1][1])
        return self._flow[path]


def _module_xla_flops(module: nnx.Module, args: tuple, kwargs: dict) -> float | None:
    """XLA's flops for calling ``module`` alone (compiled, never run); None when XLA cannot
    count all of it (custom calls)."""
    graphdef, state = nnx.split(module)

    def call(state: Any, args: tuple, kwargs: dict) -> Any:
        return nnx.merge(graphdef, state)(*args, **kwargs)

    cost = jaxconv.xla_cost(call, _abstract(state), args, kwargs)
    return None if cost.uncounted_calls else cost.flops
