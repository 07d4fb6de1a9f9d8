"""`atlas.toml` -> typed, frozen settings.

Every key is checked at load, in both selections (the full atlas and `[cpu]`) whichever one
will run: an unknown key or a value of the wrong kind is a one-line `AtlasError` naming the
key and the file.  Relative paths are resolved against the file's folder, so a config means
the same thing from any working directory.  Presets are built here once (`atlas.presets` is
torch-free), so a bad `[preset]` value fails now, not hours later on the GPU node; class and
channel specs are checked for syntax (their ranges need the model).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atlas import specs
from atlas.errors import AtlasError
from atlas.presets import Preset

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DEFAULT_FILE = "atlas.toml"
SCALAR = (str, int, float, bool)

# The allowed range of every integer key, read by the file reader and by the flags that replace
# these keys (atlas.flags), so that a value means the same in either place.
RANGES: dict[str, tuple[int, int]] = {
    "batch_size": (1, 4096),
    "scoring.crops": (1, 1024),
    "scoring.seed": (0, 2**31 - 1),
    "preset.seeds": (1, 1000),
    "concepts.concepts": (1, 100),
    "concepts.images_per_class": (1, 100_000),
    "concepts.patch": (8, 4096),
}


@dataclass(frozen=True)
class PresetChoice:
    """A named preset, the fields it overrides, and how many seeds each objective gets."""

    name: str = "atlas"
    seeds: int = 1
    overrides: tuple[tuple[str, Any], ...] = ()

    def overrides_dict(self) -> dict[str, Any]:
        return dict(self.overrides)

    def with_overrides(self, **values: Any) -> PresetChoice:
        merged = dict(self.overrides) | {k: v for k, v in values.items() if v is not None}
        return dataclasses.replace(self, overrides=tuple(sorted(merged.items())))


@dataclass(frozen=True)
class JudgeModel:
    """A judge with weights of its own: a fine-tuned checkpoint of `model` and its class names, so that
    another classifier of the same classes can judge a fine-tuned generator."""

    model: str
    checkpoint: Path
    labels: Path | None = None

    @property
    def name(self) -> str:
        """The judge's name in records and on the site: the architecture and the checkpoint's file stem."""
        return f"{self.model}@{self.checkpoint.stem}"


@dataclass(frozen=True)
class ModelEntry:
    """One model of a several-model atlas (`models = [...]`): a timm name, or a table with the
    model's own checkpoint, class names and dataset, read like the top-level keys of the same names."""

    model: str
    checkpoint: Path | None = None
    labels: Path | None = None
    dataset: str | None = None

    @property
    def name(self) -> str:
        """Its name in the cache and on the site: the architecture, with a checkpoint's file stem."""
        return f"{self.model}@{self.checkpoint.stem}" if self.checkpoint is not None else self.model


@dataclass(frozen=True)
class Selection:
    """What to render: classes, channels per layer, the preset, and the judges that score it."""

    classes: str = "all"
    layers: tuple[tuple[str, str], ...] = ()
    preset: PresetChoice = field(default_factory=PresetChoice)
    judges: tuple[str | JudgeModel, ...] = ()  # model names (their own weights), or checkpoints of a model
    table: str = ""  # the config table it is read from, "" or "cpu": messages name its keys

    def key(self, name: str) -> str:
        """How the config file spells this selection's key `name` ("layers" or "cpu.layers")."""
        return f"{self.table}.{name}" if self.table else name

    def describe(self) -> str:
        layers = ", ".join(f"{name} {spec}" for name, spec in self.layers) or "no layers"
        classes = self.classes
        if classes.strip().lower() == "sample":
            classes = f"sample ({len(specs.IMAGENET_SAMPLE)} of the model's classes)"
        return f"classes {classes}; channels: {layers}; preset {self.preset.name}"


# Crops per scale of the judging protocol (atlas.scoring) when `[scoring] crops` is not set: a GPU
# judges a batch in a fraction of its render, so it takes 16; on a CPU 16 cost a quarter to a third
# of the `cpu` preset's render, and CPU_CROPS, drawn per picture, holds every mean rate of 16 within
# 2 points of 50 tuning classes at about an eighth of the render (docs/benchmarks.md, "Judging crops
# drawn per picture").
GPU_CROPS = 16
CPU_CROPS = 8


@dataclass(frozen=True)
class Scoring:
    crops: int | None = None  # None: by the device, `crops_on`
    seed: int = 0

    def crops_on(self, device: str) -> int:
        """The crops per scale that judging uses on `device` (a resolved device name)."""
        if self.crops is not None:
            return self.crops
        return CPU_CROPS if device == "cpu" else GPU_CROPS


@dataclass(frozen=True)
class Concepts:
    """[concepts]: the ImageNet-layout image folder that concepts and dataset examples come from."""

    images: Path | None = None
    classes: str = "all"  # of the class folders present
    concepts: int = 10  # per class, as Lens shows them
    layer: str | None = None  # None: the feature map the classifier pools
    images_per_class: int = 50
    patch: int | None = None  # px on the model's input; None: 64/224 of it


# The names atlas.objectives.CLASS_OBJECTIVES maps to objectives, here without torch (the site reads configs)
CLASS_OBJECTIVE_NAMES = ("logit", "margin", "logprob", "blend")


@dataclass(frozen=True)
class Config:
    source: Path | None = None
    model: str = "efficientnet_lite0"
    checkpoint: Path | None = None
    random_weights: bool = False
    labels: Path | None = None  # class names, one a line in class-index order; None: see atlas.classifier
    dataset: str | None = None  # what the site calls the classes ("Flowers class 3"); None: atlas.classifier decides
    cache: Path = Path("cache")
    site: Path = Path("site")
    device: str = "auto"
    batch_size: int | None = None  # None: chosen from the device
    param: str = "maco"
    class_objective: str = "logit"  # what a class picture maximises: a name of atlas.objectives.CLASS_OBJECTIVES
    spectrum: Path | None = None  # a magnitude spectrum .npy (`atlas spectrum`); None: the MACO authors' ImageNet one
    bf16: bool = False  # autocast the model's forward to bfloat16 (GPU speed; changes images, so in the key)
    channels_last: bool = False  # NHWC memory for convolutions (GPU speed; same images)
    full: Selection = field(
        default_factory=lambda: Selection(
            classes="all",
            layers=(
                ("blocks.3", "0-31"),
                ("blocks.4", "0-31"),
                ("blocks.5", "0-63"),
                ("blocks.6", "0-63"),
                ("conv_head", "top:64"),
            ),
            preset=PresetChoice("atlas", 1),
            judges=("efficientnet_lite1", "efficientnet_lite2"),
        )
    )
    cpu: Selection = field(
        default_factory=lambda: Selection(
            classes="sample",  # atlas.specs: 16 ImageNet classes, or 16 spread over another head
            layers=(("blocks.3", "0-3"), ("conv_head", "top:4")),
            preset=PresetChoice("cpu-best", 1),
            judges=("efficientnet_lite1",),
            table="cpu",
        )
    )
    scoring: Scoring = field(default_factory=Scoring)
    concepts: Concepts = field(default_factory=Concepts)
    models: tuple[ModelEntry, ...] = ()  # a several-model atlas; empty: the one `model` above

    def model_configs(self, only: str | None = None) -> list[Config]:
        """One config per model of the atlas, each with that model's checkpoint, labels and dataset
        in the top-level keys every command reads; `only`: the one named so (or a model outside the list)."""
        if not self.models:
            return [self]
        entries = list(self.models)
        if only is not None:
            entries = [e for e in entries if only in (e.name, e.model)] or [ModelEntry(only)]
        return [dataclasses.replace(self, model=e.model, checkpoint=e.checkpoint, labels=e.labels,
                                    dataset=e.dataset if e.dataset is not None else self.dataset, models=())
                for e in entries]


def load_config(path: str | Path | None = None) -> Config:
    """Read `path`, or `./atlas.toml` when it exists, or else the built-in defaults."""
    if path is None:
        if not Path(DEFAULT_FILE).is_file():
            return Config()
        path = DEFAULT_FILE
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AtlasError(
            f"cannot read config {path}: {exc.strerror or exc}; pass an existing file to --config") from exc
    except UnicodeDecodeError as exc:
        raise AtlasError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8, as TOML requires") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AtlasError(f"{path}: not valid TOML ({exc})") from exc
    return parse_config(data, path)


def parse_config(data: Mapping[str, Any], path: Path) -> Config:
    """Check and convert a parsed TOML document; `path` names the file in errors and anchors paths."""
    reader = _Reader(path)
    base = Config()
    top = reader.table(data, "", {
        "model", "classes", "judges", "cache", "site", "device", "batch_size", "param",
        "checkpoint", "random_weights", "preset", "layers", "scoring", "cpu", "bf16", "channels_last", "spectrum",
        "concepts", "labels", "dataset", "models", "class_objective",
    })
    folder = path.parent
    checkpoint = reader.optional_str(top, "checkpoint")
    spectrum = reader.optional_str(top, "spectrum")
    labels = reader.optional_str(top, "labels")
    full = reader.selection(top, "", base.full)
    # judges say which models can score the classes, not how much to render: the file's own hold for
    # the CPU subset too unless [cpu] names others (a fine-tuned head's `judges = []` is meant everywhere)
    cpu_base = dataclasses.replace(base.cpu, judges=full.judges) if "judges" in top else base.cpu
    cpu = reader.selection(reader.table(top.get("cpu", {}), "cpu", {"classes", "judges", "preset", "layers"}),
                           "cpu.", cpu_base)
    scoring_table = reader.table(top.get("scoring", {}), "scoring", {"crops", "seed"})
    scoring = Scoring(
        crops=None if "crops" not in scoring_table else reader.integer(scoring_table, "crops", 0, "scoring."),
        seed=reader.integer(scoring_table, "seed", base.scoring.seed, "scoring."),
    )
    table = reader.table(top.get("concepts", {}), "concepts",
                         {"images", "classes", "concepts", "layer", "images_per_class", "patch"})
    images, patch = reader.optional_str(table, "images"), table.get("patch")
    concepts = Concepts(
        images=(folder / images) if images else None,
        classes=reader.classes(table, "concepts.", "all"),
        concepts=reader.integer(table, "concepts", Concepts.concepts, "concepts."),
        layer=reader.optional_str(table, "layer"),
        images_per_class=reader.integer(table, "images_per_class", Concepts.images_per_class, "concepts."),
        patch=None if patch is None else reader.integer(table, "patch", 64, "concepts."),
    )
    models = reader.models(top)
    if models and "model" in top:
        raise reader.fail("model", "and 'models' both name the model: keep one (the first of models is the default)")
    return Config(
        source=path,
        model=models[0].model if models else reader.string(top, "model", base.model),
        models=models,
        checkpoint=(folder / checkpoint) if checkpoint else None,
        random_weights=reader.boolean(top, "random_weights", False),
        labels=(folder / labels) if labels else None,
        dataset=reader.optional_str(top, "dataset"),
        cache=folder / reader.string(top, "cache", str(base.cache)),
        site=folder / reader.string(top, "site", str(base.site)),
        device=reader.string(top, "device", base.device),
        batch_size=reader.batch_size(top),
        param=reader.choice(top, "param", base.param, ("maco", "fourier")),
        class_objective=reader.choice(top, "class_objective", base.class_objective, CLASS_OBJECTIVE_NAMES),
        spectrum=(folder / spectrum) if spectrum else None,
        bf16=reader.boolean(top, "bf16", base.bf16),
        channels_last=reader.boolean(top, "channels_last", base.channels_last),
        full=full,
        cpu=cpu,
        scoring=scoring,
        concepts=concepts,
    )


def parse_batch_size(value: str | int) -> int | None:
    """`"auto"` -> None (chosen from the device), else an integer within RANGES["batch_size"]."""
    if value == "auto" or value is None:
        return None
    low, high = RANGES["batch_size"]
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = 0
    if isinstance(value, bool) or not low <= size <= high:
        raise AtlasError(f"batch size must be an integer from {low} to {high} or 'auto', got {value!r}")
    return size


def preset_fields() -> set[str]:
    """Names of the fields a preset override may set."""
    return {f.name for f in dataclasses.fields(Preset)} - {"name"}


class _Reader:
    """Typed access to TOML tables with errors that name the key and the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> AtlasError:
        return AtlasError(f"{self.path}: key '{key}' {problem}")

    def table(self, value: Any, name: str, allowed: set[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(name, f"must be a table, got {type(value).__name__}")
        prefix = f"{name}." if name else ""
        for key in value:
            if key not in allowed:
                raise self.fail(prefix + key, f"is unknown (known: {', '.join(sorted(allowed))})")
        return value

    def string(self, table: Mapping[str, Any], key: str, default: str, prefix: str = "") -> str:
        value = table.get(key, default)
        if not isinstance(value, str) or not value:
            raise self.fail(prefix + key, f"must be a non-empty string, got {value!r}")
        return value

    def optional_str(self, table: Mapping[str, Any], key: str) -> str | None:
        return self.string(table, key, "") if key in table else None

    def boolean(self, table: Mapping[str, Any], key: str, default: bool, prefix: str = "") -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(prefix + key, f"must be true or false, got {value!r}")
        return value

    def integer(self, table: Mapping[str, Any], key: str, default: int, prefix: str = "") -> int:
        """An integer within its RANGES entry (the dotted key without a selection's `cpu.`)."""
        value = table.get(key, default)
        low, high = RANGES[(prefix + key).removeprefix("cpu.")]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(prefix + key, f"must be an integer from {low} to {high}, got {value!r}")
        return value

    def choice(self, table: Mapping[str, Any], key: str, default: str, options: tuple[str, ...]) -> str:
        value = self.string(table, key, default)
        if value not in options:
            raise self.fail(key, f"must be one of {', '.join(options)}, got {value!r}")
        return value

    def batch_size(self, table: Mapping[str, Any]) -> int | None:
        value = table.get("batch_size", "auto")
        try:
            return parse_batch_size(value)
        except AtlasError:
            low, high = RANGES["batch_size"]
            raise self.fail("batch_size",
                            f"must be an integer from {low} to {high} or \"auto\", got {value!r}") from None

    def classes(self, table: Mapping[str, Any], prefix: str, default: str) -> str:
        value = table.get("classes", default)
        if isinstance(value, list):
            if not all(isinstance(v, (int, str)) and not isinstance(v, bool) for v in value):
                raise self.fail(prefix + "classes",
                                f"must list class indices, WordNet ids or class names, got {value!r}")
            value = ",".join(str(v) for v in value)
        if not isinstance(value, (str, int)) or isinstance(value, bool) or value == "":
            raise self.fail(prefix + "classes", f"must be a class spec like \"all\" or \"0-99\", got {value!r}")
        self.spec(str(value), "class", prefix + "classes")
        return str(value)

    def spec(self, value: str, what: str, key: str) -> None:
        try:
            specs.check_spec(value, what)
        except AtlasError as exc:
            raise self.fail(key, str(exc)) from None

    def judges(self, table: Mapping[str, Any], prefix: str,
               default: tuple[str | JudgeModel, ...]) -> tuple[str | JudgeModel, ...]:
        """Model names, or tables {model, checkpoint, labels} (paths relative to the file's folder)."""
        value = table.get("judges", list(default))
        if not isinstance(value, list):
            raise self.fail(prefix + "judges", f"must be a list of model names, got {value!r}")
        judges: list[str | JudgeModel] = []
        for item in value:
            if isinstance(item, Mapping):
                entry = self.table(item, prefix + "judges[]", {"model", "checkpoint", "labels"})
                if "model" not in entry or "checkpoint" not in entry:
                    raise self.fail(prefix + "judges", "a judge table needs model and checkpoint "
                                    f"(and may have labels), got {dict(item)!r}")
                labels = self.optional_str(entry, "labels")
                judges.append(JudgeModel(self.string(entry, "model", ""), self.path.parent / self.string(
                    entry, "checkpoint", ""), self.path.parent / labels if labels else None))
            elif isinstance(item, (str, JudgeModel)) and item:
                judges.append(item)
            else:
                raise self.fail(prefix + "judges", f"must be a list of model names, got {value!r}")
        return tuple(judges)

    def models(self, table: Mapping[str, Any]) -> tuple[ModelEntry, ...]:
        """`models`: timm names, or tables {model, checkpoint, labels, dataset} (paths relative to the file)."""
        value = table.get("models", [])
        if not isinstance(value, list) or ("models" in table and not value):
            raise self.fail("models", f"must be a non-empty list of model names or tables, got {value!r}")
        entries = []
        for item in value:
            if isinstance(item, str) and item:
                entries.append(ModelEntry(item))
            elif isinstance(item, Mapping):
                entry = self.table(item, "models[]", {"model", "checkpoint", "labels", "dataset"})
                checkpoint, labels = self.optional_str(entry, "checkpoint"), self.optional_str(entry, "labels")
                entries.append(ModelEntry(
                    self.string(entry, "model", "", "models[]."),
                    self.path.parent / checkpoint if checkpoint else None,
                    self.path.parent / labels if labels else None,
                    self.optional_str(entry, "dataset")))
            else:
                raise self.fail("models", f"must list model names or tables, got {item!r}")
        names = [e.name for e in entries]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise self.fail("models", f"names {', '.join(twice)} twice; give each checkpoint its own file name")
        return tuple(entries)

    def layers(self, table: Mapping[str, Any], prefix: str,
               default: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        if "layers" not in table:
            return default
        value = table["layers"]
        if not isinstance(value, Mapping):
            raise self.fail(prefix + "layers", "must be a table of layer = \"channel spec\"")
        layers = []
        for name, spec in _flatten(value):
            if isinstance(spec, int) and not isinstance(spec, bool):
                spec = str(spec)
            if not isinstance(spec, str) or not spec:
                raise self.fail(f"{prefix}layers.{name}",
                                f"must be a channel spec like \"all\", \"0-31\" or \"top:64\", got {spec!r}")
            self.spec(spec, f"layer {name} channel", f"{prefix}layers.{name}")
            if any(name == known for known, _ in layers):  # "blocks.3" and blocks = {3 = ...} name one layer
                raise self.fail(f"{prefix}layers.{name}", "is written twice: give the layer's channels once")
            layers.append((name, spec))
        return tuple(layers)

    def preset(self, table: Mapping[str, Any], prefix: str, default: PresetChoice) -> PresetChoice:
        if "preset" not in table:
            return default
        value = table["preset"]
        if isinstance(value, str):  # `preset = "xplique"` is a shorthand for [preset] name = ...
            value = {"name": value}
        if not isinstance(value, Mapping):
            raise self.fail(prefix + "preset", "must be a preset name or a table")
        known = preset_fields()
        overrides = []
        for key, item in value.items():
            if key in ("name", "seeds"):
                continue
            if key not in known:
                raise self.fail(f"{prefix}preset.{key}", f"is not a preset field (known: {', '.join(sorted(known))})")
            scalar_list = isinstance(item, list) and all(isinstance(v, SCALAR) for v in item)
            if not isinstance(item, SCALAR) and not scalar_list:
                raise self.fail(f"{prefix}preset.{key}", f"must be a number, string or boolean, got {item!r}")
            overrides.append((key, tuple(item) if isinstance(item, list) else item))
        choice = PresetChoice(
            name=self.string(value, "name", default.name, prefix + "preset."),
            seeds=self.integer(value, "seeds", default.seeds, prefix + "preset."),
            overrides=tuple(sorted(overrides)),
        )
        self.build_preset(choice, prefix)
        return choice

    def build_preset(self, choice: PresetChoice, prefix: str) -> None:
        """Build the preset now, naming the key of the first bad value (each alone, then together)."""
        try:
            from atlas.presets import get_preset
        except ImportError:  # pragma: no cover - the engine is part of the package
            return

        def attempt(key: str, **overrides: Any) -> None:
            try:
                get_preset(choice.name, **overrides)
            except (AtlasError, TypeError, ValueError) as exc:
                raise self.fail(key, f"is not valid: {exc}") from None

        attempt(f"{prefix}preset.name")
        for key, item in choice.overrides:
            attempt(f"{prefix}preset.{key}", **{key: item})
        attempt(f"{prefix}preset", **choice.overrides_dict())

    def selection(self, table: Mapping[str, Any], prefix: str, default: Selection) -> Selection:
        return Selection(
            classes=self.classes(table, prefix, default.classes),
            layers=self.layers(table, prefix, default.layers),
            preset=self.preset(table, prefix, default.preset),
            judges=self.judges(table, prefix, default.judges),
            table=default.table,
        )


def _flatten(table: Mapping[str, Any], prefix: str = ""):
    """`blocks.3 = "x"` written without quotes is a nested table in TOML; undo that."""
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, name + ".")
        else:
            yield name, value


def override(selection: Selection, *, classes: str | None = None,
             layers: tuple[tuple[str, str], ...] | None = None, preset: str | None = None,
             seeds: int | None = None, judges: tuple[str | JudgeModel, ...] | None = None,
             **preset_overrides: Any) -> Selection:
    """Replace single keys of a selection (command-line flags); None leaves a key as it is.

    Choosing another preset drops the file's overrides, which were written for the old one.
    """
    choice = selection.preset
    if preset is not None and preset != choice.name:
        choice = PresetChoice(name=preset, seeds=choice.seeds)
    if seeds is not None:
        low, high = RANGES["preset.seeds"]
        if not low <= seeds <= high:
            raise AtlasError(f"--seeds must be from {low} to {high}, got {seeds}")
        choice = dataclasses.replace(choice, seeds=seeds)
    choice = choice.with_overrides(**preset_overrides)
    return Selection(
        classes=selection.classes if classes is None else classes,
        layers=selection.layers if layers is None else layers,
        preset=choice,
        judges=selection.judges if judges is None else judges,
        table=selection.table,
    )
