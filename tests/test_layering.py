"""The import layering of docs/design.md, pinned: every arrow points down.

Each module of the package is given its layer; a module may import only from its own layer or
below (imports inside functions count too). Inside ``convolution`` the order of its parts is pinned
as well, so the dispatch contract reads one way: spec → (cost) → lowering → lowerings →
registry → tables → plan → run → autotune → the ops.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "jaxconv"

#: Lowest first. A module is placed by the longest prefix that names it.
LAYERS = [
    ("jaxconv._check", "jaxconv._version", "jaxconv._aliases"),
    ("jaxconv._geometry", "jaxconv._device", "jaxconv._timing", "jaxconv._host_memory"),
    ("jaxconv.convolution.spec",),
    ("jaxconv._cost",),
    ("jaxconv.convolution.lowering",),
    (
        "jaxconv.convolution.lowerings.onednn.library",
        "jaxconv.convolution.lowerings.onednn.geometry",
    ),
    ("jaxconv.convolution.lowerings.onednn.partition",),
    ("jaxconv.convolution.lowerings.onednn.primitives",),
    ("jaxconv.convolution.lowerings",),
    ("jaxconv.convolution.registry",),
    ("jaxconv.convolution.tables",),
    ("jaxconv.convolution.plan",),
    ("jaxconv.convolution.run",),
    ("jaxconv.convolution.autotune",),
    # the public conv ops, each through plan and run
    (
        "jaxconv.convolution.conv",
        "jaxconv.convolution.conv1x1",
        "jaxconv.convolution.bottleneck",
        "jaxconv.convolution.depthwise",
        "jaxconv.convolution.separable",
        "jaxconv.convolution.transpose",
        "jaxconv.convolution.explain",
    ),
    ("jaxconv.convolution",),
    ("jaxconv.pooling",),
    ("jaxconv.kernels", "jaxconv.ops"),  # the old import paths, aliases of the two above
    ("jaxconv",),  # the package's own __init__: the functional core only
    ("jaxconv.nn",),
    ("jaxconv.models",),
    ("jaxconv.train",),
]


def _name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _rank(module: str) -> int:
    best, rank = -1, None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank is not None, f"{module} has no layer: add it to LAYERS"
    return rank


def _is_module(name: str) -> bool:
    path = ROOT.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: pathlib.Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "jaxconv"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "jaxconv":
                # `from jaxconv.convolution import tables` imports jaxconv.convolution.tables
                found |= {
                    f"{node.module}.{a.name}"
                    if _is_module(f"{node.module}.{a.name}")
                    else node.module
                    for a in node.names
                }
    return found


MODULES = sorted(ROOT.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[_name(p) for p in MODULES])
def test_imports_point_down(path):
    source = _name(path)
    for target in _imports(path):
        if target.startswith(source + ".") and source != "jaxconv":
            continue  # a package's __init__ gathers its own modules
        assert _rank(target) <= _rank(source), (
            f"{source} (layer {_rank(source)}) imports {target} (layer {_rank(target)}): "
            f"arrows must point down (docs/design.md)"
        )


def test_every_module_has_a_layer():
    for path in MODULES:
        _rank(_name(path))


def test_no_relative_imports():
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{_name(path)}: relative import"
