"""Checkpoints: round trips, keep-N, partial and unreadable saves, refusing another run's."""

from __future__ import annotations

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_train_support import Tiny, checkpoints

from jaxconv.train import (
    CheckpointMismatchError,
    PartialCheckpointWarning,
    state_signature,
    state_to_tree,
    tree_to_state,
)


@pytest.fixture(scope="module")
def state():
    model = Tiny(10, nnx.Rngs(0))
    return nnx.state(model)


def _equal(a, b) -> bool:
    def raw(x):
        return np.asarray(
            jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x
        )

    return all(
        raw(x).tobytes() == raw(y).tobytes() for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def _bump(state, delta: float):
    return jax.tree.map(
        lambda x: (
            x if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x + jnp.asarray(delta, x.dtype)
        ),
        state,
    )


def test_tree_round_trip_keeps_keys_and_every_array(state):
    tree = state_to_tree(state)
    assert set(tree) == {"conv", "bn", "drop", "head"}
    assert tree["drop"]["rngs"]["key"].dtype == jnp.uint32  # raw key data, orbax-friendly
    back = tree_to_state(state, tree)
    assert jax.tree.structure(back) == jax.tree.structure(state)
    assert _equal(back, state)
    assert jnp.issubdtype(back["drop"]["rngs"]["key"].get_value().dtype, jax.dtypes.prng_key)


def test_tree_to_state_rejects_other_shapes(state):
    tree = state_to_tree(state)
    tree["head"]["kernel"] = jnp.zeros((8, 3))
    with pytest.raises(
        CheckpointMismatchError,
        match=r"head/kernel has shape \(8, 3\), the "
        r"model's \(8, 10\)",
    ):
        tree_to_state(state, tree)
    del tree["bn"]
    with pytest.raises(CheckpointMismatchError, match=r"the checkpoint has no array at bn/"):
        tree_to_state(state, tree)
    assert state_signature(state) != state_signature(nnx.state(Tiny(3, nnx.Rngs(0))))


def test_save_restore_and_keep_last_n(tmp_path, state):
    ckpt = checkpoints(str(tmp_path))
    for step in range(1, 8):
        ckpt.save(step, _bump(state, step), config={"steps": 7})
    ckpt.wait()
    assert ckpt.steps() == [3, 4, 5, 6, 7]  # keep=5
    step, restored, meta = ckpt.restore_latest(state)
    assert step == 7 and meta["config"] == {"steps": 7} and meta["step"] == 7
    assert _equal(restored, _bump(state, 7))
    ckpt.close()
    assert checkpoints(str(tmp_path / "empty")).restore_latest(state) is None


def test_a_save_killed_midway_is_ignored_with_a_warning(tmp_path, state):
    ckpt = checkpoints(str(tmp_path))
    ckpt.save(2, _bump(state, 2), config={})
    ckpt.close()
    # What a save killed midway leaves: orbax's temporary directory, never renamed.
    shutil.copytree(tmp_path / "2", tmp_path / "4.orbax-checkpoint-tmp")
    os.remove(tmp_path / "4.orbax-checkpoint-tmp" / "commit_success.txt")
    with pytest.warns(
        PartialCheckpointWarning,
        match=r"ignoring the partial checkpoint "
        r".*4.orbax-checkpoint-tmp",
    ):
        ckpt = checkpoints(str(tmp_path))
    step, restored, _ = ckpt.restore_latest(state)
    assert step == 2 and _equal(restored, _bump(state, 2))
    ckpt.save(4, _bump(state, 4), config={})  # the step is free again
    ckpt.close()
    assert sorted(os.listdir(tmp_path)) == ["2", "4"]


# Reads of the damaged files that tensorstore still has in flight finish after orbax has
# closed its event loop and are reported as unraisable exceptions: third-party, harmless.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("damage", ["state-files", "meta"])
def test_an_unreadable_checkpoint_is_set_aside_and_the_previous_used(tmp_path, state, damage):
    ckpt = checkpoints(str(tmp_path))
    ckpt.save(3, _bump(state, 3), config={})
    ckpt.save(6, _bump(state, 6), config={})
    ckpt.wait()
    if damage == "meta":
        (tmp_path / "6" / "meta" / "metadata").write_text("{truncated")
    else:
        for root, _, files in os.walk(tmp_path / "6" / "state"):
            for name in files:
                if "ocdbt" in root or name == "manifest.ocdbt":
                    os.remove(os.path.join(root, name))
    with pytest.warns(
        PartialCheckpointWarning,
        match=r"ignoring the unreadable checkpoint "
        r".*6 .*moved to .*broken-6",
    ):
        step, restored, _ = ckpt.restore_latest(state)
    assert step == 3 and _equal(restored, _bump(state, 3))
    assert ckpt.steps() == [3]
    assert (tmp_path / "broken-6").is_dir()  # kept for inspection, not deleted
    ckpt.close()


def test_another_runs_checkpoint_is_refused(tmp_path, state):
    ckpt = checkpoints(str(tmp_path), {"model": "tiny", "lr": 0.1})
    ckpt.save(5, state, config={})
    ckpt.close()
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    other = checkpoints(str(tmp_path), {"model": "nin", "lr": 0.1})
    with pytest.raises(
        CheckpointMismatchError,
        match=r"checkpoint .*5 belongs to a different "
        r"run \(model: \"tiny\" there, \"nin\" "
        r"here\); use another `directory`",
    ):
        other.restore_latest(state)
    other.close()
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing touched


def test_bad_directory_and_keep(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"`directory` .*file exists and is not a directory"):
        checkpoints(str(tmp_path / "file"))
    from jaxconv.train import Checkpoints

    with pytest.raises(ValueError, match=r"`keep` must be a positive int, got 0"):
        Checkpoints(str(tmp_path / "d"), {}, keep=0)
