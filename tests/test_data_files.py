"""The user's own data: .npz files, image folders and CSV files (tiny files written here)."""

from pathlib import Path

import numpy as np
import pytest

from tfmodelsec.data import Dataset, load_dataset


def _png_folder(root: Path, classes=("0", "1", "10", "2"), per_class=(3, 2), size=(8, 8), channels=1, seed=0):
    """``root/train/<c>/i.png`` and ``root/test/<c>/i.png``; returns {(split, class): [uint8 image, ...]}."""
    import keras

    rng = np.random.default_rng(seed)
    written = {}
    for split, n in zip(("train", "test"), per_class, strict=True):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 256, (*size, channels), dtype=np.uint8)
                keras.utils.save_img(root / split / c / f"{i}.png", img, scale=False)
                written.setdefault((split, c), []).append(img)
    return written


def _write_csv(path: Path, header: str, rows) -> Path:
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return path


# --------------------------------------------------------------------------- npz


def test_npz_uint8_images_keep_0_255_and_optional_keys(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (12, 5, 5), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.arange(12) % 3, x_test=x[:4], y_test=np.array([2, 1, 0, 2]),
             x_pool=x[:7], class_names=np.array(["cat", "dog", "eel"]))
    d = load_dataset(tmp_path / "d.npz")
    assert d.kind == "images" and d.input_shape == (5, 5, 1) and d.value_range == (0.0, 255.0)
    assert np.array_equal(d.x_train[..., 0], x) and d.x_train.dtype == np.float32
    assert d.pool.shape == (7, 5, 5, 1) and d.class_names == ("cat", "dog", "eel") and d.num_classes == 3
    assert load_dataset(str(tmp_path / "d.npz"), value_range=(0, 1000)).value_range == (0.0, 1000.0)


def test_npz_features_are_unbounded_and_value_range_key_is_read(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "f.npz", x_train=rng.normal(size=(10, 6)), y_train=np.arange(10) % 2,
             x_test=rng.normal(size=(4, 6)), y_test=[0, 1, 0, 1])
    f = load_dataset(tmp_path / "f.npz")
    assert f.kind == "features" and f.value_range is None and f.x_train.shape == (10, 6)
    np.savez(tmp_path / "g.npz", x_train=np.zeros((4, 2, 2)), y_train=[0, 1, 0, 1], x_test=np.ones((2, 2, 2)),
             y_test=[0, 1], value_range=[-1.0, 1.0])
    assert load_dataset(tmp_path / "g.npz").value_range == (-1.0, 1.0)
    pixels = np.arange(64, dtype=np.float32).reshape(4, 4, 4) * 3  # 8-bit pixels saved as float32
    np.savez(tmp_path / "h.npz", x_train=pixels, y_train=[0, 1, 0, 1], x_test=pixels[:2], y_test=[0, 1])
    assert load_dataset(tmp_path / "h.npz").value_range == (0.0, 255.0)
    np.savez(tmp_path / "i.npz", x_train=pixels + 0.5, y_train=[0, 1, 0, 1], x_test=pixels[:2], y_test=[0, 1])
    assert load_dataset(tmp_path / "i.npz").value_range is None


@pytest.mark.parametrize("case, match", [
    ("missing", r"m\.npz: missing key\(s\) y_test"),
    ("pickled", r"p\.npz: key 'y_train' cannot be read without pickle"),
    ("npy", r"s\.npz: holds a single \.npy array"),
    ("garbage", r"z\.npz: not a readable \.npz archive"),
    ("labels", r"b\.npz: `y_train` must be integer class labels"),
], ids=["missing-key", "pickled-object", "npy-not-npz", "garbage", "float-labels"])
def test_npz_errors_name_the_file(tmp_path, case, match):
    x = np.zeros((4, 3))
    if case == "missing":
        np.savez(tmp_path / "m.npz", x_train=x, y_train=[0, 1, 0, 1], x_test=x)
        path = tmp_path / "m.npz"
    elif case == "pickled":
        np.savez(tmp_path / "p.npz", x_train=x, y_train=np.array([0, 1, None, 1], dtype=object), x_test=x,
                 y_test=[0, 1, 0, 1])
        path = tmp_path / "p.npz"
    elif case == "npy":
        path = tmp_path / "s.npz"
        with open(path, "wb") as f:
            np.save(f, x)
    elif case == "garbage":
        path = tmp_path / "z.npz"
        path.write_bytes(b"not a zip file at all")
    else:
        np.savez(tmp_path / "b.npz", x_train=x, y_train=[0, 0.5, 1, 0], x_test=x, y_test=[0, 1, 0, 1])
        path = tmp_path / "b.npz"
    with pytest.raises(ValueError, match=match):
        load_dataset(path)


# --------------------------------------------------------------------------- image folders


def test_image_folder_exact_pixels_numeric_class_order_and_seeded_shuffle(tmp_path):
    written = _png_folder(tmp_path / "img")
    d = load_dataset(tmp_path / "img")
    assert d.class_names == ("0", "1", "2", "10")  # numeric order, not Keras' text order
    assert d.x_train.shape == (12, 8, 8, 1) and d.x_test.shape == (8, 8, 8, 1) and d.value_range == (0.0, 255.0)
    for (split, c), images in written.items():
        x, y = (d.x_train, d.y_train) if split == "train" else (d.x_test, d.y_test)
        for img in images:  # every image once, with its folder's label, pixel for pixel
            hits = np.flatnonzero(np.all(x == img.astype(np.float32), axis=(1, 2, 3)))
            assert len(hits) == 1 and d.class_names[y[hits[0]]] == c
    assert not np.array_equal(d.y_train, np.sort(d.y_train))  # no longer listed class by class
    again, other = load_dataset(tmp_path / "img"), load_dataset(tmp_path / "img", seed=1)
    assert np.array_equal(again.x_train, d.x_train) and not np.array_equal(other.y_train, d.y_train)


def test_image_folder_rgb_mixed_formats_resized_and_pool(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(2)
    formats = {"png": "PNG", "jpg": "JPEG", "bmp": "BMP", "gif": "GIF"}
    for split in ("train", "test"):
        for c, (h, w) in (("cat", (10, 7)), ("dog", (6, 9))):
            (tmp_path / "rgb" / split / c).mkdir(parents=True)
            for ext, fmt in formats.items():
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
                    tmp_path / "rgb" / split / c / f"x.{ext}", fmt)
    (tmp_path / "rgb" / "pool").mkdir()
    Image.fromarray(rng.integers(0, 256, (5, 5), dtype=np.uint8)).save(tmp_path / "rgb" / "pool" / "p.png")
    with pytest.raises(ValueError, match=r"images differ in size .*--image-size H,W"):
        load_dataset(tmp_path / "rgb")
    d = load_dataset(tmp_path / "rgb", image_size=(4, 6))
    assert d.x_train.shape == (8, 4, 6, 3) and d.x_test.shape == (8, 4, 6, 3) and d.pool.shape == (1, 4, 6, 3)
    assert d.class_names == ("cat", "dog") and sorted(np.bincount(d.y_test)) == [4, 4]
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 255.0 and d.x_train.max() > 1.0


def test_folder_of_class_folders_is_split_stratified(tmp_path):
    written = _png_folder(tmp_path / "tmp", classes=("a", "b"), per_class=(5, 0))
    d = load_dataset(tmp_path / "tmp" / "train")
    assert len(d.x_train) == 8 and len(d.x_test) == 2 and sorted(d.y_test.tolist()) == [0, 1]
    assert sum(len(v) for v in written.values()) == 10


def _broken_folder(tmp_path, case):
    root = tmp_path / case
    if case == "no-classes":
        root.mkdir()
        (root / "stray.png").write_bytes(b"")
    elif case == "class-sets":
        _png_folder(root, classes=("a", "b"), per_class=(1, 1))
        (root / "test" / "b").rename(root / "test" / "c")
    elif case == "empty-class":
        _png_folder(root, classes=("a", "b"), per_class=(1, 1))
        for f in (root / "train" / "b").iterdir():
            f.unlink()
        (root / "train" / "b" / "notes.txt").write_text("no images here")
    elif case == "unreadable":
        _png_folder(root, classes=("a", "b"), per_class=(1, 1))
        (root / "test" / "a" / "bad.png").write_bytes(b"\x89PNG but not really")
    elif case == "no-test":
        _png_folder(root, classes=("a", "b"), per_class=(1, 1))
        for f in (root / "test").rglob("*.png"):
            f.unlink()
        for c in ("a", "b"):
            (root / "test" / c).rmdir()
        (root / "test").rmdir()
    return root


@pytest.mark.parametrize("case, error, match", [
    ("no-classes", ValueError, r"no-classes: no class subfolders"),
    ("class-sets", ValueError, r"different classes \(only in train/: \['b'\]; only in test/: \['c'\]\)"),
    ("empty-class", ValueError, r"train/b: empty class folder"),
    ("unreadable", ValueError, r"bad\.png: unreadable image"),
    ("no-test", ValueError, r"has train/ but no test/ folder"),
], ids=lambda v: v if isinstance(v, str) and "-" in v else None)
def test_image_folder_errors_name_the_folder(tmp_path, case, error, match):
    with pytest.raises(error, match=match):
        load_dataset(_broken_folder(tmp_path, case))


# --------------------------------------------------------------------------- CSV


def test_csv_split_is_stratified_seeded_and_keeps_rows(tmp_path):
    rows = [f"{i * 0.5},{-i},{i % 3}" for i in range(30)]
    path = _write_csv(tmp_path / "t.csv", "a,b,label", rows)
    d = load_dataset(path)
    assert d.kind == "features" and d.value_range is None and d.input_shape == (2,) and d.num_classes == 3
    assert (len(d.x_train), len(d.x_test)) == (24, 6) and np.bincount(d.y_test).tolist() == [2, 2, 2]
    got = sorted(map(tuple, np.column_stack([np.concatenate([d.x_train, d.x_test]),
                                             np.concatenate([d.y_train, d.y_test])]).tolist()))
    assert got == sorted((i * 0.5, -i, i % 3) for i in range(30))  # every row once, label with its features
    assert np.array_equal(load_dataset(path).x_test, d.x_test)
    assert not np.array_equal(load_dataset(path, seed=1).x_test, d.x_test)
    other = _write_csv(tmp_path / "u.csv", "target,a", [f"{i % 2},{i}" for i in range(10)])
    assert load_dataset(other, label_column="target").input_shape == (1,)


def test_csv_folder_train_test_and_pool(tmp_path):
    _write_csv(tmp_path / "train.csv", "f1,f2,label", ["1,2,0", "3,4,1", "5,6,1"])
    _write_csv(tmp_path / "test.csv", "label,f2,f1", ["1,20,10", "0,40,30"])  # columns in another order
    _write_csv(tmp_path / "pool.csv", "f2,f1", ["7,8"])
    d = load_dataset(tmp_path)
    assert d.x_train.tolist() == [[1, 2], [3, 4], [5, 6]] and d.y_train.tolist() == [0, 1, 1]
    assert d.x_test.tolist() == [[10, 20], [30, 40]] and d.y_test.tolist() == [1, 0]
    assert d.pool.tolist() == [[8, 7]]


@pytest.mark.parametrize("header, rows, match", [
    ("a,b,label", ["1,2,0", "3,1", "4,5,1"], r"r\.csv: line 3 has 2 fields, expected 3"),
    ("a,b,label", ["1,2,0", "3,4,1", "5,x7,0"], r"r\.csv: line 4, column 'b': 'x7' is not a finite number"),
    ("a,b,label", ["1,2,0", "3,nan,1"], r"line 3, column 'b': 'nan' is not a finite number"),
    ("a,b,y", ["1,2,0"], r"r\.csv: no label column 'label' \(columns: 'a', 'b', 'y'\).*--label-column"),
    ("a,b,label", ["1,2,0", "3,4,1.5"], r"line 3, label column 'label': '1.5' is not an integer class label"),
    ("a,b,label", ["1,2,cat"], r"line 2, label column 'label': 'cat' is not an integer"),
    ("a,b,label", [], r"r\.csv: no data rows after the header"),
    ("", [], r"r\.csv: empty file"),
], ids=["ragged", "non-numeric", "nan", "no-label-column", "float-label", "text-label", "header-only", "empty"])
def test_csv_errors_name_file_line_and_column(tmp_path, header, rows, match):
    path = tmp_path / "r.csv"
    path.write_text(header + ("\n" if header else "") + "".join(r + "\n" for r in rows))
    with pytest.raises(ValueError, match=match):
        load_dataset(path)


# --------------------------------------------------------------------------- dispatch


def test_paths_names_and_options_are_checked(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_dataset(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match=r"spec='svhn' \(no such file or folder\)"):
        load_dataset("svhn")
    (tmp_path / "x.txt").write_text("1,2")
    with pytest.raises(ValueError, match=r"x\.txt: unknown data file type '\.txt'"):
        load_dataset(tmp_path / "x.txt")
    _write_csv(tmp_path / "t.csv", "a,label", ["1,0", "2,1"])
    with pytest.raises(ValueError, match="image_size"):
        load_dataset(tmp_path / "t.csv", image_size=(8, 8))
    with pytest.raises(ValueError, match=r"train.csv: no label column 'label'"):
        _write_csv(tmp_path / "train.csv", "a,b", ["1,2"])
        load_dataset(tmp_path)
    assert isinstance(load_dataset("digits"), Dataset)
