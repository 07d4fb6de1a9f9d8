"""The torch NMF against scikit-learn's, batching, padding, and the fixed-concept transform."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from atlas.concepts.nmf import nmf, nmf_transform
from tests.concept_folders import one_thread  # noqa: F401 - a fixture
from tests.photos import photo

pytestmark = pytest.mark.usefixtures("one_thread")


def photo_patches(count: int = 200, side: int = 5, seed: int = 0) -> np.ndarray:
    """(count, side*side*3) pixel patches of two real photographs: a non-negative matrix of real data."""
    rng = np.random.default_rng(seed)
    rows = []
    for name in ("coffee", "chelsea"):
        image = photo(name).astype(np.float64) / 255.0
        for _ in range(count // 2):
            top, left = rng.integers(0, image.shape[0] - side), rng.integers(0, image.shape[1] - side)
            rows.append(image[top : top + side, left : left + side].ravel())
    return np.stack(rows)


def sklearn_error(x: np.ndarray, k: int) -> float:
    from sklearn.decomposition import NMF

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's ConvergenceWarning at max_iter: its error is what we compare
        model = NMF(n_components=k, init="nndsvda", solver="cd", max_iter=300, random_state=0).fit(x)
    return float(model.reconstruction_err_)


@pytest.mark.parametrize("k", [2, 5])
def test_reconstruction_error_matches_sklearn_on_photo_patches(k):
    x = photo_patches()
    fit = nmf(torch.tensor(x), k)
    ours = float(fit.relative_error) * np.linalg.norm(x)
    reference = sklearn_error(x, k)
    assert ours <= reference * 1.03, (ours, reference)
    assert ours >= reference * 0.9  # not a different (broken) error measure
    u, w = fit.coefficients.double(), fit.concepts.double()
    assert (u >= 0).all() and (w >= 0).all()
    assert torch.allclose(w.norm(dim=1), torch.ones(k, dtype=torch.float64), atol=1e-5)
    assert abs(float((torch.tensor(x) - u @ w).norm()) - ours) < 1e-3 * ours


def test_recovers_planted_factors():
    generator = torch.Generator().manual_seed(0)
    u = torch.rand(200, 3, generator=generator) ** 3  # sparse-ish coefficients
    w = torch.zeros(3, 30)
    w[0, :10], w[1, 10:20], w[2, 20:] = 1.0, 1.0, 1.0  # disjoint supports: unique up to order and scale
    fit = nmf(u @ w, 3)
    assert float(fit.relative_error) < 1e-3
    match = (torch.nn.functional.normalize(w, dim=1) @ fit.concepts.T).max(dim=1).values
    assert (match > 0.999).all()


def test_batched_classes_equal_separate_fits_and_padding_changes_nothing():
    x = torch.tensor(photo_patches(200), dtype=torch.float32)
    a, b = x[:120], x[80:]
    padded_b = torch.cat([b, torch.zeros(a.shape[0] - b.shape[0], b.shape[1])])
    batched = nmf(torch.stack([a, padded_b]), 3, iterations=60, tol=0)
    alone_a, alone_b = nmf(a, 3, iterations=60, tol=0), nmf(b, 3, iterations=60, tol=0)
    assert torch.allclose(batched.concepts[0], alone_a.concepts, atol=1e-3)
    assert torch.allclose(batched.concepts[1], alone_b.concepts, atol=1e-3)
    assert torch.equal(batched.coefficients[1, b.shape[0]:], torch.zeros_like(batched.coefficients[1, b.shape[0]:]))


def test_transform_solves_coefficients_for_fixed_concepts():
    generator = torch.Generator().manual_seed(1)
    w = torch.rand(4, 20, generator=generator)
    u = torch.rand(50, 4, generator=generator)
    u[u < 0.3] = 0  # on the boundary of the non-negative orthant
    solved = nmf_transform(u @ w, w, iterations=300)
    assert torch.allclose(solved, u, atol=1e-3)


def test_rejects_negative_input():
    with pytest.raises(ValueError, match="non-negative"):
        nmf(torch.tensor([[1.0, -1.0], [0.5, 0.5]]), 1)


def test_cpu_fit_leaves_the_thread_count_as_it_was():
    torch.set_num_threads(2)  # the one_thread fixture restores the session's count afterwards
    nmf(torch.rand(30, 8), 2, iterations=20)
    nmf_transform(torch.rand(5, 8), torch.rand(2, 8), iterations=5)
    assert torch.get_num_threads() == 2
