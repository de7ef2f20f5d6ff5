"""``jaxconv.autotune``: measure the plans for the convs a function runs, persist the winners.

The winners (one lowering each for the forward, the input gradient and the weight gradient)
are merged into the tuning table for this device kind (:mod:`jaxconv.convolution.tables`), which
:func:`jaxconv.convolution.choose` reads when a conv with ``implementation=None`` is traced.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import jax
import jaxlib
import numpy as np

from jaxconv._check import as_arrays
from jaxconv._device import device_kind
from jaxconv._timing import round_robin
from jaxconv.convolution import tables
from jaxconv.convolution.lowering import ROLES, Plan, Role
from jaxconv.convolution.plan import default_plan, recording
from jaxconv.convolution.registry import LOWERINGS, candidates
from jaxconv.convolution.run import run
from jaxconv.convolution.spec import ConvSpec

__all__ = ["autotune"]

Arrays = tuple[jax.Array, jax.Array, jax.Array]


def _role_function(name: str, role: Role, spec: ConvSpec) -> Callable[..., Any]:
    """What ``role`` costs when lowering ``name`` does it: its forward, or the transpose of its
    forward in ``x`` (input gradient) or in ``w`` (weight gradient), as :func:`run` uses it."""
    fwd = LOWERINGS[name].fwd
    if role == "fwd":
        return lambda x, w, dy: fwd(x, w, spec)
    if role == "dx":
        return lambda x, w, dy: jax.vjp(lambda a: fwd(a, w, spec), x)[1](dy)[0]
    return lambda x, w, dy: jax.vjp(lambda b: fwd(x, b, spec), w)[1](dy)[0]


def _step_function(plan: Plan, spec: ConvSpec) -> Callable[..., Any]:
    """A training step's conv work under ``plan``: forward and both gradients."""

    def fwd_bwd(x, w, dy):
        y, vjp = jax.vjp(lambda a, b: run(plan, a, b, spec), x, w)
        return y, vjp(dy)

    return fwd_bwd


def _compile(fn: Callable[..., Any], args: Arrays) -> Callable[..., Any] | None:
    try:
        return jax.jit(fn).lower(*args).compile()
    except Exception:  # e.g. out of memory: a lowering that cannot compile loses
        return None


def _medians(
    fns: dict[str, Callable[..., Any]], args: Arrays, repeats: int, warmup: int
) -> dict[str, float]:
    """Median seconds of each function that compiled, timed primed round-robin."""
    compiled = {n: c for n, f in fns.items() if (c := _compile(f, args)) is not None}
    runners: dict[str, Callable[[], Any]] = {
        n: functools.partial(c, *args) for n, c in compiled.items()
    }
    timings = round_robin(runners, repeats, warmup)
    return {n: statistics.median(t) for n, t in timings.items()}


def _arrays(spec: ConvSpec, seed: int) -> Arrays:
    rng = np.random.default_rng(seed)
    x, w, dy = (
        jax.numpy.asarray(rng.standard_normal(s), spec.dtype)
        for s in (spec.x_shape, spec.w_shape, spec.out_shape)
    )
    return x, w, dy.astype(spec.out_dtype)


def _tune(
    spec: ConvSpec,
    names: Sequence[str],
    grad: bool,
    repeats: int,
    warmup: int,
    args: Arrays,
    platform: str,
) -> tuple[Plan, dict[str, dict[str, float]]]:
    """The fastest lowering per role; with ``grad``, then the fastest whole step among those
    winners put together and every lowering that does all three roles itself (winners that
    each won alone may not share caches or layouts: GoogLeNet 4d 5×5, a Winograd forward with
    YNNPACK's input gradient took 23.2 ms against 15.1 ms for Eigen throughout)."""
    fallback = default_plan(spec, platform)
    times: dict[str, dict[str, float]] = {}
    for role in ROLES if grad else ("fwd",):
        times[role] = _medians(
            {n: _role_function(n, role, spec) for n in names if role in LOWERINGS[n].roles},
            args,
            repeats,
            warmup,
        )
    chosen = Plan(
        *(
            min(times[r], key=times[r].__getitem__) if times.get(r) else getattr(fallback, r)
            for r in ROLES
        )
    )
    if grad:
        plans = dict.fromkeys(
            [chosen, *(Plan(n, n, n) for n in names if set(ROLES) <= set(LOWERINGS[n].roles))]
        )
        if len(plans) > 1:
            step = _medians(
                {"/".join(p): _step_function(p, spec) for p in plans}, args, repeats, warmup
            )
            times["fwd+bwd"] = step
            if step:
                chosen = Plan(*min(step, key=step.__getitem__).split("/"))
    return chosen, times


def autotune(
    fn: Callable[..., Any] | None = None,
    *args: Any,
    specs: Iterable[ConvSpec] = (),
    grad: bool = True,
    lowerings: Sequence[str] | None = None,
    repeats: int = 5,
    warmup: int = 1,
    path: str | Path | None = None,
    save: bool = True,
    **kwargs: Any,
) -> dict[ConvSpec, Plan]:
    """Times every applicable lowering for each conv ``fn(*args, **kwargs)`` runs; saves the best.

    ``fn`` is traced once (abstractly, with ``jax.disable_jit`` so convs inside jitted inner
    functions are seen too) to collect the spec of every conv whose plan is chosen with
    ``implementation=None``. For each distinct spec, each candidate lowering (those that apply
    and target this platform) is compiled and timed on random data for the forward, the input
    gradient and the weight gradient, candidates interleaved round-robin; the medians decide.
    With ``grad``, the three winners put together are then timed as one forward + backward
    against every lowering that does all three roles itself, and the fastest plan is kept.
    The plans are merged into the table for this device kind, where every conv traced from
    then on finds them (a function traced before for the same shapes keeps its plan until
    ``jax.clear_caches()``; see :mod:`jaxconv.convolution.tables`).

    Args:
      fn: the function to tune for (e.g. a model's loss); None to tune ``specs`` only.
      *args, **kwargs: its arguments (arrays or ``jax.ShapeDtypeStruct``).
      specs: extra :class:`jaxconv.convolution.ConvSpec` to tune.
      grad: tune for training: also time the two gradients, and the forward + backward as a
        whole (the kept plan is the fastest whole step, which may give up a slightly faster
        forward). False tunes the forward alone; the gradients stay the cost model's.
      lowerings: restrict the candidates to these names.
      repeats, warmup: timed and untimed runs per candidate.
      path: the JSON table to merge into (default: this device kind's,
        :func:`jaxconv.convolution.tables.table_path`).
      save: False to measure and return without writing.

    Returns:
      ``{spec: Plan}`` for every conv tuned.

    Examples:
      >>> import jax.numpy as jnp, jaxconv
      >>> def layer(x, w):
      ...     return jaxconv.conv(x, w)
      >>> plans = jaxconv.autotune(layer, jnp.ones((1, 8, 8, 4)), jnp.ones((3, 3, 4, 4)),
      ...                          lowerings=("xla",), repeats=1, warmup=0, save=False)
      >>> [(spec.kernel, plan) for spec, plan in plans.items()]
      [((3, 3), Plan(fwd='xla', dx='xla', dw='xla'))]
    """
    found = [spec.lowered() for spec in specs]
    if fn is not None:
        with recording() as seen, jax.disable_jit():
            jax.eval_shape(lambda *a: fn(*a, **kwargs), *as_arrays(args))
        found += seen
    platform = jax.default_backend()
    kind = device_kind(platform)
    plans: dict[ConvSpec, Plan] = {}
    meta = {"jax": jax.__version__, "jaxlib": jaxlib.__version__}
    for i, spec in enumerate(dict.fromkeys(found)):
        names = [n for n in candidates(spec, platform) if lowerings is None or n in lowerings]
        if not names:
            continue
        chosen, times = _tune(spec, names, grad, repeats, warmup, _arrays(spec, seed=i), platform)
        plans[spec] = chosen
        entry = {
            **chosen._asdict(),
            "ms": {
                role: {n: round(t * 1e3, 4) for n, t in ts.items()}
                for role, ts in times.items()
                if ts
            },
        }
        if save:  # after every conv, so a long tuning that is interrupted keeps what it measured
            tables.save(kind, {spec: entry}, Path(path) if path is not None else None, meta)
    return plans
