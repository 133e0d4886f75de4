"""Defended export for TF Serving: a versioned SavedModel that only answers defended outputs.

``export_defended`` writes ``export_dir/<version>/`` with Keras'
:class:`keras.export.ExportArchive`: one endpoint, ``serving_default``, taking a batch of
the victim's inputs (``float32``, named ``inputs``) and returning
``{"probabilities": defended probabilities, "label": their argmax}``. The defense runs
inside the graph (output layers, APGP with its trained weights, APMSA's boundary walk in
its ``tf.while_loop``), and no other function is saved, so a client of the server never
sees the victim's raw output.

``check_export`` loads an export the way a server does (``tf.saved_model.load``), lists
its signatures as ``saved_model_cli show --all`` would, runs a sample batch and, given the
victim and defense, compares the answers with the in-process defended model.

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

from tfmodelsec.errors import ModelLoadError
from tfmodelsec.models.io import Victim, as_victim

__all__ = ["export_defended", "serving_function", "check_defense", "resolve_version_dir",
           "describe_signatures", "serving_example", "check_export", "ExportCheck",
           "ENDPOINT", "INPUT_NAME", "OUTPUT_KEYS", "METADATA_FILE"]

#: The endpoint TF Serving calls when a request names no signature.
ENDPOINT = "serving_default"
INPUT_NAME = "inputs"
OUTPUT_KEYS = ("probabilities", "label")
#: TF Serving ignores ``assets.extra`` except for warm-up files, so our metadata can live there.
METADATA_FILE = Path("assets.extra") / "tfmodelsec_export.json"
# Samples pushed through a defense before export to catch a class-count mismatch early.
_PROBE_ROWS = 4
# Rows of a probability vector must sum to 1 within float32 round-off of a softmax.
_SUM_TOLERANCE = 1e-3


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
    lo, hi = victim.input_range
    probe = np.random.default_rng(0).uniform(lo, hi, (_PROBE_ROWS, *victim.input_shape)).astype(np.float32)
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


def resolve_version_dir(path) -> Path:
    """The SavedModel folder for ``path``: itself, or its highest numbered version."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"export not found: {path} (expected an export folder or one of its versions)")
    if (path / "saved_model.pb").is_file():
        return path
    versions = [p for p in path.iterdir() if p.is_dir() and p.name.isdigit() and (p / "saved_model.pb").is_file()]
    if not versions:
        raise ModelLoadError(
            f"{path}: no SavedModel here (no saved_model.pb) and no numbered version folder holding one"
        )
    return max(versions, key=lambda p: int(p.name))


def describe_signatures(path) -> dict:
    """Signatures as ``saved_model_cli show --dir PATH --all`` lists them, from the SavedModel proto.

    Returns:
        ``{tag_set: {signature: {"method": str, "inputs": {key: {"dtype", "shape"}}, "outputs": {...}}}}``
        with tag sets joined by ``","`` (``"serve"`` for a TF Serving export) and unknown
        dimensions as ``None``. TF's internal ``__saved_model_init_op`` is left out.
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    version_dir = resolve_version_dir(path)
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((version_dir / "saved_model.pb").read_bytes())

    def tensors(mapping):
        out = {}
        for key, info in sorted(mapping.items()):
            dims = None if info.tensor_shape.unknown_rank else [
                None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim]
            dtype = tf.dtypes.as_dtype(info.dtype).name if info.dtype else "invalid"
            out[key] = {"dtype": dtype, "shape": dims}
        return out

    result = {}
    for meta_graph in proto.meta_graphs:
        tags = ",".join(meta_graph.meta_info_def.tags)
        result[tags] = {
            name: {"method": sig.method_name, "inputs": tensors(sig.inputs), "outputs": tensors(sig.outputs)}
            for name, sig in sorted(meta_graph.signature_def.items())
            if not name.startswith("__")  # TF's own init op, not callable by a client
        }
    return result


def serving_example(path, x, *, format: str = "row", decimals: int | None = 6) -> tuple[dict, dict]:
    """A TF Serving REST request for ``x`` and the response this export gives to it.

    ``POST /v1/models/NAME:predict`` takes, in TF Serving's row format,
    ``{"signature_name": "serving_default", "instances": [...]}`` and answers
    ``{"predictions": [{"label": k, "probabilities": [...]}, ...]}``; in the columnar
    format, ``{"signature_name": ..., "inputs": [...]}`` answered by
    ``{"outputs": {"label": [...], "probabilities": [[...], ...]}}``.

    Args:
        path: an export folder or version folder.
        x: a batch of inputs.
        format: ``"row"`` (``instances``) or ``"columnar"`` (``inputs``).
        decimals: round the numbers in the returned JSON (``None``: keep all).
    """
    import tensorflow as tf

    from tfmodelsec.utils import check_choice

    format = check_choice("format", format, ("row", "columnar"))
    fn = tf.saved_model.load(str(resolve_version_dir(path))).signatures[ENDPOINT]
    x = np.asarray(x, dtype=np.float32)
    out = fn(**{INPUT_NAME: tf.constant(x)})
    probs = out["probabilities"].numpy().astype(np.float64)
    labels = [int(k) for k in out["label"].numpy()]
    rnd = (lambda a: a) if decimals is None else (lambda a: np.round(a, decimals))
    inputs = rnd(x.astype(np.float64)).tolist()
    if format == "row":
        request = {"signature_name": ENDPOINT, "instances": inputs}
        response = {"predictions": [{"label": k, "probabilities": rnd(p).tolist()} for p, k in zip(probs, labels)]}
    else:
        request = {"signature_name": ENDPOINT, "inputs": inputs}
        response = {"outputs": {"label": labels, "probabilities": rnd(probs).tolist()}}
    return request, response


from tfmodelsec._export_check import ExportCheck, check_export  # noqa: E402  (check builds on the above)
