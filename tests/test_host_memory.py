"""retain_host_memory and host_memory_options: large XLA:CPU buffers come back on pages
already mapped.

Counted in page faults (getrusage's minor faults), not timed: a 40 MiB output is 10,240 fresh
pages per call under glibc's defaults and none once the memory is retained and the heap has
settled. Each case
runs in its own process, since the setting is process-wide and must precede jax's threads.
"""

from __future__ import annotations

import math
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
for _ in range(30):  # the heap grows while it settles (~10-20 calls), then serves outputs warm
    f(x).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(30):
    f(x).block_until_ready()
print(retained, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _run(program: str, mode: str) -> list[str]:
    """The words ``program`` prints, run in a process of its own with argument ``mode``."""
    return subprocess.run(
        [sys.executable, "-c", program, mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()


def _faults(mode: str) -> tuple[str, int]:
    """(what retain_host_memory returned, page faults over 30 calls after 30 to warm up)."""
    out = _run(_PROGRAM, mode)
    return out[0], int(out[1])


_GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not _GLIBC, reason="glibc's malloc only")
def test_retained_memory_stops_page_faults_on_large_buffers():
    _, default = _faults("default")
    retained, kept = _faults("retain")
    assert retained == "True"
    pages = 10 * 2**20 * 4 // 4096  # per output
    assert default > 30 * pages / 2, default  # glibc maps each output afresh: the test can fail
    # Retained, only the heap's growth faults: a few late steps while it settles (up to 3 of
    # the 30 calls seen under load), not every output.
    assert kept < default / 4, (kept, default)


@pytest.mark.skipif(_GLIBC, reason="on glibc it applies")
def test_elsewhere_it_changes_nothing():
    assert jaxconv.retain_host_memory() is False


# Eight 8 MiB temporaries alive at once (one 64 MiB block under XLA's defaults); each dot is
# cheap (8192×16 @ 16×256).
_TEMPORARIES = """
import resource, sys
import jax, jax.numpy as jnp, jaxconv
def f(x, w):
    hs = [x @ (w * (i + 1.0)) for i in range(8)]
    return sum(jnp.sin(h) for h in hs)[:1]
x, w = jnp.ones((8192, 16), jnp.float32), jnp.ones((16, 256), jnp.float32)
options = jaxconv.host_memory_options() if sys.argv[1] == "options" else {}
call = jax.jit(f).lower(x, w).compile(options)
faults = []
for _ in range(12):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    call(x, w).block_until_ready()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(float(call(x, w)[0, 0]), min(faults[2:]))
"""


@pytest.mark.skipif(not _GLIBC, reason="glibc's malloc only")
def test_host_memory_options_reuse_an_executables_temporaries():
    """Per executable, no malloc setting: the 64 MiB of temporaries, 16,384 fresh pages per
    call under XLA's defaults, come in blocks glibc keeps; seen here at 0-6,000 faults per
    call once it settles (it varies from call to call), so the fewest of ten calls is far
    under the default's."""

    def run(mode: str) -> tuple[float, int]:
        out = _run(_TEMPORARIES, mode)
        return float(out[0]), int(out[1])

    value, default = run("default")
    same, reused = run("options")
    assert same == value  # the same program, only its blocks differ
    assert value == pytest.approx(sum(math.sin(16.0 * (i + 1)) for i in range(8)), abs=1e-5)
    pages = 64 * 2**20 // 4096
    assert default > pages * 3 // 4, default  # every call maps its temporaries: it can fail
    assert reused < default / 2, (reused, default)


def test_host_memory_options_are_for_a_cpu_only():
    assert jaxconv.host_memory_options("gpu") == {}
    assert set(jaxconv.host_memory_options()) == {"xla_multiheap_size_constraint_per_heap"}
