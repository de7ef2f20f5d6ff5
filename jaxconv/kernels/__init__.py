"""Deprecated alias of :mod:`jaxconv.convolution`, where the contract and lowerings moved after
0.1.0: every name and submodule of ``jaxconv.kernels`` is the same object under its new path
(CHANGELOG.md)."""

from jaxconv._aliases import alias_modules
from jaxconv.convolution import *  # noqa: F403
from jaxconv.convolution import __all__ as __all__

alias_modules(
    __name__,
    {
        name: f"jaxconv.convolution.{name}"
        for name in (
            "autotune",
            "lowering",
            "lowerings",
            "lowerings.einsum",
            "lowerings.onednn",
            "lowerings.xla",
            "plan",
            "registry",
            "run",
            "spec",
            "tables",
        )
    },
)
