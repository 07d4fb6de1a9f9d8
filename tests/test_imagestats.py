"""Image statistics: corner glow, border energy and high-frequency share on images built to have them."""

from __future__ import annotations

import numpy as np
import pytest

from atlas.errors import AtlasError
from atlas.imagestats import border_energy_share, corner_ratio, high_frequency_share, image_stats, luminance


def grey(value: float, side: int = 100) -> np.ndarray:
    return np.full((side, side, 3), value)


def test_luminance_takes_either_channel_order():
    image = np.random.default_rng(0).random((3, 20, 30))
    np.testing.assert_allclose(luminance(image), luminance(np.moveaxis(image, 0, -1)))
    np.testing.assert_allclose(luminance(grey(0.5, 4)), 0.5)
    with pytest.raises(AtlasError, match="RGB image"):
        luminance(np.zeros((20, 30)))


def test_corner_ratio_sees_bright_corners_only():
    assert corner_ratio(grey(0.4)) == pytest.approx(1.0)
    glow = grey(0.4)
    for rows in (slice(0, 10), slice(90, 100)):
        for cols in (slice(0, 10), slice(90, 100)):
            glow[rows, cols] = 0.8
    # corners 0.8, mean 0.4 + 0.04 * 0.4 = 0.416
    assert corner_ratio(glow) == pytest.approx(0.8 / 0.416)
    centre = grey(0.4)
    centre[40:60, 40:60] = 0.8
    assert corner_ratio(centre) < 1.0
    assert corner_ratio(np.moveaxis(glow, -1, 0) * 255).__round__(6) == round(corner_ratio(glow), 6)


def test_border_share_is_the_frames_area_for_even_contrast_and_more_for_a_frame():
    noise = np.random.default_rng(1).random((200, 200, 3))
    assert border_energy_share(noise) == pytest.approx(1 - 0.8**2, abs=0.02)
    frame = grey(0.5)
    frame[:10] = frame[-10:] = 1.0
    frame[:, :10] = frame[:, -10:] = 1.0
    area = 1 - 0.8**2
    mean = 0.5 + 0.5 * area
    frame_energy = area * (1 - mean) ** 2
    assert border_energy_share(frame) == pytest.approx(frame_energy / (frame_energy + (1 - area) * (0.5 - mean) ** 2))
    assert border_energy_share(frame) > 0.6
    assert border_energy_share(grey(0.3)) == 0.0


def test_high_frequency_share_separates_smooth_from_noisy():
    y, x = np.mgrid[0:128, 0:128] / 128
    smooth = np.repeat(np.sin(2 * np.pi * x)[..., None], 3, axis=-1)
    checker = np.repeat(((np.indices((128, 128)).sum(0) % 2) * 1.0)[..., None], 3, axis=-1)
    assert high_frequency_share(smooth) < 1e-6
    assert high_frequency_share(checker) > 0.99
    assert high_frequency_share(grey(0.2)) == 0.0


def test_image_stats_are_the_record_values():
    image = np.random.default_rng(2).random((64, 64, 3))
    stats = image_stats(image)
    assert set(stats) == {"corner_ratio", "border_energy_share", "high_frequency_share"}
    assert stats["corner_ratio"] == round(corner_ratio(image), 4)
