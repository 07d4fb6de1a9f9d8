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


def test_crops_are_copied_once_after_their_hash_and_the_site_check_walks_by_scandir(tmp_path):
    import hashlib

    from atlas.site import images
    from atlas.site.check import inspect_site

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "a.webp").write_bytes(b"RIFF a")
    (cache / "b.webp").write_bytes(b"RIFF b")
    crops = {f"crops/{name}": cache / name for name in ("a.webp", "b.webp")}
    sha = {cache / n: hashlib.sha256((cache / n).read_bytes()).hexdigest() for n in ("a.webp", "b.webp")}
    out = tmp_path / "site"
    assert images.copy_crops(crops, out, sha) == sorted(crops)
    assert not (out / "crops/a.webp").samefile(cache / "a.webp")  # a copy: the site never shares the cache's files
    assert (out / "crops/a.webp").read_bytes() == b"RIFF a"
    assert images.copy_crops(crops, out, sha) == []  # there already: their names are their content
    (cache / "c.webp").symlink_to(cache / "b.webp")  # a link in the cache is never followed
    failed: dict = {}
    linked = {"crops/c.webp": cache / "c.webp"}
    assert images.copy_crops(linked, out, {cache / "c.webp": sha[cache / "b.webp"]}, failed) == []
    assert list(failed) == [cache] and not (out / "crops/c.webp").exists()
    elsewhere = out
    (elsewhere / "index.html").write_text('<img src="crops/a.webp"><img src="crops/nope.webp">')
    (elsewhere / "crops" / "link.webp").symlink_to(elsewhere / "crops/a.webp")
    report = inspect_site(elsewhere)  # the walk by scandir: sizes, links and symlinks as before
    assert report.files == 3 and report.links == 2  # a.webp, b.webp and index.html; the link is no file
    assert report.problems[:2] == ["crops/link.webp is a symlink (GitHub Pages and downloads need real files)",
                                   "index.html: 'crops/nope.webp' does not exist"]
