"""The suite registry: ``name -> run(ctx) -> list[record]``.

To add a suite, write ``bench/suites/<name>.py`` with a ``run(ctx: bench._harness.Context)``
that returns records built with ``ctx.record(...)``, and add one line to :data:`REGISTRY`.
Suites that need Flax import it inside ``run`` so the others start fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from bench.suites import bottleneck, conv1x1, groups, inception, lowering, model, untuned

#: Suites in the order ``python -m bench`` runs them when several are named.
REGISTRY: dict[str, Callable] = {
    "bottleneck": bottleneck.run,
    "conv1x1": conv1x1.run,
    "groups": groups.run,
    "inception": inception.run,
    "lowering": lowering.run,
    "model": model.run,
    "untuned": untuned.run,
}
#: What ``python -m bench`` runs with no suite named.
DEFAULT = ("bottleneck",)


def describe(name: str) -> str:
    """One line about suite ``name``: the first paragraph of its module's docstring after its
    ``Suite ``name``:`` lead (``--help`` lists these, so the list cannot leave a suite out)."""
    doc = sys.modules[REGISTRY[name].__module__].__doc__ or ""
    first = " ".join(doc.split("\n\n")[0].split()).replace("``", "")
    return first.split(": ", 1)[-1].rstrip(".")
