"""Atomic writes: files and whole folders appear complete or not at all.

The one owner of crash safety for the cache and the site: `atomic_write` (a file), `place_folder`
(a finished folder renamed into place), the names of temporaries (`temp_path`) and their one
parser (`temporary_owner`, `is_temporary`), and the removal of a killed writer's temporaries
(`clean_stale`).  A temporary is named ".<name>.<host>.<pid>.<8 hex>.tmp": host and pid tell a
dead writer's leftovers from a live one's, since shards on several nodes share one cache.

Given `within` (the cache), a writer refuses a path that passes through a symbolic link below that
folder (`refuse_links`): the write would land wherever the link points, outside what atlas owns.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path

from atlas.errors import AtlasError
from atlas.safe_paths import linked_folder

TMP_SUFFIX = ".tmp"
STALE_AFTER_S = 3600.0  # a temporary this old belongs to no live writer, on any host
# ".<name>.<host>.<pid>.<8 hex>.tmp"; older versions wrote ".<name>.<12 hex>.tmp" (no owner).
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?:[0-9a-f]{12}|(?P<host>[^.]+)\.(?P<pid>\d+)\.[0-9a-f]{8})\.tmp")


def temp_path(path: Path) -> Path:
    """A fresh temporary name beside `path`, owned by this host and process."""
    return path.with_name(f".{path.name}.{_host()}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}")


def is_temporary(name: str) -> bool:
    """Whether `name` is one of atlas's temporaries (the only names a sweep may delete)."""
    return _TEMPORARY.fullmatch(name) is not None


def temporary_owner(name: str) -> tuple[str, int] | None:
    """(host, pid) of the writer of the temporary `name`; None when the name does not say."""
    found = _TEMPORARY.fullmatch(name)
    if found is None or found["host"] is None:
        return None
    return found["host"], int(found["pid"])


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - some filesystems refuse directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def write_temp(path: Path, data: bytes, *, durable: bool = True) -> Path:
    """Write `data` in full to a fresh temporary beside `path` (fsynced when `durable`); return its path."""
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def refuse_links(within: Path, folder: Path) -> None:
    """Raise AtlasError when a folder below `within` on the way to `folder` (included) is a symbolic link."""
    link = linked_folder(within, folder)
    if link is not None:
        raise AtlasError(f"folder {link} is a symbolic link: atlas writes only inside {within}; "
                         "replace the link with a real folder")


def atomic_write(path: Path, data: bytes, *, durable: bool = True, within: Path | None = None) -> None:
    """Replace `path` with `data` (making its folder): readers see the old file or the new one,
    never a part.  The site passes durable=False, since it is rebuilt from the cache and
    thousands of fsyncs cost seconds.  With `within`, `refuse_links(within, path.parent)` first."""
    if within is not None:
        refuse_links(within, path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = write_temp(path, data, durable=durable)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_create(path: Path, data: bytes, *, within: Path | None = None) -> bool:
    """Write `path` whole unless it exists (then leave it and return False): of several processes creating
    it at once, one wins and the others keep what it wrote."""
    if within is not None:
        refuse_links(within, path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = write_temp(path, data)
    try:
        os.link(tmp, path)  # fails on an existing path, unlike a rename
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True


def write_folder(folder: Path, files: dict[str, bytes], last: tuple[str, bytes] | None = None, *,
                 within: Path | None = None) -> None:
    """Place `files` (and then `last`, written after them: the document that makes the folder an
    entry) as the folder `folder`, whole: written into a temporary folder beside it, fsynced, then
    renamed into place by `place_folder`.  On an error nothing new is left behind.  With `within`,
    `refuse_links(within, folder.parent)` first (a link at `folder` itself is replaced, not followed)."""
    if within is not None:
        refuse_links(within, folder.parent)
    staging = temp_path(folder)
    try:
        staging.mkdir(parents=True)
        for name, data in [*files.items(), *([last] if last else [])]:
            os.replace(write_temp(staging / name, data), staging / name)
        fsync_dir(staging)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        remove_if_empty(folder.parent)
        raise
    try:
        place_folder(staging, folder)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def place_folder(staging: Path, folder: Path) -> None:
    """Rename the complete folder `staging` to `folder`, setting any folder already there aside (or
    a link or file in its place: the link goes, never what it points to).

    A reader in between finds no folder (a write in progress), never a mixed one.  When another
    writer places its folder between our two renames, its folder is just as whole and stays.
    """
    try:
        os.rename(staging, folder)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            raise
        aside: Path | None = temp_path(folder)
        try:
            os.rename(folder, aside)
        except FileNotFoundError:  # another writer set it aside first
            aside = None
        try:
            os.rename(staging, folder)
        except OSError as again:
            if again.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            shutil.rmtree(staging, ignore_errors=True)  # the other writer's whole folder won
        if aside is not None:
            _remove(aside)
    fsync_dir(folder.parent)


def _remove(path: Path) -> None:
    """Delete what was set aside: a folder with its files, a link or file by unlinking it (rmtree refuses
    a link, and what the link points to is the user's)."""
    try:
        if path.is_symlink() or not path.is_dir():
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)
    except OSError:
        pass


def clean_stale(root: Path, *, max_age_s: float = STALE_AFTER_S, now: float | None = None) -> int:
    """Remove the temporaries under `root` (files, and folders being written or set aside) left by
    killed writers; returns how many.

    A temporary is stale when its writer ran on this host and is gone, or when it is older than
    `max_age_s` (writers on other hosts of a shared cache finish within seconds).
    """
    if not root.is_dir():
        return 0
    now = time.time() if now is None else now
    host = _host()
    removed = 0
    for folder, dirs, names in os.walk(root):
        temporaries = [n for n in names + dirs if n.startswith(".") and n.endswith(TMP_SUFFIX)]
        dirs[:] = [d for d in dirs if d not in temporaries]
        for name in temporaries:
            path = Path(folder) / name
            try:
                age = now - path.stat().st_mtime
            except OSError:
                continue
            owner = temporary_owner(name)
            mine = owner is not None and owner[0] == host
            if age > max_age_s or (mine and not _alive(owner[1])):
                try:
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        path.unlink()
                    removed += 1
                except OSError:
                    pass
    return removed


def remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _host() -> str:
    return socket.gethostname().replace(".", "_") or "host"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
