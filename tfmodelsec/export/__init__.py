"""Defended export for TF Serving: a versioned SavedModel that only answers defended outputs.

- :mod:`.savedmodel`: :func:`export_defended` writes ``export_dir/<version>/`` with Keras'
  ``ExportArchive``: one endpoint, ``serving_default``, taking a batch of the victim's inputs
  (``float32``, named ``inputs``) and returning ``{"probabilities", "label"}`` of the defended model
- :mod:`.signature`: the endpoint's names, :func:`describe_signatures`, :func:`serving_example`
- :mod:`.check`: :func:`check_export` loads an export as a server would and compares its answers
  with the in-process defended model

Example:
    >>> path = export_defended(victim, defense, "saved_models/defended")  # doctest: +SKIP
    >>> check_export(path, victim, defense).ok  # doctest: +SKIP
    True
"""

from tfmodelsec.export.check import ExportCheck, check_export
from tfmodelsec.export.savedmodel import check_defense, export_defended, serving_function
from tfmodelsec.export.signature import (
    ENDPOINT,
    INPUT_NAME,
    METADATA_FILE,
    OUTPUT_KEYS,
    describe_signatures,
    resolve_version_dir,
    serving_example,
)

__all__ = [
    "ENDPOINT",
    "INPUT_NAME",
    "METADATA_FILE",
    "OUTPUT_KEYS",
    "ExportCheck",
    "check_defense",
    "check_export",
    "describe_signatures",
    "export_defended",
    "resolve_version_dir",
    "serving_example",
    "serving_function",
]
