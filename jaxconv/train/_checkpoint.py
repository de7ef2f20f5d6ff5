"""Checkpoints with orbax ``CheckpointManager``: atomic, last-N, refused when they do not fit.

A checkpoint is ``DIR/<step>/`` with two items: ``state`` (every array of the model and the
optimizer — parameters, BatchNorm statistics, RNG keys and counters, optimizer moments and
step) and ``meta`` (JSON: the run's identity and config). Orbax writes into
``<step>.orbax-checkpoint-tmp`` and renames when complete, so a save killed midway never
looks like a checkpoint; :class:`Checkpoints` removes such leftovers with a warning, and a
step directory that is there but unreadable is moved aside (``broken-<step>``) with a warning
and the previous checkpoint used instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from typing import Any

import jax
import orbax.checkpoint as ocp

__all__ = [
    "CheckpointMismatchError",
    "Checkpoints",
    "PartialCheckpointWarning",
    "state_signature",
    "state_to_tree",
    "tree_to_state",
]

_TMP_MARK = ".orbax-checkpoint-tmp"


class CheckpointMismatchError(ValueError):
    """The checkpoint directory holds a run of a different model or config.

    Examples:
      >>> from jaxconv.train import CheckpointMismatchError
      >>> issubclass(CheckpointMismatchError, ValueError)  # the CLI reports it in one line
      True
    """


class PartialCheckpointWarning(UserWarning):
    """An unfinished or unreadable checkpoint was skipped.

    Examples:
      >>> import warnings
      >>> from jaxconv.train import PartialCheckpointWarning
      >>> with warnings.catch_warnings():  # to silence it
      ...     warnings.simplefilter("ignore", PartialCheckpointWarning)
    """


def _path_names(path: tuple) -> tuple[str, ...]:
    names = []
    for entry in path:
        if isinstance(entry, jax.tree_util.GetAttrKey) and entry.name == "value":
            continue  # nnx Variables flatten to their `.value`
        for attr in ("key", "idx", "name"):
            if hasattr(entry, attr):
                names.append(str(getattr(entry, attr)))
                break
    return tuple(names)


def _is_key(x: Any) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def state_to_tree(state: Any) -> dict:
    """Nested string-keyed dict of the state's arrays (PRNG keys as their raw ``uint32`` data).

    Args:
      state: any pytree of arrays (e.g. an ``nnx.State``).

    Returns:
      a nested ``dict`` orbax can save; paths follow the pytree's keys.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxconv.train import state_to_tree
      >>> state_to_tree({"conv": {"kernel": jnp.ones(2)}, "step": [jnp.zeros(())]})
      {'conv': {'kernel': Array([1., 1.], dtype=float32)}, 'step': {'0': Array(0., dtype=float32)}}
    """
    tree: dict = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        node = tree
        *parents, last = _path_names(path)
        for name in parents:
            node = node.setdefault(name, {})
        node[last] = jax.random.key_data(leaf) if _is_key(leaf) else leaf
    return tree


def tree_to_state(template: Any, tree: dict) -> Any:
    """Inverse of :func:`state_to_tree`: fills ``template``'s structure from ``tree``.

    Args:
      template: a pytree with the wanted structure, dtypes (keys re-wrapped) and shapes.
      tree: the nested dict.

    Returns:
      a pytree like ``template`` holding ``tree``'s arrays.

    Raises:
      CheckpointMismatchError: a path is missing or a shape differs.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxconv.train import state_to_tree, tree_to_state
      >>> state = {"w": jnp.ones(2)}
      >>> tree_to_state(state, state_to_tree(state))
      {'w': Array([1., 1.], dtype=float32)}
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    out = []
    for path, leaf in leaves:
        node: Any = tree
        names = _path_names(path)
        for name in names:
            if not isinstance(node, dict) or name not in node:
                raise CheckpointMismatchError(f"the checkpoint has no array at {'/'.join(names)}")
            node = node[name]
        value = jax.random.wrap_key_data(node) if _is_key(leaf) else node
        if tuple(value.shape) != tuple(leaf.shape):
            raise CheckpointMismatchError(
                f"the checkpoint's {'/'.join(names)} has shape "
                f"{tuple(value.shape)}, the model's {leaf.shape}"
            )
        out.append(value)
    return jax.tree_util.tree_unflatten(treedef, out)


def state_signature(state: Any) -> str:
    """A short hash of every array's path, shape and dtype: two models match iff it does.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxconv.train import state_signature
      >>> state_signature({"w": jnp.ones(2)}) == state_signature({"w": jnp.zeros(2)})
      True
    """
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        digest.update(f"{'/'.join(_path_names(path))}:{leaf.shape}:{leaf.dtype};".encode())
    return digest.hexdigest()[:16]


def _abstract(tree: dict, sharding: Any) -> dict:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def _describe_mismatch(saved: dict, wanted: dict) -> str:
    keys = sorted(set(saved) | set(wanted))
    diffs = [
        f"{k}: {json.dumps(saved.get(k))} there, {json.dumps(wanted.get(k))} here"
        for k in keys
        if saved.get(k) != wanted.get(k)
    ]
    return "; ".join(diffs)


class Checkpoints:
    """The checkpoint directory of one run (see the module docstring for the layout).

    Args:
      directory: where checkpoints live (created if missing).
      identity: JSON-able facts a resumed run must share (model, data, optimizer …).
      keep: how many of the latest checkpoints to keep.

    Raises:
      ValueError: ``directory`` exists and is not a directory, or ``keep`` < 1.

    Examples:
      >>> import tempfile, jax.numpy as jnp
      >>> from jaxconv.train import Checkpoints
      >>> ckpt = Checkpoints(tempfile.mkdtemp(), identity={"model": "tiny"})
      >>> ckpt.save(3, {"w": jnp.ones(2)}, config={})
      >>> step, state, meta = ckpt.restore_latest({"w": jnp.zeros(2)})
      >>> step, state["w"].tolist(), meta["identity"]
      (3, [1.0, 1.0], {'model': 'tiny'})
      >>> ckpt.close()
    """

    def __init__(self, directory: str, identity: dict, *, keep: int = 3):
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"`--keep` must be a positive int, got {keep!r}")
        self.directory = os.path.abspath(directory)
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise ValueError(f"`--ckpt-dir` {directory} exists and is not a directory")
        self.identity = json.loads(json.dumps(identity))
        self._primary = jax.process_index() == 0
        if os.path.isdir(self.directory):
            self._drop_unfinished()
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
            item_names=("state", "meta"),
        )

    def _drop_unfinished(self) -> None:
        for name in sorted(os.listdir(self.directory)):
            if _TMP_MARK in name:
                path = os.path.join(self.directory, name)
                warnings.warn(
                    f"ignoring the partial checkpoint {path} (a save that did not "
                    f"finish); it is removed",
                    PartialCheckpointWarning,
                    stacklevel=3,
                )
                if self._primary:
                    shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)

    def _set_aside(self, step: int, err: Exception) -> None:
        src = os.path.join(self.directory, str(step))
        dst = os.path.join(self.directory, f"broken-{step}")
        suffix = 0
        while os.path.exists(dst):
            suffix += 1
            dst = os.path.join(self.directory, f"broken-{step}.{suffix}")
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        warnings.warn(
            f"ignoring the unreadable checkpoint {src} ({reason}); moved to {dst} and "
            f"using the previous one",
            PartialCheckpointWarning,
            stacklevel=3,
        )
        if self._primary:
            os.rename(src, dst)
        self.manager.reload()

    def steps(self) -> list[int]:
        """The finished checkpoints' steps, oldest first."""
        return sorted(self.manager.all_steps())

    def check_identity(self, meta: dict, step: int) -> None:
        """Raises :class:`CheckpointMismatchError` unless ``meta`` belongs to this run."""
        saved = meta.get("identity") if isinstance(meta, dict) else None
        if saved != self.identity:
            diff = _describe_mismatch(saved or {}, self.identity)
            raise CheckpointMismatchError(
                f"checkpoint {os.path.join(self.directory, str(step))} belongs to a different "
                f"run ({diff}); use another --ckpt-dir or the settings it was made with"
            )

    def restore_latest(self, template: Any, sharding: Any = None) -> tuple[int, Any, dict] | None:
        """Restores the newest readable checkpoint into ``template``'s structure.

        Args:
          template: a state pytree (the freshly initialized one) giving structure and shapes.
          sharding: where the restored arrays go (e.g. replicated over the mesh).

        Returns:
          ``(step, state, meta)``, or ``None`` when there is no checkpoint.

        Raises:
          CheckpointMismatchError: the newest readable checkpoint is of another run.
        """
        tree = state_to_tree(template)
        if sharding is None:
            sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        abstract = _abstract(tree, sharding)
        for step in reversed(self.steps()):
            try:
                meta = self.manager.restore(
                    step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
                )["meta"]
            except Exception as err:
                self._set_aside(step, err)  # any read failure means "unreadable"
                continue
            self.check_identity(meta, step)
            try:
                restored = self.manager.restore(
                    step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
                )["state"]
                state = tree_to_state(template, restored)
            except CheckpointMismatchError:
                raise
            except Exception as err:
                self._set_aside(step, err)
                continue
            return step, state, meta
        return None

    def save(self, step: int, state: Any, *, config: dict, force: bool = False) -> None:
        """Saves ``state`` at ``step`` (asynchronously; :meth:`wait` to be sure it is on disk).

        Args:
          step: the number of completed training steps.
          state: the state pytree.
          config: the run's config, stored beside the identity.
          force: replace an existing checkpoint of the same step.
        """
        if step in self.manager.all_steps():
            if not force:
                return
            self.manager.delete(step)
        meta = {"identity": self.identity, "step": step, "config": config}
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state_to_tree(state)),
                meta=ocp.args.JsonSave(json.loads(json.dumps(meta))),
            ),
            force=True,
        )

    def write_config(self, config: dict) -> str:
        """Writes ``config.json`` beside the checkpoints (process 0); returns its path."""
        path = os.path.join(self.directory, "config.json")
        if self._primary:
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(
                    {"identity": self.identity, "config": config}, f, indent=2, sort_keys=True
                )
                f.write("\n")
            os.replace(tmp, path)
        return path

    def wait(self) -> None:
        """Blocks until every started save is complete on disk."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending saves and releases the manager."""
        self.manager.wait_until_finished()
        self.manager.close()
