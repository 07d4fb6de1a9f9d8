"""Image parameterisations against the authors' code (horama 0.3.0), per-sample, any canvas size."""

from __future__ import annotations

import pytest
import torch
from horama.fourier_fv import fourier_preconditionner, get_fft_scale
from horama.maco_fv import maco_preconditioner

from atlas.errors import AtlasError
from atlas.imagestats import corner_ratio
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


def test_the_reference_phase_glows_in_the_corners_and_offsets_remove_it():
    """Standardised N(0, 1) phases add up at pixel (0, 0), the four corners of the periodic canvas;
    a fixed uniform offset per frequency spreads them, without changing the magnitude."""
    size = 96
    mag = magnitude(size)
    reference = MacoParam(mag, generators(*range(8)), torch.device("cpu"), phase_offset=False)
    fixed = MacoParam(mag, generators(*range(8)), torch.device("cpu"))
    torch.testing.assert_close(reference.params, fixed.params)  # same phase stream: the offset is drawn after
    assert reference.offset is None and fixed.offset.shape == fixed.params.shape
    assert fixed.offset.min() >= 0 and fixed.offset.max() < 2 * torch.pi
    with torch.no_grad():
        glow = [corner_ratio(x.numpy()) for x in reference()]
        plain = [corner_ratio(x.numpy()) for x in fixed()]
    assert min(glow) > 1.2, glow
    assert 0.8 < sum(plain) / len(plain) < 1.1, plain


def test_offsets_follow_each_samples_generator_and_keep_gradients():
    size = 32
    batch = MacoParam(magnitude(size), generators(5, 6), torch.device("cpu"))
    alone = MacoParam(magnitude(size), generators(6), torch.device("cpu"))
    torch.testing.assert_close(batch.offset[1:], alone.offset)
    batch().sum().backward()
    assert batch.params.grad is not None and batch.params.grad.abs().sum() > 0
    # the offset shifts the phase: with offset 0 the image is the reference's
    torch.testing.assert_close(maco_image(batch.params, magnitude(size), torch.zeros_like(batch.offset)),
                               maco_image(batch.params, magnitude(size)))
