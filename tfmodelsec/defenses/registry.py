"""Defenses by name: build, wrap, save and load them (used by the CLI and the export)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["DEFENSES", "defended_model", "defense_name", "load_defense", "make_defense", "save_defense"]

#: Names :func:`make_defense` accepts (``apgp_topK`` for any K, e.g. ``apgp_top3``, too).
DEFENSES = ("none", "gaussian", "reverse_sigmoid", "rounding", "topk", "label", "mad", "mad_argmax",
            "apgp_all", "apgp_top1", "apmsa_fgsm", "apmsa_pgd", "apmsa_cw")

# Defaults tuned on 28x28 MNIST-like inputs in [0, 1]; the radius is scaled to the victim's input
# range (its width; for unbounded inputs the mean per-feature spread of ``x``, else 1). Override
# through **params (taken as given, unscaled).
# ``refine`` bisects the last step so that the answer sits at the flip, not up to a step before it.
_APMSA_DEFAULTS = {"fgsm": {"eps": 0.25, "steps": 5, "refine": 4}, "pgd": {"eps": 0.25, "steps": 5, "refine": 4},
                   "cw": {"eps": 3.0, "steps": 5, "c": 1.0, "refine": 4}}
_APGP_DEFAULTS = {"epochs": 10, "batch_size": 256, "learning_rate": 3e-2}
_APGP_TRAIN_SAMPLES = 10000


def _default_surrogate(victim, seed):
    """An untrained model with the victim's shapes (the owner cannot know the thief's weights)."""
    from tfmodelsec.models.zoo import build_model
    from tfmodelsec.utils import set_seed

    set_seed(seed)
    shape = tuple(victim.input_shape)
    name = "lenet5" if len(shape) == 3 and min(shape[:2]) >= 8 else "mlp"
    return build_model(name, shape, victim.num_classes)


def make_defense(name: str, victim, *, x=None, seed: int = 0, strategy=None, verbose: int = 0, **params):
    """Build (and train, where needed) the defense called ``name`` for ``victim``.

    Args:
        name: one of :data:`DEFENSES` or ``apgp_topK`` (``K`` an integer).
            ``"none"`` returns ``None`` (no defense).
        victim: a Victim, keras.Model or path.
        x: the owner's inputs: needed to train APGP (a seeded subset of at most 10k is used);
            also sets APMSA's default radius for a victim with unbounded inputs.
        seed: seeds noise, surrogate initialisation and APGP training.
        strategy: a ``tf.distribute.Strategy`` for APGP's training (default: the current
            one); the other defenses train nothing and ignore it.
        verbose: 0 silences APGP's training progress.
        **params: the layer's own options, e.g. ``stddev`` (gaussian), ``beta``/``gamma``
            (reverse_sigmoid), ``decimals`` (rounding), ``k`` (topk), ``surrogate``/``epsilon``
            (mad), ``epochs``/``distance``/``learning_rate`` (apgp), ``eps``/``steps``/``step_size``/
            ``c``/``refine`` (apmsa).

    Returns:
        A Keras layer for ``BlackBox(victim, defense=...)`` / :func:`defended_model`, or ``None``.

    Raises:
        ValueError: an unknown name or a bad parameter (the message names it).
    """
    from tfmodelsec.defenses import output
    from tfmodelsec.defenses.apgp import train_apgp
    from tfmodelsec.defenses.apmsa import APMSA
    from tfmodelsec.defenses.mad import MAD
    from tfmodelsec.models.io import as_victim

    victim = as_victim(victim)
    key = str(name).strip().lower()
    if key == "none":
        return None
    if key == "gaussian":
        return output.GaussianNoise(**{"stddev": 0.1, "seed": seed, **params})
    if key == "reverse_sigmoid":
        return output.ReverseSigmoid(**params)
    if key == "rounding":
        return output.Rounding(**params)
    if key == "topk":
        return output.TopK(**{"k": 3, **params})
    if key == "label":
        return output.HardLabel(**params)
    if key in ("mad", "mad_argmax"):
        params.setdefault("surrogate", None)
        if params["surrogate"] is None:
            params["surrogate"] = _default_surrogate(victim, seed)
        return MAD(victim, preserve_argmax=key == "mad_argmax", **params)
    if key.startswith("apgp_"):
        variant = key[len("apgp_"):]
        if variant == "all":
            top_k = None
        elif variant.startswith("top") and variant[3:].isdigit():
            top_k = int(variant[3:])
        else:
            raise ValueError(f"`name` must be apgp_all or apgp_topK (K an integer). Received: name={name!r}")
        if x is None:
            raise ValueError(f"`x` (the owner's inputs) is needed to train {name!r}. Received: x=None")
        x = np.asarray(x, np.float32)
        if len(x) > _APGP_TRAIN_SAMPLES:
            x = x[np.random.default_rng(seed).choice(len(x), _APGP_TRAIN_SAMPLES, replace=False)]
        result = train_apgp(victim, x, top_k=top_k, seed=seed, strategy=strategy, verbose=verbose,
                            **{**_APGP_DEFAULTS, **params})
        result.layer.training_summary = result.to_dict()
        return result.layer
    if key.startswith("apmsa_"):
        method = key[len("apmsa_"):]
        if method not in _APMSA_DEFAULTS:
            raise ValueError(f"`name` must be apmsa_fgsm, apmsa_pgd or apmsa_cw. Received: name={name!r}")
        defaults = dict(_APMSA_DEFAULTS[method])
        rng = victim.input_range
        width = (rng[1] - rng[0]) if rng is not None else (
            float(np.mean(np.std(np.asarray(x, np.float32), axis=0))) if x is not None else 1.0)
        defaults["eps"] = defaults["eps"] * width
        clip = {"clip_min": None, "clip_max": None} if rng is None else {"clip_min": rng[0], "clip_max": rng[1]}
        return APMSA(victim, method=method, **{**defaults, **clip, **params})
    raise ValueError(f"`name` must be one of {list(DEFENSES)} (or apgp_topK). Received: name={name!r}")


def defense_name(defense) -> str:
    """A short name for a defense layer (``"none"`` for ``None``)."""
    if defense is None:
        return "none"
    return getattr(defense, "variant", None) and f"apgp_{defense.variant}" or type(defense).__name__


def defended_model(victim, defense):
    """A ``keras.Model``: inputs -> defended probabilities (the victim and the defense in one graph).

    Raises ``ValueError`` if ``defense`` is not a Keras layer.
    """
    import keras

    from tfmodelsec.models.io import as_victim

    victim = as_victim(victim)
    inputs = keras.Input(shape=victim.input_shape, name="inputs")
    if defense is None:
        return keras.Model(inputs, victim.probability_model(inputs), name="undefended")
    if not isinstance(defense, keras.layers.Layer):
        raise ValueError(f"`defense` must be a Keras layer or None. Received: {type(defense).__name__}")
    if getattr(defense, "operates_on", "probabilities") == "inputs":
        outputs = defense(inputs)
    else:
        outputs = defense(victim.probability_model(inputs))
    return keras.Model(inputs, outputs, name=f"defended_{defense.name}")


def save_defense(defense, path, *, num_classes: int | None = None, metadata: dict | None = None) -> Path:
    """Save a defense layer to a ``.keras`` file (as a one-layer model) with JSON metadata beside it.

    Probability defenses are stored on a ``(num_classes,)`` input; input defenses
    (APMSA, MAD) hold the victim inside and are stored on its input shape.
    """
    import keras

    from tfmodelsec.models.io import save_model

    path = Path(path)
    if path.suffix.lower() != ".keras":
        raise ValueError(f"`path` must end in .keras. Received: path={str(path)!r}")
    if getattr(defense, "operates_on", "probabilities") == "inputs":
        shape = tuple(int(d) for d in defense.victim.inputs[0].shape[1:])
    else:
        classes = num_classes or getattr(defense, "num_classes", None) or getattr(defense, "built_classes", None)
        if classes is None:
            raise ValueError("`num_classes` is needed to save a probability defense that was never called. "
                             "Received: num_classes=None")
        shape = (int(classes),)
    inputs = keras.Input(shape=shape, name="inputs")
    model = keras.Model(inputs, defense(inputs), name="defense")
    meta = {"layer": type(defense).__name__, "operates_on": getattr(defense, "operates_on", "probabilities"),
            "input_shape": list(shape), "config": _jsonable_config(defense), **(metadata or {})}
    return save_model(model, path, metadata=meta)


def _jsonable_config(layer) -> dict:
    config = layer.get_config()
    return {k: v for k, v in config.items() if k not in ("victim", "surrogate", "dtype")}


def load_defense(path, *, safe_mode: bool = True):
    """Load a defense layer written by :func:`save_defense` (safe mode: only Keras and tfmodelsec classes)."""
    from tfmodelsec.models.io import load_victim

    path = Path(path)
    loaded = load_victim(path, safe_mode=safe_mode, output_kind="probabilities")
    layer = loaded.model.layers[-1]
    meta_path = path.with_suffix(".json")
    if meta_path.is_file():
        layer.metadata = json.loads(meta_path.read_text())
    return layer
