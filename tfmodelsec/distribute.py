"""Choosing a ``tf.distribute`` strategy by name (for the CLI and scripts).

Every training loop in tfmodelsec takes ``strategy=None`` (the current default
strategy) or any ``tf.distribute.Strategy``; this module only maps the names the
command line accepts to strategies.
"""

from __future__ import annotations

import json
import os

from tfmodelsec.utils import check_choice

__all__ = ["STRATEGIES", "make_strategy", "parse_part", "part_range"]

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
        raise ValueError(f"TF_CONFIG must be JSON with cluster.worker and task.index. Received: {raw[:200]!r}") from None
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


def part_range(total: int, part: tuple[int, int]) -> range:
    """The contiguous index range of ``total`` items that part ``i`` of ``n`` owns."""
    i, n = part
    start = (total * (i - 1)) // n
    stop = (total * i) // n
    return range(start, stop)
