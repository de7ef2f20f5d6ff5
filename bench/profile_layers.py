"""Where a frozen model's time goes, against OpenVINO's and ONNX Runtime's own per-node profiles.

``python -m bench.profile_layers MODEL BATCH`` (``resnet50``, ``mobilenetv2``; 224×224, float32,
every core) prints, for the same weights:

- jaxconv frozen: the whole network under ``jax.jit``, then each :class:`jaxconv.nn.FrozenConv`
  call timed alone under ``jax.jit`` on its own input (median of 20), summed by kind of conv;
  what the whole takes beyond the sum of its convs is the rest (pools, the classifier, XLA's
  dispatch between custom calls).
- OpenVINO (``PERF_COUNT``) and ONNX Runtime (``enable_profiling``): each engine's own per-node
  times of one inference, summed by node type, beside its whole-network median.

Peers are measured, never depended on: an engine that is not installed is skipped. Not a suite
of ``python -m bench`` (no records, no plots); docs/performance.md quotes its output.
"""

from __future__ import annotations

import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

REPEATS = 20


def _median_ms(fn: Any, repeats: int = REPEATS) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _kind(conv: Any, x_shape: tuple[int, ...]) -> str:
    k = conv.kernel.shape[:-2]
    kernel = "×".join(map(str, k))
    groups = "depthwise " if conv.groups > 1 and conv.groups == x_shape[-1] else ""
    return f"{groups}{kernel} conv"


def jaxconv_profile(name: str, batch: int) -> tuple[float, dict[str, float], Any]:
    from flax import nnx

    from jaxconv.models import MODELS
    from jaxconv.nn import FrozenConv, freeze

    model = MODELS[name].build(1000, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (batch, 224, 224, 3))
    frozen = freeze(model, x)
    graph, state = nnx.split(frozen)
    whole = jax.jit(lambda s, x: nnx.merge(graph, s)(x))
    total = _median_ms(lambda: whole(state, x))
    calls: list[tuple[Any, Any, Any]] = []
    original = FrozenConv.__call__

    def recording(self, x, residual=None):
        calls.append((self, x, residual))
        return original(self, x, residual)

    FrozenConv.__call__ = recording  # type: ignore[method-assign]
    try:
        frozen(x)
    finally:
        FrozenConv.__call__ = original  # type: ignore[method-assign]
    by_kind: dict[str, float] = collections.defaultdict(float)
    for conv, cx, r in calls:
        g, s = nnx.split(conv)
        f = jax.jit(lambda s, x, r, g=g: nnx.merge(g, s)(x, r))
        by_kind[_kind(conv, cx.shape)] += _median_ms(lambda f=f, s=s, cx=cx, r=r: f(s, cx, r))
    return total, dict(by_kind), model


def _torch_net(model: Any, name: str) -> Any:
    import torch

    from bench import torch_models
    from jaxconv.models import to_torchvision_state_dict

    net = torch_models.MODELS[name](1000)
    net.load_state_dict(
        {k: torch.from_numpy(np.array(v)) for k, v in to_torchvision_state_dict(model).items()}
    )
    return net.eval()


def openvino_profile(net: Any, x: np.ndarray) -> tuple[float, dict[str, float]]:
    import openvino as ov
    import torch

    config = {
        "INFERENCE_PRECISION_HINT": "f32",
        "INFERENCE_NUM_THREADS": _threads(),
        "PERFORMANCE_HINT": "LATENCY",
        "PERF_COUNT": True,
    }
    converted = ov.convert_model(torch.export.export(net, (torch.from_numpy(x),)))
    request = ov.Core().compile_model(converted, "CPU", config).create_infer_request()
    total = _median_ms(lambda: request.infer({0: x}))
    by_type: dict[str, float] = collections.defaultdict(float)
    for node in request.get_profiling_info():
        by_type[f"{node.node_type} ({node.exec_type})"] += node.real_time.total_seconds() * 1e3
    return total, dict(by_type)


def onnxruntime_profile(net: Any, x: np.ndarray) -> tuple[float, dict[str, float]]:
    import onnxruntime as ort
    import torch

    with tempfile.TemporaryDirectory(prefix="jaxconv-onnx-") as folder:
        path = Path(folder) / "model.onnx"
        with torch.no_grad():
            torch.onnx.export(net, (torch.from_numpy(x),), str(path), dynamo=True)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = _threads()
        options.inter_op_num_threads = 1
        plain = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {plain.get_inputs()[0].name: x}
        total = _median_ms(lambda: plain.run(None, feed))
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(folder) / "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for _ in range(REPEATS):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    by_type: dict[str, float] = collections.defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by_type[e["args"]["op_name"]] += e["dur"] / 1e3 / REPEATS
    return total, dict(by_type)


def _threads() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _show(title: str, total: float, parts: dict[str, float]) -> None:
    print(f"{title}: {total:.2f} ms per inference")
    for kind, ms in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:<40} {ms:8.2f} ms  {100 * ms / total:5.1f}%")
    print(f"  {'(sum of the parts)':<40} {sum(parts.values()):8.2f} ms")


def main(argv: list[str]) -> None:
    name, batch = argv[0], int(argv[1])
    total, parts, model = jaxconv_profile(name, batch)
    _show(f"jaxconv frozen {name} batch {batch}", total, parts)
    try:
        import torch

        torch.set_num_threads(_threads())
    except ImportError:
        print("torch is not installed: no engine profiles")
        return
    net = _torch_net(model, name)
    x = np.asarray(jax.random.normal(jax.random.key(0), (batch, 3, 224, 224)), np.float32)
    for engine, profile in (("OpenVINO", openvino_profile), ("ONNX Runtime", onnxruntime_profile)):
        try:
            total, parts = profile(net, x)
        except ImportError as missing:
            print(f"{engine}: not installed ({missing})")
            continue
        _show(f"{engine} {name} batch {batch}", total, parts)


if __name__ == "__main__":
    main(sys.argv[1:])
