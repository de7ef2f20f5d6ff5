"""``python -m bench``: the command line (``--help``; the harness: bench/__init__.py)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

# XLA preallocates 75% of a GPU's memory when its backend starts, which starves the torch
# peer in the same process: allocate on demand instead (read when jax first uses the GPU;
# set XLA_PYTHON_CLIENT_MEM_FRACTION yourself for a fixed share).
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from bench._harness import Options, Unselected

DTYPES = ("float32", "bfloat16", "float16")
PROG = "python -m bench"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: ``python -m bench: error: … (see --help)``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{PROG}: error: {message} (see --help)\n")


def _csv(name: str, parse: Callable[[str], Any], rule: str) -> Callable[[str], tuple]:
    def convert(text: str) -> tuple:
        items = [t.strip() for t in text.split(",")]
        try:
            values = tuple(parse(t) for t in items)
        except ValueError:
            values = ()
        if not values or any(v is None for v in values):
            raise argparse.ArgumentTypeError(f"`{name}` must be {rule}, got {text!r}")
        return values

    return convert


def _positive(text: str) -> int | None:
    value = int(text)
    return value if value > 0 else None


def _dtype(text: str) -> str | None:
    return text if text in DTYPES else None


def _peer(text: str) -> str | None:
    from bench._engines import ENGINES

    return text if text in ("torch", "none", *ENGINES) else None


def _name(text: str) -> str | None:
    return text or None


#: The suites that take ``--only`` (their shapes and blocks have names).
ONLY_SUITES = ("lowering", "groups", "inception", "untuned")
#: The suites that time a torch peer (``untuned`` compares against plain lax only).
PEER_SUITES = ("bottleneck", "conv1x1", "groups", "inception", "lowering", "model")
#: The suites that time the inference engines (``--peers torch-compile,openvino,onnxruntime``).
ENGINE_SUITES = ("model",)
#: What ``--peers`` takes.
PEERS_RULE = "'none' or comma-separated of torch, torch-compile, openvino, onnxruntime"
#: The suites that have a ``--full`` sweep.
FULL_SUITES = ("bottleneck", "conv1x1", "lowering")
#: The options that time something: ``--replot`` takes none of them.
RUN_OPTIONS = (
    "batch",
    "dtype",
    "repeats",
    "warmup",
    "full",
    "quick",
    "out",
    "update_results",
    "peers",
    "device",
    "only",
    "retain_host_memory",
)


def _count(name: str, minimum: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"`{name}` must be an int >= {minimum}, got {text!r}")
        return value

    return convert


def build_parser(suites: Mapping[str, str]) -> argparse.ArgumentParser:
    """The parser; ``suites`` maps each suite's name to its one-line description (``--help``
    lists them all: :func:`parse_args` passes every suite in ``bench.suites.REGISTRY``)."""
    listed = "; ".join(f"{name}: {text}" for name, text in suites.items())
    parser = _Parser(
        prog=PROG,
        description=(
            "Benchmarks jaxconv on the default device: lower, compile and run times (median, "
            "min, max of --repeats runs after --warmup, block_until_ready), analytic MACs next "
            "to XLA's cost_analysis, GFLOP/s and the fraction of a GEMM peak measured in the same "
            "run, peak memory, and a fusion report from the optimized HLO. Writes JSON, a "
            "Markdown table and a PNG per suite into a fresh folder under the system's temporary "
            "directory (printed), into --out DIR, or with --update-results over the committed "
            "results in bench/results/<device-kind>/."
        ),
        epilog=(
            f"suites: {listed}. Example: python -m bench bottleneck conv1x1 --batch 1,8,32 "
            "--peers torch"
        ),
    )
    parser.add_argument(
        "suites",
        nargs="*",
        metavar="SUITE",
        help=f"suites to run, of: {', '.join(suites)} (default: bottleneck)",
    )
    parser.add_argument(
        "--batch",
        type=_csv("--batch", _positive, "comma-separated ints > 0"),
        metavar="1,8,32",
        help="batch sizes to sweep (default: per suite; bottleneck 1,8,32)",
    )
    parser.add_argument(
        "--dtype",
        type=_csv("--dtype", _dtype, f"comma-separated of {', '.join(DTYPES)}"),
        metavar="float32,bfloat16",
        help="dtypes (default: per suite, float32 except inception's and "
        "groups' float32,bfloat16; bf16 convs are upcast to f32 on XLA:CPU)",
    )
    parser.add_argument(
        "--repeats",
        type=_count("--repeats", 1),
        metavar="N",
        help="timed runs per variant (default: 20; 3 with --quick)",
    )
    parser.add_argument(
        "--warmup",
        type=_count("--warmup", 0),
        metavar="N",
        help="untimed runs first (default: 3; 1 with --quick)",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--full",
        action="store_true",
        help="the whole sweep: all nine GoogLeNet 5x5 branches in bottleneck, "
        "batches 1,8,32 in conv1x1",
    )
    size.add_argument(
        "--quick",
        action="store_true",
        help="tiny shapes and few runs: a smoke test of the harness in seconds",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write results into DIR (default: a fresh folder under the system's temporary "
        "directory, printed at the end)",
    )
    where.add_argument(
        "--update-results",
        action="store_true",
        help="overwrite the committed results in bench/results/<device-kind>/ (the numbers "
        "the README's results tables and docs/performance.md quote); only for a full run "
        "meant to be committed",
    )
    parser.add_argument(
        "--peers",
        type=_csv("--peers", _peer, PEERS_RULE),
        metavar="torch,…|none",
        help="time PyTorch on the same shapes beside jaxconv, alternating with it (default: "
        "torch when it is installed, in the suites that have a peer: "
        f"{', '.join(PEER_SUITES)}); none: jaxconv and plain lax only. The model suite also "
        "takes the inference engines torch-compile, openvino and onnxruntime (each where "
        "installed; a missing one is named and skipped), e.g. "
        "--peers torch,torch-compile,openvino,onnxruntime",
    )
    parser.add_argument(
        "--device", metavar="PLATFORM", help="cpu, gpu or tpu (default: jax's default device)"
    )
    parser.add_argument(
        "--only",
        type=_csv("--only", _name, "comma-separated shape or block names"),
        metavar="NAME,…",
        help="time only these shapes/blocks, by the name in a table's layer column (e.g. "
        "seed.direct_5x5,googlenet.3a.3x3 for lowering; inception_3a for inception); "
        "lowering, groups, inception and untuned take it; not with --update-results",
    )
    parser.add_argument(
        "--retain-host-memory",
        action="store_true",
        help="call jaxconv.retain_host_memory() first: glibc keeps freed memory for XLA's next "
        "buffers instead of mapping fresh pages (process-wide: torch gets it too)",
    )
    parser.add_argument("--no-plots", dest="plots", action="store_false", help="skip the PNG plots")
    parser.add_argument(
        "--replot",
        type=Path,
        metavar="DIR",
        help="run nothing: redraw the PNG, the Markdown page and the peer table of each suite's "
        "JSON in DIR (of the SUITEs named, else all), e.g. bench/results/<device-kind>",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """Parses the command line into :class:`bench._harness.Options` (exits 2 on bad flags)."""
    from bench.suites import DEFAULT, REGISTRY, describe

    parser = build_parser({name: describe(name) for name in REGISTRY})
    ns = parser.parse_args(argv)
    unknown = [s for s in ns.suites if s not in REGISTRY]
    if unknown:
        parser.error(f"unknown suite {unknown[0]!r}; choose from {', '.join(REGISTRY)}")
    if ns.replot is not None:
        given = [o for o in RUN_OPTIONS if getattr(ns, o) not in (None, False)]
        if given or not ns.plots:
            flag = "--" + (given[0] if given else "no_plots").replace("_", "-")
            parser.error(f"`--replot` runs nothing and redraws in DIR: `{flag}` has no effect")
        if not ns.replot.is_dir():
            parser.error(f"`--replot` must be a directory of results, got {str(ns.replot)!r}")
    suites = tuple(dict.fromkeys(ns.suites)) or (() if ns.replot else DEFAULT)
    if ns.peers is not None and "none" in ns.peers and len(set(ns.peers)) > 1:
        parser.error(f"`--peers` takes 'none' alone, not with a peer, got {','.join(ns.peers)!r}")
    peers = None if ns.peers is None else tuple(p for p in dict.fromkeys(ns.peers) if p != "none")
    engines = [p for p in peers or () if p != "torch"]
    _check_applies(parser, "--full", ns.full, suites, FULL_SUITES)
    _check_applies(parser, "--peers torch", "torch" in (peers or ()), suites, PEER_SUITES)
    _check_applies(parser, f"--peers {','.join(engines)}", bool(engines), suites, ENGINE_SUITES)
    if ns.quick and ns.update_results:
        parser.error("`--quick` times tiny shapes: it cannot replace the committed results")
    if ns.only is not None:
        if ns.update_results:
            parser.error("`--only` times a subset: it cannot replace the committed results")
        others = [s for s in ns.suites or DEFAULT if s not in ONLY_SUITES]
        if others:
            parser.error(f"`--only` works with {', '.join(ONLY_SUITES)}, not {others[0]!r}")
    if ns.out is not None and ns.out.exists() and not ns.out.is_dir():
        parser.error(f"`--out` must be a directory, got the file {str(ns.out)!r}")
    return Options(
        suites=suites,
        batches=ns.batch,
        dtypes=tuple(dict.fromkeys(ns.dtype)) if ns.dtype else None,
        repeats=ns.repeats,
        warmup=ns.warmup,
        full=ns.full,
        quick=ns.quick,
        out=ns.out,
        update_results=ns.update_results,
        peers=peers,
        device=ns.device,
        plots=ns.plots,
        only=tuple(dict.fromkeys(ns.only)) if ns.only else None,
        retain_host_memory=ns.retain_host_memory,
        replot=ns.replot,
    )


def _check_applies(
    parser: argparse.ArgumentParser,
    flag: str,
    given: bool,
    suites: Sequence[str],
    takers: Sequence[str],
) -> None:
    """A flag no named suite reads is a usage error; one that only some read gets a note on
    stderr naming the others, so that no flag is ignored without a word."""
    if not given:
        return
    ignore = [s for s in suites if s not in takers]
    if len(ignore) == len(suites):
        parser.error(
            f"`{flag}` has no effect on {', '.join(ignore)}; it applies to {', '.join(takers)}"
        )
    if ignore:
        print(f"{PROG}: note: `{flag}` has no effect on {', '.join(ignore)}", file=sys.stderr)


def output_dir(options: Options, device_kind: str) -> Path:
    """Where a run writes: ``--out``; with ``--update-results`` the committed
    ``bench/results/<device_kind>/``; else a fresh folder under the system's temporary
    directory, so that a trial run never overwrites the committed numbers."""
    if options.out is not None:
        return options.out
    if options.update_results:
        return Path(__file__).resolve().parent / "results" / device_kind
    return Path(tempfile.mkdtemp(prefix=f"jaxconv-bench-{device_kind}-"))


def _setup(options: Options):
    import jaxconv
    from bench import _engines, _harness, _peers

    # before jax's first computation starts its threads (see jaxconv.retain_host_memory)
    retained = jaxconv.retain_host_memory() if options.retain_host_memory else None
    device = _harness.resolve_device(options.device)
    peer, peer_note = None, None
    if options.peers is not None:  # --peers torch,…|none
        # the engines run torch's transcriptions, so torch comes with any of them
        engines, peer_note = _engines.available(options.peers)
        torch = tuple(p for p in options.peers if p == "torch")
        peer = _peers.load(torch + engines, device.platform)
    elif any(s in PEER_SUITES for s in options.suites):  # torch where it is installed
        peer, peer_note = _peers.auto(device.platform)
    env = _harness.environment(device)
    if retained is not None:  # --retain-host-memory
        env["host_memory"] = "retained" if retained else "not retained (not glibc)"
    if peer is not None:
        env["torch"] = f"{peer.version} ({peer.threads} threads, {peer.device})"
    if peer_note is not None:
        env["peer_note"] = peer_note
    return _harness.Context(options=options, device=device, env=env, peer=peer)


def run(options: Options, ctx=None) -> dict[str, list[dict]]:
    """Runs the suites, prints tables and writes the files. Returns records per suite."""
    import jax
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bench import _harness, _report
    from bench.suites import REGISTRY

    ctx = ctx or _setup(options)
    out_dir = output_dir(options, _harness.device_dirname(ctx.device))
    console = Console(stderr=True)
    results: dict[str, tuple[list[dict], list[str], float]] = {}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with jax.default_device(ctx.device), Progress(*columns, console=console) as progress:
        dtypes = ctx.dtypes()  # --dtype, else bf16 on a GPU, else float32
        task = progress.add_task("peaks: GEMM, memory bandwidth", total=len(dtypes) + 1)
        for dtype in dtypes:
            ctx.gemm_peak(dtype)
            progress.advance(task)
        ctx.bandwidth()
        progress.advance(task)
        # An engine alone (--peers openvino) loads torch to build the model suite's networks;
        # the suites that would time torch eager with it get no peer then.
        loaded, eager = ctx.peer, options.peers is None or "torch" in options.peers
        for name in options.suites:
            ctx.peer = loaded if eager or name in ENGINE_SUITES else None
            task = progress.add_task(name, total=None)

            def report(item: str | None = None, *, _task=task, _name=name, **fields) -> None:
                if item is not None:
                    fields["description"] = f"{_name}: {item}"
                progress.update(_task, **fields)

            ctx.notes, ctx.report = [], report
            start = time.perf_counter()
            records = REGISTRY[name](ctx)
            results[name] = (records, ctx.notes, time.perf_counter() - start)
            progress.update(task, description=name)

    out_dir.mkdir(parents=True, exist_ok=True)
    stdout = _stdout()
    opts = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(options).items()}
    for name, (records, notes, seconds) in results.items():
        stdout.print(_report.rich_table(name, records))
        for line in notes:
            stdout.print(line, markup=False, highlight=False)
        _report.write_json(
            out_dir / f"{name}.json", name, ctx.env, {**opts, "seconds": seconds}, notes, records
        )
        written = _write_pages(out_dir, name, ctx.env, notes, records, options.plots, stdout)
        stdout.print(
            f"{name}: {len(records)} records in {seconds:.1f} s → {out_dir}/ ({name}.json, "
            f"{written})",
            highlight=False,
        )
    return {name: r[0] for name, r in results.items()}


def _stdout():
    """The console for tables: the terminal's width, else 200 columns (a pipe or a file)."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 200)


def _write_pages(
    out_dir: Path, name: str, env: dict, notes: list[str], records: list[dict], plots: bool, stdout
) -> str:
    """Writes a suite's PNG (with ``plots``, when a peer was measured) and Markdown page and
    prints its peer table; returns the names of the files it wrote, for the summary line."""
    from bench import _report

    plot = out_dir / f"{name}.png"
    has_plot = plots and _report.write_plot(plot, name, records, env)
    (out_dir / f"{name}.md").write_text(
        _report.markdown(name, env, notes, records, plot.name if has_plot else None)
    )
    stdout.print(_report.rich_peer_table(name, records, env))
    return ", ".join(f"{name}.{ext}" for ext in ("md", "png") if ext != "png" or has_plot)


def replot(folder: Path, suites: Sequence[str] = ()) -> dict[str, list[dict]]:
    """``--replot DIR``: redraws the PNG and Markdown page of each suite's JSON in ``folder``
    (of ``suites``, else every ``*.json`` there) and prints its peer table; times and compiles
    nothing. Returns the records per suite; ValueError where there is nothing to redraw."""
    import json

    files = [folder / f"{s}.json" for s in suites] if suites else sorted(folder.glob("*.json"))
    missing = [str(f) for f in files if not f.is_file()] or ([] if files else [str(folder)])
    if missing:
        raise ValueError(f"`--replot` found no results to redraw in {missing[0]}")
    stdout = _stdout()
    results = {}
    for path in files:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not {"suite", "env", "notes", "records"} <= set(data):
            raise ValueError(
                f"`--replot`: {path} is not a suite's results (python -m bench's JSON)"
            )
        name, records = data["suite"], data["records"]
        written = _write_pages(folder, name, data["env"], data["notes"], records, True, stdout)
        stdout.print(f"{name}: redrawn from {path.name} → {folder}/ ({written})", highlight=False)
        results[name] = records
    return results


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    if options.replot is not None:
        try:
            replot(options.replot, options.suites)
        except ValueError as err:
            print(f"{PROG}: error: {err}", file=sys.stderr)
            return 2
        return 0
    try:
        ctx = _setup(options)  # device and peer problems are user errors: one line, exit 2
    except ValueError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    try:
        run(options, ctx)
    except Unselected as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
