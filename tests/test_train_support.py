"""Shared pieces of the ``jaxconv.train`` tests (no tests here).

A tiny model with every kind of state the checkpoints must carry — parameters, BatchNorm
statistics and a dropout RNG stream — and helpers to run the CLI in a subprocess with it.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import jax
import numpy as np
from flax import nnx

from jaxconv.train import Checkpoints, register_model, synthetic_dataset

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(TESTS_DIR)


class Tiny(nnx.Module):
    """conv 3×3/2 → BatchNorm → ReLU → dropout → global mean → dense."""

    def __init__(self, num_classes: int, rngs: nnx.Rngs):
        self.conv = nnx.Conv(3, 8, (3, 3), strides=2, rngs=rngs)
        self.bn = nnx.BatchNorm(8, rngs=rngs)
        self.drop = nnx.Dropout(0.25, rngs=rngs)
        self.head = nnx.Linear(8, num_classes, rngs=rngs)

    def __call__(self, x):
        h = nnx.relu(self.bn(self.conv(x)))
        return self.head(self.drop(h.mean(axis=(1, 2))))


def register() -> None:
    """Makes ``--model tiny`` available."""
    register_model("tiny", Tiny)


@functools.cache
def tiny_data(train_size: int = 96, test_size: int = 24):
    """A small synthetic dataset (cached: generating it is the slow part)."""
    return synthetic_dataset(train_size, test_size, seed=0)


def final_tree(ckpt_dir: str) -> tuple[int, dict[str, np.ndarray]]:
    """The newest checkpoint in ``ckpt_dir`` as ``(step, {path: array})``, read raw."""
    import orbax.checkpoint as ocp

    manager = ocp.CheckpointManager(os.path.abspath(ckpt_dir), item_names=("state", "meta"))
    try:
        step = manager.latest_step()
        tree = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    finally:
        manager.close()
    flat = jax.tree_util.tree_flatten_with_path(tree["state"])[0]
    return step, {jax.tree_util.keystr(p): np.asarray(v) for p, v in flat}


def differing(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> list[str]:
    """Paths whose arrays are not bit-for-bit equal (or present on one side only)."""
    keys = sorted(set(a) | set(b))
    return [
        k
        for k in keys
        if k not in a
        or k not in b
        or a[k].dtype != b[k].dtype
        or a[k].shape != b[k].shape
        or a[k].tobytes() != b[k].tobytes()
    ]


def checkpoints(ckpt_dir: str, identity: dict | None = None) -> Checkpoints:
    return Checkpoints(ckpt_dir, identity or {"model": "tiny"}, keep=5)


_CLI = (
    "import sys; sys.path.insert(0, {tests!r}); import test_train_support as s; "
    "s.register(); from jaxconv.train import main; raise SystemExit(main(sys.argv[1:]))"
)


def cli_command(*args: str, tiny: bool = True) -> list[str]:
    """``python -m jaxconv.train ARGS`` — with ``--model tiny`` registered when ``tiny``."""
    if tiny:
        return [sys.executable, "-c", _CLI.format(tests=TESTS_DIR), *args]
    return [sys.executable, "-m", "jaxconv.train", *args]


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=REPO_DIR, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # the device count is the test's choice
    env.update(extra)
    return env


def run_cli(
    *args: str, tiny: bool = True, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli_command(*args, tiny=tiny),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(**env),
        cwd=REPO_DIR,
    )
