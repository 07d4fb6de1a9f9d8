"""Class and channel specs -> the job list; sharding across processes.

A job is one image: an objective (a class logit, a layer channel, or a concept's direction) and a
seed index.  The list
is built in one canonical order from the configuration alone, so every shard of a run computes
the same list and takes every N-th job of it; seeds come from a hash of the objective's id and
the seed index (atlas.seeds), never from a job's position.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from atlas.errors import AtlasError
from atlas.objectives import Objective, channel, class_logit
from atlas.seeds import job_seed

T = TypeVar("T")
LOGITS = "logits"  # the group of class-logit jobs: they all read the model's output


@dataclass(frozen=True)
class Job:
    objective: Objective  # one term: a class logit, a channel or a concept's direction
    seed_index: int
    seed: int
    concept_of: int | None = None  # the class whose concept bank the direction comes from

    @property
    def target(self) -> int | None:
        """The class the picture should show (scored like a class logit's): its own, or its concept's."""
        return self.objective.class_index if self.concept_of is None else self.concept_of

    @property
    def id(self) -> str:
        return f"{self.objective.id}#{self.seed_index}"

    @property
    def group(self) -> str:
        """Jobs of one group read the same layer and are rendered together."""
        return LOGITS if self.objective.needs_logits else ",".join(sorted(self.objective.layers))


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0-based); `source` says where it came from, for messages."""

    index: int = 0
    count: int = 1
    source: str = "default"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_layers_arg(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """Command-line layers: `blocks.3=0-31 conv_head=top:64`; nothing or `none` means no layers."""
    layers = []
    for value in values:
        if value.strip().lower() == "none":
            continue
        name, sep, spec = value.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise AtlasError(f"bad --layers item {value!r}: write LAYER=SPEC, like blocks.3=0-31 or conv_head=top:64")
        if any(name.strip() == known for known, _ in layers):
            raise AtlasError(f"--layers names {name.strip()} twice: give its channels once, joined like "
                             f"{name.strip()}=0-1,5")
        layers.append((name.strip(), spec.strip()))
    return tuple(layers)


def build_jobs(classes: Iterable[int], channels: Mapping[str, Sequence[int]], seeds: int,
               concepts: Sequence[tuple[int, Objective]] = (),
               class_objective: Callable[[int], Objective] = class_logit) -> list[Job]:
    """The canonical job list: classes, then each layer's channels in config order, seeds inner;
    then the concepts (class, direction), each with seed index 0 only: a class has ten of them, so
    one picture each already costs ten class renders, and Lens shows one."""
    objectives = [class_objective(i) for i in classes]
    objectives += [channel(layer, c) for layer, chans in channels.items() for c in chans]
    jobs = [Job(o, s, job_seed(o.id, s)) for o in objectives for s in range(seeds)]
    return jobs + [Job(o, 0, job_seed(o.id, 0), concept_of=c) for c, o in concepts]


def select_shard(jobs: Sequence[T], shard: Shard) -> list[T]:
    """Every `count`-th job from `index`: disjoint shards that cover the list, balanced across
    layers (channel jobs of deep layers cost more than class jobs)."""
    return list(jobs[shard.index :: shard.count])


def parse_shard(text: str) -> Shard:
    """`I/N` with 0 <= I < N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise AtlasError(f"bad --shard {text!r}: write I/N with 0 <= I < N, like 0/4")
    return _checked(int(match[1]), int(match[2]), "--shard")


def _checked(index: int, count: int, source: str) -> Shard:
    if count < 1 or not 0 <= index < count:
        raise AtlasError(f"bad shard {index}/{count} from {source}: need 0 <= index < count")
    return Shard(index, count, source)


def shard_from_env(environ: Mapping[str, str] | None = None) -> Shard:
    """The shard a launcher assigned: torchrun's RANK/WORLD_SIZE, or a SLURM job array.

    SLURM array ids need not start at 0 (`--array=1-8`), hence the SLURM_ARRAY_TASK_MIN offset
    and the step of `--array=0-14:2`.
    """
    env = os.environ if environ is None else environ
    try:
        if "WORLD_SIZE" in env and "RANK" in env:
            return _checked(int(env["RANK"]), int(env["WORLD_SIZE"]), "RANK/WORLD_SIZE")
        if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
            step = int(env.get("SLURM_ARRAY_TASK_STEP", "1") or 1)
            offset = int(env.get("SLURM_ARRAY_TASK_MIN", "0") or 0)
            index = (int(env["SLURM_ARRAY_TASK_ID"]) - offset) // max(step, 1)
            return _checked(index, int(env["SLURM_ARRAY_TASK_COUNT"]), "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT")
    except ValueError as exc:
        raise AtlasError(f"bad shard environment variable: {exc}; unset it or pass --shard I/N") from None
    return Shard()


def batches(items: Sequence[T], size: int, key: Callable[[T], str] = lambda job: job.group) -> list[list[T]]:
    """Items of one group (one layer, or all logits) in chunks of at most `size`, in list order."""
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return [chunk[i : i + size] for chunk in groups.values() for i in range(0, len(chunk), size)]
