"""``--dtype bfloat16``: bf16 compute with float32 parameters, gradients and optimizer state."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxconv.nn
from jaxconv.train import (
    TrainConfig,
    Trainer,
    build_model,
    registered_model,
    synthetic_dataset,
)
from jaxconv.train._cli import build_parser


def _small(num_classes, rngs, dtype=None):
    """A jaxconv conv → ReLU → global mean → dense that computes in ``dtype``."""
    conv = jaxconv.nn.Conv(3, 8, 3, stride=2, dtype=dtype, rngs=rngs)
    head = nnx.Linear(8, num_classes, dtype=dtype, rngs=rngs)
    return nnx.Sequential(conv, nnx.relu, lambda h: h.mean(axis=(1, 2)), head)


def test_bfloat16_training_keeps_float32_parameters_and_optimizer_state():
    with registered_model("small", _small):
        config = TrainConfig(model="small", dtype="bfloat16", steps=2, batch_size=8)
        trainer = Trainer(config, synthetic_dataset(32, 16))
        model, _ = nnx.merge(trainer._eval_graph, trainer.state)
        x = jnp.ones((2, 32, 32, 3), jnp.float32)
        assert model(x).dtype == jnp.bfloat16  # bf16 compute ...
        losses = [float(trainer.train_step()["loss"]) for _ in range(2)]
    floats = [a for a in jax.tree.leaves(trainer.state) if jnp.issubdtype(a.dtype, jnp.floating)]
    assert floats and all(a.dtype == jnp.float32 for a in floats)  # ... f32 params and Adam moments
    assert np.isfinite(losses).all() and trainer.step == 2


@pytest.mark.parametrize("name", ["nin", "googlenet", "resnet18", "mobilenetv2"])
def test_dtype_reaches_the_builtin_models(name):
    model = nnx.eval_shape(lambda: build_model(name, 10, nnx.Rngs(0), dtype=jnp.bfloat16))
    model.eval()
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    out = nnx.eval_shape(lambda m: m(jnp.zeros((2, 32, 32, 3), jnp.float32)), model)
    assert out.dtype == jnp.bfloat16


def test_dtype_flag_and_config_check():
    assert build_parser().parse_args(["--dtype", "bfloat16"]).dtype == "bfloat16"
    assert build_parser().parse_args([]).dtype == TrainConfig().dtype == "float32"
    with pytest.raises(ValueError, match=r"`dtype` must be one of float32, bfloat16, got 'fp8'"):
        TrainConfig(dtype="fp8").validate()
    assert "dtype" not in TrainConfig().identity()  # a bf16 run resumes an f32 checkpoint
