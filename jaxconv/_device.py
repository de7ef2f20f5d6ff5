"""What machine this is: CPU model and vector ISA, and the device kind tuning transfers between.

Plain Python (``/proc/cpuinfo``, ``os``, ``platform``); jax only to look up the default device.
The kernels layer keys its tuning tables by :func:`device_kind` and bench files its results
under it, so both read the CPU in this one place.
"""

from __future__ import annotations

import functools
import os
import platform
import re

__all__ = ["cpu_flags", "cpu_model", "device_kind"]


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's ``key: value`` lines of ``/proc/cpuinfo`` (empty off Linux)."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block ends here
                key, _, value = line.partition(":")
                info.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    return info


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``avx2``, ``avx512f``, ``amx_tile``, …); empty where unknown."""
    info = _cpuinfo()
    return frozenset((info.get("flags") or info.get("features") or "").split())


def cpu_model() -> str:
    """The CPU's model name (``"Intel(R) Xeon(R) Processor"``), else what ``platform`` knows."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def _cpu_class() -> str:
    flags = cpu_flags()
    for isa in ("amx_tile", "avx512f", "avx2", "neon", "asimd"):
        if isa in flags:
            return {"amx_tile": "amx", "avx512f": "avx512"}.get(isa, isa)
    return "generic"


def _core_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def device_kind(platform_name: str | None = None, device_name: str | None = None) -> str:
    """A file-name-safe name for the class of device tuning results transfer between.

    CPUs: architecture, widest vector ISA and core count (``"cpu-x86_64-avx2-2c"``), since that
    is what decides which library kernel wins. Accelerators: jax's ``device_kind``
    (``"gpu-nvidia-h200"``).

    Args:
      platform_name: ``"cpu"``, ``"gpu"``, ``"tpu"``; None for jax's default device.
      device_name: the accelerator's ``device_kind`` (looked up when None).

    Examples:
      >>> device_kind("cpu").startswith("cpu-")
      True
      >>> device_kind("gpu", "NVIDIA H200")
      'gpu-nvidia-h200'
    """
    if platform_name is None or (platform_name != "cpu" and device_name is None):
        import jax

        dev = jax.devices(platform_name)[0] if platform_name else jax.devices()[0]
        platform_name, device_name = dev.platform, dev.device_kind
    if platform_name == "cpu":
        return f"cpu-{platform.machine().lower()}-{_cpu_class()}-{_core_count()}c"
    return f"{platform_name}-" + re.sub(r"[^a-z0-9]+", "-", str(device_name).lower()).strip("-")
