"""Names read from a cache, and paths written into a site: the one check of each.

A cache is input that anyone may have written (a shared file system, a committed folder, a pull
request), so a file name inside a record, bank, example set or model file is data: it names a
file in its own entry folder, or the entry is corrupt. And a build writes only inside its output
folder, never through a symbolic link that a user (or an attacker) placed there.

Stdlib only, so that the record format and the site can use it without torch.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

# What any file system in use takes as one name; longer is not a name atlas wrote.
MAX_NAME = 255


class UnsafeName(ValueError):
    """A name from a cache that is not a plain file name; the message is the reason, in one line."""


def plain_name(name: str) -> str:
    """`name` unchanged when it is a plain file name (no folder part, not `.`/`..`, no NUL or control
    character); raises UnsafeName otherwise."""
    if not isinstance(name, str) or not name:
        raise UnsafeName(f"file name {name!r} is empty or not text")
    if len(name) > MAX_NAME or name in (".", "..") or any(c in name for c in "/\\") \
            or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UnsafeName(f"file name {name[:80]!r} is not a plain name in its entry folder")
    return name


def entry_file(folder: Path, name: str) -> Path:
    """`folder / name`, when `name` is a plain name and that path is a regular file, not a link;
    raises UnsafeName otherwise (a missing file too, named as such)."""
    path = Path(folder) / plain_name(name)
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        raise UnsafeName(f"{name} is missing") from None
    if stat.S_ISLNK(mode):
        raise UnsafeName(f"{name} is a symbolic link, not a file of the entry")
    if not stat.S_ISREG(mode):
        raise UnsafeName(f"{name} is not a regular file")
    return path


def read_entry_file(folder: Path, name: str) -> bytes:
    """The bytes of `folder / name`, checked as `entry_file` does and opened without following a
    link, so that a file swapped for a link after the check is refused too."""
    path = entry_file(folder, name)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise UnsafeName(f"{name} cannot be opened ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as f:
        return f.read()


def unsafe_destinations(out: Path, paths: Iterable[str]) -> dict[str, str]:
    """Of the site paths `paths` (relative, "/"-separated) under `out`, those a write must not go
    to, with why: one that leaves `out` once resolved, or whose folders or file are symbolic links
    (a write there would land wherever the link points). With no `..` and no link on the way, a
    path cannot leave `out`. Each folder is looked at once."""
    root = Path(out)
    links: dict[Path, bool] = {}

    def is_link(path: Path) -> bool:
        if path not in links:
            links[path] = path.is_symlink()
        return links[path]

    refused = {}
    for rel in paths:
        parts = rel.split("/")
        if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
            refused[rel] = f"{rel} is not a plain path inside {root}"
            continue
        link = _first_link(root, parts, is_link)
        if link is not None:
            refused[rel] = f"{link} is a symlink; atlas writes nothing through links"
    return refused


def read_cache_file(root: Path, path: Path) -> bytes:
    """The bytes of `path`, a file of the cache `root`, read as `read_entry_file` does; UnsafeName when a
    folder on the way below `root` is a link too (what it points to is not the cache's)."""
    link = linked_folder(root, Path(path).parent)
    if link is not None:
        raise UnsafeName(f"{link} is a symbolic link, not a folder of the cache")
    return read_entry_file(Path(path).parent, Path(path).name)


def linked_folder(root: Path, folder: Path) -> Path | None:
    """The first folder from below `root` down to `folder` (included) that is a symbolic link, or None.
    `root` itself is not looked at: a user may link the whole folder to a bigger disk."""
    parts = Path(folder).relative_to(root).parts
    if ".." in parts:
        raise ValueError(f"{folder} is not a plain path inside {root}")
    return _first_link(Path(root), parts, Path.is_symlink)


def _first_link(root: Path, parts: Iterable[str], is_link: Callable[[Path], bool]) -> Path | None:
    path = root
    for part in parts:
        path = path / part
        if is_link(path):
            return path
    return None
