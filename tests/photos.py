"""Real photographs that ship inside scikit-image and scikit-learn."""

from __future__ import annotations

import numpy as np


def photo(name: str) -> np.ndarray:
    """An RGB uint8 photo: skimage.data names (coffee, chelsea, astronaut, ...) or sklearn's china.jpg/flower.jpg."""
    if name.endswith(".jpg"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(name)
    from skimage import data

    return getattr(data, name)()
