"""Benchmarks: our engine against the reference implementations, scaling, quality, and concepts.

Every function measures and returns plain data (dataclasses, or dicts as written to the JSON);
`atlas.commands.bench` prints them as the tables of docs/benchmarks.md and writes the JSON. Timings
are wall-clock seconds of whole optimisation calls divided by their steps, so set-up costs count
the same for every implementation. One module per noun:

- `runs`: one timed render of ours, horama's and torch-lucent's, the timing helpers;
- `throughput`: speed against the references, scaling, where a step goes, render options, cost;
- `protocol`: quality on the judging protocol, the rows each machine renders, the tuning and held-out
  class lists, the class objectives compared;
- `checkpoints`: a quality row's rendered chunks, kept so that a row cut short resumes;
- `judging`: what judging costs at each crop count, and whether its rates hold, on pictures rendered once;
- `search`: the configs of the settings search for the `cpu` preset;
- `concepts`: how long `atlas concepts` takes, and the sample folder it can time;
- `site`: how long `atlas build` takes, and its peak memory, on a synthetic full-scale concept atlas.
- `models`: what each further model of an atlas costs on the `[cpu]` subset (its render, the
  cross-judging it brings) through `atlas render`'s own functions, and the site's generator x judge matrix;
- `command`: the whole `atlas render` against its engine alone, on the same jobs;
- `phase`: the reference phase's noise on a card, suspect by suspect;
- `kernels`: a step under the profiler against horama's, and its arithmetic against the card's peak.
"""

from atlas.bench.concepts import ConceptBench, bench_concepts, sample_folder, time_concepts
from atlas.bench.judging import CROP_COUNTS, CropRow, JudgingCost, judging_cost
from atlas.bench.protocol import (
    CLASS_OBJECTIVES,
    HELDOUT_CLASSES,
    HELDOUT_SEED,
    JUDGES,
    QUALITY_CLASSES,
    QualityRow,
    load_judges,
    objective_configs,
    quality,
    quality_batch,
    quality_classes,
    quality_configs,
    quality_json,
    quality_rows,
)
from atlas.bench.runs import (
    SPEED_CLASS,
    class_objective,
    horama_workdir,
    machine_preset,
    run_horama,
    run_lucent,
    run_ours,
    seconds_per_image,
    timed,
    value_range,
)
from atlas.bench.search import CPU_BEFORE, SEARCH, SEARCH_ROUNDS, search_configs
from atlas.bench.site import SiteBench, bench_site
from atlas.bench.throughput import (
    GPU_OPTIONS_BATCH,
    SpeedRow,
    cost,
    gpu_options,
    peak_memory_mb,
    scaling,
    speed,
    speed_preset,
    speed_rows,
    split_rows,
    time_split,
)

__all__ = [
    "CLASS_OBJECTIVES", "CPU_BEFORE", "CROP_COUNTS", "CropRow", "JudgingCost", "judging_cost",
    "GPU_OPTIONS_BATCH", "HELDOUT_CLASSES", "HELDOUT_SEED",
    "JUDGES", "QUALITY_CLASSES", "SEARCH", "SEARCH_ROUNDS", "SPEED_CLASS", "ConceptBench", "QualityRow", "SiteBench",
    "SpeedRow", "bench_concepts", "bench_site", "class_objective", "cost", "gpu_options", "horama_workdir",
    "load_judges", "machine_preset", "objective_configs", "peak_memory_mb", "quality", "quality_batch",
    "quality_classes", "quality_configs", "quality_json", "quality_rows", "run_horama", "run_lucent", "run_ours",
    "sample_folder", "scaling", "search_configs", "seconds_per_image", "speed", "speed_preset", "speed_rows",
    "split_rows", "time_concepts", "time_split", "timed", "value_range",
]
