"""Small shared helpers: seeding, strategies, progress, validation, JSON output."""

from __future__ import annotations

import json
import os
import platform
import random
import re
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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
    "Progress",
    "keras_progress_callback",
    "keras_download_notice",
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


#: Plain (non-terminal) progress prints at most one line per this many seconds, plus the last
#: one: a line per epoch/block/restart when those take seconds, no flood when they take less.
PLAIN_PROGRESS_INTERVAL = 2.0
#: A live bar redraws at most this often (seconds).
LIVE_PROGRESS_INTERVAL = 0.1
_ANSI_OR_CONTROL = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")


def _is_live(stream) -> bool:
    """A terminal (or a notebook, which renders carriage returns) gets a live bar."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):  # closed or file-like without isatty
        return False
    return type(stream).__module__.startswith("ipykernel")  # a notebook cell's output stream


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds >= 3600:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    if seconds >= 60:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{seconds:.0f}s"


class Progress:
    """Progress of a long loop: a live bar on a terminal, plain lines anywhere else.

    On a terminal (or in a notebook) one line is redrawn in place. On a pipe or a file
    (a CI log, ``cmd > log 2>&1``) each update is a plain line of its own, without carriage
    returns or colour codes, at most one per :data:`PLAIN_PROGRESS_INTERVAL` seconds plus
    the last one. The interface is ``keras.utils.Progbar``'s: ``update(current, values)``
    and ``add(n, values)``; values named in ``stateful_metrics`` are shown as given, the
    others averaged over the updates.

    Args:
        target: number of units (epochs, blocks...), or ``None`` if unknown.
        unit_name: what one unit is, shown in each line (``"epoch"``).
        stateful_metrics: names of values shown as given instead of averaged.
        title: optional prefix naming the loop (``"apgp"``).
        stream: where to write (default: ``sys.stdout`` at each write).
        live: force the live bar on (``True``) or off (``False``); default: ``stream`` is a terminal.
    """

    def __init__(self, target: int | None, *, unit_name: str = "step", stateful_metrics=None,
                 title: str | None = None, stream=None, live: bool | None = None):
        self.target = None if target is None else int(target)
        self.unit_name = str(unit_name)
        self.stateful_metrics = set(stateful_metrics or ())
        self.title = title
        self._stream = stream
        self.live = _is_live(self.stream) if live is None else bool(live)
        self._values: dict = {}
        self._start = time.perf_counter()
        self._last_write = None
        self._seen = 0
        self._width = 0
        self._done = False

    @property
    def stream(self):
        return self._stream if self._stream is not None else sys.stdout

    def add(self, n: int, values=None) -> None:
        self.update(self._seen + n, values)

    def update(self, current: int, values=None, finalize: bool | None = None) -> None:
        """Record that ``current`` units are done; ``values`` is a list of ``(name, value)``."""
        for name, value in values or ():
            value = float(value)
            if name in self.stateful_metrics or name not in self._values:
                self._values[name] = [value, 1.0]
            else:
                step = max(current - self._seen, 1)
                total, count = self._values[name]
                self._values[name] = [total + value * step, count + step]
        self._seen = current
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        now = time.perf_counter()
        interval = LIVE_PROGRESS_INTERVAL if self.live else PLAIN_PROGRESS_INTERVAL
        if self._done or (not finalize and self._last_write is not None and now - self._last_write < interval):
            return
        self._last_write = now
        self._done = finalize
        self._write(self._line(current, now, finalize), finalize)

    def _line(self, current: int, now: float, finalize: bool) -> str:
        elapsed = now - self._start
        parts = []
        if self.title:
            parts.append(f"[{self.title}]")
        if self.target:
            digits = len(str(self.target))
            count = f"{self.unit_name} {current:{digits}d}/{self.target}"
            if self.live:
                filled = int(20 * min(current, self.target) / self.target)
                count += " " + "#" * filled + "." * (20 - filled)
            parts.append(count)
        else:
            parts.append(f"{self.unit_name} {current}")
        timing = _duration(elapsed)
        if self.target and current and not finalize:
            timing += f", ETA {_duration(elapsed / current * (self.target - current))}"
        parts.append(f"({timing})")
        for name, (total, count) in self._values.items():
            value = total / max(count, 1.0)
            parts.append(f"{name} {value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{name} {value:.3e}")
        return " ".join(parts)

    def _write(self, line: str, finalize: bool) -> None:
        stream = self.stream
        if self.live:
            pad = " " * max(0, self._width - len(line))
            self._width = len(line)
            stream.write("\r" + line + pad + ("\n" if finalize else ""))
        else:
            stream.write(_ANSI_OR_CONTROL.sub("", line) + "\n")
        stream.flush()


class _Silent:
    """What :func:`progbar` returns for ``verbose=0``: the same interface, no output."""

    target = None

    def update(self, current, values=None, finalize=None) -> None:
        pass

    def add(self, n, values=None) -> None:
        pass


def progbar(target: int | None, *, verbose: int = 1, unit_name: str = "step", stateful_metrics=None,
            title: str | None = None):
    """The progress display of every long loop in tfmodelsec (see :class:`Progress`); silent for ``verbose=0``."""
    if not verbose:
        return _Silent()
    return Progress(target, unit_name=unit_name, stateful_metrics=stateful_metrics, title=title)


def keras_progress_callback(bar):
    """A ``keras.callbacks.Callback`` that reports each finished epoch of ``fit`` to ``bar``.

    Inside tfmodelsec's loops ``fit`` runs with ``verbose=0`` and this callback, so its
    progress follows the same rule as every other loop (:class:`Progress`).
    """
    import keras

    class _EpochProgress(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs_done = 0

        def on_epoch_end(self, epoch, logs=None):
            self.epochs_done += 1
            values = [(k, float(v)) for k, v in (logs or {}).items() if np.ndim(v) == 0]
            if hasattr(bar, "stateful_metrics"):  # an epoch's loss is shown as Keras reports it
                bar.stateful_metrics.update(k for k, _ in values)
            bar.update(self.epochs_done, values)

    return _EpochProgress()


class _DownloadNotice:
    """``sys.stdout`` while Keras fetches a dataset: see :func:`keras_download_notice`."""

    def __init__(self, real):
        self.real = real
        self.held = ""
        self.started = False

    def write(self, text: str) -> int:
        if not self.started and (text.startswith("Downloading data from") if not self.held
                                 else not self.held.endswith("\n")):
            self.held += text  # printed only once bytes arrive: offline, nothing is said
            return len(text)
        if self.held and not self.started:
            self.started = True
            self.real.write(self.held if self.held.endswith("\n") else self.held + "\n")
        if self.real.isatty() or not self.started:
            self.real.write(text)  # a live bar on a terminal; anything else Keras says
        return len(text)

    def flush(self) -> None:
        self.real.flush()

    def isatty(self) -> bool:
        return self.real.isatty()

    def __getattr__(self, name):
        return getattr(self.real, name)


class keras_download_notice:
    """While Keras loads a dataset: its "Downloading data from URL" line only when a download
    really starts (none offline), and its progress bar only on a terminal (a plain
    "downloaded" line on a pipe or a file).

    Example:
        >>> with keras_download_notice():  # doctest: +SKIP
        ...     keras.datasets.mnist.load_data()
    """

    def __enter__(self):
        self._saved = sys.stdout
        self._notice = _DownloadNotice(sys.stdout)
        self._start = time.perf_counter()
        sys.stdout = self._notice
        return self

    def __exit__(self, exc_type, exc, tb):
        sys.stdout = self._saved
        if self._notice.started and exc_type is None and not self._saved.isatty():
            self._saved.write(f"downloaded in {time.perf_counter() - self._start:.0f}s\n")
            self._saved.flush()
        return False
