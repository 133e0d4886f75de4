"""SISA training (Sharded, Isolated, Sliced, Aggregated) as an unlearning baseline.

Bourtoule et al., "Machine Unlearning", IEEE S&P 2021 (https://arxiv.org/abs/1912.03817).
The training set is split into ``S`` shards, each shard into ``R`` slices; shard
``s``'s model trains at stage ``r`` on slices ``1..r`` and is checkpointed after every
stage. Deleting a record retrains only its shard, from the checkpoint before the
earliest slice holding a deleted record. Predictions are the shards' majority vote.

On disk (``DIR``): ``manifest.json`` (config, shard/slice ids, sha256 of every
checkpoint) and ``s{shard}_r{stage}.npz``, written atomically like the chain.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np

from tfmodelsec.unlearning._trainer import get_trainer
from tfmodelsec.unlearning.base import UnlearnResult, check_delete_ids
from tfmodelsec.unlearning.chain import (
    ChainError,
    _atomic_write,
    _load_weights,
    _save_weights,
    _sha256_file,
    data_fingerprint,
)
from tfmodelsec.utils import check_positive, progbar, set_seed

__all__ = ["MajorityVote", "Sisa", "train_sisa", "unlearn_sisa"]

FORMAT = "tfmodelsec-sisa"
#: Weight of the mean probability that breaks ties between equally voted classes.
TIE_BREAK = 1e-3


@keras.saving.register_keras_serializable(package="tfmodelsec")
class MajorityVote(keras.layers.Layer):
    """Aggregate a list of probability tensors by majority vote.

    Call arguments:
        inputs: list of ``(batch, classes)`` probabilities, one per shard model.

    Returns the vote fractions (ties broken by mean probability), rows summing to 1.
    """

    def call(self, inputs):
        from keras import ops

        probs = ops.stack(inputs, axis=0)
        classes = ops.shape(probs)[-1]
        votes = ops.mean(ops.one_hot(ops.argmax(probs, axis=-1), classes), axis=0)
        scores = votes + TIE_BREAK * ops.mean(probs, axis=0)
        return scores / ops.sum(scores, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


class Sisa:
    """A SISA ensemble on disk; open with :meth:`open`, build with :func:`train_sisa`."""

    def __init__(self, path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest
        self.config = manifest["config"]
        self.slices = [[np.asarray(s, np.int64) for s in shard] for shard in manifest["slices"]]
        self.checkpoints = manifest["checkpoints"]  # [shard][stage] entries

    @classmethod
    def open(cls, path, *, verify: bool = True) -> "Sisa":
        path = Path(path)
        if not (path / "manifest.json").is_file():
            raise FileNotFoundError(
                f"`sisa` directory {str(path)!r} has no manifest.json "
                "(build one with `tfmodelsec chain ... --sisa S,R`)"
            )
        m = json.loads((path / "manifest.json").read_text())
        if m.get("format") != FORMAT or not m.get("complete"):
            raise ChainError(f"`sisa` directory {str(path)!r} is not a complete SISA ensemble")
        sisa = cls(path, m)
        if verify:
            for shard in sisa.checkpoints:
                for entry in shard:
                    sisa._check(entry)
        return sisa

    def _check(self, entry) -> Path:
        f = self.path / entry["file"]
        if not f.is_file() or _sha256_file(f) != entry["sha256"]:
            raise ChainError(f"checksum mismatch or missing file: {str(f)!r}")
        return f

    def weights(self, shard: int, stage: int) -> list:
        return _load_weights(self._check(self.checkpoints[shard][stage]))

    def locate(self, ids) -> tuple:
        """(shard, slice) of each training-record id (slice 1-based); -1 if absent."""
        n = self.config["n_train"]
        shard_of, slice_of = np.full(n, -1), np.full(n, -1)
        for s, shard in enumerate(self.slices):
            for r, ids_r in enumerate(shard, start=1):
                shard_of[ids_r], slice_of[ids_r] = s, r
        ids = np.asarray(ids, np.int64)
        return shard_of[ids], slice_of[ids]

    def ensemble(self, shard_weights=None):
        """The majority-vote Keras model over the shards' final models."""
        from tfmodelsec.models.zoo import build_model

        c = self.config
        R = c["slices"]
        shard_weights = shard_weights or [self.weights(s, R) for s in range(c["shards"])]
        inputs = keras.Input(tuple(c["input_shape"]), name="inputs")
        outs = []
        for s, w in enumerate(shard_weights):
            net = build_model(c["model"], c["input_shape"], c["num_classes"])
            net.set_weights(w)
            net.name = f"shard_{s}"
            outs.append(net(inputs))
        return keras.Model(inputs, MajorityVote(name="vote")(outs), name="sisa")


def _train_stages(trainer, weights, shard_slices, x, y, keep_fn, seed, shard, first, last, epochs):
    """Train stages ``first..last`` of one shard from ``weights``; yield each stage's weights."""
    for r in range(first, last + 1):
        ids = np.concatenate(shard_slices[:r])
        weights = trainer.train_block(
            weights,
            x[ids],
            y[ids],
            keep_fn(ids),
            seed=seed,
            block=10_000 * (shard + 1) + r,
            epochs=epochs,
        )
        yield r, weights


def train_sisa(
    model: str,
    data,
    out_dir,
    *,
    shards: int = 5,
    slices: int = 4,
    epochs_per_slice: int = 1,
    batch_size: int = 32,
    learning_rate: float = 0.05,
    optimizer: str = "sgd",
    seed: int = 0,
    strategy=None,
    verbose: int = 1,
) -> Sisa:
    """Train a SISA ensemble of ``shards`` models, ``slices`` stages each, into ``out_dir``."""
    check_positive("shards", shards, integer=True)
    check_positive("slices", slices, integer=True)
    check_positive("epochs_per_slice", epochs_per_slice, integer=True)
    x, y = np.asarray(data.x_train, np.float32), np.asarray(data.y_train, np.int64)
    if shards * slices > len(x):
        raise ValueError(
            f"`shards` x `slices` must be <= {len(x)} records. Received: {shards}x{slices}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng([int(seed), 0x515A]).permutation(len(x))
    parts = [np.array_split(p, slices) for p in np.array_split(order, shards)]
    config = {
        "model": model,
        "dataset": data.name,
        "n_train": len(x),
        "input_shape": list(x.shape[1:]),
        "num_classes": int(data.num_classes),
        "shards": shards,
        "slices": slices,
        "epochs_per_slice": epochs_per_slice,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "optimizer": optimizer,
        "seed": seed,
        "data_sha256": data_fingerprint(x, y),
    }
    trainer = get_trainer(
        model,
        x.shape[1:],
        data.num_classes,
        optimizer=optimizer,
        learning_rate=learning_rate,
        batch_size=batch_size,
        strategy=strategy,
    )
    from tfmodelsec.models.zoo import build_model

    checkpoints, bar, start = (
        [],
        progbar(shards * slices, verbose=verbose, unit_name="stage"),
        time.perf_counter(),
    )
    for s in range(shards):
        set_seed(seed + s)
        w0 = build_model(model, x.shape[1:], data.num_classes).get_weights()
        entries = [_save_weights(out / f"s{s:02d}_r00.npz", w0)]
        for r, w in _train_stages(
            trainer, w0, parts[s], x, y, lambda ids: None, seed, s, 1, slices, epochs_per_slice
        ):
            entries.append(_save_weights(out / f"s{s:02d}_r{r:02d}.npz", w))
            bar.update(s * slices + r)
        checkpoints.append(entries)
    manifest = {
        "format": FORMAT,
        "version": 1,
        "config": config,
        "complete": True,
        "train_seconds": round(time.perf_counter() - start, 3),
        "checkpoints": checkpoints,
        "slices": [[p.tolist() for p in shard] for shard in parts],
    }
    text = json.dumps(manifest, separators=(",", ":")).encode()
    _atomic_write(out / "manifest.json", lambda f: f.write(text))
    return Sisa(out, manifest)


def unlearn_sisa(sisa: Sisa, delete_ids, *, data, strategy=None, verbose: int = 1) -> UnlearnResult:
    """Retrain only the shards holding ``delete_ids``, each from its earliest affected slice."""
    c = sisa.config
    x, y = (
        np.asarray(data.x_train[: c["n_train"]], np.float32),
        np.asarray(data.y_train[: c["n_train"]]),
    )
    if len(x) != c["n_train"] or data_fingerprint(x, y) != c["data_sha256"]:
        raise ValueError("`data` does not match the SISA ensemble's training records")
    ids = check_delete_ids(delete_ids, c["n_train"])
    trainer = get_trainer(
        c["model"],
        c["input_shape"],
        c["num_classes"],
        optimizer=c["optimizer"],
        learning_rate=c["learning_rate"],
        batch_size=c["batch_size"],
        strategy=strategy,
    )
    start = time.perf_counter()
    shard_of, slice_of = sisa.locate(ids)
    final, stages, R = [], 0, c["slices"]
    affected = sorted(set(shard_of.tolist()))
    bar = progbar(len(affected), verbose=verbose, unit_name="shard")
    for s in range(c["shards"]):
        if s not in affected:
            final.append(sisa.weights(s, R))
            continue
        first = int(slice_of[shard_of == s].min())
        w = sisa.weights(s, first - 1)
        for _, w in _train_stages(
            trainer,
            w,
            sisa.slices[s],
            x,
            y,
            lambda i: (~np.isin(i, ids)).astype(np.float32),
            c["seed"],
            s,
            first,
            R,
            c["epochs_per_slice"],
        ):
            stages += 1
        final.append(w)
        bar.update(affected.index(s) + 1)
    seconds = time.perf_counter() - start
    return UnlearnResult(
        "sisa",
        sisa.ensemble(final),
        len(ids),
        int(slice_of.min()),
        stages,
        c["shards"] * R,
        seconds,
        info={"shards": c["shards"], "slices": R, "shards_retrained": len(affected)},
    )
