"""The ``onednn`` lowering: a conv's forward, input gradient and weight gradient on Intel's
oneDNN, called through XLA's FFI (C++ in ``csrc/onednn_conv.cc``, built at install).

XLA:CPU's own conv kernels (YNNPACK, Eigen) reach half of PyTorch's speed on dense convs and a
few percent on depthwise ones; PyTorch runs oneDNN. Here the same primitives run inside a
jitted JAX program: three JAX primitives (``onednn_conv_fwd``, ``onednn_conv_bwd_data``,
``onednn_conv_bwd_weights``), each one FFI call, closed under differentiation — the transpose of
each is one of the other two — so ``grad`` of any order, ``jvp`` and ``vmap`` (a mapped input
is folded into the batch; mapped weights run one call per element) stay on oneDNN. An
input-dilated (transposed) conv runs as oneDNN's deconvolution. Under ``jit`` with a
batch-sharded input each device runs its shard (``custom_partitioning``); ``shard_map`` too.
On AMX, bfloat16 groups narrower than 16 channels are merged into block-diagonal ones
(:func:`merged_groups`).

The shared library is loaded on first use, never on ``import jaxconv``, and only from this
installation (see "loading" below). Where it cannot be (not built, another OS or CPU,
``JAXCONV_DISABLE_ONEDNN=1``, a stale build), :func:`supports` gives the reason for every spec
and the dispatch uses the XLA lowerings. It also declines any conv whose geometry oneDNN would
hold past 32 bits (:func:`int32_problem`). Each primitive lowers to the lax conv it computes on
every platform but the CPU and whenever a program is lowered for ``jax.export``, so exported
programs hold no custom call. No activation runs as a oneDNN post-op (NaN must propagate).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import math
import os
import platform
import re
import site
import sys
import sysconfig
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental.custom_partitioning import custom_partitioning
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxconv._check import check_int
from jaxconv._geometry import INT32_LIMIT, dilated_size
from jaxconv._version import __version__
from jaxconv.kernels.lowering import ROLES, Lowering
from jaxconv.kernels.spec import ConvSpec

_NEEDS_DEVICES: set[Primitive] | None
try:  # jit lowers a primitive listed here with its devices (custom_partitioning is listed)
    from jax._src.dispatch import prim_requires_devices_during_lowering as _NEEDS_DEVICES
except ImportError:  # a later jax: then a batch-sharded conv is gathered first (still correct)
    _NEEDS_DEVICES = None

NAME = "onednn"
LIBRARY = "libjaxconv_onednn.so"
DISABLE_ENV = "JAXCONV_DISABLE_ONEDNN"
_TARGETS = {
    "jaxconv_onednn_fwd": "JaxconvOnednnForward",
    "jaxconv_onednn_bwd_data": "JaxconvOnednnBackwardData",
    "jaxconv_onednn_bwd_weights": "JaxconvOnednnBackwardWeights",
}
#: The extension's plain C functions and their result types (all must be present).
_SYMBOLS = {
    "jaxconv_onednn_version": ctypes.c_char_p,
    "jaxconv_onednn_ffi_api": ctypes.c_int64,
    "jaxconv_onednn_native_bf16": ctypes.c_int,
    "jaxconv_onednn_amx": ctypes.c_int,
    "jaxconv_onednn_cache_size": ctypes.c_int64,
    "jaxconv_onednn_cache_capacity": ctypes.c_int64,
    "jaxconv_onednn_set_cache_capacity": None,
    "jaxconv_onednn_scratchpad_bytes": ctypes.c_int64,
    **dict.fromkeys(_TARGETS.values(), ctypes.c_void_p),
}


# --- loading -------------------------------------------------------------------------------
#
# Only files of this installation are ever loaded: the extension from jaxconv's own tree, and
# libdnnl.so.3 from the onednn-cpu-gomp distribution installed in the same site-packages as
# jaxconv. Distributions are looked up in the interpreter's own site-packages (sysconfig), never
# through sys.path, which holds the current directory: a planted ``*.dist-info`` there must not
# decide what is loaded into the process.


class OnednnUnavailableWarning(RuntimeWarning):
    """The oneDNN extension is installed but cannot be used (it fails to load, lacks a symbol,
    or was built for another jaxconv or XLA FFI version); jaxconv runs on XLA instead."""


def _site_dirs() -> list[Path]:
    """The interpreter's own site-packages (a venv's, the system's, the user's), resolved."""
    names = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    if site.ENABLE_USER_SITE:
        names.add(site.getusersitepackages())
    dirs = [Path(n).resolve() for n in sorted(n for n in names if n)]
    return [d for d in dirs if d.is_dir()]


def _distribution(name: str, where: list[Path]) -> tuple[Path, importlib.metadata.Distribution]:
    """The directory holding distribution ``name``'s metadata, and the distribution, searched
    in ``where`` only; raises ``LookupError`` when it is in none of them."""
    for directory in where:
        for dist in importlib.metadata.distributions(name=name, path=[str(directory)]):
            return directory, dist
    raise LookupError(name)


def _recorded(dist: importlib.metadata.Distribution, filename: str, root: Path) -> Path | None:
    """Where ``dist``'s RECORD put ``filename``, if that file exists inside ``root``."""
    for f in dist.files or []:
        if f.name == filename:
            path = Path(str(f.locate())).resolve()
            if path.is_file() and path.is_relative_to(root):
                return path
    return None


def _jaxconv_site() -> Path | None:
    """The site-packages that holds the installed ``jaxconv`` (a wheel or an editable install)."""
    try:
        return _distribution("jaxconv", _site_dirs())[0]
    except LookupError:
        return None


def _extension_path() -> Path | None:
    """The built extension, in jaxconv's own tree only: beside this module (a wheel, or a build
    copied into the tree), else where the installed ``jaxconv`` distribution recorded it in its
    own site-packages (an editable install run from its source tree, as pytest and
    ``python -m bench`` do)."""
    here = Path(__file__).with_name(LIBRARY)
    if here.is_file():
        return here
    try:
        directory, dist = _distribution("jaxconv", _site_dirs())
    except LookupError:
        return None
    return _recorded(dist, LIBRARY, directory / "jaxconv")


def _dnnl_path() -> Path | None:
    """``libdnnl.so.3`` from the ``onednn-cpu-gomp`` distribution installed in the same
    site-packages as jaxconv (its library lies in the environment's ``lib/``), else None."""
    site_dir = _jaxconv_site()  # None: jaxconv is not installed, a build copied into its tree
    try:
        _, dist = _distribution("onednn-cpu-gomp", [site_dir] if site_dir else _site_dirs())
    except LookupError:
        return None
    return _recorded(dist, "libdnnl.so.3", Path(sys.prefix).resolve())


def _ffi_api_of_jaxlib() -> tuple[int, int] | None:
    """The XLA FFI API version (major, minor) of the running jaxlib, from its headers."""
    try:
        text = (Path(jax.ffi.include_dir()) / "xla" / "ffi" / "api" / "c_api.h").read_text()
    except (OSError, AttributeError):
        return None
    found = dict(re.findall(r"#define XLA_FFI_API_(MAJOR|MINOR) (\d+)", text))
    if set(found) != {"MAJOR", "MINOR"}:
        return None
    return int(found["MAJOR"]), int(found["MINOR"])


def _check_and_register(lib: ctypes.CDLL) -> str | None:
    """Checks the loaded extension's version and FFI API and registers its handlers; None
    when that worked, else why not."""
    for name, restype in _SYMBOLS.items():
        fn = getattr(lib, name)  # AttributeError: a build without it (stale or foreign)
        fn.restype = restype
    built = lib.jaxconv_onednn_version().decode()
    if built != __version__:
        return f"it was built for jaxconv {built}, this is jaxconv {__version__}; reinstall jaxconv"
    packed = lib.jaxconv_onednn_ffi_api()
    api, running = (packed >> 16, packed & 0xFFFF), _ffi_api_of_jaxlib()
    if running is not None and (api[0] != running[0] or api[1] > running[1]):
        return (
            f"it was built against XLA FFI API {api[0]}.{api[1]}, the installed jaxlib "
            f"{jax.lib.__version__} has {running[0]}.{running[1]}; reinstall jaxconv"
        )
    for target, symbol in _TARGETS.items():
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
    return None


@functools.cache
def _load() -> tuple[ctypes.CDLL | None, str | None]:
    """``(library, None)``, or ``(None, why it is unavailable)``; runs once per process.

    Never raises. Where the extension exists but cannot be used (it does not load, lacks a
    symbol, was built for another jaxconv or XLA FFI version) it warns once
    (:class:`OnednnUnavailableWarning`) and jaxconv runs on XLA; where it was never built, is
    disabled, or the platform has none, it says so only in :func:`supports`."""
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        return None, f"onednn is disabled by {DISABLE_ENV}={os.environ[DISABLE_ENV]}"
    if sys.platform != "linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        return None, (
            f"onednn is built for Linux x86-64 only, this is {sys.platform} {platform.machine()}"
        )
    path = _extension_path()
    if path is None:
        return None, (
            f"onednn extension {LIBRARY} was not built (no C++ compiler, CMake or "
            f"oneDNN at install time?); reinstall jaxconv to build it"
        )
    try:
        dnnl = _dnnl_path()
        if dnnl is not None:  # loaded first, so the extension's soname resolves to it
            ctypes.CDLL(str(dnnl))
        lib = ctypes.CDLL(str(path))
        why = _check_and_register(lib)
    except Exception as e:  # any failure here means: run on XLA, and say why
        why = f"{type(e).__name__}: {e}"
        lib = None
    if why is None:
        return lib, None
    why = f"onednn extension {path} cannot be used: {why}"
    warnings.warn(f"{why}; jaxconv runs its convs on XLA", OnednnUnavailableWarning, stacklevel=2)
    return None, why


def unavailable() -> str | None:
    """None when the extension is loaded (loading it if needed), else why it is not."""
    return _load()[1]


def _dispatches(symbol: str) -> bool:
    """The extension's answer to an ISA question (False where it is not loaded)."""
    lib, _ = _load()
    return lib is not None and bool(getattr(lib, symbol)())


@functools.cache
def native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 convs natively here (AVX512_BF16 or AMX)."""
    return _dispatches("jaxconv_onednn_native_bf16")


@functools.cache
def amx() -> bool:
    """Whether oneDNN runs AMX (bfloat16 tile) kernels here."""
    return _dispatches("jaxconv_onednn_amx")


def cache_size() -> int:
    """How many oneDNN primitives the extension holds in its cache now (0 if not loaded)."""
    lib, _ = _load()
    return 0 if lib is None else int(lib.jaxconv_onednn_cache_size())


def cache_capacity(capacity: int | None = None) -> int:
    """The primitive cache's bound (least recently used evicted first; 1024 unless the
    ``JAXCONV_ONEDNN_CACHE_CAPACITY`` environment variable says otherwise at load), after
    setting it to ``capacity`` (>= 1) if given; 0 if the extension is not loaded."""
    lib, _ = _load()
    if lib is None:
        return 0
    if capacity is not None:
        lib.jaxconv_onednn_set_cache_capacity(ctypes.c_int64(check_int(capacity, "capacity")))
    return int(lib.jaxconv_onednn_cache_capacity())


def scratchpad_bytes() -> int:
    """The scratchpad the extension keeps between calls (at most 64 MiB: a larger one is freed
    after the call that needed it); 0 if not loaded."""
    lib, _ = _load()
    return 0 if lib is None else int(lib.jaxconv_onednn_scratchpad_bytes())


# oneDNN 3.2's jit kernels keep geometry and offsets in 32-bit ints: every value below must be
# under INT32_LIMIT (2**31, the bound XLA's own geometry has too). Past it a conv crashed the
# process (dilation 1431655766 on a 6x5 input), failed to create its primitive, or gave wrong
# values (dilation 2**32 + 1).


def _int32_quantities(spec: ConvSpec) -> list[tuple[str, int]]:
    """Every geometry value of ``spec`` oneDNN sees, and every 32-bit quantity it forms from them:
    sizes, strides, dilations, padding, the dilated kernel span ``(k-1)·d``, the padded (and
    input-dilated) input, and the bytes of one image (padded input, output) and of the kernel,
    which bound the element and byte offsets its kernels compute, e.g. ``(k-1)·d·C·itemsize``."""
    itemsize = np.dtype(spec.dtype).itemsize
    out_itemsize = np.dtype(spec.out_dtype).itemsize
    quantities: list[tuple[str, int]] = [
        ("the batch", spec.batch),
        ("input channels", spec.in_channels),
        ("output channels", spec.out_channels),
    ]
    padded = [  # the input as oneDNN's kernels walk it: input-dilated, then padded
        dilated_size(n, v) + lo + hi
        for n, v, (lo, hi) in zip(spec.in_spatial, spec.input_dilation, spec.padding)
    ]
    for i, (n, k, s, d, v, (lo, hi), o) in enumerate(
        zip(
            spec.in_spatial,
            spec.kernel,
            spec.stride,
            spec.dilation,
            spec.input_dilation,
            spec.padding,
            spec.out_spatial,
        )
    ):
        quantities += [
            (f"input size[{i}]", n),
            (f"kernel size[{i}]", k),
            (f"stride[{i}]", s),
            (f"dilation[{i}]", d),
            (f"input_dilation[{i}]", v),
            (f"padding[{i}]", max(abs(lo), abs(hi))),
            (f"dilated kernel span (k-1)·d [{i}]", (k - 1) * d),
            (f"padded input size[{i}]", padded[i]),
            (f"output size[{i}]", o),
        ]
        if v != 1:  # a deconvolution: its stride is v; one step of it spans these bytes
            step = v * math.prod(padded[i + 1 :]) * spec.in_channels * itemsize
            quantities.append((f"input_dilation[{i}] times one input row's bytes", step))
    quantities += [
        ("one padded input image's bytes", math.prod(padded) * spec.in_channels * itemsize),
        (
            "one output image's bytes",
            math.prod(spec.out_spatial) * spec.out_channels * out_itemsize,
        ),
        ("the kernel's bytes", math.prod(spec.w_shape) * itemsize),
    ]
    return quantities


def int32_problem(spec: ConvSpec) -> str | None:
    """Why oneDNN cannot run ``spec`` exactly because a value it keeps in 32 bits would not
    fit (see :data:`INT32_LIMIT`), else None. The one statement of these limits.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jaxconv.kernels import conv_spec
      >>> spec = conv_spec(jax.ShapeDtypeStruct((1, 6, 5, 2), jnp.float32),
      ...                  jax.ShapeDtypeStruct((2, 2, 2, 3), jnp.float32),
      ...                  dilation=(1431655766, 1))
      >>> print(int32_problem(spec))  # (what crashed oneDNN 3.2's jit kernel)
      onednn keeps geometry in 32-bit ints: one padded input image's bytes (=68719477056) must
      be < 2**31 (XLA runs this conv)
    """
    for name, value in _int32_quantities(spec):
        if not 0 <= value < INT32_LIMIT:
            return (
                f"onednn keeps geometry in 32-bit ints: {name} (={value}) must be < 2**31 "
                f"(XLA runs this conv)"
            )
    return None


def supports(spec: ConvSpec) -> str | None:
    """None where the extension runs ``spec`` exactly, else why not."""
    why = unavailable()
    if why is not None:
        return why
    if spec.dtype not in ("float32", "bfloat16"):
        return f"onednn needs float32 or bfloat16 inputs, got {spec.dtype}"
    if spec.dtype == "bfloat16" and not native_bf16():
        return (
            "onednn's bfloat16 convs need AVX512_BF16 or AMX, which this CPU lacks (oneDNN "
            "would run slow reference kernels; XLA's f32 upcast is faster)"
        )
    if spec.preferred_element_type not in (None, "float32", spec.dtype):
        return (
            f"onednn computes in float32 or bfloat16, got preferred_element_type "
            f"{spec.preferred_element_type}"
        )
    if any(p < 0 for pair in spec.padding for p in pair):
        return f"onednn needs non-negative padding, got {spec.padding}"
    too_big = int32_problem(spec)
    if too_big is not None:
        return too_big
    if any(v != 1 for v in spec.input_dilation):
        # A deconvolution in oneDNN: its padding k_eff - 1 - p must not be negative.
        span = tuple((k - 1) * d for k, d in zip(spec.kernel, spec.dilation))
        if any(v != 1 for v in spec.stride):
            return (
                f"onednn needs stride 1 with input_dilation {spec.input_dilation}, got "
                f"stride {spec.stride}"
            )
        if any(max(p) > e for p, e in zip(spec.padding, span)):
            return (
                f"onednn needs padding <= (kernel - 1)·dilation {span} with input "
                f"dilation, got {spec.padding}"
            )
    return None


# --- the three primitives ------------------------------------------------------------------


class Geometry(NamedTuple):
    """The static part of a conv the FFI handlers need (hashable: a primitive parameter)."""

    stride: tuple[int, ...]
    pad_lo: tuple[int, ...]
    pad_hi: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    channels_last: bool
    transposed: bool = False

    @classmethod
    def of(cls, spec: ConvSpec) -> Geometry:
        """The spec as oneDNN sees it. An input-dilated conv (stride 1) is a deconvolution:
        stride = input dilation, padding ``k_eff - 1 - p`` per side, kernel flipped (done by
        :func:`conv`), so that input pixel ``i`` meets output ``i·s + lo - t·d`` at tap ``t``
        in both."""
        lo, hi = (tuple(p[j] for p in spec.padding) for j in (0, 1))
        if all(v == 1 for v in spec.input_dilation):
            return cls(spec.stride, lo, hi, spec.dilation, spec.groups, spec.channels_last)
        span = tuple((k - 1) * d for k, d in zip(spec.kernel, spec.dilation))
        return cls(
            spec.input_dilation,
            tuple(e - p for e, p in zip(span, lo)),
            tuple(e - p for e, p in zip(span, hi)),
            spec.dilation,
            spec.groups,
            spec.channels_last,
            True,
        )

    def attributes(self) -> dict[str, Any]:
        as_array = functools.partial(np.asarray, dtype=np.int64)
        return dict(
            stride=as_array(self.stride),
            pad_lo=as_array(self.pad_lo),
            pad_hi=as_array(self.pad_hi),
            dilation=as_array(self.dilation),
            groups=np.int64(self.groups),
            channels_last=np.int64(self.channels_last),
            transposed=np.int64(self.transposed),
        )

    def out_shape(self, x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> tuple[int, ...]:
        nsp = len(self.stride)
        if self.channels_last:
            spatial, kernel, c_out = x_shape[1:-1], w_shape[:nsp], w_shape[-1]
        else:
            spatial, kernel, c_out = x_shape[2:], w_shape[2:], w_shape[0]
        args = zip(spatial, kernel, self.stride, self.dilation, self.pad_lo, self.pad_hi)
        if self.transposed:
            out = tuple((n - 1) * s + (k - 1) * d + 1 - lo - hi for n, k, s, d, lo, hi in args)
        else:
            out = tuple((n + lo + hi - (k - 1) * d - 1) // s + 1 for n, k, s, d, lo, hi in args)
        return (x_shape[0], *out, c_out) if self.channels_last else (x_shape[0], c_out, *out)


fwd_p = Primitive("onednn_conv_fwd")  # (x, w) -> y
fused_p = Primitive("onednn_conv_fwd_bias")  # (x, w, b) -> y + b
bwd_data_p = Primitive("onednn_conv_bwd_data")  # (dy, w) -> dx
bwd_weights_p = Primitive("onednn_conv_bwd_weights")  # (x, dy) -> dw

try:  # under shard_map(check_vma=True): operands made varying over the same manual axes
    from jax._src.core import auto_insert_reshard as _match_varying
except ImportError:  # a jax without it has no varying-axes types to keep

    def _match_varying(*args):
        return args


def _bind(prim: Primitive, *args, **params) -> jax.Array:
    return prim.bind(*_match_varying(*args), **params)


def _aval(like, shape, dtype, *, batch: bool):
    """The result's abstract value: ``shape`` and ``dtype`` on ``like``'s mesh, varying over
    the same shard_map axes as the operand ``like`` (the operands vary alike: :func:`_bind`),
    sharded like it on the leading (batch) dim when ``batch`` (an activation), else replicated
    (a kernel)."""
    spec: tuple = tuple(getattr(like.sharding, "spec", ()))
    lead = spec[0] if batch and spec else None
    sharding = NamedSharding(like.sharding.mesh, P(lead, *[None] * (len(shape) - 1)))
    return like.update(
        shape=tuple(shape), dtype=jnp.dtype(dtype), weak_type=False, sharding=sharding
    )


def _fwd_abstract(x, w, *b, geometry, out_dtype):
    del b
    return _aval(x, geometry.out_shape(x.shape, w.shape), out_dtype, batch=True)


def _bwd_data_abstract(dy, w, *, geometry, x_shape, x_dtype):
    del w, geometry
    return _aval(dy, x_shape, x_dtype, batch=True)


def _bwd_weights_abstract(x, dy, *, geometry, w_shape, w_dtype):
    del dy, geometry
    return _aval(x, w_shape, w_dtype, batch=False)


try:  # eager calls as lax's primitives make them (jax.debug_nans then names the primitive)
    from jax._src.dispatch import apply_primitive as _apply_primitive
except ImportError:  # a later jax: one cached jit per primitive and parameters

    @functools.lru_cache(maxsize=256)
    def _jitted(prim: Primitive, params: tuple) -> Any:
        return jax.jit(lambda *args: prim.bind(*args, **dict(params)))

    def _apply_primitive(prim, *args, **params):
        return _jitted(prim, tuple(sorted(params.items())))(*args)


for _p, _abstract in (
    (fwd_p, _fwd_abstract),
    (fused_p, _fwd_abstract),
    (bwd_data_p, _bwd_data_abstract),
    (bwd_weights_p, _bwd_weights_abstract),
):
    _p.def_abstract_eval(_abstract)
    _p.def_impl(functools.partial(_apply_primitive, _p))


# --- lowering, with a sharding rule ---------------------------------------------------------
#
# An FFI call is opaque to XLA's SPMD partitioner, which would gather a batch-sharded input and
# run the whole batch on every device. So each primitive lowers through ``custom_partitioning``:
# the activations keep their batch sharding, weights are replicated, each device runs oneDNN on
# its shard, and the weight gradient is summed over the batch axes (``psum``). Unsharded (one
# device, or inside ``shard_map``) it is the bare FFI call.

_TARGET = {
    "fwd": "jaxconv_onednn_fwd",
    "bwd_data": "jaxconv_onednn_bwd_data",
    "bwd_weights": "jaxconv_onednn_bwd_weights",
}


def _factors(geometry: Geometry, nargs: int, role: str) -> str:
    """The Shardy rule, e.g. ``"n s0 s1 c, k0 k1 i o -> n t0 t1 o"`` for an NHWC forward."""
    nsp = len(geometry.stride)
    sp, osp, k = ([f"{p}{i}" for i in range(nsp)] for p in "stk")

    def act(spatial, c):
        return ["n", *spatial, c] if geometry.channels_last else ["n", c, *spatial]

    x, y = " ".join(act(sp, "c")), " ".join(act(osp, "o"))
    w = " ".join([*k, "i", "o"] if geometry.channels_last else ["o", "i", *k])
    if role == "fwd":
        return f"{x}, {w}{', o' if nargs == 3 else ''} -> {y}"
    if role == "bwd_data":
        return f"{y}, {w} -> {x}"
    return f"{x}, {y} -> {w}"


def _ffi(role: str, geometry: Geometry, out_shape, out_dtype, *args):
    return jax.ffi.ffi_call(_TARGET[role], jax.ShapeDtypeStruct(out_shape, out_dtype))(
        *args, **geometry.attributes()
    )


def _local_shape(role: str, geometry: Geometry, out_shape, args) -> tuple[int, ...]:
    """The per-shard result shape: the activation's shard batch (the weights' shape for dw)."""
    if role == "fwd":
        return geometry.out_shape(args[0].shape, args[1].shape)
    if role == "bwd_data":
        return (args[0].shape[0], *out_shape[1:])
    return tuple(out_shape)


def _partitioned(role: str) -> Any:
    """The FFI call under ``custom_partitioning``: activations keep their batch sharding, the
    rest is replicated, the weight gradient is summed over the batch axes."""

    def call(geometry, out_shape, out_dtype, *args):
        return _ffi(role, geometry, out_shape, out_dtype, *args)

    fn = custom_partitioning(call, static_argnums=(0, 1, 2))
    activations = (0, 1) if role == "bwd_weights" else (0,)

    def shardings(mesh, arg_shapes):
        spec = getattr(arg_shapes[0].sharding, "spec", ())
        batch = spec[0] if len(spec) else None
        args = tuple(
            NamedSharding(mesh, P(batch) if i in activations else P())
            for i in range(len(arg_shapes))
        )
        return batch, args, NamedSharding(mesh, P() if role == "bwd_weights" else P(batch))

    def infer(geometry, out_shape, out_dtype, mesh, arg_shapes, result_shape):
        return shardings(mesh, arg_shapes)[2]

    def partition(geometry, out_shape, out_dtype, mesh, arg_shapes, result_shape):
        batch, args, out = shardings(mesh, arg_shapes)

        def lower(*local):
            y = _ffi(
                role,
                geometry,
                _local_shape(role, geometry, out_shape, local),
                out_dtype,
                *local,
            )
            return lax.psum(y, batch) if role == "bwd_weights" and batch is not None else y

        return mesh, lower, out, args

    def rule(geometry, out_shape, out_dtype, mesh, operand_types, result_types):
        rule = _factors(geometry, len(operand_types), role)
        in_order = dict.fromkeys(rule.replace(",", " ").replace("->", " ").split())
        return rule, dict(
            reduction_factors=("n",) if role == "bwd_weights" else (),
            need_replication_factors=tuple(f for f in in_order if f != "n"),
        )

    fn.def_partition(partition, infer_sharding_from_operands=infer, sharding_rule=rule)
    return fn


# --- the same three (and the biased forward) in plain lax ----------------------------------
#
# Where the FFI call cannot go, each primitive lowers to the lax conv it computes: on every
# platform but the CPU (a GPU or TPU program, or an export for one), and on the CPU when
# lowering for ``jax.export`` — an FFI call has no compatibility guarantee and would make the
# artifact unloadable elsewhere. Plain ``jit`` on a CPU keeps oneDNN.

_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}


def _lax_conv(x, w, geometry: Geometry, out_dtype) -> jax.Array:
    """The primitive's forward as ``lax.conv_general_dilated`` (a deconvolution as the
    input-dilated conv it is: stride 1, input dilation = its stride, the kernel flipped back)."""
    nsp = len(geometry.stride)
    sp = _SPATIAL[nsp]
    if geometry.channels_last:
        specs = (f"N{sp}C", f"{sp}IO", f"N{sp}C")
        kernel, spatial_axes = w.shape[:nsp], tuple(range(nsp))
    else:
        specs = (f"NC{sp}", f"OI{sp}", f"NC{sp}")
        kernel, spatial_axes = w.shape[2:], tuple(range(2, nsp + 2))
    if geometry.transposed:
        span = [(k - 1) * d for k, d in zip(kernel, geometry.dilation)]
        pads = [(e - lo, e - hi) for e, lo, hi in zip(span, geometry.pad_lo, geometry.pad_hi)]
        strides, lhs_dilation, w = (1,) * nsp, geometry.stride, jnp.flip(w, spatial_axes)
    else:
        pads = list(zip(geometry.pad_lo, geometry.pad_hi))
        strides, lhs_dilation = geometry.stride, (1,) * nsp
    y = lax.conv_general_dilated(
        x,
        w.astype(x.dtype),
        strides,
        pads,
        lhs_dilation=lhs_dilation,
        rhs_dilation=geometry.dilation,
        dimension_numbers=specs,
        feature_group_count=geometry.groups,
        preferred_element_type=jnp.dtype(out_dtype),
    )
    return y.astype(out_dtype)


def _lax_reference(role: str, geometry: Geometry, aval, *args) -> jax.Array:
    """What the primitive of ``role`` computes, in lax (``aval``: its result)."""
    if role == "fwd":
        x, w, *b = args
        y = _lax_conv(x, w, geometry, aval.dtype)
        if b:
            nsp = len(geometry.stride)
            shape = (1,) * (nsp + 1) + (-1,) if geometry.channels_last else (1, -1) + (1,) * nsp
            y = y + b[0].astype(aval.dtype).reshape(shape)
        return y
    if role == "bwd_data":
        dy, w = args
        x = jax.ShapeDtypeStruct(aval.shape, aval.dtype)
        (dx,) = jax.linear_transpose(lambda a: _lax_conv(a, w, geometry, dy.dtype), x)(dy)
        return dx
    x, dy = args
    w = jax.ShapeDtypeStruct(aval.shape, aval.dtype)
    (dw,) = jax.linear_transpose(lambda c: _lax_conv(x, c, geometry, dy.dtype), w)(dy)
    return dw


def _register(prim: Primitive, role: str) -> None:
    sharded_call = _partitioned(role)

    def reference(ctx, *args, geometry, **params):
        del params
        (aval,) = ctx.avals_out
        return mlir.lower_fun(
            lambda *a: _lax_reference(role, geometry, aval, *a), multiple_results=False
        )(ctx, *args)

    def lower(ctx, *args, geometry, **params):
        module = ctx.module_context
        if tuple(module.platforms) != ("cpu",) or module.lowering_parameters.for_export:
            return reference(ctx, *args, geometry=geometry)
        (aval,) = ctx.avals_out
        context = module.axis_context
        sharded = (
            getattr(context, "num_devices", 1) > 1
            and getattr(context, "device_assignment", None) is not None
        )
        call = sharded_call if sharded else functools.partial(_ffi, role)
        return mlir.lower_fun(
            lambda *a: call(geometry, aval.shape, aval.dtype, *a), multiple_results=False
        )(ctx, *args)

    # One rule for every platform (the FFI call only for a CPU-only program that is not being
    # exported). Not cacheable, and lowered with the device assignment: custom_partitioning
    # needs both.
    mlir.register_lowering(prim, lower, cacheable=False)
    if _NEEDS_DEVICES is not None:
        _NEEDS_DEVICES.add(prim)


for _prim, _role in (
    (fwd_p, "fwd"),
    (fused_p, "fwd"),
    (bwd_data_p, "bwd_data"),
    (bwd_weights_p, "bwd_weights"),
):
    _register(_prim, _role)


def _as(a: jax.Array, dtype: Any) -> jax.Array:
    return a if a.dtype == dtype else a.astype(dtype)


def forward(x, w, geometry: Geometry, out_dtype: Any) -> jax.Array:
    return _bind(fwd_p, x, w, geometry=geometry, out_dtype=jnp.dtype(out_dtype))


def backward_data(dy, w, geometry: Geometry, x_shape, x_dtype) -> jax.Array:
    """The input gradient ``dx`` of ``y = conv(x, w)`` for the output gradient ``dy``."""
    return _bind(
        bwd_data_p,
        _as(dy, w.dtype),
        w,
        geometry=geometry,
        x_shape=tuple(x_shape),
        x_dtype=jnp.dtype(x_dtype),
    )


def backward_weights(x, dy, geometry: Geometry, w_shape, w_dtype) -> jax.Array:
    """The weight gradient ``dw`` of ``y = conv(x, w)`` for the output gradient ``dy``."""
    return _bind(
        bwd_weights_p,
        x,
        _as(dy, x.dtype),
        geometry=geometry,
        w_shape=tuple(w_shape),
        w_dtype=jnp.dtype(w_dtype),
    )


# Each primitive is bilinear; its transposes are the other two (so every order of reverse
# mode, and forward mode, runs on oneDNN). The operand being transposed is an undefined
# primal: only its ``aval`` is known.
def _fwd_t_x(ct, x, w, *, geometry, out_dtype):
    del out_dtype
    return backward_data(ct, w, geometry, x.aval.shape, x.aval.dtype)


def _fwd_t_w(ct, x, w, *, geometry, out_dtype):
    del out_dtype
    return backward_weights(x, ct, geometry, w.aval.shape, w.aval.dtype)


def _bwd_data_t_dy(ct, dy, w, *, geometry, x_shape, x_dtype):
    del x_shape, x_dtype
    return _as(forward(_as(ct, w.dtype), w, geometry, dy.aval.dtype), dy.aval.dtype)


def _bwd_data_t_w(ct, dy, w, *, geometry, x_shape, x_dtype):
    del x_shape, x_dtype
    return backward_weights(_as(ct, w.aval.dtype), dy, geometry, w.aval.shape, w.aval.dtype)


def _bwd_weights_t_x(ct, x, dy, *, geometry, w_shape, w_dtype):
    del w_shape, w_dtype
    return backward_data(dy, _as(ct, x.aval.dtype), geometry, x.aval.shape, x.aval.dtype)


def _bwd_weights_t_dy(ct, x, dy, *, geometry, w_shape, w_dtype):
    del w_shape, w_dtype
    return _as(forward(x, _as(ct, x.dtype), geometry, dy.aval.dtype), dy.aval.dtype)


ad.defbilinear(fwd_p, _fwd_t_x, _fwd_t_w)
ad.defbilinear(bwd_data_p, _bwd_data_t_dy, _bwd_data_t_w)
ad.defbilinear(bwd_weights_p, _bwd_weights_t_x, _bwd_weights_t_dy)


def _fold(a: jax.Array, axis: int) -> tuple[jax.Array, int]:
    """``a`` with mapped axis ``axis`` merged into its leading (batch) dim."""
    a = jnp.moveaxis(a, axis, 0)
    return a.reshape(a.shape[0] * a.shape[1], *a.shape[2:]), a.shape[0]


def _sequential(prim: Primitive, args, dims, params) -> tuple[jax.Array, int]:
    """One primitive call per element of the mapped axis (``lax.map``)."""
    mapped = [i for i, d in enumerate(dims) if d is not None]

    def one(xs):
        operands = list(args)
        for i, v in zip(mapped, xs):
            operands[i] = v
        return _bind(prim, *operands, **params)

    return lax.map(one, tuple(jnp.moveaxis(args[i], dims[i], 0) for i in mapped)), 0


def _batch_rule(prim: Primitive):
    """A vmap rule: when only the activation (operand 0: x, or dy for ``bwd_data``) is mapped,
    fold the mapped axis into the conv's batch — one oneDNN call; else one call per element
    (always for ``bwd_weights``, whose result is per element)."""

    def rule(args, dims, **params):
        if prim is bwd_weights_p or any(d is not None for d in dims[1:]):
            return _sequential(prim, args, dims, params)
        folded, size = _fold(args[0], dims[0])
        if prim is bwd_data_p:
            n = params["x_shape"][0]
            params = dict(params, x_shape=(size * n, *params["x_shape"][1:]))
        y = _bind(prim, folded, *args[1:], **params)
        return y.reshape(size, y.shape[0] // size, *y.shape[1:]), 0

    return rule


for _prim in (fwd_p, fused_p, bwd_data_p, bwd_weights_p):
    batching.primitive_batchers[_prim] = _batch_rule(_prim)


# --- the lowering interface ----------------------------------------------------------------


def _empty(x: jax.Array, w: jax.Array, spec: ConvSpec) -> jax.Array:
    return jnp.zeros(Geometry.of(spec).out_shape(x.shape, w.shape), spec.out_dtype)


def _oriented(w: jax.Array, geometry: Geometry) -> jax.Array:
    """The kernel as oneDNN's primitive wants it: flipped spatially for a deconvolution."""
    if not geometry.transposed:
        return w
    nsp = len(geometry.stride)
    return jnp.flip(w, tuple(range(nsp)) if geometry.channels_last else tuple(range(2, nsp + 2)))


# AMX multiplies bf16 tiles 16 rows deep: a group narrower than that wastes the unit, and
# oneDNN 3.2 has no AMX kernel for one (it falls back to AVX-512, 3-8x slower).
_AMX_GROUP_CHANNELS = 16


def merged_groups(spec: ConvSpec) -> int:
    """How many adjacent groups :func:`conv` merges into one block-diagonal group (1: none).

    On a CPU with AMX, a bfloat16 conv with fewer than 16 input channels per group runs as a
    conv with ``m`` times fewer groups, ``m·C_in/G`` channels each (up to 16), whose kernel is
    block diagonal with the original groups' kernels on the diagonal: ``m`` times the
    multiply-adds, but on oneDNN's AMX kernels. Measured here (Xeon, 2 cores, batch 32,
    3×3, fwd / fwd+bwd ms): ResNeXt's 32 groups of 8 at 28×28×256 20.5 / 32.5 → 2.65 / 10.3;
    groups of 4 at 56×56×128 30 / 145 → 5.6 / 25; a depthwise conv with channel multiplier
    2 at 112×112×16 45 / 250 → 6.6 / 67. A plain depthwise conv (one channel in, one out per
    group) is not merged: oneDNN's depthwise kernel is faster forward (5.6 vs 9.1 ms at
    112×112×32). float32 is not merged either (no AMX; 2x the work measured slower)."""
    cin = spec.in_channels // spec.groups
    cout = spec.out_channels // spec.groups
    if (
        spec.dtype != "bfloat16"
        or spec.groups == 1
        or cin >= _AMX_GROUP_CHANNELS
        or cin == cout == 1
        or not amx()
    ):
        return 1
    factors = range(1, _AMX_GROUP_CHANNELS // cin + 1)  # m·cin <= 16
    return max(m for m in factors if spec.groups % m == 0)


def _block_diagonal(w: jax.Array, groups: int, m: int, channels_last: bool) -> jax.Array:
    """The kernel of ``groups // m`` groups, each ``m`` of ``w``'s groups on its diagonal:
    HWIO ``[*k, I/G, O]`` → ``[*k, m·I/G, O]``, OIHW ``[O, I/G, *k]`` → ``[O, m·I/G, *k]``
    (the output channels keep their order). Its transpose, for the weight gradient, keeps
    the diagonal blocks."""
    if channels_last:
        *k, cin, cout = w.shape
        # [*k, i, G/m, b, o] -> [*k, a, i, G/m, b, o], nonzero where a == b
        blocks = w.reshape(*k, 1, cin, groups // m, m, cout // groups)
        eye = np.eye(m, dtype=bool).reshape((1,) * len(k) + (m, 1, 1, m, 1))
        return jnp.where(eye, blocks, 0).reshape(*k, m * cin, cout)
    cout, cin, *k = w.shape
    # [G/m, b, o, i, *k] -> [G/m, b, o, a, i, *k], nonzero where a == b
    blocks = w.reshape(groups // m, m, cout // groups, 1, cin, *k)
    eye = np.eye(m, dtype=bool).reshape((1, m, 1, m, 1) + (1,) * len(k))
    return jnp.where(eye, blocks, 0).reshape(cout, m * cin, *k)


def _prepared(w: jax.Array, spec: ConvSpec) -> tuple[jax.Array, Geometry]:
    """The kernel and geometry oneDNN's primitive gets for ``spec``: groups merged on AMX
    (:func:`merged_groups`), flipped for a deconvolution."""
    geometry = Geometry.of(spec)
    m = merged_groups(spec)
    if m > 1:
        w = _block_diagonal(w, spec.groups, m, spec.channels_last)
        geometry = geometry._replace(groups=spec.groups // m)
    return _oriented(w, geometry), geometry


def conv(x: jax.Array, w: jax.Array, spec: ConvSpec) -> jax.Array:
    """The spec's conv as one oneDNN forward primitive (an input-dilated, transposed conv as a
    oneDNN deconvolution); its transposes are oneDNN's backward primitives."""
    if math.prod(x.shape) == 0:
        return _empty(x, w, spec)
    w, geometry = _prepared(w, spec)
    return forward(x, w, geometry, spec.out_dtype)


def conv_bias(x: jax.Array, w: jax.Array, b: jax.Array, spec: ConvSpec) -> jax.Array:
    """``conv(x, w) + b`` as one oneDNN primitive with the bias as a post-op; ``b`` is
    ``[C_out]``, cast to the output dtype. No derivative rule of its own:
    :func:`jaxconv.kernels.run` differentiates it through :func:`conv`."""
    if math.prod(x.shape) == 0:
        return _empty(x, w, spec)
    w, geometry = _prepared(w, spec)
    return _bind(fused_p, x, w, _as(b, spec.out_dtype), geometry=geometry, out_dtype=spec.out_dtype)


LOWERING = Lowering(
    name=NAME,
    supports=supports,
    fwd=conv,
    roles=ROLES,
    backends=("cpu",),
    fused=conv_bias,
    summary="oneDNN's conv primitives through XLA's FFI (PyTorch's CPU kernels)",
)
