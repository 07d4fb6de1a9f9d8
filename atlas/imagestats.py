"""Image statistics that catch artefacts the classifiers do not: numpy only, no torch.

A MACO image whose phases add up coherently at one pixel shows a bright spot there; on the
periodic canvas pixel (0, 0) is all four corners, so the artefact is a glow in the corners.
`corner_ratio` measures it directly; `border_energy_share` catches any frame-shaped artefact
(about 0.36, the border's share of the area, when contrast is spread evenly);
`high_frequency_share` tells whether a change made the pictures noisier.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from atlas.errors import AtlasError

CORNER = 0.10  # side of each corner square, and width of the border, as a fraction of the image side
LUMA = (0.299, 0.587, 0.114)  # Rec. 601 weights
FLAT = 1e-9  # a luminance spread below this is a flat image (rounding, not contrast)


def luminance(image: np.ndarray) -> np.ndarray:
    """(H, W) float64 luminance of an RGB image (3, H, W) or (H, W, 3), uint8 or float."""
    rgb = np.asarray(image, dtype=np.float64)
    if rgb.ndim != 3 or 3 not in (rgb.shape[0], rgb.shape[-1]):
        raise AtlasError(f"expected an RGB image of shape (3, H, W) or (H, W, 3), got {rgb.shape}")
    if rgb.shape[-1] != 3:
        rgb = np.moveaxis(rgb, 0, -1)
    return rgb @ np.asarray(LUMA)


def _edge(side: int) -> int:
    return max(1, round(CORNER * side))


def corner_ratio(image: np.ndarray) -> float:
    """Mean luminance of the four corner squares (10% of the side) over the image's mean; 1 = no glow."""
    lum = luminance(image)
    e = _edge(min(lum.shape))
    corners = np.concatenate([lum[:e, :e], lum[:e, -e:], lum[-e:, :e], lum[-e:, -e:]], axis=None)
    mean = lum.mean()
    return float(corners.mean() / mean) if mean > 0 else 1.0


def border_energy_share(image: np.ndarray) -> float:
    """Share of the luminance's variance (squared deviation from its mean) in the outer 10% frame."""
    lum = luminance(image)
    if np.ptp(lum) < FLAT:
        return 0.0
    energy = (lum - lum.mean()) ** 2
    total = energy.sum()
    e = _edge(min(lum.shape))
    inner = energy[e:-e, e:-e].sum()
    return float((total - inner) / total)


def high_frequency_share(image: np.ndarray) -> float:
    """Share of the luminance's spectral power (DC excluded) above half the Nyquist frequency."""
    lum = luminance(image)
    if np.ptp(lum) < FLAT:
        return 0.0
    power = np.abs(np.fft.rfft2(lum - lum.mean())) ** 2
    fy = np.fft.fftfreq(lum.shape[0])[:, None]
    fx = np.fft.rfftfreq(lum.shape[1])[None, :]
    total = power.sum()
    return float(power[np.maximum(np.abs(fy), fx) > 0.25].sum() / total)


def image_stats(image: np.ndarray) -> dict[str, Any]:
    """The record's "image_stats": every statistic above, rounded for JSON."""
    return {
        "corner_ratio": round(corner_ratio(image), 4),
        "border_energy_share": round(border_energy_share(image), 4),
        "high_frequency_share": round(high_frequency_share(image), 5),
    }
