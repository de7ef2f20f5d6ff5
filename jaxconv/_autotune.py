"""``jaxconv.autotune``: measure the lowerings for the convs a function runs, persist the winners.

The winners (one lowering each for the forward, the input gradient and the weight gradient)
go to a JSON table per device kind (see :mod:`jaxconv.kernels._tables`), which every later
``jaxconv.conv`` with ``implementation=None`` consults when it is traced.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import jax
import jaxlib
import numpy as np

from jaxconv import kernels
from jaxconv.kernels import _tables
from jaxconv.kernels._spec import ConvSpec

__all__ = ["autotune"]


def _shapes(spec: ConvSpec) -> tuple[tuple[int, ...], tuple[int, ...]]:
    w_in = spec.in_channels // spec.groups
    if spec.channels_last:
        return ((spec.batch, *spec.in_spatial, spec.in_channels),
                (*spec.kernel, w_in, spec.out_channels))
    return ((spec.batch, spec.in_channels, *spec.in_spatial),
            (spec.out_channels, w_in, *spec.kernel))


def _role_functions(name: str, spec: ConvSpec) -> dict[str, Callable]:
    conv = kernels.get(name).conv
    return {
        "fwd": lambda x, w, dy: conv(x, w, spec),
        "dx": lambda x, w, dy: jax.vjp(lambda a: conv(a, w, spec), x)[1](dy)[0],
        "dw": lambda x, w, dy: jax.vjp(lambda b: conv(x, b, spec), w)[1](dy)[0],
    }


def _round_robin(runners: dict[str, Callable], args: tuple, repeats: int,
                 warmup: int) -> dict[str, float]:
    """Median seconds per runner, interleaved round-robin, each timed call right after an untimed
    one of the same runner (see ``bench._harness.round_robin``)."""
    samples: dict[str, list[float]] = {n: [] for n in runners}
    for i in range(warmup + repeats if runners else 0):
        order = list(runners)
        order = order[i % len(order):] + order[: i % len(order)]
        for name in order:
            if i >= warmup:  # primed: timed right after itself, not after a neighbour
                jax.block_until_ready(runners[name](*args))
            start = time.perf_counter()
            jax.block_until_ready(runners[name](*args))
            if i >= warmup:
                samples[name].append(time.perf_counter() - start)
    return {n: statistics.median(s) for n, s in samples.items()}


def _compile(fn: Callable, args: tuple) -> Callable | None:
    try:
        return jax.jit(fn).lower(*args).compile()
    except Exception:  # e.g. out of memory: a lowering that cannot compile loses
        return None


def _arrays(spec: ConvSpec, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    x_shape, w_shape = _shapes(spec)
    x, w, dy = (jax.numpy.asarray(rng.standard_normal(s), spec.dtype)
                for s in (x_shape, w_shape, spec.out_shape))
    return x, w, dy.astype(spec.out_dtype)


def _measure(spec: ConvSpec, names: Sequence[str], roles: Sequence[str], repeats: int,
             warmup: int, args: tuple) -> dict[str, dict[str, float]]:
    """Median seconds per (role, lowering); a role is timed only for the lowerings that compute
    it themselves."""
    times: dict[str, dict[str, float]] = {}
    for role in roles:
        runners = {name: _compile(_role_functions(name, spec)[role], args) for name in names
                   if role in kernels.get(name).roles}
        times[role] = _round_robin({n: c for n, c in runners.items() if c is not None}, args,
                                   repeats, warmup)
    return times


def _whole_step(spec: ConvSpec, chosen: kernels.Plan, names: Sequence[str], repeats: int,
                warmup: int, args: tuple) -> tuple[kernels.Plan, dict[str, float]]:
    """The per-role winners put together can lose to one lowering doing all three roles (a
    forward and a gradient that each won alone may not share caches or layouts: GoogLeNet 4d
    5×5, Winograd forward + YNNPACK input gradient 23.2 ms vs 15.1 ms for Eigen throughout).
    Times forward + both gradients of ``chosen`` and of every lowering that computes all roles;
    returns the fastest plan and the times by plan."""
    plans = dict.fromkeys([chosen] + [kernels.Plan(n, n, n) for n in names
                                      if set(_tables.ROLES) <= set(kernels.get(n).roles)])
    if len(plans) == 1:
        return chosen, {}

    def step(plan: kernels.Plan) -> Callable:
        conv = kernels.for_plan(plan).conv

        def fwd_bwd(x, w, dy):
            y, vjp = jax.vjp(lambda a, b: conv(a, b, spec), x, w)
            return y, vjp(dy)

        return fwd_bwd

    runners = {"/".join(p): _compile(step(p), args) for p in plans}
    times = _round_robin({k: c for k, c in runners.items() if c is not None}, args, repeats,
                         warmup)
    if not times:
        return chosen, {}
    best = min(times, key=times.get)
    return kernels.Plan(*best.split("/")), times


def _collect(fn: Callable, args: tuple, kwargs: dict) -> list[ConvSpec]:
    with kernels.recording() as seen, jax.disable_jit():
        jax.eval_shape(lambda *a: fn(*a, **kwargs), *args)
    return list(dict.fromkeys(seen))


def autotune(
    fn: Callable | None = None,
    *args: Any,
    specs: Iterable[ConvSpec] = (),
    grad: bool = True,
    lowerings: Sequence[str] | None = None,
    repeats: int = 5,
    warmup: int = 1,
    path: str | Path | None = None,
    save: bool = True,
    **kwargs: Any,
) -> dict[str, kernels.Plan]:
    """Times every applicable lowering for each conv ``fn(*args, **kwargs)`` runs; saves the best.

    ``fn`` is traced once (abstractly, with ``jax.disable_jit`` so convs inside jitted inner
    functions are seen too) to collect the spec of every ``jaxconv.conv`` that has
    ``implementation=None``. For each distinct spec, each candidate lowering (those that apply
    and target this platform) is compiled and timed on random data for the forward, the input
    gradient and the weight gradient, candidates interleaved round-robin; the medians decide.
    With ``grad``, the three winners put together are then timed as one forward + backward
    against every lowering that does all three roles itself, and the fastest plan is kept.
    The plans are merged into the table for this device kind and used by every conv traced
    afterwards (a function jitted before keeps its compiled choice until it is retraced).

    Args:
      fn: the function to tune for (e.g. a model's loss); None to tune ``specs`` only.
      *args, **kwargs: its arguments (arrays or ``jax.ShapeDtypeStruct``).
      specs: extra :class:`jaxconv.kernels.ConvSpec` to tune.
      grad: tune for training: also time the two gradients, and the forward + backward as a
        whole (the kept plan is the fastest whole step, which may give up a slightly faster
        forward). False tunes the forward alone; the gradients stay the cost model's.
      lowerings: restrict the candidates to these names.
      repeats, warmup: timed and untimed runs per candidate.
      path: the JSON file to merge into (default: ``$JAXCONV_CACHE_DIR/<device-kind>.json``,
        see :func:`jaxconv.kernels._tables.cache_dir`).
      save: False to measure and return without writing.

    Returns:
      ``{spec_key: Plan}`` for every conv tuned.

    Examples:
      >>> import jax.numpy as jnp, jaxconv
      >>> def layer(x, w):
      ...     return jaxconv.conv(x, w)
      >>> plans = jaxconv.autotune(layer, jnp.ones((1, 8, 8, 4)), jnp.ones((3, 3, 4, 4)),
      ...                          lowerings=("xla", "xla_eigen"), repeats=1, warmup=0,
      ...                          save=False)
      >>> [(key.split()[0], sorted(plan._fields)) for key, plan in plans.items()]
      [('2d', ['dw', 'dx', 'fwd'])]
    """
    found = list(specs)
    if fn is not None:
        found += _collect(fn, args, kwargs)
    platform = jax.default_backend()
    kind = kernels.device_kind(platform)
    roles = _tables.ROLES if grad else ("fwd",)
    plans: dict[str, kernels.Plan] = {}
    meta = {"jax": jax.__version__, "jaxlib": jaxlib.__version__}
    for i, spec in enumerate(dict.fromkeys(found)):
        names = [n for n in kernels.candidates(spec, platform)
                 if lowerings is None or n in lowerings]
        if not names:
            continue
        args = _arrays(spec, seed=i)
        times = _measure(spec, names, roles, repeats, warmup, args)
        fallback = kernels.default_plan(spec, platform)
        chosen = kernels.Plan(**{role: min(times[role], key=times[role].get) if times.get(role)
                                 else getattr(fallback, role) for role in _tables.ROLES})
        if grad:
            chosen, times["fwd+bwd"] = _whole_step(spec, chosen, names, repeats, warmup, args)
        key = _tables.spec_key(spec)
        plans[key] = chosen
        entry = {**chosen._asdict(), "ms": {role: {n: round(t * 1e3, 4) for n, t in ts.items()}
                                            for role, ts in times.items() if ts}}
        if save:  # after every conv, so a long tuning that is interrupted keeps what it measured
            _tables.save(kind, {key: entry}, path, meta=meta)
    return plans
