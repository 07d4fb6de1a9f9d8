"""Links inside a cache folder: atlas never writes through one and never reads entries through one;
a link at an entry's own place is replaced by the entry.  And a cache keeps one set of weights per model name."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from atlas import atomic, judgment, store
from atlas.cache import Cache, encode_png, entry_pixels
from atlas.cli import main
from atlas.concepts import example_pass, similar
from atlas.concepts import store as concepts
from atlas.concepts.images import scan
from atlas.concepts.run import folder_index
from atlas.errors import AtlasError
from atlas.models import load_model
from atlas.record import IMAGE
from atlas.site.cache_reader import list_models, read_cache
from tests.concept_folders import make_folder
from tests.config_support import write_config
from tests.test_concepts_similar import banks as similar_banks
from tests.test_concepts_store import make_bank
from tests.test_store import _judgment

MODEL = "test_resnet"


def render(folder: Path, cache: Path, **settings) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    config = write_config(folder, MODEL, cache=str(cache), classes="0", **settings)
    return main(["render", "--config", str(config), "--full", "--no-progress", "--device", "cpu"])


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    """A cache holding one class picture of the test model and its model file."""
    folder = tmp_path_factory.mktemp("rendered")
    assert render(folder, folder / "cache") == 0
    return folder / "cache"


@pytest.fixture
def cache(rendered, tmp_path) -> Path:
    copy = tmp_path / "cache"
    shutil.copytree(rendered, copy)
    return copy


def tree(root: Path) -> dict[str, bytes | str]:
    return {str(p.relative_to(root)): str(p.readlink()) if p.is_symlink() else p.read_bytes() if p.is_file() else ""
            for p in sorted(root.rglob("*"))}


def entry(cache: Path) -> Path:
    (folder,) = [p for p in (cache / "entries").glob("??/*") if not p.name.startswith(".")]
    return folder


def link_instead(path: Path, target: Path, *, keep: bool = True) -> None:
    """Leave a link to the user's folder `target` in the place of `path`, which moves there when `keep`
    (else `target` holds only a file of the user's)."""
    if keep:
        shutil.move(path, target)
    else:
        shutil.rmtree(path)
        target.mkdir()
        (target / "notes.txt").write_text("the user's")
    path.symlink_to(target, target_is_directory=True)


def one_line_error(capsys, code: int) -> str:
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("keep", [True, False], ids=["holding-the-entries", "a-users-folder"])
def test_a_linked_shard_folder_is_refused_and_nothing_is_written_through_it(cache, tmp_path, capsys, keep):
    shard = entry(cache).parent
    outside = tmp_path / "outside"
    link_instead(shard, outside, keep=keep)
    before = tree(outside)
    err = one_line_error(capsys, render(tmp_path, cache))
    assert f"{shard} is a symbolic link" in err and "replace the link with a real folder" in err, err
    assert tree(outside) == before and shard.is_symlink()


def test_a_linked_models_folder_is_refused_and_the_users_file_is_kept(cache, tmp_path, capsys):
    models = cache / "models"
    outside = tmp_path / "outside"
    link_instead(models, outside)
    (outside / f"{MODEL}.json").write_text("the user's own file")  # not a model record: the render writes one
    before = tree(outside)
    err = one_line_error(capsys, render(tmp_path, cache))
    assert f"{models} is a symbolic link" in err, err
    assert tree(outside) == before


@pytest.mark.parametrize("keep", [True, False], ids=["holding-the-entry", "a-users-folder"])
def test_a_linked_entry_folder_is_replaced_by_the_entry_and_its_target_kept(cache, tmp_path, keep):
    folder = entry(cache)
    outside = tmp_path / "outside"
    link_instead(folder, outside, keep=keep)
    before = tree(outside)
    assert render(tmp_path, cache) == 0
    assert folder.is_dir() and not folder.is_symlink()
    assert Cache(cache).check(folder.name).status == "ok"
    assert tree(outside) == before
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no link or temporary set aside is left


def test_entries_through_a_linked_shard_are_not_read_and_each_is_a_problem_line(cache, tmp_path):
    folder = entry(cache)
    link_instead(folder.parent, tmp_path / "outside")
    problems: list[str] = []
    assert list(store.entries(cache, "render", problems)) == []
    assert problems == [f"{folder.parent}: a symbolic link, not a folder of this cache; replace it with a real folder"]
    state = Cache(cache).check(folder.name)
    assert state.status == "corrupt" and f"{folder.parent} is a symbolic link" in state.reason


def test_a_linked_concepts_shard_is_refused(tmp_path):
    bank, crops = make_bank()
    root, outside = tmp_path / "cache", tmp_path / "outside"
    outside.mkdir()
    (root / "concepts").mkdir(parents=True)
    (root / "concepts" / bank.key[:2]).symlink_to(outside, target_is_directory=True)
    with pytest.raises(AtlasError, match="is a symbolic link: atlas writes only inside") as err:
        concepts.write_bank(root, bank, crops)
    assert "\n" not in str(err.value) and list(outside.iterdir()) == []
    problems: list[str] = []
    assert list(concepts.banks(root, problems)) == [] and len(problems) == 1 and "symbolic link" in problems[0]


def test_a_linked_examples_pass_folder_holds_no_checkpoint(tmp_path):
    root, outside = tmp_path / "cache", tmp_path / "outside"
    outside.mkdir()
    root.mkdir()
    (root / "examples-pass").symlink_to(outside, target_is_directory=True)
    with pytest.raises(AtlasError, match="examples-pass is a symbolic link"):
        concepts.examples_checkpoint(root, ["0" * 64])


def test_the_cache_root_itself_may_be_a_link(tmp_path):
    bank, crops = make_bank()
    disk = tmp_path / "disk"
    disk.mkdir()
    (tmp_path / "cache").symlink_to(disk, target_is_directory=True)
    concepts.write_bank(tmp_path / "cache", bank, crops)
    assert concepts.read_bank(tmp_path / "cache", bank.key) == concepts.read_bank(disk, bank.key) is not None


def test_a_render_with_other_weights_under_the_same_name_is_refused_before_rendering(cache, tmp_path, capsys):
    assert render(tmp_path / "again", cache) == 0  # the same weights: reused
    assert "1 reused from cache" in capsys.readouterr().out
    module = load_model(MODEL, random_weights=True).module
    state = {name: value + 1 if value.is_floating_point() else value for name, value in module.state_dict().items()}
    torch.save(state, tmp_path / "other.pth")
    before = tree(cache)
    err = one_line_error(capsys, render(tmp_path / "other", cache, random_weights=None,
                                        checkpoint=str(tmp_path / "other.pth")))
    assert f"holds {MODEL} with other weights" in err and "--cache" in err, err
    assert tree(cache) == before  # no picture rendered, the model file kept


def test_a_model_file_reached_through_a_link_is_not_read(cache, tmp_path, capsys):
    models = cache / "models"
    link_instead(models, tmp_path / "outside")  # the valid model file now lies outside, behind the link
    assert Cache(cache).read_model(MODEL) is None
    err = one_line_error(capsys, main(["build", "--cache", str(cache), "--out", str(tmp_path / "site")]))
    assert f"{models} is a symbolic link, not a folder of the cache" in err, err
    models.unlink()
    models.mkdir()
    (models / f"{MODEL}.json").symlink_to(tmp_path / "outside" / f"{MODEL}.json")  # the file itself a link
    assert Cache(cache).read_model(MODEL) is None
    err = one_line_error(capsys, main(["build", "--cache", str(cache), "--out", str(tmp_path / "site2")]))
    assert "is a symbolic link, not a file of the entry" in err, err


def test_a_linked_entries_folder_is_not_read(cache, tmp_path):
    key = entry(cache).name
    outside = tmp_path / "outside"
    link_instead(cache / "entries", outside)  # the whole render, valid, now lies behind the link
    before = tree(outside)
    state = Cache(cache).check(key)
    assert state.status == "corrupt" and f"{cache / 'entries'} is a symbolic link" in state.reason
    contents = read_cache(cache)
    assert contents.entries == () and len(contents.problems) == 1 and "symbolic link" in contents.problems[0]
    assert tree(outside) == before


def test_a_bank_in_a_linked_concepts_folder_is_not_read(tmp_path):
    bank, crops = make_bank()
    outside = tmp_path / "outside"
    concepts.write_bank(outside, bank, crops)  # a valid bank of the same key, outside the cache
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "concepts").symlink_to(outside / "concepts", target_is_directory=True)
    before = tree(outside)
    assert concepts.read_bank(tmp_path / "cache", bank.key) is None
    assert tree(outside) == before


def test_an_entry_outside_the_shard_of_its_key_is_not_read(tmp_path):
    """Its files are looked for in its key's shard, which may be a link."""
    bank, crops = make_bank()
    root, outside = tmp_path / "cache", tmp_path / "outside"
    folder = concepts.write_bank(root, bank, crops).parent
    shutil.copytree(folder, root / "concepts" / "zz" / bank.key)  # a real folder, in another shard
    link_instead(folder.parent, outside)  # the crops the site would copy now lie behind the link
    before = tree(outside)
    problems: list[str] = []
    assert list(concepts.banks(root, problems)) == []
    assert problems == [f"{folder.parent}: a symbolic link, not a folder of this cache; replace it with a real folder"]
    assert tree(outside) == before


def test_a_judgment_in_a_linked_folder_is_not_read(tmp_path):
    good = _judgment("a" * 64)
    outside = tmp_path / "outside"
    atomic.atomic_write(store.file_path(outside, "judgment", good.key), judgment.KIND.dumps(good))
    root = tmp_path / "cache"
    root.mkdir()
    folder = store.file_path(root, "judgment", good.key).parents[1]
    folder.symlink_to(outside / folder.name, target_is_directory=True)
    assert store.read(root, "judgment", good.key) is None
    folder.unlink()
    folder.mkdir()
    (folder / good.key[:2]).symlink_to(outside / folder.name / good.key[:2], target_is_directory=True)  # its shard
    assert store.read(root, "judgment", good.key) is None
    assert store.read(outside, "judgment", good.key) == good  # what is behind the link was valid


def test_similar_concepts_in_a_linked_folder_are_not_read_nor_written(tmp_path):
    found = similar_banks(classes=3, concepts=2)
    stored = similar.to_stored(found.values(), "m", "w")
    planted = dataclasses.replace(stored, concepts=stored.concepts[:1])  # the right key, other links
    outside, root = tmp_path / "outside", tmp_path / "cache"
    concepts.write_similar(outside, planted)
    root.mkdir()
    (root / "similar").symlink_to(outside / "similar", target_is_directory=True)
    before = tree(outside)
    assert concepts.read_similar(outside, "m", "w") == planted  # a plausible file
    assert concepts.read_similar(root, "m", "w") is None
    links, note = similar.current(root, found, "m", "w")
    assert links == similar.similar_concepts(found.values())  # computed, not the planted ones
    assert f"{root / 'similar'} is a symbolic link" in note and "\n" not in note, note
    with pytest.raises(AtlasError, match="replace the link with a real folder") as err:
        similar.update(root, found, "m", "w")
    assert "\n" not in str(err.value)
    assert tree(outside) == before
    (root / "similar").unlink()
    disk = tmp_path / "disk"
    root.rename(disk)
    root.symlink_to(disk, target_is_directory=True)  # the cache root itself may be a link
    assert similar.update(root, found, "m", "w") and concepts.read_similar(root, "m", "w").concepts == stored.concepts


def test_a_checkpoint_that_is_a_link_is_not_resumed_and_its_target_is_kept(tmp_path, monkeypatch):
    tiny = load_model("test_efficientnet", random_weights=True)
    make_folder(tmp_path / "images", {"n01440764": 2, "n01443537": 2}, tiny.input_size)
    folder = scan(tmp_path / "images", folder_index(tiny, tmp_path / "images"))
    layers = {"blocks.3": [0]}
    outside = tmp_path / "outside" / "state.pt"
    example_pass.stream_examples(tiny, folder, layers, 2, batch_size=2, checkpoint=outside, checkpoint_seconds=0)
    before = outside.read_bytes()  # a finished pass: resuming it reads no image
    checkpoint = tmp_path / "cache" / "examples-pass" / "state.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.symlink_to(outside)
    read: list[str] = []
    real_load = example_pass.load_squares
    monkeypatch.setattr(example_pass, "load_squares",
                        lambda root, files, side: (read.extend(files), real_load(root, files, side))[1])
    example_pass.stream_examples(tiny, folder, layers, 2, batch_size=2, checkpoint=checkpoint, checkpoint_seconds=0)
    assert read == [f for c in folder.classes for f in c.files]  # the pass ran from its first image
    assert outside.read_bytes() == before and not checkpoint.is_symlink()


def test_a_model_file_reached_through_a_link_does_not_name_a_model(cache, tmp_path):
    models = cache / "models"
    outside = tmp_path / "outside"
    link_instead(models, outside)
    path = outside / f"{MODEL}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "name": "planted"}))
    assert list(list_models(cache)) == [MODEL]
    models.unlink()
    models.mkdir()
    (models / path.name).symlink_to(path)  # the file itself a link
    assert list(list_models(cache)) == [MODEL]


def test_an_entry_picture_is_read_only_as_its_record_lists_it(cache, tmp_path):
    """Every reader of a cached picture (the site, cross-judging, `atlas eval`) gets the bytes its record's
    sha256 names, read without following a link: a picture swapped for a link, or rewritten, is refused."""
    folder = entry(cache)
    (record,) = [r for r in Cache(cache).render_records() if r.status == "ok"]
    sha256 = record.files[IMAGE].sha256
    pixels = entry_pixels(folder, sha256)
    assert pixels.dtype == np.uint8 and pixels.shape[2] == 3 and pixels.shape[0] == record.preset["canvas"]

    original = (folder / IMAGE).read_bytes()
    link_instead(folder / IMAGE, tmp_path / "elsewhere.png")
    with pytest.raises(AtlasError, match="symbolic link.*re-render"):
        entry_pixels(folder, sha256)
    assert (tmp_path / "elsewhere.png").read_bytes() == original  # the link's target is kept

    (folder / IMAGE).unlink()
    (folder / IMAGE).write_bytes(encode_png(np.zeros_like(pixels)))
    with pytest.raises(AtlasError, match="does not match the sha256.*re-render"):
        entry_pixels(folder, sha256)
