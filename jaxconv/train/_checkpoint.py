"""Checkpoints with orbax ``CheckpointManager``: atomic, last-N, refused when they do not fit.

A checkpoint is ``DIR/<step>/`` with two items: ``state`` (every array of the model and the
optimizer — parameters, BatchNorm statistics, RNG keys and counters, optimizer moments and
step) and ``meta`` (JSON: the run's identity and config). Orbax writes into
``<step>.orbax-checkpoint-tmp`` and renames when complete, so a save killed midway never
looks like a checkpoint; :class:`Checkpoints` warns about such leftovers and orbax's manager
removes them (``cleanup_tmp_directories``). A step directory that is there but unreadable is
moved aside (``broken-<step>``) with a warning and the previous checkpoint used instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import nnx, traverse_util

from jaxconv._check import check_int

__all__ = [
    "CheckpointMismatchError",
    "Checkpoints",
    "PartialCheckpointWarning",
    "state_signature",
    "state_to_tree",
    "tree_to_state",
]


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


def _is_key(x: Any) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _raw(variable: Any) -> Any:
    """A variable's array as orbax stores it: PRNG keys as their ``uint32`` key data."""
    value = variable.get_value() if isinstance(variable, nnx.Variable) else variable
    return jax.random.key_data(value) if _is_key(value) else value


def _string_keys(tree: dict) -> dict:
    return {str(k): _string_keys(v) if isinstance(v, dict) else v for k, v in tree.items()}


def state_to_tree(state: nnx.State) -> dict:
    """Nested string-keyed dict of the state's arrays (PRNG keys as their raw ``uint32`` data).

    ``nnx.to_pure_dict`` with the keys made strings: the layout of the checkpoints on disk
    (``state/0/conv/kernel``, ``state/1/opt_state/0/mu/…``).

    Args:
      state: an ``nnx.State`` (e.g. of ``(model, optimizer)``).

    Returns:
      a nested ``dict`` orbax can save; paths follow the state's keys.

    Examples:
      >>> from flax import nnx
      >>> from jaxconv.train import state_to_tree
      >>> tree = state_to_tree(nnx.state(nnx.Linear(2, 3, rngs=nnx.Rngs(0))))
      >>> {name: array.shape for name, array in tree.items()}
      {'bias': (3,), 'kernel': (2, 3)}
    """
    return _string_keys(nnx.to_pure_dict(state, _raw))


def tree_to_state(template: nnx.State, tree: dict) -> nnx.State:
    """Inverse of :func:`state_to_tree`: ``template``'s structure holding ``tree``'s arrays.

    ``nnx.replace_by_pure_dict`` on a copy of ``template`` (which is left unchanged), after
    checking that ``tree`` has every array of ``template`` with its shape: the library keeps
    the template's value where one is missing, which would resume from a half-fresh state.
    Arrays in ``tree`` that ``template`` lacks are ignored.

    Args:
      template: an ``nnx.State`` with the wanted structure, dtypes (keys re-wrapped) and shapes.
      tree: the nested dict (string keys, as :func:`state_to_tree` makes).

    Returns:
      a new ``nnx.State`` like ``template`` holding ``tree``'s arrays.

    Raises:
      CheckpointMismatchError: a path is missing or a shape differs.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.train import state_to_tree, tree_to_state
      >>> state = nnx.state(nnx.Linear(2, 3, rngs=nnx.Rngs(0)))
      >>> tree = {"bias": jnp.ones(3), "kernel": jnp.zeros((2, 3))}
      >>> tree_to_state(state, tree)["bias"].get_value().tolist()
      [1.0, 1.0, 1.0]
    """
    have = traverse_util.flatten_dict(tree)
    wanted = {}
    for path, variable in nnx.to_flat_state(template):
        names = tuple(map(str, path))
        if names not in have:
            raise CheckpointMismatchError(f"the checkpoint has no array at {'/'.join(names)}")
        value = have[names]
        model = variable.get_value()
        if _is_key(model):
            value = jax.random.wrap_key_data(value)
        if tuple(value.shape) != tuple(model.shape):
            raise CheckpointMismatchError(
                f"the checkpoint's {'/'.join(names)} has shape "
                f"{tuple(value.shape)}, the model's {model.shape}"
            )
        wanted[names] = value
    state = jax.tree.map(lambda x: x, template)  # new State and Variables: template unchanged
    nnx.replace_by_pure_dict(state, traverse_util.unflatten_dict(wanted))
    return state


def state_signature(state: nnx.State) -> str:
    """A short hash of every array's path, shape and dtype: two models match iff it does.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxconv.train import state_signature
      >>> def linear(seed):
      ...     return nnx.state(nnx.Linear(2, 3, rngs=nnx.Rngs(seed)))
      >>> state_signature(linear(0)) == state_signature(linear(1))
      True
    """
    digest = hashlib.sha256()
    for path, variable in nnx.to_flat_state(state):
        value = variable.get_value()
        digest.update(f"{'/'.join(map(str, path))}:{value.shape}:{value.dtype};".encode())
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
      TypeError: ``keep`` is not an int.
      ValueError: ``directory`` exists and is not a directory, or ``keep`` < 1.

    Examples:
      >>> import tempfile
      >>> from flax import nnx
      >>> from jaxconv.train import Checkpoints
      >>> def linear(seed):
      ...     return nnx.state(nnx.Linear(2, 3, rngs=nnx.Rngs(seed)))
      >>> ckpt = Checkpoints(tempfile.mkdtemp(), identity={"model": "tiny"})
      >>> ckpt.save(3, linear(0), config={})
      >>> step, state, meta = ckpt.restore_latest(linear(1))
      >>> step, (state["kernel"].get_value() == linear(0)["kernel"].get_value()).all()
      (3, Array(True, dtype=bool))
      >>> meta["identity"]
      {'model': 'tiny'}
      >>> ckpt.close()
    """

    def __init__(self, directory: str, identity: dict, *, keep: int = 3):
        keep = check_int(keep, "keep")
        self.directory = os.path.abspath(directory)
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise ValueError(f"`directory` {directory} exists and is not a directory")
        self.identity = json.loads(json.dumps(identity))
        self._primary = jax.process_index() == 0
        if os.path.isdir(self.directory):
            self._warn_unfinished()
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, cleanup_tmp_directories=True
            ),
            item_names=("state", "meta"),
        )

    def _warn_unfinished(self) -> None:
        """Names the saves that did not finish; orbax's manager removes them (process 0)."""
        for name in sorted(ocp.path.step.tmp_checkpoints(self.directory)):
            warnings.warn(
                f"ignoring the partial checkpoint {os.path.join(self.directory, name)} (a save "
                f"that did not finish); it is removed",
                PartialCheckpointWarning,
                stacklevel=3,
            )

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
                f"run ({diff}); use another `directory` or the settings it was made with"
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
