"""Loading untrusted model files safely, and the :class:`Victim` wrapper.

Model files are untrusted input. ``load_victim`` reads the stored architecture
*before* handing the file to Keras and refuses, under safe mode, any Lambda layer
or any class Keras and tfmodelsec do not ship: no code stored in a file runs unless
the user passes ``safe_mode=False`` (``--unsafe`` on the command line). Keras' own
safe mode stays on as a second guard.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from tfmodelsec.errors import ModelLoadError, UnsafeModelError

__all__ = ["Victim", "load_victim", "as_victim", "save_model", "scan_model_config"]

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"
_OPT_IN = "pass safe_mode=False (CLI: --unsafe) only if you trust the file's author"
# Rows used to tell probabilities from logits; enough that a logit model almost
# surely shows a negative value or a row not summing to 1.
_PROBE_ROWS = 32
_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True, eq=False)
class Victim:
    """A trained classifier under audit, with what attacks need to know about it.

    Attributes:
        model: the Keras model as loaded (outputs probabilities or logits).
        input_shape: one sample's shape, e.g. ``(28, 28, 1)``.
        num_classes: number of outputs.
        output_kind: ``"probabilities"`` or ``"logits"`` (detected at load).
        input_range: ``(low, high)`` of valid input values, or ``None`` for unbounded inputs
            (e.g. standardised features). See :mod:`tfmodelsec.models.ranges` for how it is set.
        source: where it was loaded from, if anywhere.
        range_origin: where ``input_range`` came from: ``"user"`` (given), ``"model"`` (a
            ``Rescaling`` layer at the input), ``"normalization"`` (a ``Normalization`` layer:
            raw values, no bounds), ``"assumed"`` (nothing says; ``(0, 1)``) or ``"data"``
            (adopted from the dataset by :func:`~tfmodelsec.models.ranges.align_data`).
        range_note: one line saying why, e.g. which layer.
        image_shape: for a flat-input victim fed images (set by ``align_data``), the image
            shape its inputs come from; results are shown at that shape.
    """

    model: Any = field(repr=False)
    input_shape: tuple
    num_classes: int
    output_kind: str
    input_range: tuple | None = (0.0, 1.0)
    source: str | None = None
    range_origin: str = "assumed"
    range_note: str = ""
    image_shape: tuple | None = None

    def __post_init__(self):
        if self.output_kind not in ("probabilities", "logits"):
            raise ValueError(
                "`output_kind` must be 'probabilities' or 'logits'. "
                f"Received: output_kind={self.output_kind!r}"
            )
        if self.input_range is not None:
            from tfmodelsec.models.ranges import parse_input_range

            object.__setattr__(self, "input_range", parse_input_range(self.input_range))

    @cached_property
    def probability_model(self):
        """A Keras model from inputs to probabilities (softmax added for logit models)."""
        import keras

        if self.output_kind == "probabilities":
            return self.model
        inputs = keras.Input(shape=self.input_shape, name="inputs")
        outputs = keras.layers.Softmax(name="probabilities")(self.model(inputs))
        return keras.Model(inputs, outputs, name=f"{self.model.name}_probabilities")

    @cached_property
    def _forward(self):
        import tensorflow as tf

        model = self.probability_model
        return tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    @property
    def parameter_count(self) -> int:
        return int(self.model.count_params())

    def probabilities(self, x, *, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities for a batch ``x`` (NumPy in, NumPy out)."""
        x = np.asarray(x, dtype=np.float32)
        if len(x) == 0:
            return np.zeros((0, self.num_classes), np.float32)
        out = [self._forward(x[i : i + batch_size]).numpy() for i in range(0, len(x), batch_size)]
        return np.concatenate(out)

    def predict_labels(self, x, *, batch_size: int = 1024) -> np.ndarray:
        return self.probabilities(x, batch_size=batch_size).argmax(axis=1)

    def accuracy(self, x, y, *, batch_size: int = 1024) -> float:
        return float(np.mean(self.predict_labels(x, batch_size=batch_size) == np.asarray(y)))

    def check_input_shape(self, shape, *, what: str = "data") -> None:
        """Raise ``ValueError`` when ``shape`` (one sample) differs from the victim's."""
        if tuple(shape) != tuple(self.input_shape):
            raise ValueError(
                f"the victim expects inputs of shape {tuple(self.input_shape)} but {what} has "
                f"samples of shape {tuple(shape)}"
            )

    def describe(self) -> dict:
        return {
            "source": self.source,
            "name": self.model.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "output_kind": self.output_kind,
            "input_range": None if self.input_range is None else list(self.input_range),
            "input_range_source": f"{self.range_origin}: {self.range_note}" if self.range_note else self.range_origin,
            **({"image_shape": list(self.image_shape)} if self.image_shape else {}),
            "parameters": self.parameter_count,
        }


# --------------------------------------------------------------------------- scanning


def _known_keras_classes() -> set[str]:
    import keras

    names = {n for n in dir(keras.layers) if not n.startswith("_")}
    names |= {"Functional", "Sequential", "Model", "InputLayer"}
    return names


def scan_model_config(config: Any, *, where: str) -> None:
    """Raise :class:`UnsafeModelError` if a stored Keras config would run stored code.

    Refused: ``Lambda`` layers (their function is Python bytecode or a name to
    import), functions serialised as ``__lambda__``, and layer classes that neither
    Keras nor tfmodelsec ships (a ``custom_objects`` class would run its code).
    """
    known = _known_keras_classes()

    def visit(node, in_layers: bool):
        if isinstance(node, dict):
            cls = node.get("class_name")
            if cls == "__lambda__" or cls == "Lambda":
                raise UnsafeModelError(
                    f"{where}: refusing to load a model with a Lambda layer "
                    f"({node.get('config', {}).get('name', '?') if isinstance(node.get('config'), dict) else '?'}) "
                    f"under safe mode, because loading it would run code stored in the file; {_OPT_IN}"
                )
            if in_layers and isinstance(cls, str):
                registered = node.get("registered_name") or ""
                module = node.get("module") or ""
                ours = str(registered or cls).startswith("tfmodelsec>")  # .h5 keeps it in class_name
                builtin = cls in known and (not module or module.startswith("keras"))
                if not (ours or builtin):
                    raise UnsafeModelError(
                        f"{where}: refusing to load unknown custom layer {registered or cls!r} "
                        f"under safe mode (its code would have to come from outside the file); {_OPT_IN}"
                    )
            for key, value in node.items():
                visit(value, in_layers=(key == "layers"))
        elif isinstance(node, list):
            for item in node:
                visit(item, in_layers=in_layers)

    visit(config, in_layers=False)
    # a Sequential/Functional config holds its layers under config.layers; a bare
    # layer (not a model) at the top level is "not a model"
    if not (isinstance(config, dict) and config.get("class_name") in ("Functional", "Sequential", "Model")):
        if not (isinstance(config, dict) and str(config.get("registered_name") or "").startswith("tfmodelsec>")):
            raise ModelLoadError(
                f"{where}: the file holds no Keras model (top-level class "
                f"{config.get('class_name') if isinstance(config, dict) else type(config).__name__!r}); "
                "expected a Functional or Sequential model"
            )


# Packages whose import registers tfmodelsec's own serialisable layers (defenses,
# the SISA vote). Our code, so importing it is safe; done only when a file names one.
_LAYER_PACKAGES = ("tfmodelsec.defenses", "tfmodelsec.unlearning")


def _register_own_layers(config) -> None:
    if "tfmodelsec>" not in json.dumps(config):
        return
    import importlib

    for name in _LAYER_PACKAGES:
        importlib.import_module(name)


def _read_h5_config(path: Path) -> dict:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            if raw is None:
                raise ModelLoadError(
                    f"{path}: HDF5 file holds no model architecture ('model_config'); it may be a "
                    "weights-only file. Expected a full model saved with model.save('x.h5')"
                )
    except ModelLoadError:
        raise
    except Exception as exc:  # h5py raises OSError for truncated/corrupt files
        raise ModelLoadError(f"{path}: corrupt or truncated HDF5 file ({exc})") from None
    try:
        return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except ValueError as exc:
        raise ModelLoadError(f"{path}: stored model config is not valid JSON ({exc})") from None


def _read_keras_zip_config(path: Path) -> dict:
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise ModelLoadError(f"{path}: corrupt .keras archive (bad member {bad!r})")
            if "config.json" not in zf.namelist():
                raise ModelLoadError(f"{path}: .keras archive has no config.json; not a Keras model")
            return json.loads(zf.read("config.json"))
    except ModelLoadError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ModelLoadError(f"{path}: corrupt or truncated .keras file ({exc})") from None


def _zip_keras_version(path: Path) -> str:
    """The ``keras_version`` a ``.keras`` archive's metadata.json names ("" when absent)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return str(json.loads(zf.read("metadata.json")).get("keras_version", ""))
    except (KeyError, zipfile.BadZipFile, OSError, ValueError, AttributeError):
        return ""


def _strip_module_keys(node):
    if isinstance(node, dict):
        return {k: _strip_module_keys(v) for k, v in node.items() if k not in ("module", "registered_name")}
    if isinstance(node, list):
        return [_strip_module_keys(v) for v in node]
    return node


def _load_tf_keras_zip(path: Path, config: dict, safe_mode: bool):
    """A ``.keras`` archive written by tf.keras 2.13-2.15 / ``tf_keras`` (Keras 2).

    Keras 3 reads its config with the new deserializer, which refuses Keras 2 fields
    (``batch_input_shape`` on the first layer, ``axis: [1]`` in BatchNormalization...). Without
    the ``module`` keys the same config goes through Keras 3's legacy (Keras 2) deserializer, the
    one that reads tf.keras ``.h5`` files; the weights file inside uses the same layout as Keras
    3's, so ``load_weights`` reads it. Any weight that does not load is an error.
    """
    from keras.src.legacy.saving import saving_options, saving_utils
    from keras.src.saving import serialization_lib

    with saving_options.keras_option_scope(use_legacy_config=True), serialization_lib.SafeModeScope(safe_mode):
        model = saving_utils.model_from_config(_strip_module_keys(config))
    with tempfile.TemporaryDirectory(prefix="tfms-keras2-") as tmp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        weights = Path(tmp) / "model.weights.h5"
        with zipfile.ZipFile(path) as zf:
            weights.write_bytes(zf.read("model.weights.h5"))
        model.load_weights(weights)
    missed = [str(w.message) for w in caught if "could not be loaded" in str(w.message)
              or "Skipping" in str(w.message)]
    if missed:
        raise ModelLoadError(f"{path}: Keras 2 archive: some weights did not load ({missed[0].splitlines()[0][:200]})")
    return model


def _detect_format(path: Path) -> str:
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "savedmodel"
        raise ModelLoadError(
            f"{path}: directory is not a SavedModel (no saved_model.pb); expected a .h5 file, "
            "a .keras file or a SavedModel directory"
        )
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(_HDF5_MAGIC):
        return "h5"
    if head.startswith(_ZIP_MAGIC):
        return "keras"
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5", ".keras"):
        raise ModelLoadError(f"{path}: corrupt or truncated {suffix} file (bad header {head!r})")
    raise ModelLoadError(
        f"{path}: unknown model format (suffix {suffix or 'none'!r}); expected a .h5 file, "
        "a .keras file or a SavedModel directory"
    )


def _load_savedmodel(path: Path):
    import keras
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:
        raise ModelLoadError(f"{path}: could not load SavedModel ({type(exc).__name__}: {str(exc)[:200]})") from None
    signatures = getattr(loaded, "signatures", {})
    if "serving_default" not in signatures:
        raise ModelLoadError(f"{path}: SavedModel has no 'serving_default' signature")
    fn = signatures["serving_default"]
    _, kwargs = fn.structured_input_signature
    if len(kwargs) != 1:
        raise ModelLoadError(f"{path}: 'serving_default' must take one input; it takes {sorted(kwargs)}")
    spec = next(iter(kwargs.values()))
    outputs = fn.structured_outputs
    key = "probabilities" if "probabilities" in outputs else sorted(outputs)[0]
    layer = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default", name="savedmodel")
    inputs = keras.Input(shape=tuple(spec.shape[1:]), name="inputs")
    out = layer(inputs)
    out = out[key] if isinstance(out, dict) else out
    return keras.Model(inputs, out, name=path.name or "savedmodel")


def _detect_output_kind(model, input_shape, input_range) -> str:
    last = model.layers[-1] if getattr(model, "layers", None) else None
    activation = getattr(last, "activation", None)
    if getattr(activation, "__name__", "") == "softmax" or type(last).__name__ == "Softmax":
        return "probabilities"
    from tfmodelsec.models.ranges import random_inputs

    probe = random_inputs(input_range, (_PROBE_ROWS, *input_shape), 0)
    out = np.asarray(model(probe, training=False))
    if np.all(out >= 0) and np.allclose(out.sum(axis=1), 1.0, atol=_SUM_TOLERANCE):
        return "probabilities"
    return "logits"


def as_victim(model, *, output_kind: str | None = None, input_range="auto", source=None) -> Victim:
    """Wrap a ``keras.Model`` (or return a :class:`Victim` / load a path) as a Victim.

    ``input_range``: ``"auto"`` (detect it, see :func:`~tfmodelsec.models.ranges.detect_input_range`),
    ``(low, high)``, ``"LO,HI"``, or ``None`` / ``"none"`` for unbounded inputs. Given for a
    Victim, it replaces the Victim's range.
    """
    import keras

    from tfmodelsec.models.ranges import with_input_range

    if isinstance(model, Victim):
        return model if isinstance(input_range, str) and input_range == "auto" else \
            with_input_range(model, input_range)
    if isinstance(model, (str, os.PathLike)):
        return load_victim(model, input_range=input_range)
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"`victim` must be a keras.Model, a Victim or a path. Received: {type(model).__name__}"
        )
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelLoadError(
            f"{source or model.name}: expected a classifier with one input and one output; "
            f"it has {len(model.inputs)} inputs and {len(model.outputs)} outputs"
        )
    input_shape = tuple(int(d) for d in model.inputs[0].shape[1:] if d is not None)
    if len(input_shape) != len(model.inputs[0].shape) - 1:
        raise ModelLoadError(f"{source or model.name}: input shape {model.inputs[0].shape} is not fully defined")
    out_shape = model.outputs[0].shape
    if len(out_shape) != 2 or out_shape[-1] is None or out_shape[-1] < 2:
        raise ModelLoadError(
            f"{source or model.name}: expected a classifier output of shape (batch, classes >= 2); "
            f"got {tuple(out_shape)}"
        )
    victim = with_input_range(Victim(model, input_shape, int(out_shape[-1]), "probabilities", source=source),
                              input_range)
    kind = output_kind or _detect_output_kind(model, input_shape, victim.input_range)
    return replace(victim, output_kind=kind)


def load_victim(path, *, safe_mode: bool = True, input_range="auto", output_kind: str | None = None) -> Victim:
    """Load a classifier from ``.h5``, ``.keras`` or a SavedModel directory.

    Args:
        path: the model file or SavedModel directory.
        safe_mode: refuse files that would run stored code (Lambda layers, unknown
            custom layers). ``False`` is an explicit opt-in for trusted files.
        input_range: ``"auto"`` (default: a ``Rescaling`` / ``Normalization`` layer at the
            input says, else ``(0, 1)`` is assumed until data is aligned), ``(low, high)``,
            ``"LO,HI"``, or ``None`` / ``"none"`` for unbounded inputs.
        output_kind: force ``"probabilities"`` or ``"logits"`` instead of detecting it.

    Returns:
        A :class:`Victim`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeModelError: the file holds code and ``safe_mode`` is on.
        ModelLoadError: unknown format, corrupt/truncated file, not a classifier.

    Example:
        >>> victim = load_victim("saved_models/lenet5_mnist.h5")  # doctest: +SKIP
        >>> victim.input_shape, victim.num_classes
        ((28, 28, 1), 10)
    """
    import keras

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model not found: {path} (expected a .h5 file, a .keras file or a SavedModel "
                                "directory)")
    fmt = _detect_format(path)
    if fmt == "savedmodel":
        model = _load_savedmodel(path)
    else:
        config = _read_h5_config(path) if fmt == "h5" else _read_keras_zip_config(path)
        if safe_mode:
            scan_model_config(config, where=str(path))
        _register_own_layers(config)
        try:
            with warnings.catch_warnings():
                # Keras 2 files name the input shape on their first layer; Keras 3 warns the reader about it
                warnings.filterwarnings("ignore", message=".*Do not pass an `input_shape`", category=UserWarning)
                if fmt == "keras" and _zip_keras_version(path).startswith("2."):
                    model = _load_tf_keras_zip(path, config, safe_mode)
                else:
                    model = keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
        except (ModelLoadError, FileNotFoundError):
            raise
        except Exception as exc:
            msg = str(exc).splitlines()[0][:240] if str(exc) else type(exc).__name__
            if "safe_mode" in str(exc) or "arbitrary code" in str(exc):
                raise UnsafeModelError(f"{path}: Keras refused it under safe mode ({msg}); {_OPT_IN}") from None
            raise ModelLoadError(f"{path}: could not load the model ({type(exc).__name__}: {msg})") from None
    if not isinstance(model, keras.Model):
        raise ModelLoadError(f"{path}: the file holds a {type(model).__name__}, not a Keras model")
    return as_victim(model, output_kind=output_kind, input_range=input_range, source=str(path))


def save_model(model, path, *, metadata: dict | None = None, include_optimizer: bool = False) -> Path:
    """Save ``model`` (``.h5`` or ``.keras`` by suffix) and ``metadata`` as JSON beside it.

    The write is atomic (temporary file, then rename). ``.h5`` files leave the
    optimizer state out unless ``include_optimizer=True``: a victim is an inference
    artefact, and Adam's moments would triple its size.
    """
    import keras

    path = Path(path)
    if path.suffix.lower() not in (".h5", ".keras"):
        raise ValueError(f"`path` must end in .h5 or .keras. Received: path={str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    if path.suffix.lower() == ".keras":
        keras.saving.save_model(model, tmp)
    else:
        keras.saving.save_model(model, tmp, include_optimizer=include_optimizer)
    os.replace(tmp, path)
    if metadata is not None:
        from tfmodelsec.utils import write_json

        write_json(path.with_suffix(".json"), metadata)
    return path
