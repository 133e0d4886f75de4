"""Shared plumbing for defenses that wrap a model (APMSA, MAD): serialisation, checks."""

from __future__ import annotations

import keras


def probability_model(model, *, name: str = "victim"):
    """The inputs -> probabilities ``keras.Model`` of a Victim / keras.Model / path.

    Raises ``ValueError`` naming ``name`` for anything else.
    """
    from tfmodelsec.models.io import Victim, as_victim

    if isinstance(model, dict):  # a serialised model (from get_config)
        model = keras.saving.deserialize_keras_object(model)
    if not isinstance(model, (Victim, keras.Model)):
        raise ValueError(f"`{name}` must be a keras.Model or a Victim. Received: {type(model).__name__}")
    return as_victim(model).probability_model


def serialize_model(model) -> dict:
    return keras.saving.serialize_keras_object(model)


def output_classes(model) -> int:
    return int(model.outputs[0].shape[-1])


def input_shape(model) -> tuple:
    return tuple(int(d) for d in model.inputs[0].shape[1:])
