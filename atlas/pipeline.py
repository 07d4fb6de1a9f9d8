"""`atlas render`: the job list -> batched MACO renders -> scores -> cache entries.

The story of a run: plan it (atlas.plan: the selection becomes this shard's jobs, each looked
up in the cache; corrupt entries are reported and rendered again); write the model metadata
(atlas.metadata); render what is left in batches of one layer's objectives, score each image
with the generator and the judges, and store it as an entry (atlas.entry: its files and
record).  A non-finite objective value is retried once with a derived seed, then recorded as
a failure.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from atlas import render as engine
from atlas.cache import Cache
from atlas.classifier import load_configured_model, same_classes
from atlas.concepts.expression import picture_expression
from atlas.config import Config, JudgeModel, Selection
from atlas.device import auto_batch_size
from atlas.entry import entry_files, render_record, stored_pixels
from atlas.jobs import Job, Shard, batches
from atlas.metadata import listed_classes, model_info
from atlas.model_record import renamed_classes
from atlas.models import LoadedModel, load_model
from atlas.plan import Plan, PlannedJob, make_plan
from atlas.record import ConceptExpression, RenderRecord, Retry, Scores, Timing
from atlas.scoring import Judge, judge_images
from atlas.seeds import job_seed
from atlas.writer import Writer, to_host

Report = Callable[[str], None]
ProgressFactory = Callable[..., Any]  # tqdm-like: (total=, unit=, desc=) -> object with update/close/set_postfix_str


def run(request: RenderRequest, *, report: Report = print, progress: ProgressFactory | None = None,
        warn: Report | None = None) -> RenderSummary:
    """Render every job of this shard that the cache lacks; returns the counts for the summary line.
    `warn` hears what the run leaves out and goes on without (a judge that cannot judge these classes)."""
    started = time.perf_counter()
    config = request.config
    cache = _open_cache(config, report)
    loaded = load_configured_model(config, device=request.device)
    plan = make_plan(config, request.selection, request.shard, loaded, cache)
    summary = RenderSummary(total=len(plan.jobs), keys=[p.key for p in plan.jobs])
    for problem in plan.problems:
        report(f"warning: skipped concept bank {problem}")
    todo = _todo(plan, request, summary, report)
    judges = _load_judges(loaded, request, warn or report) if todo else []  # an unknown judge: before any write
    _write_model_info(cache, plan, request, warn or report)
    report(_plan_line(plan, request, todo, summary))
    if todo:
        size = request.batch_size or _auto_batch_size(plan, request, todo)
        report(f"batch size {size}" + ("" if request.batch_size else " (auto)"))
        _render_all(plan, request, cache, judges, todo, size, summary, progress)
    summary.seconds = time.perf_counter() - started
    return summary


@dataclass(frozen=True)
class RenderRequest:
    """One `atlas render` run, every choice made: what, where, how, and which part of the list."""

    config: Config
    selection: Selection
    device: str  # resolved: atlas.device.resolve_device
    batch_size: int | None = None
    shard: Shard = field(default_factory=Shard)
    force: bool = False
    retry_failed: bool = False


@dataclass
class RenderSummary:
    """What a run did, counted as it goes; `line()` is the summary line `atlas render` prints."""

    total: int = 0  # jobs in this shard
    rendered: int = 0
    reused: int = 0
    failed: int = 0  # failed in this run (after the retry)
    failed_before: int = 0  # failures recorded by an earlier run, kept
    corrupt: int = 0  # damaged entries found and rendered again
    retried: int = 0
    seconds: float = 0.0
    keys: list[str] = field(default_factory=list)

    def line(self) -> str:
        parts = [f"{self.rendered} rendered", f"{self.reused} reused from cache", f"{self.failed} failed"]
        if self.failed_before:
            parts.append(f"{self.failed_before} failed earlier (rerun with --retry-failed)")
        if self.corrupt:
            parts.append(f"{self.corrupt} corrupt entries redone")
        return f"{', '.join(parts)} of {self.total} in {_duration(self.seconds)}"


def _open_cache(config: Config, report: Report) -> Cache:
    """The cache, writable and rid of the temporary files of writers that died."""
    cache = Cache(config.cache)
    cache.ensure_writable()
    removed = cache.clean_stale()
    if removed:
        report(f"removed {removed} stale temporary file(s) left by an interrupted run")
    return cache


def _todo(plan: Plan, request: RenderRequest, summary: RenderSummary, report: Report) -> list[PlannedJob]:
    """The jobs to render now; counts the others (reused, failed earlier) and the corrupt ones."""
    todo = []
    for item in plan.jobs:
        state = item.state
        if state.status == "corrupt":
            report(f"corrupt cache entry {item.key[:12]} ({item.job.id}): {state.reason}; rendering it again")
            summary.corrupt += 1
        if request.force or not state.done or (request.retry_failed and state.status == "failed"):
            todo.append(item)
        elif state.status == "failed":
            summary.failed_before += 1
        else:
            summary.reused += 1
    return todo


def _write_model_info(cache: Cache, plan: Plan, request: RenderRequest, warn: Report) -> None:
    """`models/<name>.json`, unless the cache holds it for these weights already (--force writes it again;
    a file `atlas concepts` wrote, naming no spectrum, is written again with the renders' own when it names
    the classes alike); refused, before anything is rendered, when the cache holds the model with other weights."""
    loaded = plan.loaded
    existing = cache.model_for(loaded.name, loaded.weights_sha256, "render into another folder with --cache")
    if request.force or existing is None:
        cache.write_model(model_info(loaded, request.device, plan.settings.spectrum_sha256))
        return
    # the pages already there (pictures, or concepts) name the classes as the file does: they stay, and the
    # user hears why
    detail = renamed_classes(existing, [c.name for c in listed_classes(loaded)])
    if detail is None and not existing.spectrum_sha256:
        cache.write_model(model_info(loaded, request.device, plan.settings.spectrum_sha256))
    elif detail is not None:
        warn(f"the cache names the classes of {loaded.name} otherwise ({detail}); its names are kept: render "
             "into another folder with --cache for these names, or add --force to render these pictures again "
             "under them")


def _plan_line(plan: Plan, request: RenderRequest, todo: Sequence[PlannedJob], summary: RenderSummary) -> str:
    """What the run is about to do, in one line."""
    shard = f" (shard {request.shard} of {plan.all_jobs} jobs)" if request.shard.count > 1 else ""
    concepts = sum(1 for p in plan.jobs if p.job.concept_of is not None)
    shard += f" ({concepts} of them concepts, from `atlas concepts`)" if concepts else ""
    return (f"{len(plan.jobs)} objectives{shard}: {len(todo)} to render, {summary.reused + summary.failed_before} "
            f"in the cache; model {plan.loaded.name}, preset {plan.settings.preset.name}, device {request.device}")


def _load_judges(loaded: LoadedModel, request: RenderRequest, warn: Report) -> list[Judge]:
    """The generator and the judges; with --random-weights the judges are random too (a dry run
    of the whole path on machines without any weights).  A judge scores only a generator with its
    own class table: an ImageNet judge cannot say whether a fine-tuned head's class 2 is there."""
    judges = [Judge(loaded, "generator")]
    refused = []
    for entry in request.selection.judges:
        if isinstance(entry, JudgeModel):  # a checkpoint of its own, named by it: "efficientnet_lite1@flowers"
            own = Config(model=entry.model, checkpoint=entry.checkpoint, labels=entry.labels)
            judge = dataclasses.replace(load_configured_model(own, device=request.device), name=entry.name)
        elif entry == loaded.name:
            continue
        else:
            judge = load_model(entry, random_weights=request.config.random_weights, device=request.device)
        name = judge.name
        if same_classes(judge, loaded):
            judges.append(Judge(judge, "judge"))
        else:
            refused.append(f"{name} ({judge.num_classes} {judge.dataset + ' ' if judge.dataset else ''}classes)")
    if refused:
        warn(f"judges left out: {', '.join(refused)} cannot judge the {loaded.num_classes} classes of "
             f"{loaded.name}; rendering without them (set {request.selection.key('judges')} = [] to silence this)")
    return judges


def _auto_batch_size(plan: Plan, request: RenderRequest, todo: Sequence[PlannedJob]) -> int:
    """What fits on the device (atlas.device), probed for two steps with copies of one objective:
    one that reads the logits (the deepest forward) if any job does, else the last job's.  The
    probe renders with the batches' own settings (precision and memory layout change the memory)."""
    sample = next((p for p in todo if p.job.objective.needs_logits), todo[-1]).job.objective
    probe = plan.settings.with_steps(2)

    def render(count: int) -> None:
        engine.render(plan.loaded, [sample] * count, probe, list(range(count)), device=request.device)

    return auto_batch_size(request.device, render, plan.settings.preset.views)


# --------------------------------------------------------------------------------------------
# The loop: render and judge a batch on the device, hand it to the writer thread, which stores
# each image while the next batch renders; a non-finite value comes back for one retry


@dataclass(frozen=True)
class _Attempt:
    item: PlannedJob
    seed: int
    attempt: int  # 0: the job's own seed; 1: the retry after a non-finite value
    first_value: float | None = None

    def retry(self, value: float) -> _Attempt:
        """The one retry of a first attempt that went non-finite, with a seed derived from the job's."""
        job = self.item.job
        return _Attempt(self.item, job_seed(job.objective.id, job.seed_index, attempt=1), 1, first_value=value)


@dataclass(frozen=True)
class _Batch:
    """A rendered, judged batch on its way to the cache, with nothing left to do on the device:
    `host()` waits for its stored pixels (K, 3, S, S uint8) and attributions on the host."""

    attempts: tuple[_Attempt, ...]
    values: tuple[float, ...]
    finite: tuple[bool, ...]  # False: the value or a gradient went non-finite
    judging: dict[int, dict[str, Scores]]  # index of a finite image -> scale name -> scores (atlas.scoring)
    timing: Timing
    host: Callable[[], list[torch.Tensor]]
    expressions: tuple[ConceptExpression | None, ...] = ()  # concept pictures: how strongly they show their concept

    def retried(self, k: int) -> bool:
        """A first attempt that went non-finite: rendered again, not stored."""
        return not self.finite[k] and self.attempts[k].attempt == 0


@dataclass(frozen=True)
class _Outcome:
    """One objective of a rendered batch: its files and scores when its value is finite."""

    attempt: _Attempt
    value: float
    files: dict[str, bytes] | None  # None: the value or a gradient went non-finite
    judging: dict[str, Scores] | None  # scale name -> scores (atlas.scoring)
    pixels: np.ndarray | None  # the image as stored
    timing: Timing
    expression: ConceptExpression | None = None  # concept pictures: how strongly they show their concept


def overlaps_host(device: str) -> bool:
    """Whether the host's work (encoding, writing) runs beside the render: on a device, yes; on the CPU
    the render's threads use every core, and a writer thread beside them slowed the `cpu` subset."""
    return torch.device(device).type != "cpu"


def _render_all(plan: Plan, request: RenderRequest, cache: Cache, judges: Sequence[Judge],
                todo: Sequence[PlannedJob], size: int, summary: RenderSummary,
                progress: ProgressFactory | None) -> None:
    """Render in batches of one layer, each stored by the writer thread while the next one renders;
    objectives with a non-finite value come back for one retry."""
    bar = progress(total=len(todo), unit="obj", desc="render", dynamic_ncols=True) if progress else None
    writer = Writer(depth=1, threaded=overlaps_host(request.device))  # one batch waits: memory stays flat
    pending = [_Attempt(item, item.job.seed, 0) for item in todo]
    try:
        while pending:
            retries: list[_Attempt] = []
            for chunk in batches(pending, size, key=lambda a: a.item.job.group):
                batch = _render_batch(plan, request, judges, chunk, _step_reporter(bar, len(chunk), writer))
                for k, attempt in enumerate(batch.attempts):
                    if batch.retried(k):
                        summary.retried += 1
                        retries.append(attempt.retry(batch.values[k]))
                writer.submit(functools.partial(_store_batch, plan, request, cache, batch, summary, bar, writer))
            pending = retries
        writer.close()
    except BaseException:
        writer.drain()  # what is rendered already is kept, as an interrupted run promises
        raise
    finally:
        if bar is not None:
            bar.close()


def _store_batch(plan: Plan, request: RenderRequest, cache: Cache, batch: _Batch, summary: RenderSummary,
                 bar: Any, writer: Writer) -> None:
    """The writer thread's part of a batch: each image's files and record, written as one entry."""
    pixels, attributions = batch.host()
    for k in range(len(batch.attempts)):
        if writer.abandoned:
            return
        if batch.retried(k):
            continue
        _store(plan, request, cache, _outcome(batch, k, pixels[k], attributions[k]), summary)
        if bar is not None:
            bar.update(1)


def _outcome(batch: _Batch, k: int, pixels: torch.Tensor, attribution: torch.Tensor) -> _Outcome:
    """Image k of a batch on the host: its stored pixels and the files made of them."""
    if not batch.finite[k]:
        return _Outcome(batch.attempts[k], batch.values[k], None, None, None, batch.timing)
    stored = pixels.permute(1, 2, 0).numpy()  # (S, S, 3) uint8: the image as stored
    return _Outcome(batch.attempts[k], batch.values[k], entry_files(stored, attribution), batch.judging.get(k),
                    stored, batch.timing,
                    batch.expressions[k] if k < len(batch.expressions) else None)


def _store(plan: Plan, request: RenderRequest, cache: Cache, outcome: _Outcome, summary: RenderSummary) -> None:
    """Write the outcome's entry and count it."""
    record = _record(plan, request, outcome)
    cache.write_entry(outcome.attempt.item.key, outcome.files or {}, record)
    if record.status == "ok":
        summary.rendered += 1
    else:
        summary.failed += 1


def _record(plan: Plan, request: RenderRequest, outcome: _Outcome) -> RenderRecord:
    """The outcome's record: a retry says so, and a retry that went non-finite again is a failure."""
    attempt, job = outcome.attempt, outcome.attempt.item.job
    retry = failure = None
    if attempt.attempt > 0:
        retry = Retry(job.seed, f"non-finite objective value ({attempt.first_value})")
    if outcome.files is None:
        failure = (f"non-finite objective value with seed {job.seed} ({attempt.first_value}) "
                   f"and with retry seed {attempt.seed} ({outcome.value})")
    return render_record(plan, attempt.item, seed=attempt.seed, value=outcome.value,
                         timing=outcome.timing, judging=outcome.judging, pixels=outcome.pixels,
                         retry=retry, failure=failure, expression=outcome.expression)


def _render_batch(plan: Plan, request: RenderRequest, judges: Sequence[Judge], attempts: Sequence[_Attempt],
                  step: Callable[[int, int], None] | None) -> _Batch:
    """Render and judge one batch on the device (no I/O), and start moving its pictures to the host."""
    config = request.config
    result = engine.render(plan.loaded, [a.item.job.objective for a in attempts], plan.settings,
                           [a.seed for a in attempts], device=request.device, progress=step, keep_on_device=True)
    count = len(attempts)
    finite = tuple(bool(f) and bool(np.isfinite(float(v))) for f, v in zip(result.finite, result.values, strict=True))
    pixels = stored_pixels(result.images)  # on the render's device, where the judges are
    judging, judge_seconds = _judge(pixels, finite, attempts, judges, config.scoring.crops_on(request.device),
                                    config.scoring.seed)
    timing = Timing(seconds=round(result.seconds / count, 4), batch_size=count, device=request.device,
                    finished=_now(), batch_seconds=round(result.seconds, 4),
                    scoring_seconds=round(judge_seconds, 4), shard=str(request.shard))
    # in this thread, not the writer's: the measure runs the model, whose hooks the next batch's render shares
    expressions = tuple(_expression(plan, a.item.job, pixels[k]) if finite[k] else None
                        for k, a in enumerate(attempts))
    return _Batch(tuple(attempts), tuple(float(v) for v in result.values), finite, judging, timing,
                  to_host([pixels, result.attributions]), expressions)


def _expression(plan: Plan, job: Job, picture: torch.Tensor) -> ConceptExpression | None:
    """A concept picture's hold on its own concept against its bank's others (None for other jobs):
    a noisy picture that the class judging passes may still show none of its concept."""
    bank = plan.banks.get(job.concept_of) if job.concept_of is not None else None
    if bank is None:
        return None
    stored = picture.permute(1, 2, 0).cpu().numpy()  # (S, S, 3) uint8: the image as stored
    return picture_expression(plan.loaded, bank, job.objective, stored)


def _judge(pixels: torch.Tensor, finite: Sequence[bool], attempts: Sequence[_Attempt], judges: Sequence[Judge],
           crops: int, seed: int) -> tuple[dict[int, dict[str, Scores]], float]:
    """The judging of the batch's finite images (index -> scale -> scores) and the seconds it took an
    image.  The images are judged as stored, in 8 bits, by one protocol for every preset (atlas.scoring),
    on the device they were rendered on: crops are cut and resized there."""
    good = [k for k in range(len(finite)) if finite[k]]
    if not good:
        return {}, 0.0
    tick = time.perf_counter()
    stored = pixels[good].float() / 255
    targets = [attempts[k].item.job.target for k in good]
    judged = judge_images(stored, judges, targets, crops=crops, seed=seed)
    return dict(zip(good, judged, strict=True)), (time.perf_counter() - tick) / len(good)


def _step_reporter(bar: Any, count: int, writer: Writer) -> Callable[[int, int], None]:
    """At every step: stop the render at once if the writer failed; and show the running batch's step in
    the bar (a CPU batch takes minutes), about 16 times a batch."""
    show = bar is not None and hasattr(bar, "set_postfix_str")

    def report(step: int, steps: int) -> None:
        writer.check()
        if show and (step == steps or step % max(1, steps // 16) == 0):
            bar.set_postfix_str(f"batch of {count}: step {step}/{steps}")

    return report


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"
