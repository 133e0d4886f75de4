"""Training a classifier (victims, shadow models, students) under any tf.distribute strategy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tfmodelsec.utils import (
    Timer,
    check_choice,
    check_positive,
    keras_progress_callback,
    progbar,
    resolve_strategy,
    set_seed,
)

__all__ = ["TrainResult", "fit_seeded", "train_classifier"]


@dataclass
class TrainResult:
    """What :func:`train_classifier` did: the model, its test accuracy and the history."""

    model: object = field(repr=False)
    test_accuracy: float | None
    train_accuracy: float
    history: dict
    epochs: int
    seconds: float

    def to_dict(self) -> dict:
        return dict(
            test_accuracy=self.test_accuracy,
            train_accuracy=self.train_accuracy,
            epochs=self.epochs,
            seconds=round(self.seconds, 3),
            history={k: [float(v) for v in vals] for k, vals in self.history.items()},
        )


def _build_in_scope(model, input_shape, num_classes, strategy, input_range=(0.0, 1.0)):
    """Return a model whose variables live under ``strategy``'s scope (a zoo model takes ``input_range``)."""
    import keras

    from tfmodelsec.models.zoo import build_model

    with strategy.scope():
        if isinstance(model, str):
            return build_model(model, input_shape, num_classes, input_range=input_range)
        if callable(model) and not isinstance(model, keras.Model):
            return model()
        if not isinstance(model, keras.Model):
            raise ValueError(
                "`model` must be a zoo name, a keras.Model or a callable returning one. "
                f"Received: {type(model).__name__}"
            )
        if strategy is __import__("tensorflow").distribute.get_strategy():
            return model
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        return clone


def _epoch_order(seed, epoch: int, n: int) -> np.ndarray:
    """The seeded visiting order of one epoch (the same under every strategy)."""
    return np.random.default_rng([0 if seed is None else int(seed), int(epoch)]).permutation(n)


def fit_seeded(model, x, y, *, epochs: int, batch_size: int, rng, verbose: int = 0) -> dict:
    """``model.fit`` over ``epochs`` epochs whose batch order ``rng`` (a NumPy Generator) draws.

    Keras' own ``shuffle=True`` draws from TensorFlow's op-seed counter, which depends on
    how many random ops ran before (under ``MirroredStrategy`` every replica initialises
    its variables), so the same seed could visit the data in another order under another
    strategy. Returns the Keras history, one value per epoch.
    """
    import tensorflow as tf

    epochs, batch_size, n = int(epochs), int(batch_size), len(x)
    # every epoch's order drawn up front (the same draws as one permutation per epoch), then one
    # `fit` call over a dataset of those batches: a batch never spans two epochs, and no per-epoch
    # `fit` set-up (iterators, callbacks, traces) is paid again (2x the bare loop's time before)
    orders = np.stack([rng.permutation(n) for _ in range(epochs)])
    xt, yt = tf.constant(x), tf.constant(y)
    batches = (tf.data.Dataset.from_tensor_slices(orders)
               .flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
               .map(lambda idx: (tf.gather(xt, idx), tf.gather(yt, idx)))
               .prefetch(tf.data.AUTOTUNE))
    # Keras' own bar redraws with carriage returns even into a file: ours follows the terminal rule
    progress = keras_progress_callback(progbar(epochs, verbose=verbose, unit_name="epoch"))
    h = model.fit(batches, epochs=epochs, steps_per_epoch=-(-n // batch_size), shuffle=False, verbose=0,
                  callbacks=[progress])
    return {key: [float(v) for v in values] for key, values in h.history.items()}


def _make_epoch_fn(net, strategy):
    """An epoch over a distributed dataset of ``(x, y, w)``; returns (mean loss, correct count).

    ``w`` is ``1 / global batch size`` per record, so each replica's weighted sum is its
    share of the global mean and the summed replica gradients are the global gradient.
    """
    import keras
    import tensorflow as tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction=None)
    opt = net.optimizer

    def step(x, y, w):
        with tf.GradientTape() as tape:
            probs = net(x, training=True)
            loss = tf.reduce_sum(loss_fn(y, probs) * w)
        grads = tape.gradient(loss, net.trainable_variables)
        opt.apply_gradients(zip(grads, net.trainable_variables, strict=True))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probs, axis=1), y), tf.float32))
        return loss, correct

    def distributed_step(x, y, w):
        loss, correct = strategy.run(step, args=(x, y, w))
        return (strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
                strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None))

    compiled = tf.function(distributed_step, reduce_retracing=True)

    def run_epoch(dist_data):
        # A Python loop over batches around one compiled step: a whole epoch inside a
        # tf.function fails to re-initialise multi-device iterators on later epochs.
        total_loss, total_correct, batches = 0.0, 0.0, 0
        for x, y, w in dist_data:
            loss, correct = compiled(x, y, w)
            total_loss += float(loss)
            total_correct += float(correct)
            batches += 1
        return total_loss / max(batches, 1), total_correct

    return run_epoch


def train_classifier(
    model: str | Callable | object,
    data,
    *,
    epochs: int = 5,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    schedule: str = "constant",
    seed: int | None = 0,
    strategy=None,
    evaluate: bool = True,
    verbose: int = 1,
) -> TrainResult:
    """Train a softmax classifier with Adam and sparse cross-entropy.

    Args:
        model: a zoo name (``"lenet5"``...), a ``keras.Model``, or a callable that
            builds one (called under the strategy's scope).
        data: a :class:`tfmodelsec.data.Dataset`, or a tuple ``(x_train, y_train)``
            (then no test accuracy is computed).
        epochs, batch_size, learning_rate: the usual; ``batch_size`` is the global batch.
        schedule: ``"constant"`` or ``"cosine"`` (cosine decay of the learning rate to 0
            over all steps; a few tenths of a point better on MNIST-size problems).
        seed: seeds Python, NumPy, TF and Keras before the model is built.
        strategy: a ``tf.distribute.Strategy``; ``None`` uses the current default.
        evaluate: compute the test accuracy at the end.
        verbose: 0 silent, else progress per epoch (a live bar on a terminal, a line per epoch elsewhere).

    Returns:
        :class:`TrainResult`.
    """
    import keras

    check_positive("epochs", epochs, integer=True)
    check_positive("batch_size", batch_size, integer=True)
    check_positive("learning_rate", learning_rate)
    schedule = check_choice("schedule", schedule, ("constant", "cosine"))
    value_range = (0.0, 1.0)
    if isinstance(data, tuple):
        x_train, y_train = data
        x_test = y_test = None
        num_classes = int(np.max(y_train)) + 1
    else:
        x_train, y_train, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
        num_classes = data.num_classes
        value_range = data.value_range  # a zoo model taking 0..255 pixels scales them to [0, 1] first
    x_train = np.asarray(x_train, np.float32)
    y_train = np.asarray(y_train, np.int64)
    if len(x_train) == 0:
        raise ValueError("`data` has no training samples")
    strategy = resolve_strategy(strategy)
    set_seed(seed)
    net = _build_in_scope(model, x_train.shape[1:], num_classes, strategy, value_range)
    lr = learning_rate
    if schedule == "cosine":
        steps = int(epochs) * int(np.ceil(len(x_train) / int(batch_size)))
        lr = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(steps, 1))
    with strategy.scope():
        net.compile(
            optimizer=keras.optimizers.Adam(lr),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        # optimizer slots must exist before the first replica step creates them
        net.optimizer.build(net.trainable_variables)
    import tensorflow as tf

    epoch_fn = _make_epoch_fn(net, strategy)
    n, bs = len(x_train), int(batch_size)
    history: dict = {"loss": [], "accuracy": []}
    bar = progbar(int(epochs), verbose=verbose, unit_name="epoch",
                  stateful_metrics=["loss", "accuracy"])
    with Timer() as timer:
        for epoch in range(int(epochs)):
            order = _epoch_order(seed, epoch, n)
            sizes = np.minimum(bs, n - (np.arange(n) // bs) * bs).astype(np.float32)
            ds = tf.data.Dataset.from_tensor_slices(
                (x_train[order], y_train[order], 1.0 / sizes)).batch(bs)
            loss, correct = epoch_fn(strategy.experimental_distribute_dataset(ds))
            history["loss"].append(float(loss))
            history["accuracy"].append(float(correct) / n)
            bar.update(epoch + 1, values=[("loss", history["loss"][-1]),
                                          ("accuracy", history["accuracy"][-1])])
    train_acc = history["accuracy"][-1]
    test_acc = None
    if evaluate and x_test is not None and len(x_test):
        pred = np.concatenate([np.argmax(net(x_test[i:i + 1024], training=False), axis=1)
                               for i in range(0, len(x_test), 1024)])
        test_acc = float(np.mean(pred == np.asarray(y_test)))
    return TrainResult(net, test_acc, train_acc, history, int(epochs), timer.seconds)
