"""Image parameterisations: the tensors the optimiser moves, and how they become RGB images.

`MacoParam` (Fel et al. 2023) optimises only the Fourier phase; the magnitude is fixed
to a natural-image spectrum. `FourierParam` (Olah et al. 2017, horama's `fourier`) is
the classic baseline: the whole complex spectrum, scaled by 1/f^decay. Both hold K
independent images (K, ...) and standardise per sample, so a batch of K is K runs.

Output range. Both produce RGB in [0, 1] (a sigmoid). The renderer feeds the model
that image normalised with the model's own mean/std. The reference codes instead
map the sigmoid to a fixed (-2.5, 2.5) (horama) or (-1, 1) (xplique) and feed it
as is. For ImageNet-normalised models ours spans about (-2.1, 2.6), close to
horama's range; for models normalised with mean = std = 0.5 (the Lite family) it
spans (-1, 1), xplique's range, which is what those models were trained on. One
image, correct for every model, and a plain [0, 1] picture to save.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from atlas.errors import AtlasError

# Lucid's colour correlation (square root of the ImageNet colour covariance), as in
# horama/xplique: rgb_row = decorrelated_row @ COLOR_RECORRELATION.
COLOR_RECORRELATION = (
    (0.56282854, 0.58447580, 0.58447580),
    (0.19482528, 0.00000000, -0.19482528),
    (0.04329450, -0.10823626, 0.06494176),
)
FOURIER_DECAY = 1.5  # horama's `fourier` default (Lucid uses 1.0)
PARAMS = ("maco", "fourier")


def standardize(x: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit std per sample (all dims but the first); unbiased std + 1e-4 as in horama."""
    dims = tuple(range(1, x.ndim))
    x = x - x.mean(dims, keepdim=True)
    return x / (x.std(dims, keepdim=True) + 1e-4)


def recorrelate_colors(x: torch.Tensor) -> torch.Tensor:
    """(K, 3, H, W) in the decorrelated basis -> RGB: each pixel's 3-vector times the matrix."""
    matrix = torch.tensor(COLOR_RECORRELATION, dtype=x.dtype, device=x.device)
    return torch.einsum("kchw,cd->kdhw", x, matrix)


def maco_image(phase: torch.Tensor, magnitude: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
    """Phase (K, 3, S, S//2+1) and magnitude (3, S, S//2+1) -> RGB (K, 3, S, S) in [0, 1].

    The standardised phase stays near N(0, 1) whatever the optimiser does, so E[cos(phase)] is
    about 0.6 and 60% of the magnitude adds up coherently at pixel (0, 0): a glow in the four
    corners of the periodic canvas (the reference codes have it). A fixed `offset` per frequency,
    uniform on [0, 2 pi), makes E[cos] = 0 without touching the gradients. None = the reference.
    """
    size = magnitude.shape[-2]
    phase = standardize(phase)
    if offset is not None:
        phase = phase + offset
    # complex(cos, sin) rather than polar(): the exact arithmetic of horama's maco_preconditioner
    spectrum = torch.complex(torch.cos(phase) * magnitude, torch.sin(phase) * magnitude)
    x = torch.fft.irfft2(spectrum, s=(size, size))  # s= makes odd sizes work
    return torch.sigmoid(recorrelate_colors(standardize(x)))


def fourier_scale(size: int, decay: float = FOURIER_DECAY) -> torch.Tensor:
    """(S, S//2+1) gain 1/max(f, 1/S)^decay * S on the rfft2 grid: horama's get_fft_scale for any S."""
    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    f = torch.sqrt(fx**2 + fy**2)
    return size / torch.clamp(f, min=1.0 / size) ** decay


def fourier_image(coefficients: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Real/imag coefficients (K, 3, S, S//2+1, 2) and gain (S, S//2+1) -> RGB (K, 3, S, S) in [0, 1]."""
    size = scale.shape[-2]
    spectrum = standardize(torch.view_as_complex(coefficients)) * scale
    x = torch.fft.irfft2(spectrum, s=(size, size))
    return torch.sigmoid(recorrelate_colors(standardize(x)))


def _normal(generators: Sequence[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
    """One N(0,1) draw per sample from its own generator, so a batch equals separate runs."""
    return torch.stack([torch.randn(shape, generator=g) for g in generators])


def phase_offsets(generators: Sequence[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
    """One fixed U[0, 2 pi) phase offset per frequency and sample, from each sample's generator."""
    return torch.stack([2 * torch.pi * torch.rand(shape, generator=g) for g in generators])


class MacoParam:
    """K phases (optimised) over one fixed magnitude spectrum, with fixed random phase offsets
    unless `phase_offset` is False (the reference codes' corner glow, kept for the `horama` preset)."""

    def __init__(self, magnitude: torch.Tensor, generators: Sequence[torch.Generator], device: torch.device,
                 phase_offset: bool = True):
        size = magnitude.shape[-2]
        shape = (3, size, size // 2 + 1)
        self.magnitude = magnitude.to(device=device, dtype=torch.float32)
        # the phase is drawn first, so that without offsets the streams are the reference's
        self.params = _normal(generators, shape).to(device).requires_grad_(True)
        self.offset = phase_offsets(generators, shape).to(device) if phase_offset else None

    def __call__(self) -> torch.Tensor:
        return maco_image(self.params, self.magnitude, self.offset)


class FourierParam:
    """K whole complex spectra (optimised), preconditioned by 1/f^decay."""

    def __init__(self, size: int, generators: Sequence[torch.Generator], device: torch.device,
                 decay: float = FOURIER_DECAY):
        self.scale = fourier_scale(size, decay).to(device)
        self.params = _normal(generators, (3, size, size // 2 + 1, 2)).to(device).requires_grad_(True)

    def __call__(self) -> torch.Tensor:
        return fourier_image(self.params, self.scale)


def make_param(
    name: str, size: int, magnitude: torch.Tensor, generators: Sequence[torch.Generator], device: torch.device,
    phase_offset: bool = True,
) -> MacoParam | FourierParam:
    """The parameterisation called `name` ("maco" or "fourier") for K = len(generators) images."""
    if name == "maco":
        if magnitude.shape[-2] != size:
            raise AtlasError(f"spectrum is {magnitude.shape[-2]} px but the canvas is {size}: resize it first")
        return MacoParam(magnitude, generators, device, phase_offset)
    if name == "fourier":
        return FourierParam(size, generators, device)
    raise AtlasError(f"unknown parameterisation {name!r}: choose one of {', '.join(PARAMS)}")
