"""The magnitude spectrum: shipped default, user files, resizing, computing one from photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from atlas import spectrum as spectrum_module
from atlas.cli import main
from atlas.errors import AtlasError
from atlas.spectrum import (
    DEFAULT_SPECTRUM_SHA256,
    compute_spectrum,
    load_spectrum,
    resize_spectrum,
    spectrum_sha256,
)
from tests.photos import photo

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "china.jpg", "flower.jpg")


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return load_spectrum()


def radial_profile(spectrum: np.ndarray) -> np.ndarray:
    """Mean magnitude (over channels) on rings of integer radius 1 .. N/2, in bins of the N grid."""
    n = spectrum.shape[1]
    fy = np.fft.fftfreq(n)[:, None] * n
    fx = np.fft.rfftfreq(n)[None, :] * n
    ring = np.rint(np.sqrt(fy**2 + fx**2)).astype(int)
    mean = spectrum.mean(0)
    return np.array([mean[ring == r].mean() for r in range(1, n // 2 + 1)])


def test_default_spectrum_is_the_authors_file(reference):
    assert reference.shape == (3, 512, 257) and reference.dtype == np.float32
    assert spectrum_sha256() == DEFAULT_SPECTRUM_SHA256
    assert spectrum_sha256(reference) == DEFAULT_SPECTRUM_SHA256  # an array hashes like its np.save file
    notice = (spectrum_module.default_spectrum_path().parent / "LICENSE-xplique.txt").read_text()
    assert "Copyright (c) 2020 IRT Antoine de Saint Exupery et Universite Paul Sabatier Toulouse III" in notice
    assert "Permission is hereby granted, free of charge" in notice


def test_damaged_default_is_refused(tmp_path, monkeypatch, reference):
    damaged = tmp_path / "spectrum.npy"
    np.save(damaged, reference * 1.001)
    monkeypatch.setattr(spectrum_module, "default_spectrum_path", lambda: damaged)
    with pytest.raises(AtlasError, match="reinstall"):
        load_spectrum()


def test_user_spectra_are_checked(tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, np.ones((3, 64, 33), dtype=np.float64))
    loaded = load_spectrum(good)
    assert loaded.shape == (3, 64, 33) and loaded.dtype == np.float32
    assert spectrum_sha256(good) != DEFAULT_SPECTRUM_SHA256

    wrong_shape = tmp_path / "wrong.npy"
    np.save(wrong_shape, np.ones((3, 64, 64)))
    with pytest.raises(AtlasError, match=r"\(3, N, N//2\+1\)"):
        load_spectrum(wrong_shape)
    negative = tmp_path / "negative.npy"
    np.save(negative, -np.ones((3, 64, 33)))
    with pytest.raises(AtlasError, match="negative"):
        load_spectrum(negative)
    with pytest.raises(AtlasError, match="does not exist"):
        load_spectrum(tmp_path / "missing.npy")
    text = tmp_path / "text.npy"
    text.write_text("not an array")
    with pytest.raises(AtlasError, match="numpy.save"):
        load_spectrum(text)


def test_resize_to_the_same_size_is_the_identity(reference):
    np.testing.assert_array_equal(resize_spectrum(reference, 512), reference)


@pytest.mark.parametrize("size", [1280, 255, 321])
def test_resize_samples_the_same_frequencies(reference, size):
    resized = resize_spectrum(reference, size)
    assert resized.shape == (3, size, size // 2 + 1) and resized.dtype == np.float32
    # bins at a frequency the 512 grid also has (k/size == j/512) take the source's value
    for k in range(1, size // 2 + 1):
        if (k * 512) % size == 0:
            j = k * 512 // size
            np.testing.assert_allclose(resized[:, 0, k], reference[:, 0, j], rtol=1e-5)
            np.testing.assert_allclose(resized[:, k, 0], reference[:, j, 0], rtol=1e-5)
            np.testing.assert_allclose(resized[:, -k, 0], reference[:, -j, 0], rtol=1e-5)
    # and the radial profile, compared at the same frequencies, follows the source's
    source = radial_profile(reference)
    ours = radial_profile(resized)
    freqs = np.arange(1, size // 2 + 1) / size
    expected = np.interp(freqs, np.arange(1, 257) / 512, source)
    inside = (freqs >= 2 / 512) & (freqs <= 0.45)
    ratio = ours[inside] / expected[inside]
    assert np.all(np.abs(ratio - 1) < 0.1), ratio.min()


def test_resize_keeps_dc_out_of_the_low_frequencies(reference):
    ours = resize_spectrum(reference, 1280)
    lowest_source = np.stack([reference[:, 0, 1], reference[:, 1, 0], reference[:, -1, 0]])
    for bins in ([(0, 1), (1, 0), (-1, 0)], [(0, 2), (2, 0), (-2, 0)]):
        lowest = np.stack([ours[:, y, x] for y, x in bins])
        # below 1/512 there is no data: values stay at the level of the source's lowest ring
        assert lowest.max() < 1.2 * lowest_source.max()
    # the reference's image-style bilinear resize smears DC into these bins (the check can fail)
    smeared = F.interpolate(torch.tensor(reference)[None], size=(1280, 641), mode="bilinear",
                            align_corners=False, antialias=True)[0].numpy()
    assert smeared[:, 0, 1].min() > 1.5 * lowest_source.max()


@pytest.mark.parametrize("size", [1280, 255])
def test_resize_keeps_each_channels_mean_to_std_ratio(reference, size):
    def dc_over_ac(spec):
        n = spec.shape[1]
        weights = np.full(n // 2 + 1, 2.0)
        weights[0] = 1.0
        if n % 2 == 0:
            weights[-1] = 1.0
        power = (spec.astype(np.float64) ** 2 * weights).sum(axis=(1, 2)) - spec[:, 0, 0].astype(np.float64) ** 2
        return spec[:, 0, 0] / np.sqrt(power)

    np.testing.assert_allclose(dc_over_ac(resize_spectrum(reference, size)), dc_over_ac(reference), rtol=1e-5)


def test_compute_spectrum_needs_images(tmp_path):
    with pytest.raises(AtlasError, match="not a folder"):
        compute_spectrum(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(AtlasError, match="no images"):
        compute_spectrum(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(AtlasError, match="broken.png"):
        compute_spectrum(tmp_path, size=32, progress=False)


def test_spectrum_command_on_photos_matches_the_reference(tmp_path, reference, capsys):
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    for i, name in enumerate(PHOTOS):
        suffix = ".jpg" if i % 2 else ".png"  # both readers; a subfolder is searched too
        target = folder / ("more" if i % 2 else "") / f"{name.removesuffix('.jpg')}{suffix}"
        Image.fromarray(photo(name)).convert("RGB").save(target, quality=95, compress_level=1)
    output = tmp_path / "out" / "spectrum.npy"
    assert main(["spectrum", str(folder), "-o", str(output), "--size", "256", "--quiet"]) == 0
    assert spectrum_sha256(output) in capsys.readouterr().out

    ours = load_spectrum(output)
    assert ours.shape == (3, 256, 129)
    reference = resize_spectrum(reference, 256)
    correlation = np.corrcoef(np.log(radial_profile(ours)), np.log(radial_profile(reference)))[0, 1]
    assert correlation >= 0.95, correlation
    # same units: ImageNet-normalised, decorrelated pixels give magnitudes of the reference's order
    ratio = radial_profile(ours)[:128] / radial_profile(reference)[:128]
    assert 0.3 < np.median(ratio) < 3, np.median(ratio)


def test_spectrum_command_rejects_bad_output(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    assert main(["spectrum", str(tmp_path), "-o", str(tmp_path / "spectrum.txt")]) == 1
