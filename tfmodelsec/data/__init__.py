"""Datasets: the built-in ones by name and the user's own data (``.npz``, image folders, CSV).

``Dataset`` holds images ``(N, H, W, C)`` or feature vectors ``(N, D)`` with integer labels and
the range of their values; :func:`load_dataset` reads one from a name or a path, and
:meth:`Dataset.from_arrays` builds one from NumPy arrays.
"""

from tfmodelsec.data.builtin import DATASETS, keras_cache_dir
from tfmodelsec.data.dataset import Dataset
from tfmodelsec.data.load import load_dataset

__all__ = ["Dataset", "load_dataset", "DATASETS", "keras_cache_dir"]
