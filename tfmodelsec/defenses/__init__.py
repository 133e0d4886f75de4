"""Defenses: Keras layers put between a victim and the outside world.

A defense is a Keras layer. Output defenses map the victim's probabilities to
probabilities (``operates_on = "probabilities"``); APMSA and MAD wrap the victim and
map inputs to probabilities (``operates_on = "inputs"``). Either kind plugs into
``BlackBox(victim, defense=layer)`` and into an exported graph.

Registry (what the CLI and the TF-Serving export call)::

    from tfmodelsec.defenses import make_defense, defended_model, save_defense, load_defense

    layer = make_defense("apgp_top1", victim, x=data.x_train, seed=0)  # trains APGP
    model = defended_model(victim, layer)       # keras.Model: inputs -> defended probabilities
    save_defense(layer, "out/defense.keras")    # + out/defense.json (name, params, metrics)
    layer = load_defense("out/defense.keras")   # safe mode: only Keras / tfmodelsec classes
    # a probability defense loaded this way is applied as layer(victim_probabilities);
    # an input defense (APMSA, MAD) already holds the victim: layer(x).

``make_defense(name, victim, *, x=None, seed=0, strategy=None, verbose=0, **params)``: ``name`` in
:data:`DEFENSES` (``none`` returns ``None``; ``apgp_*`` need ``x`` to train,
under ``strategy`` if given).
``defended_model(victim, defense)``: one Keras model to export (``defense`` may be ``None``).
"""

from tfmodelsec.defenses.apgp import APGP, APGPResult, train_apgp
from tfmodelsec.defenses.apmsa import APMSA
from tfmodelsec.defenses.evaluate import DefenseReport, evaluate_defenses, tsne_plot
from tfmodelsec.defenses.mad import MAD
from tfmodelsec.defenses.output import (
    GaussianNoise,
    HardLabel,
    ReverseSigmoid,
    Rounding,
    TopK,
)
from tfmodelsec.defenses.registry import (
    DEFENSES,
    defended_model,
    load_defense,
    make_defense,
    save_defense,
)

__all__ = [
    "APGP",
    "APMSA",
    "DEFENSES",
    "DefenseReport",
    "MAD",
    "APGPResult",
    "GaussianNoise",
    "HardLabel",
    "ReverseSigmoid",
    "Rounding",
    "TopK",
    "defended_model",
    "evaluate_defenses",
    "load_defense",
    "make_defense",
    "save_defense",
    "train_apgp",
    "tsne_plot",
]
