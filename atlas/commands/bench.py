"""`atlas bench`: the tables of docs/benchmarks.md, measured on this machine.

`make bench` runs the CPU part (under 15 minutes on a 2-core machine); `--part gpu` runs the
GPU part (the same comparison on the card, bf16/channels_last/torch.compile on and off, and
projected times for a 1000-class atlas).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict, replace
from pathlib import Path

HELP = "benchmark the engine against the reference implementations, and measure quality"
PARTS = ("speed", "scaling", "split", "quality")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--part", choices=("cpu", "gpu"), default="cpu", help="which machine's benchmark (default cpu)")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--device", help="torch device (default: cpu for --part cpu, cuda for --part gpu)")
    parser.add_argument("--classes", type=int, default=50, help="classes for the transferability table (default 50)")
    parser.add_argument("--steps", type=int, help="steps per timed call (default 3 on cpu, 20 on gpu)")
    parser.add_argument("--out", type=Path, default=Path("docs/bench"), help="folder for the JSON results and plot")


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
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


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
    from atlas.presets import get_preset

    gpu = args.part == "gpu"
    device = args.device or ("cuda" if gpu else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AtlasError("no CUDA device here: run `atlas bench --part gpu` on a GPU machine, "
                         "or `make bench` for the CPU part")
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise AtlasError(f"unknown benchmark part {unknown[0]!r}: choose from {', '.join(PARTS)}")
    steps = args.steps or (20 if gpu else 3)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {"machine": _machine(device), "device": device, "date": time.strftime("%Y-%m-%d"),
                                  "command": f"atlas bench --part {args.part} --only {','.join(parts)}"}
    print(f"# atlas bench --part {args.part}: {results['machine']}, {results['date']}\n")

    lite0 = load_model("efficientnet_lite0")
    resnet = load_model("resnet50", random_weights=True)
    default = get_preset("atlas" if gpu else "cpu")  # the preset each machine renders with
    # Identical settings for every implementation: horama's crops and noise on a 512 canvas.
    same = get_preset("atlas", canvas=512, crops=8, crop_min=0.20, crop_max=0.25, noise=0.05)

    if "speed" in parts:
        rows, table = [], []
        for model in (lite0, resnet):
            measured = bench.speed(model, same, steps, device, batches=(1, 8, 32) if gpu else (1, 4))
            horama_ms = next(r.ms_per_image_step for r in measured if r.implementation == "horama 0.3.0 maco")
            for r in measured:
                rows.append(asdict(r) | {"per_hour_256_steps": r.per_hour(256),
                                         "x_horama": horama_ms / r.ms_per_image_step})
                table.append([r.implementation, r.model, r.batch, r.ms_per_step, r.ms_per_image_step,
                              f"{r.per_hour(256):,.0f}", f"{horama_ms / r.ms_per_image_step:.2f}x"])
        results["speed"] = rows
        print(f"## Speed: canvas {same.canvas}, {same.crops} crops of {same.crop_min}-{same.crop_max}, "
              f"noise {same.noise}, {steps} timed steps per call, {device}\n")
        print(_table(["implementation", "model", "batch", "ms/step", "ms per image-step", "images/hour at 256 steps",
                      "vs horama"], table) + "\n")

    if "scaling" in parts:
        batches = (1, 2, 4, 8, 16, 32, 64) if gpu else (1, 2, 4, 8, 16)
        rows = []
        bench.run_ours(lite0, replace(default, steps=1), 1, device)  # warm-up, as for every timed row
        for batch in batches:
            try:
                seconds = bench.run_ours(lite0, replace(default, steps=steps), batch, device)[1]
                memory = bench.peak_memory_mb(lite0, default, batch, device)
            except torch.OutOfMemoryError:
                break
            rows.append({"batch": batch, "ms_per_step": 1000 * seconds / steps,
                         "images_per_hour": 3600 * batch / (seconds / steps * default.steps), "peak_mb": memory})
        canvases = []
        for canvas in (256, 512, 1024, 1280) if gpu else (256, 512, 1024):
            canvases.append({"canvas": canvas, "batch": 4,
                             "peak_mb": bench.peak_memory_mb(lite0, replace(default, canvas=canvas), 4, device)})
        results["scaling"] = {"batch": rows, "canvas": canvases}
        print(f"## Scaling: Lite0, preset `{default.name}` ({default.canvas} px, {default.crops} crops), {device}\n")
        print(_table(["batch", "ms/step", f"images/hour ({default.steps} steps)", "peak MB"],
                     [[r["batch"], r["ms_per_step"], f"{r['images_per_hour']:,.0f}", r["peak_mb"]]
                      for r in rows]) + "\n")
        print(_table(["canvas", "batch", "peak MB"],
                     [[r["canvas"], r["batch"], r["peak_mb"]] for r in canvases]) + "\n")

    if "split" in parts:
        rows = []
        for model, batch in ((lite0, 1), (lite0, 8), (resnet, 8 if gpu else 2)):
            split = bench.time_split(model, default, batch, steps, device)
            rows.append({"model": model.name, "batch": batch} | split)
        results["split"] = rows
        print(f"## Where a step goes: preset `{default.name}`, {device}\n")
        print(_table(["model", "batch", "step ms", "image handling ms", "image handling share"],
                     [[r["model"], r["batch"], r["step_ms"], r["image_ms"], f"{100 * r['image_fraction']:.1f}%"]
                      for r in rows]) + "\n")

    if "quality" in parts:
        judges = [load_model("efficientnet_lite1"), load_model("efficientnet_lite2")]
        classes = bench.QUALITY_CLASSES[: args.classes] if args.classes <= 50 else \
            tuple(range(0, 1000, max(1, 1000 // args.classes)))[: args.classes]
        configs = quality_configs(gpu)
        rows, measured = [], []
        for name, preset_name, overrides, options, limit in configs:
            preset = get_preset(preset_name, **overrides)
            n = classes[:limit] if limit else classes
            # 512 crops a step (32 images x 16 crops) took 40 GB of an H100 on Lite0: xplique's 32 crops
            # at 32 images ran out of its 80 GB
            row = bench.quality(lite0, judges, preset, n, device, config=name,
                                batch=max(1, min(32, 512 // preset.crops)) if gpu else 2, **options)
            rows.append(asdict(row) | {"preset": preset.to_dict()})
            measured.append(row)
            print(f"  {name}: {row.seconds_per_image:.1f} s/image, " +
                  ", ".join(f"{k} top-1 {v[0]:.2f} top-5 {v[1]:.2f}" for k, v in row.rates.items()), flush=True)
        results["quality"] = rows
        print("\n## Quality: Lite0 class visualizations judged on 16 random crops at the optimisation scale, "
              f"{device}\n")
        header = ["config", "classes", "s/image", "Lite0 top-1", "Lite0 top-5", "Lite1 top-1", "Lite1 top-5",
                  "Lite2 top-1", "Lite2 top-5", "Lite1 top-5 per minute"]
        table = []
        for r in rows:
            rates = list(r["rates"].values())
            table.append([r["config"], r["classes"], r["seconds_per_image"]] +
                         [f"{100 * v:.0f}%" for pair in rates for v in pair] +
                         [f"{60 * rates[1][1] / r['seconds_per_image']:.2f}"])
        print(_table(header, table) + "\n")
        common = classes[: min(len(r.per_class) for r in measured)]
        print(f"Every config on the same {len(common)} classes ({', '.join(map(str, common))}):\n")
        table = []
        for r in measured:
            rates = list(r.rates_on(common).values())
            table.append([r.config, len(common), r.seconds_per_image] +
                         [f"{100 * v:.0f}%" for pair in rates for v in pair] +
                         [f"{60 * rates[1][1] / r.seconds_per_image:.2f}"])
        print(_table(header, table) + "\n")
        plot_quality(rows, args.out / f"quality-{args.part}.png")
        print(f"plot: {args.out / f'quality-{args.part}.png'}\n")

    if gpu and "speed" in parts:
        results["gpu_options"] = gpu_options(bench, lite0, resnet, default, steps, device)

    out = args.out / f"results-{args.part}.json"
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"results: {out}")
    return 0


def quality_configs(gpu: bool) -> list[tuple[str, str, dict, dict, int | None]]:
    """(label, preset, overrides, render options, class limit) of each quality row.

    On a CPU the presets' crop and noise schemes are compared at the CPU budget (canvas and
    steps of the `cpu` preset), since horama's own 1280 px x 1000 steps takes hours per image
    there; those rows and the horama reference run on the first 10 classes of the list, and
    the fourier and bf16 rows on the first 20, to keep `make bench` short on a CPU.
    """
    if gpu:
        return [
            ("maco · atlas", "atlas", {}, {}, None),
            ("fourier · atlas", "atlas", {}, {"param": "fourier"}, None),
            ("maco · atlas · bf16", "atlas", {}, {"autocast_bf16": True}, None),
            ("maco · xplique", "xplique", {}, {}, None),
            ("maco · horama", "horama", {}, {}, 10),
            ("horama 0.3.0 maco · atlas settings", "atlas", {}, {"runner": "maco"}, 10),
        ]
    budget = {"canvas": 256, "steps": 64, "crops": 4}
    return [
        ("maco · cpu", "cpu", {}, {}, None),
        ("fourier · cpu", "cpu", {}, {"param": "fourier"}, 20),
        ("maco · cpu · bf16", "cpu", {}, {"autocast_bf16": True}, 20),
        ("maco · xplique crops, cpu budget", "xplique", budget, {}, 10),
        ("maco · horama crops, cpu budget", "horama", budget, {}, 10),
        ("horama 0.3.0 maco · cpu settings", "cpu", {}, {"runner": "maco"}, 10),
    ]


def gpu_options(bench, lite0, resnet, preset, steps, device) -> dict[str, object]:
    """bf16 autocast, channels_last and torch.compile on and off; projected 1000-class atlas times."""
    import torch

    from atlas.presets import get_preset

    rows = []
    batch = 16  # 32 images x 16 crops took 40 GB of an H100; the compiled graph needs as much again
    for bf16 in (False, True):
        for channels_last in (False, True):
            seconds = bench.run_ours(lite0, replace(preset, steps=steps), batch, device,
                                     autocast_bf16=bf16, channels_last=channels_last)[1]
            rows.append({"bf16": bf16, "channels_last": channels_last, "compile": False,
                         "ms_per_image_step": 1000 * seconds / steps / batch})
    torch.cuda.empty_cache()
    compiled = replace(lite0, module=torch.compile(lite0.module))
    bench.run_ours(compiled, replace(preset, steps=2), batch, device)  # compilation
    seconds = bench.run_ours(compiled, replace(preset, steps=steps), batch, device)[1]
    rows.append({"bf16": False, "channels_last": False, "compile": True,
                 "ms_per_image_step": 1000 * seconds / steps / batch})
    print(f"## GPU options: Lite0, preset `atlas`, batch {batch}\n")
    print(_table(["bf16", "channels_last", "torch.compile", "ms per image-step"],
                 [[r["bf16"], r["channels_last"], r["compile"], r["ms_per_image_step"]] for r in rows]) + "\n")
    horama = get_preset("horama")
    best = min(r["ms_per_image_step"] for r in rows)
    resnet_ms = 1000 * bench.run_ours(resnet, replace(horama, steps=steps), 8, device)[1] / steps / 8
    projection = {"lite0_atlas_hours": 1000 * preset.steps * best / 1000 / 3600,
                  "resnet50_horama_hours": 1000 * horama.steps * resnet_ms / 1000 / 3600}
    print(f"Projected 1000-class atlas: Lite0 at `atlas` {projection['lite0_atlas_hours']:.2f} h; "
          f"ResNet-50 at horama's settings {projection['resnet50_horama_hours']:.2f} h\n")
    return {"options": rows, "projection": projection}


def plot_quality(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for r in rows:
        rates = list(r["rates"].values())
        ax.scatter(r["seconds_per_image"], 100 * rates[1][1], s=40)
        ax.annotate(r["config"], (r["seconds_per_image"], 100 * rates[1][1]), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("seconds per visualization")
    ax.set_ylabel("Lite1 top-5 rate on random crops (%)")
    ax.set_title("Quality against cost: Lite0 class visualizations judged by Lite1")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
