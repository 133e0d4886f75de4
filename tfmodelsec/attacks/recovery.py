"""White-box input recovery: a trainable front-end before the frozen victim.

The victim is treated as the decoder of an autoencoder. An attacker model
``Input(num_classes) -> Dense(prod(input_shape)) -> Reshape(input_shape)`` is put in
front of a frozen copy of the victim, and the combined model is trained so that the
one-hot vector of class ``c`` comes out as class ``c``. What the attacker outputs for
that one-hot vector is an input the victim assigns to ``c``: the recovered input.
Everything is built from Keras' own layers (Functional API), so both models save to
``.h5`` and load again under Keras' safe mode.

References:
    OWASP ML Top 10, ML05:2023 Model Theft; "2024 iThome Ironman: DNN model security,
    Day 11 - recovering a DNN's inputs" (the lab this module implements).
    Fredrikson et al., "Model Inversion Attacks that Exploit Confidence Information",
    CCS 2015 (the attack family).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tfmodelsec.attacks._whitebox import check_classes, display_shape, search_bounds
from tfmodelsec.utils import Timer, check_positive, progbar, set_seed

__all__ = ["ATTACK_FILE", "COMBINED_FILE", "RecoveryResult", "build_attack_model", "recover_inputs"]

ATTACK_FILE = "attack_model.h5"
COMBINED_FILE = "combined_model.h5"
# Gradient steps per epoch: the training set is one batch of one-hot vectors, so an
# "epoch" of a single step would make epochs meaninglessly small units.
STEPS_PER_EPOCH = 10


@dataclass
class RecoveryResult:
    """What :func:`recover_inputs` found.

    Attributes:
        images: recovered inputs ``(len(targets), *input_shape)`` inside the victim's input range
            (or the search bounds); :meth:`shown` gives them at ``image_shape``.
        targets: the class of each image.
        confidence: the (original) victim's probability of the target class for each image.
        attack_model: the trained front-end, one-hot in, image out.
        combined_model: front-end followed by the frozen victim copy.
        loss_history: training loss per epoch.
        seconds: training wall time.
        image_shape: the shape the inputs are shown at (``None``: feature vectors).
        metrics: recognisability, after :meth:`evaluate`.
    """

    images: np.ndarray
    targets: np.ndarray
    confidence: np.ndarray
    attack_model: object = field(repr=False)
    combined_model: object = field(repr=False)
    loss_history: list = field(default_factory=list)
    epochs: int = 0
    seconds: float = 0.0
    image_shape: tuple | None = None
    metrics: dict = field(default_factory=dict)

    def shown(self) -> np.ndarray:
        """The inputs at ``image_shape`` (unchanged for feature vectors)."""
        return self.images if self.image_shape is None else self.images.reshape(len(self.images), *self.image_shape)

    def evaluate(self, class_means) -> dict:
        """Pearson correlation with the real class means and the nearest mean (see
        :func:`tfmodelsec.metrics.inversion_metrics`); ``class_means`` of either shape."""
        from tfmodelsec.metrics import inversion_metrics

        shown = self.shown()
        means = np.asarray(class_means, np.float32).reshape(-1, *shown.shape[1:])
        span = float(max(np.ptp(means), 1e-12)) if shown.ndim == 4 else 1.0
        self.metrics = inversion_metrics(shown, self.targets, confidence=self.confidence, class_means=means,
                                         max_val=span)
        return self.metrics

    def to_dict(self) -> dict:
        summary = {k: v for k, v in self.metrics.items() if k != "per_class"}
        return {**summary,
            "targets": self.targets.tolist(),
            "confidence": [float(c) for c in self.confidence],
            "min_confidence": float(np.min(self.confidence)),
            "epochs": self.epochs,
            "steps": self.epochs * STEPS_PER_EPOCH,
            "final_loss": float(self.loss_history[-1]) if self.loss_history else None,
            "seconds": round(self.seconds, 3),
        }

    def plot(self):
        """One image per target, titled with the victim's confidence."""
        from tfmodelsec import plotting

        titles = [f"{t}: {c:.3f}" for t, c in zip(self.targets, self.confidence, strict=True)]
        suptitle = "recovered inputs (class: victim confidence)"
        if self.image_shape is None:
            return plotting.vector_rows(self.images, labels=titles, suptitle=suptitle)
        shown = self.shown()
        lo, hi = float(shown.min(initial=0.0)), float(shown.max(initial=1.0))
        scaled = (shown - lo) / max(hi - lo, 1e-12) if (lo < 0 or hi > 1) else shown
        return plotting.image_grid(scaled, titles=titles, suptitle=suptitle)

    def save(self, out_dir) -> list[Path]:
        """Write ``attack_model.h5`` and ``combined_model.h5`` into ``out_dir``; return the paths."""
        from tfmodelsec.models.io import save_model

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        return [save_model(self.attack_model, out_dir / ATTACK_FILE),
                save_model(self.combined_model, out_dir / COMBINED_FILE)]


def build_attack_model(num_classes: int, input_shape, input_range=(0.0, 1.0), *, name="attack_model"):
    """The front-end: one-hot ``(num_classes,)`` -> ``Dense`` -> input of ``input_shape``.

    A sigmoid keeps outputs in (0, 1); a ``Rescaling`` maps them into ``input_range``
    when that is not (0, 1), so every output is a valid victim input. ``input_range`` is
    ``(low, high)`` scalars or arrays of one input (per-feature bounds of an unbounded victim).
    """
    import keras

    shape = tuple(input_shape)
    lo, hi = (np.broadcast_to(np.asarray(v, np.float32), shape) for v in input_range)
    inputs = keras.Input(shape=(int(num_classes),), name="one_hot")
    x = keras.layers.Dense(int(np.prod(shape)), activation="sigmoid", name="recovered_flat")(inputs)
    x = keras.layers.Reshape(shape, name="recovered")(x)
    if np.all(lo == lo.flat[0]) and np.all(hi == hi.flat[0]):
        if (float(lo.flat[0]), float(hi.flat[0])) != (0.0, 1.0):
            x = keras.layers.Rescaling(scale=float(hi.flat[0] - lo.flat[0]), offset=float(lo.flat[0]),
                                       name="to_input_range")(x)
    else:
        x = keras.layers.Rescaling(scale=hi - lo, offset=lo.copy(), name="to_input_range")(x)
    return keras.Model(inputs, x, name=name)


def _frozen_copy(model):
    """A frozen copy of ``model``: training the combined model must never touch the victim."""
    import keras

    try:
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
    except Exception as exc:  # e.g. a SavedModel wrapped in TFSMLayer cannot be cloned
        raise ValueError(
            f"`victim` could not be copied for input recovery ({type(exc).__name__}: {str(exc)[:160]}); "
            "expected a Keras model built from Keras layers (.h5 or .keras)"
        ) from None
    copy.trainable = False
    return copy


def recover_inputs(victim, *, targets=None, epochs: int = 30, lr: float = 0.05, seed: int = 0,
                   verbose: int = 1, bounds=None, image_shape=None) -> RecoveryResult:
    """Recover one input per target class by training a front-end before the frozen victim.

    Args:
        victim: a :class:`~tfmodelsec.Victim`, ``keras.Model`` or model path: images, a flat
            input or feature vectors.
        targets: class indices to recover (default: every class).
        epochs: training epochs of ``STEPS_PER_EPOCH`` Adam steps each.
        lr: Adam learning rate.
        seed: seeds the front-end's initial weights (same seed, same images).
        verbose: 0 silences the progress bar.
        bounds: ``(low, high)`` the inputs are searched within (scalars or arrays of one input);
            default the victim's range. Needed for an unbounded victim
            (:func:`tfmodelsec.models.input_bounds` takes them from data).
        image_shape: the image shape of a flat victim's input (default ``victim.image_shape``).

    Returns:
        A :class:`RecoveryResult`; ``result.save(dir)`` writes both models as ``.h5``;
        ``result.evaluate(class_means)`` scores it against real class means.

    Raises:
        ValueError: a target out of range, ``epochs``/``lr`` not positive, an unbounded victim
            without ``bounds``.

    Example:
        >>> result = recover_inputs("saved_models/lenet5_mnist.h5", targets=[9])  # doctest: +SKIP
        >>> result.confidence  # doctest: +SKIP
        array([0.9999], dtype=float32)
    """
    import keras

    from tfmodelsec.models.io import as_victim

    victim = as_victim(victim)
    targets = check_classes("targets", targets, victim.num_classes)
    check_positive("epochs", epochs, integer=True)
    check_positive("lr", lr)
    lo, hi = search_bounds(victim, bounds)
    shown = display_shape(victim, image_shape)
    set_seed(seed)
    attacker = build_attack_model(victim.num_classes, victim.input_shape, (lo, hi))
    frozen = _frozen_copy(victim.model)
    combined = keras.Model(attacker.inputs, frozen(attacker.outputs[0]), name="combined_model")
    combined.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=victim.output_kind == "logits"),
    )
    one_hot = np.eye(victim.num_classes, dtype=np.float32)[targets]
    x = np.tile(one_hot, (STEPS_PER_EPOCH, 1))
    y = np.tile(targets.astype(np.int64), STEPS_PER_EPOCH)
    bar = progbar(int(epochs), verbose=verbose, unit_name="epoch")
    progress = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: bar.update(epoch + 1, [("loss", logs["loss"])]))
    with Timer() as timer:
        history = combined.fit(x, y, batch_size=len(targets), epochs=int(epochs), shuffle=False,
                               verbose=0, callbacks=[progress])
    images = attacker.predict(one_hot, verbose=0).astype(np.float32)
    images = np.clip(images, lo, hi)  # sigmoid/rescaling already lands inside; clip float round-off
    confidence = victim.probabilities(images)[np.arange(len(targets)), targets]
    return RecoveryResult(images, targets, confidence.astype(np.float32), attacker, combined,
                          [float(v) for v in history.history["loss"]], int(epochs), timer.seconds, shown)
