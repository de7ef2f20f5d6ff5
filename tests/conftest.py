"""Strict test configuration shared by every test file.

- ``jax_numpy_rank_promotion="raise"``: implicit rank broadcasting is a bug here.
- Warnings are errors (pyproject's ``filterwarnings``; the allow-list is commented there).
- Randomness is seeded: use the ``rng`` fixture (NumPy) or ``jax.random.key(<int>)``.
- One tolerance table per dtype (:data:`TOLERANCE`), scaled by √K where K is the reduction size.
  The tests run at the DEFAULT precision, what users get: on a GPU that is TF32 for float32
  convs and dots, so :func:`tol` holds float32 results there to the ``tensorfloat32`` entry,
  unless the test asked for ``Precision.HIGHEST`` (``highest=True``). A test that needs full
  float32 for its own sake (finite differences, an exact identity) says so with
  :func:`highest`; nothing sets it globally.
- PyTorch is no dependency: comparisons with it skip without it (``pytest.importorskip``), except
  where ``JAXCONV_REQUIRE_TORCH=1`` (CI installs torch and sets it), where such a skip fails.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")

#: The platform the tests run on (``jax.default_backend()``).
PLATFORM = jax.default_backend()

#: Per-dtype tolerance for one unit-scale product; multiply by √K for a K-term reduction.
TOLERANCE = {
    "float64": 1e-12,
    "float32": 2e-6,
    # float32 at DEFAULT precision on a GPU: both inputs rounded to TF32's 10 mantissa bits
    # (unit roundoff 2^-11 ≈ 4.9e-4 each), accumulated in float32.
    "tensorfloat32": 2e-3,
    "bfloat16": 2e-2,
    "float16": 2e-3,
}


def tol(dtype, reduction_size: int = 1, *, highest: bool = False) -> float:
    """Absolute tolerance for a reduction of ``reduction_size`` unit-scale products computed
    in ``dtype`` at DEFAULT precision (``highest``: at ``Precision.HIGHEST``)."""
    name = np.dtype(dtype).name
    if name == "float32" and not highest and PLATFORM == "gpu":
        name = "tensorfloat32"
    return TOLERANCE[name] * math.sqrt(max(reduction_size, 1))


def highest():
    """``jax.default_matmul_precision("highest")``: full float32 convs and dots (not TF32 on a
    GPU) inside the block, for a test that means it; a no-op on a CPU."""
    return jax.default_matmul_precision("highest")


#: Marks a test that only means something on a GPU (skipped elsewhere).
gpu_only = pytest.mark.skipif(PLATFORM != "gpu", reason=f"needs a GPU; running on {PLATFORM}")


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


def run_on_two_cpu_devices(script: str) -> str:
    """Runs ``script`` in a fresh interpreter with two CPU devices; asserts it exits 0 and
    returns its stdout."""
    env = {
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu",
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout
