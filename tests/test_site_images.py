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


def test_crops_are_linked_from_the_cache_or_copied_and_never_written_twice(tmp_path, monkeypatch):
    import os

    from atlas.site import images
    from atlas.site.check import inspect_site

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "a.webp").write_bytes(b"RIFF a")
    (cache / "b.webp").write_bytes(b"RIFF b")
    (cache / "c.webp").symlink_to(cache / "b.webp")  # not a plain file: copied, never linked
    crops = {f"crops/{name}": cache / name for name in ("a.webp", "b.webp", "c.webp")}
    out = tmp_path / "site"
    assert images.copy_crops(crops, out) == sorted(crops)
    assert (out / "crops/a.webp").samefile(cache / "a.webp")  # one file on disk, not a second copy
    assert not (out / "crops/c.webp").is_symlink() and (out / "crops/c.webp").read_bytes() == b"RIFF b"
    assert images.copy_crops(crops, out) == []  # there already: their names are their content

    def no_links(*_args, **_kwargs):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    elsewhere = tmp_path / "site-2"
    assert images.copy_crops(crops, elsewhere) == sorted(crops)
    assert not (elsewhere / "crops/a.webp").samefile(cache / "a.webp")
    assert (elsewhere / "crops/a.webp").read_bytes() == b"RIFF a"
    (elsewhere / "index.html").write_text('<img src="crops/a.webp"><img src="crops/nope.webp">')
    (elsewhere / "crops" / "link.webp").symlink_to(elsewhere / "crops/a.webp")
    report = inspect_site(elsewhere)  # the walk by scandir: sizes, links and symlinks as before
    assert report.files == 4 and report.links == 2
    assert report.problems[:2] == ["crops/link.webp is a symlink (GitHub Pages and downloads need real files)",
                                   "index.html: 'crops/nope.webp' does not exist"]
