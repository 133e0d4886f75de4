"""Defended export for TF Serving: a versioned SavedModel that only answers defended outputs.

``export_defended`` writes ``export_dir/<version>/`` with Keras'
:class:`keras.export.ExportArchive`: one endpoint, ``serving_default``, taking a batch of
the victim's inputs (``float32``, named ``inputs``) and returning
``{"probabilities": defended probabilities, "label": their argmax}``. The defense runs
inside the graph (output layers, APGP with its trained weights, APMSA's boundary walk in
its ``tf.while_loop``), and no other function is saved, so a client of the server never
sees the victim's raw output.

Reading an export back (:mod:`.signature`) and checking it against the in-process
defended model (:mod:`.check`) live beside this module.

Example:
    >>> path = export_defended(victim, defense, "saved_models/defended")  # doctest: +SKIP
    >>> check_export(path, victim, defense).ok  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from tfmodelsec.export.signature import ENDPOINT, INPUT_NAME, METADATA_FILE, OUTPUT_KEYS
from tfmodelsec.models.io import Victim, as_victim
from tfmodelsec.models.ranges import random_inputs

__all__ = ["check_defense", "export_defended", "serving_function"]

# Samples pushed through a defense before export to catch a class-count mismatch early.
_PROBE_ROWS = 4


def _defense_name(defense) -> str:
    return "none" if defense is None else type(defense).__name__


def serving_function(victim, defense=None):
    """The graph function behind the ``serving_default`` endpoint.

    Args:
        victim: a :class:`~tfmodelsec.models.io.Victim` (or anything :func:`as_victim` takes).
        defense: ``None`` or a defense layer (see :func:`tfmodelsec.oracle.defended_forward`).

    Returns:
        A ``tf.function`` mapping a float32 batch ``inputs`` to
        ``{"probabilities": (n, classes) float32, "label": (n,) int64}``.
    """
    import tensorflow as tf

    from tfmodelsec.oracle import defended_forward

    # defended_forward's tf.function keeps autograph on, so a defense that writes its loop
    # in Python control flow still becomes a graph loop (ExportArchive turns autograph off
    # for the outer endpoint).
    forward = defended_forward(as_victim(victim), defense)

    def serve(inputs):
        probabilities = forward(inputs)
        return {"probabilities": probabilities, "label": tf.argmax(probabilities, axis=-1)}

    return tf.function(serve, reduce_retracing=True)


def check_defense(victim: Victim, defense) -> None:
    """Raise ``ValueError`` unless ``defense`` is a layer that fits ``victim`` (and build it).

    A fitting defense answers a probe batch of the victim's inputs with probability vectors
    of the victim's class count.
    """
    import keras

    if defense is None:
        return
    if not isinstance(defense, keras.layers.Layer):
        raise ValueError(f"`defense` must be a Keras layer or None. Received: {type(defense).__name__}")
    mode = getattr(defense, "operates_on", "probabilities")
    if mode not in ("probabilities", "inputs"):
        raise ValueError(
            f"`defense.operates_on` must be 'probabilities' or 'inputs'. Received: {mode!r} "
            f"on {_defense_name(defense)}"
        )
    declared = getattr(defense, "num_classes", None)
    if isinstance(declared, (int, np.integer)) and int(declared) != victim.num_classes:
        raise ValueError(
            f"`defense` {_defense_name(defense)} was built for num_classes={int(declared)} but the "
            f"victim has {victim.num_classes} classes"
        )
    probe = random_inputs(victim.input_range, (_PROBE_ROWS, *victim.input_shape), 0)
    try:
        out = np.asarray(serving_function(victim, defense)(probe)["probabilities"])
    except Exception as exc:  # a shape clash surfaces as any of several TF/Keras errors
        msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"`defense` {_defense_name(defense)} cannot be applied to this victim "
            f"(inputs {tuple(victim.input_shape)}, {victim.num_classes} classes): {msg}"
        ) from None
    if out.shape != (_PROBE_ROWS, victim.num_classes):
        raise ValueError(
            f"`defense` {_defense_name(defense)} answers shape {out.shape[1:]} per sample but the "
            f"victim has {victim.num_classes} classes; expected ({victim.num_classes},)"
        )


def _input_spec(victim: Victim, input_signature):
    import keras
    import tensorflow as tf

    if input_signature is None:
        return tf.TensorSpec((None, *victim.input_shape), tf.float32, name=INPUT_NAME)
    spec = input_signature
    if isinstance(spec, (list, tuple)) and len(spec) == 1:
        spec = spec[0]
    if isinstance(spec, keras.InputSpec):
        shape, dtype = spec.shape, spec.dtype
    elif isinstance(spec, tf.TensorSpec):
        shape, dtype = spec.shape.as_list(), spec.dtype.name
    else:
        raise ValueError(
            "`input_signature` must be one keras.InputSpec or tf.TensorSpec (or a list holding one). "
            f"Received: {input_signature!r}"
        )
    shape = tuple(shape) if shape is not None else None
    if shape is None or len(shape) != len(victim.input_shape) + 1 or tuple(shape[1:]) != tuple(victim.input_shape):
        raise ValueError(
            f"`input_signature` must have shape (batch, {', '.join(map(str, victim.input_shape))}) to fit "
            f"the victim. Received: shape={shape}"
        )
    if str(dtype) != "float32":
        raise ValueError(f"`input_signature` must have dtype float32. Received: dtype={dtype}")
    return tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)


def _check_version(version) -> int:
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ValueError(f"`version` must be an int >= 1 (TF Serving's version folder). Received: version={version!r}")
    return int(version)


def _prepare_export_dir(export_dir, version: int, overwrite: bool) -> tuple[Path, Path]:
    if export_dir is None:
        raise ValueError("`export_dir` is required: the folder TF Serving gets (versions go below it)")
    base = Path(export_dir)
    if base.exists() and not base.is_dir():
        raise NotADirectoryError(f"`export_dir` must be a folder. Received: export_dir={str(base)!r} (a file)")
    if (base / "saved_model.pb").exists():
        raise ValueError(
            f"`export_dir` {str(base)!r} is itself a SavedModel; TF Serving expects a folder of numbered "
            "versions, so pass a folder that will hold them"
        )
    target = base / str(version)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"export {str(target)!r} already exists; pass overwrite=True (CLI: --overwrite) to replace "
            f"version {version}, or choose another version"
        )
    return base, target


def _write_metadata(version_dir: Path, victim: Victim, defense, spec) -> None:
    from tfmodelsec import __version__

    config = None
    if defense is not None:
        try:
            config = json.loads(json.dumps(defense.get_config(), default=str))
        except Exception:  # a layer without a usable get_config still exports
            config = None
    meta = {
        "tfmodelsec_version": __version__,
        "endpoint": ENDPOINT,
        "input": {"name": INPUT_NAME, "shape": [d if d is None else int(d) for d in spec.shape.as_list()],
                  "dtype": "float32"},
        "outputs": list(OUTPUT_KEYS),
        "victim": victim.describe(),
        "defense": {"class": _defense_name(defense),
                    "operates_on": getattr(defense, "operates_on", "probabilities") if defense else None,
                    "config": config},
    }
    path = version_dir / METADATA_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(meta, indent=2) + "\n")


def export_defended(victim, defense=None, export_dir=None, *, version: int = 1, input_signature=None,
                    overwrite: bool = False) -> Path:
    """Write the defended victim as a TF Serving SavedModel at ``export_dir/<version>/``.

    Args:
        victim: a :class:`~tfmodelsec.models.io.Victim`, a ``keras.Model`` or a model path.
        defense: a defense layer (probabilities -> probabilities, or with
            ``operates_on = "inputs"`` inputs -> probabilities, e.g. APMSA), or ``None``
            for an undefended export.
        export_dir: the model base folder TF Serving is pointed at.
        version: the version folder to write (TF Serving serves the highest).
        input_signature: optional ``keras.InputSpec``/``tf.TensorSpec`` (e.g. a fixed batch
            size); default ``(None, *victim.input_shape)`` float32.
        overwrite: replace ``export_dir/<version>`` if it exists. Other versions are never touched.

    Returns:
        The version folder written.

    Raises:
        ValueError: the defense does not fit the victim, a bad version or signature.
        FileExistsError: the version exists and ``overwrite`` is False.
        NotADirectoryError: ``export_dir`` is a file.
    """
    import keras

    victim = as_victim(victim)
    version = _check_version(version)
    base, target = _prepare_export_dir(export_dir, version, overwrite)
    spec = _input_spec(victim, input_signature)
    check_defense(victim, defense)

    archive = keras.export.ExportArchive()
    archive.track(victim.probability_model)
    if defense is not None:
        archive.track(defense)
    archive.add_endpoint(ENDPOINT, serving_function(victim, defense), input_signature=[spec])

    base.mkdir(parents=True, exist_ok=True)
    # Write beside the target, then swap it in: a failed export leaves any old version intact,
    # and TF Serving ignores folders whose names are not numbers.
    staging = base / f".staging-{version}-{uuid.uuid4().hex[:8]}"
    try:
        archive.write_out(str(staging), verbose=False)
        _write_metadata(staging, victim, defense, spec)
        if target.exists():
            retired = base / f".replaced-{version}-{uuid.uuid4().hex[:8]}"
            os.replace(target, retired)
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


# --------------------------------------------------------------------------- reading back
