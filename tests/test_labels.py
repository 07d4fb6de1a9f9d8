import pytest

from atlas.errors import AtlasError
from atlas.labels import class_table, folder_labels, numbered, read_labels


def test_labels_file_in_class_index_order(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("maple\n oak \nn01440764\n\n")
    assert read_labels(path) == ("maple", "oak", "n01440764")
    table = class_table(read_labels(path), 3, "labels")
    assert [(c.index, c.name, c.wnid) for c in table] == [(0, "maple", ""), (1, "oak", ""), (2, "n01440764",
                                                                                             "n01440764")]


@pytest.mark.parametrize("text, message", [
    ("maple\n\noak\n", "line 2 is blank"),
    ("maple\noak\nmaple\n", "'maple' is on lines 1 and 3"),
    ("", "names no class"),
    ("a\tb\n", "printable"),
])
def test_bad_labels_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "labels.txt"
    path.write_text(text)
    with pytest.raises(AtlasError, match=message) as caught:
        read_labels(path)
    assert "\n" not in str(caught.value)


def test_labels_must_match_the_head():
    with pytest.raises(AtlasError, match="names 2 classes but the model's head has 4"):
        class_table(("a", "b"), 4, "labels file x")


def test_folder_labels_follow_imagefolder_order(tmp_path):
    for name in ("zebra", "Apple", "mango", ".cache"):
        (tmp_path / name).mkdir()
    (tmp_path / "notes.txt").write_text("not a class")
    assert folder_labels(tmp_path) == ("Apple", "mango", "zebra")
    with pytest.raises(AtlasError, match="cannot list image folder"):
        folder_labels(tmp_path / "missing")


def test_numbered_classes():
    assert [c.name for c in numbered(3)] == ["class 0", "class 1", "class 2"]
