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

__all__ = ["MajorityVote", "Sisa", "merge_sisa", "train_sisa", "unlearn_sisa"]

FORMAT = "tfmodelsec-sisa"
PART_FORMAT = "tfmodelsec-sisa-part"
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
    def open(cls, path, *, verify: bool = True) -> Sisa:
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
            net = build_model(c["model"], c["input_shape"], c["num_classes"], input_range=_input_range(c))
            net.set_weights(w)
            net.name = f"shard_{s}"
            outs.append(net(inputs))
        return keras.Model(inputs, MajorityVote(name="vote")(outs), name="sisa")


def _trainer_for(config, input_shape, strategy):
    """The block trainer of an ensemble's settings (training and unlearning share it)."""
    c = config
    return get_trainer(c["model"], input_shape, c["num_classes"], optimizer=c["optimizer"],
                       learning_rate=c["learning_rate"], batch_size=c["batch_size"], strategy=strategy,
                       input_range=_input_range(c))


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


def _sisa_plan(model, data, shards, slices, epochs_per_slice, batch_size, learning_rate, optimizer, seed):
    """Validate the settings; return the records, the shard/slice ids and the config."""
    check_positive("shards", shards, integer=True)
    check_positive("slices", slices, integer=True)
    check_positive("epochs_per_slice", epochs_per_slice, integer=True)
    x, y = np.asarray(data.x_train, np.float32), np.asarray(data.y_train, np.int64)
    if shards * slices > len(x):
        raise ValueError(
            f"`shards` x `slices` must be <= {len(x)} records. Received: {shards}x{slices}"
        )
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
        "input_range": None if getattr(data, "value_range", (0, 1)) is None else list(data.value_range),
    }
    return x, y, parts, config


def _input_range(config):
    """The data's value range the shards' models take (ensembles written before it was stored: [0, 1])."""
    value = config.get("input_range", [0.0, 1.0])
    return None if value is None else tuple(value)


def _train_shards(config, x, y, parts, shard_ids, out: Path, strategy, verbose) -> list:
    """Train the given shards (each seeded by its own index) into ``out``; their checkpoints."""
    from tfmodelsec.models.zoo import build_model

    c = config
    trainer = _trainer_for(c, x.shape[1:], strategy)
    R = c["slices"]
    checkpoints, bar = [], progbar(len(shard_ids) * R, verbose=verbose, unit_name="stage")
    for k, s in enumerate(shard_ids):
        set_seed(c["seed"] + s)
        w0 = build_model(c["model"], x.shape[1:], c["num_classes"], input_range=_input_range(c)).get_weights()
        entries = [_save_weights(out / f"s{s:02d}_r00.npz", w0)]
        for r, w in _train_stages(
            trainer, w0, parts[s], x, y, lambda ids: None, c["seed"], s, 1, R, c["epochs_per_slice"]
        ):
            entries.append(_save_weights(out / f"s{s:02d}_r{r:02d}.npz", w))
            bar.update(k * R + r)
        checkpoints.append(entries)
    return checkpoints


def _write_manifest(path: Path, manifest: dict) -> None:
    text = json.dumps(manifest, separators=(",", ":")).encode()
    _atomic_write(path, lambda f: f.write(text))


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
    part: tuple[int, int] | None = None,
    verbose: int = 1,
):
    """Train a SISA ensemble of ``shards`` models, ``slices`` stages each, into ``out_dir``.

    Returns the :class:`Sisa`. With ``part=(i, n)`` only the shards
    :func:`~tfmodelsec.distribute.part_range` gives part ``i`` of ``n`` are trained (each
    shard is seeded by its own index, so the split changes nothing), their manifest goes
    to ``manifest.part-i-of-n.json``, and the path of that file is returned; join the
    parts with :func:`merge_sisa`.
    """
    from tfmodelsec.distribute import parse_part, part_filename, part_range

    x, y, parts, config = _sisa_plan(
        model, data, shards, slices, epochs_per_slice, batch_size, learning_rate, optimizer, seed
    )
    if part is not None:
        part = parse_part(f"{part[0]}/{part[1]}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shard_ids = list(part_range(shards, part))
    start = time.perf_counter()
    checkpoints = _train_shards(config, x, y, parts, shard_ids, out, strategy, verbose)
    manifest = {
        "format": FORMAT if part is None else PART_FORMAT,
        "version": 1,
        "config": config,
        "complete": part is None,
        "train_seconds": round(time.perf_counter() - start, 3),
        "checkpoints": checkpoints,
        "slices": [[p.tolist() for p in shard] for shard in parts],
    }
    if part is None:
        _write_manifest(out / "manifest.json", manifest)
        return Sisa(out, manifest)
    manifest.update(part=list(part), shard_ids=shard_ids)
    path = out / part_filename("manifest", part, ".json")
    _write_manifest(path, manifest)
    return path


def merge_sisa(part_manifests, out_dir) -> Sisa:
    """Join the parts of a split SISA run into one ensemble in ``out_dir``.

    ``part_manifests``: the ``manifest.part-i-of-n.json`` files (checkpoints beside them).
    Checkpoints are checked against their sha256 and copied into ``out_dir`` when they
    live elsewhere. The result equals an unsplit :func:`train_sisa` with the same settings.
    """
    from tfmodelsec.distribute import check_coverage

    out = Path(out_dir)
    loaded = []
    for path in part_manifests:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no SISA part manifest at {str(path)!r}")
        m = json.loads(path.read_text())
        if m.get("format") != PART_FORMAT:
            raise ChainError(f"{str(path)!r} is not a SISA part manifest (format {m.get('format')!r})")
        loaded.append((path, m))
    if not loaded:
        raise ValueError("`part_manifests` is empty: expected the manifest.part-i-of-n.json files of a split run")
    first = loaded[0][1]
    for path, m in loaded[1:]:
        if m["config"] != first["config"] or m["slices"] != first["slices"]:
            raise ChainError(f"cannot merge SISA parts of different runs: {str(path)!r} has other settings "
                             f"than {str(loaded[0][0])!r}")
    order = check_coverage([m["shard_ids"] for _, m in loaded], first["config"]["shards"], what="shards")
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = []
    for path, m in loaded:
        for entries in m["checkpoints"]:
            for entry in entries:
                src, dst = path.parent / entry["file"], out / entry["file"]
                if not src.is_file() or _sha256_file(src) != entry["sha256"]:
                    raise ChainError(f"checksum mismatch or missing file: {str(src)!r}")
                if src.resolve() != dst.resolve():
                    _atomic_write(dst, lambda f, src=src: f.write(src.read_bytes()))
            checkpoints.append(entries)
    manifest = {
        "format": FORMAT,
        "version": 1,
        "config": first["config"],
        "complete": True,
        "train_seconds": round(sum(m["train_seconds"] for _, m in loaded), 3),
        "checkpoints": [checkpoints[k] for k in order],
        "slices": first["slices"],
        "merged_parts": len(loaded),
    }
    _write_manifest(out / "manifest.json", manifest)
    return Sisa.open(out)


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
    trainer = _trainer_for(c, c["input_shape"], strategy)
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
        trained = list(_train_stages(trainer, sisa.weights(s, first - 1), sisa.slices[s], x, y,
                                     lambda i: (~np.isin(i, ids)).astype(np.float32), c["seed"], s, first, R,
                                     c["epochs_per_slice"]))
        stages += len(trained)
        final.append(trained[-1][1])  # the shard's last stage
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
