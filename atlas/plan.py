"""Planning a run: the selection -> the canonical job list -> this shard's jobs, each with its
cache key and what the cache holds for it.  Nothing is rendered here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from atlas.cache import Cache, EntryState
from atlas.concepts.craft import concept_objective
from atlas.concepts.formats import ConceptBank
from atlas.concepts.store import VISUALIZATION_COSINE, current_banks, entry_folder, vector_problem
from atlas.config import Config, Selection
from atlas.errors import AtlasError
from atlas.jobs import Job, Shard, build_jobs, select_shard
from atlas.kind import content_key
from atlas.labels import lookup
from atlas.models import LoadedModel, classifier_weights, find_layer, pre_logits_layer
from atlas.objectives import CLASS_OBJECTIVES, Objective
from atlas.settings import RenderSettings
from atlas.specs import parse_channels, parse_classes


@dataclass(frozen=True)
class PlannedJob:
    job: Job
    key: str
    state: EntryState  # what the cache holds under `key` at planning time


@dataclass(frozen=True)
class Plan:
    loaded: LoadedModel
    settings: RenderSettings  # the one value the keys, the records and the engine read
    jobs: list[PlannedJob]  # this shard's jobs
    all_jobs: int  # jobs of every shard together
    problems: tuple[str, ...] = ()  # concept banks of the cache left out, one line each
    banks: Mapping[int, ConceptBank] = field(default_factory=dict)  # class -> the bank its concept jobs come from


def make_plan(config: Config, selection: Selection, shard: Shard, loaded: LoadedModel, cache: Cache) -> Plan:
    settings = RenderSettings.from_config(config, selection)
    classes, layers = select_targets(loaded, selection)
    problems: list[str] = []
    banks: dict[int, ConceptBank] = {}
    jobs = build_jobs(classes, layers, selection.preset.seeds,
                      concept_targets(config, loaded, classes, problems, banks),
                      CLASS_OBJECTIVES[config.class_objective])
    planned = []
    for job in select_shard(jobs, shard):
        key = job_key(settings, loaded, job.objective, job.seed)
        planned.append(PlannedJob(job, key, cache.check(key)))
    return Plan(loaded, settings, planned, len(jobs), tuple(problems), banks)


def job_key(settings: RenderSettings, loaded: LoadedModel, objective: Objective, seed: int) -> str:
    """The cache key of `objective`'s image with `seed` under `settings`."""
    return content_key(settings.key_material(loaded.name, loaded.weights_sha256, objective.id, seed))


def select_targets(loaded: LoadedModel, selection: Selection) -> tuple[list[int], dict[str, list[int]]]:
    """The classes and the channels per layer that `selection` names, checked against the model."""
    names = lookup(loaded.classes)  # WordNet ids where the model has them, and class names
    classes = parse_classes(selection.classes, loaded.num_classes, names) if loaded.num_classes else []
    if not loaded.num_classes and selection.classes.strip().lower() not in ("none", ""):
        raise AtlasError(f"model {loaded.name} has no classifier: set classes = \"none\"")
    channels: dict[str, list[int]] = {}
    for layer, spec in selection.layers:
        try:
            info = find_layer(loaded, layer)
        except AtlasError as exc:
            raise AtlasError(f"{exc}; choose the layers under [{selection.key('layers')}] in the config "
                              "or with --layers") from None
        channels[layer] = parse_channels(spec, layer, info.channels, _channel_ranking(loaded, layer))
    return classes, channels


def _channel_ranking(loaded: LoadedModel, layer: str) -> list[int] | None:
    """Channels of the layer feeding the classifier, by the norm of their classifier-weight column."""
    weights = classifier_weights(loaded)
    if weights is None or layer != pre_logits_layer(loaded):
        return None
    return weights.norm(dim=0).argsort(descending=True).tolist()


def concept_targets(config: Config, loaded: LoadedModel, classes: Sequence[int],
                    problems: list[str] | None = None,
                    used: dict[int, ConceptBank] | None = None) -> list[tuple[int, Objective]]:
    """(class, direction) for every concept of the cache's current banks (`atlas concepts`) of the
    selected classes, most important first; a CPU subset renders only its own classes' concepts.
    A bank that is unusable (or whose vectors do not fit its layer) is left out, with a line in `problems`;
    `used` receives the banks the directions come from (their pictures are measured against them)."""
    banks = current_banks(config.cache, loaded.name, loaded.weights_sha256, problems)
    for index in sorted(set(classes) & set(banks)):
        bank = banks[index]
        try:
            why = vector_problem(bank, find_layer(loaded, bank.layer).channels)
        except AtlasError as exc:  # a layer this model lacks
            why = str(exc)
        if why:
            del banks[index]
            if problems is not None:
                problems.append(f"{entry_folder(config.cache, bank)}: {why}")
    if used is not None:
        used.update({index: banks[index] for index in set(classes) & set(banks)})
    return [(index, concept_objective(banks[index].layer, concept.values, cosine=VISUALIZATION_COSINE))
            for index in sorted(set(classes) & set(banks)) for concept in banks[index].concepts]
