"""Writing results: JSON (the record), a Markdown table, PNG plots and the terminal table."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

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


def _ratio(key: str) -> Callable[[Record], str]:
    """Formats ``record[key]`` as ``1.23×``, or ``—`` where the record has none."""
    return lambda r: _num(r.get(key), ".2f") + "×" if r.get(key) is not None else "—"


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
        cols.append((label, lambda r: _num(r.get(key), ".2f") + "×"))
    if "speed_vs_torch" in has:
        cols.append(("speed vs torch", _ratio("speed_vs_torch")))
    if "analytic_ratio" in has:
        cols.append(("analytic", lambda r: _num(r.get("analytic_ratio"), ".1f") + "×"))
    if "roofline_fraction" in has:
        cols.append(("% roofline", lambda r: _num(r.get("roofline_fraction", 0) * 100, ".0f")))
    if "ratio_vs_jaxconv" in has:
        cols.append(("peer/jaxconv time", _ratio("ratio_vs_jaxconv")))
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
    lines = [f"# `python -m bench {suite}`", ""]
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
        "so a kernel faster than XLA's own dot (oneDNN's) can pass 100% of "
        "the GEMM peak, which is the best of a few large `jnp.dot`s measured at the "
        "start of the run.",
        "",
    ]
    if plot_name:
        lines += [f"![{suite}]({plot_name})", ""]
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


def _series_label(rec: Record, dtypes: set[str]) -> str:
    return rec["variant"] + (f" ({rec['dtype']})" if len(dtypes) > 1 else "")


def write_plot(path: Path, suite: str, records: list[Record], env: dict) -> bool:
    """Time and speedup plots (Agg backend). Returns False when there is nothing to plot.

    Batch sweep (several batches): time vs batch and speedup vs batch for the first layer, with
    the analytic ratio drawn in; with several layers also a bar chart of measured vs analytic
    speedup per layer at the largest batch. One batch, several layers: grouped bars per layer.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not records:
        return False
    layers = list(dict.fromkeys(r.get("layer", "") for r in records))
    batches = sorted({r["batch"] for r in records})
    dtypes = {r["dtype"] for r in records}
    key = speedup_key(records)
    sweep = len(batches) > 1
    panels = 1 + bool(key) + bool(key and sweep and len(layers) > 1)
    fig, axes = plt.subplots(1, panels, figsize=(6.4 * panels, 4.8), squeeze=False)
    axes = axes[0]
    title = f"{suite} — {env.get('device_kind', '')}, {env.get('cpu_count', '')} cores"
    fig.suptitle(title + f"  ({env.get('date', '')[:10]})", fontsize=11)
    if sweep:
        _plot_sweep(axes, records, layers[0], dtypes, key)
        if panels == 3:
            _plot_layer_bars(axes[2], records, layers, max(batches), key)
    else:
        _plot_layers(axes, records, layers, dtypes, key)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _plot_sweep(axes, records, layer, dtypes, key) -> None:
    rows = [r for r in records if r.get("layer", "") == layer]
    series: dict[str, list[Record]] = {}
    for rec in rows:
        series.setdefault(_series_label(rec, dtypes), []).append(rec)
    color = {label: f"C{i % 10}" for i, label in enumerate(series)}  # same colour in each panel
    ax = axes[0]
    for label, recs in series.items():
        recs = sorted(recs, key=lambda r: r["batch"])
        x = [r["batch"] for r in recs]
        ax.plot(
            x,
            [r["median_s"] * 1e3 for r in recs],
            marker="o",
            label=label,
            color=color[label],
            linestyle="--" if recs[0].get("peer") else "-",
        )
        ax.fill_between(
            x,
            [r["min_s"] * 1e3 for r in recs],
            [r["max_s"] * 1e3 for r in recs],
            color=color[label],
            alpha=0.1,
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="batch",
        ylabel="time per call (ms; median, band = min–max)",
        title=f"time vs batch{' — ' + layer if layer else ''}",
    )
    ax.set_xticks(
        sorted({r["batch"] for r in rows}),
        labels=[str(b) for b in sorted({r["batch"] for r in rows})],
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if not key:
        return
    ax = axes[1]
    for label, recs in series.items():
        recs = sorted(
            (r for r in recs if r.get(key) is not None and not r.get("info")),
            key=lambda r: r["batch"],
        )
        if not recs or all(math.isclose(r[key], 1.0) for r in recs):
            continue  # the baseline itself
        ax.plot(
            [r["batch"] for r in recs],
            [r[key] for r in recs],
            marker="o",
            label=label,
            color=color[label],
            linestyle="--" if recs[0].get("peer") else "-",
        )
    ratios = sorted(
        {
            round(r["analytic_ratio"], 3)
            for r in rows
            if r.get("analytic_ratio") not in (None, 1.0) and not r.get("info")
        }
    )
    for ratio in ratios:
        ax.axhline(ratio, color="black", linewidth=1.2, label=f"analytic {ratio:.1f}×")
        ax.axhline(
            0.9 * ratio,
            color="gray",
            linewidth=1,
            linestyle=":",
            label=f"0.9 × analytic = {0.9 * ratio:.1f}×",
        )
    ax.set(
        xscale="log",
        xlabel="batch",
        ylabel="speedup (×)",
        title=key.replace("_", " ") + (f" — {layer}" if layer else ""),
    )
    ax.set_xticks(
        sorted({r["batch"] for r in rows}),
        labels=[str(b) for b in sorted({r["batch"] for r in rows})],
    )
    # headroom above the highest line, where the legend goes
    shown = [r[key] for r in rows if r.get(key) is not None and not r.get("info")]
    ax.set_ylim(0, 1.6 * max([*ratios, *shown]))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper left")


def _plot_layer_bars(ax, records, layers, batch, key) -> None:
    import numpy as np

    rows = [
        r
        for r in records
        if r["batch"] == batch and r["default"] and r.get(key) and not math.isclose(r[key], 1.0)
    ]
    measured = {r.get("layer", ""): r[key] for r in rows}
    analytic = {r.get("layer", ""): r.get("analytic_ratio") for r in rows}
    names = [n for n in layers if n in measured]
    x = np.arange(len(names))
    ax.bar(x - 0.2, [measured[n] for n in names], 0.4, label="measured (default path)")
    ax.bar(x + 0.2, [analytic[n] or 0 for n in names], 0.4, label="analytic (MACs)")
    ax.set_xticks(x, labels=names, rotation=45, ha="right", fontsize=8)
    ax.set(ylabel="speedup (×)", title=f"measured vs analytic per layer, batch {batch}")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def _plot_layers(axes, records, layers, dtypes, key) -> None:
    import numpy as np

    labels = list(dict.fromkeys(_series_label(r, dtypes) for r in records))
    color = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    x = np.arange(len(layers))
    rate = all(r.get("images_per_s") for r in records)  # whole models: images/s reads better
    first = "images_per_s" if rate else "median_s"
    for panel, field in enumerate((first, key)):
        if field is None or panel >= len(axes):
            continue
        shown = []
        for label in labels:
            by_layer = {r.get("layer", ""): r for r in records if _series_label(r, dtypes) == label}
            values = [by_layer[n].get(field) if n in by_layer else None for n in layers]
            y = [np.nan if v is None else v * (1e3 if field == "median_s" else 1) for v in values]
            if panel == 1 and all(np.isnan(v) or math.isclose(v, 1.0) for v in y):
                continue  # the baseline itself
            shown.append((label, y))
        width = 0.8 / max(len(shown), 1)
        for i, (label, y) in enumerate(shown):
            axes[panel].bar(
                x + (i - (len(shown) - 1) / 2) * width, y, width, label=label, color=color[label]
            )
    c_out = {r.get("layer", ""): r.get("c_out") for r in records}
    layers = [f"{n} →{c_out[n]}" if c_out.get(n) else n for n in layers]
    batch = records[0]["batch"]
    if rate:
        axes[0].set(
            yscale="log", ylabel="images/s (median time)", title=f"throughput, batch {batch}"
        )
    else:
        axes[0].set(
            yscale="log",
            ylabel="time per call (ms, median)",
            title=f"time per layer, batch {batch}",
        )
    few = len(layers) <= 6
    if key and len(axes) > 1:
        axes[1].axhline(1.0, color="black", linewidth=1)
        axes[1].set(ylabel="speedup (×)", title=key.replace("_", " ") + f", batch {batch}")
    for ax in axes[: 1 + bool(key)]:
        ax.set_xticks(
            x,
            labels=layers,
            rotation=0 if few else 60,
            ha="center" if few else "right",
            fontsize=9 if few else 7,
        )
        ax.grid(True, axis="y", alpha=0.3)
        if len(labels) > 3:  # leave headroom so the legend sits above the bars
            low, high = ax.get_ylim()
            ax.set_ylim(low, high * 4 if ax.get_yscale() == "log" else high * 1.4)
        ax.legend(fontsize=7, ncol=2 if len(labels) > 3 else 1, loc="upper left")
