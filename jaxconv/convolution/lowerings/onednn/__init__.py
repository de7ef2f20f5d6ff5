"""The ``onednn`` lowering (one module per job: ``library`` loads the extension, ``primitives``
defines the JAX primitives and their rules, ``partition`` shards them, ``lowering`` states
where it applies): a conv's forward, input gradient and weight gradient on Intel's
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
programs hold no custom call. The training primitives fuse no activation (oneDNN 3.2's ReLU
turns NaN into 0); a frozen conv (``inference``) and the one-call bottleneck (``block``) apply
ReLU as the NaN-keeping ELU(0) post-op.
"""

from jaxconv.convolution.lowerings.onednn.geometry import Geometry as Geometry
from jaxconv.convolution.lowerings.onednn.library import DISABLE_ENV as DISABLE_ENV
from jaxconv.convolution.lowerings.onednn.library import LIBRARY as LIBRARY
from jaxconv.convolution.lowerings.onednn.library import NAME as NAME
from jaxconv.convolution.lowerings.onednn.library import (
    OnednnUnavailableWarning as OnednnUnavailableWarning,
)
from jaxconv.convolution.lowerings.onednn.library import amx as amx
from jaxconv.convolution.lowerings.onednn.library import cache_capacity as cache_capacity
from jaxconv.convolution.lowerings.onednn.library import cache_size as cache_size
from jaxconv.convolution.lowerings.onednn.library import native_bf16 as native_bf16
from jaxconv.convolution.lowerings.onednn.library import scratchpad_bytes as scratchpad_bytes
from jaxconv.convolution.lowerings.onednn.library import unavailable as unavailable
from jaxconv.convolution.lowerings.onednn.lowering import LOWERING as LOWERING
from jaxconv.convolution.lowerings.onednn.lowering import conv as conv
from jaxconv.convolution.lowerings.onednn.lowering import conv_bias as conv_bias
from jaxconv.convolution.lowerings.onednn.lowering import int32_problem as int32_problem
from jaxconv.convolution.lowerings.onednn.lowering import merged_groups as merged_groups
from jaxconv.convolution.lowerings.onednn.lowering import supports as supports
from jaxconv.convolution.lowerings.onednn.primitives import backward_data as backward_data
from jaxconv.convolution.lowerings.onednn.primitives import backward_weights as backward_weights
from jaxconv.convolution.lowerings.onednn.primitives import bwd_data_p as bwd_data_p
from jaxconv.convolution.lowerings.onednn.primitives import bwd_weights_p as bwd_weights_p
from jaxconv.convolution.lowerings.onednn.primitives import forward as forward
from jaxconv.convolution.lowerings.onednn.primitives import fused_p as fused_p
from jaxconv.convolution.lowerings.onednn.primitives import fwd_p as fwd_p
