"""Timing, environment record and the context every suite receives.

Timing honesty (STYLE.md habit 9): lowering, compilation and execution are timed separately;
every call ends in ``block_until_ready``; runs come after warm-up; we keep the median with the
min and max; the variants of one case run round-robin (A B C, B C A, …) so a noisy neighbour
slows all of them alike and their ratios stay meaningful on a shared machine.

Device timing (on a GPU; anywhere with ``JAXCONV_BENCH_TIMER=queued``, which the device
check's dry run sets): each sample queues calls back to back for ~2 ms and syncs once, so a
microsecond kernel is timed by the device rather than by dispatch, launch and sync; and each
jax variant cycles through copies of its inputs totalling over 3× an H200's 60 MB L2
(:data:`ROTATE_BYTES`), so no call finds its input in cache from the previous one. The torch
peer's inputs are not rotated (its runners close over fixed tensors): torch is the favoured
side of that comparison.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxconv
from bench._fusion import fusion_report

#: ``JAXCONV_BENCH_TIMER=queued``: device timing on any platform (see the module doc).
TIMER_ENV = "JAXCONV_BENCH_TIMER"
#: Device timing: seconds of queued calls per sample (``--quick``: a tenth).
TARGET_S = 2e-3
#: Device timing: the bytes of input copies each jax variant cycles through (> 3× a 60 MB L2).
ROTATE_BYTES = 192 << 20
#: ... and the most copies (a tiny input needs no 1000 copies to leave the cache).
MAX_COPIES = 16
#: Samples of a slow baseline (``Context.time(..., baseline=True)``).
BASELINE_REPEATS = 3

GPU_PLATFORMS = ("gpu", "cuda", "rocm")


def uses_device_timing(platform: str) -> bool:
    """Queued calls and rotated inputs (module doc): on a GPU, or where ``JAXCONV_BENCH_TIMER``
    is ``queued``."""
    return platform in GPU_PLATFORMS or os.environ.get(TIMER_ENV) == "queued"


#: Keys every record has (see ``bench/__init__.py``).
REQUIRED_KEYS = (
    "suite",
    "variant",
    "default",
    "batch",
    "dtype",
    "median_s",
    "min_s",
    "max_s",
    "macs",
    "xla_flops",
    "gflops",
)


@dataclass(frozen=True)
class Options:
    """The parsed command line (see ``python -m bench --help``)."""

    suites: tuple[str, ...] = ("bottleneck",)
    batches: tuple[int, ...] | None = None  # None: each suite's default sweep
    dtypes: tuple[str, ...] | None = None  # None: each suite's default (float32 mostly)
    repeats: int | None = None  # None: 20 (3 with --quick)
    warmup: int | None = None  # None: 3 (1 with --quick)
    full: bool = False
    quick: bool = False
    out: Path | None = None
    update_results: bool = False
    peers: tuple[str, ...] | None = None  # None: torch where installed (--peers torch|none)
    device: str | None = None
    plots: bool = True
    only: tuple[str, ...] | None = None  # None: every shape/block of each suite
    retain_host_memory: bool = False  # jaxconv.retain_host_memory() before the first run
    replot: Path | None = None  # --replot DIR: redraw from the JSON there, run nothing

    @property
    def n_repeats(self) -> int:
        return self.repeats if self.repeats is not None else (3 if self.quick else 20)

    @property
    def n_warmup(self) -> int:
        return self.warmup if self.warmup is not None else (1 if self.quick else 3)


class Unselected(ValueError):
    """``--only`` selected nothing in a suite (a user error: ``python -m bench`` exits 2)."""


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of ``repeats`` runs after warm-up."""

    times: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def max(self) -> float:
        return max(self.times)


@dataclass
class Compiled:
    """One ``jax.jit`` function lowered and compiled, with what XLA says about it.

    Calling it runs it on ``args``, or on the next of ``copies`` (each an equal copy of
    ``args``) when :meth:`rotate` made some: device timing's inputs rotated beyond L2.
    """

    call: Callable[..., Any]
    args: tuple
    lower_s: float
    compile_s: float
    xla_flops: float | None
    xla_bytes: float | None
    peak_bytes: int | None
    hlo: str
    fusion: dict | None
    copies: tuple[tuple, ...] = ()
    _next: int = 0

    def rotate(self, total_bytes: int, max_copies: int = MAX_COPIES) -> int:
        """Makes enough copies of ``args`` that together they hold ``total_bytes`` (at least
        2, at most ``max_copies``); returns how many."""
        size = sum(a.nbytes for a in jax.tree.leaves(self.args) if isinstance(a, jax.Array))
        n = max(2, min(max_copies, -(-total_bytes // max(size, 1))))
        copy = lambda a: jnp.copy(a) if isinstance(a, jax.Array) else a  # noqa: E731
        self.copies = (self.args, *(jax.tree.map(copy, self.args) for _ in range(n - 1)))
        return n

    def __call__(self) -> Any:
        if not self.copies:
            return self.call(*self.args)
        args = self.copies[self._next]
        self._next = (self._next + 1) % len(self.copies)
        return self.call(*args)


def device_dirname(device: jax.Device) -> str:
    """The folder under ``bench/results/`` for ``device``: :func:`jaxconv.convolution.device_kind`,
    the class of machine results transfer between — on a CPU the architecture, widest vector ISA
    and core count (``cpu-x86_64-avx2-2c``), else platform and model (``gpu-nvidia-h200``). A bare
    ``cpu`` would let every CPU overwrite every other's results."""
    return jaxconv.convolution.device_kind(device.platform, device.device_kind)


def resolve_device(name: str | None) -> jax.Device:
    """``None`` → jax's default device; else a platform (``cpu``, ``gpu``, ``cuda``, ``tpu``)."""
    if name is None:
        return jax.devices()[0]
    try:
        return jax.devices(name)[0]
    except RuntimeError as err:
        have = sorted({d.platform for d in jax.devices()} | {"cpu"})
        raise ValueError(
            f"`--device` (={name!r}) is not available here ({err}); available: {', '.join(have)}"
        ) from None


def sync(out: Any) -> Any:
    """Blocks until ``out`` (any pytree of jax arrays, or anything else) is computed."""
    return jax.block_until_ready(out)


def round_robin(
    runners: Mapping[str, Callable[[], Any]],
    repeats: int,
    warmup: int,
    target_s: float | None = None,
) -> dict[str, Timing]:
    """Each runner timed ``repeats`` times after ``warmup`` rounds, primed and interleaved
    round-robin — jaxconv's own timing (:func:`jaxconv.convolution.round_robin`, which autotune
    uses), as :class:`Timing`; ``target_s`` queues calls per sample (device timing)."""
    timings = jaxconv.convolution.round_robin(dict(runners), repeats, warmup, target_s)
    return {n: Timing(t) for n, t in timings.items()}


def compile_timed(
    fn: Callable,
    *args: Any,
    platform: str = "cpu",
    compiler_options: Mapping[str, Any] | None = None,
) -> Compiled:
    """Lowers and compiles ``jax.jit(fn)`` for ``args`` (with XLA's ``compiler_options``),
    timing each step; reads XLA's costs.

    ``fn`` is wrapped afresh so that jit's trace cache (keyed on the function) never turns a
    second lowering of the same function and shapes into a free lookup.
    """
    jitted = jax.jit(lambda *a: fn(*a))
    start = time.perf_counter()
    lowered = jitted.lower(*args)
    lower_s = time.perf_counter() - start
    start = time.perf_counter()
    compiled = lowered.compile(dict(compiler_options or {}))
    compile_s = time.perf_counter() - start
    cost = jaxconv.compiled_cost(compiled)
    # XLA does not see into custom calls (oneDNN convs): its counts then miss the conv itself.
    counted = cost.uncounted_calls == 0
    peak = None
    try:
        memory = compiled.memory_analysis()  # None where the backend has none
        peak = getattr(memory, "peak_memory_in_bytes", None)
        if not peak and memory is not None:  # left 0: arguments + outputs + temporaries - aliased
            peak = (
                memory.argument_size_in_bytes
                + memory.output_size_in_bytes
                + memory.temp_size_in_bytes
                - memory.alias_size_in_bytes
            )
    except (AttributeError, NotImplementedError, RuntimeError, TypeError):
        peak = None  # memory_analysis is optional per backend
    hlo = compiled.as_text() or ""
    fusion = fusion_report(hlo, platform).to_dict() if hlo else None
    return Compiled(
        call=compiled,
        args=args,
        lower_s=lower_s,
        compile_s=compile_s,
        xla_flops=cost.flops if counted and "flops" in cost.raw else None,
        xla_bytes=cost.bytes_accessed if counted and "bytes accessed" in cost.raw else None,
        peak_bytes=int(peak) if peak is not None else None,
        hlo=hlo,
        fusion=fusion,
    )


def git_revision() -> str:
    """``<short hash>`` of the checkout bench/ sits in, ``+dirty`` with uncommitted changes."""
    import subprocess

    root = Path(__file__).resolve().parent.parent

    def git(*args: str, check: bool) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=check
        ).stdout

    try:
        rev = git("rev-parse", "--short", "HEAD", check=True)
        dirty = git("status", "--porcelain", "--untracked-files=no", check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev.strip() + ("+dirty" if dirty.strip() else "")


def environment(device: jax.Device) -> dict[str, Any]:
    """Device kind (jax's, and jaxconv's that names the results folder), CPU model and cores,
    versions, XLA_FLAGS and glibc malloc settings, the git revision and the date."""
    import jaxlib

    return {
        "device_kind": device.device_kind,
        "jaxconv_device_kind": device_dirname(device),  # the results folder
        "platform": device.platform,
        "device": str(device),
        "device_count": len(jax.devices(device.platform)),
        "cpu_model": jaxconv.convolution.cpu_model(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "jaxconv": jaxconv.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "xla_preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", ""),
        "malloc_env": " ".join(  # glibc malloc's settings (jaxconv.retain_host_memory)
            f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith(("MALLOC_", "GLIBC_"))
        ),
        "timer": (
            f"device: calls queued for ~{TARGET_S * 1e3:g} ms per sample, synced once; jax "
            f"inputs rotated over {ROTATE_BYTES >> 20} MiB of copies (--quick: a tenth of "
            "the time, 2 copies)"
            if uses_device_timing(device.platform)
            else "one synced call per sample"
        ),
        "git": git_revision(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "argv": " ".join(["python -m bench", *sys.argv[1:]]),
    }


@dataclass
class Context:
    """What a suite gets: options, the device, measured peaks, timers, and a note pad.

    A suite is ``def run(ctx: Context) -> list[dict]``; build records with :meth:`record`.
    """

    options: Options
    device: jax.Device
    env: dict[str, Any]
    peer: Any = None  # a bench._peers.TorchPeer under --peers torch, else None
    notes: list[str] = field(default_factory=list)
    #: Progress callback, called like ``rich.progress.Progress.update`` (total/completed/...).
    report: Callable[..., None] = lambda **fields: None
    _peaks: dict[str, float] = field(default_factory=dict)

    # -- sweep helpers ------------------------------------------------------------------
    @property
    def platform(self) -> str:
        return self.device.platform

    @property
    def device_timing(self) -> bool:
        """:func:`uses_device_timing` for this context's device."""
        return uses_device_timing(self.platform)

    @property
    def target_s(self) -> float | None:
        """Seconds of queued calls per sample under device timing, else None (one call)."""
        if not self.device_timing:
            return None
        return TARGET_S / 10 if self.options.quick else TARGET_S

    def batches(self, default: Sequence[int], quick: Sequence[int] = (1, 2)) -> tuple[int, ...]:
        """``--batch`` if given, else ``quick`` under ``--quick``, else the suite's ``default``."""
        if self.options.batches:
            return self.options.batches
        return tuple(quick) if self.options.quick else tuple(default)

    def dtypes(self, default: Sequence[str] = ("float32",)) -> tuple[str, ...]:
        """``--dtype`` if given, else bfloat16 on a GPU (float32 there is TF32, and bf16 is what
        GPU training runs), else the suite's ``default``."""
        if self.options.dtypes:
            return self.options.dtypes
        return ("bfloat16",) if self.platform in GPU_PLATFORMS else tuple(default)

    @staticmethod
    def seed(*parts: Any) -> int:
        """A stable seed from a case's description (Python's ``hash`` is salted per process)."""
        return zlib.crc32("/".join(map(str, parts)).encode())

    def select(self, items: Sequence[Any], suite: str) -> tuple[Any, ...]:
        """``items`` (shapes or blocks with a ``name``) cut to ``--only``'s names; every item
        without ``--only``. :class:`Unselected` naming the suite's names when none is."""
        if self.options.only is None:
            return tuple(items)
        chosen = tuple(i for i in items if i.name in self.options.only)
        if not chosen:
            raise Unselected(
                f"`--only` ({', '.join(self.options.only)}) names nothing in suite {suite!r}; "
                f"its names: {', '.join(i.name for i in items)}"
            )
        return chosen

    def track(self, items: Iterable[Any], label: Callable[[Any], str] = str) -> Iterator[Any]:
        """Iterates ``items`` advancing the progress bar by one step per finished item."""
        items = list(items)
        self.report(total=len(items), completed=0)
        for done, item in enumerate(items):
            self.report(item=label(item))
            yield item
            self.report(completed=done + 1)

    def rng_arrays(
        self,
        seed: int,
        shapes: Sequence[tuple[int, ...]],
        dtype: str,
        scales: Sequence[float] | None = None,
    ) -> list[jax.Array]:
        """Seeded normal arrays on the device, ``scales[i]`` times unit scale.

        Drawn with NumPy (``jax.random`` would compile a sampler for every new shape) and cast
        on the host, so creating inputs compiles nothing.
        """
        rng = np.random.default_rng(seed)
        out = []
        for i, shape in enumerate(shapes):
            a = rng.standard_normal(shape, dtype=np.float32)
            if scales is not None:
                a *= np.float32(scales[i])
            out.append(jax.device_put(a.astype(jnp.dtype(dtype)), self.device))
        return out

    # -- measuring ----------------------------------------------------------------------
    def compile(
        self, fn: Callable, *args: Any, compiler_options: Mapping[str, Any] | None = None
    ) -> Compiled:
        """:func:`compile_timed`; under device timing with its inputs rotated beyond L2
        (2 copies under ``--quick``)."""
        compiled = compile_timed(
            fn, *args, platform=self.platform, compiler_options=compiler_options
        )
        if self.device_timing:
            compiled.rotate(0 if self.options.quick else ROTATE_BYTES)
        return compiled

    def time(
        self,
        runners: Mapping[str, Callable[[], Any]],
        default_repeats: int | None = None,
        *,
        baseline: bool = False,
    ) -> dict[str, Timing]:
        """Times ``runners`` round-robin; ``default_repeats`` lets a slow suite run fewer than
        the usual 20 when ``--repeats`` is not given (``--quick`` keeps its 3).

        ``baseline=True`` is for a reference far slower than what is compared (plain lax on a
        depthwise conv: 30–1000×, seconds a call), whose median only sets a ratio: at most
        :data:`BASELINE_REPEATS` samples and no warm-up round (each sample is still primed by
        an untimed call), so the time goes to the variants being compared."""
        repeats = self.options.n_repeats
        if default_repeats and self.options.repeats is None and not self.options.quick:
            repeats = default_repeats
        if baseline:
            return round_robin(runners, min(repeats, BASELINE_REPEATS), 0, self.target_s)
        return round_robin(runners, repeats, self.options.n_warmup, self.target_s)

    def gemm_peak(self, dtype: str) -> float:
        """GFLOP/s of a large square ``jnp.dot`` in ``dtype`` (best of the runs), measured once."""
        if dtype not in self._peaks:
            n = 512 if self.options.quick else (2048 if self.platform == "cpu" else 8192)
            a, b = self.rng_arrays(1234, [(n, n), (n, n)], dtype)
            compiled = self.compile(jnp.dot, a, b)
            runs = 5 if self.options.quick else 10
            timing = round_robin({"dot": compiled}, runs, 2, self.target_s)["dot"]
            self._peaks[dtype] = 2 * n**3 / timing.min / 1e9
            self.env.setdefault("gemm_peak_gflops", {})[dtype] = round(self._peaks[dtype], 2)
            self.env.setdefault("gemm_peak_shape", [n, n, n])
        return self._peaks[dtype]

    def bandwidth(self) -> float:
        """Read bandwidth in GB/s: ``jnp.sum`` over a float32 array far larger than the caches
        (best of the runs). A sum allocates nothing, so page faults on fresh output buffers
        (slow in VMs) do not count."""
        if "_bw" not in self._peaks:
            n = 1 << (20 if self.options.quick else (24 if self.platform == "cpu" else 28))
            x = jax.device_put(np.ones(n, np.float32), self.device)  # values do not matter
            compiled = self.compile(jnp.sum, x)
            runs = 5 if self.options.quick else 10
            timing = round_robin({"sum": compiled}, runs, 2, self.target_s)["sum"]
            self._peaks["_bw"] = 4 * n / timing.min / 1e9
            self.env["memory_bandwidth_gbs"] = round(self._peaks["_bw"], 2)
        return self._peaks["_bw"]

    def note(self, text: str) -> None:
        """A line for the terminal summary and the Markdown file."""
        self.notes.append(text)

    def record(
        self,
        suite: str,
        variant: str,
        *,
        default: bool,
        batch: int,
        dtype: str,
        timing: Timing,
        macs: int,
        compiled: Compiled | None = None,
        xla_flops: float | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """One JSON record (required keys first, then timings of compilation, XLA's numbers,
        the fusion report and any suite-specific ``extra`` fields)."""
        gflops = 2 * macs / timing.median / 1e9
        peak = self.gemm_peak(dtype)
        rec: dict[str, Any] = {
            "suite": suite,
            "variant": variant,
            "default": bool(default),
            "batch": int(batch),
            "dtype": dtype,
            "median_s": timing.median,
            "min_s": timing.min,
            "max_s": timing.max,
            "macs": int(macs),
            "xla_flops": compiled.xla_flops if compiled is not None else xla_flops,
            "gflops": gflops,
            "tflops": gflops / 1e3,
            "peak_fraction": gflops / peak,
            "repeats": len(timing.times),
            "lower_s": compiled.lower_s if compiled is not None else None,
            "compile_s": compiled.compile_s if compiled is not None else None,
            "xla_bytes": compiled.xla_bytes if compiled is not None else None,
            "peak_bytes": compiled.peak_bytes if compiled is not None else None,
        }
        rec.update(extra)
        if compiled is not None and compiled.fusion is not None:
            rec["kernels"] = compiled.fusion["kernels"]
            rec["fusions"] = compiled.fusion["fusions"]
            rec["fusion"] = compiled.fusion
        return rec
