"""Reference (shadow) models trained K at a time, and their signals on target and population records.

LiRA and RMIA need many reference models of one architecture, each trained on its own half of
the target records. Trained one by one (:func:`~tfmodelsec.models.train_classifier`), a small
model such as LeNet-5 pays for a Python loop over batches, a distribute-strategy wrapper and a
fresh ``tf.function`` trace per model. Here ``K`` copies with their own weights and their own
Adam optimizers live in one compiled graph: one call runs a whole epoch of all ``K`` (each on
its own batch of its own training set), so the per-step overhead is paid once for ``K`` models.

The result is the same as training them one by one: each copy is built right after
``set_seed(its seed)`` (same initial weights), visits its records in the order
``train_classifier`` draws for that seed (same batches), takes the same mean cross-entropy
and the same Adam / cosine-schedule step. Only floating-point summation order may differ
(oneDNN picks kernels per graph), so weights agree to float tolerance after a few steps and
drift apart like any two runs on different hardware after many.
"""

from __future__ import annotations

import numpy as np

from tfmodelsec.utils import progbar, set_seed

__all__ = ["train_models", "predict_signals"]

#: Records per forward pass when reading the models' outputs.
_PREDICT_BATCH = 1024


def _learning_rate(training, steps):
    import keras

    if training.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(training.learning_rate, decay_steps=max(int(steps), 1))
    return training.learning_rate


def _train_group(build, x_all, y_all, subsets, seeds, training, bar, done):
    """Train ``len(subsets)`` models of equal training-set size together; return them."""
    import keras
    import tensorflow as tf

    from tfmodelsec.models.train import _epoch_order

    m, bs = len(subsets[0]), int(training.batch_size)
    steps = int(training.epochs) * int(np.ceil(m / bs))
    nets, opts = [], []
    for seed in seeds:
        set_seed(seed)  # exactly as train_classifier does right before building its model
        net = build()
        opt = keras.optimizers.Adam(_learning_rate(training, steps))
        opt.build(net.trainable_variables)
        nets.append(net)
        opts.append(opt)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction=None)

    def step(idx, weight):
        for k, (net, opt) in enumerate(zip(nets, opts, strict=True)):
            xb, yb = tf.gather(x_all, idx[k]), tf.gather(y_all, idx[k])
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(loss_fn(yb, net(xb, training=True)) * weight)
            grads = tape.gradient(loss, net.trainable_variables)
            opt.apply_gradients(zip(grads, net.trainable_variables, strict=True))

    full = m // bs

    def epoch(order):
        for i in tf.range(full):
            step(order[:, i * bs:(i + 1) * bs], tf.constant(1.0 / bs, tf.float32))

    epoch_fn = tf.function(epoch)
    tail_fn = tf.function(step, reduce_retracing=True)
    for e in range(int(training.epochs)):
        order = np.stack([sub[_epoch_order(seed, e, m)]
                          for sub, seed in zip(subsets, seeds, strict=True)]).astype(np.int32)
        if full:
            epoch_fn(tf.constant(order))
        if m % bs:
            tail_fn(tf.constant(order[:, full * bs:]), tf.constant(1.0 / (m % bs), tf.float32))
        bar.update(done + (e + 1) * len(seeds) // int(training.epochs))  # whole models: the bar counts integers
    return nets


def train_models(build, x, y, subsets, seeds, training, *, at_once: int = 16, strategy=None,
                 verbose: int = 1) -> list:
    """Train one model per index set in ``subsets`` on ``(x[s], y[s])``; returns the Keras models.

    Args:
        build: zero-argument callable returning a fresh softmax classifier.
        x, y: the records and labels the subsets index.
        subsets: one integer index array per model (its training set).
        seeds: one seed per model (its initial weights and batch order).
        training: a :class:`~tfmodelsec.attacks.membership.shadow.ShadowTraining`.
        at_once: models trained together in one graph (``1``: one by one with
            ``train_classifier``); models are grouped by training-set size.
        strategy: a ``tf.distribute.Strategy``: each model is then trained by
            ``train_classifier`` under it (batching applies to the default strategy only).
        verbose: 0 silences the progress bar.
    """
    import tensorflow as tf

    from tfmodelsec.attacks.membership.shadow import train_shadow

    if len(subsets) != len(seeds):
        raise ValueError(f"one seed per model: {len(subsets)} subsets but {len(seeds)} seeds")
    if not len(subsets):
        return []
    bar = progbar(len(subsets), verbose=verbose, unit_name="model")
    default = strategy is None or strategy is tf.distribute.get_strategy()
    if int(at_once) <= 1 or not default:
        models = []
        for i, (sub, seed) in enumerate(zip(subsets, seeds, strict=True)):
            models.append(train_shadow(build, x[sub], y[sub], training, seed=seed, strategy=strategy))
            bar.update(i + 1)
        return models
    x_all = tf.constant(np.asarray(x, np.float32))
    y_all = tf.constant(np.asarray(y, np.int64))
    models: list = [None] * len(subsets)
    by_size: dict = {}
    for i, sub in enumerate(subsets):
        by_size.setdefault(len(sub), []).append(i)
    done = 0
    for _, members in sorted(by_size.items()):
        for start in range(0, len(members), int(at_once)):
            group = members[start:start + int(at_once)]
            nets = _train_group(build, x_all, y_all, [np.asarray(subsets[i]) for i in group],
                                [seeds[i] for i in group], training, bar, done)
            for i, net in zip(group, nets, strict=True):
                models[i] = net
            done += len(group)
    return models


def predict_signals(models, x, y) -> dict:
    """Each model's LiRA/RMIA signals on ``(x, y)``, read in one compiled pass over all models.

    Returns:
        ``{"confidences": (K, n), "logit_confidences": (K, n) or None, "correct": (K, n) bool}``:
        the logit-scaled confidence from float32 probabilities (what an API returns), the
        same from the pre-softmax outputs in float64 (``None`` when a model has no softmax
        head), and whether the model's top class is the label.
    """
    import tensorflow as tf

    from tfmodelsec.attacks.membership.shadow import _logit_head, softmax64
    from tfmodelsec.attacks.membership.threshold import logit_confidence

    heads = []
    for model in models:
        try:
            heads.append(_logit_head(model))
        except ValueError:
            heads = None
            break

    @tf.function(reduce_retracing=True)
    def forward(xb):
        probs = [m(xb, training=False) for m in models]
        feats = [features(xb, training=False) for features, _ in heads] if heads else []
        return probs, feats

    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.int64)
    k, n = len(models), len(x)
    conf = np.zeros((k, n))
    conf_logits = np.zeros((k, n)) if heads else None
    correct = np.zeros((k, n), bool)
    for start in range(0, n, _PREDICT_BATCH):
        sl = slice(start, start + _PREDICT_BATCH)
        probs, feats = forward(tf.constant(x[sl]))
        for i in range(k):
            p = np.asarray(probs[i], np.float64)
            conf[i, sl] = logit_confidence(p, y[sl])
            correct[i, sl] = p.argmax(1) == y[sl]
            if heads:
                out = np.asarray(feats[i], np.float64)
                dense = heads[i][1]
                if dense is not None:
                    kernel, *bias = (np.asarray(w, np.float64) for w in dense.get_weights())
                    out = out @ kernel + (bias[0] if bias else 0.0)
                conf_logits[i, sl] = logit_confidence(softmax64(out), y[sl])
    return {"confidences": conf, "logit_confidences": conf_logits, "correct": correct}
