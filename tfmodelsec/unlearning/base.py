"""What every unlearning method shares: checking deletion ids, the result, naive retraining.

Naive retraining is the reference (the "as if never seen" model): train again from
the chain's stored initialisation ``M_0`` on every block, with the same seed and
batch order, the deleted records masked out.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from tfmodelsec.ids import read_ids
from tfmodelsec.utils import progbar

__all__ = ["UnlearnResult", "check_delete_ids", "retrain", "evaluate_unlearning"]


def check_delete_ids(delete_ids, n_train: int, *, known=None) -> np.ndarray:
    """Validate training-record ids to delete; return them as a sorted int64 array.

    ``delete_ids`` is a sequence of ints, or a file / inline ids (``"12,345"``, ``"first:N"``,
    ``"A:B"``) read by :func:`tfmodelsec.ids.read_ids`.

    Raises:
        ValueError: empty, not integers, duplicated, or not ids of the training set.
    """
    if isinstance(delete_ids, (str, os.PathLike)):  # a file or inline ids: see tfmodelsec.ids
        delete_ids = read_ids(delete_ids, total=n_train, name="delete_ids")
    raw = np.asarray(list(delete_ids) if not isinstance(delete_ids, np.ndarray) else delete_ids)
    if raw.size == 0:
        raise ValueError("`delete_ids` is empty: give at least one training-record id to delete")
    if raw.ndim != 1 or not (
        np.issubdtype(raw.dtype, np.integer)
        or (np.issubdtype(raw.dtype, np.floating) and np.all(raw == np.round(raw)))
    ):
        raise ValueError(
            f"`delete_ids` must be a 1-D list of integer ids. Received: {raw[:5].tolist()!r}..."
        )
    ids = raw.astype(np.int64)
    values, counts = np.unique(ids, return_counts=True)
    if np.any(counts > 1):
        dup = values[counts > 1][:5].tolist()
        raise ValueError(f"`delete_ids` holds duplicate ids: {dup} (each record is deleted once)")
    bad = ids[(ids < 0) | (ids >= n_train)]
    if known is not None and not len(bad):
        bad = ids[~known(ids)]
    if len(bad):
        raise ValueError(
            f"`delete_ids` must be ids of the training set (0..{n_train - 1}). "
            f"Not in it: {bad[:5].tolist()}"
        )
    return values


@dataclass
class UnlearnResult:
    """The unlearned model and how it was obtained.

    Attributes:
        method: ``"deepobliviate"``, ``"sisa"`` or ``"retrain"``.
        weights: weight list of the unlearned model (SISA: ``None``, see ``model``).
        model: a Keras model of the result.
        deleted: number of records deleted.
        first_block: the earliest (1-based) block/slice holding a deleted record.
        blocks_retrained: blocks trained again.
        total_blocks: blocks in the chain (or shard slices for SISA).
        seconds: wall time of the unlearning itself.
        deltas: DeepObliviate's residual memory per retrained block (normalised).
        fit: the fitted power law ``{"a", "h", "b"}`` of ``deltas`` (or ``None``).
        epsilon: the stopping threshold used.
        info: anything else method specific.
    """

    method: str
    model: object = field(repr=False)
    deleted: int
    first_block: int
    blocks_retrained: int
    total_blocks: int
    seconds: float
    weights: list | None = field(default=None, repr=False)
    deltas: list = field(default_factory=list)
    fit: dict | None = None
    epsilon: float | None = None
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "deleted": self.deleted,
            "first_block": self.first_block,
            "blocks_retrained": self.blocks_retrained,
            "total_blocks": self.total_blocks,
            "seconds": round(self.seconds, 4),
            "epsilon": self.epsilon,
            "deltas": [float(d) for d in self.deltas],
            "fit": self.fit,
            **self.info,
        }

    def plot(self, *, title: str = ""):
        """The residual-memory curve and its fitted power law (a Figure)."""
        from tfmodelsec.plotting import residual_memory_figure

        return residual_memory_figure(
            self.deltas,
            self.fit,
            epsilon=self.epsilon,
            title=title or f"{self.method}: {self.deleted} deleted, block {self.first_block}",
        )


def checked_trainer(chain, strategy=None):
    """The chain's block trainer, after checking its model fits the stored checkpoints."""
    if not chain.complete:
        from tfmodelsec.unlearning.chain import ChainError

        raise ChainError(
            f"`chain` {str(chain.path)!r} is incomplete; finish it with --resume first"
        )
    trainer = chain.config.trainer(strategy)
    stored = [tuple(w.shape) for w in chain.weights(0)]
    built = [tuple(w.shape) for w in trainer.model.weights]
    if stored != built:
        raise ValueError(
            f"`model` {chain.config.model!r} of the chain config does not match its "
            f"checkpoints: built weight shapes {built[:3]}... vs stored {stored[:3]}..."
        )
    return trainer


def _model_from(config, weights):
    from tfmodelsec.models.zoo import build_model

    net = build_model(config.model, config.input_shape, config.num_classes, input_range=config.input_range)
    net.set_weights(weights)
    return net


def retrain(chain, delete_ids, *, data=None, strategy=None, verbose: int = 1) -> UnlearnResult:
    """Naive unlearning: retrain from ``M_0`` through every block without ``delete_ids``.

    Args:
        chain: a :class:`tfmodelsec.unlearning.Chain` (read only).
        delete_ids: training-record ids to forget.
        data: the chain's dataset (default: reloaded by name and checked).
        strategy: a ``tf.distribute.Strategy``.
        verbose: 0 silent, 1 progress bar.
    """
    data = chain.load_data() if data is None else data
    x, y = chain.check_data(data)
    ids = check_delete_ids(delete_ids, chain.config.n_train, known=lambda i: chain.block_of(i) > 0)
    cfg = chain.config
    trainer = checked_trainer(chain, strategy)
    weights = chain.weights(0)
    bar = progbar(cfg.blocks, verbose=verbose, unit_name="block")
    start = time.perf_counter()
    for i in range(1, cfg.blocks + 1):
        block = chain.blocks[i - 1]
        keep = (~np.isin(block, ids)).astype(np.float32)
        weights = trainer.train_block(
            weights, x[block], y[block], keep, seed=cfg.seed, block=i, epochs=cfg.epochs_per_block
        )
        bar.update(i)
    seconds = time.perf_counter() - start
    first = int(chain.block_of(ids).min())
    return UnlearnResult(
        "retrain",
        _model_from(cfg, weights),
        len(ids),
        first,
        cfg.blocks,
        cfg.blocks,
        seconds,
        weights=weights,
    )


def _nll(probs, y) -> np.ndarray:
    """Per-record cross-entropy from predicted probabilities."""
    return -np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))


def evaluate_unlearning(model, data, *, reference=None, deleted=None, reference_pred=None) -> dict:
    """Test top-1 (top-5 when > 5 classes), consistency with ``reference``, and the
    loss-threshold membership AUC of the ``deleted`` (x, y) records vs unseen test records.
    """
    probs = model.predict(data.x_test, batch_size=1024, verbose=0)
    pred = probs.argmax(1)
    out = {"top1": float(np.mean(pred == data.y_test))}
    if probs.shape[1] > 5:
        top5 = np.argsort(-probs, axis=1)[:, :5]
        out["top5"] = float(np.mean(np.any(top5 == data.y_test[:, None], axis=1)))
    if reference_pred is None and reference is not None:
        reference_pred = reference.predict(data.x_test, batch_size=1024, verbose=0).argmax(1)
    if reference_pred is not None:
        out["consistency"] = float(np.mean(pred == reference_pred))
    if deleted is not None:
        from tfmodelsec.metrics import loss_threshold_auc

        x_deleted, y_deleted = deleted
        deleted_losses = _nll(model.predict(x_deleted, batch_size=1024, verbose=0), y_deleted)
        out["membership_auc"] = loss_threshold_auc(deleted_losses, _nll(probs, data.y_test))
    return out
