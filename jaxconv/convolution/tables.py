"""Tuning tables: the plans :func:`jaxconv.autotune` measured, one JSON file per device kind.

A table lives at ``$JAXCONV_CACHE_DIR/<device-kind>.json`` (default
``$XDG_CACHE_HOME/jaxconv``, else ``~/.cache/jaxconv``). It enters dispatch in one place:
:func:`jaxconv.convolution.choose` calls :func:`load` for the default platform's device kind, then
for its family (:func:`jaxconv.convolution.device_kinds`: ``gpu-nvidia-h200`` then ``gpu-sm90``;
``cpu-x86_64-amx-2c`` then ``cpu-x86_64-amx``), conv by conv, when it is not handed a table.
:func:`jaxconv.autotune` writes the exact kind's table; copy or rename it to the family's name
to share it with every machine of that family. :func:`load` re-reads the file whenever its
modification time or size changed, so a table change takes effect at the next *trace* of a
conv. jit's trace cache is keyed by the function and the argument shapes (not by the
``jax.jit`` object), so a function already traced for some shapes keeps the plan it was
traced with for them until ``jax.clear_caches()``; new shapes and functions not traced yet
get the new table.

On disk (format 2)::

    {"version": 2, "device_kind": "cpu-x86_64-amx-2c", "jax": ..., "entries": {
        "<spec key without batch>": {"<batch>": {"fwd": ..., "dx": ..., "dw": ..., "ms": {...}}}}}

A conv finds its own batch, else the nearest batch tuned for the same conv (by ratio).
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from jaxconv.convolution.lowering import ROLES, Plan
from jaxconv.convolution.spec import ConvSpec

__all__ = ["Table", "cache_dir", "load", "save", "spec_key", "table_path"]

CACHE_ENV = "JAXCONV_CACHE_DIR"
FORMAT = 2


def cache_dir() -> Path:
    """Where tables live: ``$JAXCONV_CACHE_DIR``, else ``$XDG_CACHE_HOME/jaxconv``, else
    ``~/.cache/jaxconv``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxconv"


def table_path(kind: str) -> Path:
    """The table file for device kind ``kind``."""
    return cache_dir() / f"{kind}.json"


def _dims(t: tuple) -> str:
    return "x".join(str(v) for v in t)


def spec_key(spec: ConvSpec) -> str:
    """A readable, stable key for a conv without its batch size, e.g.
    ``"2d NHWC 28x28x96 k3x3 o128 s1x1 d1x1 i1x1 p1_1x1_1 g1 float32"``. A padding mode is
    not part of it: the lowering sees the pre-padded input (:meth:`ConvSpec.lowered`)."""
    spec = spec.lowered()
    pads = "x".join(f"{lo}_{hi}" for lo, hi in spec.padding)
    parts = [
        f"{spec.ndim}d",
        spec.lhs_spec,
        f"{_dims(spec.in_spatial)}x{spec.in_channels}",
        f"k{_dims(spec.kernel)}",
        f"o{spec.out_channels}",
        f"s{_dims(spec.stride)}",
        f"d{_dims(spec.dilation)}",
        f"i{_dims(spec.input_dilation)}",
        f"p{pads}",
        f"g{spec.groups}",
        spec.dtype,
    ]
    if spec.precision is not None:
        parts.append(f"precision={spec.precision}")
    if spec.preferred_element_type is not None:
        parts.append(f"out={spec.preferred_element_type}")
    return " ".join(parts)


@dataclass(frozen=True)
class Table:
    """An immutable tuning table: ``{spec_key: {batch: Plan}}`` and where it came from.

    Attributes:
      path: the file it was read from (None for a table built in memory).
      entries: spec key → batch → plan.
      problem: why the file could not be used (None when it could, or did not exist).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jaxconv.convolution import conv_spec
      >>> spec = conv_spec(jax.ShapeDtypeStruct((8, 8, 8, 4), jnp.float32),
      ...                  jax.ShapeDtypeStruct((3, 3, 4, 4), jnp.float32))
      >>> table = Table(None, {spec_key(spec): {32: Plan("xla", "xla", "xla")}})
      >>> table.lookup(spec)   # batch 8: the nearest tuned batch, 32
      Plan(fwd='xla', dx='xla', dw='xla')
    """

    path: Path | None
    entries: Mapping[str, Mapping[int, Plan]] = field(default_factory=dict)
    problem: str | None = None

    def __post_init__(self) -> None:
        frozen = {k: MappingProxyType(dict(v)) for k, v in self.entries.items()}
        object.__setattr__(self, "entries", MappingProxyType(frozen))

    def lookup(self, spec: ConvSpec) -> Plan | None:
        """The plan tuned for ``spec``'s conv at its batch size, else at the nearest one."""
        by_batch = self.entries.get(spec_key(spec))
        if not by_batch:
            return None
        batch = max(spec.batch, 1)
        best = min(by_batch, key=lambda n: (abs(math.log(max(n, 1) / batch)), n))
        return by_batch[best]

    def __len__(self) -> int:
        return sum(len(v) for v in self.entries.values())


def _plan(entry: Any) -> Plan | None:
    try:
        return Plan(*(str(entry[r]) for r in ROLES))
    except (KeyError, TypeError):
        return None


def _parse(path: Path, raw: Any) -> Table:
    if not isinstance(raw, dict) or raw.get("version") != FORMAT:
        return Table(path, {}, f"not a format-{FORMAT} jaxconv table (re-run jaxconv.autotune)")
    entries: dict[str, dict[int, Plan]] = {}
    for key, by_batch in (raw.get("entries") or {}).items():
        for batch, entry in (by_batch or {}).items() if isinstance(by_batch, dict) else ():
            plan = _plan(entry)
            if plan is not None and str(batch).isdigit():
                entries.setdefault(str(key), {})[int(batch)] = plan
    return Table(path, entries)


@functools.lru_cache(maxsize=16)
def _read(path: str, mtime_ns: int, size: int) -> Table:
    del mtime_ns, size  # part of the cache key: a changed file is read again
    try:
        return _parse(Path(path), json.loads(Path(path).read_text()))
    except (OSError, ValueError) as err:
        return Table(Path(path), {}, f"unreadable: {err}")


def load(kind: str, path: Path | None = None) -> Table:
    """The table for device kind ``kind`` (from ``path``, default :func:`table_path`), read
    again whenever the file changed; an empty table where there is none."""
    path = Path(path) if path is not None else table_path(kind)
    try:
        stat = path.stat()
    except OSError:
        return Table(path)
    return _read(str(path), stat.st_mtime_ns, stat.st_size)


def save(
    kind: str,
    entries: Mapping[ConvSpec, Mapping[str, Any]],
    path: Path | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Merges ``entries`` (spec → ``{"fwd", "dx", "dw", ...}``) into the table file for
    ``kind`` (or ``path``), atomically; returns the path. Nothing is kept in memory: the next
    :func:`load` sees the new file."""
    path = Path(path) if path is not None else table_path(kind)
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        table = {}
    if not isinstance(table, dict) or table.get("version") != FORMAT:
        table = {}
    table.update(meta or {})
    table.update(version=FORMAT, device_kind=kind)
    old = table.get("entries")
    merged: dict[str, dict[str, Any]] = old if isinstance(old, dict) else {}
    for spec, entry in entries.items():
        merged.setdefault(spec_key(spec), {})[str(spec.batch)] = dict(entry)
    table["entries"] = {
        k: dict(sorted(v.items(), key=lambda kv: int(kv[0]))) for k, v in sorted(merged.items())
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(table, indent=1) + "\n")
    tmp.replace(path)
    return path
