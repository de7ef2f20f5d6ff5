"""What XLA made of a function: a fusion report read from the optimized HLO text.

``compiled.as_text()`` is the module after every XLA pass. Its ENTRY computation is the list of
kernels the device runs, in order; a ``fusion`` instruction is one kernel whose body is a
``fused_computation``. This module answers, for each convolution or dot:

- which library runs it: a ``kind=kCustom`` fusion names it in its backend config
  (``__ynn_fusion`` = YNNPACK on XLA:CPU, ``__triton_gemm`` = Triton on GPU), a custom call names
  it in its target (``__cudnn$conv…`` = cuDNN, ``__cublas$gemm`` = cuBLAS, ``__onednn$…``); a bare
  ``convolution``/``dot`` in ENTRY runs on XLA's own emitter (Eigen on CPU);
- which elementwise ops share its kernel (``fused``: bias ``add``, ReLU ``maximum``, ``convert``;
  a cuDNN ``convBiasActivationForward`` call fuses the bias and its ``activation_mode``);
- which elementwise ops run in the kernels right before (``prologue``, e.g. bf16→f32 ``convert``)
  and right after it (``epilogue``, e.g. a separate bias + ReLU loop fusion).

Plain text parsing, no jax needed: :func:`fusion_report` takes the HLO string.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

__all__ = ["Anchor", "FusionReport", "fusion_report", "parse_hlo"]

#: Instructions that launch nothing: they only name, view or bundle buffers.
NO_WORK = frozenset(
    {
        "parameter",
        "constant",
        "bitcast",
        "get-tuple-element",
        "tuple",
        "after-all",
        "partition-id",
        "replica-id",
        "opt-barrier",
        "add-dependency",
    }
)
#: Instructions that move no data of their own inside a fusion (ignored in op lists).
PLUMBING = NO_WORK | frozenset({"broadcast", "reshape", "iota"})
#: Ops that look through to the buffer they wrap when following producers and consumers.
VIEWS = frozenset({"bitcast", "get-tuple-element", "reshape"})
ANCHOR_OPS = ("convolution", "dot")
#: Elementwise and data-layout ops worth reporting next to a conv/dot.
ELEMENTWISE = frozenset(
    {
        "abs",
        "add",
        "and",
        "clamp",
        "compare",
        "convert",
        "copy",
        "divide",
        "exponential",
        "exponential-minus-one",
        "log",
        "log-plus-one",
        "logistic",
        "maximum",
        "minimum",
        "multiply",
        "negate",
        "or",
        "power",
        "reduce-precision",
        "rsqrt",
        "select",
        "sign",
        "sqrt",
        "subtract",
        "tanh",
        "transpose",
        "reverse",
        "pad",
        "slice",
        "concatenate",
        "dynamic-slice",
    }
)

_LIBRARY_FUSION_KINDS = {
    "__ynn_fusion": "YNNPACK",
    "__xnn_fusion": "XNNPACK",
    "__onednn_fusion": "oneDNN",
    "__triton_gemm": "Triton",
    "__triton": "Triton",
    "__cudnn$fusion": "cuDNN",
    "__cublas": "cuBLAS",
}
_CUSTOM_CALL_LIBRARIES = (
    ("__cudnn$conv", "cuDNN"),
    ("__cudnn", "cuDNN"),
    ("__cublas", "cuBLAS"),
    ("__onednn", "oneDNN"),
    ("jaxconv_onednn", "oneDNN"),  # jaxconv's own FFI calls (the onednn lowering)
    ("__xnn", "XNNPACK"),
    ("__ynn", "YNNPACK"),
)

_HEADER = re.compile(r"^(ENTRY\s+)?%?([\w.\-$]+)\s*(\(.*\)\s*->.*)?\{\s*$")
_INSTRUCTION = re.compile(r"^\s*(ROOT\s+)?%?([\w.\-$]+)\s*=\s*(.*?)\s([\w\-]+)\((.*)$")


@dataclass(frozen=True)
class Instruction:
    """One HLO instruction: ``name = shape opcode(operands), attributes``."""

    name: str
    opcode: str
    operands: tuple[str, ...]
    attributes: str
    root: bool = False

    def attribute(self, pattern: str) -> str | None:
        match = re.search(pattern, self.attributes)
        return match.group(1) if match else None

    @property
    def calls(self) -> tuple[str, ...]:
        found = re.search(r"calls=\{?([^},]+(?:,\s*%[\w.\-$]+)*)\}?", self.attributes)
        if not found:
            return ()
        return tuple(n.strip().lstrip("%") for n in found.group(1).split(","))


def _split_operands(rest: str) -> tuple[str, str]:
    """Splits ``a, b), attrs`` at the parenthesis that closes the operand list."""
    depth = 1
    for i, ch in enumerate(rest):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return rest[:i], rest[i + 1 :]
    return rest, ""


def _operand_names(text: str) -> tuple[str, ...]:
    if "%" in text:
        return tuple(re.findall(r"%([\w.\-$]+)", text))
    # Printers that omit the % sigil: the last token of each comma-separated operand.
    return tuple(part.split()[-1] for part in text.split(",") if part.strip())


def parse_hlo(text: str) -> tuple[dict[str, list[Instruction]], str | None]:
    """Parses HLO text into ``({computation: [instructions]}, entry computation name)``."""
    computations: dict[str, list[Instruction]] = {}
    entry = None
    current: list[Instruction] | None = None
    for line in text.splitlines():
        if current is None:
            header = _HEADER.match(line)
            if header and not line.startswith("HloModule"):
                current = computations.setdefault(header.group(2), [])
                if header.group(1):
                    entry = header.group(2)
            continue
        if line.strip() == "}":
            current = None
            continue
        match = _INSTRUCTION.match(line)
        if match:
            operands, attributes = _split_operands(match.group(5))
            current.append(
                Instruction(
                    name=match.group(2),
                    opcode=match.group(4),
                    operands=_operand_names(operands),
                    attributes=attributes,
                    root=bool(match.group(1)),
                )
            )
    return computations, entry


@dataclass(frozen=True)
class Anchor:
    """One convolution or dot and the elementwise ops around it.

    Attributes:
      op: ``"convolution"``, ``"dot"`` or ``"custom-call"`` (a library conv/GEMM call).
      kernel: the ENTRY instruction (kernel) that runs it.
      library: ``"YNNPACK"``, ``"cuDNN"``, ``"cuBLAS"``, ``"Triton"``, ``"Eigen"`` (a bare op on
        CPU), ``"XLA"`` (inside an XLA loop/output fusion or a bare op elsewhere), …
      fused: elementwise ops in the same kernel (sorted, unique).
      prologue: ``{kernel: ops}`` for producer kernels of its operands that do elementwise work.
      epilogue: ``{kernel: ops}`` for consumer kernels of its result that do elementwise work.
    """

    op: str
    kernel: str
    library: str
    fused: tuple[str, ...]
    prologue: dict[str, tuple[str, ...]] = field(default_factory=dict)
    epilogue: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class FusionReport:
    """Summary of an optimized HLO module.

    Attributes:
      kernels: ENTRY instructions that do work (everything but parameters, constants, bitcasts,
        tuples and get-tuple-elements) — one launch each.
      fusions: how many of those are fusions.
      anchors: one :class:`Anchor` per convolution/dot (ENTRY order).
      libraries: library calls, e.g. ``("YNNPACK", "YNNPACK")`` or ``("cuDNN",)``.
      custom_calls: custom-call targets anywhere in the module.
    """

    kernels: int
    fusions: int
    anchors: tuple[Anchor, ...]
    libraries: tuple[str, ...]
    custom_calls: tuple[str, ...]

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self, limit: int | None = None) -> str:
        """A few lines of text, one per convolution/dot (the first ``limit`` of them)."""
        libs = ", ".join(f"{n}×{self.libraries.count(n)}" for n in sorted(set(self.libraries)))
        lines = [f"{self.kernels} kernels, {self.fusions} fusions; libraries: {libs or 'none'}"]
        for a in self.anchors[:limit]:

            def side(parts: dict[str, tuple[str, ...]]) -> str:
                return "; ".join(f"{k}: {'+'.join(v)}" for k, v in parts.items()) or "none"

            lines.append(
                f"{a.op} [{a.library}] in {a.kernel}: fused {'+'.join(a.fused) or 'nothing'}"
                f" | before: {side(a.prologue)} | after: {side(a.epilogue)}"
            )
        if limit is not None and len(self.anchors) > limit:
            lines.append(f"… and {len(self.anchors) - limit} more convolutions/dots (see the JSON)")
        return "\n".join(lines)


def _library_of(inst: Instruction, body_ops: set[str], platform: str) -> str | None:
    kind = inst.attribute(r'"kind"\s*:\s*"(__[\w$]+)"')
    if kind:
        for prefix, name in _LIBRARY_FUSION_KINDS.items():
            if kind.startswith(prefix):
                return name
        return kind
    target = inst.attribute(r'custom_call_target="([^"]+)"')
    if target:
        for prefix, name in _CUSTOM_CALL_LIBRARIES:
            if target.startswith(prefix):
                return name
        return target
    if inst.opcode in ANCHOR_OPS:
        return "Eigen" if platform == "cpu" else "XLA"
    if body_ops & set(ANCHOR_OPS):
        return "XLA"
    return None


def _is_library_call(target: str) -> bool:
    return any(target.startswith(p) for p, _ in _CUSTOM_CALL_LIBRARIES) and (
        "conv" in target.lower() or "gemm" in target.lower() or "matmul" in target.lower()
    )


def fusion_report(hlo_text: str, platform: str = "cpu") -> FusionReport:
    """Reads the kernels, library calls and fused elementwise ops out of optimized HLO.

    Args:
      hlo_text: ``jax.jit(f).lower(*args).compile().as_text()``.
      platform: ``"cpu"``, ``"gpu"``/``"cuda"``/``"rocm"`` or ``"tpu"`` (only used to name bare
        convolutions: Eigen on CPU).

    Returns:
      A :class:`FusionReport`.
    """
    computations, entry = parse_hlo(hlo_text)
    if entry is None:
        raise ValueError("`hlo_text` has no ENTRY computation; pass compiled.as_text()")

    def body_ops(name: str, seen: frozenset[str] = frozenset()) -> list[str]:
        ops: list[str] = []
        for inst in computations.get(name, ()):
            ops.append(inst.opcode)
            for called in inst.calls:
                if called not in seen:
                    ops.extend(body_ops(called, seen | {name}))
        return ops

    entry_insts = computations[entry]
    by_name = {inst.name: inst for inst in entry_insts}
    kernels = [i for i in entry_insts if i.opcode not in NO_WORK]
    contents = {i.name: ([i.opcode] + [op for c in i.calls for op in body_ops(c)]) for i in kernels}

    def elementwise(name: str) -> tuple[str, ...]:
        return tuple(sorted({op for op in contents.get(name, ()) if op in ELEMENTWISE}))

    consumers: dict[str, list[str]] = {}
    for inst in entry_insts:
        for operand in inst.operands:
            consumers.setdefault(operand, []).append(inst.name)

    def producers_through_views(name: str) -> list[str]:
        inst = by_name.get(name)
        if inst is None or inst.opcode == "parameter":
            return []
        if inst.opcode in VIEWS:
            return [p for o in inst.operands for p in producers_through_views(o)]
        return [name]

    def consumers_through_views(name: str) -> list[str]:
        found = []
        for user in consumers.get(name, []):
            if by_name[user].opcode in VIEWS:
                found.extend(consumers_through_views(user))
            else:
                found.append(user)
        return found

    anchors = []
    libraries = []
    custom_calls = sorted(
        {
            target
            for insts in computations.values()
            for inst in insts
            if inst.opcode == "custom-call"
            for target in [inst.attribute(r'custom_call_target="([^"]+)"')]
            if target
        }
    )
    for inst in kernels:
        ops = contents[inst.name]
        library = _library_of(inst, set(ops), platform)
        if library in set(_LIBRARY_FUSION_KINDS.values()) | {"cuDNN", "cuBLAS", "oneDNN"}:
            libraries.append(library)
        target = inst.attribute(r'custom_call_target="([^"]+)"') or ""
        if inst.opcode == "custom-call" and _is_library_call(target):
            op = "custom-call"
            fused = ["add"] if "bias" in target.lower() else []
            mode = inst.attribute(r'"activation_mode"\s*:\s*"k?(\w+)"')
            if mode and mode.lower() not in ("none", "0"):
                fused.append(mode.lower())
            fused_t = tuple(fused)
        else:
            found = [o for o in ANCHOR_OPS if o in ops]
            if not found:
                continue
            op = found[0]
            fused_t = elementwise(inst.name)
        prologue = {
            p: elementwise(p)
            for o in inst.operands
            for p in producers_through_views(o)
            if elementwise(p)
        }
        epilogue = {c: elementwise(c) for c in consumers_through_views(inst.name) if elementwise(c)}
        anchors.append(
            Anchor(
                op=op,
                kernel=inst.name,
                library=library or "XLA",
                fused=fused_t,
                prologue=prologue,
                epilogue=epilogue,
            )
        )
    return FusionReport(
        kernels=len(kernels),
        fusions=sum(1 for i in kernels if i.opcode == "fusion"),
        anchors=tuple(anchors),
        libraries=tuple(libraries),
        custom_calls=tuple(custom_calls),
    )
