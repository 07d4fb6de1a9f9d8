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


def test_folders_match_classes_by_name_or_wordnet_id(tmp_path):
    from atlas.labels import folder_classes, lookup
    from atlas.model_record import ClassInfo

    classes = (ClassInfo(0, "n01440764", "tench", ("tench",)), ClassInfo(1, "", "crane", ("crane",)),
               ClassInfo(2, "", "Crane", ("Crane",)), ClassInfo(3, "", "daisy", ("daisy",)))
    assert lookup(classes)["crane"] == (1, 2) and lookup(classes)["n01440764"] == (0,)
    for name in ("n01440764", "Daisy"):
        (tmp_path / name).mkdir()
    assert folder_classes(tmp_path, classes) == {"Daisy": 3, "n01440764": 0}
    (tmp_path / "crane").mkdir()  # two classes carry that name: the folder cannot say which
    with pytest.raises(AtlasError, match=r"1 of 3 folders \('crane'\) name no class") as caught:
        folder_classes(tmp_path, classes)
    assert "'n01440764', 'crane', 'Crane', 'daisy'" in str(caught.value) and "\n" not in str(caught.value)


def test_an_image_folder_without_class_folders_says_how_to_lay_one_out(tmp_path):
    (tmp_path / "loose.jpg").write_bytes(b"")
    with pytest.raises(AtlasError, match="has no class folder: put each class's images in a subfolder named by"):
        folder_labels(tmp_path)
