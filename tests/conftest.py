"""Strict test configuration shared by every test file.

- ``jax_numpy_rank_promotion="raise"``: implicit rank broadcasting is a bug here.
- Warnings are errors (pyproject's ``filterwarnings``; the allow-list is commented there).
- Randomness is seeded: use the ``rng`` fixture (NumPy) or ``jax.random.key(<int>)``.
- One tolerance table per dtype (:data:`TOLERANCE`), scaled by √K where K is the reduction size.
- PyTorch is no dependency: comparisons with it skip without it (``pytest.importorskip``), except
  where ``JAXCONV_REQUIRE_TORCH=1`` (CI installs torch and sets it), where such a skip fails.
"""

from __future__ import annotations

import math
import os

import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

#: Per-dtype tolerance for one unit-scale product; multiply by √K for a K-term reduction.
TOLERANCE = {
    "float64": 1e-12,
    "float32": 2e-6,
    "bfloat16": 2e-2,
    "float16": 2e-3,
}


def tol(dtype, reduction_size: int = 1) -> float:
    """Absolute tolerance for a reduction of ``reduction_size`` unit-scale products."""
    return TOLERANCE[np.dtype(dtype).name] * math.sqrt(max(reduction_size, 1))


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A NumPy generator seeded from the test's name, so every test is reproducible."""
    seed = sum(map(ord, request.node.nodeid)) % (2**32)
    return np.random.default_rng(seed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With ``JAXCONV_REQUIRE_TORCH=1``, a test skipped for want of torch fails instead."""
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and os.environ.get("JAXCONV_REQUIRE_TORCH") == "1"
        and "torch" in str(report.longrepr)
    ):
        report.outcome = "failed"
        report.longrepr = f"skipped for want of torch, which CI must have: {report.longrepr}"
