"""Resume is exact: 2K steps straight == K steps + restart + K steps, bit for bit.

The negative controls lose one piece of the state at the restart — parameters, optimizer
state, BatchNorm statistics, the dropout RNG, or the data position — and show that the same
comparison then fails, so the test can see each piece.
"""

from __future__ import annotations

import json
import os
import shutil

import jax
import pytest
from rich.console import Console
from test_train_support import differing, final_tree, register, tiny_data

import jaxconv.train._trainer as trainer_module
from jaxconv.train import (
    CheckpointMismatchError,
    Checkpoints,
    PartialCheckpointWarning,
    TrainConfig,
    Trainer,
    state_to_tree,
    train,
    tree_to_state,
)

K = 4  # 2K = 8 steps of 16 out of 96 images: the resumed half crosses an epoch boundary
QUIET = Console(quiet=True)


def _config(tmp, name: str, **kwargs) -> TrainConfig:
    return TrainConfig(
        model="tiny",
        optimizer="sgd",
        steps=2 * K,
        batch_size=16,
        warmup_steps=2,
        ckpt_dir=str(tmp / name),
        ckpt_every=100,
        eval_every=0,
        progress=False,
        metrics=str(tmp / f"{name}.jsonl"),
        **kwargs,
    )


def _losses(path) -> list[tuple[int, float]]:
    with open(path) as f:
        lines = [json.loads(line) for line in f]
    return [(r["step"], r["loss"]) for r in lines if r["kind"] == "train"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The straight 2K-step run, and a run stopped at K (its checkpoint kept pristine)."""
    register()
    tmp = tmp_path_factory.mktemp("resume")
    data = tiny_data()
    straight = train(_config(tmp, "straight"), data=data, console=QUIET)
    assert straight.step == 2 * K
    first = train(_config(tmp, "half"), data=data, stop_at=K, console=QUIET)
    assert first.step == K and first.checkpoint == str(tmp / "half" / str(K))
    return tmp, data


def _copy_half(tmp, name: str) -> TrainConfig:
    shutil.copytree(tmp / "half", tmp / name)
    shutil.copy(tmp / "half.jsonl", tmp / f"{name}.jsonl")
    return _config(tmp, name)


def test_resume_is_bit_for_bit(runs):
    tmp, data = runs
    cfg = _copy_half(tmp, "resumed")
    second = train(cfg, data=data, console=QUIET)
    assert (second.start_step, second.step) == (K, 2 * K)
    step, resumed = final_tree(cfg.ckpt_dir)
    _, straight = final_tree(tmp / "straight")
    assert step == 2 * K
    assert differing(resumed, straight) == []
    assert _losses(tmp / "resumed.jsonl") == _losses(tmp / "straight.jsonl")  # one line a step
    assert len(resumed) > 10  # every array is compared: params, BN stats, RNG, optimizer


def _lost(piece: str, names: tuple[str, ...]) -> bool:
    model = names[0] == "0"
    stats = model and names[-1] in ("mean", "var")
    rng = model and "rngs" in names
    return {
        "optimizer": names[0] == "1",
        "batch_stats": stats,
        "rng": rng,
        "params": model and not stats and not rng,
    }[piece]


def _lose_in_checkpoint(cfg: TrainConfig, data, piece: str) -> None:
    """Rewrites the checkpoint with ``piece`` reset to its freshly initialized value."""
    fresh = Trainer(cfg, data).state
    with open(os.path.join(cfg.ckpt_dir, "config.json")) as f:
        identity = json.load(f)["identity"]
    ckpt = Checkpoints(cfg.ckpt_dir, identity)
    step, state, meta = ckpt.restore_latest(fresh)
    saved, init = state_to_tree(state), state_to_tree(fresh)
    hits = []

    def pick(path, kept, reset):
        names = tuple(str(p.key) for p in path)
        hits.append(_lost(piece, names))
        return reset if hits[-1] else kept

    mixed = jax.tree_util.tree_map_with_path(pick, saved, init)
    assert 0 < sum(hits) < len(hits)
    ckpt.save(step, tree_to_state(fresh, mixed), config=meta["config"], force=True)
    ckpt.close()


@pytest.mark.parametrize("piece", ["params", "optimizer", "batch_stats", "rng", "data"])
def test_negative_control_a_lost_piece_of_state_is_caught(runs, piece, monkeypatch):
    tmp, data = runs
    cfg = _copy_half(tmp, f"lost-{piece}")
    if piece == "data":  # the resumed run starts the data stream over
        original = trainer_module.train_batch
        monkeypatch.setattr(
            trainer_module,
            "train_batch",
            lambda d, b, seed, step, **kw: original(d, b, seed, step - K, **kw),
        )
    else:
        _lose_in_checkpoint(cfg, data, piece)
    train(cfg, data=data, console=QUIET)
    _, resumed = final_tree(cfg.ckpt_dir)
    _, straight = final_tree(tmp / "straight")
    assert differing(resumed, straight) != []


def test_partial_save_is_skipped_and_resume_still_exact(runs):
    tmp, data = runs
    cfg = _copy_half(tmp, "partial")
    # a later save killed midway: orbax's temporary directory, never finalized
    shutil.copytree(tmp / "partial" / str(K), tmp / "partial" / f"{K + 2}.orbax-checkpoint-tmp")
    with pytest.warns(PartialCheckpointWarning, match=rf"{K + 2}.orbax-checkpoint-tmp"):
        summary = train(cfg, data=data, console=QUIET)
    assert summary.start_step == K
    assert differing(final_tree(cfg.ckpt_dir)[1], final_tree(tmp / "straight")[1]) == []


def test_more_steps_continue_and_checkpoints_rotate(runs):
    tmp, data = runs
    cfg = _copy_half(tmp, "longer")
    longer = TrainConfig(**{**cfg.to_dict(), "steps": 2 * K + 2, "ckpt_every": 2, "keep": 2})
    summary = train(longer, data=data, console=QUIET)
    assert (summary.start_step, summary.step) == (K, 2 * K + 2)
    ckpt = Checkpoints(cfg.ckpt_dir, {})
    assert ckpt.steps() == [2 * K, 2 * K + 2]
    ckpt.close()
    with open(tmp / "longer" / "config.json") as f:
        saved = json.load(f)
    assert saved["config"]["steps"] == 2 * K + 2 and saved["identity"]["model"] == "tiny"
    assert [s for s, _ in _losses(tmp / "longer.jsonl")] == list(range(1, 2 * K + 3))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"lr": 0.5}, r"lr: 0.05 there, 0.5 here"),
        ({"seed": 1}, r"seed: 0 there, 1 here"),
        ({"optimizer": "adamw"}, r"optimizer: \"sgd\" there, \"adamw\" here"),
    ],
)
def test_another_config_is_refused_and_nothing_is_written(runs, change, match):
    tmp, data = runs
    cfg = _copy_half(tmp, f"other-{next(iter(change))}")
    before = {p: os.path.getmtime(p) for p in (tmp / cfg.ckpt_dir).rglob("*")}
    other = TrainConfig(**{**cfg.to_dict(), **change})
    with pytest.raises(CheckpointMismatchError, match=match):
        train(other, data=data, console=QUIET)
    assert {p: os.path.getmtime(p) for p in (tmp / cfg.ckpt_dir).rglob("*")} == before


def test_the_steps_compile_once_per_trainer():
    register()
    t = Trainer(TrainConfig(model="tiny", steps=3, batch_size=16, eval_every=0), tiny_data())
    for _ in range(3):
        t.train_step()
    t.evaluate()
    t.evaluate(split="train")
    assert t._train_fn._cache_size() == 1  # no recompilation per step
    assert t._eval_fn._cache_size() == 1
