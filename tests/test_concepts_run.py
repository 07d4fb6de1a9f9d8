"""`atlas concepts` end to end on a tiny random model: banks, exact sums, crops, skips, resume, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from atlas.cli import main
from atlas.concepts import store
from atlas.concepts.run import ConceptRequest, run_concepts
from atlas.errors import AtlasError
from atlas.models import find_layer, load_model
from atlas.typed_json import FileInfo
from tests.concept_folders import make_folder, one_thread  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parents[1]
CLASSES = {"n01440764": 3, "n01443537": 2}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    return load_model("test_efficientnet", random_weights=True)


def request_for(tmp_path: Path, **changes) -> ConceptRequest:
    settings = dict(images=tmp_path / "images", cache=tmp_path / "cache", concepts=2, per_class=10, patch=48,
                    crops=4, example_layers={"blocks.3": [0, 2]}, examples=3, batch_size=16)
    return ConceptRequest(**(settings | changes))


def bank_files(cache: Path) -> dict[str, float]:
    return {p.parent.name: p.stat().st_mtime_ns for p in (cache / "concepts").glob("*/*/bank.json")}


def test_banks_sum_exactly_and_their_crops_come_from_the_images(tmp_path, tiny):
    layouts = make_folder(tmp_path / "images", CLASSES, tiny.input_size)
    summary = run_concepts(tiny, request_for(tmp_path), report=lambda line: None)
    assert (summary.classes, summary.computed, summary.cached, summary.images, summary.skipped) == (2, 2, 0, 5, 0)
    assert summary.example_layers == 1
    banks = sorted(store.banks(tmp_path / "cache"), key=lambda b: b.class_index)
    assert [(b.class_index, b.wnid, b.images, b.layer, b.exact) for b in banks] == [
        (0, "n01440764", 3, "bn2", True), (1, "n01443537", 2, "bn2", True)]
    bias = tiny.module.get_classifier().bias
    for bank in banks:
        importances = [c.importance for c in bank.concepts]
        assert importances == sorted(importances, reverse=True)
        total = sum(importances) + bank.residual + bank.rest
        assert total == pytest.approx(bank.logit, abs=1e-4 * max(1.0, abs(bank.logit)))
        assert bank.rest == pytest.approx(float(bias[bank.class_index]), abs=1e-4)
        assert sum(c.top_images for c in bank.concepts) == bank.images
        assert bank.patches == bank.images * 9  # 160 px input, 48 px patches at a stride of 38: 3 x 3
        assert set(bank.seconds) == {"read", "activations", "nmf", "importance", "crops"}
        for concept in bank.concepts:
            assert len(concept.crops) == 4 and len(concept.aligned) == 5
            assert [c.value for c in concept.crops] == sorted((c.value for c in concept.crops), reverse=True)
            for crop in concept.crops:
                assert crop.file.startswith(bank.wnid + "/") and crop.file in layouts
                left, top, right, bottom = crop.box
                assert right - left == bottom - top == 48  # the test images are the input size: scale 1
                with Image.open(store.crop_path(tmp_path / "cache", bank, crop)) as image:
                    # cut from the source at its own resolution and stored at the crop side, not at 48 px
                    assert image.format == "WEBP" and image.size == (store.CROP_SIDE, store.CROP_SIDE)
                    with Image.open(tmp_path / "images" / crop.file) as opened:
                        assert crop.source_size == opened.size
                        source = opened.convert("RGB").crop(crop.box).resize(image.size, Image.Resampling.LANCZOS)
                    assert np.abs(np.asarray(image, dtype=float) - np.asarray(source, dtype=float)).mean() < 8
    (examples,) = store.example_sets(tmp_path / "cache")
    assert examples.layer == "blocks.3" and [c.channel for c in examples.channels] == [0, 2]
    assert all(len(c.examples) == 3 and len(set(e.file for e in c.examples)) == 3 for c in examples.channels)
    for example in examples.channels[0].examples:
        assert example.source_size == (tiny.input_size, tiny.input_size)
        with Image.open(store.crop_path(tmp_path / "cache", examples, example)) as image:
            assert image.size == (store.CROP_SIDE, store.CROP_SIDE)
    # each example names a small WebP of its whole source image: one file per source, however many examples
    # show it (6 examples of 5 images share one at least), listed like the crops and checked by the reader
    shown = [e for c in examples.channels for e in c.examples]
    thumbnails = {e.file: e.thumbnail for e in shown}
    assert len(shown) > len(thumbnails) and all(thumbnails[e.file] == e.thumbnail for e in shown)
    assert len(set(thumbnails.values())) == len(thumbnails) and None not in thumbnails.values()
    folder = store.entry_folder(tmp_path / "cache", examples)
    assert sorted(p.name for p in folder.glob("*.webp")) == sorted(
        {e.image for e in shown} | set(thumbnails.values()))
    for file, name in thumbnails.items():
        data = (folder / name).read_bytes()
        assert examples.files[name] == FileInfo.of(data) and len(data) < 8192
        with Image.open(folder / name) as image, Image.open(tmp_path / "images" / file) as opened:
            assert image.format == "WEBP" and max(image.size) == store.SOURCE_SIDE  # never larger than 128 px
            source = opened.convert("RGB").resize(image.size, Image.Resampling.LANCZOS)
            assert np.abs(np.asarray(image.convert("RGB"), dtype=float) - np.asarray(source, dtype=float)).mean() < 12


def test_rerun_computes_nothing_and_changes_recompute_only_what_they_touch(tmp_path, tiny):
    make_folder(tmp_path / "images", CLASSES, tiny.input_size)
    run_concepts(tiny, request_for(tmp_path), report=lambda line: None)
    before = bank_files(tmp_path / "cache")
    again = run_concepts(tiny, request_for(tmp_path), report=lambda line: None)
    assert (again.computed, again.cached, again.images, again.example_layers, again.examples_cached) == (0, 2, 0, 0, 1)
    assert bank_files(tmp_path / "cache") == before
    make_folder(tmp_path / "images", {"n01484850": 2}, tiny.input_size, seed=5)  # a new class
    grown = run_concepts(tiny, request_for(tmp_path, example_layers={}), report=lambda line: None)
    assert (grown.computed, grown.cached) == (1, 2)
    more = run_concepts(tiny, request_for(tmp_path, concepts=3, classes=[0], example_layers={}),
                        report=lambda line: None)
    assert (more.computed, more.cached) == (1, 0)  # another setting, another key
    current = store.current_banks(tmp_path / "cache", tiny.name, tiny.weights_sha256)
    assert sorted(current) == [0, 1, 2] and len(current[0].concepts) == 3 and len(current[1].concepts) == 2
    assert len(list(store.banks(tmp_path / "cache"))) == 4  # the older bank of class 0 stays in the cache
    assert store.current_banks(tmp_path / "cache", tiny.name, "other weights") == {}
    (examples,) = store.current_examples(tmp_path / "cache", tiny.name, tiny.weights_sha256).values()
    assert examples.layer == "blocks.3" and examples.created


def test_a_write_that_dies_midway_leaves_no_bank_and_the_rerun_finishes(tmp_path, tiny, monkeypatch):
    make_folder(tmp_path / "images", CLASSES, tiny.input_size)
    real = store.atomic_write
    written = []

    def dying(path, data):
        if path.name == store.BANK and written:
            raise OSError(28, "No space left on device")  # the second bank's JSON, after its crops
        real(path, data)
        if path.name == store.BANK:
            written.append(path)

    monkeypatch.setattr(store, "atomic_write", dying)
    with pytest.raises(AtlasError, match="cannot write"):
        run_concepts(tiny, request_for(tmp_path, example_layers={}), report=lambda line: None)
    monkeypatch.setattr(store, "atomic_write", real)
    assert len(bank_files(tmp_path / "cache")) == 1
    rerun = run_concepts(tiny, request_for(tmp_path, example_layers={}), report=lambda line: None)
    assert (rerun.computed, rerun.cached) == (1, 1)


def test_corrupt_images_and_stray_files_are_skipped_and_counted(tmp_path, tiny):
    make_folder(tmp_path / "images", CLASSES, tiny.input_size)
    (tmp_path / "images" / "n01440764" / "zz_broken.JPEG").write_bytes(b"\xff\xd8\xff garbage")
    (tmp_path / "images" / "n01443537" / "labels.csv").write_text("a,b\n")
    summary = run_concepts(tiny, request_for(tmp_path), report=lambda line: None)
    assert (summary.images, summary.skipped, summary.computed) == (5, 2, 2)
    bank = next(b for b in store.banks(tmp_path / "cache") if b.class_index == 0)
    assert (bank.images, bank.skipped) == (3, 1)
    assert "5 images read; 2 skipped" in summary.line()
    (tmp_path / "images" / "n01484850").mkdir()
    (tmp_path / "images" / "n01484850" / "only.png").write_bytes(b"\x89PNG broken")
    again = run_concepts(tiny, request_for(tmp_path, example_layers={}), report=lambda line: None)
    assert (again.computed, again.cached, again.empty) == (0, 2, ["n01484850"])
    assert "no readable image in 1 class(es): n01484850" in again.line()
    assert "(such as n01484850/only.png: not decodable as an image" in again.line()


def test_a_folder_without_one_readable_image_is_an_error_not_an_empty_success(tmp_path, tiny, capsys):
    (tmp_path / "images" / "n01440764").mkdir(parents=True)
    (tmp_path / "images" / "n01440764" / "a.jpg").write_bytes(b"\xff\xd8\xff garbage")
    assert main(cli(tmp_path)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a readable image (such as n01440764/a.jpg): add JPEG or PNG" in err[0], err
    (tmp_path / "images" / "n01440764" / "a.jpg").unlink()
    (tmp_path / "images" / "n01440764").rmdir()
    assert main(cli(tmp_path)) == 1
    assert "has no class folder: put each class's images in a subfolder" in capsys.readouterr().err


def cli(tmp_path: Path, *extra: str) -> list[str]:
    return ["concepts", "--images", str(tmp_path / "images"), "--cache", str(tmp_path / "cache"), "--model",
            "test_efficientnet", "--random-weights", "--device", "cpu", "--concepts", "2", "--patch", "48",
            "--images-per-class", "4", "--no-progress", *extra]


def test_cli_summary_line_and_one_line_errors(tmp_path, tiny, capsys):
    make_folder(tmp_path / "images", CLASSES, tiny.input_size)
    assert main(cli(tmp_path, "--layers", "blocks.3=0-1")) == 0
    out = capsys.readouterr().out
    assert "atlas concepts: done: 2 classes (2 computed, 0 in the cache); 5 images read; 0 skipped" in out
    assert out.rstrip().endswith("(`atlas build` shows them now, `atlas render` draws their concepts' pictures)")
    assert "dataset examples of 1 layer(s)" in out
    (tmp_path / "images" / "holiday photos").mkdir()
    assert main(cli(tmp_path)) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holiday photos" in err and "WordNet id" in err


def test_a_cache_of_concepts_alone_builds_and_the_first_render_names_its_spectrum(tmp_path, tiny, capsys):
    from tests.config_support import write_config

    make_folder(tmp_path / "images", CLASSES, tiny.input_size)
    model_file = tmp_path / "cache" / "models" / "test_efficientnet.json"
    assert main(cli(tmp_path, "--layer", "nope")) == 1  # a refused run leaves no model file to build from
    assert "nope" in capsys.readouterr().err and not model_file.exists()
    assert main(cli(tmp_path, "--layers", "blocks.3=0-1")) == 0
    written = json.loads(model_file.read_text())
    assert written["weights_sha256"] == tiny.weights_sha256 and written["spectrum_sha256"] == ""
    assert main(["build", "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "site")]) == 0
    site = tmp_path / "site" / "test_efficientnet"
    page = (site / "classes" / "0000.html").read_text()
    assert "Not rendered yet" in page and 'id="concept-2"' in page
    assert "Dataset examples" in (site / "layers" / "blocks.3" / "c0001.html").read_text()
    # the first render writes the file again, naming its spectrum
    config = write_config(tmp_path, "test_efficientnet")
    assert main(["render", "--config", str(config), "--full", "--classes", "0", "--no-progress"]) == 0
    rendered = json.loads(model_file.read_text())
    # a later concepts run leaves the render's file as it is
    assert main(cli(tmp_path, "--layers", "blocks.3=0-1")) == 0 and json.loads(model_file.read_text()) == rendered
    assert rendered["spectrum_sha256"] and {k: v for k, v in rendered.items() if k != "spectrum_sha256"} == \
        {k: v for k, v in written.items() if k != "spectrum_sha256"}
    # a cache that holds the name with other weights is refused before anything is computed
    model_file.write_text(json.dumps(rendered | {"weights_sha256": "0" * 64}))
    banks = bank_files(tmp_path / "cache")
    capsys.readouterr()
    assert main(cli(tmp_path, "--concepts", "3")) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds test_efficientnet with other weights" in err and "--cache" in err
    assert bank_files(tmp_path / "cache") == banks


@pytest.mark.slow
def test_kill_9_mid_run_and_restart_recomputes_nothing_finished(tmp_path, tiny):
    counts = {wnid: 3 for wnid in ("n01440764", "n01443537", "n01484850", "n01491361", "n01494475", "n01496331")}
    make_folder(tmp_path / "images", counts, tiny.input_size)
    command = [sys.executable, "-m", "atlas", *cli(tmp_path, "--layers")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not bank_files(tmp_path / "cache") and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    finished = bank_files(tmp_path / "cache")
    assert 1 <= len(finished) < len(counts), "the run should be killed after its first bank"
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"({len(counts) - len(finished)} computed, {len(finished)} in the cache)" in done.stdout
    after = bank_files(tmp_path / "cache")
    assert len(after) == len(counts)
    assert all(after[key] == mtime for key, mtime in finished.items())  # finished banks were not rewritten
    assert not list((tmp_path / "cache").rglob(".*.tmp"))  # a killed writer's temporaries are cleaned


def test_concepts_table_of_atlas_toml(tmp_path, tiny, capsys):
    from atlas.config import Concepts, load_config

    make_folder(tmp_path / "images", {"n01440764": 2}, tiny.input_size)
    config = tmp_path / "atlas.toml"
    config.write_text('model = "test_efficientnet"\nrandom_weights = true\ncache = "c"\n'
                      '[concepts]\nimages = "images"\nconcepts = 2\nimages_per_class = 2\npatch = 48\n')
    expected = Concepts(images=tmp_path / "images", concepts=2, images_per_class=2, patch=48)
    assert load_config(config).concepts == expected
    assert main(["concepts", "--config", str(config), "--device", "cpu", "--layers", "--no-progress"]) == 0
    assert "1 classes (1 computed, 0 in the cache); 2 images read" in capsys.readouterr().out
    assert len(bank_files(tmp_path / "c")) == 1
    config.write_text('[concepts]\nimage = "images"\n')
    with pytest.raises(AtlasError, match="concepts.image"):
        load_config(config)


def test_bench_reports_seconds_per_class_and_a_linear_projection(tmp_path, tiny):
    from atlas.bench.concepts import ConceptBench, bench_concepts

    make_folder(tmp_path / "images", CLASSES, tiny.input_size)
    result = bench_concepts(tiny, tmp_path / "images", concepts=2, batch_size=16)
    assert (result.classes, result.images_per_class, result.device) == (2, 2.5, "cpu")
    assert set(result.per_class) == {"read", "activations", "nmf", "importance", "crops"}
    assert all(v >= 0 for v in result.per_class.values()) and result.per_class["activations"] > 0
    phases = {"read": 1.0, "activations": 2.0, "nmf": 3.0, "importance": 4.0, "crops": 5.0}
    fixed = ConceptBench("cpu", 1, 2, 50.0, phases)
    assert fixed.projected_seconds(classes=10, images_per_class=100) == 10 * (2 * (1 + 2 + 3 + 4) + 5)
    assert fixed.lines()[0].startswith("concepts on cpu (1 threads): 15.0 s per class of 50 images (read 1.00,")


def test_classes_fitted_in_one_group_equal_classes_fitted_alone(tmp_path, tiny):
    make_folder(tmp_path / "images", {"n01440764": 3, "n01443537": 2}, tiny.input_size)  # unequal rows: padding
    alone = run_concepts(tiny, request_for(tmp_path, cache=tmp_path / "a", example_layers={}), report=lambda line: None)
    grouped = run_concepts(tiny, request_for(tmp_path, cache=tmp_path / "b", example_layers={}, group=2),
                           report=lambda line: None)
    assert alone.computed == grouped.computed == 2
    one = store.current_banks(tmp_path / "a", tiny.name, tiny.weights_sha256)
    two = store.current_banks(tmp_path / "b", tiny.name, tiny.weights_sha256)
    for index in (0, 1):
        assert one[index].key == two[index].key  # the group size is not a setting of the result
        for a, b in zip(one[index].concepts, two[index].concepts, strict=True):
            assert np.allclose(a.values, b.values, atol=1e-3)
            assert a.importance == pytest.approx(b.importance, rel=1e-3, abs=1e-6)


def test_an_inner_layer_gives_estimated_importance_and_no_class_alignment(tmp_path, tiny):
    make_folder(tmp_path / "images", {"n01440764": 2}, tiny.input_size)
    run_concepts(tiny, request_for(tmp_path, layer="blocks.3", example_layers={}), report=lambda line: None)
    (bank,) = store.banks(tmp_path / "cache")
    assert (bank.layer, bank.exact) == ("blocks.3", False)
    assert all(concept.aligned == () for concept in bank.concepts)
    assert len(bank.concepts[0].values) == find_layer(tiny, "blocks.3").channels
    total = sum(c.importance for c in bank.concepts) + bank.residual + bank.rest
    assert total == pytest.approx(bank.logit, abs=1e-5)  # rest is what gradient x input leaves out
    with pytest.raises(AtlasError, match="no layer 'blocks.99'"):
        run_concepts(tiny, request_for(tmp_path, layer="blocks.99"), report=lambda line: None)


def test_the_benchmark_sample_folder_holds_real_photos_under_their_classes(tmp_path):
    from atlas.bench.concepts import SAMPLE_PHOTOS, sample_folder
    from atlas.concepts.images import read_rgb, scan
    from atlas.models import imagenet_classes

    wnids = {c.wnid: c.index for c in imagenet_classes()}
    folder = scan(sample_folder(tmp_path / "sample", images_per_class=3), wnids)
    assert {c.wnid for c in folder.classes} == set(SAMPLE_PHOTOS) and folder.images == 6
    assert {imagenet_classes()[c.index].name for c in folder.classes} >= {"tabby"}
    first = [read_rgb(tmp_path / "sample" / c.files[0]) for c in folder.classes]
    assert all(image is not None and image.size == (500, 375) for image in first)
    # crops of two different photos: their colours differ, so the sample is not one image repeated
    means = [np.asarray(image, dtype=float).mean(axis=(0, 1)) for image in first]
    assert np.abs(means[0] - means[1]).max() > 10
    again = scan(sample_folder(tmp_path / "again", images_per_class=3), wnids)
    assert [c.files for c in again.classes] == [c.files for c in folder.classes]  # deterministic names


def test_the_benchmark_sample_folder_fills_more_classes_with_the_same_photos(tmp_path):
    from atlas.bench.concepts import SAMPLE_PHOTOS, sample_folder
    from atlas.concepts.images import scan
    from atlas.models import imagenet_classes

    wnids = {c.wnid: c.index for c in imagenet_classes()}
    folder = scan(sample_folder(tmp_path / "sample", images_per_class=2, classes=5), wnids)
    assert len(folder.classes) == 5 and folder.images == 10
    assert set(SAMPLE_PHOTOS) <= {c.wnid for c in folder.classes}  # the photos' own classes come first


def test_an_interrupted_example_pass_resumes_after_its_last_saved_class(tmp_path, tiny, monkeypatch):
    from atlas.concepts import example_pass as concepts_run
    from atlas.concepts.example_pass import stream_examples
    from atlas.concepts.images import scan
    from atlas.concepts.run import folder_index

    make_folder(tmp_path / "images", {"n01440764": 3, "n01443537": 2, "n01484850": 2}, tiny.input_size)
    folder = scan(tmp_path / "images", folder_index(tiny, tmp_path / "images"))
    layers = {"blocks.3": [0, 2]}
    whole = stream_examples(tiny, folder, layers, 3, batch_size=2)

    read: list[str] = []
    real_load = concepts_run.load_squares

    def counting(root, files, side):
        files = list(files)
        read.extend(files)
        if len(read) > 4:  # into the second class: the first is saved, then the "kill"
            raise KeyboardInterrupt
        return real_load(root, files, side)

    checkpoint = tmp_path / "cache" / "examples-pass" / "state.pt"
    monkeypatch.setattr(concepts_run, "load_squares", counting)
    with pytest.raises(KeyboardInterrupt):
        stream_examples(tiny, folder, layers, 3, batch_size=2, checkpoint=checkpoint, checkpoint_seconds=0)
    assert checkpoint.is_file()
    monkeypatch.setattr(concepts_run, "load_squares", real_load)

    read.clear()
    monkeypatch.setattr(concepts_run, "load_squares", lambda root, files, side: (read.extend(files), real_load(
        root, files, side))[1])
    resumed = stream_examples(tiny, folder, layers, 3, batch_size=2, checkpoint=checkpoint, checkpoint_seconds=0)
    assert read == [f for c in folder.classes[1:] for f in c.files]  # the first class is not read again
    (t1, g1, s1, k1), (t2, g2, s2, k2) = whole, resumed
    assert (g1, s1, k1) == (g2, s2, k2)
    for layer in layers:
        assert torch.equal(t1[layer].images, t2[layer].images) and torch.equal(t1[layer].positions, t2[layer].positions)
        assert torch.allclose(t1[layer].values, t2[layer].values)

    checkpoint.write_bytes(b"not a checkpoint")  # damaged: the pass starts over instead of failing
    read.clear()
    again = stream_examples(tiny, folder, layers, 3, batch_size=2, checkpoint=checkpoint, checkpoint_seconds=1e9)
    assert read == [f for c in folder.classes for f in c.files] and again[2] == s1


def test_a_finished_example_pass_leaves_no_checkpoint(tmp_path, tiny, monkeypatch):
    import functools

    from atlas.concepts import example_pass as concepts_run

    saves = []
    real_save = concepts_run._save_pass
    monkeypatch.setattr(concepts_run, "_save_pass", lambda path, *a: (saves.append(path), real_save(path, *a)))
    monkeypatch.setattr(concepts_run, "stream_examples",
                        functools.partial(concepts_run.stream_examples, checkpoint_seconds=0))
    make_folder(tmp_path / "images", CLASSES, tiny.input_size)
    run_concepts(tiny, request_for(tmp_path), report=lambda line: None)
    assert len(list(store.example_sets(tmp_path / "cache"))) == 1
    assert len(saves) == len(CLASSES) and not saves[0].exists()  # saved after each class, removed at the end
