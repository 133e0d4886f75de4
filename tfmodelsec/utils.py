"""Small shared helpers: seeding, strategies, progress, validation, JSON output."""

from __future__ import annotations

import json
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

__all__ = [
    "set_seed",
    "resolve_strategy",
    "check_positive",
    "check_nonnegative",
    "check_choice",
    "check_probability",
    "write_json",
    "write_npz",
    "read_npz",
    "machine_info",
    "Timer",
    "progbar",
]


def set_seed(seed: int | None) -> None:
    """Seed Python, NumPy, TensorFlow and Keras at once (no-op for ``None``)."""
    if seed is None:
        return
    import keras

    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    keras.utils.set_random_seed(seed)


def resolve_strategy(strategy=None):
    """Return ``strategy`` or, for ``None``, the current default ``tf.distribute`` strategy."""
    import tensorflow as tf

    if strategy is None:
        return tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.Strategy):
        raise ValueError(
            "`strategy` must be a tf.distribute.Strategy or None. "
            f"Received: strategy={strategy!r}"
        )
    return strategy


def check_positive(name: str, value, *, integer: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a (finite) number > 0."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if integer:
        ok = ok and float(value).is_integer()
    if not ok or not np.isfinite(value) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ValueError(f"`{name}` must be {kind}. Received: {name}={value!r}")


def check_nonnegative(name: str, value) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite number >= 0."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not np.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be >= 0. Received: {name}={value!r}")


def check_probability(name: str, value) -> None:
    """Raise ``ValueError`` unless ``0 <= value <= 1``."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"`{name}` must be in [0, 1]. Received: {name}={value!r}")


def check_choice(name: str, value, choices: Iterable[str]) -> str:
    """Return ``value`` (an enum's ``.value`` or a string) if it is one of ``choices``."""
    choices = tuple(choices)
    raw = getattr(value, "value", value)
    if not isinstance(raw, str) or raw not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}")
    return raw


def _to_jsonable(obj: Any):
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _to_jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        value = float(obj)
        return value if np.isfinite(value) else None
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike, payload: dict) -> Path:
    """Write ``payload`` as indented JSON (NumPy scalars/arrays converted); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_to_jsonable(payload), indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def write_npz(path: str | os.PathLike, *, header: dict | None = None, compressed: bool = False,
              **arrays) -> Path:
    """Write ``arrays`` (and ``header`` as JSON) to an ``.npz`` atomically; read with :func:`read_npz`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if header is not None:
        arrays["header"] = np.asarray(json.dumps(header))
    tmp = path.with_name(path.name + ".tmp.npz")
    (np.savez_compressed if compressed else np.savez)(tmp, **arrays)
    os.replace(tmp, path)
    return path


def read_npz(path: str | os.PathLike, *, format: str, what: str) -> tuple[dict, dict]:
    """The JSON header and the arrays of a :func:`write_npz` file whose header names ``format``.

    No pickle. ``FileNotFoundError`` / ``ValueError`` say the file is not ``what``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {str(path)!r}")
    try:
        with np.load(path, allow_pickle=False) as f:
            header = json.loads(str(f["header"]))
            arrays = {k: f[k] for k in f.files if k != "header"}
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{str(path)!r} is not {what} ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != format:
        found = header.get("format") if isinstance(header, dict) else None
        raise ValueError(f"{str(path)!r} is not {what} (format {found!r})")
    return header, arrays


def machine_info() -> dict:
    """Describe the machine a measurement ran on (for benchmark results)."""
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": __import__("keras").__version__,
        "numpy": np.__version__,
        "gpus": gpus,
    }


class Timer:
    """Context manager measuring wall time in ``self.seconds``."""

    def __enter__(self):
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._start
        return False


def progbar(target: int | None, *, verbose: int = 1, unit_name: str = "step", stateful_metrics=None):
    """A ``keras.utils.Progbar`` that is silent when ``verbose == 0``.

    Values named in ``stateful_metrics`` are shown as given (e.g. an epoch's loss)
    instead of being averaged over all updates.
    """
    import keras

    return keras.utils.Progbar(target, verbose=1 if verbose else 0, unit_name=unit_name,
                               stateful_metrics=stateful_metrics)
