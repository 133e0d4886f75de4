"""The checkpoint chain: a model trained block by block, every intermediate model on disk.

The training records are split into ``B`` blocks ``b_1..b_B`` (a seeded permutation).
The model trains on them in order and the model after each block, ``M_i``, is stored
(``M_0`` is the seeded initialisation). DeepObliviate (He et al., NDSS 2021,
https://arxiv.org/abs/2105.06209) unlearns from this chain.

On disk (``DIR``)::

    manifest.json     config, seed, block -> sample ids, one entry per checkpoint
                      (file, sha256, bytes), complete flag
    m_0000.npz ...    the weight list of M_i (npz, no pickle)

Every file is written to a temporary name, flushed, fsync'ed and renamed, and the
manifest is rewritten (the same way) after each checkpoint, so a process killed at
any moment leaves only checkpoints that are complete and listed, plus perhaps a
stray ``*.tmp`` that ``resume`` removes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from tfmodelsec.errors import TfmsError
from tfmodelsec.unlearning._trainer import OPTIMIZERS, get_trainer
from tfmodelsec.utils import check_choice, check_positive, progbar, set_seed

__all__ = ["ChainConfig", "Chain", "ChainError", "train_chain", "data_fingerprint", "MANIFEST"]

MANIFEST = "manifest.json"
FORMAT = "tfmodelsec-chain"
VERSION = 1


class ChainError(TfmsError, ValueError):
    """A chain directory that is incomplete, inconsistent or fails its checksums."""


@dataclass(frozen=True)
class ChainConfig:
    """How a chain was trained; stored in the manifest, compared on resume and unlearning."""

    model: str
    dataset: str
    n_train: int
    input_shape: tuple
    num_classes: int
    blocks: int
    epochs_per_block: int = 1
    batch_size: int = 32
    learning_rate: float = 0.05
    optimizer: str = "sgd"
    seed: int = 0
    data_sha256: str = ""
    # the data's value range: a bounded one other than [0, 1] is scaled inside the model (manifests
    # written before this field hold [0, 1] data)
    input_range: tuple | None = (0.0, 1.0)

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        if self.input_range is not None:
            object.__setattr__(self, "input_range", tuple(float(v) for v in self.input_range))
        for name in ("n_train", "num_classes", "blocks", "epochs_per_block", "batch_size"):
            check_positive(name, getattr(self, name), integer=True)
        check_positive("learning_rate", self.learning_rate)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.blocks > self.n_train:
            raise ValueError(
                f"`blocks` must be <= the number of training records ({self.n_train}). "
                f"Received: blocks={self.blocks}"
            )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        d["input_range"] = None if self.input_range is None else list(self.input_range)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ChainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def trainer(self, strategy=None):
        return get_trainer(
            self.model,
            self.input_shape,
            self.num_classes,
            optimizer=self.optimizer,
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            strategy=strategy,
            input_range=self.input_range,
        )


def data_fingerprint(x, y) -> str:
    """sha256 of the training arrays: detects a chain used with different data."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x, np.float32).tobytes())
    h.update(np.ascontiguousarray(y, np.int64).tobytes())
    return h.hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file, fsync it, then rename it over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # pragma: no cover - platforms without directory fsync
        pass


def _save_weights(path: Path, weights) -> dict:
    arrays = {f"w{i:03d}": np.asarray(w) for i, w in enumerate(weights)}
    _atomic_write(path, lambda f: np.savez(f, **arrays))
    return {"file": path.name, "sha256": _sha256_file(path), "bytes": path.stat().st_size}


def _load_weights(path: Path) -> list:
    with np.load(path, allow_pickle=False) as z:
        return [z[k] for k in sorted(z.files)]


class Chain:
    """A checkpoint chain on disk (see the module docstring). Open with :meth:`open`."""

    def __init__(
        self,
        path,
        config: ChainConfig,
        blocks,
        checkpoints,
        complete: bool,
        train_seconds: float = 0.0,
    ):
        self.path = Path(path)
        self.config = config
        self.blocks = [np.asarray(b, np.int64) for b in blocks]
        self.checkpoints = list(checkpoints)
        self.complete = bool(complete)
        self.train_seconds = float(train_seconds)
        self._block_of = np.full(config.n_train, -1, np.int64)
        for i, ids in enumerate(self.blocks, start=1):
            self._block_of[ids] = i

    # --- opening and checking -------------------------------------------------------
    @classmethod
    def open(cls, path, *, verify: bool = True, require_complete: bool = True) -> Chain:
        """Read ``path/manifest.json``; with ``verify`` check every checkpoint's sha256.

        Raises:
            FileNotFoundError: no such directory or no manifest in it.
            ChainError: malformed manifest, incomplete chain (when required), a missing
                checkpoint, or a checksum mismatch (the first bad file is named).
        """
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"`chain` directory not found. Received: chain={str(path)!r}")
        manifest = path / MANIFEST
        if not manifest.is_file():
            raise FileNotFoundError(
                f"`chain` has no {MANIFEST}: {str(path)!r} is not a checkpoint "
                "chain (build one with `tfmodelsec chain`)"
            )
        try:
            m = json.loads(manifest.read_text())
            if m.get("format") != FORMAT:
                raise ValueError(f"format is {m.get('format')!r}")
            chain = cls(
                path,
                ChainConfig.from_dict(m["config"]),
                m["blocks"],
                m["checkpoints"],
                m["complete"],
                m.get("train_seconds", 0.0),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ChainError(f"`chain` manifest {str(manifest)!r} is malformed: {exc}") from None
        if require_complete and not chain.complete:
            raise ChainError(
                f"`chain` {str(path)!r} is incomplete: {len(chain.checkpoints) - 1} of "
                f"{chain.config.blocks} blocks stored; "
                "finish it with `tfmodelsec chain ... --resume`"
            )
        if verify:
            chain.verify()
        return chain

    def verify(self) -> None:
        """Check every listed checkpoint exists and matches its sha256; name the first bad file."""
        for i, entry in enumerate(self.checkpoints):
            self._check_entry(i, entry)

    def _check_entry(self, i: int, entry: dict) -> Path:
        f = self.path / entry["file"]
        if not f.is_file():
            raise ChainError(f"checkpoint M_{i} is missing: {str(f)!r}")
        digest = _sha256_file(f)
        if digest != entry["sha256"]:
            raise ChainError(
                f"checksum mismatch in {str(f)!r} (checkpoint M_{i}): "
                f"expected sha256 {entry['sha256'][:12]}..., found {digest[:12]}..."
            )
        return f

    # --- contents --------------------------------------------------------------------
    @property
    def num_blocks(self) -> int:
        return self.config.blocks

    def weights(self, i: int) -> list:
        """The weight list of ``M_i`` (0 = initialisation), checksum verified on read."""
        if not 0 <= int(i) < len(self.checkpoints):
            raise ValueError(f"`i` must be in [0, {len(self.checkpoints) - 1}]. Received: i={i!r}")
        return _load_weights(self._check_entry(int(i), self.checkpoints[int(i)]))

    def model(self, i: int | None = None):
        """A Keras model holding ``M_i`` (default: the final model ``M_B``)."""
        from tfmodelsec.models.zoo import build_model

        i = len(self.checkpoints) - 1 if i is None else i
        net = build_model(self.config.model, self.config.input_shape, self.config.num_classes,
                          input_range=self.config.input_range)
        net.set_weights(self.weights(i))
        return net

    def block_of(self, ids) -> np.ndarray:
        """The (1-based) block holding each training-record id."""
        return self._block_of[np.asarray(ids, np.int64)]

    def storage(self) -> dict:
        """Bytes on disk: per checkpoint (mean), all checkpoints, and the manifest."""
        sizes = [int(c["bytes"]) for c in self.checkpoints]
        manifest = (self.path / MANIFEST).stat().st_size if (self.path / MANIFEST).exists() else 0
        return {
            "checkpoints": len(sizes),
            "bytes_per_checkpoint": int(np.mean(sizes)) if sizes else 0,
            "checkpoint_bytes": int(sum(sizes)),
            "manifest_bytes": int(manifest),
            "total_bytes": int(sum(sizes) + manifest),
        }

    def check_data(self, data) -> tuple:
        """Return ``(x_train, y_train)`` of ``data`` after checking it is the chain's data."""
        x, y = (
            np.asarray(data.x_train[: self.config.n_train], np.float32),
            data.y_train[: self.config.n_train],
        )
        if len(x) != self.config.n_train or tuple(x.shape[1:]) != self.config.input_shape:
            raise ValueError(
                f"`data` does not match the chain: expected {self.config.n_train} records of "
                f"shape {self.config.input_shape}, received {len(x)} of {tuple(x.shape[1:])}"
            )
        if self.config.data_sha256 and data_fingerprint(x, y) != self.config.data_sha256:
            raise ValueError(
                f"`data` does not match the chain: the training records of "
                f"{getattr(data, 'name', '?')!r} differ from those the chain was trained on"
            )
        return x, np.asarray(y, np.int64)

    def load_data(self, spec=None, **options):
        """Load the chain's dataset (first ``n_train`` records).

        Args:
            spec: a dataset name or path (default: the one the chain recorded).
            **options: :func:`tfmodelsec.data.load_dataset` options (``image_size``, ``label_column``).
        """
        from tfmodelsec.data import load_dataset

        data = load_dataset(self.config.dataset if spec is None else spec, **options)
        if len(data.x_train) > self.config.n_train:
            data = data.subset(n_train=self.config.n_train)
        return data

    def _manifest(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "config": self.config.to_dict(),
            "complete": self.complete,
            "train_seconds": round(self.train_seconds, 3),
            "checkpoints": self.checkpoints,
            "blocks": [b.tolist() for b in self.blocks],
        }

    def _write_manifest(self) -> None:
        text = json.dumps(self._manifest(), separators=(",", ":")).encode()
        _atomic_write(self.path / MANIFEST, lambda f: f.write(text))


def _make_blocks(n: int, blocks: int, seed: int) -> list:
    order = np.random.default_rng([int(seed), 0xB10C]).permutation(n)
    return np.array_split(order, blocks)


def _resume_point(chain: Chain) -> int:
    """Number of leading checkpoints that are intact; drop the rest from the manifest."""
    good = 0
    for i, entry in enumerate(chain.checkpoints):
        try:
            chain._check_entry(i, entry)
        except ChainError as exc:
            warnings.warn(f"resume: {exc}; retraining from M_{i - 1}", stacklevel=3)
            break
        good += 1
    chain.checkpoints = chain.checkpoints[:good]
    return good


def train_chain(
    model: str,
    data,
    out_dir,
    *,
    blocks: int = 100,
    epochs_per_block: int = 1,
    batch_size: int = 32,
    learning_rate: float = 0.05,
    optimizer: str = "sgd",
    seed: int = 0,
    strategy=None,
    resume: bool = False,
    verbose: int = 1,
) -> Chain:
    """Train ``model`` on ``data`` block by block and store the chain in ``out_dir``.

    Args:
        model: zoo architecture name (``"lenet5"``, ``"mlp"``...).
        data: a :class:`tfmodelsec.data.Dataset`; its name is recorded so the chain can
            reload it (``n_train`` first records).
        out_dir: chain directory (created).
        blocks: number of blocks ``B``.
        epochs_per_block: passes over each block before its checkpoint.
        batch_size, learning_rate, optimizer: the training step (``"sgd"`` or ``"adam"``,
            state reset per block).
        seed: initialisation, block split and batch order.
        strategy: a ``tf.distribute.Strategy`` (``None``: current default).
        resume: continue a chain interrupted in ``out_dir`` from its last intact
            checkpoint; the configuration must match the stored one.
        verbose: 0 silent, 1 progress bar.

    Returns:
        The complete :class:`Chain`.

    Raises:
        FileExistsError: ``out_dir`` already holds a chain and ``resume`` is False.
        ValueError: the stored configuration differs (the differing field is named).

    Example:
        >>> chain = train_chain("lenet5", load_dataset("digits"), "runs/chain", blocks=10)
    """
    x = np.asarray(data.x_train, np.float32)
    y = np.asarray(data.y_train, np.int64)
    config = ChainConfig(
        model=model,
        dataset=data.name,
        n_train=len(x),
        input_shape=x.shape[1:],
        num_classes=int(data.num_classes),
        blocks=blocks,
        epochs_per_block=epochs_per_block,
        batch_size=batch_size,
        learning_rate=learning_rate,
        optimizer=optimizer,
        seed=seed,
        data_sha256=data_fingerprint(x, y),
        input_range=getattr(data, "value_range", (0.0, 1.0)),
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trainer = config.trainer(strategy)
    if (out / MANIFEST).exists():
        if not resume:
            raise FileExistsError(
                f"`out_dir` {str(out)!r} already holds a chain; pass resume=True "
                "(CLI: --resume) to continue it or choose another directory"
            )
        chain = Chain.open(out, verify=False, require_complete=False)
        stored = chain.config.to_dict()
        diff = [k for k, v in config.to_dict().items() if stored.get(k) != v]
        if diff:
            k = diff[0]
            raise ValueError(
                f"`{k}` does not match the chain being resumed: stored {k}={stored.get(k)!r}, "
                f"received {k}={config.to_dict()[k]!r}"
            )
        start = _resume_point(chain)
    else:
        chain = Chain(out, config, _make_blocks(len(x), blocks, seed), [], False)
        start = 0
    for stray in out.glob("*.tmp"):  # half-written files from a killed run
        stray.unlink()
    if start == 0:
        set_seed(seed)
        from tfmodelsec.models.zoo import build_model

        weights = build_model(model, config.input_shape, config.num_classes,
                              input_range=config.input_range).get_weights()
        chain.checkpoints = [_save_weights(out / "m_0000.npz", weights)]
        chain._write_manifest()
        start = 1
    weights = chain.weights(start - 1)
    bar = progbar(blocks, verbose=verbose, unit_name="block")
    bar.update(start - 1)
    t0 = time.perf_counter()
    for i in range(start, blocks + 1):
        ids = chain.blocks[i - 1]
        weights = trainer.train_block(
            weights, x[ids], y[ids], seed=seed, block=i, epochs=epochs_per_block
        )
        chain.checkpoints.append(_save_weights(out / f"m_{i:04d}.npz", weights))
        chain.complete = i == blocks
        chain.train_seconds += time.perf_counter() - t0
        t0 = time.perf_counter()
        chain._write_manifest()
        bar.update(i)
    if not chain.complete:  # B == 0 cannot happen; a resumed complete chain lands here
        chain.complete = len(chain.checkpoints) == blocks + 1
        chain._write_manifest()
    return chain
