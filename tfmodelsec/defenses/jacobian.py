"""Jacobian-based synthetic data augmentation (Papernot et al., "Practical Black-Box
Attacks against Machine Learning", AsiaCCS 2017, https://arxiv.org/abs/1602.02697).

The stealing attack APMSA's paper evaluates against: start from a few seed samples,
query them, train a substitute, then grow the set with
``x + lambda * sign(d substitute(x)[oracle label] / dx)`` (one new point per old one,
the step's sign flipped every ``tau`` rounds) until the budget is spent. The
substitute is trained on the answers as they come (soft targets: the attacker uses
everything the oracle returns).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfmodelsec.utils import check_positive

__all__ = ["JacobianResult", "jacobian_augmentation"]


@dataclass
class JacobianResult:
    student: object
    queries_used: int
    rounds: int
    accuracy: float | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"queries_used": self.queries_used, "rounds": self.rounds, "accuracy": self.accuracy,
                "seconds": round(self.seconds, 2)}


def _jacobian_sign_fn(model):
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def run(x, y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            picked = tf.gather(model(x, training=False), y, batch_dims=1)
        return tf.sign(tape.gradient(picked, x))

    return run


def jacobian_augmentation(oracle, seed_x, *, budget: int, student="auto", lam: float = 0.1, tau: int = 3,
                          epochs: int = 8, batch_size: int = 64, learning_rate: float = 1e-3,
                          eval_data=None, seed: int = 0, strategy=None, verbose: int = 0) -> JacobianResult:
    """Steal ``oracle``'s model from ``seed_x`` by Jacobian-based augmentation, spending ``budget`` queries.

    Args:
        oracle: a :class:`~tfmodelsec.oracle.BlackBox` answering probabilities.
        seed_x: the attacker's few seed samples (queried first).
        budget: total queries to spend (seeds included).
        student: a zoo name (built with the oracle's shapes behind a layer mapping its input
            range onto [0, 1], or standardising unbounded inputs with ``seed_x``; ``"auto"``:
            LeNet-5 for images, an MLP for feature vectors) or a ``keras.Model``.
        lam: augmentation step ``lambda``, a share of the input range's width (of each feature's
            spread in ``seed_x`` when the range is unbounded); tau: flip its sign every ``tau`` rounds.
        epochs: substitute epochs after each round.
        eval_data: ``(x_test, y_test)`` for the accuracy field.
        strategy: a ``tf.distribute.Strategy`` for the substitute's training (default: the
            current one); ``batch_size`` is the global batch.
    """
    import keras

    from tfmodelsec.models.train import fit_seeded
    from tfmodelsec.models.zoo import build_model, with_input_scaling
    from tfmodelsec.utils import Timer, resolve_strategy, set_seed

    check_positive("budget", budget, integer=True)
    check_positive("lam", lam)
    check_positive("tau", tau, integer=True)
    check_positive("epochs", epochs, integer=True)
    seed_x = np.asarray(seed_x, np.float32)
    if len(seed_x) == 0 or len(seed_x) > budget:
        raise ValueError(f"`seed_x` must hold 1 to budget={budget} samples. Received {len(seed_x)}")
    set_seed(seed)
    bounds = oracle.input_range
    lo, hi = bounds if bounds is not None else (-np.inf, np.inf)
    step = lam * ((hi - lo) if bounds is not None else np.maximum(seed_x.std(axis=0), 1e-6))
    strategy = resolve_strategy(strategy)
    with Timer() as timer:
        with strategy.scope():
            model = (with_input_scaling(build_model(student, oracle.input_shape, oracle.num_classes), bounds, seed_x)
                     if isinstance(student, str) else student)
            model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="categorical_crossentropy")
        jac = _jacobian_sign_fn(model)
        x, answers = seed_x, oracle(seed_x)
        order_rng = np.random.default_rng([seed, 1])  # batch order of every fit
        spent, rounds = len(seed_x), 0
        while True:
            fit_seeded(model, x, answers, epochs=epochs, batch_size=batch_size, rng=order_rng)
            rounds += 1
            left = budget - spent
            if left <= 0:
                break
            sign = step if (rounds - 1) // tau % 2 == 0 else -step
            pick = np.random.default_rng(seed + rounds).permutation(len(x))[:left]
            labels = answers[pick].argmax(1).astype(np.int32)
            grads = np.concatenate([jac(x[pick][i:i + 1024], labels[i:i + 1024]).numpy()
                                    for i in range(0, len(pick), 1024)])
            new = np.clip(x[pick] + sign * grads, lo, hi).astype(np.float32)
            x, answers = np.concatenate([x, new]), np.concatenate([answers, oracle(new)])
            spent += len(new)
            if verbose:
                print(f"[jacobian] round {rounds}: {spent}/{budget} queries", flush=True)
    acc = None
    if eval_data is not None:
        xt, yt = eval_data
        acc = float(np.mean(model.predict(xt, batch_size=1024, verbose=0).argmax(1) == np.asarray(yt)))
    return JacobianResult(model, spent, rounds, acc, timer.seconds)
