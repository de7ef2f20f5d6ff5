"""Checkpoints written before the train package's redesign still load, bit for bit.

``tests/data/ckpt-tiny-sgd-step2`` was written by ``jaxconv.train`` at commit a2b6494 (before
issue 11's redesign): ``--model tiny --optimizer sgd --steps 2 --batch-size 16
--warmup-steps 1 --eval-every 0`` on ``tiny_data()``. Its identity holds the state signature
(every array's path, shape and dtype), so a resume that is not refused proves the parameter
paths are unchanged.
"""

from __future__ import annotations

import json
import os
import shutil

import jax
import numpy as np
from rich.console import Console
from test_train_support import TESTS_DIR, differing, final_tree, register, tiny_data

from jaxconv.train import Checkpoints, TrainConfig, Trainer, state_to_tree, train

FIXTURE = os.path.join(TESTS_DIR, "data", "ckpt-tiny-sgd-step2")


def _config(ckpt_dir, steps: int) -> TrainConfig:
    return TrainConfig(
        model="tiny",
        optimizer="sgd",
        steps=steps,
        batch_size=16,
        warmup_steps=1,
        ckpt_dir=str(ckpt_dir),
        eval_every=0,
        progress=False,
    )


def test_an_old_checkpoint_restores_every_array_bit_for_bit(tmp_path):
    register()
    shutil.copytree(FIXTURE, tmp_path / "ckpt")
    trainer = Trainer(_config(tmp_path / "ckpt", 2), tiny_data())
    with open(tmp_path / "ckpt" / "config.json") as f:
        identity = json.load(f)["identity"]
    assert identity["state"] == trainer.signature  # same paths, shapes and dtypes
    ckpt = Checkpoints(str(tmp_path / "ckpt"), identity)
    step, state, _ = ckpt.restore_latest(trainer.state)
    ckpt.close()
    assert step == 2
    restored = {
        jax.tree_util.keystr(p): np.asarray(v)
        for p, v in jax.tree_util.tree_flatten_with_path(state_to_tree(state))[0]
    }
    assert differing(restored, final_tree(FIXTURE)[1]) == []


def test_an_old_checkpoint_resumes_and_matches_a_fresh_run(tmp_path):
    register()
    shutil.copytree(FIXTURE, tmp_path / "old")
    resumed = train(_config(tmp_path / "old", 3), data=tiny_data(), console=Console(quiet=True))
    assert (resumed.start_step, resumed.step) == (2, 3)  # not refused: the identity matches
    train(_config(tmp_path / "new", 3), data=tiny_data(), console=Console(quiet=True))
    old, new = final_tree(tmp_path / "old")[1], final_tree(tmp_path / "new")[1]
    assert sorted(old) == sorted(new)
    for key in new:  # float tolerance only: the fixture may come from another CPU
        np.testing.assert_allclose(old[key], new[key], rtol=1e-5, atol=1e-6, err_msg=key)
