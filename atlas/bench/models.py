"""What each further model of an atlas costs, and how the models read each other's pictures.

The class pictures of the `[cpu]` subset are rendered with the first model into a temporary cache,
then each further model is added as `atlas render` adds one to `models = [...]`: every model's run
of the pipeline (the earlier ones find their pictures in the cache), then the cross-judging of the
new model's pictures by the others and of the others' pictures by it (atlas.crossjudge).  Times are
wall seconds and CPU seconds of this process (all its threads): on a shared machine the CPU seconds
are the figure that another run can expect.  Renders have no render-time judges, so every reading
of one model's picture by another is a cross-judgment; each picture keeps its generator's own scores.
The transferability matrix is the site's (atlas.site.compare.matrix) on the cache it leaves.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from atlas import judgment, pipeline, store
from atlas.config import Config, ModelEntry, Scoring, Selection
from atlas.crossjudge import judge_across
from atlas.errors import AtlasError
from atlas.labels import lookup
from atlas.models import imagenet_classes
from atlas.site.cache_reader import read_cache
from atlas.site.compare import Matrix, index_judgments, matrix
from atlas.site.gather import gather
from atlas.specs import parse_classes

MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


@dataclass(frozen=True)
class Seconds:
    wall: float
    cpu: float  # process CPU time, every thread of this process

    def __add__(self, other: Seconds) -> Seconds:
        return Seconds(self.wall + other.wall, self.cpu + other.cpu)


@dataclass(frozen=True)
class ModelStep:
    """One model added to the atlas: what its render and the cross-judging it brings cost."""

    model: str
    rendered: dict[str, int]  # model -> pictures the pipeline rendered in this step (0: all from the cache)
    render: Seconds  # every model's pipeline run of this step, as `atlas render` runs them
    judging: Seconds  # atlas.crossjudge.judge_across of this step
    judgments: int  # judgments it made

    @property
    def pictures(self) -> int:
        return self.rendered[self.model]

    @property
    def total(self) -> Seconds:
        return self.render + self.judging


@dataclass(frozen=True)
class ModelsBench:
    classes: tuple[int, ...]
    preset: str
    crops: int
    steps: tuple[ModelStep, ...]
    matrix: Matrix

    def multiple(self, seconds: Seconds) -> float:
        """CPU seconds as a multiple of the first model's (its render with its own scores)."""
        return seconds.cpu / self.steps[0].total.cpu

    def atlas_total(self, upto: int) -> Seconds:
        """What the atlas of the first `upto` + 1 models cost in all."""
        total = Seconds(0.0, 0.0)
        for step in self.steps[: upto + 1]:
            total = total + step.total
        return total

    def to_json(self) -> dict[str, object]:
        return {
            "classes": list(self.classes), "preset": self.preset, "crops": self.crops,
            "steps": [{"model": s.model, "rendered": s.rendered, "render": dataclasses.asdict(s.render),
                       "judging": dataclasses.asdict(s.judging), "judgments": s.judgments,
                       "cpu_s_per_image": s.render.cpu / max(s.pictures, 1),
                       "added_x_first": self.multiple(s.total),
                       "atlas_x_first": self.multiple(self.atlas_total(i))} for i, s in enumerate(self.steps)],
            "matrix": {"rate": "mean top-1 rate over the generator's class pictures: whole picture, large crops",
                       "judges": list(self.matrix.judges),
                       "rows": [{"generator": r.generator, "pictures": r.pictures,
                                 "whole_top1": [c[0] for c in r.cells], "large_top1": [c[1] for c in r.cells]}
                                for r in self.matrix.rows]},
        }


def subset_classes(config: Config, count: int | None = None) -> tuple[int, ...]:
    """The first `count` classes of the config's `[cpu]` subset (all of them by default)."""
    table = imagenet_classes()
    found = tuple(parse_classes(config.cpu.classes, len(table), lookup(table)))
    return found[:count] if count is not None else found


def bench_models(config: Config, classes: Sequence[int], device: str, *, models: Sequence[str] = MODELS,
                 crops: int | None = None, cache: Path | None = None, report: Callable[[str], None] = print,
                 **preset_overrides: object) -> ModelsBench:
    """Render `classes` at the `[cpu]` preset with `models[0]`, add the others one at a time, and time each
    step; `crops` and `preset_overrides` replace the config's (for a quick run). `cache`: a new folder to
    render into and keep; by default a temporary one."""
    if cache is not None:
        return _bench(config, classes, device, models, crops, Path(cache), report, preset_overrides)
    with tempfile.TemporaryDirectory(prefix="atlas-models-bench-") as folder:
        return _bench(config, classes, device, models, crops, Path(folder) / "cache", report, preset_overrides)


def _bench(config: Config, classes: Sequence[int], device: str, models: Sequence[str], crops: int | None,
           cache: Path, report: Callable[[str], None], preset_overrides: dict[str, object]) -> ModelsBench:
    scoring = Scoring(crops if crops is not None else config.scoring.crops_on(device), config.scoring.seed)
    subset = config.cpu
    selection = dataclasses.replace(subset, classes=",".join(map(str, classes)), layers=(), judges=(),
                                    preset=subset.preset.with_overrides(**preset_overrides))
    steps = []
    for count in range(1, len(models) + 1):
        atlas = dataclasses.replace(config, cache=cache, scoring=scoring,
                                    models=tuple(ModelEntry(m) for m in models[:count]))
        steps.append(_add_model(atlas.model_configs(), selection, device, report))
        step = steps[-1]
        report(f"{step.model}: {step.pictures} pictures in {step.render.wall:.1f} s ({step.render.cpu:.1f} CPU s), "
               f"{step.judgments} judgments in {step.judging.wall:.1f} s ({step.judging.cpu:.1f} CPU s)")
    judged = index_judgments(store.entries(cache, judgment.KIND.name))
    found = matrix([gather(read_cache(cache, m)) for m in models], judged)
    if found is None:
        raise AtlasError(f"no two of the models {', '.join(models)} share a class table: name at least two "
                         "models of one class table")
    return ModelsBench(tuple(classes), selection.preset.name, scoring.crops, tuple(steps), found)


def _add_model(configs: list[Config], selection: Selection, device: str, report: Callable[[str], None]) -> ModelStep:
    """`atlas render` of an atlas whose last model is new: each model's pipeline run, then the cross-judging."""
    rendered = {}
    started = _now()
    for own in configs:
        request = pipeline.RenderRequest(config=own, selection=selection, device=device,
                                         batch_size=own.batch_size)
        rendered[own.model] = pipeline.run(request, report=lambda _line: None).rendered
    render = _since(started)
    started = _now()
    made = judge_across(configs, device, report=report)
    return ModelStep(configs[-1].model, rendered, render, _since(started), made)


def _now() -> Seconds:
    return Seconds(time.perf_counter(), time.process_time())


def _since(start: Seconds) -> Seconds:
    now = _now()
    return Seconds(now.wall - start.wall, now.cpu - start.cpu)
