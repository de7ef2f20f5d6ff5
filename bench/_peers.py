"""Peers: other frameworks timed on the same shapes, in the same run, alternating with jaxconv.

PyTorch is never a jaxconv dependency: it is imported here only when ``--peers torch`` asks.
Its ``conv2d`` (and ``conv_transpose2d``) runs channels_last (oneDNN on CPU, cuDNN on GPU with
``cudnn.benchmark``) with every CPU thread, in the dtype asked (bf16 on a GPU by default).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any

import numpy as np

PEERS = ("torch",)


class TorchPeer:
    """Converts jax arrays to torch tensors and wraps torch calls into timed runners."""

    name = "torch"

    def __init__(self, platform: str):
        # OpenMP's default spin-wait makes torch's idle threads fight XLA's (same process) and
        # any other load for the cores: on a loaded 2-core VM a 5×5 conv took 41 ms active vs
        # 7 ms passive. Passive waiting is torch's better setting here; read at OpenMP start.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import torch
        except ImportError:
            raise ValueError(
                "`--peers torch` needs PyTorch, which is not installed here; install it "
                "separately (`pip install torch==2.13.0`; it is never a jaxconv dependency)"
            ) from None
        self.torch = torch
        torch.set_num_threads(os.cpu_count() or 1)
        if platform in ("gpu", "cuda", "rocm"):
            if not torch.cuda.is_available():
                raise ValueError(
                    f"`--peers torch` on a {platform} device needs a CUDA build of PyTorch; "
                    f"this one ({torch.__version__}) sees no GPU"
                )
            self.device = torch.device("cuda")
            # cuDNN picks its fastest algorithm per shape (timed at the first call, which the
            # warm-up absorbs), as a tuned PyTorch training script does.
            torch.backends.cudnn.benchmark = True
        else:
            self.device = torch.device("cpu")
        self.version = torch.__version__
        self.threads = torch.get_num_threads()

    def _dtype(self, dtype: str) -> Any:
        return {
            "float32": self.torch.float32,
            "bfloat16": self.torch.bfloat16,
            "float16": self.torch.float16,
        }[dtype]

    def activation(self, x_nhwc: Any, dtype: str) -> Any:
        """``[N, H, W, C]`` jax array → ``[N, C, H, W]`` tensor in channels_last memory."""
        t = self.torch.from_numpy(np.array(x_nhwc, dtype=np.float32)).permute(0, 3, 1, 2)
        return t.to(self.device, self._dtype(dtype)).contiguous(
            memory_format=self.torch.channels_last
        )

    def kernel(self, w_hwio: Any, dtype: str, transposed: bool = False) -> Any:
        """``[kh, kw, C_in/groups, C_out]`` (or ``[C_in, C_out]``) → OIHW
        ``[C_out, C_in/groups, kh, kw]``, what ``conv2d`` takes for any ``groups``; channels_last
        memory.

        ``transposed``: the kernel of a transposed conv, ``[kh, kw, C_in, C_out]`` *unflipped*,
        → ``[C_in, C_out, kh, kw]``, what ``conv_transpose2d`` takes (jaxconv runs it as an
        input-dilated conv with the kernel flipped spatially, ``w[::-1, ::-1]``).
        """
        w = np.array(w_hwio, dtype=np.float32)
        if w.ndim == 2:
            w = w.reshape(1, 1, *w.shape)
        t = self.torch.from_numpy(w).permute(*((2, 3, 0, 1) if transposed else (3, 2, 0, 1)))
        return t.to(self.device, self._dtype(dtype)).contiguous(
            memory_format=self.torch.channels_last
        )

    def vector(self, b: Any, dtype: str) -> Any:
        return self.torch.from_numpy(np.array(b, dtype=np.float32)).to(
            self.device, self._dtype(dtype)
        )

    def _timed(self, run: Callable[[], Any]) -> Callable[[], Any]:
        """``run`` with its ``finish``: the timer calls it once after the calls it queued
        (:func:`jaxconv.convolution.round_robin`), so torch's calls queue on the GPU as jax's do."""
        cuda = self.device.type == "cuda"
        run.finish = self.torch.cuda.synchronize if cuda else (lambda: None)  # type: ignore[attr-defined]
        return run

    def runner(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """``fn`` under ``torch.inference_mode``; synchronized on CUDA by the timer."""
        torch = self.torch

        def run() -> Any:
            with torch.inference_mode():
                return fn()

        return self._timed(run)

    def train_runner(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """``fn`` with autograd on; synchronized on CUDA by the timer."""
        return self._timed(lambda: fn())


def check_agreement(name: str, y: Any, y_torch: Any, tolerance: float) -> float:
    """``max |torch - jaxconv| / max |jaxconv|`` of an NHWC jax output and the peer's NCHW
    tensor; raises RuntimeError when it exceeds ``tolerance`` or the shapes differ (the peer
    computes something else: a wrong weight layout, padding or branch order)."""
    ref = np.asarray(y, dtype=np.float32)
    got = y_torch.float().permute(0, 2, 3, 1).cpu().numpy()
    if got.shape != ref.shape:
        raise RuntimeError(f"{name}: torch's output is {got.shape}, jaxconv's {ref.shape}")
    err = float(np.max(np.abs(got - ref)) / max(float(np.max(np.abs(ref))), 1e-30))
    if err > tolerance:
        raise RuntimeError(
            f"{name}: torch and jaxconv disagree (max error {err:.2g} of the output's max): "
            "not the same computation"
        )
    return err


def load(names: tuple[str, ...], platform: str) -> TorchPeer | None:
    """The torch peer for ``--peers names``, or None where ``names`` is empty: ``torch`` and
    every inference engine (:data:`bench._engines.ENGINES`, which run torch's transcriptions)
    need it."""
    return TorchPeer(platform) if names else None


#: What a run without ``--peers`` says when torch is not installed.
INSTALL_HINT = (
    "torch is not installed: jaxconv is compared with plain lax only; `pip install torch` adds "
    "PyTorch as a peer (`--peers none` silences this)."
)


def auto(platform: str) -> tuple[TorchPeer | None, str | None]:
    """The peer when ``--peers`` is not given: ``(torch, None)`` where torch is installed and
    runs on ``platform``, else ``(None, a one-line note saying why and how to add it)``."""
    if importlib.util.find_spec("torch") is None:
        return None, INSTALL_HINT
    try:
        return TorchPeer(platform), None
    except ValueError as err:  # torch without CUDA on a GPU, or a broken install
        return None, f"no torch peer: {err}; `--peers none` leaves it out."
