"""How a rendered image and its attribution are shown: numpy and Pillow only, no torch.

Both reference codes (horama, xplique) display a MACO result the same way: the image
clipped at its 1st/99th percentiles and stretched to the full range over all channels
together; the attribution averaged over colour channels, clipped at its 80th percentile and
divided by its max, so that the top 20% of pixels are fully opaque. Both then composite that
alpha over white; we keep it as the image's alpha channel (a transparent WebP on the site), so
the overlay fades into the page's own background, light or dark.
"""

from __future__ import annotations

import numpy as np

from atlas.errors import AtlasError

IMAGE_PERCENTILES = (1.0, 99.0)
ALPHA_PERCENTILE = 80.0


def _channels_last(image: np.ndarray) -> np.ndarray:
    """(3, H, W) or (H, W, 3) -> (H, W, 3); channels last wins when both axes are 3."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 3:
        return image
    if image.ndim == 3 and image.shape[0] == 3:
        return np.moveaxis(image, 0, -1)
    raise AtlasError(f"expected an RGB image of shape (3, H, W) or (H, W, 3), got {image.shape}")


def display_image(image: np.ndarray) -> np.ndarray:
    """Image for display: clipped at its 1st/99th percentiles, min-max scaled to uint8 (H, W, 3).

    One pair of bounds for all channels together, so colours keep their balance. A flat
    image (no spread after clipping) becomes mid-grey rather than dividing by zero.
    """
    rgb = np.nan_to_num(_channels_last(image).astype(np.float64))
    lo, hi = np.percentile(rgb, IMAGE_PERCENTILES)
    if hi <= lo:
        return np.full(rgb.shape, 128, dtype=np.uint8)
    scaled = (np.clip(rgb, lo, hi) - lo) / (hi - lo)
    return np.round(scaled * 255.0).astype(np.uint8)


def attribution_alpha(attribution: np.ndarray) -> np.ndarray:
    """Opacity in [0, 1], float32 (H, W), from an (H, W) or (3, H, W) attribution.

    Channel mean, clipped at its 80th percentile, divided by its max. Negative values
    (not produced by MACO, whose attribution sums absolute gradients) count as zero; an
    attribution with no positive value gives a fully transparent alpha.
    """
    attr = np.nan_to_num(np.asarray(attribution, dtype=np.float64))
    if attr.ndim == 3 and attr.shape[0] == 3:
        attr = attr.mean(axis=0)
    elif attr.ndim == 3 and attr.shape[-1] == 3:
        attr = attr.mean(axis=-1)
    if attr.ndim != 2:
        raise AtlasError(f"expected an attribution of shape (H, W) or (3, H, W), got {attr.shape}")
    attr = np.clip(attr, 0.0, np.percentile(attr, ALPHA_PERCENTILE))
    top = attr.max()
    if top <= 0:
        return np.zeros(attr.shape, dtype=np.float32)
    return (attr / top).astype(np.float32)


def overlay_rgba(image: np.ndarray, attribution: np.ndarray) -> np.ndarray:
    """The display image with the attribution as its alpha channel: uint8 (H, W, 4)."""
    rgb = display_image(image)
    alpha = attribution_alpha(attribution)
    if alpha.shape != rgb.shape[:2]:
        raise AtlasError(
            f"attribution {alpha.shape} and image {rgb.shape[:2]} differ in size; re-render the entry"
        )
    a8 = np.round(alpha * 255.0).astype(np.uint8)
    return np.concatenate([rgb, a8[..., None]], axis=-1)
