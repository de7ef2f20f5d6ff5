"""The suite registry: ``name -> run(ctx) -> list[record]``.

To add a suite, write ``bench/suites/<name>.py`` with a ``run(ctx: bench._harness.Context)``
that returns records built with ``ctx.record(...)``, and add one line to :data:`REGISTRY`.
Suites that need Flax import it inside ``run`` so the others start fast.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.suites import bottleneck, conv1x1, groups, inception, lowering, model

#: Suites in the order ``python -m bench`` runs them when several are named.
REGISTRY: dict[str, Callable] = {
    "bottleneck": bottleneck.run,
    "conv1x1": conv1x1.run,
    "groups": groups.run,
    "inception": inception.run,
    "lowering": lowering.run,
    "model": model.run,
}
#: What ``python -m bench`` runs with no suite named.
DEFAULT = ("bottleneck",)
