"""Suite ``model``: GoogLeNet, ResNet-50, MobileNetV2 and NiN images/s, inference and one
training step.

- GoogLeNet (Szegedy et al. 2015) on 224×224×3 ImageNet-sized inputs, 1000 classes, with the
  two auxiliary heads in training (loss = main + ``AUX_WEIGHT`` (0.3)·each auxiliary, §5).
- ResNet-50 (He et al. 2016, torchvision's v1.5) and MobileNetV2 (Sandler et al. 2018) on
  224×224×3, 1000 classes: the 1×1 conv's modern homes.
- NiN (Lin et al. 2013), the CIFAR-10 model, on 32×32×3 inputs, 10 classes.

Variants, both under jit and on jaxconv's default paths:

- ``inference`` — ``model.eval()``; the logits.
- ``frozen inference`` — ``jaxconv.nn.freeze(model, x)`` of that model (BatchNorm folded; bias,
  ReLU and the residual add fused into the convs; weights packed once), its logits checked
  against the model's before timing (``max_rel_err_vs_unfrozen``, ``freeze_s``,
  ``speedup_vs_unfrozen`` in its records). Every inference peer is compared with it
  (``ratio_vs_jaxconv``), and with the unfrozen model (``ratio_vs_unfrozen``).
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
faster). The reference GoogLeNet and NiN have no torch peer: torchvision's GoogLeNet is a
different network (3×3 in the "5×5" branch, no LRN) and NiN is in no torch library. Where a
torch peer is (not under ``--quick``), torchvision's GoogLeNet is timed too, float32, as
``googlenet-torchvision``: jaxconv's ``from_torchvision("googlenet", aux_logits=True,
transform_input=False)`` (:data:`TORCHVISION_OPTIONS`, stated in its records) against the
transcription with its weights; torch's train step adds the auxiliary losses as jaxconv's.

``--peers torch-compile`` also times ``torch-compile train step``: the same SGD step on
``torch.compile`` of the train-mode network (float32 CPU; its first loss checked against
eager's from the same seed, :func:`_compiled_step`), compared with jaxconv's ``train step``.
``--peers torch-compile,openvino,onnxruntime`` adds the inference engines
(:mod:`bench._engines`: their settings, load and first-call times are in the records), float32
inference on the CPU, each checked against jaxconv's logits before it is timed; with an engine
the default batches are 1 and 8 (else 8). The models, their sizes and which of them have a peer
come from the registry, :data:`jaxconv.models.MODELS`.

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

import jaxconv
from bench._harness import Context
from jaxconv.models import MODELS

NAME = "model"


class ModelCase(NamedTuple):
    name: str  # the registry's (jaxconv.models.MODELS)
    size: int
    classes: int
    #: torchvision's variant, built by ``from_torchvision(name, **TORCHVISION_OPTIONS[name])``
    #: (float32 only; timed where a torch peer is): GoogLeNet's, whose reference model differs.
    torchvision: bool = False

    @property
    def label(self) -> str:
        """The ``layer`` of its records: the name, ``-torchvision`` for torchvision's variant."""
        return f"{self.name}-torchvision" if self.torchvision else self.name


#: The models timed, by their registry names: each entry's reference model at its input size.
TIMED = ("googlenet", "resnet50", "mobilenetv2", "nin")
CASES = tuple(ModelCase(n, MODELS[n].input_size, MODELS[n].num_classes) for n in TIMED)
#: ``--quick``: two tiny models, one with a torch peer (ResNet-18's ImageNet stem takes 32×32
#: to 8×8 and its last stage to 1×1).
TINY = (ModelCase("nin", 16, 10), ModelCase("resnet18", 32, 10))
#: torchvision's variants timed beside the reference models where a torch peer is, and the
#: keywords (stated in their records) that ``from_torchvision`` builds them with.
TORCHVISION = (ModelCase("googlenet", 224, 1000, torchvision=True),)
TORCHVISION_OPTIONS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": True, "transform_input": False}
}
#: The variant that runs ``jaxconv.nn.freeze(model, x)``: what the inference peers are compared
#: with (their records also carry ``ratio_vs_unfrozen``).
FROZEN = "frozen inference"
#: Largest ``max |logits_frozen - logits| / max |logits|`` accepted before timing.
FROZEN_TOLERANCE = {"float32": 1e-4, "bfloat16": 5e-2}


#: Largest ``max |logits_torch - logits_jaxconv| / max |logits_jaxconv|`` accepted.
PEER_TOLERANCE = {"float32": 1e-3, "bfloat16": 1e-1, "float16": 2e-2}


def has_torch_peer(name: str) -> bool:
    """Whether the reference model ``name`` is torchvision's too (its torchvision variant adds
    no keywords), so ``bench/torch_models.py``'s transcription is the same network."""
    layout = MODELS[name].torchvision
    return layout is not None and not layout.options


def peered(case: ModelCase) -> bool:
    """Whether ``case`` has a torch transcription: torchvision's variant, or a reference model
    that is torchvision's (:func:`has_torch_peer`)."""
    return case.torchvision or has_torch_peer(case.name)


def _build(case: ModelCase, dtype: str):
    from flax import nnx

    from jaxconv.models import from_torchvision

    rngs = nnx.Rngs(params=0, dropout=1)
    if case.torchvision:  # fresh weights: the torch peer gets them (to_torchvision_state_dict)
        options = TORCHVISION_OPTIONS[case.name]
        return from_torchvision(case.name, num_classes=case.classes, rngs=rngs, **options)
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


class Functions(NamedTuple):
    """What a case times: ``inference(state, x)``, ``step(state, x, labels)`` and
    ``frozen(state, x)`` (``jaxconv.nn.freeze(model, x)`` of the inference model), their states
    and how long freezing took."""

    inference: Any
    step: Any
    frozen: Any
    eval_state: Any
    train_state: Any
    frozen_state: Any
    freeze_s: float


def _functions(case: ModelCase, dtype: str, x) -> Functions:
    """The :class:`Functions` of ``case``, the frozen model packed for ``x``."""
    import time

    import optax
    from flax import nnx

    from jaxconv.nn import freeze
    from jaxconv.train import AUX_WEIGHT, train_step

    model = _build(case, dtype)
    model.eval()
    eval_graph, eval_state = nnx.split(model)

    def inference(state, x):
        return nnx.merge(eval_graph, state)(x)

    start = time.perf_counter()
    frozen_graph, frozen_state = nnx.split(freeze(model, x))
    freeze_s = time.perf_counter() - start

    def frozen(state, x):
        return nnx.merge(frozen_graph, state)(x)

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

    return Functions(inference, step, frozen, eval_state, train_state, frozen_state, freeze_s)


def _torch_net(ctx: Context, case: ModelCase, eval_state, dtype: str) -> Any:
    """``bench/torch_models.py``'s transcription of ``case`` with jaxconv's own weights
    (``to_torchvision_state_dict``), in eval mode and channels_last on the peer's device."""
    from flax import nnx

    from bench import torch_models
    from jaxconv.models import to_torchvision_state_dict

    torch = ctx.peer.torch
    model = nnx.eval_shape(lambda: _build(case, dtype))  # shapes only: the values come next
    nnx.update(model, eval_state)
    # Any: torch's stubs of Module.to lack the memory_format it takes
    options = TORCHVISION_OPTIONS[case.name] if case.torchvision else {}
    net: Any = torch_models.MODELS[case.name](case.classes, **options)
    net.load_state_dict(
        {k: torch.from_numpy(np.array(v)) for k, v in to_torchvision_state_dict(model).items()}
    )
    return net.to(ctx.peer.device, memory_format=torch.channels_last).eval()


def _torch_runners(
    ctx: Context,
    case: ModelCase,
    eval_state,
    x,
    labels,
    dtype: str,
    logits,
    compile_train: bool = False,
):
    """``({variant: runner}, max relative logit error)`` of the torch peer for ``case``.

    The peer's weights are jaxconv's own (``to_torchvision_state_dict``) and its eval-mode
    logits must match jaxconv's ``logits`` on ``x``: a wrong transcription would time another
    network."""
    import copy

    from jaxconv.train import AUX_WEIGHT

    peer = ctx.peer
    torch, F = peer.torch, peer.torch.nn.functional
    net = _torch_net(ctx, case, eval_state, dtype)
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

    def make_step(module: Any) -> Any:
        """One SGD step of ``module`` (a copy of ``net`` in train mode, compiled or not)."""
        opt = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9)

        def step():
            opt.zero_grad(set_to_none=True)
            with autocast():
                out = module(xt)  # GoogLeNet's: (logits, aux2, aux1), as jaxconv's train_step
                if isinstance(out, tuple):
                    main, *aux = (F.cross_entropy(o, yt) for o in out)
                    loss = main + AUX_WEIGHT * sum(aux)
                else:
                    loss = F.cross_entropy(out, yt)
            loss.backward()
            opt.step()
            return loss.detach()

        return step

    runners = {
        "torch inference": peer.runner(infer),
        "torch train step": peer.train_runner(make_step(copy.deepcopy(net).train())),
    }
    if compile_train:
        runners[COMPILED_TRAIN] = peer.train_runner(_compiled_step(ctx, case, net, make_step))
    return runners, err


#: torch.compile's SGD step, beside torch eager's (``--peers torch-compile``, float32 CPU).
COMPILED_TRAIN = "torch-compile train step"
COMPILED_TRAIN_SETTINGS = {
    "backend": "inductor",
    "compile_threads": 1,
    "fallback_random": True,
    "memory_format": "channels_last",
}


def _compiled_step(ctx: Context, case: ModelCase, net: Any, make_step: Any) -> Any:
    """``make_step`` on ``torch.compile`` of a train-mode copy of ``net`` (inductor, compiled in
    this process; its random ops on eager's generator, ``fallback_random``, so that its first
    step's loss can be checked against eager's from the same seed before it is timed)."""
    import copy

    import torch._inductor.config as inductor

    torch = ctx.peer.torch
    inductor.compile_threads = 1  # no forked workers beside JAX's threads (see bench._engines)
    inductor.fallback_random = True
    eager = make_step(copy.deepcopy(net).train())
    compiled = make_step(torch.compile(copy.deepcopy(net).train()))
    torch.manual_seed(0)
    want = float(eager())
    torch.manual_seed(0)
    got = float(compiled())  # compiles: forward and backward graphs
    err = abs(got - want) / abs(want)
    if not err <= PEER_TOLERANCE["float32"]:
        raise RuntimeError(
            f"{case.label}: torch.compile's first training loss {got} differs from eager's {want}"
        )
    return compiled


class PeerRun(NamedTuple):
    """A peer's timed variant: the jaxconv variant it is compared with and its record fields."""

    base: str
    fields: dict[str, Any]


def engines_asked(ctx: Context) -> tuple[str, ...]:
    """The engines of ``--peers`` (:data:`bench._engines.ENGINES`) that are installed here."""
    from bench import _engines

    return _engines.available(ctx.options.peers or ())[0]


def times_torch_eager(ctx: Context) -> bool:
    """Whether torch eager is timed: ``--peers torch``, or torch by default where installed
    (the engines alone load torch only to build their networks)."""
    return ctx.peer is not None and (ctx.options.peers is None or "torch" in ctx.options.peers)


def _engine_runners(
    ctx: Context,
    case: ModelCase,
    eval_state,
    x,
    logits,
    names: tuple[str, ...],
    dtype: str = "float32",
) -> tuple[dict[str, Any], dict[str, PeerRun]]:
    """``({variant: runner}, {variant: PeerRun})`` of the engines ``names`` on ``case``
    (inference on the CPU, computing in ``dtype``). Each engine runs the torch transcription
    with jaxconv's float32 weights; one that cannot run ``dtype`` (:func:`_engines.unsupported`),
    fails to build, or whose logits disagree with jaxconv's ``logits`` (within
    :data:`PEER_TOLERANCE` of ``dtype``) is named in a note and not timed; an OpenVINO that
    compiled for another precision than asked (a CPU without native bf16) is named too."""
    import copy

    from bench import _engines

    net = _torch_net(ctx, case, eval_state, "float32")
    x_nchw = np.transpose(np.asarray(x, np.float32), (0, 3, 1, 2))
    expected = np.asarray(logits, np.float32)
    runners: dict[str, Any] = {}
    runs: dict[str, PeerRun] = {}
    for name in names:
        where = f"{case.label}, batch {x.shape[0]}: {name}"
        why = _engines.unsupported(name, dtype)
        if why is not None:
            ctx.note(f"{where} cannot run {dtype}: {why}; not timed.")
            continue
        try:
            engine = _engines.build(name, copy.deepcopy(net), x_nchw, ctx.peer.threads, dtype)
        except Exception as failure:  # an engine that cannot take the network: reported
            ctx.note(f"{where} could not run it ({type(failure).__name__}: {failure}); not timed.")
            continue
        err = _engines.relative_error(engine.first_output, expected)
        if not err <= PEER_TOLERANCE[dtype]:
            ctx.note(
                f"{where} disagrees with jaxconv's logits (max relative error {err:.2e} > "
                f"{PEER_TOLERANCE[dtype]:g}); not timed."
            )
            continue
        ran = engine.settings.get("ran_precision")
        if ran is not None and ran != _engines.PRECISIONS[dtype]:
            ctx.note(
                f"{where} was asked for {_engines.PRECISIONS[dtype]} and compiled for {ran} "
                "(this CPU has no native bf16); timed as it ran."
            )
        variant = f"{name} inference"
        runners[variant] = engine.run
        runs[variant] = PeerRun(
            FROZEN,
            dict(
                peer=name,
                peer_version=engine.version,
                peer_settings=engine.settings,
                load_s=engine.load_s,
                first_call_s=engine.first_call_s,
                peer_max_rel_err=err,
            ),
        )
    return runners, runs


def _case(ctx: Context, case: ModelCase, batch: int, dtype: str) -> list[dict]:
    x, labels = ctx.rng_arrays(
        ctx.seed(case.name, batch, dtype), [(batch, case.size, case.size, 3), (batch,)], dtype
    )
    labels = jax.device_put(
        jnp.abs(labels * case.classes).astype(jnp.int32) % case.classes, ctx.device
    )
    inference, step, frozen, eval_state, train_state, frozen_state, freeze_s = _functions(
        case, dtype, x
    )
    eval_state, train_state, frozen_state = jax.device_put(
        (eval_state, train_state, frozen_state), ctx.device
    )
    # jaxconv's executables compiled as it recommends: on a CPU, temporaries that glibc reuses
    options = jaxconv.host_memory_options(ctx.platform)
    compiled = {
        "inference": ctx.compile(inference, eval_state, x, compiler_options=options),
        FROZEN: ctx.compile(frozen, frozen_state, x, compiler_options=options),
        "train step": ctx.compile(step, train_state, x, labels, compiler_options=options),
    }
    from bench import _engines

    frozen_err = _engines.relative_error(compiled[FROZEN](), compiled["inference"]())
    if not frozen_err <= FROZEN_TOLERANCE[dtype]:
        raise AssertionError(
            f"{case.label}: the frozen model's logits differ from the model's (max relative "
            f"error {frozen_err:.2e} > {FROZEN_TOLERANCE[dtype]:g})"
        )
    macs = {
        "inference": forward_macs(case, batch, train=False),
        "train step": 3 * forward_macs(case, batch, train=True),
    }
    macs[FROZEN] = macs["inference"]
    runners: dict[str, Any] = dict(compiled)
    peer_runs: dict[str, PeerRun] = {}
    has_peer = ctx.peer is not None and peered(case)
    engines = engines_asked(ctx) if has_peer else ()
    if has_peer and times_torch_eager(ctx):
        logits = compiled["inference"]()
        compile_train = "torch-compile" in engines and dtype == "float32" and ctx.platform == "cpu"
        peer_runners, peer_err = _torch_runners(
            ctx, case, eval_state, x, labels, dtype, logits, compile_train
        )
        runners.update(peer_runners)
        for variant in peer_runners:
            fields = dict(peer="torch", torch_version=ctx.peer.version, peer_max_rel_err=peer_err)
            if variant == COMPILED_TRAIN:
                fields.update(peer="torch-compile", peer_settings=COMPILED_TRAIN_SETTINGS)
            base = variant.removeprefix("torch-compile ").removeprefix("torch ")
            peer_runs[variant] = PeerRun(FROZEN if base == "inference" else base, fields)
    if engines and ctx.platform != "cpu":
        ctx.note(f"{case.label}: the engines run on the CPU only; not timed on {ctx.platform}.")
    elif engines:
        engine_runners, engine_runs = _engine_runners(
            ctx, case, eval_state, x, compiled["inference"](), engines, dtype
        )
        runners.update(engine_runners)
        peer_runs.update(engine_runs)
    timings = ctx.time(runners, default_repeats=5)
    records = []
    for variant, timing in timings.items():
        run = peer_runs.get(variant)
        base = run.base if run is not None else variant
        extra: dict[str, Any] = {}
        if run is not None:
            extra = dict(
                run.fields,
                base=base,
                ratio_vs_jaxconv=timing.median / timings[base].median,
            )
            if base == FROZEN:  # and against the model as it is, unfrozen
                extra["ratio_vs_unfrozen"] = timing.median / timings["inference"].median
        elif variant == FROZEN:
            extra = dict(
                freeze_s=freeze_s,
                max_rel_err_vs_unfrozen=frozen_err,
                speedup_vs_unfrozen=timings["inference"].median / timing.median,
            )
        elif f"torch {variant}" in timings:
            extra = dict(speed_vs_torch=timings[f"torch {variant}"].median / timing.median)
        if case.torchvision:
            extra["torchvision_options"] = TORCHVISION_OPTIONS[case.name]
        records.append(
            ctx.record(
                NAME,
                variant,
                default=run is None,
                batch=batch,
                dtype=dtype,
                timing=timing,
                macs=macs[base],
                compiled=compiled.get(variant),
                layer=case.label,
                input=f"{case.size}x{case.size}x3",
                images_per_s=batch / timing.median,
                **extra,
            )
        )
    return records


def run(ctx: Context) -> list[dict]:
    """Times inference and a training step per (model, dtype, batch); see the docstring."""
    cases = TINY if ctx.options.quick else CASES
    if ctx.peer is not None and not ctx.options.quick:
        cases += TORCHVISION
    grid = [
        (c, n, d)
        for c in cases
        for d in ctx.dtypes()
        for n in ctx.batches((1, 8) if engines_asked(ctx) else (8,), (2,))
        if d == "float32" or not c.torchvision
    ]
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
