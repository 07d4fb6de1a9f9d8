"""The content-addressed render cache: keys, crash-safe entries, validation, reading.

Layout (format 1; docs/architecture.md is the contract with the site builder; the record's
fields and their validation belong to `atlas.record`, the model metadata's to `atlas.model_record`):

    <cache>/entries/<key[:2]>/<key>/{image.png, attribution.npy, record.json}
    <cache>/models/<model>.json

Crash safety: an entry is written whole into a temporary folder beside its final one (every
file fsynced, the record last), and that folder is renamed into place; an older entry of the key
is first renamed aside.  A process killed at any moment therefore leaves the old entry, no entry,
or the new one, plus temporaries that `clean_stale` removes.  Two writers of one key (two
unsharded renders on a shared cache) each place a whole folder, so the key ends with one
writer's record and that same writer's files, never a mix.  A record that disagrees with its
files (sizes, sha256) marks the entry corrupt: the pipeline renders it again, the site skips it.
"""

from __future__ import annotations

import errno
import hashlib
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from atlas import atomic, model_record, store
from atlas.atomic import STALE_AFTER_S, atomic_create, atomic_write, remove_if_empty
from atlas.errors import AtlasError
from atlas.model_record import InvalidModelInfo, ModelInfo
from atlas.record import ATTRIBUTION, IMAGE, RECORD, Record, with_files
from atlas.record import KIND as RENDER_KIND
from atlas.safe_paths import UnsafeName, read_cache_file, read_entry_file

ENTRY_FILES = (IMAGE, ATTRIBUTION)


def encode_png(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> PNG bytes."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
    buffer = io.BytesIO()
    Image.fromarray(image, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def encode_npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def safe_name(name: str) -> str:
    """A model name usable as a file name ("hf-hub:timm/x" -> "hf-hub_timm_x")."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def entry_bytes(folder: Path, name: str, sha256: str | None) -> bytes:
    """The bytes of the entry file `folder / name`, read without following a link and equal to the sha256
    its record lists (so a file changed or swapped since the record was checked is refused); AtlasError
    naming the fix otherwise."""
    try:
        data = read_entry_file(folder, name)
    except UnsafeName as exc:
        raise AtlasError(f"cache entry {folder}: {exc}; delete the entry and re-render it") from None
    if sha256 is None or hashlib.sha256(data).hexdigest() != sha256:
        raise AtlasError(f"{Path(folder) / name} does not match the sha256 in its record: "
                         "delete the entry and re-render it")
    return data


def entry_pixels(folder: Path, sha256: str | None) -> np.ndarray:
    """An entry's picture as stored, (H, W, 3) uint8, read as `entry_bytes` does."""
    data = entry_bytes(folder, IMAGE, sha256)
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise AtlasError(f"cache entry {folder}: cannot read its picture ({exc}); "
                         "delete the entry and re-render it") from exc


@dataclass(frozen=True)
class EntryState:
    """What a key's folder holds: "missing", "ok", "failed" (a recorded failure) or "corrupt"."""

    status: str
    reason: str | None = None
    record: Record | None = None

    @property
    def done(self) -> bool:
        return self.status in ("ok", "failed")


def _write_error(exc: OSError, path: Path) -> AtlasError:
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        return AtlasError(f"disk full while writing {path}; free some space and rerun (finished entries are kept)")
    reason = exc.strerror or str(exc)
    return AtlasError(f"cannot write {path}: {reason}; check the cache folder or pick another with --cache")


class Cache:
    """A cache folder.  Constructing one does no I/O; `ensure_writable` checks the folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.entries = self.root / "entries"
        self.models = self.root / "models"

    def ensure_writable(self) -> None:
        """Write a probe file, so that a bad cache fails before rendering; leaves no new folder behind
        (entries create their folders), so a render rejected later leaves the disk as it was."""
        created = [p for p in (self.root, *self.root.parents) if not p.exists()]
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            atomic.write_temp(self.root / "probe", b"ok").unlink()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise AtlasError(
                    f"disk full: cannot write to the cache {self.root}; free some space and rerun") from exc
            raise AtlasError(f"cache folder {self.root} is not writable ({reason}); pick another with --cache") from exc
        finally:
            for folder in created:  # innermost first
                remove_if_empty(folder)

    def entry_dir(self, key: str) -> Path:
        return self.entries / key[:2] / key

    def check(self, key: str, *, verify: bool = True) -> EntryState:
        """Validate an entry: its record parses, names this key, and its files match sizes and sha256."""
        record, problem = store.inspect(self.entry_dir(key), RENDER_KIND.name, key, verify=verify)
        if record is None:
            return EntryState("corrupt", problem) if problem else EntryState("missing")
        if record.status == "failed":
            return EntryState("failed", record.failure, record)
        return EntryState("corrupt", problem) if problem else EntryState("ok", None, record)

    def write_entry(self, key: str, files: Mapping[str, bytes], record: Record) -> Record:
        """Store an entry: `files` (name -> bytes; empty for a failure) and its record, as one folder.

        On any write error the temporary folder is removed and the key's previous entry is kept;
        the error comes back as an `AtlasError`.  Returns the record as written (with "files").
        """
        folder = self.entry_dir(key)
        record = with_files(record, key, files)
        try:
            atomic.write_folder(folder, dict(files), (RECORD, RENDER_KIND.dumps(record)), within=self.root)
        except OSError as exc:
            raise _write_error(exc, folder) from exc
        return record

    def model_path(self, name: str) -> Path:
        return self.models / f"{safe_name(name)}.json"

    def write_model(self, info: ModelInfo) -> Path:
        """`models/<name>.json` of `info.name`, replaced atomically."""
        path = self.model_path(info.name)
        try:
            atomic_write(path, model_record.dumps(info), within=self.root)
        except OSError as exc:
            raise _write_error(exc, path) from exc
        return path

    def create_model(self, info: ModelInfo) -> bool:
        """`models/<name>.json` of `info.name` unless the cache has one (then False: whoever wrote it first
        keeps it)."""
        path = self.model_path(info.name)
        try:
            return atomic_create(path, model_record.dumps(info), within=self.root)
        except OSError as exc:
            raise _write_error(exc, path) from exc

    def read_model(self, name: str) -> ModelInfo | None:
        """The model's metadata; None when it is missing or unreadable (the pipeline writes it again)."""
        try:
            return model_record.loads(read_cache_file(self.root, self.model_path(name)))
        except (OSError, InvalidModelInfo, UnsafeName):
            return None

    def model_for(self, name: str, weights_sha256: str, fix: str) -> ModelInfo | None:
        """The cache's metadata of the model `name` when it is of these weights; None when the cache has
        none.  An AtlasError (ending in `fix`) when it holds `name` with other weights: replacing the
        file would hide every entry of those weights from the site."""
        existing = self.read_model(name)
        if existing is not None and existing.weights_sha256 != weights_sha256:
            raise AtlasError(f"the cache {self.root} holds {name} with other weights: {fix}")
        return existing

    def keys(self) -> Iterator[str]:
        """Keys of every folder under entries/, valid or not."""
        if not self.entries.is_dir():
            return
        for prefix in sorted(self.entries.iterdir()):
            if prefix.is_dir() and len(prefix.name) == 2:
                for folder in sorted(prefix.iterdir()):
                    if folder.is_dir() and folder.name.startswith(prefix.name) and not folder.name.startswith("."):
                        yield folder.name

    def render_records(self, *, verify: bool = False) -> Iterator[Record]:
        """The records of valid entries (ok and failed), in key order."""
        for key in self.keys():
            state = self.check(key, verify=verify)
            if state.done and state.record is not None:
                yield state.record

    def clean_stale(self, *, max_age_s: float = STALE_AFTER_S, now: float | None = None) -> int:
        """Remove the temporaries of killed writers anywhere in the cache (`atlas.atomic.clean_stale`)."""
        return atomic.clean_stale(self.root, max_age_s=max_age_s, now=now)
