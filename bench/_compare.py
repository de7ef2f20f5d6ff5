"""jaxconv against its peers, read from a suite's records: every comparison, the summary table
(median, worst and where it is worst) and the fastest peer per row, which the plot draws.

A peer is another way to compute the same thing: PyTorch (``--peers torch``: records with a
``peer`` field) or plain lax (``lax.conv_general_dilated``, what JAX code runs without jaxconv:
the ``speedup_vs_lax`` of jaxconv's default records in the suites that time it). Only jaxconv's
default path is compared (``default`` records, not ``info``): what a user gets. A ratio is
always peer time / jaxconv time, so > 1 means jaxconv is faster.

A row is one thing compared: a conv or model (``layer``), a pass (``fwd``; the variant where
the records have no pass, e.g. ``inference``), a dtype and a batch. Old result files lack some
fields (``ratio_vs_jaxconv`` on the model and inception suites' peer records): the peer's
jaxconv counterpart is then found by its row and MACs.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]

#: The peers, in the order tables list them, with the name a reader sees.
PEER_NAMES = {
    "torch": "torch",
    "torch-compile": "torch.compile",
    "openvino": "OpenVINO",
    "onnxruntime": "ONNX Runtime",
    "lax": "plain lax",
}
#: Keys of a default record that hold plain lax's time / jaxconv's (conv1x1 names its baseline
#: ``lax.conv``).
LAX_KEYS = ("speedup_vs_lax", "speedup_vs_lax_conv")


@dataclass(frozen=True)
class Comparison:
    """jaxconv's default against one peer on one row; ``ratio`` = peer time / jaxconv time."""

    peer: str
    layer: str
    what: str
    dtype: str
    batch: int
    ratio: float

    @property
    def row(self) -> tuple[str, str, str, int]:
        return (self.layer, self.what, self.dtype, self.batch)


@dataclass(frozen=True)
class PeerLine:
    """One line of the summary table: jaxconv against ``peer`` on ``count`` rows of one pass (or
    variant) and dtype; ``worst`` is the lowest ratio, on the row ``worst_at``."""

    peer: str
    what: str
    dtype: str
    count: int
    median: float
    worst: float
    worst_at: str


def _what(rec: Record) -> str:
    return str(rec.get("pass") or rec["variant"])


def _row_key(rec: Record) -> tuple:
    return (rec.get("layer", ""), rec.get("pass"), rec["dtype"], rec["batch"])


def _partner(peer_rec: Record, candidates: Sequence[Record]) -> Record | None:
    """The jaxconv record a peer's record was timed against: same row and MACs (the bottleneck
    suite's torch direct 5×5 against jaxconv's direct one, its bottleneck against the default),
    and where that leaves several, the variant the peer's name ends with."""
    same = [r for r in candidates if r["macs"] == peer_rec["macs"]]
    if peer_rec.get("base"):  # the variant it was timed against, where the record says
        same = [r for r in same if r["variant"] == peer_rec["base"]]
    if len(same) > 1:
        twin = peer_rec["variant"].removeprefix(f"{peer_rec['peer']} ")
        same = [r for r in same if r["variant"] == twin]
    return same[0] if len(same) == 1 else None


def _comparison(peer: str, own: Record, ratio: float) -> Comparison:
    return Comparison(
        peer, str(own.get("layer", "")), _what(own), own["dtype"], int(own["batch"]), float(ratio)
    )


def comparisons(records: Iterable[Record]) -> list[Comparison]:
    """Every (peer, row) comparison the records hold, peers in :data:`PEER_NAMES` order.

    >>> own = {"variant": "einsum", "default": True, "layer": "a", "dtype": "float32",
    ...        "batch": 8, "macs": 10, "median_s": 1.0, "speedup_vs_lax_conv": 2.5}
    >>> peer = dict(own, variant="torch conv2d", default=False, peer="torch", median_s=0.8)
    >>> [(c.peer, c.layer, c.ratio) for c in comparisons([own, peer])]
    [('torch', 'a', 0.8), ('lax', 'a', 2.5)]
    """
    records = list(records)
    own = [r for r in records if r.get("default") and not r.get("peer") and not r.get("info")]
    by_row: dict[tuple, list[Record]] = {}
    for rec in own:
        by_row.setdefault(_row_key(rec), []).append(rec)
    out = []
    for rec in records:
        if not rec.get("peer"):
            continue
        partner = _partner(rec, by_row.get(_row_key(rec), ()))
        if partner is not None:
            ratio = rec.get("ratio_vs_jaxconv")
            if ratio is None:
                ratio = rec["median_s"] / partner["median_s"]
            out.append(_comparison(rec["peer"], partner, ratio))
    for rec in own:
        out += [_comparison("lax", rec, rec[k]) for k in LAX_KEYS if rec.get(k) is not None]
    order = list(PEER_NAMES)
    return sorted(out, key=lambda c: order.index(c.peer) if c.peer in order else len(order))


def labels(rows: Sequence[Comparison], *, keep_layer: bool = True) -> list[str]:
    """A name for each of ``rows`` (one group of a table or a plot panel): the layer, with
    ``, batch N`` where the layer appears at several batches. ``keep_layer=False`` leaves out a
    layer common to every row (the plot puts it in the panel's title).

    >>> rows = [Comparison("torch", "4a", "fwd", "float32", n, 1.0) for n in (1, 8)]
    >>> labels(rows), labels(rows, keep_layer=False)
    (['4a, batch 1', '4a, batch 8'], ['batch 1', 'batch 8'])
    """
    batches: dict[str, set[int]] = {}
    for c in rows:
        batches.setdefault(c.layer, set()).add(c.batch)
    drop_layer = not keep_layer and len(batches) == 1
    out = []
    for c in rows:
        parts = [] if drop_layer and len(batches[c.layer]) > 1 else [c.layer]
        if len(batches[c.layer]) > 1:
            parts.append(f"batch {c.batch}")
        out.append(", ".join(p for p in parts if p) or c.layer)
    return out


def _groups(comps: Iterable[Comparison], key) -> dict[tuple, list[Comparison]]:
    groups: dict[tuple, list[Comparison]] = {}
    for c in comps:
        groups.setdefault(key(c), []).append(c)
    return groups


def summary(comps: Iterable[Comparison]) -> list[PeerLine]:
    """One :class:`PeerLine` per (peer, pass or variant, dtype): the median ratio, the worst
    (lowest) and its row.

    >>> comps = [Comparison("torch", n, "fwd", "float32", 8, q) for n, q in
    ...          (("a", 1.2), ("b", 0.7), ("c", 1.0))]
    >>> summary(comps)
    [PeerLine(peer='torch', what='fwd', dtype='float32', count=3, median=1.0, worst=0.7,
              worst_at='b')]
    """
    lines = []
    for (peer, what, dtype), rows in _groups(comps, lambda c: (c.peer, c.what, c.dtype)).items():
        names = labels(rows)
        worst = min(range(len(rows)), key=lambda i: rows[i].ratio)
        ratios = [c.ratio for c in rows]
        lines.append(
            PeerLine(
                peer,
                what,
                dtype,
                len(rows),
                statistics.median(ratios),
                ratios[worst],
                names[worst],
            )
        )
    return lines


def best_per_row(comps: Iterable[Comparison]) -> list[Comparison]:
    """For each row, the comparison with its fastest peer (the lowest ratio), rows in their
    first-seen order.

    >>> comps = [Comparison("torch", "a", "fwd", "float32", 8, 1.1),
    ...          Comparison("lax", "a", "fwd", "float32", 8, 2.0)]
    >>> [(c.peer, c.ratio) for c in best_per_row(comps)]
    [('torch', 1.1)]
    """
    return [min(rows, key=lambda c: c.ratio) for rows in _groups(comps, lambda c: c.row).values()]


def unpeered(records: Iterable[Record], comps: Iterable[Comparison]) -> list[str]:
    """The layers of jaxconv's default records that no peer was compared with (the model
    suite's GoogLeNet and NiN, which have no torch transcription)."""
    compared = {c.layer for c in comps}
    layers = (
        str(r.get("layer", ""))
        for r in records
        if r.get("default") and not r.get("peer") and not r.get("info")
    )
    return [name for name in dict.fromkeys(layers) if name not in compared]
