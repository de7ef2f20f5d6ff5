"""Inference engines as peers of the ``model`` suite: torch.compile, OpenVINO and ONNX Runtime,
each running the same torch network (``bench/torch_models.py``'s transcription with jaxconv's
weights) in its best f32 settings, with the same thread count as every other engine.

None of them is a jaxconv dependency: ``--peers openvino`` imports OpenVINO only when asked, and
an engine that is not installed is named in one line and skipped (:func:`available`).

The settings, stated in each record (``peer_settings``):

- ``torch-compile``: ``torch.compile`` (inductor) with ``torch._inductor.config.freezing =
  True`` (weights folded into the graph as constants, BatchNorm into the conv) and
  ``compile_threads = 1`` (no forked compile workers beside JAX's threads), called under
  ``torch.no_grad()``, channels_last, ``torch.set_num_threads(threads)``. It compiles lazily:
  its ``load_s`` is the ``torch.compile`` call, its ``first_call_s`` holds the compilation.
- ``openvino``: ``openvino.convert_model`` of the module's ``torch.export`` program (no ONNX
  file; OpenVINO's TorchScript tracing of the module is deprecated with torch's), then
  ``compile_model`` on ``CPU`` with ``INFERENCE_PRECISION_HINT=f32`` (OpenVINO silently runs
  bf16 on CPUs with native bf16 otherwise), ``INFERENCE_NUM_THREADS=threads`` and
  ``PERFORMANCE_HINT=LATENCY`` (one request at a time, as the timer calls it).
- ``onnxruntime``: the ONNX file written by ``torch.onnx.export`` (:data:`ONNX_EXPORTER`), run by
  an ``InferenceSession`` on ``CPUExecutionProvider`` with ``GraphOptimizationLevel.
  ORT_ENABLE_ALL``, ``intra_op_num_threads=threads`` and ``inter_op_num_threads=1``.

``load_s`` is each engine's own load/convert/compile time before its first call and
``first_call_s`` that first call, so a reader sees what a deployment pays once.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: The engines ``--peers`` takes beside ``torch`` (eager), in the order tables list them.
ENGINES = ("torch-compile", "openvino", "onnxruntime")
#: The modules each engine imports (onnxruntime's export also needs ``onnx``), and what to install.
REQUIRES = {
    "torch-compile": ("torch",),
    "openvino": ("torch", "openvino"),
    "onnxruntime": ("torch", "onnx", "onnxruntime"),
}
#: ``torch.onnx.export``'s exporter: ``dynamo=True`` (torch.export; needs ``onnxscript``) is the
#: one torch 2.13 keeps; the TorchScript one (``dynamo=False``) is deprecated.
ONNX_EXPORTER = {"dynamo": True, "verbose": False}


@dataclass
class Engine:
    """One engine ready to time: ``run()`` infers the fixed input and returns the logits as a
    NumPy ``[N, classes]`` array; ``settings`` records how it was built."""

    name: str
    version: str
    settings: dict[str, Any]
    load_s: float
    first_call_s: float
    run: Callable[[], Any]
    first_output: np.ndarray = field(repr=False)


def missing_modules(name: str) -> list[str]:
    """The modules engine ``name`` needs that are not installed here.

    >>> missing_modules("torch-compile") in ([], ["torch"])
    True
    """
    return [m for m in REQUIRES[name] if importlib.util.find_spec(m) is None]


def available(names: Iterable[str]) -> tuple[tuple[str, ...], str | None]:
    """``(the engines of names that are installed, one line naming the others or None)``;
    names that are no engine here (``torch``) are left out of both.

    >>> available(["torch"])
    ((), None)
    """
    present, missing = [], []
    for name in names:
        if name not in ENGINES:
            continue
        lacking = missing_modules(name)
        if lacking:
            missing.append(f"{name} (pip install {' '.join(lacking)})")
        else:
            present.append(name)
    if not missing:
        return tuple(present), None
    return tuple(present), (
        f"not installed, skipped: {', '.join(missing)}; engines are never jaxconv dependencies"
    )


def _timed_first(run: Callable[[], Any]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = run()
    return time.perf_counter() - start, np.asarray(out, np.float32)


def _torch_compile(net: Any, x: np.ndarray, threads: int) -> Engine:
    import torch
    import torch._inductor.config as inductor

    inductor.freezing = True  # process-wide: only this peer compiles with inductor
    # compile in this process: inductor's worker pool forks, and a fork of a process running
    # JAX's threads can deadlock (Python warns so); this costs compile time, not run time
    inductor.compile_threads = 1
    torch.set_num_threads(threads)
    xt = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
    start = time.perf_counter()
    compiled = torch.compile(net)
    load_s = time.perf_counter() - start

    def run() -> Any:
        with torch.no_grad():
            return compiled(xt)

    first_s, first = _timed_first(lambda: run().numpy())
    settings = {
        "backend": "inductor",
        "freezing": True,
        "compile_threads": 1,
        "grad": "torch.no_grad",
        "memory_format": "channels_last",
        "threads": threads,
    }
    return Engine("torch-compile", torch.__version__, settings, load_s, first_s, run, first)


def _openvino(net: Any, x: np.ndarray, threads: int) -> Engine:
    import openvino as ov
    import torch

    config = {
        "INFERENCE_PRECISION_HINT": "f32",
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
    }
    start = time.perf_counter()
    exported = torch.export.export(net, (torch.from_numpy(x),))
    converted = ov.convert_model(exported)
    compiled = ov.Core().compile_model(converted, "CPU", config)
    load_s = time.perf_counter() - start
    request = compiled.create_infer_request()
    x = np.ascontiguousarray(x)

    def run() -> Any:
        request.infer({0: x})
        return request.get_output_tensor(0).data

    first_s, first = _timed_first(run)
    settings: dict[str, Any] = {"source": "openvino.convert_model(torch.export.export(net))"}
    settings.update(device="CPU", **config)
    return Engine("openvino", ov.__version__, settings, load_s, first_s, run, first)


def _onnxruntime(net: Any, x: np.ndarray, threads: int) -> Engine:
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    with tempfile.TemporaryDirectory(prefix="jaxconv-onnx-") as folder:
        path = Path(folder) / "model.onnx"
        start = time.perf_counter()
        with torch.no_grad():
            torch.onnx.export(net, (torch.from_numpy(x),), str(path), **ONNX_EXPORTER)
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        load_s = time.perf_counter() - start
    feed = {session.get_inputs()[0].name: np.ascontiguousarray(x)}

    def run() -> Any:
        return session.run(None, feed)[0]

    first_s, first = _timed_first(run)
    settings = {
        "exporter": "torch.onnx.export(dynamo=True)",
        "provider": "CPUExecutionProvider",
        "graph_optimization_level": "ORT_ENABLE_ALL",
        "intra_op_num_threads": threads,
        "inter_op_num_threads": 1,
    }
    return Engine("onnxruntime", ort.__version__, settings, load_s, first_s, run, first)


BUILDERS: dict[str, Callable[[Any, np.ndarray, int], Engine]] = {
    "torch-compile": _torch_compile,
    "openvino": _openvino,
    "onnxruntime": _onnxruntime,
}


def build(name: str, net: Any, x_nchw: np.ndarray, threads: int) -> Engine:
    """Engine ``name`` (one of :data:`ENGINES`) running the eval-mode torch module ``net`` on
    the float32 ``[N, C, H, W]`` input ``x_nchw`` with ``threads`` threads; its first call is
    made (and timed) here.

    Raises ValueError for an unknown ``name``.
    """
    if name not in BUILDERS:
        raise ValueError(f"`name` must be one of {', '.join(ENGINES)}, got {name!r}")
    return BUILDERS[name](net, np.ascontiguousarray(x_nchw, np.float32), threads)


def relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    """``max |got - expected| / max |expected|``; infinite where the shapes differ.

    >>> relative_error(np.array([[1.0, 2.1]]), np.array([[1.0, 2.0]]))  # doctest: +ELLIPSIS
    0.05...
    >>> relative_error(np.zeros((2, 3)), np.ones((3, 2)))
    inf
    """
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    if got.shape != expected.shape:
        return float("inf")
    return float(np.max(np.abs(got - expected)) / max(float(np.max(np.abs(expected))), 1e-30))
