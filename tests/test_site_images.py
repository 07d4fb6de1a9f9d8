"""Derived images: the overlay keeps the attribution as alpha (transparent WebP), the plain image has none."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tests.site_support import sample_site


def test_overlays_are_transparent_webp_and_plain_images_opaque(tmp_path_factory):
    site = sample_site(tmp_path_factory)
    overlays = sorted(site.glob("media/*/detail-overlay.webp")) + sorted(site.glob("media/*/thumb-overlay.webp"))
    assert overlays
    for path in overlays:
        with Image.open(path) as im:
            assert im.format == "WEBP" and im.mode == "RGBA", path
            alpha = np.asarray(im)[..., 3]
        # the top fifth of the attribution is opaque, the rest fades out: both ends are present
        assert alpha.max() >= 250 and alpha.min() <= 60 and (alpha >= 250).mean() > 0.1, path
        with Image.open(path.with_name(path.name.replace("-overlay", ""))) as plain:
            assert plain.mode == "RGB"
            colours = np.asarray(plain).astype(int)
            opaque = alpha >= 250
            # where the overlay is opaque it shows the plain image's colours (up to WebP's loss)
            with Image.open(path) as im:
                shown = np.asarray(im)[..., :3].astype(int)
            assert np.abs(shown[opaque] - colours[opaque]).mean() < 12, path
