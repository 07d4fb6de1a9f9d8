"""Scores: each picture's seeded crops, crop-averaged top-5, target hit rates."""

from __future__ import annotations

import torch

from atlas.models import LoadedModel
from atlas.record import target_rates
from atlas.scoring import SCALES, Judge, box_seed, judge_images, picture_digests, pixel_boxes, score_images


class MeanColour(torch.nn.Module):
    """Logits = 10 x mean of each channel, then 7 constant classes: class 0 is "red", 1 "green"..."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(10.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        colour = x.mean(dim=(2, 3)) * self.scale
        return torch.cat([colour, torch.zeros(x.shape[0], 7)], dim=1)


def colour_model(name: str, size: int = 16) -> LoadedModel:
    return LoadedModel(name, MeanColour().eval(), (0.5,) * 3, (0.5,) * 3, size, 10, "0" * 64, "test")


def solid(rgb: tuple[float, float, float], canvas: int = 40) -> torch.Tensor:
    return torch.tensor(rgb).view(3, 1, 1).expand(3, canvas, canvas).clone()


def test_boxes_are_seeded_inside_the_canvas_and_at_the_crop_scale():
    boxes = pixel_boxes(200, 50, seed=3, crop_min=0.2, crop_max=0.25)
    assert boxes == pixel_boxes(200, 50, seed=3, crop_min=0.2, crop_max=0.25)
    assert boxes != pixel_boxes(200, 50, seed=4, crop_min=0.2, crop_max=0.25)
    for top, left, side in boxes:
        assert 40 <= side <= 50
        assert 0 <= top <= 200 - side and 0 <= left <= 200 - side
    assert len({(top, left) for top, left, _ in boxes}) > 40


def test_scores_name_every_model_and_count_target_hits():
    images = torch.stack([solid((1, 0, 0)), solid((0, 1, 0)), solid((0, 0, 1))])
    judges = [Judge(colour_model("gen"), "generator"), Judge(colour_model("judge", size=24), "judge")]
    scores = score_images(images, judges, [0, 0, None], crops=4, seed=1, crop_min=0.2, crop_max=0.3)
    assert len(scores) == 3
    for score in scores:
        assert score.crops == 4 and score.crop_seed == 1 and score.crop_scale == (0.2, 0.3)
        assert [m.name for m in score.models] == ["gen", "judge"]
        assert [m.role for m in score.models] == ["generator", "judge"]
        for model in score.models:
            assert len(model.top5) == 5
            probs = [t.prob for t in model.top5]
            assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    red, green, blue = (s.models[0] for s in scores)
    assert red.top5[0].index == 0 and red.target_top1_rate == 1.0 and red.target_top5_rate == 1.0
    assert green.top5[0].index == 1 and green.target_top1_rate == 0.0
    # normalised, the green image's red channel is -1: logit -10, below the seven constant classes
    assert green.target_top5_rate == 0.0
    assert blue.target_top1_rate is None and blue.target_top5_rate is None and blue.target_prob is None


def test_value_range_changes_what_the_model_reads():
    image = solid((0.6, 0.5, 0.5)).unsqueeze(0)
    judge = [Judge(colour_model("gen"), "generator")]
    normalised = score_images(image, judge, [0], crops=2)[0].models[0].target_prob
    wide = score_images(image, judge, [0], crops=2, value_range=(-2.5, 2.5))[0].models[0].target_prob
    assert wide > normalised


def test_bench_quality_reads_the_typed_scores(tiny_resnet):
    from atlas import bench
    from atlas.presets import get_preset

    row = bench.quality(tiny_resnet, [], get_preset("cpu", canvas=32, steps=2, crops=1), [1, 2], "cpu",
                        config="tiny", batch=2, crops=2)
    assert set(row.per_class) == {1, 2}
    for scales in row.per_class.values():
        assert set(scales) == {"small", "large", "whole"}
        for rates in scales.values():
            top1, top5 = rates["test_resnet"]
            assert 0 <= top1 <= top5 <= 1
    assert set(row.stats) == {1, 2} and all(s["corner_ratio"] > 0 for s in row.stats.values())


def test_the_protocol_judges_every_image_at_the_same_three_scales():
    """A red picture with a green centre: red as a whole, green in most small crops near the centre."""
    image = solid((1, 0, 0), canvas=100)
    image[:, 25:75, 25:75] = torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1)
    judges = [Judge(colour_model("gen"), "generator"), Judge(colour_model("judge", size=24), "judge")]
    judged = judge_images(torch.stack([image, solid((0, 1, 0), canvas=100)]), judges, [0, 1], crops=8, seed=2)
    assert len(judged) == 2
    for j in judged:
        assert list(j) == list(SCALES)
        assert [j[s].crop_scale for s in SCALES] == list(SCALES.values())
        assert (j["small"].crops, j["large"].crops, j["whole"].crops) == (8, 8, 1)
    rates = target_rates(judged[0])
    assert rates["whole"]["gen"] == (1.0, 1.0) and rates["whole"]["judge"] == (1.0, 1.0)
    assert rates["small"]["gen"][0] < 0.5 < rates["whole"]["gen"][0]
    assert target_rates(judged[1])["small"]["judge"] == (1.0, 1.0)
    assert all(j[s].per_picture_boxes for j in judged for s in SCALES)
    # a picture's crops depend on the seed and its pixels only, not on what else is in the batch or where
    alone = judge_images(image[None], judges, [0], crops=8, seed=2)[0]
    assert target_rates(alone) == rates
    last = judge_images(torch.stack([solid((0, 0, 1), canvas=100), image]), judges, [2, 0], crops=8, seed=2)[1]
    assert target_rates(last) == rates
    assert target_rates(judge_images(image[None], judges, [0], crops=8, seed=3)[0]) != rates


def _centre_pictures(count: int) -> torch.Tensor:
    """`count` red pictures with a green centre, each with one pixel of its own (distinct pixels)."""
    image = solid((1.0, 0.0, 0.0), canvas=100)
    image[:, 30:70, 30:70] = torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1)
    images = image.expand(count, 3, 100, 100).clone()
    for k in range(count):
        images[k, 2, k // 100, k % 100] = 1 / 255
    return images


def test_each_picture_has_its_own_boxes_drawn_from_its_stored_pixels():
    images = _centre_pictures(3)
    digests = picture_digests(images)
    assert len(set(digests)) == 3
    # the same 8-bit pixels, as read back from a PNG or held channels-last on a device, draw the same boxes
    stored = (images * 255).round().to(torch.uint8).float() / 255
    assert picture_digests(stored.contiguous(memory_format=torch.channels_last)) == digests
    seeds = {box_seed(0, d, 0.2, 0.45) for d in digests}
    assert len(seeds) == 3 and box_seed(0, digests[0], 0.4, 0.8) not in seeds  # each scale its own draw
    assert len({tuple(pixel_boxes(100, 4, s, 0.2, 0.45)) for s in seeds}) == 3


def test_a_few_boxes_per_picture_average_out_over_pictures():
    """With boxes drawn per picture, the error of a few boxes is independent from picture to picture:
    the mean rate of 4 crops over 64 pictures lands near the rate of many crops, while every picture's
    own rate takes few values."""
    judges = [Judge(colour_model("gen"), "generator")]
    images = _centre_pictures(64)
    few = [target_rates(j)["small"]["gen"][0] for j in judge_images(images, judges, [1] * 64, crops=4, seed=0)]
    many = target_rates(judge_images(images[:1], judges, [1], crops=512, seed=0)[0])["small"]["gen"][0]
    assert 0.2 < many < 0.95  # the green centre is top-1 in some small crops, not all
    assert len(set(few)) > 1  # the pictures did not all see the same boxes
    assert abs(sum(few) / len(few) - many) < 0.1
