"""Image parameterisations against the authors' code (horama 0.3.0), per-sample, any canvas size."""

from __future__ import annotations

import pytest
import torch
from horama.fourier_fv import fourier_preconditionner, get_fft_scale
from horama.maco_fv import maco_preconditioner

from atlas.errors import AtlasError
from atlas.param import (
    COLOR_RECORRELATION,
    FourierParam,
    MacoParam,
    fourier_image,
    fourier_scale,
    maco_image,
    make_param,
)
from atlas.spectrum import load_spectrum, resize_spectrum

HORAMA_RANGE = (-2.5, 2.5)


def magnitude(size: int) -> torch.Tensor:
    return torch.from_numpy(resize_spectrum(load_spectrum(), size))


def generators(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


def to_horama_range(image: torch.Tensor) -> torch.Tensor:
    low, high = HORAMA_RANGE
    return image * (high - low) + low


@pytest.mark.parametrize("size", [64, 96])
def test_maco_image_matches_horama(size):
    mag = magnitude(size)
    phase = torch.randn((3, 3, size, size // 2 + 1), generator=torch.Generator().manual_seed(1))
    ours = to_horama_range(maco_image(phase, mag))
    for k in range(3):  # each sample is standardised on its own, exactly like one horama run
        theirs = maco_preconditioner(mag, phase[k], HORAMA_RANGE, "cpu")
        torch.testing.assert_close(ours[k], theirs, atol=1e-5, rtol=0)


def test_fourier_image_matches_horama():
    size = 64
    coefficients = torch.randn((2, 3, size, size // 2 + 1, 2), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(fourier_scale(size).to(torch.complex64)[None], get_fft_scale(size, size, 1.5))
    ours = to_horama_range(fourier_image(coefficients, fourier_scale(size)))
    for k in range(2):
        theirs = fourier_preconditionner(torch.view_as_complex(coefficients[k]), get_fft_scale(size, size, 1.5),
                                         HORAMA_RANGE, "cpu")
        torch.testing.assert_close(ours[k], theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [63, 64, 65])
def test_maco_keeps_the_magnitude_for_any_size(size):
    """Undo sigmoid and colours: the image's spectrum is the fixed magnitude times one scale."""
    mag = magnitude(size).double()
    phase = torch.randn((1, 3, size, size // 2 + 1), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    image = maco_image(phase, mag)
    assert image.shape == (1, 3, size, size)
    assert torch.all((image > 0) & (image < 1))
    x = torch.logit(image[0])
    decorrelated = torch.einsum("dhw,dc->chw", x, torch.linalg.inv(torch.tensor(COLOR_RECORRELATION).double()))
    spectrum = torch.fft.rfft2(decorrelated).abs()
    # columns 0 and N/2 (even N) must be Hermitian, so irfft2 cannot keep arbitrary phases there
    last = size // 2 if size % 2 == 0 else size // 2 + 1
    ratio = spectrum[:, :, 1:last] / mag[:, :, 1:last]
    assert torch.allclose(ratio, ratio.mean(), rtol=1e-6)


def test_batch_equals_separate_images():
    size = 48
    mag = magnitude(size)
    phase = torch.randn((4, 3, size, size // 2 + 1), generator=torch.Generator().manual_seed(4))
    batch = maco_image(phase, mag)
    for k in range(4):
        torch.testing.assert_close(batch[k : k + 1], maco_image(phase[k : k + 1], mag), atol=1e-6, rtol=0)
    coefficients = torch.randn((3, 3, size, size // 2 + 1, 2))
    batch = fourier_image(coefficients, fourier_scale(size))
    torch.testing.assert_close(batch[1:2], fourier_image(coefficients[1:2], fourier_scale(size)), atol=1e-6, rtol=0)


def test_params_draw_a_normal_init_from_each_samples_generator():
    size = 33
    batch = MacoParam(magnitude(size), generators(5, 6), torch.device("cpu"))
    alone = MacoParam(magnitude(size), generators(6), torch.device("cpu"))
    assert batch.params.shape == (2, 3, size, size // 2 + 1) and batch.params.requires_grad
    torch.testing.assert_close(batch.params[1:], alone.params)
    assert abs(batch.params.std().item() - 1) < 0.05 and abs(batch.params.mean().item()) < 0.05
    fourier = FourierParam(size, generators(5), torch.device("cpu"))
    assert fourier.params.shape == (1, 3, size, size // 2 + 1, 2)
    image = fourier()
    assert image.shape == (1, 3, size, size) and torch.isfinite(image).all()
    image.sum().backward()
    assert fourier.params.grad is not None and fourier.params.grad.abs().sum() > 0


def test_make_param_checks_its_inputs():
    with pytest.raises(AtlasError, match="unknown parameterisation"):
        make_param("pixels", 32, magnitude(32), generators(0), torch.device("cpu"))
    with pytest.raises(AtlasError, match="resize"):
        make_param("maco", 48, magnitude(32), generators(0), torch.device("cpu"))
    assert isinstance(make_param("fourier", 48, torch.empty(0), generators(0), torch.device("cpu")), FourierParam)
