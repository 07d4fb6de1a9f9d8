"""Class names of a classifier: from a labels file, an image folder's class folders, or the model's own table.

Torch-free: the same names are read by `atlas render`, `atlas concepts` and `atlas eval`, so a fine-tuned
classifier's classes are named once, in class-index order, wherever they come from.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from atlas.errors import AtlasError
from atlas.model_record import ClassInfo

WNID = re.compile(r"n\d{8}")
MAX_LABEL_CHARS = 200


def read_labels(path: str | os.PathLike) -> tuple[str, ...]:
    """One class name a line, in class-index order; blank or repeated names are refused."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AtlasError(f"cannot read labels file {path} ({exc.__class__.__name__}): "
                         "give a UTF-8 text file with one class name a line") from exc
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    names = tuple(line.strip() for line in lines)
    return check_names(names, f"labels file {path}")


def folder_labels(images: str | os.PathLike) -> tuple[str, ...]:
    """The class folders of an image folder, sorted by name: torchvision ImageFolder's class order."""
    root = Path(images)
    try:
        names = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    except OSError as exc:
        raise AtlasError(f"cannot list image folder {root} ({exc.__class__.__name__}): "
                         "pass --images DIR with one subfolder of images per class") from exc
    if not names:
        raise no_class_folder(root)
    return check_names(tuple(names), f"image folder {root}")


def no_class_folder(root: Path) -> AtlasError:
    """The error for an image folder without one subfolder per class, saying how to lay one out."""
    return AtlasError(f"image folder {root} has no class folder: put each class's images in a subfolder "
                      f"named by the class ({root}/daisy/..., or {root}/n01440764/... for ImageNet)")


def check_names(names: tuple[str, ...], where: str) -> tuple[str, ...]:
    """`names` when each is a printable, non-blank name that no other repeats; else a one-line error naming `where`."""
    if not names:
        raise AtlasError(f"{where} names no class: give one class name a line (or one folder a class)")
    for line, name in enumerate(names, 1):
        if not name:
            raise AtlasError(f"{where}: line {line} is blank; every class needs a name, one a line")
        if len(name) > MAX_LABEL_CHARS or not name.isprintable():
            raise AtlasError(f"{where}: line {line} is not a printable name of at most {MAX_LABEL_CHARS} characters")
    seen: dict[str, int] = {}
    for line, name in enumerate(names, 1):
        if name in seen:
            raise AtlasError(f"{where}: {name!r} is on lines {seen[name]} and {line}; class names must be unique")
        seen[name] = line
    return names


def class_table(names: tuple[str, ...], num_classes: int, source: str) -> tuple[ClassInfo, ...]:
    """ClassInfo for each of a head's classes; names that are WordNet ids keep them as the class's id."""
    if len(names) != num_classes:
        raise AtlasError(f"{source} names {len(names)} classes but the model's head has {num_classes}: "
                         "give one name per class of the checkpoint, in class-index order")
    return tuple(ClassInfo(i, name if WNID.fullmatch(name) else "", name, (name,)) for i, name in enumerate(names))


def numbered(num_classes: int) -> tuple[ClassInfo, ...]:
    """The last resort: classes named by their index."""
    return tuple(ClassInfo(i, "", f"class {i}", ()) for i in range(num_classes))


def lookup(classes: tuple[ClassInfo, ...]) -> dict[str, tuple[int, ...]]:
    """Each class's name and WordNet id (lower case) -> the classes that carry it: what class specs and
    image folders may name a class by.  A name shared by two classes (ImageNet has "crane" twice) maps
    to both, and whoever reads it asks for the index instead."""
    table: dict[str, tuple[int, ...]] = {}
    for c in classes:
        for key in {c.name.strip().lower(), c.wnid.lower()} - {""}:
            table[key] = (*table.get(key, ()), c.index)
    return table


def folder_classes(images: str | os.PathLike, classes: tuple[ClassInfo, ...]) -> dict[str, int]:
    """The class folders of an image folder -> the class each one holds, matched by class name or
    WordNet id; a folder that names no class (or an ambiguous one) is an error naming a few of them
    and the names expected."""
    names = folder_labels(images)
    table = lookup(classes)
    unmatched = [name for name in names if len(table.get(name.lower(), ())) != 1]
    if unmatched:
        more = f" and {len(unmatched) - 3} more" if len(unmatched) > 3 else ""
        few = ", ".join(repr(n) for n in unmatched[:3]) + more
        expected = ", ".join(repr(c.wnid or c.name) for c in classes[:4]) + (", ..." if len(classes) > 4 else "")
        raise AtlasError(f"image folder {Path(images)}: {len(unmatched)} of {len(names)} folders ({few}) name no "
                         f"class of the model: name each folder by a class's name or WordNet id ({expected}), "
                         "or give --labels FILE")
    return {name: table[name.lower()][0] for name in names}
