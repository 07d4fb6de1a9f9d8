"""The whole `atlas render` against its engine alone: the same jobs, batch and settings, one device.

The command's time is what a user waits for: the model and the judges loaded, the plan, the
batch-size probe, then the render loop (each batch rendered and judged on the device while the
writer thread encodes and stores the one before). The engine's time is the optimisation alone
(`atlas.render.render`) on the same jobs at the command's batch size, its pictures left on the
device. The loop against the engine is the cost of judging and writing that the overlap does
not hide; the start-up is paid once a run, so a projected full atlas adds it once.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atlas import pipeline, record, store
from atlas import render as engine
from atlas.bench.runs import timed
from atlas.cache import Cache
from atlas.classifier import load_configured_model
from atlas.config import Config, load_config
from atlas.errors import AtlasError
from atlas.jobs import Shard, batches
from atlas.plan import make_plan

GOAL = 1.10  # the render loop may take at most 10% longer than the engine alone


@dataclass(frozen=True)
class CommandBench:
    """Seconds of one `atlas render` run and of its engine alone on the same `images` pictures."""

    model: str
    preset: str
    device: str
    images: int
    batch_size: int
    whole_seconds: float  # the command, from its config to its summary
    startup_seconds: float  # config to the first batch: models and judges loaded, plan, model file, probe
    loop_seconds: float  # the first batch to the last entry written
    engine_seconds: float  # the same jobs through the engine alone
    render_seconds: float  # the engine's time inside the loop (the records' batch seconds)
    judging_seconds: float  # the judges' time inside the loop (the records' scoring seconds)
    full_images: int  # pictures of the subset's whole selection: classes and channels (concepts not counted)

    @property
    def loop_over_engine(self) -> float:
        return self.loop_seconds / self.engine_seconds

    def per_hour(self, seconds: float) -> float:
        return 3600.0 * self.images / seconds

    def full_hours(self) -> tuple[float, float]:
        """(the whole command, the engine alone) for the full atlas, from this run's rates."""
        scale = self.full_images / self.images
        return ((self.startup_seconds + scale * self.loop_seconds) / 3600, scale * self.engine_seconds / 3600)

    def lines(self) -> list[str]:
        rest = self.loop_seconds - self.render_seconds - self.judging_seconds
        command_hours, engine_hours = self.full_hours()
        verdict = "within" if self.loop_over_engine <= GOAL else "outside"
        return [
            f"- whole command: {self.images} pictures in {self.whole_seconds:.1f} s "
            f"({self.per_hour(self.whole_seconds):,.0f} images/hour), of which start-up {self.startup_seconds:.1f} s "
            "(models and judges loaded, plan, model file, batch-size probe)",
            f"- render loop (render, judging on the device, writing on the writer thread): {self.loop_seconds:.1f} s "
            f"({self.per_hour(self.loop_seconds):,.0f} images/hour)",
            f"- engine alone, the same jobs at batch {self.batch_size}: {self.engine_seconds:.1f} s "
            f"({self.per_hour(self.engine_seconds):,.0f} images/hour)",
            f"- loop / engine: {self.loop_over_engine:.3f} ({verdict} the goal of {GOAL:.2f})",
            f"- inside the loop, from the records: render {self.render_seconds:.1f} s, judging "
            f"{self.judging_seconds:.1f} s, the rest (host work and writing the overlap did not hide) {rest:.1f} s",
            f"- projected whole selection ({self.full_images} pictures of the configured classes and channels, "
            f"concepts and `atlas build` not included): {command_hours:.2f} h the whole command, "
            f"{engine_hours:.2f} h the engine alone",
        ]

    def to_json(self) -> dict[str, Any]:
        command_hours, engine_hours = self.full_hours()
        return dataclasses.asdict(self) | {"loop_over_engine": self.loop_over_engine,
                                           "full_hours_command": command_hours, "full_hours_engine": engine_hours}


class _LoopClock:
    """A progress-bar factory that only notes when the render loop opens its bar and closes it."""

    def __init__(self) -> None:
        self.opened: float | None = None
        self.closed: float | None = None

    def __call__(self, **_kwargs: Any) -> _LoopClock:
        self.opened = time.perf_counter()
        return self

    def update(self, _count: int = 1) -> None:
        pass

    def set_postfix_str(self, _text: str) -> None:
        pass

    def close(self) -> None:
        self.closed = time.perf_counter()


def bench_command(classes: Sequence[int], device: str, *, config: Config | None = None, subset: str = "full",
                  steps: int | None = None, report: Callable[[str], None] = lambda _line: None) -> CommandBench:
    """`atlas render` of `classes` (no channels) with the preset and judges of the config's `subset` ("full",
    the GPU default, or "cpu", `make atlas` on a CPU; `steps` overrides the preset's) into a new cache, then
    the engine alone on the same jobs. The projection is the subset's whole selection. `report` hears each
    half's seconds as soon as they are measured (a run cut short keeps them)."""
    own = (config or load_config()).model_configs()[0]
    full = own.full if subset == "full" else own.cpu
    preset = full.preset.with_overrides(steps=steps) if steps is not None else full.preset
    selection = dataclasses.replace(full, classes=",".join(map(str, classes)), layers=(), preset=preset)
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder) / "cache"
        own = dataclasses.replace(own, cache=cache)
        clock = _LoopClock()
        started = time.perf_counter()
        summary = pipeline.run(pipeline.RenderRequest(config=own, selection=selection, device=device,
                                                      batch_size=own.batch_size),
                               report=lambda _line: None, progress=clock)
        finished = time.perf_counter()
        if clock.opened is None or clock.closed is None or summary.rendered != summary.total:
            raise AtlasError(f"the command table needs every picture rendered, and atlas render made {summary.line()}: "
                             "rerun it (a non-finite picture is rare) or with other classes")
        records = list(store.entries(cache, record.KIND.name))
        size = max(r.timing.batch_size for r in records)
        report(f"atlas render: {summary.total} pictures at batch {size} in {finished - started:.1f} s, of which "
               f"the render loop {clock.closed - clock.opened:.1f} s")
        loaded = load_configured_model(own, device=device)
        plan = make_plan(own, selection, Shard(), loaded, Cache(cache))
        engine_seconds = sum(
            timed(lambda chunk=chunk: engine.render(loaded, [j.objective for j in chunk], plan.settings,
                                                    [j.seed for j in chunk], device=device, keep_on_device=True),
                  device)
            for chunk in batches([p.job for p in plan.jobs], size))
        report(f"the engine alone: {engine_seconds:.1f} s")
        full_plan = make_plan(own, full, Shard(), loaded, Cache(Path(folder) / "empty"))
    return CommandBench(
        model=own.model, preset=selection.preset.name, device=device, images=summary.total, batch_size=size,
        whole_seconds=finished - started, startup_seconds=clock.opened - started,
        loop_seconds=clock.closed - clock.opened,
        engine_seconds=engine_seconds,
        render_seconds=sum(r.timing.seconds for r in records),
        judging_seconds=sum(r.timing.scoring_seconds or 0.0 for r in records),
        full_images=len(full_plan.jobs))
