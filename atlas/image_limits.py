"""What image files atlas reads: the one bound on size and shape for every image-folder reader.

A photo folder is the user's, but may hold anything: a 1 x 60000 strip that fitting to a square
would upscale to 224 x 13.4 million pixels, or a few kilobytes of PNG that decode to gigabytes
(a decompression bomb). Each reader opens a file lazily (the header only), asks `size_problem`,
and decodes only what passes, so that one image never takes more than a few hundred megabytes:
25 million pixels are 75 MB as RGB, and reading one makes at most three such copies (decode,
orientation, conversion). The fitted square of an image within the aspect bound is at most 10
times its side long before the crop.
"""

from __future__ import annotations

MAX_PIXELS = 25_000_000  # a 6000 x 4000 camera photo; ImageNet's are about 0.2 million
MAX_ASPECT = 10.0  # longer side over shorter side


def size_problem(size: tuple[int, int]) -> str | None:
    """Why an image of `size` (width, height) is not read, or None when it is."""
    width, height = size
    if width < 1 or height < 1:
        return f"{width} x {height} px holds no pixels"
    if width * height > MAX_PIXELS:
        return f"{width} x {height} px is over the {MAX_PIXELS / 1e6:.0f} million pixels atlas reads"
    if max(width, height) / min(width, height) > MAX_ASPECT:
        return f"{width} x {height} px is longer than {MAX_ASPECT:.0f} times its width"
    return None
