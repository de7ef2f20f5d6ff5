"""Loading the oneDNN extension (only from this installation), its ISA answers and cache controls.

The shared library ``libjaxconv_onednn.so`` (``csrc/``, built at install) is loaded on first
use, never on ``import jaxconv``. Where it cannot be (not built, another OS or CPU,
``JAXCONV_DISABLE_ONEDNN=1``, a stale build) :func:`unavailable` says why, one
:class:`OnednnUnavailableWarning` is issued, and every conv runs on the XLA lowerings.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import os
import platform
import re
import site
import sys
import sysconfig
import warnings
from pathlib import Path
from typing import NamedTuple

import jax

from jaxconv._check import check_int
from jaxconv._version import __version__

NAME = "onednn"
LIBRARY = "libjaxconv_onednn.so"
DISABLE_ENV = "JAXCONV_DISABLE_ONEDNN"
_TARGETS = {
    "jaxconv_onednn_fwd": "JaxconvOnednnForward",
    "jaxconv_onednn_bwd_data": "JaxconvOnednnBackwardData",
    "jaxconv_onednn_bwd_weights": "JaxconvOnednnBackwardWeights",
    "jaxconv_onednn_inference": "JaxconvOnednnInference",
    "jaxconv_onednn_bottleneck": "JaxconvOnednnBottleneck",
    "jaxconv_onednn_batch_norm": "JaxconvOnednnBatchNorm",
    "jaxconv_onednn_batch_norm_bwd": "JaxconvOnednnBatchNormBackward",
}
#: The extension's plain C functions and their result types (all must be present).
_SYMBOLS = {
    "jaxconv_onednn_version": ctypes.c_char_p,
    "jaxconv_onednn_ffi_api": ctypes.c_int64,
    "jaxconv_onednn_native_bf16": ctypes.c_int,
    "jaxconv_onednn_amx": ctypes.c_int,
    "jaxconv_onednn_cache_size": ctypes.c_int64,
    "jaxconv_onednn_cache_capacity": ctypes.c_int64,
    "jaxconv_onednn_set_cache_capacity": None,
    "jaxconv_onednn_scratchpad_bytes": ctypes.c_int64,
    "jaxconv_onednn_packed_layout": ctypes.c_int,
    "jaxconv_onednn_pack": ctypes.c_int,
    "jaxconv_onednn_profile": ctypes.c_int64,
    "jaxconv_onednn_build_threads": ctypes.c_int64,
    "jaxconv_onednn_norm_workspace": ctypes.c_int64,
    **dict.fromkeys(_TARGETS.values(), ctypes.c_void_p),
}


# --- loading -------------------------------------------------------------------------------
#
# Only files of this installation are ever loaded: the extension from jaxconv's own tree, and
# libdnnl.so.3 from the onednn-cpu-gomp distribution installed in the same site-packages as
# jaxconv. Distributions are looked up in the interpreter's own site-packages (sysconfig), never
# through sys.path, which holds the current directory: a planted ``*.dist-info`` there must not
# decide what is loaded into the process.


class OnednnUnavailableWarning(RuntimeWarning):
    """The oneDNN extension is installed but cannot be used (it fails to load, lacks a symbol,
    or was built for another jaxconv or XLA FFI version); jaxconv runs on XLA instead."""


def _site_dirs() -> list[Path]:
    """The interpreter's own site-packages (a venv's, the system's, the user's), resolved."""
    names = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    if site.ENABLE_USER_SITE:
        names.add(site.getusersitepackages())
    dirs = [Path(n).resolve() for n in sorted(n for n in names if n)]
    return [d for d in dirs if d.is_dir()]


def _distribution(name: str, where: list[Path]) -> tuple[Path, importlib.metadata.Distribution]:
    """The directory holding distribution ``name``'s metadata, and the distribution, searched
    in ``where`` only; raises ``LookupError`` when it is in none of them."""
    for directory in where:
        for dist in importlib.metadata.distributions(name=name, path=[str(directory)]):
            return directory, dist
    raise LookupError(name)


def _recorded(dist: importlib.metadata.Distribution, filename: str, root: Path) -> Path | None:
    """Where ``dist``'s RECORD put ``filename``, if that file exists inside ``root``."""
    for f in dist.files or []:
        if f.name == filename:
            path = Path(str(f.locate())).resolve()
            if path.is_file() and path.is_relative_to(root):
                return path
    return None


def _jaxconv_site() -> Path | None:
    """The site-packages that holds the installed ``jaxconv`` (a wheel or an editable install)."""
    try:
        return _distribution("jaxconv", _site_dirs())[0]
    except LookupError:
        return None


def _extension_path() -> Path | None:
    """The built extension, in jaxconv's own tree only: beside this module (a wheel, or a build
    copied into the tree), else where the installed ``jaxconv`` distribution recorded it in its
    own site-packages (an editable install run from its source tree, as pytest and
    ``python -m bench`` do)."""
    here = Path(__file__).with_name(LIBRARY)
    if here.is_file():
        return here
    try:
        directory, dist = _distribution("jaxconv", _site_dirs())
    except LookupError:
        return None
    return _recorded(dist, LIBRARY, directory / "jaxconv")


def _dnnl_path() -> Path | None:
    """``libdnnl.so.3`` from the ``onednn-cpu-gomp`` distribution installed in the same
    site-packages as jaxconv (its library lies in the environment's ``lib/``), else None."""
    site_dir = _jaxconv_site()  # None: jaxconv is not installed, a build copied into its tree
    try:
        _, dist = _distribution("onednn-cpu-gomp", [site_dir] if site_dir else _site_dirs())
    except LookupError:
        return None
    return _recorded(dist, "libdnnl.so.3", Path(sys.prefix).resolve())


def _ffi_api_of_jaxlib() -> tuple[int, int] | None:
    """The XLA FFI API version (major, minor) of the running jaxlib, from its headers."""
    try:
        text = (Path(jax.ffi.include_dir()) / "xla" / "ffi" / "api" / "c_api.h").read_text()
    except (OSError, AttributeError):
        return None
    found = dict(re.findall(r"#define XLA_FFI_API_(MAJOR|MINOR) (\d+)", text))
    if set(found) != {"MAJOR", "MINOR"}:
        return None
    return int(found["MAJOR"]), int(found["MINOR"])


def _check_and_register(lib: ctypes.CDLL) -> str | None:
    """Checks the loaded extension's version and FFI API and registers its handlers; None
    when that worked, else why not."""
    for name, restype in _SYMBOLS.items():
        fn = getattr(lib, name)  # AttributeError: a build without it (stale or foreign)
        fn.restype = restype
    built = lib.jaxconv_onednn_version().decode()
    if built != __version__:
        return f"it was built for jaxconv {built}, this is jaxconv {__version__}; reinstall jaxconv"
    packed = lib.jaxconv_onednn_ffi_api()
    api, running = (packed >> 16, packed & 0xFFFF), _ffi_api_of_jaxlib()
    if running is not None and (api[0] != running[0] or api[1] > running[1]):
        return (
            f"it was built against XLA FFI API {api[0]}.{api[1]}, the installed jaxlib "
            f"{jax.lib.__version__} has {running[0]}.{running[1]}; reinstall jaxconv"
        )
    for target, symbol in _TARGETS.items():
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
    return None


@functools.cache
def _load() -> tuple[ctypes.CDLL | None, str | None]:
    """``(library, None)``, or ``(None, why it is unavailable)``; runs once per process.

    Never raises. Where the extension exists but cannot be used (it does not load, lacks a
    symbol, was built for another jaxconv or XLA FFI version) it warns once
    (:class:`OnednnUnavailableWarning`) and jaxconv runs on XLA; where it was never built, is
    disabled, or the platform has none, it says so only in :func:`supports`."""
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        return None, f"onednn is disabled by {DISABLE_ENV}={os.environ[DISABLE_ENV]}"
    if sys.platform != "linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        return None, (
            f"onednn is built for Linux x86-64 only, this is {sys.platform} {platform.machine()}"
        )
    path = _extension_path()
    if path is None:
        return None, (
            f"onednn extension {LIBRARY} was not built (no C++ compiler, CMake or "
            f"oneDNN at install time?); reinstall jaxconv to build it"
        )
    try:
        dnnl = _dnnl_path()
        if dnnl is not None:  # loaded first, so the extension's soname resolves to it
            ctypes.CDLL(str(dnnl))
        lib = ctypes.CDLL(str(path))
        why = _check_and_register(lib)
    except Exception as e:  # any failure here means: run on XLA, and say why
        why = f"{type(e).__name__}: {e}"
        lib = None
    if why is None:
        return lib, None
    why = f"onednn extension {path} cannot be used: {why}"
    warnings.warn(f"{why}; jaxconv runs its convs on XLA", OnednnUnavailableWarning, stacklevel=2)
    return None, why


def unavailable() -> str | None:
    """None when the extension is loaded (loading it if needed), else why it is not."""
    return _load()[1]


def _dispatches(symbol: str) -> bool:
    """The extension's answer to an ISA question (False where it is not loaded)."""
    lib, _ = _load()
    return lib is not None and bool(getattr(lib, symbol)())


@functools.cache
def native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 convs natively here (AVX512_BF16 or AMX)."""
    return _dispatches("jaxconv_onednn_native_bf16")


@functools.cache
def amx() -> bool:
    """Whether oneDNN runs AMX (bfloat16 tile) kernels here."""
    return _dispatches("jaxconv_onednn_amx")


def cache_size() -> int:
    """How many oneDNN primitives the extension holds in its cache now (0 if not loaded)."""
    lib, _ = _load()
    return 0 if lib is None else int(lib.jaxconv_onednn_cache_size())


def cache_capacity(capacity: int | None = None) -> int:
    """The primitive cache's bound (least recently used evicted first; 1024 unless the
    ``JAXCONV_ONEDNN_CACHE_CAPACITY`` environment variable says otherwise at load), after
    setting it to ``capacity`` (>= 1) if given; 0 if the extension is not loaded."""
    lib, _ = _load()
    if lib is None:
        return 0
    if capacity is not None:
        lib.jaxconv_onednn_set_cache_capacity(ctypes.c_int64(check_int(capacity, "capacity")))
    return int(lib.jaxconv_onednn_cache_capacity())


def scratchpad_bytes() -> int:
    """The scratchpad the extension keeps between calls (at most 64 MiB: a larger one is freed
    after the call that needed it); 0 if not loaded."""
    lib, _ = _load()
    return 0 if lib is None else int(lib.jaxconv_onednn_scratchpad_bytes())


class BuildThreads(NamedTuple):
    """The OpenMP thread counts oneDNN's primitives were built with (oneDNN sizes some kernels'
    work split by it at creation): ``builds`` primitives, the ``fewest`` and ``most`` threads
    seen on their building threads, how many were built ``in_parallel`` (inside an OpenMP
    region: the bottleneck's per-thread ones), and ``here``, the count on the calling thread."""

    builds: int
    fewest: int
    most: int
    in_parallel: int
    here: int


def build_threads() -> BuildThreads | None:
    """:class:`BuildThreads` so far in this process; None if the extension is not loaded."""
    lib, _ = _load()
    if lib is None:
        return None
    out = (ctypes.c_int64 * 5)()
    lib.jaxconv_onednn_build_threads(out)
    return BuildThreads(*(int(v) for v in out))


#: The phases of one call that ``JAXCONV_ONEDNN_PROFILE=1`` times (csrc/onednn_conv.cc).
PROFILE_PHASES = ("describe", "lookup", "lock", "setup", "execute", "wait")


def profile(reset: bool = True) -> tuple[int, dict[str, float]] | None:
    """``(calls, {phase: seconds})`` the forward and frozen handlers spent since the last reset
    (``JAXCONV_ONEDNN_PROFILE=1`` set before the extension loads), else None; ``reset`` zeroes
    the counters. For the per-call overhead breakdown (bench/per_call.py)."""
    lib, _ = _load()
    if lib is None:
        return None
    out = (ctypes.c_int64 * len(PROFILE_PHASES))()
    calls = int(lib.jaxconv_onednn_profile(out, ctypes.c_int64(int(reset))))
    if calls < 0:
        return None
    return calls, {p: out[i] / 1e9 for i, p in enumerate(PROFILE_PHASES)}
