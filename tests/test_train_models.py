"""Every ``--model`` traces a whole train step (forward, grad, optimizer) at 32×32.

Abstract traces only (``nnx.eval_shape`` / ``jax.eval_shape``): nothing is initialized or
compiled, yet everything that fails at trace time — shapes, a non-differentiable op in the
gradient, the aux-head plumbing — fails here.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from jaxconv.models import MODELS
from jaxconv.train import build_model, eval_metrics, eval_step, make_optimizer, train_step

BUILTIN = (
    "nin",
    "googlenet",
    "inception-bottleneck",
    "inception-direct5x5",
    "nin-paper",
    "resnet18",
    "resnet50",
    "mobilenetv2",
)


@functools.cache
def _abstract(name: str):
    def make():
        model = build_model(name, 10, nnx.Rngs(0))
        tx = make_optimizer(
            "adamw", lr=1e-3, steps=10, warmup_steps=1, weight_decay=0.05, clip_norm=1.0
        )
        return model, nnx.Optimizer(model, tx, wrt=nnx.Param)

    model, optimizer = nnx.eval_shape(make)
    model.train()
    train_graph, state = nnx.split((model, optimizer))
    model.eval()
    eval_graph, _ = nnx.split((model, optimizer))
    return train_graph, eval_graph, state


def test_the_builtin_names_are_registered():
    assert set(BUILTIN) <= set(MODELS)


@pytest.mark.parametrize("name", BUILTIN)
def test_train_and_eval_steps_trace(name):
    train_graph, eval_graph, state = _abstract(name)
    images = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    labels = jax.ShapeDtypeStruct((2,), jnp.int32)

    def train(state, x, y):
        model, optimizer = nnx.merge(train_graph, state)
        metrics = train_step(model, optimizer, x, y, num_classes=10, label_smoothing=0.1)
        return nnx.state((model, optimizer)), metrics

    new_state, metrics = jax.eval_shape(train, state, images, labels)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert all(
        a.shape == b.shape and a.dtype == b.dtype
        for a, b in zip(jax.tree.leaves(new_state), jax.tree.leaves(state))
    )
    assert {k: v.shape for k, v in metrics.items()} == {"loss": (), "accuracy": (), "grad_norm": ()}
    mask = jax.ShapeDtypeStruct((2,), jnp.float32)

    def evaluate(state, x, y, m):
        (model, _), metrics = nnx.merge(eval_graph, state), eval_metrics()
        eval_step(model, metrics, x, y, m)
        return metrics.compute()

    out = jax.eval_shape(evaluate, state, images, labels, mask)
    assert {k: v.shape for k, v in out.items()} == {"loss": (), "accuracy": ()}


def test_googlenet_has_two_auxiliary_heads_in_training_only():
    train_graph, eval_graph, state = _abstract("googlenet")
    images = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)

    def forward(graph):
        return jax.eval_shape(lambda s, x: nnx.merge(graph, s)[0](x), state, images)

    heads = forward(train_graph)
    assert isinstance(heads, tuple) and [h.shape for h in heads] == [(2, 10)] * 3
    assert forward(eval_graph).shape == (2, 10)
