"""Suite ``model``: GoogLeNet, ResNet-50, MobileNetV2 and NiN images/s, inference and one
training step.

- GoogLeNet (Szegedy et al. 2015) on 224×224×3 ImageNet-sized inputs, 1000 classes, with the
  two auxiliary heads in training (loss = main + ``AUX_WEIGHT`` (0.3)·each auxiliary, §5).
- ResNet-50 (He et al. 2016, torchvision's v1.5) and MobileNetV2 (Sandler et al. 2018) on
  224×224×3, 1000 classes: the 1×1 conv's modern homes.
- NiN (Lin et al. 2013), the CIFAR-10 model, on 32×32×3 inputs, 10 classes.

Variants, both under jit and on jaxconv's default paths:

- ``inference`` — ``model.eval()``; the logits.
- ``train step`` — ``model.train()`` (dropout on); ``jaxconv.train.train_step``, the step the
  trainer runs: softmax cross-entropy, ``nnx.value_and_grad`` and an SGD-with-momentum update
  through ``nnx.Optimizer`` — one complete step.

With ``--peers torch``, ResNet-50 and MobileNetV2 are also timed in PyTorch, in the same
round-robin: ``bench/torch_models.py``'s transcriptions of torchvision's models (the same layers
and names; torchvision itself cannot be installed beside the CPU torch), channels_last on every
core — ``torch inference`` in ``eval()`` under ``torch.inference_mode``, ``torch train step``
one ``SGD(lr=0.01, momentum=0.9)`` step of cross-entropy with ``zero_grad``/``backward``/``step``
in ``train()`` mode (bfloat16: ``torch.autocast``, float32 parameters, as jaxconv's ``dtype=``).
Before timing, the peer gets jaxconv's own weights (``to_torchvision_state_dict``) and must give
the same logits; ``speed_vs_torch`` on jaxconv's records is torch time / jaxconv time (> 1:
faster). GoogLeNet and NiN have no torch peer: torchvision's GoogLeNet is a different network
(3×3 in the "5×5" branch, no LRN) and NiN is in no torch library. The models, their sizes and
which of them have a peer come from the registry, :data:`jaxconv.models.MODELS`.

``images_per_s = batch / median_s``. ``macs`` follows the cost model (every tap of every conv
and linear layer, :func:`jaxconv.nn.summary`): the forward pass for inference; for the training
step 3× the training-mode forward (auxiliary heads included) — forward, input gradient and
weight gradient each cost one forward's MACs, the usual convention. ``--quick`` runs NiN on
16×16 inputs and ResNet-18 (torchvision's, so with its torch peer) on 32×32, batch 2.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bench._harness import Context
from jaxconv.models import MODELS

NAME = "model"


class ModelCase(NamedTuple):
    name: str  # the registry's (jaxconv.models.MODELS)
    size: int
    classes: int


#: The models timed, by their registry names: each entry's reference model at its input size.
TIMED = ("googlenet", "resnet50", "mobilenetv2", "nin")
CASES = tuple(ModelCase(n, MODELS[n].input_size, MODELS[n].num_classes) for n in TIMED)
#: ``--quick``: two tiny models, one with a torch peer (ResNet-18's ImageNet stem takes 32×32
#: to 8×8 and its last stage to 1×1).
TINY = (ModelCase("nin", 16, 10), ModelCase("resnet18", 32, 10))
#: Largest ``max |logits_torch - logits_jaxconv| / max |logits_jaxconv|`` accepted.
PEER_TOLERANCE = {"float32": 1e-3, "bfloat16": 1e-1, "float16": 2e-2}


def has_torch_peer(name: str) -> bool:
    """Whether the reference model ``name`` is torchvision's too (its torchvision variant adds
    no keywords), so ``bench/torch_models.py``'s transcription is the same network."""
    layout = MODELS[name].torchvision
    return layout is not None and not layout.options


def _build(case: ModelCase, dtype: str):
    from flax import nnx

    rngs = nnx.Rngs(params=0, dropout=1)
    return MODELS[case.name].build(case.classes, dtype=jnp.dtype(dtype), rngs=rngs)


def forward_macs(case: ModelCase, batch: int, *, train: bool) -> int:
    """Cost-model MACs of one forward pass (``train``: in training mode, so with GoogLeNet's
    auxiliary heads), read from :func:`jaxconv.nn.summary` on shapes only."""
    from flax import nnx

    from jaxconv.nn import summary

    model = nnx.eval_shape(lambda: _build(case, "float32"))
    model.train() if train else model.eval()
    x = jax.ShapeDtypeStruct((batch, case.size, case.size, 3), jnp.float32)
    return summary(model, x, xla=None).total.macs


def _functions(case: ModelCase, dtype: str):
    """``(inference(state, x), step(state, x, labels), inference state, train state)``."""
    import optax
    from flax import nnx

    from jaxconv.train import AUX_WEIGHT, train_step

    model = _build(case, dtype)
    model.eval()
    eval_graph, eval_state = nnx.split(model)

    def inference(state, x):
        return nnx.merge(eval_graph, state)(x)

    model = _build(case, dtype)
    model.train()
    optimizer = nnx.Optimizer(model, optax.sgd(0.01, momentum=0.9), wrt=nnx.Param)
    train_graph, train_state = nnx.split((model, optimizer))

    def step(state, x, labels):
        model, optimizer = nnx.merge(train_graph, state)
        metrics = train_step(
            model, optimizer, x, labels, num_classes=case.classes, aux_weight=AUX_WEIGHT
        )
        return metrics["loss"], nnx.state((model, optimizer))

    return inference, step, eval_state, train_state


def _torch_runners(ctx: Context, case: ModelCase, eval_state, x, labels, dtype: str, logits):
    """``({variant: runner}, max relative logit error)`` of the torch peer for ``case``.

    The peer's weights are jaxconv's own (``to_torchvision_state_dict``) and its eval-mode
    logits must match jaxconv's ``logits`` on ``x``: a wrong transcription would time another
    network."""
    import copy

    from flax import nnx

    from bench import torch_models
    from jaxconv.models import to_torchvision_state_dict

    peer = ctx.peer
    torch, F = peer.torch, peer.torch.nn.functional
    model = nnx.eval_shape(lambda: _build(case, dtype))  # shapes only: the values come next
    nnx.update(model, eval_state)
    # Any: torch's stubs of Module.to lack the memory_format it takes
    net: Any = torch_models.MODELS[case.name](case.classes)
    net.load_state_dict(
        {k: torch.from_numpy(np.array(v)) for k, v in to_torchvision_state_dict(model).items()}
    )
    net = net.to(peer.device, memory_format=torch.channels_last).eval()
    xt, yt = peer.activation(x, "float32"), torch.from_numpy(np.array(labels)).long()
    yt = yt.to(peer.device)
    half = dtype != "float32"

    def autocast():
        return torch.autocast(peer.device.type, peer._dtype(dtype), enabled=half)

    def infer():
        with autocast():
            return net(xt)

    expected = np.asarray(logits, np.float32)
    with torch.inference_mode():
        got = infer().float().cpu().numpy()
    err = float(np.max(np.abs(got - expected)) / np.max(np.abs(expected)))
    if not err <= PEER_TOLERANCE[dtype]:
        raise RuntimeError(
            f"{case.name}: torch's logits differ from jaxconv's (max relative error {err:.2e})"
        )

    train_net = copy.deepcopy(net).train()
    opt = torch.optim.SGD(train_net.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = F.cross_entropy(train_net(xt), yt)
        loss.backward()
        opt.step()
        return loss.detach()

    runners = {"torch inference": peer.runner(infer), "torch train step": peer.train_runner(step)}
    return runners, err


def _case(ctx: Context, case: ModelCase, batch: int, dtype: str) -> list[dict]:
    x, labels = ctx.rng_arrays(
        ctx.seed(case.name, batch, dtype), [(batch, case.size, case.size, 3), (batch,)], dtype
    )
    labels = jax.device_put(
        jnp.abs(labels * case.classes).astype(jnp.int32) % case.classes, ctx.device
    )
    inference, step, eval_state, train_state = _functions(case, dtype)
    eval_state, train_state = jax.device_put((eval_state, train_state), ctx.device)
    compiled = {
        "inference": ctx.compile(inference, eval_state, x),
        "train step": ctx.compile(step, train_state, x, labels),
    }
    macs = {
        "inference": forward_macs(case, batch, train=False),
        "train step": 3 * forward_macs(case, batch, train=True),
    }
    runners: dict[str, Any] = dict(compiled)
    peer_err = None
    if ctx.peer is not None and has_torch_peer(case.name):
        logits = compiled["inference"]()
        peer_runners, peer_err = _torch_runners(ctx, case, eval_state, x, labels, dtype, logits)
        runners.update(peer_runners)
    timings = ctx.time(runners, default_repeats=5)
    records = []
    for variant, timing in timings.items():
        base = variant.removeprefix("torch ")
        extra: dict[str, Any] = {}
        if variant.startswith("torch "):
            extra = dict(
                peer="torch",
                ratio_vs_jaxconv=timing.median / timings[base].median,
                torch_version=ctx.peer.version,
                peer_max_rel_err=peer_err,
            )
        elif f"torch {variant}" in timings:
            extra = dict(speed_vs_torch=timings[f"torch {variant}"].median / timing.median)
        records.append(
            ctx.record(
                NAME,
                variant,
                default=not variant.startswith("torch "),
                batch=batch,
                dtype=dtype,
                timing=timing,
                macs=macs[base],
                compiled=compiled.get(variant),
                layer=case.name,
                input=f"{case.size}x{case.size}x3",
                images_per_s=batch / timing.median,
                **extra,
            )
        )
    return records


def run(ctx: Context) -> list[dict]:
    """Times inference and a training step per (model, dtype, batch); see the docstring."""
    cases = TINY if ctx.options.quick else CASES
    grid = [(c, n, d) for c in cases for d in ctx.dtypes() for n in ctx.batches((8,), (2,))]
    records = []
    for case, batch, dtype in ctx.track(grid, lambda c: f"{c[0].name} batch {c[1]} {c[2]}"):
        records += _case(ctx, case, batch, dtype)
    for rec in records:
        ctx.note(
            f"{rec['layer']} {rec['variant']}, batch {rec['batch']}, {rec['dtype']}: "
            f"{rec['images_per_s']:.1f} images/s ({rec['gflops']:.0f} GFLOP/s, "
            f"{rec['peak_fraction']:.0%} of GEMM peak"
            + (f"; compile {rec['compile_s']:.1f} s" if rec["compile_s"] is not None else "")
            + (f"; {rec['speed_vs_torch']:.2f}× torch's speed" if "speed_vs_torch" in rec else "")
            + ")."
        )
    return records
