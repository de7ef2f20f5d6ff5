"""The public surface of ``jaxconv.train``: listed once, documented, and kept out of ``jaxconv``."""

from __future__ import annotations

import inspect
import subprocess
import sys

import jaxconv.train as train_pkg


def test_all_is_sorted_and_complete():
    names = train_pkg.__all__
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions
    assert list(names) == sorted(names, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(train_pkg, name), name
    public = {
        n for n, v in vars(train_pkg).items() if not n.startswith("_") and not inspect.ismodule(v)
    }
    assert public == set(names)


def test_every_public_callable_has_args_and_a_runnable_example():
    for name in train_pkg.__all__:
        obj = getattr(train_pkg, name)
        if not callable(obj):
            continue
        doc = inspect.getdoc(obj) or ""
        assert doc.split("\n")[0].strip(), f"{name}: no summary line"
        assert "Examples:" in doc and ">>> " in doc, f"{name}: no doctest example"


def test_import_jaxconv_does_not_load_train_or_its_dependencies():
    code = (
        "import sys, jaxconv; bad = [m for m in ('jaxconv.train', 'optax', 'orbax', 'rich') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
