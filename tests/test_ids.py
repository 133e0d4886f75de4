"""tfmodelsec.ids: one format for --members, --non-members and --delete."""

from pathlib import Path

import numpy as np
import pytest

from tfmodelsec.ids import read_ids


@pytest.mark.parametrize("spec,expected", [
    ("12,345,6789", [12, 345, 6789]),
    (" 3 , 1 ", [3, 1]),
    ("first:3", [0, 1, 2]),
    ("10:13,40", [10, 11, 12, 40]),
    ("first:2,5:7", [0, 1, 5, 6]),
    ("[7, 2]", [7, 2]),
    ([4, 0], [4, 0]),
    (np.arange(3), [0, 1, 2]),
], ids=["inline", "spaces", "first", "range", "mixed", "json", "list", "array"])
def test_inline_and_python_specs(spec, expected):
    ids = read_ids(spec)
    assert ids.dtype == np.int64 and ids.tolist() == expected


def test_files_text_with_comments_and_json(tmp_path):
    text = tmp_path / "ids.txt"
    text.write_text("# deleted at the user's request\n12\n\n345  # second\n0:3, 7\n")
    assert read_ids(str(text)).tolist() == [12, 345, 0, 1, 2, 7]
    assert read_ids(text).tolist() == [12, 345, 0, 1, 2, 7]  # a Path is always a file
    as_json = tmp_path / "ids.json"
    as_json.write_text("[5, 6,\n 9]")
    assert read_ids(as_json, total=10).tolist() == [5, 6, 9]


def test_errors_name_the_option_the_file_and_the_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("1\n2\nx7\n")
    with pytest.raises(ValueError, match=r"--delete file '.*bad.txt', line 3: 'x7' is not an id"):
        read_ids(str(bad), name="--delete")
    with pytest.raises(FileNotFoundError, match="--members: file not found: 'missing.txt'"):
        read_ids("missing.txt", name="--members")
    with pytest.raises(FileNotFoundError, match="not found"):
        read_ids(Path("12"))  # a Path is never inline ids
    (tmp_path / "floats.json").write_text("[1, 2.5]")
    with pytest.raises(ValueError, match="JSON list of integers"):
        read_ids(tmp_path / "floats.json")
    (tmp_path / "empty.txt").write_text("# nothing yet\n")
    with pytest.raises(ValueError, match="empty"):
        read_ids(tmp_path / "empty.txt")


@pytest.mark.parametrize("spec,match", [
    ("1,1", "duplicate"),
    ("0:5,3", "duplicate"),
    ("5:5", "empty"),
    ("first:0", "empty"),
    ("1,-2", "not an id"),
    ("1;2", "not an id"),
    ("", "empty"),
    ([1.5], "integer"),
    ([-1], ">= 0"),
    ("8,10", r"in \[0, 9\]"),
], ids=["dup", "dup-range", "empty-range", "first-0", "negative", "separator", "blank", "float", "negative-list",
        "too-large"])
def test_bad_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        read_ids(spec, total=10, name="--members")


def test_membership_split_and_unlearning_read_the_same_format(digits, tmp_path):
    from tfmodelsec.attacks.membership import membership_split
    from tfmodelsec.unlearning import check_delete_ids

    ids = tmp_path / "members.txt"
    ids.write_text("0:4\n10\n")
    split = membership_split(digits, str(ids), "first:5")
    assert split.member_ids.tolist() == [0, 1, 2, 3, 10] and split.non_member_ids.tolist() == [0, 1, 2, 3, 4]
    assert check_delete_ids(str(ids), len(digits.x_train)).tolist() == [0, 1, 2, 3, 10]
    with pytest.raises(ValueError, match="delete_ids"):
        check_delete_ids("1,1", 100)
