"""Inference engines as peers of the ``model`` suite: torch.compile, OpenVINO and ONNX Runtime,
each running the same torch network (``bench/torch_models.py``'s transcription with jaxconv's
weights) in its best settings for the suite's dtype, with the same thread count as every other
engine. In bfloat16 (``--dtype bfloat16``, against jaxconv's bfloat16 model) torch.compile runs
under ``torch.autocast`` and OpenVINO with ``INFERENCE_PRECISION_HINT=bf16``; the precision
OpenVINO actually compiled for is recorded (``ran_precision``: ``f32`` on a CPU without native
bf16, where OpenVINO ignores the hint). ONNX Runtime has no bfloat16 convolution on its CPU
provider (:func:`unsupported`), so it is named and not timed in bfloat16.

None of them is a jaxconv dependency: ``--peers openvino`` imports OpenVINO only when asked, and
an engine that is not installed is named in one line and skipped (:func:`available`).

The settings, stated in each record (``peer_settings``):

- ``torch-compile``: ``torch.compile`` (inductor) with ``torch._inductor.config.freezing =
  True`` (weights folded into the graph as constants, BatchNorm into the conv) and
  ``compile_threads = 1`` (no forked compile workers beside JAX's threads), called under
  ``torch.no_grad()`` (bfloat16: and ``torch.autocast``), channels_last,
  ``torch.set_num_threads(threads)``. It compiles lazily:
  its ``load_s`` is the ``torch.compile`` call, its ``first_call_s`` holds the compilation.
- ``openvino``: ``openvino.convert_model`` of the module's ``torch.export`` program (no ONNX
  file; OpenVINO's TorchScript tracing of the module is deprecated with torch's), then
  ``compile_model`` on ``CPU`` with ``INFERENCE_PRECISION_HINT=f32`` (OpenVINO silently runs
  bf16 on CPUs with native bf16 otherwise; ``bf16`` in a bfloat16 run),
  ``INFERENCE_NUM_THREADS=threads`` and
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
#: The dtypes the engines run, as OpenVINO's precision hint spells them.
PRECISIONS = {"float32": "f32", "bfloat16": "bf16"}


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


def _torch_compile(net: Any, x: np.ndarray, threads: int, dtype: str) -> Engine:
    import contextlib

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

    half = dtype == "bfloat16"

    def run() -> Any:
        cast = torch.autocast("cpu", torch.bfloat16) if half else contextlib.nullcontext()
        with torch.no_grad(), cast:
            return compiled(xt)

    first_s, first = _timed_first(lambda: run().float().numpy())
    settings = {
        "backend": "inductor",
        "freezing": True,
        "compile_threads": 1,
        "grad": "torch.no_grad",
        "memory_format": "channels_last",
        "threads": threads,
    }
    if half:
        settings["autocast"] = "bfloat16"
    return Engine("torch-compile", torch.__version__, settings, load_s, first_s, run, first)


def _openvino(net: Any, x: np.ndarray, threads: int, dtype: str) -> Engine:
    import openvino as ov
    import torch

    config = {
        "INFERENCE_PRECISION_HINT": PRECISIONS[dtype],
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
    settings["ran_precision"] = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
    return Engine("openvino", ov.__version__, settings, load_s, first_s, run, first)


def _onnxruntime(net: Any, x: np.ndarray, threads: int, dtype: str) -> Engine:
    import onnxruntime as ort
    import torch

    why = unsupported("onnxruntime", dtype)
    if why is not None:
        raise ValueError(why)
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


def _onnxruntime_bf16_conv() -> str | None:
    """None where ONNX Runtime's CPU provider runs a bfloat16 Conv, else its error (a one-conv
    model in bfloat16, opset 22, the first whose Conv admits bfloat16)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    bf16 = TensorProto.BFLOAT16
    weight = helper.make_tensor("w", bf16, [1, 1, 1, 1], np.zeros(1, np.uint16).tobytes(), True)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"])],
        "conv",
        [helper.make_tensor_value_info("x", bf16, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("y", bf16, None)],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)], ir_version=10)
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as failure:  # its own error is the reason
        return f"{type(failure).__name__}: {str(failure).strip()[:160]}"
    return None


def unsupported(name: str, dtype: str) -> str | None:
    """Why engine ``name`` cannot run the suite's ``dtype`` here, else None.

    >>> unsupported("openvino", "float16")
    'openvino runs float32 or bfloat16 here, not float16'
    """
    if dtype not in PRECISIONS:
        return f"{name} runs float32 or bfloat16 here, not {dtype}"
    if name == "onnxruntime" and dtype == "bfloat16":
        why = _onnxruntime_bf16_conv()
        if why is not None:
            return f"ONNX Runtime's CPUExecutionProvider has no bfloat16 Conv ({why})"
    return None


BUILDERS: dict[str, Callable[[Any, np.ndarray, int, str], Engine]] = {
    "torch-compile": _torch_compile,
    "openvino": _openvino,
    "onnxruntime": _onnxruntime,
}


def build(name: str, net: Any, x_nchw: np.ndarray, threads: int, dtype: str = "float32") -> Engine:
    """Engine ``name`` (one of :data:`ENGINES`) running the eval-mode float32 torch module
    ``net`` on the float32 ``[N, C, H, W]`` input ``x_nchw`` with ``threads`` threads, computing
    in ``dtype`` (``float32`` or ``bfloat16``); its first call is made (and timed) here.

    Raises ValueError for an unknown ``name``, or where :func:`unsupported` says why not.
    """
    if name not in BUILDERS:
        raise ValueError(f"`name` must be one of {', '.join(ENGINES)}, got {name!r}")
    if dtype not in PRECISIONS:
        raise ValueError(f"`dtype` must be one of {', '.join(PRECISIONS)}, got {dtype!r}")
    return BUILDERS[name](net, np.ascontiguousarray(x_nchw, np.float32), threads, dtype)


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
