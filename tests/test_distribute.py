"""Training loops under tf.distribute: MirroredStrategy over 2 logical CPUs, and 2 real workers.

Both run in child processes so the device set-up (logical CPUs, collective ops) never
leaks into the rest of the suite.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tfmodelsec.distribute import make_strategy, parse_part, part_range

ROOT = Path(__file__).resolve().parents[1]
# Mirrored replicas each average half the global batch and the gradients are summed,
# so the steps equal the single-device ones up to float32 reduction order.
MIRRORED_TOLERANCE = 1e-4


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


_TRAIN_MIRRORED = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tfmodelsec.data import load_dataset
    from tfmodelsec.models import train_classifier
    data = load_dataset("digits").subset(n_train=512, n_test=100)
    kw = dict(epochs=2, batch_size=64, seed=5, verbose=0)
    single = train_classifier("mlp", data, **kw)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    multi = train_classifier("mlp", data, strategy=mirrored, **kw)
    gap = max(float(np.abs(a - b).max()) for a, b in zip(single.model.get_weights(), multi.model.get_weights()))
    print("RESULT", gap, mirrored.num_replicas_in_sync, single.test_accuracy, multi.test_accuracy)
""")


@pytest.mark.subprocess
def test_train_classifier_mirrored_matches_default():
    run = subprocess.run([sys.executable, "-c", _TRAIN_MIRRORED], env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-1500:]
    gap, replicas, acc_single, acc_multi = run.stdout.split("RESULT")[1].split()
    assert int(replicas) == 2
    assert float(gap) < MIRRORED_TOLERANCE
    assert abs(float(acc_single) - float(acc_multi)) <= 0.02


_WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    from tfmodelsec.data import load_dataset
    from tfmodelsec.distribute import make_strategy
    from tfmodelsec.models import train_classifier
    strategy = make_strategy("multiworker")
    data = load_dataset("digits").subset(n_train=512, n_test=100)
    result = train_classifier("mlp", data, epochs=1, batch_size=64, seed=1, strategy=strategy, verbose=0)
    np.savez(sys.argv[1], *result.model.get_weights())
    print("WORKERS", strategy.num_replicas_in_sync)
""")


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.mark.slow
@pytest.mark.subprocess
def test_multiworker_two_processes_on_loopback(tmp_path):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    try:
        for index in range(2):
            env = {**_env(), "TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                                       "task": {"type": "worker", "index": index}})}
            procs.append(subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path / f"w{index}.npz")],
                                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        outs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:  # never leave a worker behind, even on a time-out
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-1500:]
        assert "WORKERS 2" in out
    w0, w1 = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    assert len(w0.files) == len(w1.files) > 0
    for key in w0.files:
        np.testing.assert_array_equal(w0[key], w1[key])  # all-reduced: identical on both workers


def test_strategy_names_and_parts(monkeypatch):
    import tensorflow as tf

    assert make_strategy("default") is tf.distribute.get_strategy()
    with pytest.raises(ValueError, match="strategy"):
        make_strategy("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        make_strategy("multiworker")
    assert parse_part("2/4") == (2, 4) and parse_part(None) == (1, 1)
    for bad in ("0/2", "3/2", "x", "1-2"):
        with pytest.raises(ValueError, match="part"):
            parse_part(bad)
    covered = [i for k in range(1, 4) for i in part_range(10, (k, 3))]
    assert covered == list(range(10))  # parts tile the range exactly, in order


@pytest.mark.parametrize("command", ["train", "steal", "membership", "chain", "unlearn"])
def test_training_commands_take_a_strategy(command, capsys):
    from tfmodelsec.cli import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args([command, "--help"])
    assert "--strategy {default,mirrored,multiworker}" in capsys.readouterr().out
