"""Suite ``groups``: depthwise, grouped and transposed convs against PyTorch.

The convs dense-conv suites leave out, each forward and forward+backward (the output, and the
input and weight gradients of ``sum(conv(x, w) · dy)``: what ``y.backward(dy)`` computes in
PyTorch), in float32 and bfloat16, under ``jax.jit``:

- ``default`` — ``jaxconv.conv`` with ``implementation=None`` (its plan is in ``plan``);
- ``xla`` — ``implementation="xla"``, plain ``lax.conv_general_dilated``;
- ``onednn`` — ``implementation="onednn"``, where ``jaxconv.convolution.available`` says it applies
  (else skipped, the reason in the notes and in every record's ``skipped``);
- with ``--peers torch``: ``torch`` — eager ``conv2d`` (``conv_transpose2d``) channels_last on
  every core, under ``torch.inference_mode`` forward, timed in the same round-robin.

``default``, ``onednn`` and ``torch`` run round-robin, 15 samples each unless ``--repeats``
says otherwise; ``xla`` (seconds a call here) is timed after them as a baseline, at most 3
samples (``Context.time(baseline=True)``): its median only sets ``speedup_vs_lax``.

- ``speed_vs_torch``: torch time / this variant's time (> 1: faster than torch).
- ``speedup_vs_lax``: plain lax time / this variant's time.

Shapes (NHWC, HWIO kernels, batch 32, padding that keeps the map or halves it):

- ``mobilenetv2.dw3x3``: the first bottleneck's depthwise 3×3 on 112×112×32 (``groups=32``) and
  ``mobilenetv2.dw3x3_s2`` the second's, stride 2 on 112×112×96 → 56×56 (``groups=96``; expansion
  6 × 16 channels) — MobileNetV2, Sandler et al. 2018, Table 2;
- ``mobilenetv2.dw3x3_14`` and ``mobilenetv2.dw3x3_7``: the deep blocks' depthwise 3×3s, on
  14×14×576 (``groups=576``; 96 channels × 6) and 7×7×960 (160 × 6) — few pixels, many channels,
  the other end of MobileNetV2's depthwise range;
- ``xception.dw3x3_m2``: a depthwise 3×3 with channel multiplier 2 (``groups=64``, 64 → 128
  channels; Keras' ``depth_multiplier=2``, PyTorch's ``Conv2d(64, 128, 3, groups=64)``) on
  56×56×64;
- ``convnext.dw7x7``: ConvNeXt-T's stage-1 depthwise 7×7 on 56×56×96 (Liu et al. 2022);
- ``resnext.g32_3x3``: ResNeXt-50 (32×4d)'s conv3 grouped 3×3, 28×28×256 → 256 in 32 groups of 8
  channels (Xie et al. 2017, Table 1);
- ``transposed.4x4_s2``: the 2× upsampling of decoders, PyTorch's ``ConvTranspose2d(128, 64, 4,
  stride=2, padding=1)`` on 28×28×128 → 56×56×64. jaxconv runs it as lax does: an input-dilated
  conv (``input_dilation=2``) with padding ``k - 1 - p = 2`` on each side and the kernel flipped
  spatially. Its ``macs`` count the taps that meet an input pixel, ``(k / stride)²`` per output
  pixel and channel pair — a quarter of the dilated conv's taps, three of four being the inserted
  zeros.

``--quick`` runs the same kinds of conv on tiny maps (batch 1) in seconds; ``--batch``
replaces each shape's batch. ``macs`` of fwd+bwd count 3× the forward's.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

import jaxconv
from bench._harness import Compiled, Context
from bench._peers import check_agreement
from bench.suites.lowering import conv_functions, layer_fields, pass_records

NAME = "groups"
PASSES = ("fwd", "fwd+bwd")
#: The variants besides the torch peer, in timing order.
VARIANTS = {"default": None, "xla": "xla", "onednn": "onednn"}
#: The default dtypes (``--dtype`` replaces them).
DTYPES = ("float32", "bfloat16")
#: Largest ``max |y_torch - y_jaxconv| / max |y_jaxconv|`` accepted: the peer must compute the
#: same conv (bfloat16 outputs round to 8 bits).
PEER_TOLERANCE = {"float32": 1e-4, "bfloat16": 3e-2, "float16": 5e-3}


class Shape(NamedTuple):
    """``batch × size × size × c_in → c_out``, ``k×k``, in ``groups`` groups. ``transposed``: a
    transposed conv of stride ``stride`` and (PyTorch's) padding ``pad``."""

    name: str
    batch: int
    size: int
    c_in: int
    c_out: int
    k: int
    stride: int
    pad: int
    groups: int = 1
    transposed: bool = False

    @property
    def kernel_shape(self) -> tuple[int, int, int, int]:
        return (self.k, self.k, self.c_in // self.groups, self.c_out)

    def conv_args(self) -> dict:
        """``jaxconv.conv``'s keywords for this conv."""
        if self.transposed:
            p = self.k - 1 - self.pad
            return dict(padding=((p, p), (p, p)), input_dilation=self.stride)
        return dict(stride=self.stride, padding=self.pad, groups=self.groups)

    def macs(self, out_hw: tuple[int, int]) -> int:
        """Forward MACs, every tap that meets the input (padding taps too, as the papers count)."""
        taps = self.k * self.k * (self.c_in // self.groups)
        if self.transposed:
            taps //= self.stride * self.stride
        return self.batch * out_hw[0] * out_hw[1] * self.c_out * taps


SHAPES = (
    Shape("mobilenetv2.dw3x3", 32, 112, 32, 32, 3, 1, 1, groups=32),
    Shape("mobilenetv2.dw3x3_s2", 32, 112, 96, 96, 3, 2, 1, groups=96),
    Shape("mobilenetv2.dw3x3_14", 32, 14, 576, 576, 3, 1, 1, groups=576),
    Shape("mobilenetv2.dw3x3_7", 32, 7, 960, 960, 3, 1, 1, groups=960),
    Shape("xception.dw3x3_m2", 32, 56, 64, 128, 3, 1, 1, groups=64),
    Shape("convnext.dw7x7", 32, 56, 96, 96, 7, 1, 3, groups=96),
    Shape("resnext.g32_3x3", 32, 28, 256, 256, 3, 1, 1, groups=32),
    Shape("transposed.4x4_s2", 32, 28, 128, 64, 4, 2, 1, transposed=True),
)
#: ``--quick``: the same kinds of conv, tiny.
TINY = (
    Shape("tiny.dw3x3", 1, 16, 8, 8, 3, 1, 1, groups=8),
    Shape("tiny.dw3x3_s2", 1, 16, 8, 8, 3, 2, 1, groups=8),
    Shape("tiny.dw3x3_m2", 1, 8, 8, 16, 3, 1, 1, groups=8),
    Shape("tiny.dw7x7", 1, 8, 8, 8, 7, 1, 3, groups=8),
    Shape("tiny.g4_3x3", 1, 8, 16, 16, 3, 1, 1, groups=4),
    Shape("tiny.transposed_4x4_s2", 1, 8, 16, 8, 4, 2, 1, transposed=True),
)


def _spec(s: Shape, dtype: str):
    return jaxconv.convolution.conv_spec(
        jax.ShapeDtypeStruct((s.batch, s.size, s.size, s.c_in), dtype),
        jax.ShapeDtypeStruct(s.kernel_shape, dtype),
        **s.conv_args(),
    )


def _torch(ctx: Context, s: Shape, x, w, dy, dtype: str):
    """(forward runner, fwd+bwd runner, forward output) of torch on the same arrays; ``w`` is
    the kernel as PyTorch means it (unflipped for the transposed conv)."""
    F = ctx.peer.torch.nn.functional
    xt, dyt = ctx.peer.activation(x, dtype), ctx.peer.activation(dy, dtype)
    wt = ctx.peer.kernel(w, dtype, transposed=s.transposed)
    xg, wg = xt.clone().requires_grad_(), wt.clone().requires_grad_()
    if s.transposed:

        def conv(a, b):
            return F.conv_transpose2d(a, b, stride=s.stride, padding=s.pad)
    else:

        def conv(a, b):
            return F.conv2d(a, b, stride=s.stride, padding=s.pad, groups=s.groups)

    def backward():
        xg.grad = wg.grad = None
        conv(xg, wg).backward(dyt)
        return wg.grad

    forward = ctx.peer.runner(lambda: conv(xt, wt))
    return forward, ctx.peer.train_runner(backward), forward()


def _case(ctx: Context, s: Shape, dtype: str) -> list[dict]:
    spec = _spec(s, dtype)
    plan = jaxconv.convolution.choose(spec, platform=ctx.platform).plan
    reasons = jaxconv.convolution.available(spec)
    skipped = {}
    for variant, name in VARIANTS.items():
        why = reasons.get(name, f"no {name!r} lowering in this jaxconv") if name else None
        if why is None and name and name not in jaxconv.convolution.candidates(spec, ctx.platform):
            why = f"{name} does not run on {ctx.platform}"
        if why is not None:
            skipped[variant] = why
    variants = {v: n for v, n in VARIANTS.items() if v not in skipped}
    x, w, dy = ctx.rng_arrays(
        ctx.seed(s, dtype),
        [(s.batch, s.size, s.size, s.c_in), s.kernel_shape, spec.out_shape],
        dtype,
        [1.0, (s.k * s.k * s.c_in // s.groups) ** -0.5, 1.0],
    )
    w_jaxconv = w[::-1, ::-1] if s.transposed else w  # lax's transposed conv: flipped kernel
    compiled: dict[str, dict[str, Compiled]] = {p: {} for p in PASSES}
    for variant, name in variants.items():
        fwd, fb = conv_functions(name, **s.conv_args())
        compiled["fwd"][variant] = ctx.compile(fwd, x, w_jaxconv)
        compiled["fwd+bwd"][variant] = ctx.compile(fb, x, w_jaxconv, dy)
    peer, peer_err = None, None
    if ctx.peer is not None:
        *peer, y_torch = _torch(ctx, s, x, w, dy, dtype)
        peer_err = check_agreement(
            f"{s.name} {dtype}",
            compiled["fwd"]["default"](),
            y_torch,
            PEER_TOLERANCE.get(dtype, 3e-2),
        )
    macs = s.macs(spec.out_shape[1:3])
    layer = {**layer_fields(s), "groups": s.groups, "transposed": s.transposed}
    records = []
    for i, pass_name in enumerate(PASSES):
        runners: dict[str, Callable[[], Any]] = dict(compiled[pass_name])
        lax_runner = {"xla": runners.pop("xla")}
        if peer is not None:
            runners["torch"] = peer[i]
        timings = ctx.time(runners, default_repeats=15) | ctx.time(lax_runner, baseline=True)
        records += pass_records(
            ctx,
            NAME,
            pass_name,
            {v: timings[v] for v in [*compiled[pass_name], *runners]},  # table order
            compiled[pass_name],
            default="default",
            plan=plan,
            batch=s.batch,
            dtype=dtype,
            macs=macs * (1 if pass_name == "fwd" else 3),
            layer=layer,
            after={"skipped": skipped or None},
            peer={"peer_max_rel_err": peer_err},
        )
    return records


def _notes(ctx: Context, records: list[dict]) -> None:
    skips: dict[tuple[str, str], list[str]] = {}
    for r in records:
        if r["default"] and r["pass"] == PASSES[0]:
            for variant, why in (r.get("skipped") or {}).items():
                skips.setdefault((variant, why), []).append(f"{r['layer']} {r['dtype']}")
    for (variant, why), cases in skips.items():
        ctx.note(f"{variant} skipped on {', '.join(cases)}: {why}.")
    for pass_name in PASSES:
        for dtype in dict.fromkeys(r["dtype"] for r in records):
            rows = [
                r
                for r in records
                if r["pass"] == pass_name and r["dtype"] == dtype and not r.get("peer")
            ]
            if not rows:
                continue
            for key, label in (
                ("speed_vs_torch", "torch's speed"),
                ("speedup_vs_lax", "plain lax's speed"),
            ):
                parts = []
                for variant in VARIANTS:
                    sel = [
                        r
                        for r in rows
                        if r["variant"] == f"{variant} {pass_name}" and r.get(key) is not None
                    ]
                    if sel and not (key == "speedup_vs_lax" and variant == "xla"):
                        q = [r[key] for r in sel]
                        parts.append(
                            f"{variant} median {statistics.median(q):.2f}× (min "
                            f"{min(q):.2f}×, {len(sel)} convs)"
                        )
                if parts:
                    ctx.note(f"{pass_name} {dtype}: vs {label}: " + "; ".join(parts) + ".")
            slow = [
                f"{r['layer']} {r['speed_vs_torch']:.2f}×"
                for r in rows
                if r["default"]
                and r.get("speed_vs_torch") is not None
                and r["speed_vs_torch"] < 0.9
            ]
            if slow:
                ctx.note(
                    f"{pass_name} {dtype}: the default is below 0.9× torch's speed on "
                    + ", ".join(slow)
                    + "."
                )


def run(ctx: Context) -> list[dict]:
    """Times the variants per shape, dtype and pass; see the module docstring. ``--batch``
    replaces each shape's own batch size."""
    base = ctx.select(TINY if ctx.options.quick else SHAPES, NAME)
    batches = ctx.options.batches or (None,)
    grid = [
        (s._replace(batch=n or s.batch), d)
        for s in base
        for n in batches
        for d in ctx.dtypes(DTYPES)
    ]
    records = []
    for s, dtype in ctx.track(grid, lambda c: f"{c[0].name} {c[1]}"):
        records += _case(ctx, s, dtype)
    _notes(ctx, records)
    return records
