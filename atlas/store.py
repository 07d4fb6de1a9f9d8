"""The content-addressed store: the table of entry kinds, and the one reader of every kind.

Every kind is registered in `KINDS` by its owner's `Kind` (name, folder, value type, document,
JSON, the files it needs, its key), and the reader finds a kind by its name there.  A folder kind
keeps an entry in `<folder>/<key[:2]>/<key>/`; a file kind keeps a keyed value as the one file
`<folder>/<key[:2]>/<key>.json` (`file_path`), or as a file its owner names (`read_file`).  It trusts
nothing on disk: a document or file is a regular file of its own entry folder, never reached
through a link, neither the file nor any folder below the cache root (atlas.safe_paths); an entry
lies in the shard of its key; the value parses strictly and names its folder's key; every file it
needs is listed in its `files` with the size on disk (and, with `verify`, the sha256).
Torch-free, so the site reads with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from atlas import judgment, matches, record
from atlas.concepts import formats
from atlas.kind import Kind
from atlas.safe_paths import UnsafeName, entry_file, linked_folder
from atlas.typed_json import FileInfo, InvalidRecord

KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    record.KIND,
    formats.BANK_KIND,
    formats.EXAMPLES_KIND,
    formats.SIMILAR_KIND,
    formats.PART_KIND,
    judgment.KIND,
    matches.KIND,
)}


def entry_folder(root: str | Path, kind: str, key: str) -> Path:
    """Where the entry `key` of the registered kind `kind` lives."""
    return Path(root) / KINDS[kind].folder / key[:2] / key


def file_path(root: str | Path, kind: str, key: str) -> Path:
    """Where the value `key` of the registered file kind `kind` lives."""
    return Path(root) / KINDS[kind].folder / key[:2] / f"{key}.json"


def inspect(folder: Path, kind_name: str, key: str, *, verify: bool = False) -> tuple[Any, str | None]:
    """Read the entry of a registered folder kind in `folder` (`entry_folder`'s place): (value, None) when
    usable; (None, None) when it has no document yet (missing or unfinished, not a problem); (value or None,
    why) when it is not usable, a folder that is a link or lies below one included."""
    kind = KINDS[kind_name]
    name = kind.document
    assert name is not None, f"{kind.name} entries are single files"
    root = folder.parents[len(Path(kind.folder).parts) + 1]  # folder is <root>/<kind folder>/<shard>/<key>
    value, why = _load(root, folder, name, kind, key)
    if value is None:
        return None, why
    return value, files_problem(folder, name, value.files, kind.needs(value), verify=verify)


def _load(root: Path, folder: Path, name: str, kind: Kind, key: str | None) -> tuple[Any, str | None]:
    """The value of `kind` in the file `name` of `folder`, a folder of the cache `root`, read without following
    a link: (value, None); (None, None) when there is no such file; (None, why) when it is not a usable one."""
    link = linked_folder(root, folder)
    if link is not None:  # its files would be read from wherever it points
        return None, f"{link} is a symbolic link, not a folder of this cache; replace it with a real folder"
    try:
        raw = entry_file(folder, name).read_bytes()
    except UnsafeName as exc:
        absent = not (folder / name).exists() and not (folder / name).is_symlink()
        return None, None if absent else str(exc)
    except OSError as exc:
        return None, f"{name} is unreadable ({exc.strerror or exc})"
    try:
        return kind.loads(raw, key), None
    except InvalidRecord as exc:
        return None, str(exc)


def files_problem(folder: Path, document: str, files: Mapping[str, FileInfo], needed: Iterable[str], *,
                  verify: bool) -> str | None:
    """Why the files `document` needs disagree with what it lists (None when they agree): each listed,
    a regular file of `folder`, of the listed size and, when `verify`, of the listed sha256."""
    for name in dict.fromkeys(needed):  # in the kind's order, each once
        info = files.get(name)
        if info is None:
            return f"{document} does not list {name}"
        try:
            path = entry_file(folder, name)
            size = path.stat().st_size
        except (UnsafeName, OSError) as exc:
            return str(exc) if isinstance(exc, UnsafeName) else f"{name} is unreadable ({exc.strerror or exc})"
        if size != info.bytes:
            return f"{name} has {size} bytes, {document} says {info.bytes}"
        if verify and hashlib.sha256(path.read_bytes()).hexdigest() != info.sha256:
            return f"{name} does not match its sha256"
    return None


def entries(root: str | Path, kind: str, problems: list[str] | None = None, *,
            verify: bool = False) -> Iterator[Any]:
    """Every usable entry of a kind stored by key (a folder kind, or a file kind at `file_path`), in key
    order; with `problems`, one line (naming the folder or file) is added there for each entry that is not
    usable (an unfinished one is not a problem)."""
    folder_kind = KINDS[kind].document is not None
    top = Path(root) / KINDS[kind].folder
    shards = [top] if top.is_symlink() else sorted(top.glob("??"))
    for shard in shards:
        if shard.is_symlink():  # what it points to is not the cache's
            if problems is not None:
                problems.append(f"{shard}: a symbolic link, not a folder of this cache; replace it with a real folder")
            continue
        yield from _shard_entries(Path(root), shard, kind, folder_kind, problems, verify)


def _shard_entries(root: Path, shard: Path, kind: str, folder_kind: bool, problems: list[str] | None,
                   verify: bool) -> Iterator[Any]:
    for path in sorted(shard.glob("*" if folder_kind else "*.json")):
        if path.name.startswith(".") or path.is_symlink() or not path.name.startswith(shard.name):
            # a writer's temporary, a link placed in the cache, or a copy outside its key's shard (whose files
            # its readers look for in that shard, which may be a link): not an entry
            continue
        if folder_kind:
            value, why = inspect(path, kind, path.name, verify=verify)
        else:
            value, why = _load(root, path.parent, path.name, KINDS[kind], path.stem)
        if why is None and value is not None:
            yield value
        elif why is not None and problems is not None:
            problems.append(f"{path}: {why}")


def read(root: str | Path, kind: str, key: str) -> Any:
    """The value `key` of a registered file kind, or None when it is missing or not a valid one (absent:
    it is computed again)."""
    path = file_path(root, kind, key)
    return _load(Path(root), path.parent, path.name, KINDS[kind], key)[0]


def read_file(root: str | Path, path: Path, kind: str) -> Any:
    """The value of a registered file kind stored at `path` in the cache `root` (a name its owner gives), or
    None when it is missing or not a valid one (absent: it is computed again)."""
    return _load(Path(root), path.parent, path.name, KINDS[kind], None)[0]
