"""``python -m bench lowering --quick``: every candidate lowering per shape and pass, the default
marked once, ratios against plain lax, files written."""

from __future__ import annotations

import json

import pytest

import jaxconv

bench_main = pytest.importorskip("bench.__main__")


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    out = tmp_path_factory.mktemp("lowering")
    options = bench_main.parse_args(
        [
            "lowering",
            "--quick",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--peers",
            "none",
            "--no-plots",
            "--out",
            str(out),
        ]
    )
    return out, bench_main.run(options)["lowering"]


def test_every_candidate_is_timed_and_the_default_marked_once(records):
    from bench.suites import lowering

    _, recs = records
    for shape in lowering.TINY:
        spec = lowering._spec(shape, "float32")
        names = set(jaxconv.convolution.candidates(spec))
        for pass_name in lowering.PASSES:
            rows = [r for r in recs if r["layer"] == shape.name and r["pass"] == pass_name]
            timed = {r["variant"].rsplit(" ", 1)[0] for r in rows}
            assert names <= timed <= names | {"default"}
            assert sum(r["default"] for r in rows) == 1
            lax_row = next(r for r in rows if r["variant"] == f"xla {pass_name}")
            assert lax_row["speedup_vs_lax"] == 1.0
            assert all(r["macs"] == rows[0]["macs"] for r in rows)


def test_files_and_notes(records):
    out, recs = records
    payload = json.loads((out / "lowering.json").read_text())
    assert payload["suite"] == "lowering" and len(payload["records"]) == len(recs)
    assert any(n.startswith("fastest lowering per (conv, pass)") for n in payload["notes"])
    assert "| layer |" in (out / "lowering.md").read_text()
