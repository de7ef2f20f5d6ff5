"""The optimizer, schedule, loss and config of ``jaxconv.train``."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from test_train_support import register, tiny_data

from jaxconv.train import (
    TrainConfig,
    Trainer,
    classification_loss,
    decay_mask,
    learning_rate_schedule,
    make_optimizer,
)
from jaxconv.train._config import DEFAULT_STEPS


def _params(rng):
    return {
        "conv": {
            "kernel": jnp.asarray(rng.standard_normal((3, 3, 2, 4)), jnp.float32),
            "bias": jnp.asarray(rng.standard_normal(4), jnp.float32),
        },
        "bn": {"scale": jnp.ones(4), "bias": jnp.zeros(4)},
    }


def test_schedule_warms_up_linearly_then_decays_by_cosine():
    lr, steps, warmup = 0.2, 50, 10
    s = learning_rate_schedule(lr, steps, warmup)
    for t in (0, 3, 10, 20, 37, 50):
        expected = (
            lr * t / warmup
            if t < warmup
            else lr * 0.5 * (1 + math.cos(math.pi * (t - warmup) / (steps - warmup)))
        )
        assert float(s(t)) == pytest.approx(expected, abs=1e-6)
    assert float(learning_rate_schedule(0.1, 5, 100)(4)) == pytest.approx(0.1)  # warmup clamped


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_weight_decay_skips_biases_and_norm_scales(name, rng):
    params = _params(rng)
    assert jax.tree.leaves(decay_mask(params)) == [False, False, False, True]
    tx = make_optimizer(name, lr=0.1, steps=10, warmup_steps=0, weight_decay=0.5)
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    assert all(
        float(jnp.abs(u).max()) == 0
        for u in (updates["conv"]["bias"], updates["bn"]["scale"], updates["bn"]["bias"])
    )
    # zero gradient: the kernel shrinks by lr · wd (· 1.9 for Nesterov's look-ahead)
    factor = 0.1 * 0.5 * (1.9 if name == "sgd" else 1.0)
    np.testing.assert_allclose(
        updates["conv"]["kernel"], -factor * params["conv"]["kernel"], rtol=1e-5
    )


def test_gradients_are_clipped_to_the_global_norm(rng):
    params = _params(rng)
    grads = jax.tree.map(lambda p: 1e3 * jnp.ones_like(p), params)
    tx = make_optimizer(
        "sgd", lr=1.0, steps=10, warmup_steps=0, weight_decay=0.0, momentum=0.0, clip_norm=2.0
    )
    updates, _ = tx.update(grads, tx.init(params), params)
    assert float(optax.tree.norm(updates)) == pytest.approx(2.0, rel=1e-5)
    tx = make_optimizer("sgd", lr=1.0, steps=10, warmup_steps=0, weight_decay=0.0, momentum=0.0)
    updates, _ = tx.update(grads, tx.init(params), params)
    assert float(optax.tree.norm(updates)) == pytest.approx(float(optax.tree.norm(grads)))


def test_optimizer_works_through_nnx_with_a_module():
    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(
        model,
        make_optimizer("adamw", lr=0.1, steps=5, warmup_steps=1, weight_decay=0.01),
        wrt=nnx.Param,
    )
    x = jnp.ones((4, 3))
    before = float(jnp.mean(model(x) ** 2))
    for _ in range(3):
        grads = nnx.grad(lambda m: jnp.mean(m(x) ** 2))(model)
        optimizer.update(model, grads)
    assert float(jnp.mean(model(x) ** 2)) < before
    assert int(optimizer.step[...]) == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "lamb"}, r"`name` \(the optimizer\) must be one of sgd, adamw, got 'lamb'"),
        ({"lr": -1.0}, r"`lr` must be a number >= 0.0, got -1.0"),
        ({"weight_decay": -0.1}, r"`weight_decay` must be a number >= 0.0, got -0.1"),
        ({"clip_norm": float("nan")}, r"`clip_norm` must be a number >= 0.0, got nan"),
        ({"momentum": -0.5}, r"`momentum` must be a number >= 0.0, got -0.5"),
    ],
)
def test_optimizer_rejects_bad_arguments(kwargs, match):
    args = {"name": "sgd", "lr": 0.1, "steps": 5, "warmup_steps": 0, "weight_decay": 0.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_optimizer(args.pop("name"), **args)


def test_loss_label_smoothing_and_aux_heads(rng):
    logits = jnp.asarray(rng.standard_normal((6, 5)), jnp.float32)
    aux = jnp.asarray(rng.standard_normal((6, 5)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 5, 6))
    logp = np.asarray(jax.nn.log_softmax(logits))
    logp_aux = np.asarray(jax.nn.log_softmax(aux))
    eps = 0.1
    target = np.full((6, 5), eps / 5) + (1 - eps) * np.eye(5)[np.asarray(labels)]
    smooth = -(target * logp).sum(-1).mean()
    loss, main = classification_loss(logits, labels, num_classes=5, label_smoothing=eps)
    assert float(loss) == pytest.approx(smooth, rel=1e-5)
    assert main.dtype == jnp.float32
    hard = -logp[np.arange(6), labels].mean()
    hard_aux = -logp_aux[np.arange(6), labels].mean()
    loss, main = classification_loss((logits, aux, aux), labels, num_classes=5, aux_weight=0.3)
    assert float(loss) == pytest.approx(hard + 0.6 * hard_aux, rel=1e-5)
    assert np.array_equal(main, logits)


def test_config_resolves_defaults_and_epochs():
    c = TrainConfig(optimizer="adamw", epochs=3, batch_size=10).resolved(num_train=105)
    assert (c.steps, c.lr, c.weight_decay, c.warmup()) == (30, 2e-3, 0.05, 3)
    c = TrainConfig(optimizer="sgd", steps=7).resolved(num_train=105)
    assert (c.steps, c.lr, c.weight_decay, c.warmup()) == (7, 0.05, 5e-4, 0)
    # the defaults that depend on the steps stay None: a longer resumed run keeps its identity
    assert c.warmup_steps is None and c.eval_every is None
    assert TrainConfig().resolved(1000).steps == DEFAULT_STEPS
    ident = TrainConfig(steps=5, ckpt_dir="a", devices=2).identity()
    assert "steps" not in ident and "devices" not in ident and ident["model"] == "nin"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"model": "vgg"}, ValueError, r"`model` must be one of nin, googlenet, .*got 'vgg'"),
        ({"steps": 0}, ValueError, r"`steps` must be a positive int, got 0"),
        ({"batch_size": -4}, ValueError, r"`batch_size` must be a positive int, got -4"),
        ({"steps": 3, "epochs": 1}, ValueError, r"give `steps` or `epochs`, not both"),
        ({"lr": 0.0}, ValueError, r"`lr` must be > 0, got 0"),
        (
            {"label_smoothing": 1.0},
            ValueError,
            r"`label_smoothing` must be a number in \[0.0, 1.0\), got 1.0",
        ),
        ({"momentum": True}, TypeError, r"`momentum` must be a number, got True"),
        ({"ckpt_every": 0}, ValueError, r"`ckpt_every` must be a positive int, got 0"),
        ({"warmup_steps": -1}, ValueError, r"`warmup_steps` must be an int >= 0, got -1"),
        (
            {"steps": 10, "warmup_steps": 10},
            ValueError,
            r"`warmup_steps` \(=10\) must be less than `steps` \(=10\)$",
        ),
        (
            {"warmup_steps": 500},
            ValueError,
            r"`warmup_steps` \(=500\) must be less than `steps` \(=120, the default\)",
        ),
        ({"augment": "no"}, TypeError, r"`augment` must be a bool, got 'no'"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(kwargs, error, match):
    with pytest.raises(error, match=match):
        TrainConfig(**kwargs).validate()
    with pytest.raises(
        ValueError,
        match=r"`batch_size` \(=12\) must not exceed the training "
        r"set \(=10 images\)",
    ):
        TrainConfig(batch_size=12).resolved(num_train=10)


def test_the_default_warmup_is_at_most_ten_steps_and_a_tenth_of_the_run():
    warmups = [TrainConfig(steps=s).resolved(1000).warmup() for s in (3, 10, 50, 120, 5000)]
    assert warmups == [0, 1, 5, 10, 10]
    assert TrainConfig(steps=10, warmup_steps=9).resolved(1000).warmup() == 9
    # a 10-step run reaches its peak rate after one step (it used to warm up for all of it)
    register()
    trainer = Trainer(TrainConfig(model="tiny", steps=10, batch_size=16), tiny_data())
    lr = trainer.config.lr
    assert [float(trainer.schedule(t)) for t in (0, 1)] == [0.0, pytest.approx(lr)]


def test_a_warmup_not_below_the_steps_of_the_epochs_is_refused():
    with pytest.raises(
        ValueError, match=r"`warmup_steps` \(=30\) must be less than `steps` \(=30\)"
    ):
        TrainConfig(epochs=3, batch_size=10, warmup_steps=30).resolved(num_train=105)
