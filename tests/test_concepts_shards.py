"""`atlas concepts` in shards: N shards give the banks, dataset examples, similar concepts and site of one
process; the last shard (or `--merge`) merges the example parts; a killed shard resumes; launchers' variables."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from atlas.cache import Cache
from atlas.cli import main
from atlas.concepts import example_pass, store
from atlas.concepts import run as concepts_run
from atlas.concepts.example_pass import stream_examples
from atlas.concepts.images import scan
from atlas.concepts.run import ConceptRequest, folder_index, run_concepts
from atlas.errors import AtlasError
from atlas.jobs import Shard
from atlas.metadata import model_info
from atlas.models import load_model
from tests.concept_folders import make_folder, one_thread  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("one_thread")
COUNTS = {"n01440764": 3, "n01443537": 2, "n01484850": 3, "n01491361": 2}


@pytest.fixture(scope="module")
def tiny():
    return load_model("test_efficientnet", random_weights=True)


def request_for(tmp_path: Path, cache: str, **changes) -> ConceptRequest:
    # batches of 2 images: 3 + 2 + 3 + 2 images are 6 chunks, dealt over the shards
    settings = dict(images=tmp_path / "images", cache=tmp_path / cache, concepts=2, per_class=10, patch=48, crops=3,
                    example_layers={"blocks.3": [0, 1, 2, 5]}, examples=3, batch_size=2)
    return ConceptRequest(**(settings | changes))


def timeless(value):
    """A bank or example set without its timings, which no two runs share."""
    return dataclasses.replace(value, seconds={} if isinstance(value.seconds, dict) else 0.0, created="")


def contents(cache: Path, tiny) -> tuple[dict, dict, object]:
    banks = {i: timeless(b) for i, b in store.current_banks(cache, tiny.name, tiny.weights_sha256).items()}
    examples = {k: timeless(e) for k, e in store.current_examples(cache, tiny.name, tiny.weights_sha256).items()}
    stored = store.read_similar(cache, tiny.name, tiny.weights_sha256)
    return banks, examples, dataclasses.replace(stored, created="")


def site_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
            and p.name != ".atlas-site.json"}


def test_three_shards_give_what_one_process_gives(tmp_path, tiny):
    from atlas.site.build import build

    make_folder(tmp_path / "images", COUNTS, tiny.input_size)
    one = run_concepts(tiny, request_for(tmp_path, "one"), report=lambda line: None)
    assert (one.computed, one.example_layers) == (4, 1)
    said: list[str] = []
    summaries = [run_concepts(tiny, request_for(tmp_path, "three", shard=Shard(i, 3)), report=said.append)
                 for i in range(3)]
    assert [s.classes for s in summaries] == [2, 1, 1]  # every third class
    assert [(s.examples_waiting, s.example_layers) for s in summaries] == [(1, 0), (1, 0), (0, 1)]
    assert "dataset examples: merged the parts of 3 shards" in said
    # only the shard that finds every class's bank stores the similar concepts: the others' would be replaced
    assert [line for line in said if line.startswith("similar concepts of")] == ["similar concepts of 4 banks stored"]
    assert not list((tmp_path / "three" / "examples-pass").iterdir())  # parts and checkpoints gone
    banks, examples, similar = contents(tmp_path / "three", tiny)
    assert (banks, examples, similar) == contents(tmp_path / "one", tiny)
    assert sum(len(c.examples) for e in examples.values() for c in e.channels) == 4 * 3
    assert all(x.thumbnail in e.files for e in examples.values() for c in e.channels for x in c.examples)

    sites = []
    for name in ("one", "three"):
        Cache(tmp_path / name).write_model(model_info(tiny, "cpu", "0" * 64))
        build(tmp_path / name, tmp_path / f"site-{name}")
        sites.append(site_files(tmp_path / f"site-{name}"))
    assert sites[0].keys() == sites[1].keys() and any(p.startswith("crops/") for p in sites[0])
    assert [p for p in sites[0] if sites[0][p] != sites[1][p]] == []


def test_the_merge_is_idempotent_and_waits_for_every_part(tmp_path, tiny, monkeypatch):
    make_folder(tmp_path / "images", COUNTS, tiny.input_size)
    quick = dict(example_layers={"blocks.3": [0, 1]}, classes=[0])  # one bank: the example pass is the point
    with pytest.raises(AtlasError, match="no shard has saved dataset examples"):
        run_concepts(tiny, request_for(tmp_path, "c", merge=True, **quick), report=lambda line: None)
    run_concepts(tiny, request_for(tmp_path, "c", shard=Shard(0, 3), **quick), report=lambda line: None)
    run_concepts(tiny, request_for(tmp_path, "c", shard=Shard(2, 3), **quick), report=lambda line: None)
    with pytest.raises(AtlasError, match=r"shard\(s\) 1 of 3 are not saved yet") as info:
        run_concepts(tiny, request_for(tmp_path, "c", merge=True, **quick), report=lambda line: None)
    assert "\n" not in str(info.value)
    # two shards that finish together both merge: neither removes the parts before the other has read them
    monkeypatch.setattr(concepts_run, "remove_pass", lambda root, part: None)
    last = run_concepts(tiny, request_for(tmp_path, "c", shard=Shard(1, 3), **quick), report=lambda line: None)
    assert last.example_layers == 1
    (first,) = store.example_sets(tmp_path / "c")
    for path in (tmp_path / "c" / "examples").glob("*/*/examples.json"):
        path.unlink()  # as if the other finisher's write had not landed yet
    again = run_concepts(tiny, request_for(tmp_path, "c", merge=True, **quick), report=lambda line: None)
    assert again.example_layers == 1
    (second,) = store.example_sets(tmp_path / "c")
    assert timeless(second) == timeless(first)


def test_a_merge_killed_between_two_layers_finishes_from_the_same_parts(tmp_path, tiny, monkeypatch):
    make_folder(tmp_path / "images", COUNTS, tiny.input_size)
    quick = dict(example_layers={"blocks.3": [0, 1], "blocks.4": [2, 3]}, classes=[0])
    run_concepts(tiny, request_for(tmp_path, "one", **quick), report=lambda line: None)
    real_write = concepts_run.write_examples

    def killed_after_one(root, examples, crops):
        if list(store.example_sets(root)):
            raise KeyboardInterrupt  # a time limit in the middle of the merge
        return real_write(root, examples, crops)

    run_concepts(tiny, request_for(tmp_path, "two", shard=Shard(0, 2), **quick), report=lambda line: None)
    monkeypatch.setattr(concepts_run, "write_examples", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        run_concepts(tiny, request_for(tmp_path, "two", shard=Shard(1, 2), **quick), report=lambda line: None)
    assert len(list(store.example_sets(tmp_path / "two"))) == 1
    monkeypatch.setattr(concepts_run, "write_examples", real_write)
    said: list[str] = []
    merged = run_concepts(tiny, request_for(tmp_path, "two", merge=True, **quick), report=said.append)
    assert (merged.example_layers, merged.examples_cached) == (1, 1) and not any("one pass" in s for s in said)
    assert contents(tmp_path / "two", tiny)[1] == contents(tmp_path / "one", tiny)[1]
    assert not list((tmp_path / "two" / "examples-pass").iterdir())


def test_more_shards_than_chunks_leave_some_shards_without_images_and_still_merge(tmp_path, tiny):
    make_folder(tmp_path / "images", COUNTS, tiny.input_size)
    quick = dict(example_layers={"blocks.3": [0, 1]}, classes=[0])
    run_concepts(tiny, request_for(tmp_path, "one", **quick), report=lambda line: None)
    said: list[str] = []
    for i in range(8):  # 6 chunks: shards 6 and 7 read no image
        run_concepts(tiny, request_for(tmp_path, "eight", shard=Shard(i, 8), **quick), report=said.append)
    assert "dataset examples of blocks.3: one pass over 0 images (shard 7/8: one chunk of 2 images in 8)" in said
    assert contents(tmp_path / "eight", tiny)[1] == contents(tmp_path / "one", tiny)[1]


def test_a_killed_shard_resumes_its_pass_and_a_finished_one_does_not_pass_again(tmp_path, tiny, monkeypatch):
    make_folder(tmp_path / "images", COUNTS, tiny.input_size)
    folder = scan(tmp_path / "images", folder_index(tiny, tmp_path / "images"))
    layers = {"blocks.3": [0, 2]}
    shard = Shard(0, 3)  # chunks 0 and 3 of 6: the first two files of classes 0 and 2
    whole = stream_examples(tiny, folder, layers, 3, batch_size=2, shard=shard)
    real_load = example_pass.load_squares
    read: list[str] = []

    def dying(root, files, side):
        read.extend(files)
        if len(read) > 2:  # its first chunk is saved with its class, then the "kill" in its second
            raise KeyboardInterrupt
        return real_load(root, files, side)

    checkpoint = tmp_path / "state.pt"
    monkeypatch.setattr(example_pass, "load_squares", dying)
    with pytest.raises(KeyboardInterrupt):
        stream_examples(tiny, folder, layers, 3, batch_size=2, checkpoint=checkpoint, checkpoint_seconds=0,
                        shard=shard)
    read.clear()
    monkeypatch.setattr(example_pass, "load_squares",
                        lambda root, files, side: (read.extend(files), real_load(root, files, side))[1])
    resumed = stream_examples(tiny, folder, layers, 3, batch_size=2, checkpoint=checkpoint, checkpoint_seconds=0,
                              shard=shard)
    assert read == list(folder.classes[2].files[:2])  # only the chunk it had not finished
    assert torch.equal(whole[0]["blocks.3"].images, resumed[0]["blocks.3"].images)
    assert whole[2:] == resumed[2:]

    request = request_for(tmp_path, "c", shard=Shard(0, 3), example_layers=layers, classes=[0])
    run_concepts(tiny, request, report=lambda line: None)
    read.clear()
    again = run_concepts(tiny, request, report=lambda line: None)  # killed after its part, before the merge
    assert read == [] and again.examples_waiting == 1


def test_cli_takes_the_shard_from_the_flag_or_the_launcher(tmp_path, tiny, capsys, monkeypatch):
    make_folder(tmp_path / "images", {"n01440764": 2, "n01443537": 2}, tiny.input_size)
    base = ["concepts", "--images", str(tmp_path / "images"), "--cache", str(tmp_path / "cache"), "--model",
            "test_efficientnet", "--random-weights", "--device", "cpu", "--concepts", "2", "--patch", "48",
            "--no-progress", "--layers", "blocks.3=0-1"]
    assert main([*base, "--shard", "1/2"]) == 0
    out = capsys.readouterr().out
    assert "shard 1/2 (from --shard): 1 classes" in out and "waiting for other shards" in out
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "shard 0/2 (from RANK/WORLD_SIZE)" in out and "merged the parts of 2 shards" in out
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert main([*base, "--merge"]) == 0  # nothing left to merge: the classes and examples are all there
    assert "2 classes (0 computed, 2 in the cache)" in capsys.readouterr().out
    assert main([*base, "--shard", "2/2"]) == 1
    assert "bad shard" in capsys.readouterr().err


def test_a_part_that_does_not_fit_the_run_is_a_one_line_error_and_a_damaged_file_is_absent(tmp_path):
    from atlas.concepts.example_pass import merge
    from atlas.concepts.formats import ExamplePart, LayerTops

    good = LayerTops("blocks.3", (5, 5), 2, store.encode_vector(torch.ones(2, 1).numpy()), (0, 1), (3, 4))
    part = ExamplePart(sets=("a" * 64,), shard=0, count=2, chunk=2, images=2, skipped=0, seconds=1.0, layers=(good,))
    sources = [("n0/a.png", 0), ("n0/b.png", 0)]
    trackers, grids, read, _, _ = merge([part], {"blocks.3": [0, 1]}, 3, sources)
    assert trackers["blocks.3"].images.tolist() == [[0], [1]] and grids == {"blocks.3": (5, 5)} and read == 2
    for bad in (dataclasses.replace(good, values="not base64!"), dataclasses.replace(good, images=(0, 7)),
                dataclasses.replace(good, positions=(1,)), dataclasses.replace(good, channels=3)):
        with pytest.raises(AtlasError, match="does not fit") as info:
            merge([dataclasses.replace(part, layers=(bad,))], {"blocks.3": [0, 1]}, 3, sources)
        assert "\n" not in str(info.value)
    path = store.write_part(tmp_path, part)
    assert store.read_parts(tmp_path, part.sets) == [part] and store.read_parts(tmp_path, ["other"]) == []
    path.write_text(path.read_text()[:-5])  # cut short: not a part, so that shard passes again
    assert store.read_parts(tmp_path, part.sets) == []
