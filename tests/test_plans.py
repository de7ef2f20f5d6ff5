"""The plan every bench conv gets, pinned: a refactor must not change which lowering runs.

``tests/data/plans.json`` lists, for every conv the bench suites and models run (float32), the
cost model's plan on a CPU with the oneDNN extension, on a CPU without it, and on a GPU. It was
written before the house move (issue 24) and is the "before" of its explain listing; the test
recomputes every entry with today's code. Regenerate only on purpose:
``python tests/test_plans.py --write``.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import pytest

LISTING = pathlib.Path(__file__).parent / "data" / "plans.json"


def _model_specs(seen_by: dict) -> None:
    import optax  # noqa: F401  (the model suite's step imports it)
    from flax import nnx

    from bench.suites import model as model_suite

    for case in model_suite.CASES:
        model = nnx.eval_shape(lambda case=case: model_suite._build(case, "float32"))
        model.train()
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        x = jax.ShapeDtypeStruct((8, case.size, case.size, 3), jnp.float32)

        def loss(params, rest, x, graphdef=graphdef):
            out = nnx.merge(graphdef, params, rest)(x)
            out = out[0] if isinstance(out, tuple) else getattr(out, "logits", out)
            return jnp.sum(out)

        with _recording() as seen:
            jax.eval_shape(loss, params, rest, x)  # plans are chosen in the forward
        for spec in seen:
            seen_by.setdefault(spec, set()).add(f"model.{case.name}")


def _recording():
    import jaxconv

    return jaxconv.convolution.recording()


def specs() -> dict:
    """Every bench conv's lowered spec → the names of what runs it."""
    import jaxconv
    from bench.suites import groups, lowering, untuned
    from bench.suites._googlenet import BY_NAME, SEED

    seen_by: dict = {}
    for s in (*lowering.shapes(), *lowering.TINY):
        seen_by.setdefault(lowering._spec(s, "float32").lowered(), set()).add(s.name)
    for s in (*groups.SHAPES, *groups.TINY):
        seen_by.setdefault(groups._spec(s, "float32").lowered(), set()).add(s.name)
    for s in (*untuned.SHAPES, *untuned.TINY):
        for batch in untuned.BATCHES:
            spec = jaxconv.convolution.conv_spec(
                jax.ShapeDtypeStruct(s.input_shape(batch), jnp.float32),
                jax.ShapeDtypeStruct(s.kernel_shape, jnp.float32),
                **s.conv_args(),
            )
            seen_by.setdefault(spec.lowered(), set()).add(s.name)
    block = BY_NAME[SEED]
    x = jax.ShapeDtypeStruct((32, block.size, block.size, block.c_in), jnp.float32)
    w_r = jax.ShapeDtypeStruct((block.c_in, block.c5x5_reduce), jnp.float32)
    w_s = jax.ShapeDtypeStruct((5, 5, block.c5x5_reduce, block.c5x5), jnp.float32)
    with _recording() as seen:
        jax.eval_shape(jax.grad(lambda *a: jnp.sum(jaxconv.bottleneck(*a)), (0, 1, 2)), x, w_r, w_s)
    for spec in seen:
        seen_by.setdefault(spec, set()).add("bottleneck.seed")
    _model_specs(seen_by)
    return seen_by


def _plans(spec) -> dict:
    import jaxconv

    kernels = jaxconv.convolution
    out = {
        "cpu_without_onednn": list(kernels.default_plan(spec, "cpu", without=("onednn",))),
        "gpu": list(kernels.default_plan(spec, "gpu")),
        "onednn": kernels.available(spec)["onednn"],
    }
    if out["onednn"] is None or "not loaded" not in str(out["onednn"]):
        out["cpu"] = list(kernels.default_plan(spec, "cpu"))
    return out


def listing() -> list[dict]:
    rows = []
    for spec, names in specs().items():
        rows.append({"spec": dataclasses.asdict(spec), "by": sorted(names), **_plans(spec)})
    rows.sort(key=lambda r: json.dumps(r["spec"], sort_keys=True))
    return rows


def _spec(fields: dict):
    import jaxconv

    tuples = {
        k: (tuple(map(tuple, v)) if k in ("padding", "pre_pad") else tuple(v))
        for k, v in fields.items()
        if isinstance(v, list)
    }
    return jaxconv.convolution.ConvSpec(**{**fields, **tuples})


def test_every_bench_conv_keeps_its_plan():
    from jaxconv.convolution.lowerings import onednn

    loaded = onednn.unavailable() is None
    rows = json.loads(LISTING.read_text())
    assert rows, "empty listing"
    for row in rows:
        spec = _spec(row["spec"])
        now = _plans(spec)
        where = f"{', '.join(row['by'])}: {spec}"
        assert now["cpu_without_onednn"] == row["cpu_without_onednn"], where
        assert now["gpu"] == row["gpu"], where
        if loaded and "cpu" in row:
            assert now["onednn"] == row["onednn"], where
            assert now["cpu"] == row["cpu"], where


def test_listing_covers_every_bench_conv():
    pytest.importorskip("flax")
    pinned = {json.dumps(r["spec"], sort_keys=True) for r in json.loads(LISTING.read_text())}
    for spec, names in specs().items():
        key = json.dumps(dataclasses.asdict(spec), sort_keys=True)
        assert key in pinned, f"{sorted(names)}: {spec} is not in {LISTING.name}"


if __name__ == "__main__" and "--write" in sys.argv:
    rows = ",\n".join(json.dumps(row, sort_keys=True) for row in listing())
    LISTING.write_text(f"[\n{rows}\n]\n")  # one conv per line
    print(f"wrote {LISTING}")
