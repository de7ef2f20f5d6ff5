"""retain_host_memory: large XLA:CPU buffers come back on pages already mapped.

Counted in page faults (getrusage's minor faults), not timed: a 40 MiB output is 10,240 fresh
pages per call under glibc's defaults and next to none once the memory is retained. Each case
runs in its own process, since the setting is process-wide and must precede jax's threads.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

import jaxconv

_PROGRAM = """
import resource, sys
import jaxconv
retained = jaxconv.retain_host_memory() if sys.argv[1] == "retain" else None
import jax, jax.numpy as jnp
x = jnp.ones((10 * 2**20,), jnp.float32)  # 40 MiB: above glibc's largest automatic threshold
f = jax.jit(lambda x: x * 2)
for _ in range(20):  # the heap settles within ~10 calls, then serves each output warm
    f(x).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    f(x).block_until_ready()
print(retained, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


def _faults_per_call(mode: str) -> tuple[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM, mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    return out[0], float(out[1])


_GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not _GLIBC, reason="glibc's malloc only")
def test_retained_memory_stops_page_faults_on_large_buffers():
    _, default = _faults_per_call("default")
    retained, kept = _faults_per_call("retain")
    assert retained == "True"
    pages = 10 * 2**20 * 4 // 4096
    assert default > pages / 2, default  # glibc maps each 40 MiB output afresh: the test can fail
    assert kept < pages / 20, kept


@pytest.mark.skipif(_GLIBC, reason="on glibc it applies")
def test_elsewhere_it_changes_nothing():
    assert jaxconv.retain_host_memory() is False
