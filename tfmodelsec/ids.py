"""Record ids: one format for ``--members``, ``--non-members`` and ``--delete``, one reader.

An ids specification (``SPEC``) is either

* inline: items separated by commas, each an id (``12``), ``first:N`` (ids ``0 .. N-1``) or
  a range ``A:B`` (ids ``A .. B-1``, as Python's ``range(A, B)``), e.g. ``0:100,250,7000:7010``;
  or a JSON list of integers (``[12, 345]``);
* a file holding either a JSON list of integers, or text: items as above, one or more per line
  (commas or spaces between them), ``#`` starting a comment.

Ids index the training set (``--members``, ``--delete``) or the test set (``--non-members``).
They must be unique and, once the dataset is known, inside it.

Example:
    >>> read_ids("first:3,10:12,40").tolist()
    [0, 1, 2, 10, 11, 40]
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

__all__ = ["read_ids", "FORMAT_HELP"]

#: One line for ``--help`` texts.
FORMAT_HELP = ("ids: a file (one id per line, # comments, or a JSON list) or inline: 12,345 / first:N / "
               "A:B (A..B-1), comma-separated")

_RANGE = re.compile(r"(first|\d+):(\d+)")
# a string naming a file that is not there, rather than inline ids
_LOOKS_LIKE_PATH = re.compile(r"[/\\]|\.(txt|json|csv|ids|lst)$", re.IGNORECASE)


def _item(token: str, where: str) -> np.ndarray:
    if token.isdigit():
        return np.array([int(token)], np.int64)
    match = _RANGE.fullmatch(token)
    if match:
        start = 0 if match.group(1) == "first" else int(match.group(1))
        stop = int(match.group(2))
        if stop <= start:
            raise ValueError(f"{where}: range {token!r} is empty; expected A:B with A < B (ids A..B-1) "
                             "or first:N with N >= 1")
        return np.arange(start, stop, dtype=np.int64)
    raise ValueError(f"{where}: {token!r} is not an id; expected comma-separated non-negative integers, "
                     "first:N or A:B")


def _parse_text(text: str, where: str, *, lines: bool) -> list:
    parts = []
    for number, line in enumerate(text.splitlines() if lines else [text], start=1):
        line = line.split("#", 1)[0] if lines else line
        at = f"{where}, line {number}" if lines else where
        parts += [_item(token, at) for token in re.split(r"[\s,]+", line.strip()) if token]
    return parts


def _parse_json(text: str, where: str) -> list:
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not a JSON list of integers ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{where}: expected a JSON list of integers, e.g. [12, 345]")
    if any(v < 0 for v in values):
        raise ValueError(f"{where}: ids must be >= 0. Received {min(values)}")
    return [np.asarray(values, np.int64)]


def read_ids(spec, *, total: int | None = None, name: str = "ids") -> np.ndarray:
    """Read record ids from ``spec``: inline text, a file path, or a sequence of integers.

    Args:
        spec: see the module docstring; a ``Path`` is always a file; a list/array is taken as ids.
        total: the number of records the ids index (ids must be in ``[0, total)``); ``None``
            checks only that they are >= 0.
        name: how the caller calls them in messages (``"--members"``, ``"delete_ids"``).

    Returns:
        The ids, int64, in the order given.

    Raises:
        FileNotFoundError: ``spec`` names a file that does not exist.
        ValueError: an item that is not an id (the message names the file and line), an empty
            spec, duplicates, or ids outside ``[0, total)``.
    """
    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        text = str(spec).strip()
        if isinstance(spec, os.PathLike) or path.is_file() or _LOOKS_LIKE_PATH.search(text):
            if not path.is_file():
                raise FileNotFoundError(f"{name}: file not found: {str(spec)!r}; expected a file of ids "
                                        "(one per line, or a JSON list) or inline ids such as 12,345 or first:N")
            where = f"{name} file {str(spec)!r}"
            body = path.read_text()
            parts = _parse_json(body, where) if body.lstrip().startswith("[") else _parse_text(body, where, lines=True)
        else:
            where = f"{name} {text!r}"
            parts = _parse_json(text, where) if text.startswith("[") else _parse_text(text, where, lines=False)
        ids = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    else:
        where = name
        ids = np.asarray(spec)
        if ids.ndim != 1:
            raise ValueError(f"`{name}` must be a 1-D list of ids. Received shape {ids.shape}")
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"`{name}` must hold integer ids. Received dtype {ids.dtype}")
        ids = ids.astype(np.int64)
        if ids.size and ids.min() < 0:
            raise ValueError(f"`{name}` ids must be >= 0. Received {int(ids.min())}")
    if ids.size == 0:
        raise ValueError(f"{where}: empty; expected at least one id")
    if total is not None and ids.max() >= total:
        bad = ids[ids >= total]
        raise ValueError(f"{where}: ids must be in [0, {total - 1}]; {len(bad)} are not, e.g. {bad[:3].tolist()}")
    values, counts = np.unique(ids, return_counts=True)
    if np.any(counts > 1):
        raise ValueError(f"{where}: {int(np.sum(counts - 1))} duplicate ids, e.g. {values[counts > 1][:3].tolist()}; "
                         "each record may be named once")
    return ids
