"""The user's own data files: ``.npz`` arrays and folders of images.

* ``PATH.npz`` holds ``x_train, y_train, x_test, y_test`` (any numeric dtype) and optionally
  ``x_pool`` (unlabeled attacker data), ``class_names`` and ``value_range``. It is read with
  ``np.load(..., allow_pickle=False)``: no code in the file can run.
* An image folder holds ``train/`` and ``test/`` (optionally ``pool/``), each with one
  sub-folder per class; or only class folders, split 80/20 (stratified, seeded). Images are
  decoded by ``keras.utils.image_dataset_from_directory`` (PNG, JPEG, BMP, GIF); Pillow reads
  only their headers first, to find the common size, the colour mode and unreadable files.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from tfmodelsec.data.dataset import Dataset

__all__ = ["IMAGE_SUFFIXES", "load_image_folder", "load_npz", "stratified_split"]

_NPZ_REQUIRED = ("x_train", "y_train", "x_test", "y_test")
#: What ``keras.utils.image_dataset_from_directory`` decodes (it skips other files).
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
# Pillow modes that hold one channel: read as grayscale (N, H, W, 1).
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
TEST_FRACTION = 0.2  # the 80/20 split when the user gives no test set
_DECODE_BATCH = 512


def stratified_split(x, y, *, seed: int, what: str, test_fraction: float = TEST_FRACTION):
    """A seeded, stratified train/test split (``x_train, x_test, y_train, y_test``).

    Raises:
        ValueError: a class with fewer than two records, or too few records to split.
    """
    from sklearn.model_selection import train_test_split

    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    if len(y) and counts.min() < 2:
        raise ValueError(f"{what}: class {classes[counts.argmin()]} has {counts.min()} record; a stratified "
                         f"{1 - test_fraction:.0%}/{test_fraction:.0%} split needs at least 2 per class "
                         "(or give a separate test set)")
    try:
        return train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    except ValueError as exc:
        raise ValueError(f"{what}: cannot split {len(y)} records of {len(classes)} classes "
                         f"{1 - test_fraction:.0%}/{test_fraction:.0%} ({exc})") from None


def _wrap(path, build):
    """Run ``build()``; a ValueError from the array checks gets the file's name in front."""
    try:
        return build()
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


# --------------------------------------------------------------------------- npz


def load_npz(path, *, value_range="auto") -> Dataset:
    """A dataset from an ``.npz`` file (see the module docstring for its keys).

    Args:
        path: the file.
        value_range: ``"auto"`` (the file's ``value_range`` key, else ``(0, 255)`` for integer
            images, ``(0, 1)`` for float images within [0, 1], else unbounded), ``(low, high)``
            or ``None``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an ``.npz`` archive, a required key missing, arrays that do not fit.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset file not found: {path} (expected a .npz file with "
                                f"{', '.join(_NPZ_REQUIRED)})")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable .npz archive ({str(exc).splitlines()[0][:160]}); expected "
                         f"np.savez(path, {', '.join(f'{k}=...' for k in _NPZ_REQUIRED)})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: holds a single .npy array; expected an .npz archive with keys "
                         f"{', '.join(_NPZ_REQUIRED)}")
    with archive:
        missing = [k for k in _NPZ_REQUIRED if k not in archive.files]
        if missing:
            raise ValueError(f"{path}: missing key(s) {', '.join(missing)}; expected {', '.join(_NPZ_REQUIRED)} "
                             f"(optional x_pool, class_names, value_range); found {sorted(archive.files) or 'none'}")
        arrays = {}
        for key in (*_NPZ_REQUIRED, "x_pool", "class_names", "value_range"):
            if key in archive.files:
                try:
                    arrays[key] = archive[key]
                except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
                    raise ValueError(f"{path}: key {key!r} cannot be read without pickle or is corrupt "
                                     f"({str(exc).splitlines()[0][:120]}); expected a numeric array") from None
    if value_range == "auto" and "value_range" in arrays:
        stored = np.asarray(arrays["value_range"], dtype=np.float64).reshape(-1)
        value_range = None if stored.size == 0 else tuple(stored)
        if value_range is not None and len(value_range) != 2:
            raise ValueError(f"{path}: key 'value_range' must hold two numbers (low, high) or none. "
                             f"Received {stored.tolist()}")
    names = arrays.get("class_names")
    return _wrap(path, lambda: Dataset.from_arrays(
        arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], name=str(path),
        value_range=value_range, x_pool=arrays.get("x_pool"),
        class_names=None if names is None else [str(n) for n in np.asarray(names).reshape(-1)]))


# --------------------------------------------------------------------------- image folders


def _class_folders(folder: Path) -> list[str]:
    names = [p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if not names:
        raise ValueError(f"{folder}: no class subfolders; expected {folder}/<class name>/<images> "
                         f"({', '.join(IMAGE_SUFFIXES)})")
    # class folders named 0, 1, ..., 10 keep their numeric order (Keras would sort them as text)
    return sorted(names, key=int) if all(n.isdigit() for n in names) else sorted(names)


def _image_files(folder: Path) -> list[Path]:
    found = []
    for root, _, files in sorted(os.walk(folder)):  # what Keras walks, in its order
        found += [Path(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_SUFFIXES)]
    return found


def _headers(files: list[Path]) -> tuple[dict, set]:
    """Sizes ``{(H, W): first file}`` and Pillow modes of ``files``, reading headers only."""
    from PIL import Image, UnidentifiedImageError

    sizes, modes = {}, set()
    for f in files:
        try:
            with Image.open(f) as im:
                width, height = im.size
                modes.add(im.mode)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise ValueError(f"{f}: unreadable image ({str(exc).splitlines()[0][:120]}); expected "
                             f"one of {', '.join(IMAGE_SUFFIXES)}") from None
        sizes.setdefault((height, width), f)
    return sizes, modes


def _decode(folder: Path, *, labels, class_names, image_size, color_mode, count: int):
    import keras
    import tensorflow as tf

    ds = keras.utils.image_dataset_from_directory(
        folder, labels=labels, label_mode="int" if labels else None, class_names=class_names,
        color_mode=color_mode, batch_size=_DECODE_BATCH, image_size=image_size, shuffle=False,
        interpolation="bilinear", verbose=False)
    xs, ys = [], []
    try:
        for batch in ds:
            if labels:
                xs.append(batch[0].numpy())
                ys.append(batch[1].numpy())
            else:
                xs.append(batch.numpy())
    except tf.errors.OpError as exc:
        raise ValueError(f"{folder}: an image could not be decoded ({exc.message.splitlines()[0][:160]}); "
                         "check the files with an image viewer") from None
    x = np.concatenate(xs) if xs else np.zeros((0, *image_size, 1 if color_mode == "grayscale" else 3), np.float32)
    if len(x) != count:
        raise ValueError(f"{folder}: Keras decoded {len(x)} images but {count} image files were found")
    return x, (np.concatenate(ys).astype(np.int64) if labels else None)


def _parse_image_size(image_size):
    if image_size is None:
        return None
    size = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in size):
        raise ValueError(f"`image_size` must be (height, width) of positive integers, an integer, or None. "
                         f"Received: image_size={image_size!r}")
    return int(size[0]), int(size[1])


def load_image_folder(path, *, image_size=None, color_mode: str = "auto", seed: int = 0) -> Dataset:
    """A dataset from a folder of class folders of images.

    Layout: ``PATH/train/<class>/*.png`` and ``PATH/test/<class>/*.png`` (the same classes), plus
    optionally ``PATH/pool/**`` (unlabeled attacker data); or ``PATH/<class>/*.png`` only, split
    80/20 (stratified, seeded). Class folders named by integers keep their numeric order
    (``0, 1, ..., 10``), others sort alphabetically; :attr:`Dataset.class_names` holds the order,
    label ``i`` is ``class_names[i]``. Records are shuffled with ``seed`` (folders list them by class).

    Args:
        path: the folder.
        image_size: ``(height, width)`` to resize every image to; ``None`` (default) keeps their
            size, which must then be the same for all.
        color_mode: ``"auto"`` (grayscale when every image is, else RGB), ``"grayscale"``, ``"rgb"``.
        seed: the shuffle and split seed.

    Returns:
        A :class:`Dataset` of float32 images ``(N, H, W, 1 or 3)`` with values 0..255
        (``value_range=(0, 255)``).

    Raises:
        FileNotFoundError: no such folder.
        ValueError: no class folders, an empty class folder, train/test class sets that differ,
            an unreadable image, images of different sizes without ``image_size``.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    if color_mode not in ("auto", "grayscale", "rgb"):
        raise ValueError(f"`color_mode` must be 'auto', 'grayscale' or 'rgb'. Received: color_mode={color_mode!r}")
    size = _parse_image_size(image_size)
    split = (root / "train").is_dir() or (root / "test").is_dir()
    parts = {"train": root / "train", "test": root / "test"} if split else {"all": root}
    for name in ("train", "test"):
        if split and not parts[name].is_dir():
            raise ValueError(f"{root}: has {'train' if name == 'test' else 'test'}/ but no {name}/ folder; "
                             f"expected {root}/train/<class>/ and {root}/test/<class>/")
    classes = {k: _class_folders(p) for k, p in parts.items()}
    if split and set(classes["train"]) != set(classes["test"]):
        only_train = sorted(set(classes["train"]) - set(classes["test"]))
        only_test = sorted(set(classes["test"]) - set(classes["train"]))
        raise ValueError(f"{root}: train/ and test/ hold different classes (only in train/: {only_train or '-'}; "
                         f"only in test/: {only_test or '-'}); expected the same class folders in both")
    class_names = classes["train" if split else "all"]
    if len(class_names) < 2:
        raise ValueError(f"{root}: found one class folder ({class_names[0]!r}); expected at least 2 classes")
    files, sizes, modes = {}, {}, set()
    for key, folder in parts.items():
        files[key] = []
        for c in class_names:
            found = _image_files(folder / c)
            if not found:
                raise ValueError(f"{folder / c}: empty class folder; expected images "
                                 f"({', '.join(IMAGE_SUFFIXES)})")
            files[key] += found
    if split and (root / "pool").is_dir():
        files["pool"] = _image_files(root / "pool")
        if not files["pool"]:
            raise ValueError(f"{root / 'pool'}: empty folder; expected unlabeled images ({', '.join(IMAGE_SUFFIXES)})")
    for key in files:
        found_sizes, found_modes = _headers(files[key])
        modes |= found_modes
        for s, f in found_sizes.items():
            sizes.setdefault(s, f)
    if size is None:
        if len(sizes) > 1:
            (s1, f1), (s2, f2) = list(sizes.items())[:2]
            raise ValueError(f"{root}: images differ in size ({f1} is {s1[0]}x{s1[1]}, {f2} is {s2[0]}x{s2[1]}); "
                             "pass image_size=(H, W) (CLI: --image-size H,W) to resize them all")
        size = next(iter(sizes))
    if color_mode == "auto":
        color_mode = "grayscale" if modes <= _GRAY_MODES else "rgb"
    decoded = {}
    for key in files:
        folder = root / key if split else root
        labelled = key != "pool"
        decoded[key] = _decode(folder, labels="inferred" if labelled else None,
                               class_names=class_names if labelled else None,
                               image_size=size, color_mode=color_mode, count=len(files[key]))
    if split:
        (x_train, y_train), (x_test, y_test) = decoded["train"], decoded["test"]
    else:
        x_train, x_test, y_train, y_test = stratified_split(*decoded["all"], seed=seed, what=str(root))
    rng = np.random.default_rng(seed)
    train_order, test_order = rng.permutation(len(x_train)), rng.permutation(len(x_test))
    pool = decoded["pool"][0] if "pool" in decoded else None
    return _wrap(root, lambda: Dataset.from_arrays(
        x_train[train_order], y_train[train_order], x_test[test_order], y_test[test_order], name=str(path),
        num_classes=len(class_names), value_range=(0.0, 255.0), x_pool=pool, class_names=class_names))
