"""atlas as a library: `visualize` a model's objectives in a notebook, and `Atlas` to keep the
pictures as cache entries that `atlas build` turns into a site.

    import atlas
    pictures = atlas.visualize(model, ["class:1", "channel:layer4:12"], preset="cpu", seeds=2)
    pictures                                  # one row of pictures in Jupyter
    atlas.Atlas("cache").add(pictures)        # then: atlas build --cache cache
    explained = atlas.Atlas("cache").concepts(model, "photos")   # each class's concepts (CRAFT)
    atlas.Atlas("cache").add(atlas.visualize(model, explained))  # their pictures, on the class pages

`visualize` runs the engine entry `atlas render` runs (atlas.render.render with one
`RenderSettings`), seeds each picture as `atlas render` does, scores it by the judging
protocol with the generating model, and builds its record through atlas.entry; so a picture
made here with the settings and model of an atlas has that atlas's cache key.
"""

from __future__ import annotations

import dataclasses
import datetime
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image

from atlas.cache import Cache
from atlas.concepts.explained import ClassConcepts, ExplainedChannel, ExplainedConcept, Explanations, LayerExamples
from atlas.concepts.expression import picture_expression
from atlas.concepts.formats import ConceptBank
from atlas.config import RANGES, Concepts, Scoring
from atlas.device import resolve_device
from atlas.entry import attribution_map, entry_files, render_record, to_uint8
from atlas.errors import AtlasError
from atlas.jobs import Job
from atlas.labels import check_names, class_table, folder_labels, numbered, read_labels
from atlas.model_record import reads_otherwise, renamed_classes
from atlas.models import LoadedModel, from_module, load_model
from atlas.objectives import Objective, parse_objective
from atlas.picture import Picture, Pictures
from atlas.plan import Plan, PlannedJob, job_key
from atlas.presets import Preset, with_fields
from atlas.record import Timing
from atlas.render import render
from atlas.scoring import Judge, judge_images
from atlas.seeds import job_seed
from atlas.settings import RenderSettings

BATCH = 8  # objectives per engine call: a batch gives the same images as single runs, only faster
ENGINE_DEFAULTS = {"spectrum": None, "param": "maco", "bf16": False, "channels_last": False}  # visualize's own


def visualize(
    model: torch.nn.Module | LoadedModel | str,
    objectives: str | Objective | Iterable[str | Objective],
    *,
    preset: str | Preset | RenderSettings = "atlas",
    seeds: int = 1,
    device: str = "auto",
    batch_size: int = BATCH,
    scores: bool = True,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    input_size: int | None = None,
    name: str | None = None,
    spectrum: str | Path | np.ndarray | None = None,
    param: str = "maco",
    bf16: bool = False,
    channels_last: bool = False,
    labels: str | Path | Sequence[str] | None = None,
    **preset_overrides: Any,
) -> Pictures:
    """One picture per objective and seed (objective-major), each with `.image`, `.attribution`,
    `.value`, `.top5` and `.record`.

    `model`: any torch module (a timm model brings its own mean, std and input size; others get
    ImageNet's unless `mean`/`std`/`input_size` say otherwise), a LoadedModel, or a timm name
    (`atlas.models.load_model`).  `objectives`: ids like "class:1" or "channel:layer4:12", or
    values of atlas.objectives (sums, weights, directions).  `preset`: a preset name with field
    overrides as keywords (`steps=32`), a Preset, or whole RenderSettings.  `scores=False` skips
    the judging (the generating model's top-5 on crops of each picture).  `labels`: the class names
    of the model's head in index order (a list, or a file with one a line), for captions and the site."""
    targets = _targets(objectives)
    # every argument is checked before the module is moved, put in eval mode and frozen
    if not targets:
        raise AtlasError("visualize needs at least one objective, e.g. \"class:1\" or \"channel:layer4:0\"")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= 1000:
        raise AtlasError(f"seeds is the number of pictures per objective, 1 to 1000; got {seeds!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise AtlasError(f"batch_size must be a positive integer, got {batch_size!r}")
    settings = _settings(preset, preset_overrides, spectrum=spectrum, param=param, bf16=bf16,
                         channels_last=channels_last)
    loaded = _loaded(model, device, name=name, mean=mean, std=std, input_size=input_size)
    loaded = _named(loaded, labels if labels is not None else _concepts_names(targets, loaded))
    banks = {t.bank.class_index: t.bank for t in targets if t.bank is not None}
    mine = (loaded.name, loaded.weights_sha256)
    other = next((b for b in banks.values() if (b.model, b.weights_sha256) != mine), None)
    if other is not None:  # a direction in another model's layer: its picture would show nothing of it
        raise AtlasError(f"the concepts of class {other.class_index} are {other.model}'s (weights "
                         f"{other.weights_sha256[:12]}), not {loaded.name}'s: visualize them with the model "
                         "that made them")
    device = resolve_device(device)
    jobs = [Job(o, i, job_seed(o.id, i), concept_of=None if bank is None else bank.class_index)
            for o, bank, _ in targets for i in range(seeds)]
    _check_targets(loaded, [t.objective for t in targets])
    plan = Plan(loaded, settings, [PlannedJob(job, job_key(settings, loaded, job.objective, job.seed), None)
                                   for job in jobs], len(jobs), banks=banks)
    names = tuple(c.name for c in loaded.classes)
    pictures = Pictures()
    for start in range(0, len(plan.jobs), batch_size):
        chunk = plan.jobs[start:start + batch_size]
        pictures.extend(_render_chunk(plan, chunk, device, scores, names))
    return pictures


class _Target(NamedTuple):
    objective: Objective
    bank: ConceptBank | None = None  # the concept bank it comes from, for a concept of `Atlas.concepts`
    classes: tuple[str, ...] = ()  # the head's class names as `Atlas.concepts` named them


def _targets(objectives: Any) -> list[_Target]:
    """Each objective, with the concept bank it comes from when it is a concept of `Atlas.concepts` (its
    picture is then a concept picture of that class, as `atlas render` makes it)."""
    if isinstance(objectives, ExplainedConcept):
        return [_Target(objectives.objective, objectives.bank, objectives.classes)]
    if isinstance(objectives, ClassConcepts):
        return [_Target(c.objective, c.bank, c.classes) for c in objectives.concepts]
    if isinstance(objectives, (str, Objective)):
        return [_Target(parse_objective(objectives))]
    if isinstance(objectives, Iterable):
        return [target for o in objectives for target in
                (_targets(o) if isinstance(o, (ExplainedConcept, ClassConcepts)) else [_Target(parse_objective(o))])]
    # A bare number reads as a class index as easily as a seed count or a channel, so it is not guessed at.
    number = isinstance(objectives, int) and not isinstance(objectives, bool)
    hint = f" (for class {objectives}: \"class:{objectives}\")" if number else ""
    raise AtlasError(f"objectives are an id like \"class:1\" or \"channel:layer4:12\", an atlas.objectives value, "
                     f"or a list of them, not {type(objectives).__name__} {objectives!r}{hint}")


def _concepts_names(targets: Sequence[_Target], loaded: LoadedModel) -> tuple[str, ...] | None:
    """The class names `Atlas.concepts` gave a head without names of its own (its image folders'), from the
    concepts among `targets`: their pictures are captioned, and stored, under the names their class pages
    already show. None when the head has names or no concept brings any."""
    if not loaded.num_classes or loaded.classes != numbered(loaded.num_classes):
        return None
    return next((t.classes for t in targets if len(t.classes) == loaded.num_classes), None)


def _class_spec(classes: str | int | Iterable[str | int]) -> str:
    """A `--classes` spec from a spec, one class (index or name) or a list of them."""
    if isinstance(classes, str):
        return classes
    if isinstance(classes, numbers.Integral) and not isinstance(classes, bool):
        return str(int(classes))
    if isinstance(classes, Iterable) and not isinstance(classes, bool):
        return ",".join(_class_spec(c) for c in classes)
    raise AtlasError(f"classes are a spec like \"daisy,3\", an index, a name or a list of them, not {classes!r}")


def _channel_spec(spec: str | Iterable[int]) -> str:
    """A `--layers` channel spec from a spec ("0-3", "top:8") or a list of channel indices."""
    if isinstance(spec, str):
        return spec
    channels = list(spec) if isinstance(spec, Iterable) else [spec]
    if not channels or not all(isinstance(c, int) and not isinstance(c, bool) for c in channels):
        raise AtlasError(f"a layer's channels are a spec like \"0-3\" or \"top:8\", or a list of indices, "
                         f"not {spec!r}")
    return ",".join(str(c) for c in channels)


def _loaded(model: Any, device: str, **options: Any) -> LoadedModel:
    given = {k: v for k, v in options.items() if v is not None}  # checked by from_module, whatever their type
    if isinstance(model, (LoadedModel, str)) and given:
        # a timm model or a loaded one brings its own name, normalisation and input side: a silent
        # override would render with settings other than those the user believes
        what = "a loaded model" if isinstance(model, LoadedModel) else f"the timm model {model!r}"
        raise AtlasError(f"{', '.join(f'{k}=' for k in given)} describe a torch module, but {what} brings its "
                         "own: leave them out (or pass the module itself)")
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, str):
        return load_model(model, device=resolve_device(device))
    return from_module(model, device=resolve_device(device), **given)


def _named(loaded: LoadedModel, labels: str | Path | Sequence[str] | None) -> LoadedModel:
    """The model with its head's classes named by `labels` (atlas.labels checks them against the head)."""
    if labels is None:
        return loaded
    if isinstance(labels, (str, Path)):
        names, source = read_labels(labels), f"labels file {labels}"
    else:
        names, source = check_names(tuple(str(n) for n in labels), "labels"), "labels"
    return dataclasses.replace(loaded, classes=class_table(names, loaded.num_classes, source), dataset=None)


def _settings(preset: str | Preset | RenderSettings, overrides: dict[str, Any], **options: Any) -> RenderSettings:
    """RenderSettings from a preset and the other choices; whole RenderSettings take only preset field overrides."""
    if not isinstance(preset, RenderSettings):
        return RenderSettings.make(preset, **options, **overrides)
    beside = sorted(k for k, v in options.items()
                    if (v is not None if ENGINE_DEFAULTS[k] is None else v != ENGINE_DEFAULTS[k]))
    if beside:
        raise AtlasError(f"RenderSettings already hold {', '.join(beside)}: build them with "
                         "RenderSettings.make(preset, ...) instead of passing both")
    return dataclasses.replace(preset, preset=with_fields(preset.preset, **overrides)) if overrides else preset


def _check_targets(loaded: LoadedModel, objectives: Sequence[Objective]) -> None:
    """Class indices against the model's classes, now rather than deep in a forward pass."""
    for objective in objectives:
        for _, term in objective.terms:
            index = getattr(term, "index", None)
            if index is not None and not index < loaded.num_classes:
                have = f"{loaded.num_classes} classes" if loaded.num_classes else "no classifier (a feature map out)"
                raise AtlasError(f"objective {objective.id} asks for class {index}, but {loaded.name} has {have}")


def _render_chunk(plan: Plan, chunk: Sequence[PlannedJob], device: str, scores: bool,
                  names: tuple[str, ...]) -> list[Picture]:
    loaded = plan.loaded
    result = render(loaded, [p.job.objective for p in chunk], plan.settings, [p.job.seed for p in chunk],
                    device=device)
    pixels = [to_uint8(image) for image in result.images]
    finite = [bool(f) and bool(np.isfinite(float(v))) for f, v in zip(result.finite, result.values, strict=True)]
    judging: list[Any] = [None] * len(chunk)
    if scores and loaded.num_classes:
        stored = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float() / 255
        judging = judge_images(stored, [Judge(loaded, "generator")], [p.job.target for p in chunk],
                               crops=Scoring().crops_on(device))  # as `atlas render` judges by default
    finished = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    timing = Timing(seconds=round(result.seconds / len(chunk), 4), batch_size=len(chunk), device=device,
                    finished=finished, batch_seconds=round(result.seconds, 4))
    pictures = []
    for k, item in enumerate(chunk):
        failure = None if finite[k] else f"non-finite objective value ({float(result.values[k])})"
        bank = plan.banks.get(item.job.concept_of) if item.job.concept_of is not None else None
        expression = picture_expression(loaded, bank, item.job.objective, pixels[k]) \
            if bank is not None and finite[k] else None
        record = render_record(plan, item, seed=item.job.seed, value=float(result.values[k]), timing=timing,
                               judging=judging[k] if finite[k] else None,
                               pixels=pixels[k], failure=failure, expression=expression)
        pictures.append(Picture(Image.fromarray(pixels[k]), attribution_map(result.attributions[k]), record,
                                names, loaded))
    return pictures


class Atlas:
    """A cache folder that pictures from a notebook go into, as `atlas render` would store them;
    `atlas build --cache FOLDER` (or `build(out)`) makes the site of them."""

    def __init__(self, cache: str | Path) -> None:
        self.cache = Cache(Path(cache))

    def add(self, pictures: Picture | Iterable[Picture]) -> list[str]:
        """Write each picture as a cache entry (and its model's `models/<name>.json` when the cache
        lacks it for these weights); returns the keys.  A failed picture is stored as a failure, unless
        the cache holds a finished picture under its key, which it keeps."""
        if not isinstance(pictures, (Picture, Iterable)):
            raise AtlasError(f"Atlas.add takes pictures from atlas.visualize, not {type(pictures).__name__}")
        pictures = [pictures] if isinstance(pictures, Picture) else list(pictures)
        self.cache.ensure_writable()
        models: set[tuple[str, str, tuple[str, ...]]] = set()
        for picture in pictures:
            if not isinstance(picture, Picture):
                raise AtlasError(f"Atlas.add takes pictures from atlas.visualize, not {type(picture).__name__}")
            self._model(picture, models)
        keys = []
        for picture in pictures:
            ok = picture.record.status == "ok"
            keys.append(picture.key)
            if not ok and self.cache.check(picture.key).status == "ok":
                continue  # a failed try never replaces the picture these settings made before
            files = entry_files(np.asarray(picture.image), torch.from_numpy(picture.attribution)[None]) if ok else {}
            self.cache.write_entry(picture.key, files, picture.record)
        return keys

    def _model(self, picture: Picture, done: set[tuple[str, str, tuple[str, ...]]]) -> None:
        """The cache's model file for the picture's model: written when the cache has none (or has the one
        `atlas concepts` writes before any picture, which names no spectrum), refused when it
        holds the name with other weights or names these weights' classes otherwise. Rewriting it would
        rename the classes of every picture of these weights already in the cache (some perhaps from
        `atlas render --labels`), and keeping it would caption these pictures with names they were not
        made with; only the user knows which names are right."""
        from atlas.metadata import listed_classes, model_info, parameter_device

        loaded = picture.model
        if loaded is None:
            return
        names = tuple(c.name for c in listed_classes(loaded))
        if (loaded.name, loaded.weights_sha256, names) in done:
            return
        existing = self.cache.model_for(loaded.name, loaded.weights_sha256,
                                        "use another cache folder, or give the model another name=")
        reading = None if existing is None else reads_otherwise(existing, loaded.mean, loaded.std, loaded.input_size)
        if reading is not None:
            raise AtlasError(f"the cache {self.cache.root} holds {loaded.name} reading its input otherwise "
                             f"({reading}), and these pictures would take its pictures' keys: give the model "
                             "another name=, or use another cache folder")
        detail = renamed_classes(existing, names) if existing is not None else None
        if detail is not None:
            raise AtlasError(f"the cache {self.cache.root} names the classes of {loaded.name} otherwise "
                             f"({detail}): pass the labels= its pictures were made with, use another cache "
                             "folder, or give the model another name=")
        if existing is None or not existing.spectrum_sha256:  # none, or `atlas concepts` wrote it: no picture yet
            self.cache.write_model(model_info(loaded, parameter_device(loaded), picture.record.spectrum_sha256))
        done.add((loaded.name, loaded.weights_sha256, names))

    def concepts(
        self,
        model: torch.nn.Module | LoadedModel | str,
        images: str | Path,
        *,
        classes: str | int | Iterable[str | int] | None = None,
        concepts: int = Concepts.concepts,
        images_per_class: int = Concepts.images_per_class,
        layer: str | None = None,
        patch: int | None = None,
        layers: dict[str, str | Iterable[int]] | None = None,
        device: str = "auto",
        labels: str | Path | Sequence[str] | None = None,
        name: str | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        input_size: int | None = None,
        report: Callable[[str], None] | None = print,
    ) -> Explanations:
        """Each class's concepts (CRAFT) from `images`, a folder with one subfolder of photos per class
        named by the class (or its WordNet id), stored in this cache as `atlas concepts` stores them: a
        bank already there for these images and settings is read, not computed again.

        `model`, `name`, `mean`, `std`, `input_size`, `labels`, `device`: as for `atlas.visualize`.
        `classes`: a spec as `--classes` takes it ("daisy,3", "0-9"), a class index or name, or a list of
        them; None: every class folder. `concepts`, `images_per_class`, `layer`, `patch`: as the
        flags of `atlas concepts`, checked as they are. A head without class names of its own is named by
        the sorted class folders, as `atlas concepts` names it. `layers` ({"blocks.3": "0-3", "conv_head":
        [1, 5]}, channel specs as `--layers` takes them) also stores those channels' dataset examples, which
        channel pages show, and returns them in `.examples` (layer -> each channel's `ExplainedChannel`).
        Returns one `ClassConcepts` per class, in class order; pass them to `atlas.visualize` for their
        concepts' pictures, and `add` those."""
        from atlas.concepts.run import ConceptRequest, folder_index, run_concepts
        from atlas.concepts.store import read_bank, read_examples
        from atlas.config import Selection
        from atlas.labels import lookup
        from atlas.plan import select_targets
        from atlas.specs import parse_classes

        for key, value in (("concepts", concepts), ("images_per_class", images_per_class), ("patch", patch)):
            low, high = RANGES[f"concepts.{key}"]
            if not (value is None and key == "patch") and (isinstance(value, bool) or not isinstance(value, int)
                                                           or not low <= value <= high):
                raise AtlasError(f"{key} is an integer from {low} to {high}, not {value!r}")
        loaded = _named(_loaded(model, device, name=name, mean=mean, std=std, input_size=input_size), labels)
        folder = Path(images)
        if labels is None and loaded.num_classes and loaded.classes == numbered(loaded.num_classes):
            loaded = _named(loaded, folder_labels(folder))  # as atlas.classifier names such a head
        folder_index(loaded, folder)  # its folders name the model's classes: checked before the cache is touched
        every = classes is None or (isinstance(classes, str) and classes.strip().lower() == "all")
        wanted = None if every else parse_classes(_class_spec(classes), loaded.num_classes, lookup(loaded.classes))
        if wanted == []:
            raise AtlasError("classes names no class: leave it out (or \"all\") for every class folder")
        if layers is not None and not isinstance(layers, Mapping):
            raise AtlasError(f"layers maps each layer to its channels, {{\"blocks.3\": \"0-3\"}}, not {layers!r}")
        specs = tuple((str(name), _channel_spec(spec)) for name, spec in (layers or {}).items())
        _, channels = select_targets(loaded, Selection(classes="none", layers=specs))
        self.cache.ensure_writable()
        on_gpu = resolve_device(device).startswith("cuda")  # the batches `atlas concepts` picks there
        request = ConceptRequest(images=folder, cache=self.cache.root, classes=wanted, concepts=concepts,
                                 layer=layer, per_class=images_per_class, patch=patch,
                                 example_layers={name: c for name, c in channels.items() if c},
                                 batch_size=256 if on_gpu else 32, group=16 if on_gpu else 1)
        summary = run_concepts(loaded, request, report=report or (lambda _line: None))
        if (problem := summary.nothing_read(folder)) is not None:
            raise AtlasError(problem)
        names = tuple(c.name for c in loaded.classes)
        explained = []
        for _, key in sorted(summary.banks.items()):
            bank = read_bank(self.cache.root, key)
            if bank is not None:
                explained.append(ClassConcepts(self.cache.root, bank, names))
        examples = {}
        for layer, key in summary.examples.items():
            found = read_examples(self.cache.root, key)
            if found is not None:
                examples[layer] = LayerExamples(ExplainedChannel(self.cache.root, found, i, names)
                                                for i in range(len(found.channels)))
        return Explanations(explained, examples)

    def build(self, out: str | Path, **options: Any):
        """The static site of this cache in `out` (atlas.site.build.build; `atlas build` does the same)."""
        from atlas.site.build import build

        return build(self.cache.root, Path(out), **options)
