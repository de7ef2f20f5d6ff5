"""Persisted lowering choices: one JSON table per device kind.

A table maps a conv's :func:`spec_key` to its :class:`Plan` (the lowering for the forward, the
input gradient and the weight gradient). :func:`lookup` reads, in order of precedence:

1. the user's cache, ``$JAXCONV_CACHE_DIR/<kind>.json`` (default ``$XDG_CACHE_HOME/jaxconv``,
   else ``~/.cache/jaxconv``), written by :func:`jaxconv.autotune`;
2. the defaults shipped with jaxconv, ``jaxconv/kernels/defaults/<kind>.json``.

An exact key wins; else the entry for the same conv at the nearest batch size. Tables are read
once per process and kept in memory; :func:`save` updates both the file and the memory copy.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
from pathlib import Path
from typing import Any, NamedTuple

from jaxconv.kernels._spec import ConvSpec

__all__ = ["Plan", "cache_dir", "device_kind", "lookup", "save", "spec_key"]

DEFAULTS_DIR = Path(__file__).parent / "defaults"
CACHE_ENV = "JAXCONV_CACHE_DIR"
ROLES = ("fwd", "dx", "dw")


class Plan(NamedTuple):
    """The lowering names for a conv's forward, input gradient and weight gradient."""

    fwd: str
    dx: str
    dw: str


def _cpu_class() -> str:
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    for isa in ("amx_tile", "avx512f", "avx2", "neon", "asimd"):
        if isa in flags:
            return {"amx_tile": "amx", "avx512f": "avx512"}.get(isa, isa)
    return "generic"


def _core_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def device_kind(platform_name: str | None = None, device_name: str | None = None) -> str:
    """A file-name-safe name for the class of device tuning results transfer between.

    CPUs: architecture, widest vector ISA and core count (``"cpu-x86_64-avx2-2c"``), since that
    is what decides which library kernel wins. Accelerators: jax's ``device_kind``
    (``"gpu-nvidia-h200"``).

    Examples:
      >>> device_kind("cpu").startswith("cpu-")
      True
      >>> device_kind("gpu", "NVIDIA H200")
      'gpu-nvidia-h200'
    """
    if platform_name is None or (platform_name != "cpu" and device_name is None):
        import jax

        dev = jax.devices(platform_name)[0] if platform_name else jax.devices()[0]
        platform_name, device_name = dev.platform, dev.device_kind
    if platform_name == "cpu":
        return f"cpu-{platform.machine().lower()}-{_cpu_class()}-{_core_count()}c"
    return f"{platform_name}-" + re.sub(r"[^a-z0-9]+", "-", str(device_name).lower()).strip("-")


def cache_dir() -> Path:
    """Where :func:`jaxconv.autotune` writes: ``$JAXCONV_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/jaxconv``, else ``~/.cache/jaxconv``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxconv"


def _pairs(t: tuple) -> str:
    return "x".join(str(v) for v in t)


def spec_key(spec: ConvSpec, batch: bool = True) -> str:
    """A readable, stable key for the tables, e.g.
    ``"2d NHWC n32 28x28x96 k3x3 o128 s1x1 d1x1 i1x1 p1_1x1_1 g1 float32"``."""
    layout = spec.lhs_spec
    pads = "x".join(f"{lo}_{hi}" for lo, hi in spec.padding)
    parts = [
        f"{spec.ndim}d", layout, f"n{spec.batch}" if batch else "n*",
        f"{_pairs(spec.in_spatial)}x{spec.in_channels}", f"k{_pairs(spec.kernel)}",
        f"o{spec.out_channels}", f"s{_pairs(spec.stride)}", f"d{_pairs(spec.dilation)}",
        f"i{_pairs(spec.input_dilation)}", f"p{pads}", f"g{spec.groups}", spec.dtype,
    ]
    if spec.precision is not None:
        parts.append(f"precision={spec.precision}")
    if spec.preferred_element_type is not None:
        parts.append(f"out={spec.preferred_element_type}")
    return " ".join(parts)


_MEMORY: dict[tuple[str, str], dict[str, Any]] = {}


def _path(kind: str, where: str) -> Path:
    return (DEFAULTS_DIR if where == "defaults" else cache_dir()) / f"{kind}.json"


def _read(kind: str, where: str) -> dict[str, Any]:
    path = _path(kind, where)
    key = (where, str(path))
    if key not in _MEMORY:
        try:
            entries = json.loads(path.read_text())["entries"]
        except (OSError, ValueError, KeyError, TypeError):
            entries = {}
        _MEMORY[key] = entries if isinstance(entries, dict) else {}
    return _MEMORY[key]


def _as_plan(entry: Any) -> Plan | None:
    try:
        return Plan(*(str(entry[r]) for r in ROLES))
    except (KeyError, TypeError):
        return None


def _nearest(entries: dict[str, Any], spec: ConvSpec) -> Any:
    exact = entries.get(spec_key(spec))
    if exact is not None:
        return exact
    stem = spec_key(spec, batch=False)
    best, best_dist = None, math.inf
    for key, entry in entries.items():
        n = re.search(r" n(\d+) ", key)
        if n and key.replace(n.group(0), " n* ", 1) == stem:
            dist = abs(math.log(int(n.group(1)) / spec.batch))
            if dist < best_dist:
                best, best_dist = entry, dist
    return best


def lookup(spec: ConvSpec, kind: str) -> Plan | None:
    """The persisted plan for ``spec`` on ``kind`` (user cache first, then shipped defaults)."""
    for where in ("cache", "defaults"):
        plan = _as_plan(_nearest(_read(kind, where), spec))
        if plan is not None:
            return plan
    return None


def save(kind: str, entries: dict[str, dict[str, Any]], path: Path | None = None,
         meta: dict[str, Any] | None = None) -> Path:
    """Merges ``entries`` (``spec_key -> {"fwd", "dx", "dw", ...}``) into the table at ``path``
    (default: the user cache for ``kind``) and into this process's copy; returns the path."""
    path = Path(path) if path is not None else _path(kind, "cache")
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        table = {}
    if not isinstance(table.get("entries"), dict):
        table["entries"] = {}
    table.update(meta or {})
    table["device_kind"] = kind
    table["entries"].update(entries)
    table["entries"] = dict(sorted(table["entries"].items()))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(table, indent=1) + "\n")
    tmp.replace(path)
    for where in ("cache", "defaults"):
        if _path(kind, where) == path:
            _MEMORY[(where, str(path))] = table["entries"]
    return path


def clear_memory() -> None:
    """Forgets the tables read so far (they are re-read on the next lookup)."""
    _MEMORY.clear()
