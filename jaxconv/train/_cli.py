"""``python -m jaxconv.train``: argument parsing, one-line errors, exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import textwrap
import warnings
from collections.abc import Sequence
from typing import Any

from jaxconv.models.registry import MODELS
from jaxconv.train._config import DEFAULT_STEPS, DEFAULTS, DTYPES, VARIANTS, TrainConfig
from jaxconv.train._models import model_names, torchvision_model_names

__all__ = ["build_parser", "main"]

_SGD, _ADAMW = DEFAULTS["sgd"], DEFAULTS["adamw"]
_DESCRIPTION = """\
Train a jaxconv model (optax, data-parallel over jax.sharding, orbax checkpoints).

Without --data it trains on the embedded synthetic dataset: 10 classes of oriented patterns and
shapes (stripes, disc, ring, square, plus, cross, triangles) with random colours, positions,
tilt and noise — generated from --seed, nothing is downloaded."""

_EPILOG = f"""\
data:
  --data DIR        CIFAR-10 python pickles (data_batch_1..5, test_batch), as extracted from
                    cifar-10-python.tar.gz (the cifar-10-batches-py folder or its parent)
  --data FILE.npz   keys images, labels (+ optional test_images, test_labels; else the last
                    10% is the test split) or x_train, y_train, x_test, y_test; uint8 NHWC
  Batches depend only on (--seed, step): each epoch is a permutation drawn from the seed, then
  random crop (pad 4) + horizontal flip drawn from (seed, step). A resumed run sees exactly
  the batches the uninterrupted run would have.

{{models}}
  --variant train (the default) is the CIFAR port above; --variant torchvision is
  torchvision's architecture with its ImageNet stem (googlenet: no auxiliary heads,
  transform_input on, as torchvision's pretrained model).

torchvision weights:
  --init torchvision:FILE starts from a torchvision state_dict (e.g. torch.save(
  torchvision.models.resnet18(weights="DEFAULT").state_dict(), "r18.pth")): .npz,
  .safetensors (pip install safetensors) or .pth/.pt (needs torch). It implies --variant
  torchvision; the model is built by jaxconv.models.from_torchvision with num_classes = the
  data's classes (a checkpoint of other classes loads all but its head, which starts fresh,
  with a warning). --image-size 224 resizes the 32x32 images to what ImageNet weights saw
  (smaller sizes run too, down to the model's minimum, which an error names).
  --export-torchvision FILE writes the weights back at the end of the run, in torchvision's
  names and layouts (OIHW), for torchvision_model.load_state_dict; run a finished run again
  with it to export only.

optimizer:
  sgd: Nesterov momentum, lr {_SGD["lr"]}, weight decay {_SGD["weight_decay"]};
  adamw: lr {_ADAMW["lr"]}, weight decay {_ADAMW["weight_decay"]}.
  Both: linear warmup then cosine decay to 0 at the last step, global-norm gradient clipping,
  weight decay on kernels only (never on biases or norm scales). GoogLeNet's auxiliary
  classifiers add --aux-weight (0.3) times their loss in training.

devices:
  The global --batch-size is split over --devices (default: all visible), parameters are
  replicated; the batch size must be a multiple of the device count (an error otherwise, never
  a silent change). On CPU, --devices N creates N host devices by itself (like
  XLA_FLAGS=--xla_force_host_platform_device_count=N). Multi-host: start the same command on
  every host with --distributed (auto-detects SLURM/MPI/TPU/k8s) or with --coordinator
  HOST:PORT --num-processes P --process-id I; every process computes the same global batch
  and feeds its own devices' rows; process 0 prints and writes metrics.

host memory:
  On Linux with glibc the command keeps the memory XLA:CPU frees for the next step instead of
  returning it to the OS (jaxconv.retain_host_memory: one malloc arena, blocks up to 2 GiB
  kept), so a step's temporaries stop page-faulting in afresh every step.

checkpoints:
  With --ckpt-dir, a checkpoint (parameters, optimizer state, BatchNorm statistics, RNG
  state, step) is saved every --ckpt-every steps, at the end, and on SIGTERM/Ctrl-C; the last
  --keep are kept. Saves are atomic: a save killed midway is ignored with a warning. Running
  the same command again resumes from the newest checkpoint — bit for bit the same result as
  an uninterrupted run; a larger --steps continues training (the cosine schedule is then
  stretched to the new end). A checkpoint of another model or config is refused with an
  error. The run's config is saved as DIR/config.json.

experiment:
  --compare trains inception-direct5x5 and inception-bottleneck (the same small Inception
  net with / without the 1x1 reduce before each 5x5) with the same settings and prints
  parameters, MACs, time per step and accuracies side by side, with a plot (--plot).

exit status: 0 done; 2 bad flags (unknown, malformed, out of range or conflicting values);
1 bad data (a file a flag names is missing, unreadable or from another run; a device count
this machine lacks; a package a file format needs is not installed); 130/143 stopped by
SIGINT/SIGTERM (checkpoint saved; run again to resume).
default --steps: {DEFAULT_STEPS} when neither --steps nor --epochs is given."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # One line, no usage dump: the flags are in --help.
        self.exit(2, f"error: {message} (see --help)\n")


#: One flag: (its name, its help, more ``add_argument`` keywords).
_Flag = tuple[str, str, dict[str, Any]]
_CONFIG = TrainConfig()  # the defaults


def _flags(models: tuple[str, ...]) -> dict[str, tuple[_Flag | list[_Flag], ...]]:
    """The flags by help group, in order; a list is a mutually exclusive group.

    A flag named after a :class:`TrainConfig` field with a default (and no ``action``) takes
    that default, its type, and a help ending ``(default: value)``; the others say theirs.
    """
    n = {"metavar": "N"}
    return {
        "model and data": (
            ("--model", f"one of {', '.join(models)}", {"metavar": "NAME"}),
            (
                "--variant",
                "train: the CIFAR stem, for 32x32; torchvision: torchvision's architecture "
                "(ImageNet stem); reference: the paper's (default: torchvision with --init or "
                "--export-torchvision, else train)",
                {"choices": VARIANTS},
            ),
            (
                "--init",
                "start from torchvision's weights: a state_dict in a .npz, .safetensors or "
                ".pth/.pt file (models: " + ", ".join(torchvision_model_names()) + ")",
                {"metavar": "torchvision:FILE"},
            ),
            (
                "--export-torchvision",
                "at the end, write the weights as a torchvision state_dict (.npz, "
                ".safetensors or .pth/.pt)",
                {"metavar": "FILE"},
            ),
            (
                "--image-size",
                "resize the images to N x N on the device (shorter side to N, center crop), "
                "e.g. 224 for ImageNet weights (default: as stored)",
                {"type": int, **n},
            ),
            (
                "--data",
                "CIFAR-10 directory or .npz file (default: embedded synthetic data)",
                {"metavar": "PATH"},
            ),
            ("--train-size", "synthetic training images", n),
            ("--test-size", "synthetic test images", n),
            (
                "--dtype",
                "compute dtype; bfloat16 keeps float32 parameters and optimizer state",
                {"choices": DTYPES},
            ),
        ),
        "length": (
            [
                ("--steps", f"training steps (default: {DEFAULT_STEPS})", {"type": int, **n}),
                ("--epochs", "passes over the training set instead of --steps", {"type": int, **n}),
            ],
            ("--batch-size", "global batch size, split over the devices", {"metavar": "B"}),
            (
                "--eval-every",
                "evaluate on the test split every N steps and at the end (default: 4 times "
                "per run, evenly spaced, the last at the end; 0: at the end only)",
                {"type": int, **n},
            ),
        ),
        "optimization": (
            ("--optimizer", "", {"choices": ("sgd", "adamw")}),
            ("--lr", "peak learning rate (default: per optimizer)", {"type": float}),
            ("--momentum", "SGD momentum", {}),
            (
                "--weight-decay",
                "decoupled weight decay on kernels (default: per optimizer)",
                {"type": float, "metavar": "WD"},
            ),
            (
                "--warmup-steps",
                "linear warmup steps, fewer than --steps (default: min(10, 10%% of the steps))",
                {"type": int, **n},
            ),
            ("--clip-norm", "clip gradients to global norm C, 0 = off", {"metavar": "C"}),
            ("--label-smoothing", "label smoothing", {"metavar": "E"}),
            ("--aux-weight", "weight of auxiliary classifier losses", {"metavar": "W"}),
            ("--no-augment", "no random crop / flip", {"dest": "augment", "action": "store_false"}),
            ("--seed", "seeds init, dropout, data order, augmentation", {}),
        ),
        "devices": (
            ("--devices", "data-parallel devices (default: all)", {"type": int, **n}),
            (
                "--distributed",
                "multi-host: call jax.distributed.initialize() (auto-detect)",
                {"action": "store_true"},
            ),
            ("--coordinator", "multi-host coordinator address", {"metavar": "HOST:PORT"}),
            ("--num-processes", "multi-host process count", {"type": int, "metavar": "P"}),
            ("--process-id", "this process's index", {"type": int, "metavar": "I"}),
        ),
        "checkpoints and logs": (
            ("--ckpt-dir", "checkpoint directory; resumes from it", {"metavar": "DIR"}),
            ("--ckpt-every", "checkpoint every N steps", n),
            ("--keep", "checkpoints to keep", n),
            (
                "--metrics",
                'JSON lines: {"step", "kind": "train", "loss", "accuracy", '
                '"grad_norm", "lr", "images_per_second"} per step and {"step", "kind": "eval", '
                '"test_loss", "test_accuracy"} per evaluation',
                {"metavar": "FILE.jsonl"},
            ),
            ("--no-progress", "no progress bar", {"dest": "progress", "action": "store_false"}),
        ),
        "experiment": (
            (
                "--compare",
                "train inception-direct5x5 and inception-bottleneck and compare them "
                "(--model is ignored)",
                {"action": "store_true"},
            ),
            (
                "--plot",
                "--compare's plot (default: inception-compare.png; needs matplotlib)",
                {"default": "inception-compare.png", "metavar": "FILE"},
            ),
            ("--report", "--compare's numbers as JSON", {"metavar": "FILE.json"}),
        ),
    }


def _add(group: Any, flag: str, text: str, options: dict[str, Any]) -> None:
    default = getattr(_CONFIG, flag.removeprefix("--").replace("-", "_"), None)
    if default is not None and "action" not in options:
        type_ = {} if isinstance(default, str) else {"type": type(default)}
        options = {"default": default, **type_, **options}
        text = f"{text} (default: {default})".lstrip()
    group.add_argument(flag, help=text, **options)


def _models_help() -> str:
    """The epilog's ``models:`` section: one row per registry model."""
    rows = ["models:"]
    for entry in MODELS.values():
        also = f"; alias: {', '.join(entry.aliases)}" if entry.aliases else ""
        rows.append(
            textwrap.fill(
                entry.summary + also,
                width=96,
                initial_indent=f"  {entry.name:<22}",
                subsequent_indent=" " * 24,
            )
        )
    return "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m jaxconv.train`` argument parser.

    Examples:
      >>> from jaxconv.train._cli import build_parser
      >>> build_parser().parse_args(["--model", "nin", "--steps", "5"]).steps
      5
    """
    p = _Parser(
        prog="python -m jaxconv.train",
        description=_DESCRIPTION,
        epilog=_EPILOG.replace("{models}", _models_help()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for title, flags in _flags(model_names()).items():
        group = p.add_argument_group(title)
        for flag in flags:
            if isinstance(flag, list):
                exclusive = group.add_mutually_exclusive_group()
                for one in flag:
                    _add(exclusive, *one)
            else:
                _add(group, *flag)
    return p


def _config(args: argparse.Namespace) -> TrainConfig:
    fields = TrainConfig.__dataclass_fields__
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})


#: Library arguments that receive a flag's value under another name (make_mesh, Checkpoints).
_ARGUMENT_FIELDS = {"num_devices": "devices", "directory": "ckpt_dir"}


def _as_flags(message: str) -> str:
    """The library names a field or argument (`batch_size`); the command line names its flag.

    Examples:
      >>> from jaxconv.train._cli import _as_flags
      >>> _as_flags("`batch_size` must be a positive int, got 0 (`stop_at` is not a flag)")
      '`--batch-size` must be a positive int, got 0 (`stop_at` is not a flag)'
      >>> _as_flags("`num_devices` (=8) exceeds the 4 visible device(s)")  # make_mesh's name
      '`--devices` (=8) exceeds the 4 visible device(s)'
    """
    flags = {
        action.dest: next(o for o in action.option_strings if o.startswith("--"))
        for action in build_parser()._actions
        if any(o.startswith("--") for o in action.option_strings)
    }

    def flag(match: re.Match[str]) -> str:
        name = _ARGUMENT_FIELDS.get(match.group(1), match.group(1))
        return f"`{flags[name]}`" if name in flags else match.group(0)

    return re.sub(r"`(\w+)`", flag, " ".join(message.split()))


def _one_line_warnings(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)


def _use_cpu_devices(n: int | None) -> None:
    """On CPU, ``--devices N`` needs N host devices; ask JAX for them before it starts."""
    if (
        n is None
        or n < 2
        or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
    ):
        return
    import jax

    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # a backend is already running (e.g. main() called from Python)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (see ``--help``).

    Args:
      argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
      0 done; 1 bad data, a checkpoint of another run or missing devices (one line on
      stderr); 130/143 stopped by SIGINT/SIGTERM after saving a checkpoint. Bad flags (values
      included) raise ``SystemExit(2)`` with one line on stderr, as argparse does.

    Examples:
      >>> from jaxconv.train import main
      >>> main(["--model", "nope"])  # prints "error: `--model` must be one of ..." to stderr
      Traceback (most recent call last):
      ...
      SystemExit: 2
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.getLogger("absl").setLevel(logging.ERROR)  # orbax's info chatter
    from jaxconv.train._checkpoint import CheckpointMismatchError
    from jaxconv.train._models import check_image_size
    from jaxconv.train._sharding import check_distributed_args, initialize_distributed

    try:  # the flags alone: a bad value exits 2, like argparse's own errors
        config = _config(args).validate()
        check_distributed_args(args.coordinator, args.num_processes, args.process_id)
        if config.image_size is not None:
            check_image_size(config.model, config.model_variant(), config.image_size)
    except (ValueError, TypeError) as err:
        parser.error(_as_flags(str(err)))
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warnings
        try:
            if args.distributed or args.coordinator is not None:
                initialize_distributed(args.coordinator, args.num_processes, args.process_id)
            else:
                _use_cpu_devices(args.devices)
            if args.compare:
                from jaxconv.train._experiment import compare

                compare(config, plot=args.plot, report=args.report)
                return 0
            from jaxconv.train._run import prepare

            run = prepare(config)
        except (ValueError, TypeError, CheckpointMismatchError, OSError, ImportError) as err:
            print(f"error: {_as_flags(str(err))}", file=sys.stderr)
            return 1
        try:
            summary = run.run()  # an error from here on is a bug: it keeps its traceback
        except KeyboardInterrupt:  # a second Ctrl-C / SIGTERM while the first was handled
            print("error: interrupted again; stopped without a final checkpoint", file=sys.stderr)
            return 130
    if summary.interrupted:
        return 128 + signal.Signals[summary.interrupted].value
    return 0
