"""atlas.display: the image stretch, the attribution alpha and the overlay, as both reference codes show them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from atlas.display import attribution_alpha, display_image, overlay_rgba
from atlas.errors import AtlasError


def test_display_image_clips_percentiles_over_all_channels_together():
    rng = np.random.default_rng(0)
    img = rng.normal(size=(3, 40, 50)).astype(np.float32)
    img[0, 0, 0] = 100.0  # an outlier the 99th percentile must clip
    out = display_image(img)
    assert out.shape == (40, 50, 3) and out.dtype == np.uint8
    lo, hi = np.percentile(img, [1, 99])
    expected = np.round((np.clip(img, lo, hi) - lo) / (hi - lo) * 255).astype(np.uint8).transpose(1, 2, 0)
    np.testing.assert_array_equal(out, expected)
    assert out.min() == 0 and out.max() == 255
    # one pair of bounds for all channels: a dim channel stays dim
    img2 = np.stack([img[1], img[1] * 0.2, img[2]])
    out2 = display_image(img2)
    assert out2[..., 1].std() < out2[..., 0].std() / 2


def test_display_image_accepts_channels_last_and_flat_images():
    rng = np.random.default_rng(1)
    hwc = rng.random((20, 30, 3))
    np.testing.assert_array_equal(display_image(hwc), display_image(hwc.transpose(2, 0, 1)))
    flat = display_image(np.full((3, 8, 8), 0.3))
    assert (flat == 128).all()
    with pytest.raises(AtlasError):
        display_image(np.zeros((4, 8, 8)))


def test_attribution_alpha_clips_at_80th_percentile_and_divides_by_max():
    rng = np.random.default_rng(2)
    attr = rng.random((3, 30, 30)) ** 3
    alpha = attribution_alpha(attr)
    mean = attr.mean(0)
    p80 = np.percentile(mean, 80)
    np.testing.assert_allclose(alpha, np.minimum(mean, p80) / p80, rtol=1e-6)
    assert alpha.dtype == np.float32 and alpha.max() == pytest.approx(1.0)
    assert (alpha == 1.0).mean() == pytest.approx(0.2, abs=0.01)  # the top fifth is fully opaque
    np.testing.assert_allclose(attribution_alpha(mean), alpha, rtol=1e-6)  # (H, W) input: the cache's form
    assert not attribution_alpha(np.zeros((5, 5))).any()


def test_matches_horama_plot_maco_display():
    # The authors' own display code (horama.plots.plot_maco), rebuilt from its helpers.
    from horama import plots as horama_plots
    rng = np.random.default_rng(3)
    image = rng.random((3, 24, 24)).astype(np.float32)
    attr = (rng.random((3, 24, 24)) ** 2).astype(np.float32)
    ref_img = horama_plots.normalize(horama_plots.clip_percentile(np.moveaxis(image, 0, -1), 1.0))
    ref_alpha = np.mean(np.moveaxis(attr, 0, -1), -1)
    ref_alpha = np.clip(ref_alpha, None, np.percentile(ref_alpha, 80))
    ref_alpha = ref_alpha / ref_alpha.max()
    np.testing.assert_allclose(display_image(image) / 255.0, ref_img, atol=1 / 255 + 1e-6)
    np.testing.assert_allclose(attribution_alpha(attr), ref_alpha, atol=1e-6)


def test_overlay_keeps_the_display_image_and_the_attribution_as_alpha():
    image = np.zeros((3, 4, 4))
    image[0] = np.linspace(0, 1, 16).reshape(4, 4)
    attr = np.zeros((4, 4))
    attr[0, :] = 1.0  # the top row matters, the rest not at all
    rgba = overlay_rgba(image, attr)
    assert rgba.shape == (4, 4, 4) and rgba.dtype == np.uint8
    assert (rgba[0, :, 3] == 255).all() and (rgba[1:, :, 3] == 0).all()
    np.testing.assert_array_equal(rgba[..., :3], display_image(image))  # colours untouched, even where transparent
    with pytest.raises(AtlasError):
        overlay_rgba(image, np.ones((5, 5)))


def test_display_imports_no_torch():
    code = "import sys, atlas.display; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
