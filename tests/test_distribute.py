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


# steal (Model.fit on the Distiller), APGP (a custom strategy.run loop), a shadow model (train_classifier
# on a clone of the victim) and a Jacobian-augmentation substitute (Model.fit) in one child: TF start-up
# costs ~5 s a process.
# steal runs with augment=False: random shifts are drawn per replica batch, so only the
# augmentation-free run can match the single-device one step for step.
_LOOPS_MIRRORED = textwrap.dedent("""
    import json
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tfmodelsec.attacks.membership.shadow import ShadowTraining, shadow_builder, train_shadow
    from tfmodelsec.attacks.stealing import steal
    from tfmodelsec.data import load_dataset
    from tfmodelsec.defenses.apgp import train_apgp
    from tfmodelsec.defenses.jacobian import jacobian_augmentation
    from tfmodelsec.models import train_classifier
    from tfmodelsec.models.io import as_victim
    from tfmodelsec.oracle import BlackBox
    data = load_dataset("digits").subset(n_train=512, n_test=100)
    victim = as_victim(train_classifier("mlp", data, epochs=2, batch_size=64, seed=3, verbose=0).model)
    x, y = data.x_train[:256], data.y_train[:256]
    shadow = ShadowTraining(epochs=2, batch_size=64)

    def run(strategy):
        stolen = steal(BlackBox(victim), x, student="mlp", epochs=2, batch_size=64, augment=False,
                       seed=7, strategy=strategy, verbose=0)
        apgp = train_apgp(victim, data.x_train, top_k=1, epochs=2, batch_size=128, learning_rate=3e-2,
                          seed=7, strategy=strategy, verbose=0)
        model = train_shadow(shadow_builder(victim, shadow), x, y, shadow, seed=9, strategy=strategy)
        jacobian = jacobian_augmentation(BlackBox(victim), x[:64], budget=128, student="mlp", epochs=2,
                                         seed=7, strategy=strategy)
        return {"steal": (stolen.student, stolen.history["distill_loss"]),
                "apgp": (apgp.layer, apgp.history),
                "shadow": (model, None),  # train_shadow returns the model alone
                "jacobian": (jacobian.student, None)}

    single = run(None)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    multi = run(mirrored)
    out = {"replicas": mirrored.num_replicas_in_sync}
    for name in single:
        (m0, h0), (m1, h1) = single[name], multi[name]
        out[name] = {"gap": max(float(np.abs(a - b).max()) for a, b in zip(m0.get_weights(), m1.get_weights())),
                     # the weights were mirrored: the loop really ran under the strategy
                     "mirrored": all(isinstance(v.value, tf.distribute.DistributedValues)
                                     for v in m1.trainable_variables)}
        if h0 is not None:
            out[name]["history"] = [list(map(float, h0)), list(map(float, h1))]
    print("RESULT", json.dumps(out))
""")


@pytest.mark.subprocess
def test_steal_apgp_and_shadow_mirrored_match_default():
    run = subprocess.run([sys.executable, "-c", _LOOPS_MIRRORED], env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-1500:]
    result = json.loads(run.stdout.split("RESULT", 1)[1])
    assert result["replicas"] == 2
    for name in ("steal", "apgp", "shadow", "jacobian"):
        assert result[name]["mirrored"], name
        assert result[name]["gap"] < MIRRORED_TOLERANCE, (name, result[name])
    for name in ("steal", "apgp"):
        single, multi = result[name]["history"]
        assert len(single) == len(multi) == 2  # one value per epoch
        # a per-replica loss not divided by the replica count reports (and steps) twice the loss
        np.testing.assert_allclose(multi, single, rtol=MIRRORED_TOLERANCE, err_msg=name)


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
    for p, (out, err) in zip(procs, outs, strict=True):
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


@pytest.mark.parametrize("command", ["train", "steal", "membership", "chain", "unlearn", "defend", "evaluate"])
def test_training_commands_take_a_strategy(command, capsys):
    from tfmodelsec.cli import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args([command, "--help"])
    assert "--strategy {default,mirrored,multiworker}" in capsys.readouterr().out


def test_make_defense_hands_the_strategy_to_apgp_only(tiny_model):
    import tensorflow as tf

    from tfmodelsec.defenses import APGP, TopK, make_defense

    x = np.random.default_rng(0).random((64, 4), dtype=np.float32)
    default = tf.distribute.get_strategy()
    assert isinstance(make_defense("apgp_top1", tiny_model, x=x, epochs=1, strategy=default), APGP)
    with pytest.raises(ValueError, match="strategy"):  # reaches train_apgp, which checks it
        make_defense("apgp_top1", tiny_model, x=x, epochs=1, strategy="mirrored")
    assert isinstance(make_defense("topk", tiny_model, k=2, strategy=default), TopK)  # ignored, not a layer option
