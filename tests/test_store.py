"""The store: every kind registered once, one key function, one reader for any registered kind."""

from __future__ import annotations

import dataclasses
import json
import os

from atlas import record, store
from atlas.kind import Kind, content_key
from atlas.typed_json import FileInfo, InvalidRecord, as_data, load


def test_every_kind_has_its_own_folder_and_its_owners_value_type():
    assert set(store.KINDS) == {"render", "concepts", "examples", "similar", "example part"}
    assert len({kind.folder for kind in store.KINDS.values()}) == len(store.KINDS)
    assert store.KINDS["render"] is record.KIND and store.KINDS["render"].value is record.RenderRecord


def test_one_key_function_salted_per_kind():
    material = {"b": [1, 2], "a": {"y": 1, "x": 2}}
    assert content_key(material) == content_key(dict(reversed(list(material.items()))))
    assert store.KINDS["render"].key(material) == content_key(material)  # render keys are unsalted, as before
    assert store.KINDS["concepts"].key(material) == content_key({"format": 2, **material})
    assert store.KINDS["concepts"].key(material) != content_key(material)


@dataclasses.dataclass(frozen=True)
class Score:
    key: str
    score: float
    files: dict[str, FileInfo] = dataclasses.field(default_factory=dict)


def _loads(raw: bytes, key: str | None) -> Score:
    value = load(Score, json.loads(raw), "score.json", strict=True)
    if key is not None and value.key != key:
        raise InvalidRecord("score.json names another key")
    return value


SCORE = Kind(name="score", folder="scores", value=Score, document="score.json", loads=_loads,
             dumps=lambda value: json.dumps(as_data(value)).encode(), needs=lambda value: ("picture.png",))


def _place(root, key, document, files):  # what a writer leaves: crops first, the document last
    folder = store.entry_folder(root, "score", key)
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "score.json").write_bytes(SCORE.dumps(document))
    return folder


def test_a_new_kind_is_read_and_checked_by_the_store_alone(tmp_path, monkeypatch):
    monkeypatch.setitem(store.KINDS, SCORE.name, SCORE)
    good = SCORE.key({"picture": 1})
    _place(tmp_path, good, Score(good, 0.5, {"picture.png": FileInfo.of(b"png")}), {"picture.png": b"png"})
    short = SCORE.key({"picture": 2})
    _place(tmp_path, short, Score(short, 0.5, {"picture.png": FileInfo.of(b"png")}), {"picture.png": b"pn"})
    other = SCORE.key({"picture": 3})
    _place(tmp_path, other, Score("x", 0.5), {})
    linked = SCORE.key({"picture": 4})
    folder = _place(tmp_path, linked, Score(linked, 0.5, {"picture.png": FileInfo.of(b"png")}), {})
    os.symlink(store.entry_folder(tmp_path, "score", good) / "picture.png", folder / "picture.png")
    store.entry_folder(tmp_path, "score", SCORE.key({"unfinished": 1})).mkdir(parents=True)

    problems: list[str] = []
    found = list(store.entries(tmp_path, "score", problems))
    assert found == [Score(good, 0.5, {"picture.png": FileInfo.of(b"png")})]
    assert len(problems) == 3 and all("\n" not in p for p in problems)
    assert any(short in p and "has 2 bytes" in p for p in problems)
    assert any(other in p and "names another key" in p for p in problems)
    assert any(linked in p and "symbolic link" in p for p in problems)
    value, why = store.inspect(store.entry_folder(tmp_path, "score", good), "score", good, verify=True)
    assert why is None and value.score == 0.5
