"""Old import paths kept working: ``jaxconv.kernels.*`` and ``jaxconv.ops.*``, moved after 0.1.0
to :mod:`jaxconv.convolution` and :mod:`jaxconv.pooling` (CHANGELOG.md lists them)."""

from __future__ import annotations

import importlib
import sys
import types


def alias_modules(package: str, modules: dict[str, str]) -> None:
    """Makes each ``f"{package}.{old}"`` the module ``new`` itself (imported now), so that
    ``import``, ``from … import`` and attribute access under the old path all reach the one
    module object (a monkeypatch there patches the real module)."""
    for old, new in modules.items():
        module = importlib.import_module(new)
        sys.modules[f"{package}.{old}"] = module
        parent, _, leaf = f"{package}.{old}".rpartition(".")
        if not hasattr(sys.modules[parent], leaf):  # a function of that name keeps it
            setattr(sys.modules[parent], leaf, module)


def namespace(name: str, doc: str, **attrs: object) -> types.ModuleType:
    """A module ``name`` holding ``attrs`` (an old module split across several files)."""
    module = types.ModuleType(name, doc)
    module.__dict__.update(attrs)
    module.__all__ = sorted(attrs)  # type: ignore[attr-defined]
    sys.modules[name] = module
    return module
