"""The block trainer shared by the chain, DeepObliviate, naive retraining and SISA.

One compiled ``tf.function`` trains a model on one block of records under any
``tf.distribute`` strategy. What "retrained without the records" means here, exactly:

* Each epoch visits the block in a seeded order (:func:`block_order`) cut into slots of
  ``batch_size`` records. A deleted record is *removed* from its slot: the slot's batch
  holds only the remaining records (its loss is their mean), and a slot left empty is no
  step at all. Deleted records never pass through the network, so they enter neither a
  BatchNormalization layer's batch statistics nor its moving averages.
* Every random draw in the training step (Dropout, GaussianNoise, any layer with a Keras
  ``SeedGenerator``) is re-seeded per slot from ``(seed, block, epoch, slot)``
  (:func:`slot_seeds`), so the draws are a function of the chain's seed and not of the
  trainer's history: retraining block ``i`` from ``M_{i-1}`` with nothing deleted gives
  ``M_i`` again, and retraining without records equals training from scratch on the
  remaining records with the same order and seeds.

The optimizer state is reset per block, so a checkpoint (the weights, BatchNorm moving
statistics included) is the whole training state. Under a multi-replica strategy each
replica normalises its own share of a batch (Keras' BatchNormalization is not
synchronised), so a batch smaller than the number of replicas leaves a replica empty;
exactness is claimed (and tested) on one replica.
"""

from __future__ import annotations

import numpy as np

from tfmodelsec.utils import check_choice, check_positive, resolve_strategy

__all__ = ["BlockTrainer", "batch_slots", "block_order", "get_trainer", "seed_generators", "slot_seeds"]

OPTIMIZERS = ("sgd", "adam")


def block_order(seed: int, block: int, epoch: int, size: int) -> np.ndarray:
    """The order records of ``block`` are visited in ``epoch`` (a seeded permutation)."""
    rng = np.random.default_rng([int(seed), int(block), int(epoch)])
    return rng.permutation(size)


def batch_slots(order: np.ndarray, keep: np.ndarray, batch_size: int) -> tuple:
    """The batches of one epoch: ``(slot ids, [record indices kept in each slot])``.

    ``order`` is cut into slots of ``batch_size``; deleted records (``keep == 0``) are
    dropped from their slot, and slots left empty are dropped (no step).
    """
    keep = np.asarray(keep) > 0
    slots, batches = [], []
    for j, start in enumerate(range(0, len(order), batch_size)):
        idx = order[start:start + batch_size]
        idx = idx[keep[idx]]
        if len(idx):
            slots.append(j)
            batches.append(idx)
    return np.asarray(slots, np.int64), batches


#: Tag mixed into the slot seeds so they differ from the streams block_order uses.
_SEED_TAG = 0x5EED


def slot_seeds(seed: int, block: int, epoch: int, slots: int, generators: int) -> np.ndarray:
    """``(slots, generators)`` seeds: the state each SeedGenerator gets before slot ``j``'s step."""
    rng = np.random.default_rng([int(seed), int(block), int(epoch), _SEED_TAG])
    return rng.integers(1, 2**31 - 1, size=(int(slots), max(int(generators), 1)), dtype=np.int64)


def seed_generators(model) -> list:
    """The Keras ``SeedGenerator`` objects a model's layers draw from in training."""
    found, seen = [], set()
    for layer in model._flatten_layers(include_self=True):
        for generator in getattr(layer, "_seed_generators", []):
            if id(generator) not in seen:
                seen.add(id(generator))
                found.append(generator)
    return found


def _as_tensors(*batch):
    return batch


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
        # TF's no-strategy default (a private class name; a miss only costs the map below)
        self._default_strategy = type(self.strategy).__name__ == "_DefaultDistributionStrategy"
        self.batch_size = int(batch_size)
        with self.strategy.scope():
            self.model = build_model(model, tuple(input_shape), int(num_classes), input_range=input_range)
            if optimizer == "sgd":
                self.optimizer = keras.optimizers.SGD(learning_rate)
            else:
                self.optimizer = keras.optimizers.Adam(learning_rate)
            self.optimizer.build(self.model.trainable_variables)
        self._variables = list(self.model.weights)
        self._seed_states = [g.state for g in seed_generators(self.model)]
        loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction=None)
        net, opt, strategy_, states = self.model, self.optimizer, self.strategy, self._seed_states

        def step(x, y, w):
            with tf.GradientTape() as tape:
                per_record = loss_fn(y, net(x, training=True))
                # w holds 1/(records in the global batch): the sum is the batch mean,
                # and replicas' gradients add up to the global batch's gradient.
                loss = tf.reduce_sum(per_record * w)
            grads = tape.gradient(loss, net.trainable_variables)
            opt.apply_gradients(zip(grads, net.trainable_variables, strict=True))

        def run_epoch(dist_data, seeds):
            i = tf.constant(0)
            for x, y, w in dist_data:
                for g, state in enumerate(states):  # this slot's draws, whatever ran before
                    state.assign(tf.stack([tf.cast(seeds[i, g], state.dtype), tf.constant(0, state.dtype)]))
                strategy_.run(step, args=(x, y, w))
                i += 1

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
            keep: 0/1 per record (``None``: all kept); 0 marks a deleted record, which is
                removed from its batch (see the module docstring).
            seed, block: pick the visiting order and the random draws of each epoch.
            epochs: passes over the block.
        """
        import tensorflow as tf

        keep = np.ones(len(x), np.float32) if keep is None else np.asarray(keep, np.float32)
        self.set_weights(weights)
        self._reset_optimizer()
        x, y = np.asarray(x, np.float32), np.asarray(y, np.int64)
        for epoch in range(int(epochs)):
            order = block_order(seed, block, epoch, len(x))
            slots, batches = batch_slots(order, keep, self.batch_size)
            if not batches:  # every record of the block deleted: the weights stay M_{i-1}
                continue
            all_seeds = slot_seeds(seed, block, epoch, -(-len(x) // self.batch_size), len(self._seed_states))
            lengths = np.array([len(b) for b in batches], np.int64)
            rows = np.concatenate(batches)
            w = np.repeat(1.0 / lengths, lengths).astype(np.float32)
            # one variable-length batch per row of the ragged tensors
            ds = tf.data.Dataset.from_tensor_slices(tuple(
                tf.RaggedTensor.from_row_lengths(a, lengths, validate=False) for a in (x[rows], y[rows], w)))
            if not self._default_strategy:  # distributed input needs plain tensor specs (a replica left
                ds = ds.map(_as_tensors)  # empty must keep its shape); tracing the map costs ~30 ms a call
            self._run_epoch(self.strategy.experimental_distribute_dataset(ds), tf.constant(all_seeds[slots]))
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
