"""Writing results: JSON (the record), a Markdown table, PNG plots and the terminal table."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import _compare

Record = dict[str, Any]


def speedup_key(records: Sequence[Record]) -> str | None:
    """The first ``speedup_vs_*`` key the records carry (each suite compares against one)."""
    for rec in records:
        for key in rec:
            if key.startswith("speedup_vs_"):
                return key
    return None


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1e3:.3g}" if seconds * 1e3 < 100 else f"{seconds * 1e3:.0f}"


def _num(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _ratio(key: str, fmt: str = ".2f") -> Callable[[Record], str]:
    """Formats ``record[key]`` as ``1.23×``, or ``—`` where the record has none."""
    return lambda r: _num(r.get(key), fmt) + "×" if r.get(key) is not None else "—"


def columns(records: Sequence[Record]) -> list[tuple[str, Callable[[Record], str]]]:
    """``(header, formatter)`` for the columns these records fill."""
    has = {k for r in records for k, v in r.items() if v is not None}
    cols: list[tuple[str, Callable[[Record], str]]] = []
    if "layer" in has:
        cols.append(("layer", lambda r: str(r.get("layer", ""))))
    cols += [
        ("variant", lambda r: r["variant"] + (" *" if r["default"] else "")),
        ("batch", lambda r: str(r["batch"])),
        ("dtype", lambda r: r["dtype"]),
        ("median ms", lambda r: _ms(r["median_s"])),
        ("min–max ms", lambda r: f"{_ms(r['min_s'])}–{_ms(r['max_s'])}"),
    ]
    if "compile_s" in has:
        cols.append(
            (
                "lower+compile ms",
                lambda r: (
                    "—"
                    if r.get("compile_s") is None
                    else f"{_ms(r['lower_s'])}+{_ms(r['compile_s'])}"
                ),
            )
        )
    cols += [
        ("MMACs", lambda r: f"{r['macs'] / 1e6:,.1f}"),
        ("XLA GFLOP", lambda r: _num(r["xla_flops"] and r["xla_flops"] / 1e9, ".3g")),
        ("GFLOP/s", lambda r: f"{r['gflops']:.3g}"),
    ]
    if "images_per_s" in has:
        cols.append(("images/s", lambda r: _num(r.get("images_per_s"), ".1f")))
    if "peak_fraction" in has:
        cols.append(("% GEMM peak", lambda r: _num(r.get("peak_fraction", 0) * 100, ".0f")))
    key = speedup_key(records)
    if key:
        label = "speedup vs " + key.removeprefix("speedup_vs_").replace("_", " ")
        cols.append((label, _ratio(key)))
    if "speed_vs_torch" in has:
        cols.append(("speed vs torch", _ratio("speed_vs_torch")))
    if "analytic_ratio" in has:
        cols.append(("analytic", _ratio("analytic_ratio", ".1f")))
    if "roofline_fraction" in has:
        cols.append(("% roofline", lambda r: _num(r.get("roofline_fraction", 0) * 100, ".0f")))
    if "ratio_vs_jaxconv" in has:
        cols.append(("peer/jaxconv time", _ratio("ratio_vs_jaxconv")))
    if "first_call_s" in has:  # the model suite's engines: what a deployment pays once
        cols.append(
            (
                "load+first call ms",
                lambda r: (
                    "—"
                    if r.get("first_call_s") is None
                    else f"{_ms(r['load_s'])}+{_ms(r['first_call_s'])}"
                ),
            )
        )
    if "kernels" in has:
        cols.append(
            (
                "kernels/fusions",
                lambda r: f"{r['kernels']}/{r['fusions']}" if "kernels" in r else "—",
            )
        )
    if "peak_bytes" in has:
        cols.append(
            ("peak MB", lambda r: _num(r.get("peak_bytes") and r["peak_bytes"] / 2**20, ".1f"))
        )
    return cols


def write_json(
    path: Path, suite: str, env: dict, options: dict, notes: list[str], records: list[Record]
) -> None:
    payload = {"suite": suite, "env": env, "options": options, "notes": notes, "records": records}
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")


def markdown(
    suite: str, env: dict, notes: list[str], records: list[Record], plot_name: str | None
) -> str:
    """The Markdown page: environment, notes, the table, and fusion reports."""
    lines = [f"# `python -m bench {suite}`", "", *markdown_peer_table(records, env)]
    if plot_name:
        lines += [f"![{suite}: jaxconv vs the fastest peer]({plot_name})", ""]
    lines += ["## The run", ""]
    keys = (
        "device_kind",
        "jaxconv_device_kind",
        "cpu_model",
        "cpu_count",
        "jax",
        "jaxlib",
        "xla_flags",
        "malloc_env",
        "host_memory",
        "git",
        "date",
        "argv",
        "gemm_peak_gflops",
        "memory_bandwidth_gbs",
        "torch",
    )
    lines += ["| environment | |", "|---|---|"]
    lines += [f"| {k} | `{env[k]}` |" for k in keys if k in env]
    lines.append("")
    if notes:  # a note starting with spaces continues the one before it
        lines += [f"  - {n.strip()}" if n.startswith(" ") else f"- {n}" for n in notes] + [""]
    cols = columns(records)
    lines.append("| " + " | ".join(h for h, _ in cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for rec in records:
        lines.append("| " + " | ".join(f(rec) for _, f in cols) + " |")
    repeats = sorted({r["repeats"] for r in records})
    lines += [
        "",
        "`*` = jaxconv's default path. Times are medians of "
        f"{'/'.join(map(str, repeats))} runs after warm-up "
        "(variants interleaved round-robin). MACs count every tap (the papers' ops); "
        "XLA GFLOP is `cost_analysis()` (skips padding taps; — where the program calls "
        "oneDNN, which XLA cannot count). GFLOP/s = 2·MACs / median, "
        "so a kernel faster than XLA's own dot (oneDNN's), or one that multiplies less "
        "than every tap (the Winograd lowerings of older runs), can pass 100% of "
        "the GEMM peak, which is the best of a few large `jnp.dot`s measured at the "
        "start of the run.",
        "",
    ]
    reports = _fusion_examples(records)
    if reports:
        lines += ["## Fusion reports (optimized HLO)", ""]
        for title, text in reports:
            lines += [f"**{title}**", "", "```", text, "```", ""]
    return "\n".join(lines)


def _fusion_examples(records: list[Record]) -> list[tuple[str, str]]:
    """One fusion summary per (variant, dtype) of the first layer, at its largest batch."""
    from bench._fusion import Anchor, FusionReport

    first = records[0].get("layer") if records else None
    best: dict[tuple, Record] = {}
    for rec in records:
        if "fusion" not in rec or rec.get("layer") != first:
            continue
        key = (rec.get("layer"), rec["variant"], rec["dtype"])
        if key not in best or rec["batch"] > best[key]["batch"]:
            best[key] = rec
    out = []
    for (layer, variant, dtype), rec in best.items():
        f = rec["fusion"]
        report = FusionReport(
            kernels=f["kernels"],
            fusions=f["fusions"],
            anchors=tuple(Anchor(**a) for a in f["anchors"]),
            libraries=tuple(f["libraries"]),
            custom_calls=tuple(f["custom_calls"]),
        )
        where = f"{layer}, " if layer else ""
        out.append((f"{where}{variant}, {dtype}, batch {rec['batch']}", report.summary(12)))
    return out


#: Columns left out of the terminal table (they are in the Markdown and JSON).
_WIDE_ONLY = ("lower+compile ms", "MMACs", "XLA GFLOP", "peak MB", "kernels/fusions")


def rich_table(suite: str, records: list[Record]):
    from rich.table import Table

    table = Table(title=f"bench: {suite}", show_lines=False)
    cols = [c for c in columns(records) if c[0] not in _WIDE_ONLY]
    for header, _ in cols:
        table.add_column(
            header, justify="left" if header in ("layer", "variant", "dtype") else "right"
        )
    for rec in records:
        table.add_row(*(f(rec) for _, f in cols))
    return table


# --- jaxconv against its peers: the summary table and the plot --------------------------------

PEER_CAPTION = "peer time / jaxconv time: > 1 = jaxconv faster"
PEER_EXPLAINED = (
    "Peer time / jaxconv time on jaxconv's default path: > 1 means jaxconv is faster; "
    "median and worst (the lowest) over the rows, each a conv or model at one batch."
)
LAX_EXPLAINED = "Plain lax is `lax.conv_general_dilated`, what JAX code runs without jaxconv."
#: Each peer's colour in the plot (the only colours it uses: which peer was the fastest).
PEER_COLORS = {
    "torch": "#ee4c2c",
    "torch-compile": "#8c564b",
    "openvino": "#6a3d9a",
    "onnxruntime": "#2ca02c",
    "lax": "#4c72b0",
}
#: What one row of a suite is, in the plot's title.
ROW_NOUN = {"model": "model", "inception": "block"}


def _times(value: float) -> str:
    """``1.05×``; ``27×`` from 10 up; two significant digits below 0.1."""
    return f"{value:.0f}×" if value >= 10 else f"{value:.2f}×" if value >= 0.1 else f"{value:.2g}×"


def peer_table(records: Sequence[Record], env: dict) -> tuple[list[str], list[list[str]]]:
    """``(headers, rows)`` of the summary: one row per (peer, pass or variant, dtype), the
    columns that vary only (a suite of one dtype has no dtype column)."""
    lines = _compare.summary(_compare.comparisons(records))
    if not lines:
        return [], []
    what = "pass" if all("pass" in r for r in records if r.get("default")) else "variant"
    cols: list[tuple[str, Callable[[_compare.PeerLine], str]]] = [
        ("peer", lambda line: _compare.PEER_NAMES.get(line.peer, line.peer))
    ]
    if len({line.what for line in lines}) > 1:
        cols.append((what, lambda line: line.what))
    if len({line.dtype for line in lines}) > 1:
        cols.append(("dtype", lambda line: line.dtype))
    cols += [
        ("rows", lambda line: str(line.count)),
        ("median", lambda line: _times(line.median)),
        ("worst", lambda line: _times(line.worst)),
        ("worst at", lambda line: line.worst_at),
    ]
    return [h for h, _ in cols], [[f(line) for _, f in cols] for line in lines]


def peer_notes(records: Sequence[Record], env: dict) -> list[str]:
    """What the table cannot show: rows no peer was measured on, and how to add torch when it
    was wanted but is not installed (``env["peer_note"]``)."""
    notes = []
    if not _compare.comparisons(records):
        notes.append("no peer was measured.")
    missing = _compare.unpeered(records, _compare.comparisons(records))
    if missing and len(missing) < len(_compare.unpeered(records, [])):
        notes.append(f"no peer for {', '.join(missing)}.")
    if env.get("peer_note"):
        notes.append(env["peer_note"])
    return notes


def rich_peer_table(suite: str, records: Sequence[Record], env: dict):
    """The summary for the terminal: a table and its notes, or the notes alone."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    headers, rows = peer_table(records, env)
    parts: list[Any] = []
    if rows:
        table = Table(title=f"{suite}: jaxconv vs its peers", caption=PEER_CAPTION)
        for header in headers:
            left = header in ("peer", "pass", "variant", "dtype", "worst at")
            table.add_column(header, justify="left" if left else "right")
        for row in rows:
            table.add_row(*row)
        parts.append(table)
    parts += [Text(f"{suite}: {note}") for note in peer_notes(records, env)]
    return Group(*parts)


def markdown_peer_table(records: Sequence[Record], env: dict) -> list[str]:
    """The summary's Markdown lines (a heading, the table and its notes)."""
    headers, rows = peer_table(records, env)
    lines = ["## jaxconv vs its peers", ""]
    if rows:
        lax = any(row[0] == _compare.PEER_NAMES["lax"] for row in rows)
        lines += [PEER_EXPLAINED + (" " + LAX_EXPLAINED if lax else ""), ""]
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|" + "---|" * len(headers))
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    notes = [note[:1].upper() + note[1:] for note in peer_notes(records, env)]
    return lines + ([" ".join(notes), ""] if notes else [])


def machine(env: dict) -> str:
    """``cpu-x86_64-amx-2c (Intel(R) Xeon(R) Processor), 2 cores, 2026-11-30``: where and when
    a run was measured, from its environment record (old ones lack jaxconv's device kind)."""
    kind = env.get("jaxconv_device_kind") or env.get("device_kind", "")
    host = env.get("cpu_model") if env.get("platform") == "cpu" else env.get("device_kind")
    where = f"{kind} ({host})" if host and host != kind else str(kind)
    return f"{where}, {env.get('cpu_count', '?')} cores, {str(env.get('date', ''))[:10]}"


def write_plot(path: Path, suite: str, records: list[Record], env: dict) -> bool:
    """Writes :func:`peer_figure` as a PNG; returns False, writing nothing, when no peer was
    measured."""
    fig = peer_figure(suite, records, env)
    if fig is None:
        return False
    import matplotlib.pyplot as plt  # after peer_figure chose the Agg backend

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def peer_figure(suite: str, records: Sequence[Record], env: dict):
    """The peer plot (a matplotlib Figure on the Agg backend; None when no peer was measured):
    per pass (or variant) and dtype, one horizontal bar per row — a conv or model at one batch
    — of jaxconv's speed against the fastest peer on that row (peer time / jaxconv time),
    sorted with the worst on top, coloured by which peer was the fastest, with a line at 1. The
    axis is logarithmic only where the ratios span more than 10×, and then says so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    comps = _compare.comparisons(records)
    best = _compare.best_per_row(comps)
    if not best:
        return None
    panels: dict[tuple[str, str], list[_compare.Comparison]] = {}
    for c in best:
        panels.setdefault((c.what, c.dtype), []).append(c)
    dtypes = {c.dtype for c in best}
    ncols = 1 if len(panels) == 1 else 2
    nrows = -(-len(panels) // ncols)
    names = {key: _compare.labels(rows, keep_layer=False) for key, rows in panels.items()}
    widest = max(len(n) for ns in names.values() for n in ns)
    tallest = max(len(rows) for rows in panels.values())
    ratios = [c.ratio for c in best]
    span = max(ratios) / min(ratios)
    log = span > 10
    width = max(ncols * (4.8 + 0.075 * widest), 7.0)
    height = nrows * (0.26 * tallest + 1.0) + 1.2
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, ((what, dtype), rows) in zip(axes.flat, panels.items()):
        order = sorted(range(len(rows)), key=lambda i: rows[i].ratio)
        shown = [rows[i] for i in order]
        y = list(range(len(shown)))
        ax.barh(y, [c.ratio for c in shown], height=0.7, color=[PEER_COLORS[c.peer] for c in shown])
        ax.set_yticks(y, labels=[names[(what, dtype)][i] for i in order], fontsize=8)
        ax.set_ylim(len(shown) - 0.5, -0.5)  # the worst on top
        ax.axvline(1.0, color="black", linewidth=1)
        for yi, c in zip(y, shown):
            ax.text(
                c.ratio,
                yi,
                f" {_times(c.ratio)}",
                va="center",
                fontsize=7,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.5},
            )
        layers = {c.layer for c in rows}
        title = ", ".join(
            [what]
            + ([dtype] if len(dtypes) > 1 else [])
            + ([rows[0].layer] if len(layers) == 1 and len(rows) > 1 else [])
        )
        median = statistics.median(c.ratio for c in rows)
        ax.set_title(f"{title} — median {_times(median)}", fontsize=10)
        if log:
            ax.set_xscale("log")
            ax.set_xlim(min(min(ratios), 1.0) / 1.25, max(ratios) * 1.6)
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(f"peer time / jaxconv time (log scale: the ratios span {span:.0f}×)")
        else:
            ax.set_xlim(0, max(max(ratios), 1.0) * 1.2)
            ax.set_xlabel("peer time / jaxconv time")
        ax.grid(True, axis="x", alpha=0.3)
    noun = ROW_NOUN.get(suite, "conv")
    fig.suptitle(
        f"{suite}: jaxconv's speed against the fastest peer, per {noun}\n"
        "bar = peer time / jaxconv time: > 1 = jaxconv faster\n" + machine(env),
        fontsize=10,
    )
    measured = [p for p in _compare.PEER_NAMES if any(c.peer == p for c in comps)]
    version = {"torch": " " + str(env.get("torch", "")).split(" ")[0]}
    handles = [
        Patch(color=PEER_COLORS[p], label=_compare.PEER_NAMES[p] + version.get(p, "").rstrip())
        for p in measured
        if any(c.peer == p for c in best)
    ]
    title = "fastest peer" + (
        f" (of {', '.join(_compare.PEER_NAMES[p] for p in measured)})" if len(measured) > 1 else ""
    )
    missing = _compare.unpeered(records, comps)
    fig.legend(
        handles=handles,
        title=title,
        loc="outside lower center",
        ncol=len(handles),
        frameon=False,
        fontsize=8,
        title_fontsize=8,
    )
    if missing:
        fig.text(0.01, 0.01, f"no peer: {', '.join(missing)}", fontsize=7)
    return fig
