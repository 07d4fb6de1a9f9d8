"""How every image of a run is made, decided once: the preset, the parameterisation, the
spectrum, the precision and the memory layout.

A `RenderSettings` is built once (from the config and the selection with the command's flags
merged in, or from `atlas.visualize`'s arguments) and then handed on: it gives the cache key
material (`key_material`), the record's settings (`record_fields`) and the engine's arguments
(`atlas.render.render` takes it whole), so no stage reads the config again, and the batch-size
probe renders with the same value as the batches, only shorter (`with_steps`).

Torch-free at import; `make` loads a spectrum through atlas.spectrum, which needs torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from atlas.config import Config, Selection
from atlas.errors import AtlasError
from atlas.presets import Preset, get_preset, with_fields

# Goes into every cache key: bump it when the same settings would give different images.
ENGINE_VERSION = "2"  # 2: fixed random phase offsets (no corner glow)


@dataclass(frozen=True)
class RenderSettings:
    preset: Preset
    spectrum: np.ndarray = field(compare=False, repr=False)  # (3, N, N//2+1) magnitudes; its hash stands for it
    spectrum_sha256: str
    param: str = "maco"  # or "fourier" (atlas.param checks the name)
    bf16: bool = False  # bfloat16 autocast of the model: other images, so part of the key
    channels_last: bool = False  # NHWC memory for convolutions: the same images, so not in the key

    @classmethod
    def make(cls, preset: Preset | str, *, spectrum: str | Path | np.ndarray | None = None, param: str = "maco",
             bf16: bool = False, channels_last: bool = False, **overrides: Any) -> RenderSettings:
        """Settings from a preset (or its name with field `overrides`) and a spectrum file or array
        (None: the MACO authors' ImageNet one, hash-checked)."""
        from atlas.spectrum import check_spectrum, load_spectrum, spectrum_sha256

        if isinstance(preset, str):
            preset = get_preset(preset, **overrides)
        elif overrides:
            preset = with_fields(preset, **overrides)
        if spectrum is None or isinstance(spectrum, (str, Path)):
            array = load_spectrum(spectrum)
        else:
            array = np.asarray(spectrum, dtype=np.float32)
            check_spectrum(array)
        return cls(preset, array, spectrum_sha256(array), param, bool(bf16), bool(channels_last))

    @classmethod
    def from_config(cls, config: Config, selection: Selection) -> RenderSettings:
        """The settings of `atlas render`: the selection's preset and the config's other choices."""
        try:
            preset = get_preset(selection.preset.name, **selection.preset.overrides_dict())
        except AtlasError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise AtlasError(f"bad preset {selection.preset.name!r} or override: {exc}") from exc
        return cls.make(preset, spectrum=config.spectrum, param=config.param, bf16=config.bf16,
                        channels_last=config.channels_last)

    def with_steps(self, steps: int) -> RenderSettings:
        """The same settings for `steps` steps (the batch-size probe)."""
        return dataclasses.replace(self, preset=dataclasses.replace(self.preset, steps=steps))

    @property
    def precision(self) -> str:
        return "bf16 autocast" if self.bf16 else "fp32"

    def key_material(self, model: str, weights_sha256: str, objective_id: str, seed: int) -> dict[str, Any]:
        """Everything that determines an image (docs/architecture.md, "Cache format")."""
        material = {
            "engine_version": ENGINE_VERSION,
            "model": model,
            "weights_sha256": weights_sha256,
            "objective": objective_id,
            "preset": self.preset.to_dict(),
            "canvas": self.preset.canvas,
            "seed": seed,
            "spectrum_sha256": self.spectrum_sha256,
            "param": self.param,
        }
        if self.bf16:  # only when on, so that fp32 keys are exactly the documented ones
            material["autocast_bf16"] = True
        return material

    def record_fields(self) -> dict[str, Any]:
        """The fields of a render's record (atlas.record.RenderRecord) that these settings fix."""
        return {"preset": self.preset.to_dict(), "param": self.param, "precision": self.precision,
                "spectrum_sha256": self.spectrum_sha256, "engine_version": ENGINE_VERSION}
