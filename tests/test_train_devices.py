"""Data parallelism: 4 CPU devices (in a subprocess), and 2 processes joined by
``jax.distributed``, match 1 device within float tolerance."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import numpy as np
import pytest
from test_train_support import REPO_DIR, TESTS_DIR, cli_command, cli_env, register, tiny_data

from jaxconv.train import TrainConfig, Trainer

_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
import jax
import numpy as np
import test_train_support as s
from jaxconv.train import TrainConfig, Trainer, make_mesh, state_to_tree

s.register()
assert jax.device_count() == 4, jax.devices()
data = s.tiny_data()
out = {{}}
# SGD: Adam's update normalization would amplify the reduction-order noise of near-zero
# gradients into parameter differences far above float tolerance.
for n in (1, 4):
    t = Trainer(TrainConfig(model="tiny", optimizer="sgd", steps=5, batch_size=16, devices=n,
                            warmup_steps=1),
                data)
    images, labels = t.batch(0)
    leaves = jax.tree.leaves(t.state)
    out[n] = {{
        "losses": [float(t.train_step()["loss"]) for _ in range(5)],
        "eval": t.evaluate(),
        "params": {{k: np.asarray(v).tolist() for k, v in
                    jax.tree_util.tree_flatten_with_path(state_to_tree(t.state))[0]
                    for k in [jax.tree_util.keystr(k)]}},
        "replicated": all(x.sharding.is_fully_replicated and len(x.sharding.device_set) == n
                          for x in leaves),
        "batch_shards": sorted({{sh.data.shape[0] for sh in images.addressable_shards}}),
        "batch_devices": len(images.sharding.device_set),
    }}
errors = []
for make in (lambda: Trainer(TrainConfig(model="tiny", batch_size=10, devices=4), data),
             lambda: make_mesh(8)):
    try:
        make()
    except ValueError as err:
        errors.append(str(err))
out["errors"] = errors
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def four_devices():
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(tests=TESTS_DIR)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO_DIR,
        env=cli_env(XLA_FLAGS="--xla_force_host_platform_device_count=4"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_batch_is_split_and_parameters_replicated(four_devices):
    one, four = four_devices["1"], four_devices["4"]
    assert one["replicated"] and four["replicated"]
    assert (one["batch_devices"], one["batch_shards"]) == (1, [16])
    assert (four["batch_devices"], four["batch_shards"]) == (4, [4])


def test_four_devices_match_one_within_float_tolerance(four_devices):
    one, four = four_devices["1"], four_devices["4"]
    np.testing.assert_allclose(four["losses"], one["losses"], rtol=1e-5, atol=1e-6)
    assert one["losses"][0] != one["losses"][-1]  # the steps did change the model
    for key, value in one["params"].items():
        np.testing.assert_allclose(
            np.asarray(four["params"][key]), np.asarray(value), rtol=1e-4, atol=1e-5, err_msg=key
        )
    assert four["eval"]["test_loss"] == pytest.approx(one["eval"]["test_loss"], rel=1e-5)


def test_device_errors_are_clear(four_devices):
    batch, too_many = four_devices["errors"]
    assert batch.startswith("`batch_size` (=10) must be a multiple of the number of devices (=4)")
    assert too_many.startswith(
        "`num_devices` (=8) exceeds the 4 visible device(s) (on CPU, "
        "XLA_FLAGS=--xla_force_host_platform_device_count=N"
    )


def _two_processes(tmp_path, steps: int, *extra: str) -> list[subprocess.Popen]:
    """The CLI as 2 processes × 1 CPU device joined over localhost (``--coordinator``)."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    args = (
        "--model",
        "tiny",
        "--optimizer",
        "sgd",
        "--steps",
        str(steps),
        "--batch-size",
        "16",
        "--train-size",
        "96",
        "--test-size",
        "24",
        "--eval-every",
        "0",
        "--no-progress",
        "--ckpt-dir",
        str(tmp_path / "ckpt"),
        "--metrics",
        str(tmp_path / "m.jsonl"),
        "--coordinator",
        f"localhost:{port}",
        "--num-processes",
        "2",
        *extra,
    )
    return [
        subprocess.Popen(
            cli_command(*args, "--process-id", str(i)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
            cwd=REPO_DIR,
        )
        for i in range(2)
    ]


def test_two_processes_match_one_device(tmp_path):
    """The multi-host path (``--coordinator``): 2 processes × 1 CPU device, over localhost."""
    procs = _two_processes(tmp_path, 4, "--warmup-steps", "1")
    try:
        outputs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:  # a hung peer waits on the coordinator forever
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    assert "summary" in outputs[0][0] and "summary" not in outputs[1][0]  # process 0 reports
    with open(tmp_path / "m.jsonl") as f:
        losses = [json.loads(line)["loss"] for line in f if '"train"' in line]
    register()
    t = Trainer(
        TrainConfig(
            model="tiny", optimizer="sgd", steps=4, batch_size=16, warmup_steps=1, devices=1
        ),
        tiny_data(),
    )
    expected = [float(t.train_step()["loss"]) for _ in range(4)]
    np.testing.assert_allclose(losses, expected, rtol=1e-5, atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["4", "config.json"]


def test_sigterm_on_one_process_stops_both_at_the_same_step(tmp_path):
    """Several hosts: a SIGTERM that reaches one process (a preemption notice) stops every
    process after the same step, through orbax's preemption sync point, with one checkpoint of
    that step; no host is left waiting in the next step's collectives."""
    import os
    import signal
    import time

    metrics = tmp_path / "m.jsonl"
    procs = _two_processes(tmp_path, 100000, "--ckpt-every", "100000")
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # both are past compilation: steps are logged
            if metrics.exists() and metrics.read_text().count('"train"') >= 3:
                break
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.2)
        os.kill(procs[1].pid, signal.SIGTERM)  # the preemption notice reaches one host only
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:  # a hung peer waits on the coordinator forever
                p.kill()
    codes = [p.returncode for p in procs]
    assert codes == [143, 143], (codes, [err[-2000:] for _, err in outputs])
    steps = sorted(int(p.name) for p in (tmp_path / "ckpt").iterdir() if p.name.isdigit())
    with open(metrics) as f:
        logged = [json.loads(line)["step"] for line in f if '"train"' in line]
    assert steps == [logged[-1]] and 3 <= steps[0] < 100000
