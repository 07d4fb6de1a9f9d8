"""Dataset examples: the streamed running top-k equals a brute-force top-k over every image."""

from __future__ import annotations

import pytest
import torch

from atlas.concepts import craft
from atlas.concepts.example_pass import stream_examples
from atlas.concepts.examples import RunningTopK, region
from atlas.concepts.images import load_squares, scan
from atlas.concepts.run import folder_index
from atlas.models import load_model
from atlas.objectives import capture, channel
from tests.concept_folders import make_folder, one_thread  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("one_thread")


def brute_force(maps: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, k) values and image ids of the k highest per-image peaks, from every map at once."""
    peaks = maps.flatten(2).max(dim=2).values  # (N, C)
    top = peaks.T.topk(k, dim=1)
    return top.values, top.indices


def test_running_top_k_equals_brute_force_over_batches():
    generator = torch.Generator().manual_seed(0)
    maps = torch.randn(37, 6, 5, 4, generator=generator)
    tracker = RunningTopK(channels=6, k=9)
    for start in range(0, 37, 8):
        tracker.update(maps[start : start + 8], torch.arange(start, min(start + 8, 37)))
    values, images = brute_force(maps, 9)
    assert torch.equal(tracker.values, values)
    assert torch.equal(tracker.images, images)
    flat = maps.flatten(2)
    for c in range(6):
        for value, image, position in zip(tracker.values[c], tracker.images[c], tracker.positions[c], strict=True):
            assert flat[image, c, position] == value  # the position is where the peak is
    assert tracker.values.shape == (6, 9)  # memory stays channels x k


def test_equal_peaks_rank_by_image_id_whatever_order_they_come_in():
    maps = torch.zeros(6, 1, 2, 2)  # six images that all peak at 0: only the ids tell them apart
    maps[4, 0, 1, 1] = 1.0
    forward, backward = RunningTopK(channels=1, k=3), RunningTopK(channels=1, k=3)
    forward.update(maps, torch.arange(6))
    for i in reversed(range(6)):
        backward.update(maps[i : i + 1], torch.tensor([i]))
    assert forward.images.tolist() == backward.images.tolist() == [[4, 0, 1]]


def test_folded_top_ks_of_disjoint_parts_equal_one_pass():
    generator = torch.Generator().manual_seed(1)
    maps = torch.randint(0, 4, (40, 5, 3, 3), generator=generator).float()  # many ties on purpose
    whole = RunningTopK(channels=5, k=7)
    whole.update(maps, torch.arange(40))
    merged = RunningTopK(channels=5, k=7)
    for part in range(3):
        ids = torch.arange(part, 40, 3)
        tracker = RunningTopK(channels=5, k=7)
        tracker.update(maps[ids], ids)
        merged.fold(tracker.values, tracker.images, tracker.positions)
    assert torch.equal(merged.values, whole.values) and torch.equal(merged.images, whole.images)
    assert torch.equal(merged.positions, whole.positions)


def test_fewer_images_than_k_keeps_them_all():
    tracker = RunningTopK(channels=2, k=9)
    tracker.update(torch.rand(3, 2, 2, 2), torch.arange(3))
    assert tracker.values.shape == (2, 3)


def test_region_is_centred_on_the_cell_and_stays_inside():
    assert region(0, (7, 7), 224, 64) == (0, 0, 64)
    left, top, side = region(3 * 7 + 3, (7, 7), 224, 64)  # the centre cell
    assert (left + side / 2, top + side / 2) == (112, 112)
    assert region(48, (7, 7), 224, 64) == (160, 160, 64)


def test_streamed_examples_equal_brute_force_on_a_folder(tmp_path):
    loaded = load_model("test_efficientnet", random_weights=True)
    make_folder(tmp_path, {"n01440764": 5, "n01443537": 4}, loaded.input_size)
    folder = scan(tmp_path, folder_index(loaded, tmp_path))
    layers = {"blocks.2": [0, 3, 5], "bn2": [1, 7]}
    trackers, grids, read, skipped = stream_examples(loaded, folder, layers, k=4, batch_size=3)
    assert skipped == 0 and read == 9
    files = [f for c in folder.classes for f in c.files]  # an image's id is its place in the whole sample
    x = craft.to_model_input(loaded, torch.from_numpy(load_squares(tmp_path, files, loaded.input_size).pixels))
    with torch.no_grad():
        acts = capture(loaded.module, [channel(layer, 0) for layer in layers], x)
    for layer, channels in layers.items():
        values, images = brute_force(acts.layers[layer][:, channels], 4)
        assert torch.allclose(trackers[layer].values, values, atol=1e-5)
        assert torch.equal(trackers[layer].images, images)
        assert grids[layer] == tuple(acts.layers[layer].shape[-2:])
