"""The store: every kind registered once, one key function, one reader for any registered kind."""

from __future__ import annotations

import dataclasses
import json
import os

from atlas import judgment, matches, record, store
from atlas.atomic import atomic_write
from atlas.kind import Kind, content_key
from atlas.typed_json import FileInfo, InvalidRecord, as_data, load


def test_every_kind_has_its_own_folder_and_its_owners_value_type():
    assert set(store.KINDS) == {"render", "concepts", "examples", "similar", "example part", "judgment", "matches"}
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


def _judgment(picture: str) -> judgment.Judgment:
    key = judgment.judgment_key(picture, "judge", "w" * 64, crops=2, seed=0, scales={"whole": (1.0, 1.0)})
    return judgment.Judgment(key, picture, "generator", "judge", "w" * 64, 3, 2, 0,
                             {"whole": judgment.ScaleRates(0.5, 1.0, 0.25)}, per_picture_boxes=True)


def test_keyed_file_kinds_keep_the_keys_and_documents_they_had_before_the_store():
    value = _judgment("p" * 64)
    material = {"picture": "p" * 64, "judge": "judge", "judge_weights_sha256": "w" * 64, "crops": 2, "seed": 0,
                "scales": {"whole": [1.0, 1.0]}, "boxes": "per picture"}
    assert value.key == content_key({"format": 1, **material})
    side = matches.Side("a", "w", (("l", 4),))
    assert matches.key_of(side, side, "list", {}) == content_key(
        {"kind": "matches", "format": 1, "models": [["a", "w", [["l", 4]]]] * 2, "images": "list", "settings": {}})
    written = {"format": 1, "kind": "judgment", "key": value.key, "picture": "p" * 64, "generator": "generator",
               "judge": "judge", "judge_weights_sha256": "w" * 64, "target": 3, "crops": 2, "seed": 0,
               "scales": {"whole": {"top1_rate": 0.5, "top5_rate": 1, "prob": None}}}
    # a null prob, an integer rate, and no per_picture_boxes: judged on boxes shared by every picture
    older = judgment.KIND.loads(json.dumps(written).encode(), value.key)
    assert older == judgment.Judgment(**{**dataclasses.asdict(value), "per_picture_boxes": None, "scales": {
        "whole": judgment.ScaleRates(0.5, 1, None)}})
    assert judgment.KIND.loads(judgment.KIND.dumps(value), value.key) == value


def test_a_hostile_judgment_is_reported_and_skipped_never_trusted(tmp_path):
    good = _judgment("a" * 64)
    atomic_write(store.file_path(tmp_path, "judgment", good.key), judgment.KIND.dumps(good))
    data = json.loads(judgment.KIND.dumps(good))
    hostile = {
        "NaN is not a finite number": judgment.KIND.dumps(good).replace(b"0.25", b"NaN"),
        "is not a rate from 0 to 1": json.dumps({**data, "scales": {"whole": {"top1_rate": 2, "top5_rate": 1}}}),
        "unknown fields ['path']": json.dumps({**data, "path": "/etc/passwd"}),
        "not a judgment document": json.dumps({**data, "format": 2}),
        "names another key": json.dumps(data),  # a copy under another key
        "not valid JSON": "{",
    }
    for n, (why, text) in enumerate(hostile.items()):
        key = f"{n:02d}" + "0" * 62
        raw = text if isinstance(text, bytes) else text.encode()
        if why != "names another key":
            raw = raw.replace(good.key.encode(), key.encode())
        path = store.file_path(tmp_path, "judgment", key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
    linked = store.file_path(tmp_path, "judgment", "ff" + "0" * 62)
    linked.parent.mkdir(parents=True)
    os.symlink(store.file_path(tmp_path, "judgment", good.key), linked)

    problems: list[str] = []
    assert list(store.entries(tmp_path, "judgment", problems)) == [good]
    assert len(problems) == len(hostile) and all("\n" not in p for p in problems)  # the link is no entry
    for why in hostile:
        assert sum(why in p for p in problems) == 1, (why, problems)
    assert store.read(tmp_path, "judgment", good.key) == good
    assert store.read(tmp_path, "judgment", "00" + "0" * 62) is None  # judged again
    assert store.read(tmp_path, "judgment", "ff" + "0" * 62) is None  # a link is never followed
