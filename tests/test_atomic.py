"""Temporary names: the one parser that the cache's sweep and the site's sweep share."""

from __future__ import annotations

import os
from pathlib import Path

from atlas import atomic


def test_temporaries_are_named_by_their_owner_and_recognised_by_the_one_parser(tmp_path):
    made = atomic.temp_path(tmp_path / "record.json").name
    assert atomic.is_temporary(made) and atomic.temporary_owner(made) == (atomic._host(), os.getpid())
    assert atomic.is_temporary(".thumb.webp.0123456789ab.tmp")  # an older writer's name: no owner
    assert atomic.temporary_owner(".thumb.webp.0123456789ab.tmp") is None
    for name in ("record.json", ".hidden", "x.tmp", ".record.json.tmp", ".a.host.12.xyz.tmp"):
        assert not atomic.is_temporary(name), name


def test_write_folder_places_a_whole_folder_and_leaves_no_temporary(tmp_path):
    folder = tmp_path / "ab" / "abcd"
    atomic.write_folder(folder, {"a.bin": b"1"}, ("doc.json", b"{}"))
    atomic.write_folder(folder, {"b.bin": b"2"}, ("doc.json", b"[]"))  # replaces, never merges
    assert sorted(p.name for p in folder.iterdir()) == ["b.bin", "doc.json"]
    assert [p.name for p in Path(tmp_path).rglob("*") if atomic.is_temporary(p.name)] == []


def test_create_writes_a_file_once_and_keeps_whatever_was_there_first(tmp_path):
    path = tmp_path / "models" / "m.json"
    assert atomic.atomic_create(path, b"first")
    assert not atomic.atomic_create(path, b"second")
    assert path.read_bytes() == b"first"
    assert [p.name for p in tmp_path.rglob("*") if atomic.is_temporary(p.name)] == []


def test_a_link_or_file_in_a_folders_place_is_replaced_and_a_links_target_kept(tmp_path):
    target = tmp_path / "users"
    target.mkdir()
    (target / "doc.json").write_bytes(b"the user's")
    linked, plain = tmp_path / "ab" / "ab01", tmp_path / "ab" / "ab02"
    linked.parent.mkdir()
    linked.symlink_to(target, target_is_directory=True)
    plain.write_bytes(b"not a folder")
    for folder in (linked, plain):
        atomic.write_folder(folder, {"a.bin": b"1"}, ("doc.json", b"{}"), within=tmp_path)
        assert folder.is_dir() and not folder.is_symlink() and (folder / "doc.json").read_bytes() == b"{}"
    assert [p.name for p in target.iterdir()] == ["doc.json"] and (target / "doc.json").read_bytes() == b"the user's"
    assert sorted(p.name for p in linked.parent.iterdir()) == ["ab01", "ab02"]  # nothing set aside is left
