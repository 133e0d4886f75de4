"""Scaling out: ``tf.distribute`` strategies by name, and work split into parts.

Every training loop in tfmodelsec takes ``strategy=None`` (the current default
strategy) or any ``tf.distribute.Strategy``; :func:`make_strategy` maps the names the
command line accepts to strategies.

Embarrassingly parallel work (LiRA shadow models, SISA shards, blocks of the DRMI
mutual-information matrix) is also split across processes or machines: part ``i`` of
``n`` (``--part i/n``) owns the contiguous index range :func:`part_range` gives, and
every item is seeded by its own index, never by the part, so a merge of the ``n``
parts equals the unsplit run. Part files are named ``STEM.part-I-of-N.EXT``
(:func:`part_filename`); :func:`check_coverage` refuses a merge with an item missing
or given twice.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from tfmodelsec.utils import check_choice

__all__ = ["STRATEGIES", "make_strategy", "parse_part", "part_range", "part_filename", "part_of_filename",
           "check_coverage"]

STRATEGIES = ("default", "mirrored", "multiworker")


def make_strategy(name: str = "default"):
    """``"default"`` -> the current default strategy; ``"mirrored"`` -> all local GPUs (or
    the CPU); ``"multiworker"`` -> ``MultiWorkerMirroredStrategy`` configured by ``TF_CONFIG``."""
    import tensorflow as tf

    name = check_choice("strategy", name, STRATEGIES)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError(
            "`strategy='multiworker'` needs TF_CONFIG (a JSON cluster spec with 'cluster' and 'task', "
            "as TensorFlow documents). Received: TF_CONFIG unset"
        )
    try:
        config = json.loads(raw)
        config["cluster"]["worker"], config["task"]["index"]
    except (ValueError, KeyError, TypeError):
        raise ValueError("TF_CONFIG must be JSON with cluster.worker and task.index. "
                         f"Received: {raw[:200]!r}") from None
    return tf.distribute.MultiWorkerMirroredStrategy()


def parse_part(text: str | None) -> tuple[int, int]:
    """Parse ``--part i/n`` (1-based ``i``) into ``(i, n)``; ``None`` is ``(1, 1)``."""
    if text is None:
        return 1, 1
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ValueError(f"`part` must look like i/n, e.g. 2/4. Received: part={text!r}") from None
    if not (n >= 1 and 1 <= i <= n):
        raise ValueError(f"`part` must satisfy 1 <= i <= n. Received: part={text!r}")
    return i, n


def part_range(total: int, part: tuple[int, int] | None) -> range:
    """The contiguous index range of ``total`` items that part ``i`` of ``n`` owns
    (``None``: all of them). Parts differ in size by at most one item."""
    i, n = (1, 1) if part is None else parse_part(f"{part[0]}/{part[1]}")
    start = (total * (i - 1)) // n
    stop = (total * i) // n
    return range(start, stop)


_PART_SUFFIX = re.compile(r"\.part-(\d+)-of-(\d+)(\.[^.]+)$")


def part_filename(stem: str, part: tuple[int, int], ext: str) -> str:
    """``"lira_shadows", (2, 4), ".npz"`` -> ``"lira_shadows.part-2-of-4.npz"``."""
    return f"{stem}.part-{part[0]}-of-{part[1]}{ext}"


def part_of_filename(name: str) -> tuple[str, tuple[int, int]] | None:
    """The stem and ``(i, n)`` of a part file name, or ``None`` for other names."""
    m = _PART_SUFFIX.search(name)
    if m is None:
        return None
    return name[: m.start()], (int(m.group(1)), int(m.group(2)))


def _spans(ids) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"`` (the first ten spans)."""
    ids = np.asarray(sorted(ids), np.int64)
    breaks = np.flatnonzero(np.diff(ids) != 1) + 1
    runs = [f"{r[0]}-{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in np.split(ids, breaks)]
    return ", ".join(runs[:10]) + (f" and {len(runs) - 10} more spans" if len(runs) > 10 else "")


def check_coverage(pieces, total: int, *, what: str) -> np.ndarray:
    """Check that the id lists ``pieces`` cover ``0 .. total-1`` exactly once.

    Returns the order (by id) of the pieces' items when concatenated; raises
    ``ValueError`` naming the ids missing or repeated (a part not run, or run twice).
    """
    ids = np.concatenate([np.asarray(p, np.int64).ravel() for p in pieces]) if pieces else np.zeros(0, np.int64)
    if len(ids) and (ids.min() < 0 or ids.max() >= total):
        raise ValueError(f"cannot merge: {what} ids must lie in [0, {total}). Received ids up to {ids.max()}")
    counts = np.bincount(ids, minlength=total)
    if (counts > 1).any():
        raise ValueError(f"cannot merge: {what} {_spans(np.flatnonzero(counts > 1))} of {total} appear in more "
                         "than one part (was a part given twice?)")
    if (counts == 0).any():
        raise ValueError(f"cannot merge: {what} {_spans(np.flatnonzero(counts == 0))} of {total} are missing "
                         "(run the remaining --part i/n first)")
    return np.argsort(ids, kind="stable")
