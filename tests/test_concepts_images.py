"""The image folder: WordNet-id folders, formats and modes, skipped files, the per-class sample, fingerprints."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from atlas.concepts.images import fit_square, load_squares, read_rgb, scan
from atlas.errors import AtlasError
from tests.photos import photo

WNIDS = {"n01440764": 0, "n01443537": 1, "n01484850": 2}


def write(path, image: Image.Image, **save) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **save)
    return path.name


@pytest.fixture
def folder(tmp_path):
    coffee = Image.fromarray(photo("coffee"))
    write(tmp_path / "n01440764" / "a.JPEG", coffee, format="JPEG")
    write(tmp_path / "n01440764" / "b.png", coffee.convert("L"))  # grayscale
    write(tmp_path / "n01440764" / "c.webp", coffee, format="WEBP")
    write(tmp_path / "n01443537" / "d.jpg", coffee.convert("CMYK"), format="JPEG")  # CMYK JPEG
    (tmp_path / "n01443537" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "n01443537" / "notes.txt").write_text("a stray file")
    (tmp_path / "README.md").write_text("top-level stray file")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    return tmp_path


def test_scan_finds_classes_and_counts_stray_files(folder):
    scanned = scan(folder, WNIDS)
    assert [(c.index, c.wnid, c.files) for c in scanned.classes] == [
        (0, "n01440764", ("n01440764/a.JPEG", "n01440764/b.png", "n01440764/c.webp")),
        (1, "n01443537", ("n01443537/broken.jpg", "n01443537/d.jpg")),
    ]
    assert scanned.not_images == 2  # notes.txt and README.md; hidden files are not counted
    assert scanned.images == 5


def test_unreadable_images_are_skipped_and_listed_modes_become_rgb(folder):
    squares = load_squares(folder, scan(folder, WNIDS).classes[1].files, 32)
    assert squares.skipped == ("n01443537/broken.jpg",)
    assert squares.files == ("n01443537/d.jpg",)
    assert squares.pixels.shape == (1, 32, 32, 3) and squares.pixels.dtype == np.uint8
    gray = load_squares(folder, ["n01440764/b.png"], 32).pixels[0].astype(int)
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    # CMYK decoded to the same colours as the RGB original, within JPEG's loss
    rgb = load_squares(folder, ["n01440764/a.JPEG"], 32).pixels[0].astype(float)
    cmyk = load_squares(folder, ["n01443537/d.jpg"], 32).pixels[0].astype(float)
    assert np.abs(rgb - cmyk).mean() < 12


def test_exif_orientation_is_applied(tmp_path):
    wide = np.zeros((20, 40, 3), dtype=np.uint8)
    wide[:, :20] = 255  # white on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(wide).save(path, exif=exif, quality=95)
    image = read_rgb(path)
    assert image.size == (20, 40)  # upright: taller than wide
    pixels = np.asarray(image).astype(int)
    assert pixels[:15].mean() > 200 and pixels[25:].mean() < 50  # the white half is now on top


def test_bad_folder_name_is_a_one_line_error_naming_it(folder):
    (folder / "cats").mkdir()
    with pytest.raises(AtlasError) as caught:
        scan(folder, WNIDS)
    message = str(caught.value)
    assert "\n" not in message and "cats" in message and "WordNet id" in message
    (folder / "cats").rmdir()
    (folder / "n99999999").mkdir()  # the right shape, but not one of the model's classes
    with pytest.raises(AtlasError, match="n99999999"):
        scan(folder, WNIDS)


def test_classes_filter_and_missing_class(folder):
    assert [c.index for c in scan(folder, WNIDS, classes=[1]).classes] == [1]
    with pytest.raises(AtlasError, match="n01484850"):
        scan(folder, WNIDS, classes=[2])


def test_sample_is_deterministic_capped_and_stable_when_files_are_added(tmp_path):
    image = Image.new("RGB", (8, 8))
    for i in range(30):
        write(tmp_path / "n01440764" / f"{i:02d}.png", image)
    first = scan(tmp_path, WNIDS, per_class=10).classes[0]
    assert len(first.files) == 10 and first.found == 30
    assert first.files == tuple(sorted(first.files))
    assert first.files != tuple(f"n01440764/{i:02d}.png" for i in range(10))  # not just the first names
    assert scan(tmp_path, WNIDS, per_class=10).classes[0] == first
    for i in range(30, 33):
        write(tmp_path / "n01440764" / f"{i:02d}.png", image)
    again = scan(tmp_path, WNIDS, per_class=10).classes[0]
    assert len(set(again.files) & set(first.files)) >= 7  # a new file displaces at most one old one


def test_fingerprint_follows_content_changes(tmp_path):
    path = tmp_path / "n01440764" / "a.png"
    write(path, Image.new("RGB", (8, 8)))
    before = scan(tmp_path, WNIDS)
    assert scan(tmp_path, WNIDS).fingerprint == before.fingerprint
    write(path, Image.new("RGB", (9, 9)))
    os.utime(path, ns=(1, 1))
    after = scan(tmp_path, WNIDS)
    assert after.classes[0].fingerprint != before.classes[0].fingerprint
    assert after.fingerprint != before.fingerprint


def test_fit_square_maps_boxes_back_to_source_pixels():
    image = Image.fromarray(photo("coffee"))  # 600 x 400
    square, placement = fit_square(image, 200)
    assert square.shape == (200, 200, 3)
    left, top, right, bottom = placement.source_box(50, 20, 100)
    assert (right - left, bottom - top) == (200, 200)  # 100 px of a 200 px square of a 400 px high photo
    cut = image.crop((left, top, right, bottom)).resize((100, 100), Image.Resampling.BICUBIC)
    source = np.asarray(cut, dtype=float)
    assert np.abs(source - square[20:120, 50:150]).mean() < 6


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(AtlasError, match="--images"):
        scan(tmp_path / "nope", WNIDS)
