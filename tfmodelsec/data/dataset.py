"""The :class:`Dataset` every command and attack takes: images ``(N, H, W, C)`` or feature vectors ``(N, D)``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

__all__ = ["Dataset"]


@dataclass(frozen=True)
class Dataset:
    """A labelled dataset: images ``(N, H, W, C)`` or feature vectors ``(N, D)``, with integer labels.

    Attributes:
        name: where it came from (a built-in name, a file path, ``"arrays"``...).
        x_train, x_test: float32 images ``(N, H, W, C)`` or feature vectors ``(N, D)``.
        y_train, y_test: int64 labels in ``[0, num_classes)``.
        num_classes: number of classes.
        value_range: ``(low, high)`` the values live in (``(0.0, 1.0)`` for the built-in image
            datasets, ``(0.0, 255.0)`` for raw 8-bit pixels), or ``None`` for unbounded values
            (e.g. standardised features).
        x_pool: optional unlabeled attacker data of the same shape (model stealing's pool).
        class_names: optional names of the classes, label ``i`` is ``class_names[i]`` (an image
            folder's class folders).
    """

    name: str
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    num_classes: int
    value_range: tuple | None = (0.0, 1.0)
    x_pool: np.ndarray | None = field(default=None, repr=False)
    class_names: tuple | None = field(default=None, repr=False)

    def __post_init__(self):
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim not in (2, 4):
                raise ValueError(f"`x_{split}` must be images (N, H, W, C) or feature vectors (N, D). "
                                 f"Received shape {x.shape}")
            if len(x) != len(y):
                raise ValueError(
                    f"`x_{split}` and `y_{split}` differ in length: {len(x)} vs {len(y)}"
                )
        if self.x_test.shape[1:] != self.x_train.shape[1:]:
            raise ValueError(f"`x_test` records must have the shape of `x_train`'s: "
                             f"{self.x_test.shape[1:]} vs {self.x_train.shape[1:]}")
        if self.x_pool is not None and self.x_pool.shape[1:] != self.x_train.shape[1:]:
            raise ValueError(f"`x_pool` records must have the shape of `x_train`'s: "
                             f"{self.x_pool.shape[1:]} vs {self.x_train.shape[1:]}")
        if self.value_range is not None:
            lo, hi = self.value_range
            if not float(lo) < float(hi):
                raise ValueError(f"`value_range` must be (low, high) with low < high, or None. "
                                 f"Received: value_range={self.value_range!r}")
        if self.class_names is not None:
            object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))
            if len(self.class_names) != self.num_classes:
                raise ValueError(f"`class_names` must name each of the {self.num_classes} classes. "
                                 f"Received {len(self.class_names)} names")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def kind(self) -> str:
        """``"images"`` for ``(N, H, W, C)`` records, ``"features"`` for ``(N, D)`` vectors."""
        return "images" if self.x_train.ndim == 4 else "features"

    @property
    def pool(self) -> np.ndarray:
        """The attacker's unlabeled data: ``x_pool`` when given, else the training inputs."""
        return self.x_train if self.x_pool is None else self.x_pool

    @classmethod
    def from_arrays(cls, x_train, y_train, x_test, y_test, *, name: str = "arrays", num_classes: int | None = None,
                    value_range="auto", x_pool=None, class_names=None) -> Dataset:
        """A dataset from NumPy arrays (images ``(N, H, W[, C])`` or feature vectors ``(N, D)``).

        Args:
            x_train, y_train, x_test, y_test: the records and their integer labels.
            name: shown in reports.
            num_classes: default ``len(class_names)`` if given, else ``max(label) + 1``.
            value_range: ``(low, high)``, ``None`` (unbounded), or ``"auto"``: ``(0, 255)`` for
                integer images (or float images of whole numbers in 0..255), ``(0, 1)`` for float
                images within [0, 1], else ``None``.
            x_pool: optional unlabeled attacker data.
            class_names: optional names of the classes in label order.

        Raises:
            ValueError: labels that are not integers in ``[0, num_classes)``, ragged shapes.

        Example:
            >>> import numpy as np
            >>> d = Dataset.from_arrays(np.zeros((4, 3)), [0, 1, 0, 1], np.ones((2, 3)), [1, 0])
            >>> d.kind, d.num_classes, d.value_range
            ('features', 2, None)
        """
        arrays = {"x_train": x_train, "x_test": x_test}
        if x_pool is not None:
            arrays["x_pool"] = x_pool
        raw = {k: np.asarray(v) for k, v in arrays.items()}
        for key, x in raw.items():
            if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or x.ndim < 2:
                raise ValueError(f"`{key}` must be a numeric array of records (N, ...). "
                                 f"Received dtype {x.dtype}, shape {x.shape}")
        if value_range == "auto":
            value_range = _auto_value_range(raw["x_train"])
        xs = {k: _as_records(v) for k, v in raw.items()}
        labels = {k: _as_labels(k, v) for k, v in (("y_train", y_train), ("y_test", y_test))}
        top = int(max(labels["y_train"].max(initial=0), labels["y_test"].max(initial=0)))
        if num_classes is None:
            num_classes = top + 1 if class_names is None else len(class_names)
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 2 or top >= num_classes:
            raise ValueError(f"`num_classes` must be an integer >= 2 above every label (largest label {top}). "
                             f"Received: num_classes={num_classes!r}")
        return cls(str(name), xs["x_train"], labels["y_train"], xs["x_test"], labels["y_test"], int(num_classes),
                   None if value_range is None else (float(value_range[0]), float(value_range[1])),
                   xs.get("x_pool"), None if class_names is None else tuple(class_names))

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> Dataset:
        """The first ``n_train`` training and ``n_test`` test records (``None`` keeps all)."""
        for name, n, total in (("n_train", n_train, len(self.x_train)),
                               ("n_test", n_test, len(self.x_test))):
            if n is not None and not (isinstance(n, (int, np.integer)) and 0 < n <= total):
                raise ValueError(f"`{name}` must be an integer in [1, {total}]. Received: {name}={n!r}")
        return replace(self, x_train=self.x_train[:n_train], y_train=self.y_train[:n_train],
                       x_test=self.x_test[:n_test], y_test=self.y_test[:n_test])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={self.x_train.shape}, "
            f"test={self.x_test.shape}, num_classes={self.num_classes}, value_range={self.value_range})"
        )


def _auto_value_range(x: np.ndarray):
    if x.ndim < 3:  # feature vectors: no range is implied
        return None
    if np.issubdtype(x.dtype, np.integer) or x.dtype == bool:
        return (0.0, 255.0) if x.dtype != bool else (0.0, 1.0)
    if x.size and float(x.min()) >= 0.0 and float(x.max()) <= 1.0:
        return (0.0, 1.0)
    if x.size and float(x.min()) >= 0.0 and float(x.max()) <= 255.0 and np.all(x == np.round(x)):
        return (0.0, 255.0)  # 8-bit pixels stored as floats (x.astype("float32"))
    return None


def _as_records(x: np.ndarray) -> np.ndarray:
    """float32 records: ``(N, H, W)`` gray images gain a channel axis; ``(N, D)`` stays."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim not in (2, 4):
        raise ValueError(f"records must be (N, D), (N, H, W) or (N, H, W, C). Received shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("records must be finite numbers (found NaN or inf)")
    return np.ascontiguousarray(x)


def _as_labels(key: str, y) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or
                           (np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y))
                            and np.all(y == np.round(y)))):
        raise ValueError(f"`{key}` must be integer class labels, one per record. "
                         f"Received dtype {y.dtype}, shape {y.shape}")
    if y.size and y.min() < 0:
        raise ValueError(f"`{key}` must be labels >= 0. Received a label {int(y.min())}")
    return y.astype(np.int64)
