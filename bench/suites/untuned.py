"""Suite ``untuned``: the default against plain lax on convs nobody tuned on, at batch 1 and 32.

The rule for jaxconv's default on any CPU, tuned or not: never more than 10% slower than plain
``lax.conv_general_dilated``, forward or forward+backward (the output, and the input and weight
gradients of ``sum(conv(x, w) · dy)``), at batch 1 as at 32. The other suites time GoogLeNet's,
NiN's and the seed's convs, where the lowerings were chosen; this one times shapes chosen for
nothing but being different: ResNet-50's and VGG-16's convs, odd sizes and channel counts,
asymmetric padding, even kernels, dilation, 1-D and 3-D. Under ``jax.jit``, float32 by default:

- ``default`` — ``jaxconv.conv`` with ``implementation=None`` (its plan is in ``plan``);
- ``xla`` — ``implementation="xla"``, plain ``lax.conv_general_dilated``;
- ``no extension`` — on 1×1 convs only: the default where the oneDNN extension is not loaded
  (``einsum``, for a 1-D conv only in its weight gradient; elsewhere that default is ``xla``
  itself), its plan in the ``default`` row's ``without_extension``.

``speedup_vs_lax``: plain lax time / this variant's time (>= 0.9 is the rule). No peer: the rule
is against lax. Shapes (channels-last, HWIO kernels):

- ``resnet50.*``: torchvision's ResNet-50 v1.5 (He et al. 2016) at 224×224 — the 7×7/2 stem,
  stage 1's 1×1s and 3×3, stage 2's strided 3×3 and strided 1×1 shortcut, stage 3's 3×3 on
  14×14, stage 4's 1×1 to 2048 channels on 7×7;
- ``vgg16.*``: VGG-16 (Simonyan & Zisserman 2015) conv1_1 (3 → 64 on 224×224), conv3_3 (256 on
  56×56), conv5_3 (512 on 14×14);
- ``odd.*``: a 3×3 on 17×17 with 13 → 37 channels; a 5×5/2 on 33×33 with asymmetric padding
  ``((1, 2), (2, 1))``; a 2×2 with ``"SAME"`` padding (one extra row and column at the end); a
  3×3 with dilation 2 on 31×31; a 1×1 on 15×15, 100 → 30;
- ``conv1d.*``: a k=9 stride-2 conv on 4001 samples (64 channels), a k=3 dilation-2 conv on
  1000 (128), a 1×1 on 1000 (256 → 64);
- ``conv3d.3x3x3``: a 3×3×3 conv on 16×28×28×32 → 32 (a video clip).

``--quick`` runs a few tiny shapes (batch 1 and 2); ``--batch`` replaces the two batch sizes.
``macs`` of fwd+bwd count 3× the forward's.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, NamedTuple

import jax

import jaxconv
from bench._harness import Compiled, Context
from bench.suites.lowering import conv_functions

NAME = "untuned"
PASSES = ("fwd", "fwd+bwd")
#: The batch sizes the rule names (``--batch`` replaces them).
BATCHES = (1, 32)
#: The rule: the default never below this fraction of plain lax's speed.
RULE = 0.9


class Shape(NamedTuple):
    """A conv of ``c_in → c_out`` channels on a ``spatial`` map with a ``kernel``; ``padding``
    is anything ``jaxconv.conv`` takes."""

    name: str
    spatial: tuple[int, ...]
    c_in: int
    c_out: int
    kernel: tuple[int, ...]
    stride: int = 1
    padding: Any = "SAME"
    dilation: int = 1

    def conv_args(self) -> dict:
        """``jaxconv.conv``'s keywords for this conv."""
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation)

    def input_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, *self.spatial, self.c_in)

    @property
    def kernel_shape(self) -> tuple[int, ...]:
        return (*self.kernel, self.c_in, self.c_out)


def _sq(k: int, n: int = 2) -> tuple[int, ...]:
    return (k,) * n


SHAPES = (
    Shape("resnet50.conv1", _sq(224), 3, 64, _sq(7), stride=2, padding=3),
    Shape("resnet50.layer1.1x1_reduce", _sq(56), 256, 64, _sq(1)),
    Shape("resnet50.layer1.3x3", _sq(56), 64, 64, _sq(3), padding=1),
    Shape("resnet50.layer1.1x1_expand", _sq(56), 64, 256, _sq(1)),
    Shape("resnet50.layer2.3x3_s2", _sq(56), 128, 128, _sq(3), stride=2, padding=1),
    Shape("resnet50.layer2.shortcut_s2", _sq(56), 256, 512, _sq(1), stride=2, padding=0),
    Shape("resnet50.layer3.3x3", _sq(14), 256, 256, _sq(3), padding=1),
    Shape("resnet50.layer4.1x1_expand", _sq(7), 512, 2048, _sq(1)),
    Shape("vgg16.conv1_1", _sq(224), 3, 64, _sq(3), padding=1),
    Shape("vgg16.conv3_3", _sq(56), 256, 256, _sq(3), padding=1),
    Shape("vgg16.conv5_3", _sq(14), 512, 512, _sq(3), padding=1),
    Shape("odd.3x3_17px_13to37", _sq(17), 13, 37, _sq(3), padding=1),
    Shape("odd.5x5_s2_asym_pad", _sq(33), 7, 19, _sq(5), stride=2, padding=((1, 2), (2, 1))),
    Shape("odd.2x2_same", _sq(15), 30, 30, _sq(2), padding="SAME"),
    Shape("odd.3x3_dilation2", _sq(31), 24, 24, _sq(3), padding=2, dilation=2),
    Shape("odd.1x1_15px_100to30", _sq(15), 100, 30, _sq(1)),
    Shape("conv1d.k9_s2", (4001,), 64, 64, (9,), stride=2, padding=4),
    Shape("conv1d.k3_dilation2", (1000,), 128, 128, (3,), padding=2, dilation=2),
    Shape("conv1d.1x1", (1000,), 256, 64, (1,)),
    Shape("conv3d.3x3x3", (16, 28, 28), 32, 32, _sq(3, 3), padding=1),
)
#: ``--quick``: one of each kind, tiny.
TINY = (
    Shape("tiny.3x3_odd", _sq(9), 5, 7, _sq(3), padding=((0, 1), (1, 0))),
    Shape("tiny.1x1", _sq(6), 8, 4, _sq(1)),
    Shape("tiny.conv1d", (17,), 4, 6, (3,), stride=2, padding=1),
    Shape("tiny.conv1d_1x1", (9,), 6, 4, (1,)),
    Shape("tiny.conv3d", (4, 5, 5), 3, 4, _sq(3, 3), padding=1),
)


def _spec(s: Shape, batch: int, dtype: str):
    return jaxconv.convolution.conv_spec(
        jax.ShapeDtypeStruct(s.input_shape(batch), dtype),
        jax.ShapeDtypeStruct(s.kernel_shape, dtype),
        **s.conv_args(),
    )


def without_extension(spec, platform: str) -> jaxconv.convolution.Plan:
    """The default plan where the oneDNN extension is not loaded."""
    return jaxconv.convolution.default_plan(spec, platform, without=("onednn",))


def _case(ctx: Context, s: Shape, batch: int, dtype: str) -> list[dict]:
    spec = _spec(s, batch, dtype)
    plan = jaxconv.convolution.choose(spec, platform=ctx.platform).plan
    variants: dict[str, Any] = {"default": None, "xla": "xla"}
    fallback = without_extension(spec, ctx.platform)
    if set(fallback) != {"xla"}:
        variants["no extension"] = fallback
    fan_in = s.c_in * math.prod(s.kernel)
    x, w, dy = ctx.rng_arrays(
        ctx.seed(s, batch, dtype),
        [s.input_shape(batch), s.kernel_shape, spec.out_shape],
        dtype,
        [1.0, fan_in**-0.5, 1.0],
    )
    compiled: dict[str, dict[str, Compiled]] = {p: {} for p in PASSES}
    for variant, name in variants.items():
        fwd, fb = conv_functions(name, **s.conv_args())
        compiled["fwd"][variant] = ctx.compile(fwd, x, w)
        compiled["fwd+bwd"][variant] = ctx.compile(fb, x, w, dy)
    cost = jaxconv.conv_cost(
        (*s.spatial, s.c_in),
        s.c_out,
        s.kernel,
        bias=False,
        batch=batch,
        dtype=dtype,
        **s.conv_args(),
    )
    records = []
    for pass_name in PASSES:
        timings = ctx.time(dict(compiled[pass_name]), default_repeats=5)
        lax_s = timings["xla"].median
        for variant, timing in timings.items():
            is_default = variant == "default"
            extra: dict[str, Any] = {
                "layer": s.name,
                "spatial": "×".join(map(str, s.spatial)),
                "c_in": s.c_in,
                "c_out": s.c_out,
                "k": "×".join(map(str, s.kernel)),
                "stride": s.stride,
                "pass": pass_name,
                "plan": "/".join(plan) if is_default else None,
                "without_extension": "/".join(fallback) if is_default else None,
                "speedup_vs_lax": lax_s / timing.median,
            }
            records.append(
                ctx.record(
                    NAME,
                    f"{variant} {pass_name}",
                    default=is_default,
                    batch=batch,
                    dtype=dtype,
                    timing=timing,
                    macs=cost.macs * (1 if pass_name == "fwd" else 3),
                    compiled=compiled[pass_name][variant],
                    **extra,
                )
            )
    return records


def _notes(ctx: Context, records: list[dict]) -> None:
    for pass_name in PASSES:
        for batch in dict.fromkeys(r["batch"] for r in records):
            rows = [r for r in records if r["pass"] == pass_name and r["batch"] == batch]
            for label, chosen in (
                ("the default", [r for r in rows if r["default"]]),
                (
                    "the default without the extension (on 1×1s; elsewhere it is lax)",
                    [r for r in rows if r["variant"] == f"no extension {pass_name}"],
                ),
            ):
                if not chosen:
                    continue
                q = [r["speedup_vs_lax"] for r in chosen]
                below = [
                    f"{r['layer']} {r['speedup_vs_lax']:.2f}×"
                    for r in chosen
                    if r["speedup_vs_lax"] < RULE
                ]
                ctx.note(
                    f"{pass_name}, batch {batch}: {label} runs at >= {RULE}× plain lax's speed "
                    f"on {len(chosen) - len(below)} of {len(chosen)} convs (median "
                    f"{statistics.median(q):.2f}×, min {min(q):.2f}×)"
                    + (f"; below: {', '.join(below)}" if below else ".")
                )


def run(ctx: Context) -> list[dict]:
    """Times the variants per shape, batch, dtype and pass; see the module docstring."""
    base = ctx.select(TINY if ctx.options.quick else SHAPES, NAME)
    batches = ctx.options.batches or ((1, 2) if ctx.options.quick else BATCHES)
    grid = [(s, n, d) for s in base for n in batches for d in ctx.dtypes()]
    records = []
    for s, batch, dtype in ctx.track(grid, lambda c: f"{c[0].name} batch {c[1]} {c[2]}"):
        records += _case(ctx, s, batch, dtype)
    _notes(ctx, records)
    return records
