"""The ``metrics`` JSON-lines file of a run."""

from __future__ import annotations

import contextlib
import json
import os
from typing import IO, Any

import jax

__all__ = ["MetricsLog"]


class MetricsLog:
    """Appends one JSON object a line (process 0 only); ``path=None`` writes nothing.

    On resume (``start_step > 0``), lines past the resumed step are dropped, so the file reads
    like the uninterrupted run's.

    Raises:
      OSError: the file cannot be written.

    Examples:
      >>> import os, tempfile
      >>> from jaxconv.train._metrics_log import MetricsLog
      >>> path = os.path.join(tempfile.mkdtemp(), "m.jsonl")
      >>> log = MetricsLog(path, start_step=0)
      >>> log.write({"step": 1, "loss": 2.5}); log.close()
      >>> with open(path) as f:
      ...     f.read()
      '{"step": 1, "loss": 2.5}\\n'
    """

    def __init__(self, path: str | None, start_step: int):
        self.file: IO[str] | None = None
        if path is None or jax.process_index() != 0:
            return
        kept = []
        if start_step > 0 and os.path.exists(path):
            with open(path) as f:
                for line in f:
                    with contextlib.suppress(ValueError):
                        if json.loads(line).get("step", 0) <= start_step:
                            kept.append(line)
        self.file = open(path, "w")
        self.file.writelines(kept)
        self.file.flush()

    def write(self, record: dict[str, Any]) -> None:
        """Writes ``record`` as one line, flushed."""
        if self.file is not None:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()

    def close(self) -> None:
        """Closes the file."""
        if self.file is not None:
            self.file.close()
