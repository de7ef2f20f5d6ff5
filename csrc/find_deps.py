"""Prints, for CMake, where the build environment's jaxlib and oneDNN wheels put the XLA FFI
headers, oneDNN's headers and ``libdnnl.so.3`` (one per line, empty when not found).

Read from the distributions' RECORDs, so it works in pip's isolated build environment, whose
packages live in an overlay prefix that ``sysconfig`` does not know."""

import importlib.metadata
import importlib.util
from pathlib import Path


def _file(dist: str, name: str) -> str:
    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError:
        return ""
    for f in files:
        if f.name == name:
            path = Path(str(f.locate())).resolve()
            if path.exists():
                return str(path)
    return ""


spec = importlib.util.find_spec("jaxlib")
ffi = ""
if spec is not None and spec.submodule_search_locations:
    include = Path(next(iter(spec.submodule_search_locations))) / "include"
    ffi = str(include) if (include / "xla" / "ffi" / "api" / "ffi.h").exists() else ""
header = _file("onednn-devel-cpu-gomp", "dnnl.hpp")
print(ffi)
print(str(Path(header).parent) if header else "")
print(_file("onednn-cpu-gomp", "libdnnl.so.3"))
