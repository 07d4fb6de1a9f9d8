"""`atlas eval`: plausibility and FID against real photos, on a folder built from packaged photos."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from atlas.cache import Cache, encode_npy, encode_png
from atlas.evaluate import frechet_distance, nearest_cosine_distance
from atlas.metadata import model_info
from atlas.record import Scores
from tests.photos import photo
from tests.record_support import render_record

ESPRESSO, TABBY = (967, "n07920052"), (281, "n02123045")


def test_frechet_distance_matches_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 1.0, size=(4000, 3))
    b = rng.normal(0.0, 2.0, size=(4000, 3)) + np.array([3.0, 0.0, 0.0])
    # N(0, I) vs N(m, 4I): |m|^2 + tr(I + 4I - 2 * 2I) = 9 + 3
    assert frechet_distance(a, b) == pytest.approx(12.0, rel=0.05)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    few = rng.normal(size=(5, 64))  # fewer samples than dimensions: still a finite real number
    assert np.isfinite(frechet_distance(few, few + 1.0))


def test_nearest_cosine_distance_finds_the_closest_reference():
    import torch

    refs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    queries = torch.tensor([[2.0, 0.1], [0.0, -1.0]])
    d = nearest_cosine_distance(queries, refs)
    assert d[0] < 0.01 and d[1] == pytest.approx(1.0)


def _crops(image: np.ndarray, count: int, side: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    h, w, _ = image.shape
    out = []
    for _ in range(count):
        top, left = rng.integers(0, h - side), rng.integers(0, w - side)
        out.append(image[top : top + side, left : left + side])
    return out


@pytest.mark.slow
def test_eval_command_prefers_the_right_class(tmp_path, lite0):
    # "Visualizations": centre crops of the photos; real images: other crops of the same photos.
    cache = Cache(tmp_path / "cache")
    cache.write_model(model_info(lite0, "cpu", "0" * 64))
    other_weights = render_record(class_index=TABBY[0], model=lite0.name)  # never evaluated: other weights
    cache.write_entry("f" * 64, {"image.png": encode_png(np.zeros((8, 8, 3), np.uint8)),
                                 "attribution.npy": encode_npy(np.ones((8, 8), "f4"))}, other_weights)
    for (index, _), name in ((ESPRESSO, "coffee"), (TABBY, "chelsea")):
        pixels = np.asarray(Image.fromarray(photo(name)).resize((256, 256)))
        record = render_record(class_index=index, model=lite0.name, weights_sha256=lite0.weights_sha256,
                               scores=Scores(16, 0, (), (0.6, 0.9)))
        key = f"{index:064d}"
        files = {"image.png": encode_png(pixels), "attribution.npy": encode_npy(np.ones((256, 256), "f4"))}
        cache.write_entry(key, files, record)

    def folder(root, swap):
        for (_, wnid), name in ((ESPRESSO, "coffee"), (TABBY, "chelsea")):
            if swap:
                name = {"coffee": "chelsea", "chelsea": "coffee"}[name]
            (root / wnid).mkdir(parents=True)
            for i, crop in enumerate(_crops(photo(name), 6, 200, seed=1)):
                Image.fromarray(crop).save(root / wnid / f"{i}.png")
        (root / "n01440764").mkdir()  # tench: a folder without a rendered class is skipped
        return root

    results = {}
    for swap in (False, True):
        out = tmp_path / f"eval-{swap}.json"
        run = subprocess.run(
            [sys.executable, "-m", "atlas", "eval", "--images", str(folder(tmp_path / f"real-{swap}", swap)),
             "--cache", str(cache.root), "--crops", "8", "--out", str(out)],
            capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        results[swap] = json.loads(out.read_text())
    right, wrong = results[False], results[True]
    assert [c["class_index"] for c in right["classes"]] == [TABBY[0], ESPRESSO[0]]
    assert [c["visualizations"] for c in right["classes"]] == [1, 1]
    assert right["feature_model"] == "efficientnet_lite2"
    assert right["plausibility_mean"] < wrong["plausibility_mean"]
    assert right["fid_mean"] < wrong["fid_mean"]


def test_eval_errors_name_the_fix(tmp_path):
    run = subprocess.run([sys.executable, "-m", "atlas", "eval", "--images", str(tmp_path / "nope"),
                          "--cache", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "one sub-folder per class" in run.stderr
    (tmp_path / "real").mkdir()
    run = subprocess.run([sys.executable, "-m", "atlas", "eval", "--images", str(tmp_path / "real"),
                          "--cache", str(tmp_path / "empty")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "run `atlas render` first" in run.stderr


def test_too_few_samples_for_fid_name_the_side_that_lacks_them(tiny_resnet, tmp_path):
    from atlas.errors import AtlasError
    from atlas.evaluate import score_class

    picture = torch.rand(1, 3, 64, 64)
    photos = [tmp_path / f"{i}.png" for i in range(2)]
    for path in photos:
        Image.fromarray(photo("coffee")).save(path)
    with pytest.raises(AtlasError, match="two crops of the visualizations, got 1: raise --crops"):
        score_class(tiny_resnet, tiny_resnet, picture, photos, crops=1)
    with pytest.raises(AtlasError, match="two real images, got 1: add photos to the class folder"):
        score_class(tiny_resnet, tiny_resnet, picture, photos[:1], crops=4)
    plausibility, fid = score_class(tiny_resnet, tiny_resnet, picture, photos, crops=2)
    assert 0 <= plausibility <= 2 and np.isfinite(fid)
