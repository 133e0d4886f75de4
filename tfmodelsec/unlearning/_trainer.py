"""The block trainer shared by the chain, DeepObliviate, naive retraining and SISA.

One compiled ``tf.function`` trains a model on one block of records under any
``tf.distribute`` strategy. Deleted records are not removed from the batches but
get weight 0: every batch keeps its slot, so retraining "without" records follows
exactly the trajectory that training on the remaining records with the same seed
and batch order would follow, and the step function never retraces. (With plain SGD
a batch whose records are all deleted leaves the weights as they are; with Adam its
moment estimates still move them, as Adam does on any zero gradient.)
"""

from __future__ import annotations

import numpy as np

from tfmodelsec.utils import check_choice, check_positive, resolve_strategy

__all__ = ["BlockTrainer", "batch_weights", "block_order", "get_trainer"]

OPTIMIZERS = ("sgd", "adam")


def block_order(seed: int, block: int, epoch: int, size: int) -> np.ndarray:
    """The order records of ``block`` are visited in ``epoch`` (a seeded permutation)."""
    rng = np.random.default_rng([int(seed), int(block), int(epoch)])
    return rng.permutation(size)


def batch_weights(keep: np.ndarray, batch_size: int) -> np.ndarray:
    """Per-record loss weights: ``keep / (records kept in the same batch)``.

    Each batch's loss is the mean over its kept records; a batch with none kept
    gives a zero gradient.
    """
    keep = np.asarray(keep, np.float32)
    n = len(keep)
    slots = np.arange(n) // batch_size
    counts = np.bincount(slots, weights=keep, minlength=slots[-1] + 1 if n else 0)
    return (keep / np.maximum(counts[slots], 1.0)).astype(np.float32)


class BlockTrainer:
    """A model, an optimizer and a compiled epoch loop, built once and reused.

    The optimizer state is reset at the start of every block so that a stored
    checkpoint (the weights) is the complete training state: retraining can start
    from any ``M_{i-1}`` and get exactly what the original run would have got.

    Args:
        model: zoo name of the architecture.
        input_shape, num_classes: the data's.
        optimizer: ``"sgd"`` (plain, stateless) or ``"adam"``.
        learning_rate, batch_size: per block.
        strategy: a ``tf.distribute.Strategy``; ``None`` uses the current default.
        input_range: the data's value range (a zoo model scales a bounded one onto [0, 1]).
    """

    def __init__(
        self,
        model: str,
        input_shape,
        num_classes: int,
        *,
        optimizer: str = "sgd",
        learning_rate: float = 0.05,
        batch_size: int = 32,
        strategy=None,
        input_range=(0.0, 1.0),
    ):
        import keras
        import tensorflow as tf

        from tfmodelsec.models.zoo import build_model

        check_choice("optimizer", optimizer, OPTIMIZERS)
        check_positive("learning_rate", learning_rate)
        check_positive("batch_size", batch_size, integer=True)
        self.strategy = resolve_strategy(strategy)
        self.batch_size = int(batch_size)
        with self.strategy.scope():
            self.model = build_model(model, tuple(input_shape), int(num_classes), input_range=input_range)
            if optimizer == "sgd":
                self.optimizer = keras.optimizers.SGD(learning_rate)
            else:
                self.optimizer = keras.optimizers.Adam(learning_rate)
            self.optimizer.build(self.model.trainable_variables)
        self._variables = list(self.model.weights)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction=None)
        net, opt, strategy_ = self.model, self.optimizer, self.strategy

        def step(x, y, w):
            with tf.GradientTape() as tape:
                per_record = loss_fn(y, net(x, training=True))
                # w already holds 1/count per kept record: the sum is the batch mean,
                # and replicas' gradients add up to the global batch's gradient.
                loss = tf.reduce_sum(per_record * w)
            grads = tape.gradient(loss, net.trainable_variables)
            opt.apply_gradients(zip(grads, net.trainable_variables))

        def run_epoch(dist_data):
            for x, y, w in dist_data:
                strategy_.run(step, args=(x, y, w))

        self._run_epoch = tf.function(run_epoch, reduce_retracing=True)

    def get_weights(self) -> list:
        return [np.array(v) for v in self.model.get_weights()]

    def set_weights(self, weights) -> None:
        self.model.set_weights(weights)

    def _reset_optimizer(self) -> None:
        for v in self.optimizer.variables:
            if v.name != "learning_rate":  # the rest (iteration, moments) is per-block state
                v.assign(np.zeros(v.shape, dtype=v.dtype))

    def train_block(
        self, weights, x, y, keep=None, *, seed: int, block: int, epochs: int = 1
    ) -> list:
        """Train from ``weights`` on one block; return the new weights.

        Args:
            weights: the starting weights (``M_{i-1}``).
            x, y: the block's records, in block order.
            keep: 0/1 per record (``None``: all kept); 0 marks a deleted record.
            seed, block: pick the visiting order of each epoch.
            epochs: passes over the block.
        """
        import tensorflow as tf

        keep = np.ones(len(x), np.float32) if keep is None else np.asarray(keep, np.float32)
        self.set_weights(weights)
        self._reset_optimizer()
        for epoch in range(int(epochs)):
            order = block_order(seed, block, epoch, len(x))
            w = batch_weights(keep[order], self.batch_size)
            ds = tf.data.Dataset.from_tensor_slices((x[order], y[order], w)).batch(self.batch_size)
            self._run_epoch(self.strategy.experimental_distribute_dataset(ds))
        return self.get_weights()


_CACHE: dict = {}


def get_trainer(
    model, input_shape, num_classes, *, optimizer, learning_rate, batch_size, strategy=None, input_range=(0.0, 1.0)
) -> BlockTrainer:
    """A :class:`BlockTrainer` for these settings, reused across calls (compiled once)."""
    strategy = resolve_strategy(strategy)
    key = (
        model,
        tuple(input_shape),
        int(num_classes),
        optimizer,
        float(learning_rate),
        int(batch_size),
        id(strategy),
        None if input_range is None else tuple(float(v) for v in input_range),
    )
    if key not in _CACHE:
        if len(_CACHE) >= 4:  # a few live models at most
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = BlockTrainer(
            model,
            input_shape,
            num_classes,
            optimizer=optimizer,
            learning_rate=learning_rate,
            batch_size=batch_size,
            strategy=strategy,
            input_range=input_range,
        )
    return _CACHE[key]
