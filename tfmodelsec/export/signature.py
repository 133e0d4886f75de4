"""What a tfmodelsec export looks like from outside: its endpoint, and how to read one back.

Shared by the writer (:mod:`.savedmodel`) and the checker (:mod:`.check`): the names of the
endpoint, its input and outputs, where the metadata lives, and the functions that find a version
folder, list its signatures as ``saved_model_cli show --all`` would, and build a TF Serving request.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfmodelsec.errors import ModelLoadError

__all__ = ["ENDPOINT", "INPUT_NAME", "METADATA_FILE", "OUTPUT_KEYS", "SUM_TOLERANCE", "describe_signatures",
           "resolve_version_dir", "serving_example"]

#: The endpoint TF Serving calls when a request names no signature.
ENDPOINT = "serving_default"
INPUT_NAME = "inputs"
OUTPUT_KEYS = ("probabilities", "label")
#: TF Serving ignores ``assets.extra`` except for warm-up files, so our metadata can live there.
METADATA_FILE = Path("assets.extra") / "tfmodelsec_export.json"
# Rows of a probability vector must sum to 1 within float32 round-off of a softmax.
SUM_TOLERANCE = 1e-3


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
        rows = zip(probs, labels, strict=True)
        response = {"predictions": [{"label": k, "probabilities": rnd(p).tolist()} for p, k in rows]}
    else:
        request = {"signature_name": ENDPOINT, "inputs": inputs}
        response = {"outputs": {"label": labels, "probabilities": rnd(probs).tolist()}}
    return request, response
