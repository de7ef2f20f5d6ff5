"""torchvision ``state_dict`` files: what ``--init torchvision:FILE`` reads and
``--export-torchvision FILE`` writes.

The format is the file's suffix: ``.npz`` (NumPy), ``.safetensors`` (the ``safetensors``
package's NumPy API) or ``.pth`` / ``.pt`` (``torch.save`` / ``torch.load``). The packages are
imported only when such a file is read or written; a missing one is an ``ImportError`` that says
what to install. Arrays come back as NumPy arrays, named as torchvision names them.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "WEIGHT_FORMATS",
    "check_weights_package",
    "read_state_dict",
    "weights_format",
    "write_state_dict",
]

#: File suffix → the package that reads and writes it (None: NumPy).
WEIGHT_FORMATS: dict[str, str | None] = {
    ".npz": None,
    ".safetensors": "safetensors",
    ".pth": "torch",
    ".pt": "torch",
}


def weights_format(path: Any, argument: str) -> str:
    """The format (suffix) of a state_dict file, checked from its name alone.

    Args:
      path: the file name.
      argument: the caller's argument, named in the error.

    Returns:
      ``".npz"``, ``".safetensors"``, ``".pth"`` or ``".pt"``.

    Raises:
      TypeError: ``path`` is not a str.
      ValueError: another suffix.

    Examples:
      >>> from jaxconv.train._weights import weights_format
      >>> weights_format("resnet18.safetensors", "init")
      '.safetensors'
      >>> weights_format("resnet18.bin", "init")
      Traceback (most recent call last):
      ...
      ValueError: `init` file must end in .npz, .safetensors, .pth or .pt, got 'resnet18.bin'
    """
    if not isinstance(path, str) or not path:
        raise TypeError(f"`{argument}` must be a file name, got {path!r}")
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in WEIGHT_FORMATS:
        names = list(WEIGHT_FORMATS)
        raise ValueError(
            f"`{argument}` file must end in {', '.join(names[:-1])} or {names[-1]}, got {path!r}"
        )
    return suffix


def _package(path: str, argument: str) -> Any:
    """The module that reads and writes ``path``'s format (None for NumPy's ``.npz``)."""
    name = WEIGHT_FORMATS[weights_format(path, argument)]
    if name is None:
        return None
    try:
        if name == "safetensors":
            import safetensors.numpy

            return safetensors.numpy
        import torch

        return torch
    except ImportError:
        raise ImportError(
            f"`{argument}` file {path} needs the {name} package, which is not installed: "
            f"pip install {name}"
        ) from None


def check_weights_package(path: str, argument: str) -> None:
    """Raises ``ImportError`` (naming what to install) now if ``path``'s format needs a
    package that is missing, rather than after training.

    Examples:
      >>> from jaxconv.train._weights import check_weights_package
      >>> check_weights_package("weights.npz", "export_torchvision")   # NumPy: always there
    """
    _package(path, argument)


def _from_torch(value: Any) -> np.ndarray:
    value = value.detach().cpu()
    if value.dtype.is_floating_point and value.element_size() < 4:  # bfloat16, float16
        value = value.float()
    return value.numpy()


def read_state_dict(path: str, argument: str = "init") -> dict[str, np.ndarray]:
    """Reads a torchvision ``state_dict`` from an ``.npz``, ``.safetensors`` or ``.pth`` file.

    Args:
      path: the file; its suffix says the format (:data:`WEIGHT_FORMATS`).
      argument: the caller's argument, named in errors.

    Returns:
      ``{name: NumPy array}`` (torch's bfloat16 and float16 tensors as float32).

    Raises:
      ValueError: the file is missing or is not a state_dict in its format.
      ImportError: its format needs ``safetensors`` or ``torch``, which is not installed.

    Examples:
      >>> import os, tempfile, numpy as np
      >>> from jaxconv.train._weights import read_state_dict, write_state_dict
      >>> path = os.path.join(tempfile.mkdtemp(), "w.npz")
      >>> write_state_dict({"fc.weight": np.ones((2, 3), np.float32)}, path)
      >>> read_state_dict(path)["fc.weight"].shape
      (2, 3)
    """
    module = _package(path, argument)
    if not os.path.isfile(path):
        raise ValueError(f"`{argument}` file {path} does not exist")
    suffix = weights_format(path, argument)
    what = {".npz": "an .npz archive", ".safetensors": "a safetensors file"}.get(
        suffix, "a torch checkpoint"
    )
    errors: tuple[type[BaseException], ...] = (OSError, ValueError, EOFError, RuntimeError)
    errors += (zipfile.BadZipFile, pickle.UnpicklingError)
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                loaded: Any = {name: archive[name] for name in archive.files}
        elif suffix == ".safetensors":
            import safetensors

            errors += (safetensors.SafetensorError,)
            loaded = module.load_file(path)
        else:
            loaded = module.load(path, map_location="cpu", weights_only=True)
    except errors as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"`{argument}` file {path} is not {what}: {reason}") from None
    if not isinstance(loaded, Mapping) or not all(hasattr(v, "shape") for v in loaded.values()):
        raise ValueError(
            f"`{argument}` file {path} holds no state_dict (a mapping of names to arrays), "
            f"got {type(loaded).__name__}"
        )
    return {
        str(k): _from_torch(v) if hasattr(v, "detach") else np.asarray(v) for k, v in loaded.items()
    }


def write_state_dict(state_dict: Mapping[str, np.ndarray], path: str, argument: str = "") -> None:
    """Writes ``state_dict`` to ``path`` in its suffix's format, atomically (a file written
    beside it, then renamed over it).

    Args:
      state_dict: ``{name: NumPy array}`` (:func:`jaxconv.models.to_torchvision_state_dict`).
      path: the file; ``.npz``, ``.safetensors``, ``.pth`` or ``.pt``.
      argument: the caller's argument, named in errors (default: ``export_torchvision``).

    Raises:
      ValueError: another suffix.
      ImportError: its format needs ``safetensors`` or ``torch``, which is not installed.
      OSError: the file cannot be written.
    """
    argument = argument or "export_torchvision"
    module = _package(path, argument)
    suffix = weights_format(path, argument)
    folder = os.path.dirname(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(prefix=".export-", suffix=suffix, dir=folder)
    try:
        with os.fdopen(handle, "wb") as f:
            if suffix == ".npz":
                arrays: dict[str, Any] = dict(state_dict)
                np.savez(f, **arrays)
        if suffix == ".safetensors":
            module.save_file(
                {k: np.require(v, requirements="C") for k, v in state_dict.items()}, tmp
            )
        elif suffix in (".pth", ".pt"):
            module.save({k: module.from_numpy(np.array(v)) for k, v in state_dict.items()}, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
