"""Links inside a cache folder: atlas never writes through one and never reads entries through one;
a link at an entry's own place is replaced by the entry.  And a cache keeps one set of weights per model name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from atlas import store
from atlas.cache import Cache
from atlas.cli import main
from atlas.concepts import store as concepts
from atlas.errors import AtlasError
from atlas.models import load_model
from tests.config_support import write_config
from tests.test_concepts_store import make_bank

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
    assert state.status == "corrupt" and "shard folder" in state.reason and "symbolic link" in state.reason


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
