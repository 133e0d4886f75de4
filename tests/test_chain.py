"""The checkpoint chain: storage, checksums, resume after a real SIGKILL, bad input."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from tfmodelsec.unlearning import Chain, ChainError, train_chain

SETTINGS = dict(blocks=6, batch_size=32, learning_rate=0.1, seed=3, verbose=0)
ROOT = Path(__file__).resolve().parents[1]


def _hashes(path):
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(path).iterdir())
    }


@pytest.fixture(scope="module")
def chain_dir(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("chain")
    train_chain("lenet5", digits, out, **SETTINGS)
    return out


def test_chain_layout_blocks_and_storage(chain_dir, digits):
    chain = Chain.open(chain_dir)
    assert chain.complete and len(chain.checkpoints) == SETTINGS["blocks"] + 1
    ids = np.concatenate(chain.blocks)
    assert sorted(ids.tolist()) == list(range(len(digits.x_train)))  # each record in one block
    assert chain.block_of(chain.blocks[2]).tolist() == [3] * len(chain.blocks[2])
    manifest = json.loads((chain_dir / "manifest.json").read_text())
    assert manifest["config"]["seed"] == 3 and manifest["config"]["blocks"] == 6
    assert all(len(c["sha256"]) == 64 for c in manifest["checkpoints"])
    report = chain.storage()
    assert report["checkpoints"] == 7
    assert report["total_bytes"] == sum(p.stat().st_size for p in chain_dir.iterdir())
    # training moved the weights, and every block did
    flat = [np.concatenate([w.ravel() for w in chain.weights(i)]) for i in range(7)]
    assert all(np.abs(flat[i + 1] - flat[i]).sum() > 0 for i in range(6))


def test_same_seed_same_chain(chain_dir, digits, tmp_path):
    again = train_chain("lenet5", digits, tmp_path / "again", **SETTINGS)
    for a, b in zip(Chain.open(chain_dir).weights(6), again.weights(6), strict=True):
        np.testing.assert_array_equal(a, b)


def test_corrupt_checkpoint_is_named(chain_dir, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(chain_dir, bad)
    data = bytearray((bad / "m_0002.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / "m_0002.npz").write_bytes(bytes(data))
    with pytest.raises(ChainError, match="m_0002.npz"):
        Chain.open(bad)
    (bad / "m_0004.npz").unlink()
    with pytest.raises(ChainError, match="m_0002.npz"):  # the first bad file is named
        Chain.open(bad)


def test_missing_and_incomplete_chain(chain_dir, tmp_path):
    import shutil

    with pytest.raises(FileNotFoundError, match="chain"):
        Chain.open(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="manifest"):
        Chain.open(tmp_path / "empty")
    part = tmp_path / "part"
    shutil.copytree(chain_dir, part)
    m = json.loads((part / "manifest.json").read_text())
    m["complete"], m["checkpoints"] = False, m["checkpoints"][:3]
    (part / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ChainError, match="incomplete"):
        Chain.open(part)
    (part / "manifest.json").write_text("{not json")
    with pytest.raises(ChainError, match="malformed"):
        Chain.open(part)


def test_existing_chain_needs_resume_and_matching_config(chain_dir, digits):
    with pytest.raises(FileExistsError, match="resume"):
        train_chain("lenet5", digits, chain_dir, **SETTINGS)
    with pytest.raises(ValueError, match="blocks"):
        train_chain("lenet5", digits, chain_dir, **{**SETTINGS, "blocks": 5}, resume=True)
    with pytest.raises(ValueError, match="learning_rate"):
        train_chain("lenet5", digits, chain_dir, **{**SETTINGS, "learning_rate": 0.2}, resume=True)
    before = _hashes(chain_dir)
    train_chain("lenet5", digits, chain_dir, **SETTINGS, resume=True)  # complete: nothing to do
    assert _hashes(chain_dir) == before


def test_bad_chain_settings(digits, tmp_path):
    with pytest.raises(ValueError, match="blocks"):
        train_chain("lenet5", digits, tmp_path / "a", blocks=0)
    with pytest.raises(ValueError, match="optimizer"):
        train_chain("lenet5", digits, tmp_path / "b", blocks=2, optimizer="rmsprop")


_CHILD = textwrap.dedent("""
    import os, sys, time
    target, skip, marker, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    real_fsync, seen = os.fsync, []

    def fsync(fd):
        # Stop forever in the middle of writing `target`: its temporary file is on disk,
        # not yet renamed. The parent SIGKILLs this process here.
        try:
            name = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            name = ""
        if name.endswith(target):
            seen.append(name)
        if name.endswith(target) and len(seen) > skip:
            open(marker, "w").close()
            time.sleep(600)
        return real_fsync(fd)

    os.fsync = fsync
    from tfmodelsec.data import load_dataset
    from tfmodelsec.unlearning import train_chain
    train_chain("lenet5", load_dataset("digits"), out, blocks=6, batch_size=32, learning_rate=0.1,
                seed=3, verbose=0)
""")


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize(
    "target,skip", [("m_0004.npz.tmp", 0), ("manifest.json.tmp", 3)], ids=["checkpoint", "manifest"]
)
def test_sigkill_mid_write_then_resume(target, skip, chain_dir, digits, tmp_path):
    out, marker = tmp_path / "chain", tmp_path / "killed-here"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, target, str(skip), str(marker), str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        if child.poll() is not None:
            pytest.fail(f"child ended before the write: {child.stderr.read().decode()[-800:]}")
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail("child never reached the write")
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert list(out.glob("*.tmp")), "the kill landed during a write"

    with pytest.raises(ChainError, match="incomplete"):
        Chain.open(out)
    partial = Chain.open(out, require_complete=False)  # every listed checkpoint verifies
    assert 1 <= len(partial.checkpoints) <= 6
    kept = {c["file"]: c["sha256"] for c in partial.checkpoints}

    resumed = train_chain("lenet5", digits, out, **SETTINGS, resume=True)
    assert resumed.complete and not list(out.glob("*.tmp"))
    now = {c["file"]: c["sha256"] for c in Chain.open(out).checkpoints}
    assert all(now[f] == h for f, h in kept.items())  # nothing stored before was lost or changed
    for a, b in zip(Chain.open(chain_dir).weights(6), resumed.weights(6), strict=True):
        np.testing.assert_array_equal(a, b)  # same as the run that was never interrupted


_MIRRORED = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tfmodelsec.data import load_dataset
    from tfmodelsec.unlearning import Chain, train_chain
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    chain = train_chain("lenet5", load_dataset("digits"), sys.argv[1], blocks=6, batch_size=32,
                        learning_rate=0.1, seed=3, strategy=strategy, verbose=0)
    ref = Chain.open(sys.argv[2])
    gap = max(float(np.abs(a - b).max()) for a, b in zip(chain.weights(6), ref.weights(6)))
    print("MAXGAP", gap, strategy.num_replicas_in_sync)
""")


@pytest.mark.slow
@pytest.mark.subprocess
def test_mirrored_strategy_two_replicas_matches_one_device(chain_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run([sys.executable, "-c", _MIRRORED, str(tmp_path / "m"), str(chain_dir)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-800:]
    gap, replicas = run.stdout.split("MAXGAP")[1].split()
    # the global batch is split across 2 replicas and their gradients summed: same steps
    assert int(replicas) == 2 and float(gap) < 1e-4
