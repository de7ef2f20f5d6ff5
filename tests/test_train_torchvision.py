"""Training from and to torchvision: ``--init torchvision:FILE``, ``--export-torchvision FILE``,
the torchvision variant and ``--image-size``."""

from __future__ import annotations

import dataclasses
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from rich.console import Console

from jaxconv.models import to_torchvision_state_dict
from jaxconv.train import (
    TrainConfig,
    Trainer,
    main,
    model_variants,
    registered_model,
    synthetic_dataset,
)
from jaxconv.train._run import prepare
from jaxconv.train._trainer import fit_images
from jaxconv.train._weights import read_state_dict, write_state_dict

QUIET = Console(quiet=True)


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> list[str]:
    """Names whose arrays differ (or that one side lacks)."""
    return [
        k
        for k in sorted(set(a) | set(b))
        if k not in a or k not in b or a[k].dtype != b[k].dtype or not np.array_equal(a[k], b[k])
    ]


def test_export_then_init_gives_the_same_parameters(tmp_path):
    data = synthetic_dataset(16, 8)
    exported = str(tmp_path / "resnet18.npz")
    cfg = TrainConfig(
        model="resnet18",
        steps=1,
        batch_size=8,
        ckpt_dir=str(tmp_path / "ckpt"),
        export_torchvision=exported,
        progress=False,
    )
    run = prepare(cfg, data=data, console=QUIET)
    summary = run.run()
    assert summary.exported == exported and run.trainer.config.variant == "torchvision"
    trained = to_torchvision_state_dict(run.trainer.model())
    weights = read_state_dict(exported)
    assert _same(weights, trained) == []
    assert weights["conv1.weight"].shape == (64, 3, 7, 7)  # torchvision's stem, not CIFAR's
    assert weights["fc.weight"].shape == (10, 512)

    # in again: the model starts from exactly these weights
    init = dataclasses.replace(cfg, init=f"torchvision:{exported}", ckpt_dir=None)
    started = to_torchvision_state_dict(Trainer(init, data).model())
    assert _same(started, weights) == []
    fresh = Trainer(dataclasses.replace(init, init=None), data).model()
    assert not np.array_equal(
        to_torchvision_state_dict(fresh)["conv1.weight"], started["conv1.weight"]
    )

    # a finished run, run again with another export: nothing to train, the same weights out
    again = str(tmp_path / "again.npz")
    console = Console(record=True, width=200)
    rerun = prepare(dataclasses.replace(cfg, export_torchvision=again), data=data, console=console)
    summary = rerun.run()
    text = console.export_text()
    assert "nothing to do" in text and f"to {again}" in text and summary.exported == again
    assert _same(read_state_dict(again), weights) == []


def test_init_from_a_checkpoint_of_other_classes_fine_tunes_a_fresh_head(tmp_path):
    """timm's ``pretrained=True, num_classes=10``: a 7-class checkpoint starts a 10-class run
    with every weight but the head's, and the re-initialized head is named."""
    from jaxconv.models import from_torchvision

    weights = to_torchvision_state_dict(from_torchvision("resnet18", num_classes=7))
    path = str(tmp_path / "seven.npz")
    write_state_dict(weights, path)
    data = synthetic_dataset(16, 8)  # 10 classes
    cfg = TrainConfig(model="resnet18", steps=1, batch_size=8, init=f"torchvision:{path}")
    with pytest.warns(
        UserWarning,
        match=r"head has 7 classes .* `num_classes` is 10: fc\.bias, fc\.weight are initialized",
    ):
        started = to_torchvision_state_dict(Trainer(cfg, data).model())
    assert started["fc.weight"].shape == (10, 512)
    body = [k for k in weights if not k.startswith("fc.")]
    assert _same({k: started[k] for k in body}, {k: weights[k] for k in body}) == []


@pytest.mark.parametrize("suffix", [".npz", ".safetensors", ".pth", ".pt"])
def test_each_format_round_trips(tmp_path, suffix):
    pytest.importorskip("safetensors" if suffix == ".safetensors" else "numpy")
    if suffix in (".pth", ".pt"):
        pytest.importorskip("torch")
    state_dict = {
        "conv1.weight": np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3),
        "bn1.num_batches_tracked": np.array(0, np.int64),
    }
    path = str(tmp_path / f"w{suffix}")
    write_state_dict(state_dict, path)
    assert _same(read_state_dict(path), state_dict) == []
    assert [p.name for p in tmp_path.iterdir()] == [f"w{suffix}"]  # no temporary file left


def test_torch_checkpoints_read_bfloat16_as_float32(tmp_path):
    torch = pytest.importorskip("torch")
    path = str(tmp_path / "w.pth")
    torch.save({"fc.weight": torch.full((2, 3), 1.5, dtype=torch.bfloat16)}, path)
    weights = read_state_dict(path)
    assert weights["fc.weight"].dtype == np.float32 and (weights["fc.weight"] == 1.5).all()
    torch.save([torch.ones(2)], path)
    with pytest.raises(ValueError, match=r"`init` file .*w.pth holds no state_dict .*got list"):
        read_state_dict(path)


def test_bad_weight_files_are_named(tmp_path):
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(ValueError, match=r"`init` file .*text.npz is not an .npz archive"):
        read_state_dict(str(tmp_path / "text.npz"))
    with pytest.raises(ValueError, match=r"`init` file .*nowhere.npz does not exist"):
        read_state_dict(str(tmp_path / "nowhere.npz"))
    with pytest.raises(
        ValueError, match=r"`init` file must end in .npz, .safetensors, .pth or .pt"
    ):
        read_state_dict(str(tmp_path / "w.h5"))
    pytest.importorskip("safetensors")
    (tmp_path / "text.safetensors").write_text("not safetensors")
    with pytest.raises(ValueError, match=r"text.safetensors is not a safetensors file"):
        read_state_dict(str(tmp_path / "text.safetensors"))


def test_a_missing_package_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(
        ImportError, match=r"needs the safetensors package, .*pip install safetensors"
    ):
        read_state_dict(str(tmp_path / "w.safetensors"))
    with pytest.raises(ImportError, match=r"needs the torch package, .*pip install torch"):
        write_state_dict({}, str(tmp_path / "w.pth"))
    # before any training: one line, exit 1
    out = str(tmp_path / "w.safetensors")
    assert main(["--model", "resnet18", "--export-torchvision", out, "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: `--export-torchvision` file")
    assert err[0].endswith("pip install safetensors")


def test_image_size_resizes_every_batch_on_the_device():
    def needs_40(num_classes, rngs):  # a dense layer on the flat 40×40 image
        flat = nnx.Linear(40 * 40 * 3, num_classes, rngs=rngs)
        return nnx.Sequential(lambda x: x.reshape(x.shape[0], -1), flat)

    data = synthetic_dataset(16, 8)
    with registered_model("needs-40", needs_40):
        cfg = TrainConfig(model="needs-40", steps=2, batch_size=8, progress=False)
        with pytest.raises(ValueError, match=r"cannot train on the 32×32×3 images"):
            Trainer(cfg, data)
        trainer = Trainer(dataclasses.replace(cfg, image_size=40), data)
    assert trainer.input_shape == (40, 40, 3)
    metrics = trainer.train_step()
    assert np.isfinite(float(metrics["loss"]))
    assert 0 <= trainer.evaluate()["test_accuracy"] <= 1


def test_fit_images_scales_the_shorter_side_and_crops_the_center():
    x = jnp.zeros((1, 32, 48, 1)).at[:, :, 8:40].set(1.0)  # the center 32 columns are 1
    assert fit_images(x, None) is x and fit_images(x[:, :, :32], 32) is not None
    centre = fit_images(x, 32)
    assert centre.shape == (1, 32, 32, 1) and bool((centre == 1.0).all())
    up = fit_images(jnp.full((2, 8, 8, 3), 0.25), 20)
    assert up.shape == (2, 20, 20, 3) and np.allclose(up, 0.25)


def test_variants_and_identity():
    assert model_variants("resnet18") == ("reference", "train", "torchvision")
    assert TrainConfig(model="resnet18").model_variant() == "train"
    assert (
        TrainConfig(model="resnet18", export_torchvision="w.npz").model_variant() == "torchvision"
    )
    # the new fields join the identity only when set: older checkpoints still resume
    plain = TrainConfig(model="resnet18", steps=5).resolved(100).identity()
    assert not {"variant", "image_size", "init", "export_torchvision"} & set(plain)
    tv = TrainConfig(model="resnet18", steps=5, image_size=64, init="torchvision:w.npz")
    ident = tv.resolved(100).identity()
    assert (ident["variant"], ident["image_size"], ident["init"]) == (
        "torchvision",
        64,
        "torchvision:w.npz",
    )
    assert (
        "export_torchvision"
        not in TrainConfig(export_torchvision="w.npz", model="resnet18").identity()
    )
