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

__all__ = ["cpu_flags", "cpu_model", "device_family", "device_kind", "device_kinds"]


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


def device_family(kind: str, compute_capability: str | None = None) -> str | None:
    """The wider class of device ``kind`` belongs to, where tuning results still transfer; None
    where there is none.

    CPUs: the kind without its core count (``"cpu-x86_64-amx-2c"`` → ``"cpu-x86_64-amx"``): the
    same ISA picks the same library kernels. GPUs: the CUDA compute capability
    (``"9.0"`` → ``"gpu-sm90"``): an H100 and an H200 are the same sm90 chip.

    Examples:
      >>> device_family("cpu-x86_64-amx-2c")
      'cpu-x86_64-amx'
      >>> device_family("gpu-nvidia-h200", "9.0")
      'gpu-sm90'
      >>> device_family("gpu-nvidia-h200") is None
      True
    """
    if kind.startswith("cpu-"):
        family = re.sub(r"-\d+c$", "", kind)
        return family if family != kind else None
    if kind.startswith("gpu-") and compute_capability:
        return "gpu-sm" + re.sub(r"[^0-9a-z]+", "", str(compute_capability).lower())
    return None


def device_kinds(platform_name: str | None = None) -> tuple[str, ...]:
    """Where a tuning table is looked for, most specific first: :func:`device_kind`, then its
    :func:`device_family` when it has one.

    Examples:
      >>> kinds = device_kinds("cpu")
      >>> kinds[0] == device_kind("cpu") and kinds[-1] == device_family(kinds[0])
      True
    """
    if platform_name == "cpu":
        kind, capability = device_kind("cpu"), None
    else:
        import jax

        dev = jax.devices(platform_name)[0] if platform_name else jax.devices()[0]
        kind = device_kind(dev.platform, dev.device_kind)
        capability = getattr(dev, "compute_capability", None)
    family = device_family(kind, capability)
    return (kind,) if family is None else (kind, family)
