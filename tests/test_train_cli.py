"""``python -m jaxconv.train``: help, one-line errors, SIGTERM saves a checkpoint that resumes
in a new process to the same bits."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import time

import pytest
from rich.console import Console
from test_train_support import (
    REPO_DIR,
    cli_command,
    cli_env,
    differing,
    final_tree,
    register,
    run_cli,
    tiny_data,
)

from jaxconv.train import TrainConfig, main, train
from jaxconv.train._cli import _config, build_parser

SMALL = ("--train-size", "96", "--test-size", "24", "--batch-size", "16")


def _bad_inputs(tmp) -> dict[str, tuple[tuple[str, ...], str, int]]:
    (tmp / "text.npz").write_text("not an npz")
    (tmp / "random.npz").write_bytes(bytes(range(256)) * 8)
    return {
        "unknown-model": (("--model", "resnet"), r"`--model` must be one of nin, googlenet", 2),
        "steps": (("--steps", "0"), r"`--steps` must be a positive int, got 0", 2),
        "batch": (("--batch-size", "-2"), r"`--batch-size` must be a positive int, got -2", 2),
        "momentum": (("--momentum", "1.5"), r"`--momentum` must be", 2),
        "not-a-number": (("--lr", "fast"), r"argument --lr: invalid float value: 'fast'", 2),
        "warmup": (
            ("--model", "tiny", "--steps", "10", "--warmup-steps", "10", *SMALL),
            r"`--warmup-steps` \(=10\) must be less than `--steps` \(=10\) \(see --help\)$",
            2,
        ),
        "init-scheme": (
            ("--model", "resnet18", "--init", "imagenet:w.npz"),
            r"`--init` must be torchvision:FILE \(torchvision's weights: .npz, .safetensors, "
            r".pth or .pt\), got 'imagenet:w.npz'",
            2,
        ),
        "init-suffix": (
            ("--model", "resnet18", "--init", "torchvision:w.bin"),
            r"`--init` file must end in .npz, .safetensors, .pth or .pt, got 'w.bin'",
            2,
        ),
        "init-model": (
            ("--model", "nin", "--init", "torchvision:w.npz"),
            r"`--init` needs a model with torchvision's layout \(googlenet, resnet18, .*\), "
            r"got `--model` 'nin'",
            2,
        ),
        "init-variant": (
            ("--model", "resnet18", "--variant", "train", "--init", "torchvision:w.npz"),
            r"`--init` needs `--variant` torchvision .*got 'train'",
            2,
        ),
        "export-suffix": (
            ("--model", "resnet18", "--export-torchvision", "w.h5"),
            r"`--export-torchvision` file must end in .npz, .safetensors, .pth or .pt",
            2,
        ),
        "no-such-variant": (
            ("--model", "nin", "--variant", "torchvision"),
            r"`--variant` must be one of reference, train for nin, got 'torchvision'",
            2,
        ),
        "image-size": (
            ("--model", "googlenet", "--variant", "torchvision", "--image-size", "8"),
            r"`--image-size` \(=8\) is too small for googlenet \(torchvision variant\): it "
            r"needs images of at least 15×15 \(see --help\)$",
            2,
        ),
        "init-missing": (
            ("--model", "resnet18", "--init", f"torchvision:{tmp}/nowhere.npz"),
            rf"`--init` file {tmp}/nowhere.npz does not exist$",
            1,
        ),
        "export-folder": (
            ("--model", "resnet18", "--export-torchvision", f"{tmp}/no/w.npz"),
            rf"`--export-torchvision` folder {tmp}/no does not exist$",
            1,
        ),
        "both-lengths": (
            ("--steps", "3", "--epochs", "1"),
            r"argument --epochs: not allowed with argument --steps",
            2,
        ),
        "missing-data": (
            ("--data", str(tmp / "nowhere")),
            rf"`--data` path {tmp}/nowhere does not exist",
            1,
        ),
        "wrong-format": (
            ("--data", str(tmp / "text.npz")),
            r"text.npz is not a valid image archive",
            1,
        ),
        "random-bytes": (
            ("--data", str(tmp / "random.npz")),
            r"random.npz is not a valid image archive \(an .npz as np.savez writes it[^\n]*$",
            1,
        ),
        "indivisible": (
            ("--model", "tiny", "--devices", "3", *SMALL),
            r"`--batch-size` \(=16\) must be a multiple of the number of devices "
            r"\(=3\)",
            2,
        ),
        "half-distributed": (
            ("--coordinator", "localhost:1234"),
            r"`--coordinator`, `--num-processes` and `--process-id` go together",
            2,
        ),
        "metrics-dir": (
            ("--model", "tiny", "--steps", "1", *SMALL, "--metrics", str(tmp / "no" / "m.jsonl")),
            r"`--metrics` file .*m.jsonl cannot be written",
            1,
        ),
        "mismatch": (
            (
                "--model",
                "tiny",
                "--optimizer",
                "adamw",
                "--lr",
                "0.5",
                "--ckpt-dir",
                str(tmp / "ckpt"),
                *SMALL,
            ),
            r"belongs to a different run \(lr: 0.05 there, 0.5 here\); use another "
            r"`--ckpt-dir`",
            1,
        ),
    }


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    """Every bad input at once (concurrent subprocesses), after one good tiny checkpoint."""
    tmp = tmp_path_factory.mktemp("cli")
    register()
    train(
        TrainConfig(
            model="tiny",
            optimizer="adamw",
            lr=0.05,
            steps=1,
            train_size=96,
            test_size=24,
            batch_size=16,
            ckpt_dir=str(tmp / "ckpt"),
            progress=False,
        ),
        console=Console(quiet=True),
    )
    cases = _bad_inputs(tmp)
    snapshot = {p: os.path.getmtime(p) for p in (tmp / "ckpt").rglob("*")}
    procs = {
        name: subprocess.Popen(
            cli_command(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
            cwd=REPO_DIR,
        )
        for name, (args, _, _) in cases.items()
    }
    try:
        results = {name: (p.wait(timeout=180), *p.communicate()) for name, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    untouched = {p: os.path.getmtime(p) for p in (tmp / "ckpt").rglob("*")} == snapshot
    return cases, results, untouched


def test_bad_input_gives_one_line_and_a_nonzero_exit(bad_runs):
    cases, results, untouched = bad_runs
    for name, (_, pattern, code) in cases.items():
        rc, out, err = results[name]
        lines = [line for line in err.splitlines() if line.strip()]
        assert rc == code, (name, rc, err)
        assert "Traceback" not in out + err, (name, err)
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, err)
        assert re.search(pattern, lines[0]), (name, lines[0])
    assert untouched  # the refused run wrote nothing into the other run's checkpoints


def test_help_documents_every_flag():
    proc = run_cli("--help", tiny=False, timeout=60)
    assert proc.returncode == 0
    flags = [s for a in build_parser()._actions for s in a.option_strings if s.startswith("--")]
    assert len(flags) > 25
    for flag in flags:
        assert flag in proc.stdout, flag
    for topic in ("CIFAR-10", ".npz", "SIGTERM", "resume", "--distributed", "exit status"):
        assert topic in proc.stdout, topic


def test_every_config_field_is_a_flag_with_its_default():
    args = build_parser().parse_args([])
    assert set(TrainConfig.__dataclass_fields__) <= set(vars(args))
    assert _config(args) == TrainConfig()
    assert build_parser().parse_args(["--train-size", "7", "--clip-norm", "1"]).clip_norm == 1.0


def test_the_default_evaluates_as_often_as_the_help_says():
    text = " ".join(build_parser().format_help().split())
    assert "(default: 4 times per run, evenly spaced, the last at the end;" in text
    register()
    for steps, evaluated in ((10, [3, 5, 8, 10]), (3, [1, 2, 3])):
        cfg = TrainConfig(model="tiny", steps=steps, batch_size=16, progress=False)
        summary = train(cfg, data=tiny_data(), console=Console(quiet=True))
        assert [record["step"] for record in summary.history] == evaluated, steps


def test_running_a_finished_run_again_has_nothing_to_do(tmp_path, capsys):
    register()
    ckpt, metrics = tmp_path / "ckpt", tmp_path / "m.jsonl"
    args = ["--model", "tiny", "--steps", "2", *SMALL, "--ckpt-dir", str(ckpt)]
    args += ["--metrics", str(metrics), "--no-progress"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "test loss" in first and "ms/step" in first
    with open(metrics) as f:
        lines = f.read()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "nothing to do: the run is finished: step 2 of 2." in out
    assert f"checkpoint {ckpt / '2'}" in out and f"metrics {metrics}" in out
    assert "nan" not in out and "ms/step" not in out
    with open(metrics) as f:
        assert f.read() == lines  # the results are left as they were
    assert main([*args[:3], "1", *args[4:]]) == 0  # --steps 1: the checkpoint is past it
    assert "the checkpoint is at step 2, past this run's 1 steps" in capsys.readouterr().out


def _train_lines(path) -> list[int]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [
            json.loads(line)["step"]
            for line in f
            if line.endswith("\n") and '"kind": "train"' in line
        ]


def test_sigterm_saves_a_checkpoint_that_resumes(tmp_path):
    ckpt, metrics = tmp_path / "ckpt", tmp_path / "m.jsonl"
    common = (
        "--model",
        "tiny",
        *SMALL,
        "--ckpt-dir",
        str(ckpt),
        "--ckpt-every",
        "100000",
        "--metrics",
        str(metrics),
        "--eval-every",
        "0",
        "--no-progress",
    )
    proc = subprocess.Popen(
        cli_command("--steps", "100000", *common),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        cwd=REPO_DIR,
    )
    try:
        deadline = time.monotonic() + 180
        while not _train_lines(metrics) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert _train_lines(metrics), proc.communicate()[1]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in out + err
    assert "interrupted" in out and "by SIGTERM" in out
    steps = sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit())
    assert len(steps) == 1 and steps[0] >= 1
    stopped = steps[0]
    assert _train_lines(metrics) == list(range(1, stopped + 1))
    # the same command with a larger --steps picks up where it stopped
    again = run_cli("--steps", str(stopped + 3), *common, timeout=180)
    assert again.returncode == 0, again.stderr
    assert f"resumed at step {stopped}" in again.stdout
    assert _train_lines(metrics) == list(range(1, stopped + 4))
    # Bit for bit what one process computes without the signal: the same two schedules
    # (100000 steps up to the stop, then stopped + 3), no restart between processes.
    register()
    reference = TrainConfig(
        model="tiny",
        steps=100000,
        train_size=96,
        test_size=24,
        batch_size=16,
        ckpt_dir=str(tmp_path / "reference"),
        ckpt_every=100000,
        eval_every=0,
        progress=False,
    )
    train(reference, stop_at=stopped, console=Console(quiet=True))
    train(dataclasses.replace(reference, steps=stopped + 3), console=Console(quiet=True))
    assert differing(final_tree(ckpt)[1], final_tree(tmp_path / "reference")[1]) == []
