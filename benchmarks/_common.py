"""Shared set-up for benchmark scripts: offline Keras cache, result writing."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SAVED = ROOT / "saved_models"


def setup_keras_home() -> None:
    """Point KERAS_HOME at a writable copy of ../shared/data/keras unless already set (before keras import)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MPLBACKEND", "Agg")
    home = os.environ.get("KERAS_HOME")
    if home and os.access(home, os.W_OK):
        return
    shared = ROOT.parent / "shared" / "data" / "keras"
    tmp = Path(tempfile.mkdtemp(prefix="tfms-bench-keras-"))
    if shared.is_dir():
        shutil.copytree(shared, tmp, dirs_exist_ok=True)
    os.environ["KERAS_HOME"] = str(tmp)


def command_line() -> str:
    return " ".join(["python", *sys.argv])


def write_result(name: str, payload: dict, markdown: str | None = None) -> Path:
    """Write benchmarks/results/NAME.json (+ .md) with the machine and command added."""
    from tfmodelsec.utils import machine_info, write_json

    payload = {"benchmark": name, "command": command_line(), "machine": machine_info(), **payload}
    path = write_json(RESULTS / f"{name}.json", payload)
    if markdown is not None:
        (RESULTS / f"{name}.md").write_text(markdown)
    return path
