"""The run's configuration: one frozen dataclass, the same fields as the command-line flags."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from jaxconv._check import check_bool, check_int, check_number
from jaxconv.train._loss import AUX_WEIGHT
from jaxconv.train._optim import OPTIMIZERS

__all__ = ["DEFAULTS", "DTYPES", "TrainConfig"]

#: ``dtype`` values: the models' compute dtype (parameters and optimizer state stay float32).
DTYPES = ("float32", "bfloat16")

#: Per-optimizer defaults for ``lr`` and ``weight_decay``.
DEFAULTS = {
    "sgd": {"lr": 0.05, "weight_decay": 5e-4},
    "adamw": {"lr": 2e-3, "weight_decay": 0.05},
}
#: Steps when neither ``steps`` nor ``epochs`` is given (a few minutes of NiN on 2 CPU cores).
DEFAULT_STEPS = 120
#: The default warm-up: ``min(MAX_DEFAULT_WARMUP, steps // 10)`` steps (:meth:`TrainConfig.warmup`).
MAX_DEFAULT_WARMUP = 10
#: Evaluations per run when ``eval_every`` is None (:meth:`TrainConfig.evaluates_at`).
DEFAULT_EVALUATIONS = 4

# Fields that may change between a run and its resumption; every other field is part of the
# run's identity, and a checkpoint made with other values is refused. The data fields are
# checked through the dataset's own fingerprint (the same data under another path is fine).
_NOT_IDENTITY = frozenset(
    {
        "steps",
        "epochs",
        "devices",
        "ckpt_dir",
        "ckpt_every",
        "keep",
        "metrics",
        "eval_every",
        "progress",
        "dtype",  # float32 parameters either way: a bf16 run resumes an f32 one and back
        "data",
        "train_size",
        "test_size",
        "export_torchvision",  # what is written at the end, not what is trained
    }
)
#: Identity fields added after checkpoints were first written, with the value that is left
#: out of the identity (the behaviour before them), so those checkpoints still resume.
_IDENTITY_SINCE = {"variant": "train", "image_size": None, "init": None}
#: ``variant`` values (:func:`jaxconv.train.model_variants` says which a model has).
VARIANTS = ("reference", "train", "torchvision")
#: ``init``'s only scheme: ``torchvision:FILE``.
INIT_SCHEME = "torchvision:"


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; field ``x_y`` is the flag ``--x-y``.

    Errors name the field (``batch_size``); the command line reports them as the flag.

    Attributes:
      model: a ``--model`` name (:func:`model_names`: the registry's, ``nin``, ``googlenet``,
        …, or one added with :func:`register_model`) or a registry alias.
      variant: which of the model's variants (:func:`model_variants`): ``"train"`` (the
        CIFAR stems, for 32×32), ``"reference"`` (the paper's) or ``"torchvision"``
        (torchvision's architecture with its ImageNet stem); ``None`` → ``"torchvision"``
        with ``init`` or ``export_torchvision``, else ``"train"``.
      image_size: resize the images (train and test) to this square side on the device,
        the shorter side scaled to it and the center cropped; ``None`` → as stored.
      init: ``"torchvision:FILE"``: start from torchvision's weights, a state_dict in an
        ``.npz``, ``.safetensors`` or ``.pth``/``.pt`` file (needs the torchvision variant).
      export_torchvision: at the end of the run, write the weights as a torchvision
        state_dict to this ``.npz``, ``.safetensors`` or ``.pth``/``.pt`` file.
      data: ``None`` for the embedded synthetic dataset, a CIFAR-10 directory or an ``.npz``.
      train_size: synthetic training images.
      test_size: synthetic test images.
      steps: training steps; ``None`` → from ``epochs``, else 120.
      epochs: passes over the training set (``steps = epochs · ⌊N / batch_size⌋``).
      batch_size: the global batch, split over the devices.
      optimizer: ``"sgd"`` (Nesterov momentum) or ``"adamw"``.
      lr: peak learning rate; ``None`` → 0.05 (sgd) / 0.002 (adamw).
      momentum: SGD momentum.
      weight_decay: decoupled weight decay on kernels only; ``None`` → 5e-4 / 0.05.
      warmup_steps: linear warmup before the cosine decay, fewer than ``steps``; ``None`` →
        ``min(10, steps // 10)`` (:meth:`warmup`).
      clip_norm: global gradient-norm clip (0 = off).
      label_smoothing: label-smoothing mass in ``[0, 1)``.
      aux_weight: weight of auxiliary classifier losses (GoogLeNet: 0.3, §5 of the paper).
      augment: random crop + horizontal flip.
      seed: seeds the initialization, the dropout RNG, the data order and the augmentation.
      devices: data-parallel devices; ``None`` → all visible.
      ckpt_dir: checkpoint directory (``None`` → no checkpoints).
      ckpt_every: checkpoint period in steps (also saved at the end and on SIGTERM/Ctrl-C).
      keep: how many checkpoints to keep.
      metrics: a JSON-lines file, one object per step plus evaluation lines.
      eval_every: test-set evaluation period in steps, and at the end; ``None`` → 4 times per
        run, evenly spaced, the last at the end (:meth:`evaluates_at`); 0 → at the end only.
      progress: show the rich progress bar.
      dtype: the compute dtype, ``"float32"`` or ``"bfloat16"`` (mixed precision: convs,
        matmuls and activations in bf16; parameters, gradients and optimizer state in
        float32; the loss in float32).

    Examples:
      >>> from jaxconv.train import TrainConfig
      >>> cfg = TrainConfig(model="nin", optimizer="sgd", steps=10).resolved(num_train=1000)
      >>> cfg.lr, cfg.weight_decay, cfg.steps
      (0.05, 0.0005, 10)
      >>> TrainConfig(steps=0).validate()
      Traceback (most recent call last):
      ...
      ValueError: `steps` must be a positive int, got 0
    """

    model: str = "nin"
    variant: str | None = None
    image_size: int | None = None
    init: str | None = None
    export_torchvision: str | None = None
    data: str | None = None
    train_size: int = 10_000
    test_size: int = 1_000
    steps: int | None = None
    epochs: int | None = None
    batch_size: int = 32
    optimizer: str = "adamw"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    warmup_steps: int | None = None
    clip_norm: float = 2.0
    label_smoothing: float = 0.0
    aux_weight: float = AUX_WEIGHT
    augment: bool = True
    seed: int = 0
    devices: int | None = None
    ckpt_dir: str | None = None
    ckpt_every: int = 100
    keep: int = 3
    metrics: str | None = None
    eval_every: int | None = None
    progress: bool = True
    dtype: str = "float32"

    def validate(self) -> TrainConfig:
        """Checks every field; returns ``self``.

        Raises:
          ValueError: a field is out of range, naming the field and the value.
          TypeError: a field has the wrong type.
        """
        from jaxconv.train._models import canonical_model_name

        canonical_model_name(self.model)
        self._check_model_options()
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"`optimizer` must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give `steps` or `epochs`, not both")
        for name in ("steps", "epochs", "devices"):
            check_int(getattr(self, name), name, allow_none=True)
        for name in ("batch_size", "train_size", "test_size", "ckpt_every", "keep"):
            check_int(getattr(self, name), name)
        check_int(self.seed, "seed", minimum=0)
        check_int(self.warmup_steps, "warmup_steps", minimum=0, allow_none=True)
        if self.epochs is None:  # the steps are known without the data
            self._check_warmup(DEFAULT_STEPS if self.steps is None else self.steps)
        check_int(self.eval_every, "eval_every", minimum=0, allow_none=True)
        if self.devices is not None and self.batch_size % self.devices:
            raise ValueError(
                f"`batch_size` (={self.batch_size}) must be a multiple of the number of "
                f"devices (={self.devices})"
            )
        if self.lr is not None and check_number(self.lr, "lr", 0.0) == 0:
            raise ValueError("`lr` must be > 0, got 0")
        if self.weight_decay is not None:
            check_number(self.weight_decay, "weight_decay", 0.0)
        check_number(self.momentum, "momentum", 0.0, 1.0)
        check_number(self.clip_norm, "clip_norm", 0.0)
        check_number(self.label_smoothing, "label_smoothing", 0.0, 1.0)
        check_number(self.aux_weight, "aux_weight", 0.0)
        check_bool(self.augment, "augment")
        check_bool(self.progress, "progress")
        if self.dtype not in DTYPES:
            raise ValueError(f"`dtype` must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        return self

    def resolved(self, num_train: int) -> TrainConfig:
        """Validates and fills the ``None`` defaults (``steps`` needs the training-set size).

        Args:
          num_train: training images (for ``epochs``).

        Returns:
          a config whose ``steps``, ``lr`` and ``weight_decay`` are set, and whose ``model``
          is the canonical name (an alias resolved: a checkpoint's identity). A None
          ``warmup_steps`` or ``eval_every`` stays None: its default depends on ``steps``,
          which a resumed run may change (:meth:`warmup`, :meth:`evaluates_at`).

        Raises:
          ValueError: a field is out of range, or ``warmup_steps`` is not below the steps
            that ``epochs`` gives.
        """
        from jaxconv.train._models import canonical_model_name

        self.validate()
        per_epoch = num_train // self.batch_size
        if per_epoch < 1:
            raise ValueError(
                f"`batch_size` (={self.batch_size}) must not exceed the training "
                f"set (={num_train} images)"
            )
        steps = self.steps
        if steps is None:
            steps = self.epochs * per_epoch if self.epochs is not None else DEFAULT_STEPS
        self._check_warmup(steps)
        defaults = DEFAULTS[self.optimizer]
        return dataclasses.replace(
            self,
            model=canonical_model_name(self.model),
            variant=self.model_variant(),
            steps=steps,
            lr=defaults["lr"] if self.lr is None else float(self.lr),
            weight_decay=(
                defaults["weight_decay"] if self.weight_decay is None else float(self.weight_decay)
            ),
        )

    def model_variant(self) -> str:
        """``variant``, or its default: ``"torchvision"`` with ``init`` or
        ``export_torchvision``, else ``"train"``.

        Examples:
          >>> from jaxconv.train import TrainConfig
          >>> TrainConfig(model="resnet18", init="torchvision:w.npz").model_variant()
          'torchvision'
        """
        if self.variant is not None:
            return self.variant
        return "torchvision" if self.init or self.export_torchvision else "train"

    def init_file(self) -> str | None:
        """The file of ``init`` (``"torchvision:FILE"``), or None.

        Raises:
          ValueError: ``init`` is not ``torchvision:FILE`` with a known suffix.
        """
        from jaxconv.train._weights import weights_format

        if self.init is None:
            return None
        if not isinstance(self.init, str) or not self.init.startswith(INIT_SCHEME):
            raise ValueError(
                f"`init` must be {INIT_SCHEME}FILE (torchvision's weights: .npz, .safetensors, "
                f".pth or .pt), got {self.init!r}"
            )
        path = self.init.removeprefix(INIT_SCHEME)
        weights_format(path, "init")
        return path

    def _check_model_options(self) -> None:
        """``variant``, ``image_size``, ``init`` and ``export_torchvision`` against the model."""
        from jaxconv.train._models import model_variants, torchvision_model_names
        from jaxconv.train._weights import weights_format

        if self.variant is not None and self.variant not in VARIANTS:
            raise ValueError(
                f"`variant` must be one of {', '.join(VARIANTS)}, got {self.variant!r}"
            )
        check_int(self.image_size, "image_size", allow_none=True)
        self.init_file()
        if self.export_torchvision is not None:
            weights_format(self.export_torchvision, "export_torchvision")
        variants = model_variants(self.model)
        for name in ("init", "export_torchvision"):
            if getattr(self, name) is None:
                continue
            if "torchvision" not in variants:
                raise ValueError(
                    f"`{name}` needs a model with torchvision's layout "
                    f"({', '.join(torchvision_model_names())}), got `model` {self.model!r}"
                )
            if self.model_variant() != "torchvision":
                raise ValueError(
                    f"`{name}` needs `variant` torchvision (torchvision's architecture), "
                    f"got {self.variant!r}"
                )
        if self.model_variant() not in variants:
            raise ValueError(
                f"`variant` must be one of {', '.join(variants)} for {self.model}, "
                f"got {self.variant!r}"
            )

    def _check_warmup(self, steps: int) -> None:
        if self.warmup_steps is not None and self.warmup_steps >= steps:
            default = ", the default" if self.steps is None and self.epochs is None else ""
            raise ValueError(
                f"`warmup_steps` (={self.warmup_steps}) must be less than `steps` "
                f"(={steps}{default})"
            )

    def warmup(self) -> int:
        """The warm-up steps of a resolved config: ``warmup_steps``, or by default
        ``min(10, steps // 10)`` (a 10-step run warms up for 1 step, a 120-step run for 10).

        Examples:
          >>> from jaxconv.train import TrainConfig
          >>> [TrainConfig(steps=s).resolved(1000).warmup() for s in (5, 10, 60, 120, 1000)]
          [0, 1, 6, 10, 10]
          >>> TrainConfig(steps=30, warmup_steps=3).resolved(1000).warmup()
          3
        """
        steps = check_int(self.steps, "steps")
        if self.warmup_steps is not None:
            return self.warmup_steps
        return min(MAX_DEFAULT_WARMUP, steps // 10)

    def evaluates_at(self, step: int) -> bool:
        """Whether a resolved config's run evaluates on the test split after ``step``.

        Every ``eval_every`` steps and after the last; by default (None) 4 times, evenly
        spaced, the last after the last step (a shorter run: after every step); 0: after the
        last step only.

        Examples:
          >>> from jaxconv.train import TrainConfig
          >>> cfg = TrainConfig(steps=10).resolved(1000)
          >>> [s for s in range(1, 11) if cfg.evaluates_at(s)]
          [3, 5, 8, 10]
          >>> cfg = TrainConfig(steps=10, eval_every=4).resolved(1000)
          >>> [s for s in range(1, 11) if cfg.evaluates_at(s)]
          [4, 8, 10]
        """
        steps = check_int(self.steps, "steps")
        if step == steps:
            return True
        if self.eval_every is None:
            n = min(DEFAULT_EVALUATIONS, steps)
            return any(step == math.ceil(k * steps / n) for k in range(1, n))
        return bool(self.eval_every) and step % self.eval_every == 0

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-able dict."""
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """The fields a resumed run must share with the checkpoint: all but ``steps``,
        ``epochs``, ``devices``, ``ckpt_*``, ``keep``, ``metrics``, ``eval_every``, ``progress``,
        ``export_torchvision`` and the data fields (the dataset is compared by its fingerprint
        instead). ``variant``, ``image_size`` and ``init`` are left out at their defaults
        (``"train"``, None, None), as checkpoints made before them have them."""
        return {
            k: v
            for k, v in self.to_dict().items()
            if k not in _NOT_IDENTITY and (k not in _IDENTITY_SINCE or v != _IDENTITY_SINCE[k])
        }
