"""`atlas render`: the job list -> batched MACO renders -> scores -> cache entries.

The story of a run: resolve the device and what to render (the full configuration, or the
`[cpu]` subset on a machine without a GPU); load the model; turn class and channel specs into
the canonical job list and take this process's shard; look every job up in the cache (corrupt
entries are reported and rendered again); render what is left in batches of one layer's
objectives, score each image with the generator and the judges, and store it.  A non-finite
objective value is retried once with a derived seed, then recorded as a failure.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atlas import __version__
from atlas.cache import ATTRIBUTION, IMAGE, Cache, EntryState, cache_key, encode_npy, encode_png
from atlas.config import Config, Selection
from atlas.errors import AtlasError
from atlas.imagestats import image_stats
from atlas.jobs import (
    Job,
    Shard,
    Target,
    batches,
    build_jobs,
    derive_seed,
    local_device,
    parse_channels,
    parse_classes,
    select_shard,
)
from atlas.judging import judge_images
from atlas.models import (
    LoadedModel,
    classifier_weights,
    find_layer,
    imagenet_classes,
    list_layers,
    load_model,
    pre_logits_layer,
)
from atlas.scoring import Judge

CPU_BATCH = 2  # `atlas bench` scaling on 2 cores, cpu preset: 276 images/h at batch 2, 233 at 1, 227 at 4, 159 at 8
MAX_AUTO_BATCH = 64
NEAREST = 8

Report = Callable[[str], None]
ProgressFactory = Callable[..., Any]  # tqdm-like: (total=, unit=, desc=) -> object with update/close/set_postfix_str


@dataclass(frozen=True)
class RenderRequest:
    """One `atlas render` run, every choice made: what, where, how, and which part of the list."""

    config: Config
    selection: Selection
    device: str
    cpu_subset: bool
    batch_size: int | None = None
    shard: Shard = field(default_factory=Shard)
    force: bool = False
    retry_failed: bool = False


@dataclass
class Summary:
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


def resolve_device(device: str) -> str:
    """"auto" -> a GPU when one is present, else cpu; under torchrun a GPU is cuda:LOCAL_RANK."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = local_device(device) if device == "cuda" else device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise AtlasError(f"device {device!r} asked for, but no CUDA GPU is available: use --device cpu")
        try:
            index = torch.device(device).index
        except RuntimeError:
            raise AtlasError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
        if index is not None and index >= torch.cuda.device_count():
            raise AtlasError(f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
        return device
    if device not in ("cpu", "mps"):
        raise AtlasError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")
    return device


def full_atlas_command(config: Config) -> str:
    where = f" --config {config.source}" if config.source is not None and config.source.name != "atlas.toml" else ""
    return f"atlas render --full{where}  (or `make atlas` on a machine with a GPU)"


# --------------------------------------------------------------------------------------------
# Planning: jobs, keys, cache states


@dataclass
class PlannedJob:
    job: Job
    objective: Any
    key: str
    state: EntryState


@dataclass
class Plan:
    loaded: LoadedModel
    preset: Any
    spectrum: Any
    spectrum_sha256: str
    engine_version: str
    jobs: list[PlannedJob]  # this shard's jobs
    all_jobs: int
    layers: dict[str, list[int]]
    classes: list[int]


def _engine():
    """The engine modules, imported on first use (they import torch)."""
    from atlas import objectives, presets, render, spectrum

    return objectives, presets, render, spectrum


def _engine_version(render_module: Any) -> str:
    return str(getattr(render_module, "ENGINE_VERSION", None) or getattr(render_module, "__version__", None) or "1")


def _channel_ranking(loaded: LoadedModel, layer: str) -> list[int] | None:
    """Channels of the layer feeding the classifier, by the norm of their classifier-weight column."""
    weights = classifier_weights(loaded)
    if weights is None or layer != pre_logits_layer(loaded):
        return None
    return weights.norm(dim=0).argsort(descending=True).tolist()


def select_targets(loaded: LoadedModel, selection: Selection) -> tuple[list[int], dict[str, list[int]]]:
    """The classes and the channels per layer that `selection` names, checked against the model."""
    wnids = {c.wnid: c.index for c in imagenet_classes()} if loaded.num_classes == 1000 else {}
    classes = parse_classes(selection.classes, loaded.num_classes, wnids) if loaded.num_classes else []
    if not loaded.num_classes and selection.classes.strip().lower() not in ("none", ""):
        raise AtlasError(f"model {loaded.name} has no classifier: set classes = \"none\"")
    channels: dict[str, list[int]] = {}
    for layer, spec in selection.layers:
        info = find_layer(loaded, layer)
        channels[layer] = parse_channels(spec, layer, info.channels, _channel_ranking(loaded, layer))
    return classes, channels


def make_objective(objectives: Any, target: Target) -> Any:
    if target.kind == "class":
        return objectives.class_logit(target.index)
    return objectives.channel(target.layer, target.index)


def key_material(plan: Plan, request: RenderRequest, objective: Any, seed: int) -> dict[str, Any]:
    """Everything that determines an image (docs/architecture.md)."""
    material = {
        "engine_version": plan.engine_version,
        "model": plan.loaded.name,
        "weights_sha256": plan.loaded.weights_sha256,
        "objective": objective.id,
        "preset": plan.preset.to_dict(),
        "canvas": plan.preset.canvas,
        "seed": seed,
        "spectrum_sha256": plan.spectrum_sha256,
        "param": request.config.param,
    }
    if request.config.bf16:  # only when on, so that fp32 keys are exactly the documented ones
        material["autocast_bf16"] = True
    return material


def make_plan(request: RenderRequest, loaded: LoadedModel, cache: Cache) -> Plan:
    objectives, presets, render_module, spectrum_module = _engine()
    selection = request.selection
    preset = _make_preset(presets, selection)
    spectrum = spectrum_module.load_spectrum(request.config.spectrum)
    spectrum_sha = spectrum_module.spectrum_sha256(spectrum)
    classes, layers = select_targets(loaded, selection)
    jobs = build_jobs(classes, layers, selection.preset.seeds)
    mine = select_shard(jobs, request.shard)
    plan = Plan(loaded, preset, spectrum, spectrum_sha, _engine_version(render_module), [], len(jobs), layers, classes)
    for job in mine:
        objective = make_objective(objectives, job.target)
        key = cache_key(key_material(plan, request, objective, job.seed))
        plan.jobs.append(PlannedJob(job, objective, key, cache.check(key)))
    return plan


def _make_preset(presets: Any, selection: Selection) -> Any:
    try:
        return presets.get_preset(selection.preset.name, **selection.preset.overrides_dict())
    except AtlasError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise AtlasError(f"bad preset {selection.preset.name!r} or override: {exc}") from exc


# --------------------------------------------------------------------------------------------
# Batch size


def auto_batch_size(loaded: LoadedModel, preset: Any, spectrum: Any, device: str, param: str,
                    sample: Any, bf16: bool = False) -> int:
    """CPU: a small fixed batch.  CUDA: measure the peak memory of one and of two copies of
    `sample` (the objective that runs the deepest forward) for two steps, and fill 80% of the
    free memory with what one more objective costs."""
    if not device.startswith("cuda"):
        return CPU_BATCH
    _, _, render_module, _ = _engine()
    probe = dataclasses.replace(preset, steps=2) if dataclasses.is_dataclass(preset) else preset
    peaks = []
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    for count in (1, 2):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        render_module.render(loaded, [sample] * count, probe, list(range(count)),
                             device=device, spectrum=spectrum, param=param, autocast_bf16=bf16)
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
    per_sample = max(peaks[1] - peaks[0], 1)
    fixed = max(peaks[0] - per_sample, 0)
    free, _total = torch.cuda.mem_get_info(device)
    return int(max(1, min(MAX_AUTO_BATCH, (0.8 * free - fixed) // per_sample)))


# --------------------------------------------------------------------------------------------
# Model metadata for the site


def code_version() -> str:
    """The package version, and the git commit when running from a checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"atlas {__version__}" + (f" ({commit})" if commit else "")


def hardware(device: str) -> str:
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(device))} (CUDA {torch.version.cuda}), torch {torch.__version__}"
    return f"{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} threads, torch {torch.__version__}"


def model_info(loaded: LoadedModel, device: str, spectrum_sha256: str) -> dict[str, Any]:
    """models/<name>.json: what the site needs and cannot compute without torch."""
    if loaded.num_classes == 1000:
        classes = [{"index": c.index, "wnid": c.wnid, "name": c.name, "synonyms": list(c.synonyms)}
                   for c in imagenet_classes()]
    else:
        classes = [{"index": i, "wnid": None, "name": f"class {i}", "synonyms": []} for i in range(loaded.num_classes)]
    weights = classifier_weights(loaded)
    nearest: dict[str, list[list[float]]] = {}
    channel_top: dict[str, dict[str, list[list[float]]]] = {}
    if weights is not None:
        unit = torch.nn.functional.normalize(weights.double(), dim=1)
        cosine = unit @ unit.T
        cosine.fill_diagonal_(-2.0)  # never one's own nearest
        top = cosine.topk(min(NEAREST, max(weights.shape[0] - 1, 1)), dim=1)
        nearest = {str(i): [[int(j), round(float(v), 4)] for j, v in zip(top.indices[i], top.values[i], strict=True)]
                   for i in range(weights.shape[0])}
        last = pre_logits_layer(loaded)
        if last is not None:
            best = weights.T.topk(min(NEAREST, weights.shape[0]), dim=1)
            channel_top[last] = {str(c): [[int(j), round(float(v), 4)] for j, v in
                                          zip(best.indices[c], best.values[c], strict=True)]
                                 for c in range(weights.shape[1])}
    return {
        "format": 1,
        "name": loaded.name,
        "weights_sha256": loaded.weights_sha256,
        "weights_source": loaded.weights_source,
        "num_classes": loaded.num_classes,
        "input_size": loaded.input_size,
        "classes": classes,
        "nearest_classes": nearest,
        "layers": [{"name": i.name, "channels": i.channels, "reduction": i.reduction} for i in list_layers(loaded)],
        "channel_top_classes": channel_top,
        "hardware": hardware(device),
        "code_version": code_version(),
        "spectrum_sha256": spectrum_sha256,
    }


# --------------------------------------------------------------------------------------------
# Records


def objective_record(target: Target, objective: Any, loaded: LoadedModel) -> dict[str, Any]:
    description = objective.describe(loaded.name)
    if target.kind == "class" and loaded.num_classes == 1000:  # the caption names the class
        name = imagenet_classes()[target.index].name
        description = description if name in description else f"{description} · {name}"
    return {
        "id": objective.id,
        "kind": target.kind,
        "description": description,
        "class_index": target.index if target.kind == "class" else None,
        "layer": target.layer,
        "channel": target.index if target.kind == "channel" else None,
    }


def base_record(plan: Plan, request: RenderRequest, item: PlannedJob) -> dict[str, Any]:
    loaded = plan.loaded
    return {
        "status": "ok",
        "failure": None,
        "objective": objective_record(item.job.target, item.objective, loaded),
        "model": {"name": loaded.name, "weights_sha256": loaded.weights_sha256, "weights_source": loaded.weights_source,
                  "input_size": loaded.input_size, "mean": list(loaded.mean), "std": list(loaded.std)},
        "preset": plan.preset.to_dict(),
        "param": request.config.param,
        "precision": "bf16 autocast" if request.config.bf16 else "fp32",
        "seed": item.job.seed,
        "seed_index": item.job.seed_index,
        "spectrum_sha256": plan.spectrum_sha256,
        "engine_version": plan.engine_version,
        "objective_value": None,
        "retry": None,
    }


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, S, S) in [0, 1] -> (S, S, 3) uint8."""
    return (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------
# Rendering


@dataclass
class _Attempt:
    item: PlannedJob
    seed: int
    attempt: int  # 0: the job's own seed; 1: the retry after a non-finite value
    first_value: float | None = None


def run(request: RenderRequest, *, report: Report = print, progress: ProgressFactory | None = None) -> Summary:
    """Render every job of this shard that the cache lacks; returns the counts for the summary line."""
    started = time.perf_counter()
    config, selection = request.config, request.selection
    cache = Cache(config.cache)
    cache.ensure_writable()
    removed = cache.clean_stale()
    if removed:
        report(f"removed {removed} stale temporary file(s) left by an interrupted run")

    loaded = load_model(config.model, checkpoint=config.checkpoint, random_weights=config.random_weights,
                        device=request.device)
    plan = make_plan(request, loaded, cache)
    summary = Summary(total=len(plan.jobs), keys=[p.key for p in plan.jobs])

    todo: list[PlannedJob] = []
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

    existing = cache.read_model(loaded.name)
    if request.force or existing is None or existing.get("weights_sha256") != loaded.weights_sha256:
        cache.write_model(loaded.name, model_info(loaded, request.device, plan.spectrum_sha256))

    shard = f" (shard {request.shard} of {plan.all_jobs} jobs)" if request.shard.count > 1 else ""
    report(f"{len(plan.jobs)} objectives{shard}: {len(todo)} to render, {summary.reused + summary.failed_before} "
           f"in the cache; model {loaded.name}, preset {plan.preset.name}, device {request.device}")
    if todo:
        judges = _load_judges(loaded, selection, request)
        deepest = next((p for p in todo if p.job.target.kind == "class"), todo[-1])
        size = request.batch_size or auto_batch_size(loaded, plan.preset, plan.spectrum, request.device,
                                                     config.param, deepest.objective, config.bf16)
        report(f"batch size {size}" + ("" if request.batch_size else " (auto)"))
        _render_all(plan, request, cache, judges, todo, size, summary, progress)
    summary.seconds = time.perf_counter() - started
    return summary


def _load_judges(loaded: LoadedModel, selection: Selection, request: RenderRequest) -> list[Judge]:
    """The generator and the judges; with --random-weights the judges are random too (a dry run
    of the whole path on machines without any weights)."""
    judges = [Judge(loaded, "generator")]
    for name in selection.judges:
        if name == loaded.name:
            continue
        judge = load_model(name, random_weights=request.config.random_weights, device=request.device)
        judges.append(Judge(judge, "judge"))
    return judges


def _render_all(plan: Plan, request: RenderRequest, cache: Cache, judges: Sequence[Judge],
                todo: Sequence[PlannedJob], size: int, summary: Summary, progress: ProgressFactory | None) -> None:
    """Render in batches of one layer; objectives with a non-finite value come back for one retry."""
    bar = progress(total=len(todo), unit="obj", desc="render", dynamic_ncols=True) if progress else None
    pending = [_Attempt(item, item.job.seed, 0) for item in todo]
    try:
        while pending:
            retries: list[_Attempt] = []
            for chunk in batches(pending, size, key=lambda a: a.item.job.target.group):
                for attempt, finished in _render_batch(plan, request, cache, judges, chunk, summary, bar):
                    if not finished:
                        retries.append(attempt)
                    elif bar is not None:
                        bar.update(1)
            pending = retries
    finally:
        if bar is not None:
            bar.close()


def _step_reporter(bar: Any, count: int) -> Callable[[int, int], None] | None:
    """Show the running batch's step in the bar (a CPU batch takes minutes), about 16 times a batch."""
    if bar is None or not hasattr(bar, "set_postfix_str"):
        return None

    def report(step: int, steps: int) -> None:
        if step == steps or step % max(1, steps // 16) == 0:
            bar.set_postfix_str(f"batch of {count}: step {step}/{steps}")

    return report


def _render_batch(plan: Plan, request: RenderRequest, cache: Cache, judges: Sequence[Judge],
                  attempts: Sequence[_Attempt], summary: Summary, bar: Any = None):
    """Render one batch; yield (attempt, finished) per objective: finished False means retry."""
    _, _, render_module, _ = _engine()
    result = render_module.render(
        plan.loaded, [a.item.objective for a in attempts], plan.preset, [a.seed for a in attempts],
        device=request.device, spectrum=plan.spectrum, param=request.config.param,
        autocast_bf16=request.config.bf16, channels_last=request.config.channels_last,
        progress=_step_reporter(bar, len(attempts)),
    )
    count = len(attempts)
    finite = [bool(f) and bool(np.isfinite(float(v))) for f, v in zip(result.finite, result.values, strict=True)]
    images = [to_uint8(result.images[k]) for k in range(count)]
    good = [k for k in range(count) if finite[k]]
    scores: dict[int, dict[str, Any]] = {}
    score_seconds = 0.0
    if good:
        tick = time.perf_counter()
        stored = torch.from_numpy(np.stack([images[k] for k in good])).permute(0, 3, 1, 2).float() / 255
        targets = [attempts[k].item.job.target.index if attempts[k].item.job.target.kind == "class" else None
                   for k in good]
        # one protocol for every preset (atlas.judging); "scores" keeps its format: the large scale
        judged = judge_images(stored, judges, targets, crops=request.config.scoring.crops,
                              seed=request.config.scoring.seed)
        scores = dict(zip(good, judged, strict=True))
        score_seconds = (time.perf_counter() - tick) / len(good)
    for k, attempt in enumerate(attempts):
        item = attempt.item
        value = float(result.values[k])
        record = base_record(plan, request, item)
        record["seed"] = attempt.seed
        record["timing"] = {
            "seconds": round(result.seconds / count, 4),
            "batch_seconds": round(result.seconds, 4),
            "scoring_seconds": round(score_seconds, 4),
            "batch_size": count,
            "device": request.device,
            "shard": str(request.shard),
            "finished": _now(),
        }
        if attempt.attempt > 0:
            record["retry"] = {"first_seed": item.job.seed, "reason": f"non-finite objective value ({attempt.first_value})"}
        if finite[k]:
            record["objective_value"] = value
            record["scores"] = scores[k]["large"]
            record["judging"] = scores[k]
            record["image_stats"] = image_stats(images[k])
            attribution = result.attributions[k].detach().float().mean(dim=0).cpu().numpy().astype(np.float32)
            files = {IMAGE: encode_png(images[k]), ATTRIBUTION: encode_npy(attribution)}
            cache.write_entry(item.key, files, record)
            summary.rendered += 1
            yield attempt, True
        elif attempt.attempt == 0:
            summary.retried += 1
            retry_seed = derive_seed(item.job.target.id, item.job.seed_index, attempt=1)
            yield _Attempt(item, retry_seed, 1, first_value=value), False
        else:
            record["status"] = "failed"
            record["failure"] = (f"non-finite objective value with seed {item.job.seed} ({attempt.first_value}) "
                                 f"and with retry seed {attempt.seed} ({value})")
            record["scores"] = None
            cache.write_entry(item.key, {}, record)
            summary.failed += 1
            yield attempt, True


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"
