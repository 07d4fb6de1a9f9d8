"""`atlas bench`: the tables of docs/benchmarks.md, measured on this machine.

`make bench` runs the CPU part (under 15 minutes on a 2-core machine); `--part gpu` runs the
GPU part (the same comparison on the card, bf16/channels_last/torch.compile on and off, and
projected times for a 1000-class atlas).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from atlas import flags
from atlas.flags import Bounded
from atlas.presets import STEPS

PARTS = ("speed", "scaling", "split", "quality", "heldout", "objectives-tuning", "objectives", "search", "cost",
         "judging", "concepts", "site", "models", "command", "phase", "kernels")
DEFAULT_PARTS = ("speed", "scaling", "split", "quality", "concepts", "command")
TUNING_CLASSES = 50  # the quality tables' default class count
PHASE_CLASSES = 8  # the phase table's classes: the first of the tuning list


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--part", choices=("cpu", "gpu"), default="cpu", help="which machine's benchmark (default cpu)")
    parser.add_argument("--only", type=_names_of(lambda: PARTS, "a benchmark part"), default=",".join(DEFAULT_PARTS),
                        help=f"comma-separated subset of {','.join(PARTS)} (default: {','.join(DEFAULT_PARTS)})")
    parser.add_argument("--device", help="torch device (default: cpu for --part cpu, cuda for --part gpu)")
    parser.add_argument("--classes", type=Bounded(1, 1000), metavar="N",
                        help="classes of the tuning list for the quality and search tables (default 50), the "
                             "first N classes of atlas.toml's [cpu] subset for the models table (default: all of "
                             "them), and the classes `atlas render` renders in the command table (default 100 with "
                             "--part gpu, 4 without); an integer from 1 to 1000")
    parser.add_argument("--heldout-classes", type=Bounded(1, 100), default=100, metavar="N",
                        help="classes of the held-out list for the heldout and objectives tables (default 100; an "
                             "integer from 1 to 100)")
    parser.add_argument("--objectives", type=_objective_names, default=None, metavar="NAMES",
                        help="comma-separated class objectives of the objectives tables (default: all of "
                             "logit,margin,logprob,blend)")
    parser.add_argument("--preset-fields", type=_preset_fields, default={}, metavar="FIELD=VALUE,...",
                        help="preset fields the objectives tables change, e.g. crop_min=0.15,crop_max=0.5 (default: "
                             "the preset as it is)")
    parser.add_argument("--presets", type=_preset_names, default=None, metavar="NAMES",
                        help="comma-separated presets of the objectives tables (default: cpu, and atlas with "
                             "--part gpu)")
    parser.add_argument("--checkpoints", type=flags.path, metavar="DIR",
                        help="keep each rendered chunk of the quality, held-out, objectives and search tables in "
                             "DIR, so that a run cut short resumes where it stopped (default: none kept)")
    parser.add_argument("--steps", type=Bounded(*STEPS), metavar="N",
                        help="steps per timed call (default 3 on cpu, 20 on gpu); for the command and phase "
                             "tables, the steps of every picture (default: the preset's own)")
    parser.add_argument("--images", type=flags.path, metavar="DIR",
                        help="ImageNet-layout folder for the concepts part (default: a sample made from "
                             "scikit-image's photos)")
    parser.add_argument("--out", type=flags.path, default=Path("docs/bench"),
                        help="folder for the JSON results and plot (default docs/bench)")
    parser.add_argument("--no-tf32", action="store_true",
                        help="on a GPU, true fp32 convolutions and matmuls (cuDNN defaults to TF32 on recent cards)")


def _names_of(choices: Callable[[], tuple[str, ...]], what: str) -> Callable[[str], tuple[str, ...]]:
    """An argparse type: a comma-separated list of some of `choices()` (called when a flag is parsed, so that
    the command's import stays torch-free), each once, in the order given."""
    def parse(text: str) -> tuple[str, ...]:
        allowed = choices()
        names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
        unknown = [n for n in names if n not in allowed]
        if not names or unknown:
            raise argparse.ArgumentTypeError(f"{','.join(unknown) or 'nothing'} is not {what}: name some of "
                                             f"{','.join(allowed)}")
        return names
    return parse


def _class_objectives() -> tuple[str, ...]:
    from atlas.bench.protocol import CLASS_OBJECTIVES

    return CLASS_OBJECTIVES


def _presets() -> tuple[str, ...]:
    from atlas.presets import PRESETS

    return tuple(PRESETS)


_objective_names = _names_of(_class_objectives, "a class objective")
_preset_names = _names_of(_presets, "a preset")


def _preset_fields(text: str) -> dict[str, float]:
    from atlas.errors import AtlasError
    from atlas.presets import get_preset

    fields = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        try:
            fields[name.strip()] = int(value) if value.strip().isdigit() else float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r} is not FIELD=NUMBER, like crop_min=0.15") from None
    try:
        get_preset("cpu", **fields)  # unknown fields and values out of range are refused here, not mid-run
    except AtlasError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return fields


def _machine(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"{cpu}, {threads} thread{'s' if threads != 1 else ''}, torch {torch.__version__}"


def _has_horama() -> bool:
    """Whether horama is here for its reference rows; a bare GPU box may lack it, and the rest still runs."""
    import importlib.util
    import sys

    if importlib.util.find_spec("horama") is not None:
        return True
    print("bench: horama's rows skipped (horama is not installed); install the dev extra to measure them",
          file=sys.stderr)
    return False


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(f"{v:,.1f}" if isinstance(v, float) else str(v) for v in row) + " |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import torch

    from atlas import bench
    from atlas.errors import AtlasError
    from atlas.models import load_model

    gpu = args.part == "gpu"
    device = args.device or ("cuda" if gpu else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AtlasError("no CUDA device here: run `atlas bench --part gpu` on a GPU machine, "
                         "or `make bench` for the CPU part")
    parts = list(args.only)
    steps = args.steps if args.steps is not None else (20 if gpu else 3)
    if args.no_tf32:  # to tell TF32 rounding from the method, e.g. the reference phase's noise on an H100
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {"machine": _machine(device), "device": device, "date": time.strftime("%Y-%m-%d"),
                                  "command": f"atlas bench --part {args.part} --only {','.join(parts)}"
                                             + (" --no-tf32" if args.no_tf32 else "")}
    print(f"# atlas bench --part {args.part}: {results['machine']}, {results['date']}"
          + (", TF32 off" if args.no_tf32 else "") + "\n")

    lite0 = load_model("efficientnet_lite0")
    resnet = load_model("resnet50", random_weights=True)
    default = bench.machine_preset(gpu)

    if "speed" in parts:
        same = bench.speed_preset()
        rows = bench.speed_rows((lite0, resnet), same, steps, device, gpu)
        results["speed"] = rows
        print(f"## Speed: canvas {same.canvas}, {same.crops} crops of {same.crop_min}-{same.crop_max}, "
              f"noise {same.noise}, {steps} timed steps per call, {device}\n")
        print(_table(["implementation", "model", "batch", "ms/step", "ms per image-step", "images/hour at 256 steps",
                      "vs horama"],
                     [[r["implementation"], r["model"], r["batch"], r["ms_per_step"], r["ms_per_image_step"],
                       f"{r['per_hour_256_steps']:,.0f}", f"{r['x_horama']:.2f}x"] for r in rows]) + "\n")

    if "scaling" in parts:
        scaling = bench.scaling(lite0, default, steps, device, gpu)
        results["scaling"] = scaling
        print(f"## Scaling: Lite0, preset `{default.name}` ({default.canvas} px, {default.crops} crops), {device}\n")
        print(_table(["batch", "ms/step", f"images/hour ({default.steps} steps)", "peak MB"],
                     [[r["batch"], r["ms_per_step"], f"{r['images_per_hour']:,.0f}", r["peak_mb"]]
                      for r in scaling["batch"]]) + "\n")
        print(_table(["canvas", "batch", "peak MB"],
                     [[r["canvas"], r["batch"], r["peak_mb"]] for r in scaling["canvas"]]) + "\n")

    if "split" in parts:
        rows = bench.split_rows(lite0, resnet, default, steps, device, gpu)
        results["split"] = rows
        print(f"## Where a step goes: preset `{default.name}`, {device}\n")
        print(_table(["model", "batch", "step ms", "image handling ms", "image handling share"],
                     [[r["model"], r["batch"], r["step_ms"], r["image_ms"], f"{100 * r['image_fraction']:.1f}%"]
                      for r in rows]) + "\n")

    if {"quality", "heldout", "objectives-tuning", "objectives", "search", "judging"} & set(parts):
        judges = bench.load_judges()
        classes = bench.quality_classes(TUNING_CLASSES if args.classes is None else args.classes)
        held_out = bench.quality_classes(args.heldout_classes, held_out=True)
    if "quality" in parts:
        measured = bench.quality_rows(lite0, judges, bench.quality_configs(gpu), classes, device, gpu,
                                      on_row=_print_row, checkpoints=args.checkpoints)
        results["quality"] = [bench.quality_json(r, p) for r, p in measured]
        rows = [r for r, _ in measured]
        print(f"\n## Quality on the judging protocol ({_protocol()}), tuning list, {device}\n")
        common = classes[: min(r.classes for r in rows)]
        print(f"Every config on the same {len(common)} classes ({', '.join(map(str, common))}):\n")
        print(quality_table(rows, common) + "\n")
        plot_quality(rows, common, args.out / f"quality-{args.part}.png")
        print(f"plot: {args.out / f'quality-{args.part}.png'}\n")

    if "heldout" in parts:
        measured = bench.quality_rows(lite0, judges, bench.quality_configs(gpu), held_out, device, gpu,
                                      on_row=_print_row, checkpoints=args.checkpoints)
        results["heldout"] = [bench.quality_json(r, p) for r, p in measured]
        print(f"\n## Quality on the held-out list ({len(held_out)} classes, seed {bench.HELDOUT_SEED}), {device}\n")
        print(quality_table([r for r, _ in measured], held_out[: min(r.classes for r, _ in measured)]) + "\n")

    for part, name in (("objectives-tuning", "tuning list, where the objective is chosen"),
                       ("objectives", f"held-out list, seed {bench.HELDOUT_SEED}")):
        if part in parts:
            listed = held_out if part == "objectives" else classes
            configs = bench.objective_configs(gpu, args.objectives, args.preset_fields, args.presets)
            measured = bench.quality_rows(lite0, judges, configs, listed, device, gpu, on_row=_print_row,
                                          checkpoints=args.checkpoints)
            results[part] = [bench.quality_json(r, p) for r, p in measured]
            print(f"\n## Class objectives on the {name} ({len(listed)} classes), {device}\n")
            print(quality_table([r for r, _ in measured], listed) + "\n")

    if "search" in parts:
        measured = bench.quality_rows(lite0, judges, bench.search_configs(), classes, device, gpu, on_row=_print_row,
                                      checkpoints=args.checkpoints)
        results["search"] = [bench.quality_json(r, p) for r, p in measured]
        print(f"\n## Settings search for the `cpu` preset ({_protocol()}), rendered on {device}\n")
        print(quality_table([r for r, _ in measured], classes) + "\n")

    if "cost" in parts:
        from atlas.device import native_bf16

        cost = bench.cost(lite0, default, steps, device)
        results["cost"] = cost
        print(f"## Seconds per image of the searched configs, {device}, {cost['threads']} threads, "
              f"batch 1, {steps} timed steps (wall, and CPU time of this process)\n")
        print(_table(["config", "wall s/image", "CPU s/image"],
                     [[k, v["wall"], v["cpu"]] for k, v in cost["configs"].items()]) + "\n")
        print(f"## Render options at the `{default.name}` preset, {device} (native bf16: {native_bf16(device)})\n")
        print(_table(["batch", "channels_last", "bf16", "wall s/image", "CPU s/image"],
                     [[o["batch"], o["channels_last"], o["bf16"], o["wall"], o["cpu"]] for o in cost["options"]])
              + "\n")

    if "judging" in parts:
        for name, listed in (("tuning", classes), ("held-out", held_out)):
            cost = bench.judging_cost(lite0, judges, default, listed, device)
            results[f"judging-{name}"] = cost.to_json()
            print(f"## Judging crops: the same {len(listed)} pictures of the {name} list (preset `{default.name}`) "
                  f"judged with each crop count, {device}; render {cost.render_cpu_seconds:.1f} CPU s an image\n")
            print(judging_table(cost) + "\n")

    if "concepts" in parts:
        timing = bench.time_concepts(lite0, args.images, device)
        results["concepts"] = timing.to_json()
        print(f"## Concepts: Lite0, 10 concepts a class, {timing.classes} classes of {timing.source}, {device}\n")
        for line in timing.lines():
            print(line)
        print()

    if "site" in parts:
        site = bench.bench_site()
        results["site"] = site.to_json()
        print("## atlas build at full scale: synthetic concept banks and dataset examples\n")
        for line in site.lines():
            print(line)
        print()

    if "models" in parts:
        from atlas.bench.models import bench_models, subset_classes
        from atlas.config import load_config

        config = load_config()
        load = os.getloadavg()  # the machine may be shared: the CPU seconds hold, the wall seconds less so
        measured = bench_models(config, subset_classes(config, args.classes), device,
                                report=lambda line: print(f"  {line}", flush=True))
        results["models"] = measured.to_json() | {"load_average_1min": {"before": load[0],
                                                                         "after": os.getloadavg()[0]}}
        print(f"  load average (1 min): {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after, on "
              f"{os.cpu_count()} cores")
        print(f"\n## A second model: the class pictures of {len(measured.classes)} classes of the [cpu] subset "
              f"at the `{measured.preset}` preset, then each further model added, {device} "
              f"(wall s, and CPU s of this process)\n")
        print(models_table(measured) + "\n")
        print("Generator (rows) x judge (columns): mean top-1 rate over the row model's class pictures, "
              "whole picture / large crops (0.40-0.80), as the site's root index shows it\n")
        print(matrix_table(measured.matrix) + "\n")

    if "command" in parts:
        from atlas.bench.command import bench_command

        count = args.classes if args.classes is not None else (100 if gpu else 4)
        measured = bench_command(bench.quality_classes(count), device, subset="full" if gpu else "cpu",
                                 steps=args.steps, report=lambda line: print(f"  {line}", flush=True))
        results["command"] = measured.to_json()
        which = "of the tuning list" if count <= TUNING_CLASSES else "spread over the 1000"
        print(f"## The whole `atlas render` against its engine alone: {measured.model}, {measured.images} classes "
              f"{which} at the `{measured.preset}` preset, the config's judges, {device}\n")
        print("\n".join(measured.lines()) + "\n")

    if "phase" in parts:
        from atlas.bench.phase import HEADER, phase_rows

        classes = bench.quality_classes(PHASE_CLASSES)
        rows = phase_rows(lite0, classes, device, steps=args.steps, references=_has_horama())
        results["phase"] = [asdict(r) | {"noisy": r.noisy} for r in rows]
        print(f"## The reference phase: v1 `cpu` settings on classes {', '.join(map(str, classes))}, {device}\n")
        print(_table(HEADER, [r.cells() for r in rows]) + "\n")

    if "kernels" in parts:
        from atlas.bench.kernels import arithmetic, kernels_json, one_picture_profiles

        same = bench.speed_preset()
        profiles = one_picture_profiles(lite0, same, steps, device, references=_has_horama())
        measured = [arithmetic(lite0, default, batch, steps, device) for batch in ((1, 32) if gpu else (1, 2))]
        results["kernels"] = kernels_json(profiles, measured)
        print(kernels_tables(profiles, measured, f"canvas {same.canvas}, {same.crops} crops of {same.crop_min}-"
                             f"{same.crop_max}, noise {same.noise}, {steps} steps", default.name, device) + "\n")

    if gpu and "speed" in parts:
        options = bench.gpu_options(lite0, resnet, default, steps, device)
        results["gpu_options"] = options
        print(f"## GPU options: Lite0, preset `atlas`, batch {bench.GPU_OPTIONS_BATCH}\n")
        print(_table(["bf16", "channels_last", "torch.compile", "ms per image-step"],
                     [[r["bf16"], r["channels_last"], r["compile"], r["ms_per_image_step"]]
                      for r in options["options"]]) + "\n")
        projection = options["projection"]
        print(f"Projected 1000-class atlas: Lite0 at `atlas` {projection['lite0_atlas_hours']:.2f} h; "
              f"ResNet-50 at horama's settings {projection['resnet50_horama_hours']:.2f} h\n")

    out = args.out / f"results-{args.part}.json"
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"results: {out}")
    return 0


def _protocol() -> str:
    from atlas.scoring import SCALES

    return "; ".join(f"{name} {lo:.2f}-{hi:.2f}" if hi < 1 else f"{name} picture" for name, (lo, hi) in SCALES.items())


def _print_row(row, classes) -> None:
    print("  " + quality_table([row], classes).splitlines()[-1], flush=True)  # the row now: a run may be cut short


def quality_table(rows: list, classes) -> str:
    """Corner ratio, then per scale the generator's top-1 and each judge's top-1/top-5, over `classes`."""
    classes = list(classes)
    header = ["config", "classes", "s/image", "corner ratio", "border share", "HF share"]
    names = list(rows[0].rates["large"])
    short = [n.replace("efficientnet_lite", "Lite") for n in names]
    header += [f"whole {short[0]} top-1", f"large {short[0]} top-1"]
    header += [f"large {n} top-1 / top-5" for n in short[1:]]
    header += [f"{scale} {n} top-5" for scale in ("small", "whole") for n in short[1:]]
    table = []
    for r in rows:
        large = r.rates_on(classes, "large")
        cells = [r.config, len(classes), r.seconds_per_image, f"{r.stat_on(classes, 'corner_ratio'):.2f}",
                 f"{r.stat_on(classes, 'border_energy_share'):.2f}",
                 f"{1000 * r.stat_on(classes, 'high_frequency_share'):.1f}‰"]
        cells += [f"{100 * r.rates_on(classes, 'whole')[names[0]][0]:.0f}%", f"{100 * large[names[0]][0]:.0f}%"]
        cells += [f"{100 * large[n][0]:.0f}% / {100 * large[n][1]:.0f}%" for n in names[1:]]
        for scale in ("small", "whole"):
            rates = r.rates_on(classes, scale)
            cells += [f"{100 * rates[n][1]:.0f}%" for n in names[1:]]
        table.append(cells)
    return _table(header, table)


def kernels_tables(profiles, measured, settings: str, preset: str, device: str) -> str:
    lines = [f"## A step under the profiler: one picture a call at identical settings ({settings}), {device}; "
             "per step (the wall times include the profiler's own cost: the speed table has them without it)\n",
             _table(["implementation", "ms (wall)", "device busy ms", "device busy share", "kernels launched",
                     "syncs", "copies", "aten operators"],
                    [[p.implementation, f"{p.wall_ms:.1f}", f"{p.device_busy_ms:.1f}",
                      f"{100 * p.device_busy_share:.0f}%", f"{p.launches:.0f}", f"{p.syncs:.0f}", f"{p.copies:.0f}",
                      f"{p.operators:.0f}"] for p in profiles]), ""]
    for p in profiles:
        lines.append(f"{p.implementation}: most host time: "
                     + ", ".join(f"{name} {ms:.2f} ms" for name, ms in p.host_top))
        if p.device_top:
            lines.append(f"{p.implementation}: most device time: "
                         + ", ".join(f"{name} {ms:.2f} ms" for name, ms in p.device_top))
    kinds = list(measured[0].peak or {})
    lines += ["", f"## Arithmetic of a step of ours at the `{preset}` preset: achieved against the card's peak "
              f"(dense, NVIDIA's datasheet), {device}\n",
              _table(["batch", "GFLOP a step", "ms a step", "TFLOP/s"] + [f"share of {k} peak" for k in kinds],
                     [[a.batch, f"{a.gflop_per_step:.1f}", f"{a.ms_per_step:.1f}", f"{a.tflops:.2f}"]
                      + [f"{100 * a.shares()[k]:.1f}%" for k in kinds] for a in measured])]
    if not kinds:
        lines.append("\n(no peak known for this device: the share is not computed)")
    return "\n".join(lines)


def judging_table(cost) -> str:
    """Per crop count: CPU seconds of judging an image, its share of the render, the largest change of a
    mean rate from 16 crops, and each model's mean top-1 / top-5 at each scale."""
    classes = list(cost.classes)
    reference = cost.rows[0].rates(classes)
    names = list(reference["large"])
    short = [n.replace("efficientnet_lite", "Lite") for n in names]
    header = ["crops", "judging CPU s/image", "of the render", "largest change"]
    header += [f"{scale} {n} top-1 / top-5" for scale in reference for n in short]
    rows = []
    for row in cost.rows:
        rates = row.rates(classes)
        cells = [row.crops, f"{row.cpu_seconds:.2f}", f"{100 * row.cpu_seconds / cost.render_cpu_seconds:.0f}%",
                 f"{100 * row.largest_gap(cost.rows[0], classes):.0f} pts"]
        cells += [f"{100 * rates[scale][n][0]:.0f}% / {100 * rates[scale][n][1]:.0f}%"
                  for scale in rates for n in names]
        rows.append(cells)
    return _table(header, rows)


def models_table(measured) -> str:
    """Per model added: what it rendered and in how long, the cross-judging it brought, and the CPU seconds
    of the step and of the atlas so far as multiples of the first model's."""
    header = ["model", "pictures", "render wall s", "render CPU s", "CPU s/image", "cross-judging wall s",
              "cross-judging CPU s", "judgments", "added CPU s", "added / first", "atlas so far / first"]
    rows = []
    for i, step in enumerate(measured.steps):
        rows.append([step.model, step.pictures, step.render.wall, step.render.cpu,
                     f"{step.render.cpu / max(step.pictures, 1):.2f}", step.judging.wall, step.judging.cpu,
                     step.judgments, step.total.cpu, f"{measured.multiple(step.total):.2f}x",
                     f"{measured.multiple(measured.atlas_total(i)):.2f}x"])
    return _table(header, rows)


def matrix_table(matrix) -> str:
    short = [n.replace("efficientnet_lite", "Lite") for n in matrix.judges]
    rows = [[row.generator.replace("efficientnet_lite", "Lite"), row.pictures]
            + [" / ".join("–" if v is None else f"{100 * v:.0f}%" for v in cell) for cell in row.cells]
            for row in matrix.rows]
    return _table(["generator", "pictures", *short], rows)


def plot_quality(rows: list, classes, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = list(classes)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for r in rows:
        judge = list(r.rates_on(classes, "small"))[1]
        for scale, marker in (("small", "o"), ("large", "^"), ("whole", "s")):
            top5 = 100 * r.rates_on(classes, scale)[judge][1]
            ax.scatter(r.seconds_per_image, top5, s=40, marker=marker, label=scale if r is rows[0] else None)
        ax.annotate(r.config, (r.seconds_per_image, 100 * r.rates_on(classes, "small")[judge][1]), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("seconds per visualization")
    ax.set_ylabel("Lite1 top-5 rate (%)")
    ax.set_title("Quality against cost: Lite0 class visualizations judged by Lite1 at three scales")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
