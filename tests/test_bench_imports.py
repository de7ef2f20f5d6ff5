"""bench/ is a user of jaxconv: it imports only the public surface (STYLE.md habit 1).

Every ``bench/**/*.py`` is parsed, and any import of a private jaxconv module (a dotted path
with a component starting with ``_``: ``jaxconv._cost``, ``jaxconv.nn._conv``), of a private
name (``from jaxconv.convolution import _x``) or attribute access to one
(``jaxconv._timing.round_robin``) fails. Dunders (``jaxconv.__version__``) are public.
Tests of internals may import private modules; bench may not.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench"
FILES = sorted(p for p in BENCH.rglob("*.py") if "results" not in p.relative_to(BENCH).parts)


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _jaxconv_path(name: str) -> bool:
    return name == "jaxconv" or name.startswith("jaxconv.")


def _attribute_path(node: ast.Attribute) -> list[str] | None:
    """``["jaxconv", "a", "b"]`` for the expression ``jaxconv.a.b``, else None."""
    parts = []
    current: ast.expr = node
    while isinstance(current, ast.Attribute):
        parts.append(current.attr)
        current = current.value
    if isinstance(current, ast.Name) and current.id == "jaxconv":
        return ["jaxconv", *reversed(parts)]
    return None


def private_uses(source: str) -> list[str]:
    """``line: what`` for each private jaxconv module or name ``source`` reaches.

    >>> private_uses("from jaxconv._cost import x\\nimport jaxconv\\njaxconv.conv")
    ['1: from jaxconv._cost import x']
    """
    tree = ast.parse(source)
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _jaxconv_path(alias.name) and any(map(_private, alias.name.split("."))):
                    found.append((node.lineno, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [a.name for a in node.names]
            parts = [*node.module.split("."), *names]
            if _jaxconv_path(node.module) and any(map(_private, parts)):
                found.append((node.lineno, f"from {node.module} import {', '.join(names)}"))
        elif isinstance(node, ast.Attribute) and id(node) not in inner:  # a whole a.b.c chain
            path = _attribute_path(node)
            if path is not None and any(map(_private, path)):
                found.append((node.lineno, ".".join(path)))
    return [f"{line}: {what}" for line, what in sorted(found)]


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import jaxconv._cost", ["1: import jaxconv._cost"]),
        ("import jaxconv.nn._conv as c", ["1: import jaxconv.nn._conv"]),
        ("from jaxconv import _timing", ["1: from jaxconv import _timing"]),
        ("from jaxconv.train._run import x", ["1: from jaxconv.train._run import x"]),
        ("from jaxconv.convolution import _y, c", ["1: from jaxconv.convolution import _y, c"]),
        ("import jaxconv\njaxconv._device.cpu_model()", ["2: jaxconv._device.cpu_model"]),
        ("import jaxconv\njaxconv.__version__, jaxconv.convolution.round_robin", []),
        ("from bench._harness import Context\nfrom jaxconv.models import NiN", []),
    ],
)
def test_the_check_finds_private_imports(source, expected):
    assert private_uses(source) == expected


def test_bench_imports_no_private_jaxconv_module_or_name():
    assert len(FILES) > 10 and BENCH / "_harness.py" in FILES
    private = {
        str(path.relative_to(BENCH.parent)): uses
        for path in FILES
        if (uses := private_uses(path.read_text()))
    }
    assert not private, f"bench/ reaches into jaxconv's private modules: {private}"
