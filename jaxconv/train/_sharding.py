"""Data parallelism with ``jax.sharding``: one ``"data"`` mesh axis, batch split, params replicated.

Single host: ``make_mesh(n)`` takes the first ``n`` visible devices. Multi-host: call
:func:`initialize_distributed` in every process first (it wraps ``jax.distributed.initialize``);
the mesh then spans every process's devices and each process feeds only its own rows of the
global batch (:func:`shard_batch`).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxconv._check import check_int

__all__ = [
    "DATA_AXIS",
    "check_batch_size",
    "data_sharding",
    "initialize_distributed",
    "make_mesh",
    "put_replicated",
    "replicated",
    "shard_batch",
]

#: The mesh axis the batch is split over.
DATA_AXIS = "data"


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D ``("data",)`` mesh over the first ``num_devices`` devices (all when ``None``).

    Args:
      num_devices: how many devices; ``None`` uses every visible device (all processes').

    Returns:
      a ``jax.sharding.Mesh``.

    Raises:
      TypeError: ``num_devices`` is not an int.
      ValueError: ``num_devices`` is not in ``[1, jax.device_count()]``, or a multi-process
        run asks for fewer than all devices.

    Examples:
      >>> from jaxconv.train import make_mesh
      >>> dict(make_mesh(1).shape)
      {'data': 1}
    """
    available = jax.device_count()
    if num_devices is None:
        num_devices = available
    num_devices = check_int(num_devices, "num_devices")
    if num_devices > available:
        hint = (
            " (on CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N makes N devices)"
            if jax.default_backend() == "cpu"
            else ""
        )
        raise ValueError(
            f"`num_devices` (={num_devices}) exceeds the {available} visible device(s){hint}"
        )
    if jax.process_count() > 1 and num_devices != available:
        raise ValueError(
            f"`num_devices` (={num_devices}) must be all {available} devices in a multi-process run"
        )
    return Mesh(np.array(jax.devices()[:num_devices]), (DATA_AXIS,))


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Splits the leading (batch) dim over the ``"data"`` axis.

    Examples:
      >>> from jax.sharding import PartitionSpec
      >>> from jaxconv.train import data_sharding, make_mesh
      >>> data_sharding(make_mesh(1)).spec == PartitionSpec("data")
      True
    """
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of ``mesh`` (parameters, optimizer state, metrics).

    Examples:
      >>> from jax.sharding import PartitionSpec
      >>> from jaxconv.train import make_mesh, replicated
      >>> replicated(make_mesh(1)).spec == PartitionSpec()
      True
    """
    return NamedSharding(mesh, PartitionSpec())


def put_replicated(tree, mesh: Mesh):
    """Places a pytree of host-local arrays on every device of ``mesh`` (a full copy each).

    Every process must pass the same values (they come from the same seed). With several
    processes each global array is assembled from this process's copy, since
    ``jax.device_put`` cannot target another process's devices.

    Args:
      tree: a pytree of arrays (PRNG key arrays included).
      mesh: the data-parallel mesh.

    Returns:
      the pytree with replicated global arrays.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxconv.train import make_mesh, put_replicated
      >>> put_replicated({"w": jnp.ones(3)}, make_mesh(1))["w"].sharding.is_fully_replicated
      True
    """
    sharding = replicated(mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def put(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(
                put(jax.random.key_data(x)), impl=jax.random.key_impl(x)
            )
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree)


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """Raises unless the global batch splits evenly over the mesh's devices.

    Args:
      batch_size: the global batch size.
      mesh: the data-parallel mesh.

    Raises:
      ValueError: ``batch_size`` is not a multiple of the device count (no silent rounding:
        a changed batch size would change the results).

    Examples:
      >>> from jaxconv.train import check_batch_size, make_mesh
      >>> check_batch_size(8, make_mesh(1))
    """
    n = mesh.devices.size
    if batch_size % n:
        raise ValueError(
            f"`batch_size` (={batch_size}) must be a multiple of the number of "
            f"devices (={n}); try {max(n, batch_size // n * n)} or `devices` "
            f"with a divisor of {batch_size}"
        )


def shard_batch(mesh: Mesh, arrays: Sequence[np.ndarray]) -> list[jax.Array]:
    """Places global-batch host arrays on the mesh, batch dim split over ``"data"``.

    Each process passes the whole global batch (every process computes the same batch from
    the seed and step); only the rows its own devices hold are transferred.

    Args:
      mesh: the data-parallel mesh.
      arrays: host arrays with the global batch as their leading dim.

    Returns:
      one global ``jax.Array`` per input, sharded over the batch dim.

    Examples:
      >>> import numpy as np
      >>> from jax.sharding import PartitionSpec
      >>> from jaxconv.train import make_mesh, shard_batch
      >>> [x] = shard_batch(make_mesh(1), [np.zeros((4, 2), np.float32)])
      >>> x.shape, x.sharding.spec == PartitionSpec("data")
      ((4, 2), True)
    """
    sharding = data_sharding(mesh)
    if jax.process_count() == 1:
        return [jax.device_put(a, sharding) for a in arrays]
    out: list[jax.Array] = []
    for a in arrays:
        index_map = sharding.addressable_devices_indices_map(a.shape)
        shards = [jax.device_put(a[index], device) for device, index in index_map.items()]
        out.append(jax.make_array_from_single_device_arrays(a.shape, sharding, shards))
    return out


def initialize_distributed(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
    """Joins a multi-host run (``jax.distributed.initialize``); call before any other JAX use.

    With no arguments JAX detects the cluster (SLURM, Open MPI, TPU pods, Kubernetes …);
    otherwise give all three, the same coordinator ``host:port`` on every process.

    Args:
      coordinator: ``"host:port"`` of process 0.
      num_processes: how many processes take part.
      process_id: this process's index in ``[0, num_processes)``.

    Raises:
      ValueError: only some of the three arguments are given.

    Examples:
      >>> from jaxconv.train import initialize_distributed
      >>> initialize_distributed("localhost:1234")
      Traceback (most recent call last):
      ...
      ValueError: `coordinator`, `num_processes` and `process_id` go together: ...
    """
    check_distributed_args(coordinator, num_processes, process_id)
    jax.distributed.initialize(coordinator, num_processes, process_id)


def check_distributed_args(
    coordinator: str | None, num_processes: int | None, process_id: int | None
) -> None:
    """ValueError unless all three of :func:`initialize_distributed`'s arguments or none are
    given (the command line checks its flags with this before starting anything)."""
    given = [v is not None for v in (coordinator, num_processes, process_id)]
    if any(given) and not all(given):
        raise ValueError(
            "`coordinator`, `num_processes` and `process_id` go together: "
            "give all three or none (auto-detect)"
        )
