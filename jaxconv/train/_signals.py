"""Stopping a run on SIGTERM / SIGINT at a step every process agrees on.

One process: the first SIGTERM or SIGINT becomes a flag the loop reads between steps (a
second one stops at once); the run saves a checkpoint and exits 143 / 130. Several processes
(``jax.distributed``): each would see its signal at a different step, and a host that stops
while the others enter the next step's collectives hangs them all. There, SIGTERM is JAX's
preemption notice, and orbax's preemption sync point (``reached_preemption``, the check
``CheckpointManager.reached_preemption`` makes) turns it into the same step on every host.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

import jax
import orbax.checkpoint as ocp

__all__ = ["StopSignals"]


class StopSignals:
    """A context manager: while open, :meth:`should_stop` says whether to stop after ``step``.

    Examples:
      >>> from jaxconv.train._signals import StopSignals
      >>> with StopSignals() as signals:
      ...     signals.should_stop(1), signals.received
      (False, None)
    """

    def __init__(self) -> None:
        self.received: str | None = None
        self._multiprocess = jax.process_count() > 1
        self._old: dict[signal.Signals, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            # With several processes, SIGTERM belongs to JAX's preemption notifier.
            signals = (signal.SIGINT,) if self._multiprocess else (signal.SIGTERM, signal.SIGINT)
            for sig in signals:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    def should_stop(self, step: int) -> bool:
        """Whether to stop after ``step`` completed steps (the same answer on every process).

        Several processes: a SIGINT stops this process only (as Ctrl-C stops all of them in a
        terminal); SIGTERM is synchronized.
        """
        if self._multiprocess and ocp.multihost.reached_preemption(step):
            self.received = self.received or "SIGTERM"
        return self.received is not None
