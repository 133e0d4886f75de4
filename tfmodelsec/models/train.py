"""Training a classifier (victims, shadow models, students) under any tf.distribute strategy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from tfmodelsec.utils import Timer, check_choice, check_positive, resolve_strategy, set_seed

__all__ = ["TrainResult", "train_classifier"]


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


def _build_in_scope(model, input_shape, num_classes, strategy):
    """Return a model whose variables live under ``strategy``'s scope."""
    import keras

    from tfmodelsec.models.zoo import build_model

    with strategy.scope():
        if isinstance(model, str):
            return build_model(model, input_shape, num_classes)
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


def train_classifier(
    model: "str | Callable | object",
    data,
    *,
    epochs: int = 5,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    schedule: str = "constant",
    seed: int | None = 0,
    strategy=None,
    validation_split: float = 0.0,
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
        validation_split: fraction of training data held out for validation.
        evaluate: compute the test accuracy at the end.
        verbose: 0 silent, 1 progress bar per epoch, 2 one line per epoch.

    Returns:
        :class:`TrainResult`.
    """
    import keras

    check_positive("epochs", epochs, integer=True)
    check_positive("batch_size", batch_size, integer=True)
    check_positive("learning_rate", learning_rate)
    schedule = check_choice("schedule", schedule, ("constant", "cosine"))
    if isinstance(data, tuple):
        x_train, y_train = data
        x_test = y_test = None
        num_classes = int(np.max(y_train)) + 1
    else:
        x_train, y_train, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
        num_classes = data.num_classes
    x_train = np.asarray(x_train, np.float32)
    y_train = np.asarray(y_train, np.int64)
    if len(x_train) == 0:
        raise ValueError("`data` has no training samples")
    strategy = resolve_strategy(strategy)
    set_seed(seed)
    net = _build_in_scope(model, x_train.shape[1:], num_classes, strategy)
    lr = learning_rate
    if schedule == "cosine":
        steps = int(epochs) * int(np.ceil(len(x_train) * (1 - validation_split) / int(batch_size)))
        lr = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(steps, 1))
    with strategy.scope():
        net.compile(
            optimizer=keras.optimizers.Adam(lr),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    with Timer() as timer:
        hist = net.fit(
            x_train,
            y_train,
            epochs=int(epochs),
            batch_size=int(batch_size),
            validation_split=validation_split,
            shuffle=True,
            verbose=verbose,
        )
    train_acc = float(hist.history["accuracy"][-1])
    test_acc = None
    if evaluate and x_test is not None and len(x_test):
        _, test_acc = net.evaluate(x_test, y_test, batch_size=1024, verbose=0)
        test_acc = float(test_acc)
    return TrainResult(net, test_acc, train_acc, dict(hist.history), int(epochs), timer.seconds)
