"""Host memory: keep what XLA:CPU frees for its next buffers instead of handing it back to the OS.

glibc's malloc serves a block above its mmap threshold (128 KiB, raised on the fly to at most
32 MiB) with fresh ``mmap``-ed pages and ``munmap``-s it when freed, and a thread other than the
main one allocates from its own arena, whose heaps hold at most 64 MiB. XLA:CPU allocates a
program's temporaries as one block from its worker threads (1.06 GB for ResNet-50's SGD step at
batch 8) and its outputs likewise, so every run of a large program faults its working set in
again and the kernel zeroes each page first: 258,000 page faults and 0.5-0.7 s of system time per
ResNet-50 step on a 2-core Xeon, and a 32×112×112×32 float32 depthwise conv took 26 ms where it
takes 7 ms on warm pages (PyTorch's own tensors of that size pay the same).

Two remedies: :func:`host_memory_options`, compiler options for one executable that split its
temporaries into blocks glibc keeps and reuses (nothing process-wide changes), and
:func:`retain_host_memory`, which changes malloc's settings for the whole process. Plain
ctypes; nothing is imported from jax.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["host_memory_options", "retain_host_memory"]

#: A little under glibc's largest mmap threshold on a 64-bit system (32 MiB,
#: DEFAULT_MMAP_THRESHOLD_MAX): a block up to that size, malloc's header included, that was
#: mapped and freed raises the threshold to its size, so the next blocks that size come from
#: malloc's arenas, on pages already mapped. A full 32 MiB block is over it and never is.
HEAP_BYTES = 31 * 2**20


def host_memory_options(platform: str = "cpu") -> dict[str, int]:
    """XLA compiler options that let a CPU executable reuse its host memory from run to run.

    XLA's buffer assignment packs an executable's temporaries into one block (0.8 GB for
    ResNet-50's SGD step at batch 8), which glibc maps afresh on every run. These options cap
    each block at 31 MiB (``xla_multiheap_size_constraint_per_heap``), under glibc's largest
    mmap threshold: once such a block has been freed, glibc serves blocks of that size from
    its arenas, so later runs find most of their pages mapped (it settles over the first ten
    or so runs). Only this executable changes — no malloc setting, nothing process-wide
    (:func:`retain_host_memory` is the process-wide remedy). On a 2-core EPYC, SGD steps at
    batch 8 (steps 7-16): ResNet-50 205,000 → 16,000-24,000 page faults and 2.0 → 1.6-1.7 s,
    MobileNetV2 151,000 → 8,000-16,000 faults and 550-595 → 321-377 ms.

    A single buffer larger than 31 MiB (an activation of MobileNetV2 at batch 8 is 38.5 MB)
    still gets a mapping of its own, as before, and XLA logs a warning ("larger than the
    per-heap size limit") for it when it compiles.

    Args:
      platform: the backend the executable is compiled for; only ``"cpu"`` gets options.

    Returns:
      A dict for ``jax.jit(..., compiler_options=...)`` or ``Lowered.compile(...)``; empty
      for any other platform.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxconv
      >>> jaxconv.host_memory_options()
      {'xla_multiheap_size_constraint_per_heap': 32505856}
      >>> step = jax.jit(lambda x: jnp.tanh(x) * 2, compiler_options=jaxconv.host_memory_options())
      >>> step(jnp.ones(3)).shape
      (3,)
    """
    if platform != "cpu":
        return {}
    return {"xla_multiheap_size_constraint_per_heap": HEAP_BYTES}


# mallopt's parameters (glibc's malloc.h) and the largest value its int argument takes.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_INT_MAX = 2**31 - 1


def retain_host_memory() -> bool:
    """Keep freed host memory in this process for reuse, so large CPU buffers stop page-faulting.

    Sets glibc's malloc to one arena (``M_ARENA_MAX=1``: XLA's worker threads allocate from the
    main heap, which can grow past 64 MiB), to serve blocks up to 2 GiB from that heap
    (``M_MMAP_THRESHOLD``) and to return its top to the OS only beyond 2 GiB
    (``M_TRIM_THRESHOLD``). Once the heap has grown to what a program keeps alive (10-30 runs
    of it here) its buffers come back as pages already mapped: on a 2-core Xeon a ResNet-50
    SGD step at batch 8 went from 258,000 page faults and 0.5-0.7 s of system time to none and
    0.01 s, and its images/s rose 1.26x (MobileNetV2's 1.50x). The price: the process keeps its
    peak heap instead of giving it back to the OS.

    This is process-wide and cannot be undone, so jaxconv never calls it on its own (only
    ``python -m jaxconv.train``, which owns its process, does). Call it first thing, before the
    first jax computation: threads that already allocated keep their own arenas. The same
    settings, for a program you cannot change, come from the environment:
    ``MALLOC_ARENA_MAX=1 MALLOC_MMAP_THRESHOLD_=2147483647 MALLOC_TRIM_THRESHOLD_=2147483647``.

    Returns:
      True if glibc accepted all three settings; False elsewhere (not Linux, or another C
      library such as musl), where nothing changes.

    Examples:
      >>> import jaxconv
      >>> jaxconv.retain_host_memory() in (True, False)
      True
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None)  # the C library this process already runs on
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return False  # not glibc: its malloc has no such knobs
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_THRESHOLD, _INT_MAX), (_M_TRIM_THRESHOLD, _INT_MAX))
    # a list, not a generator: every setting is applied even when an earlier one is refused
    return all([mallopt(param, value) == 1 for param, value in settings])
