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
PARTS = ("speed", "scaling", "split", "quality", "search", "cost", "concepts")
DEFAULT_PARTS = ("speed", "scaling", "split", "quality", "concepts")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--part", choices=("cpu", "gpu"), default="cpu", help="which machine's benchmark (default cpu)")
    parser.add_argument("--only", default=",".join(DEFAULT_PARTS),
                        help=f"comma-separated subset of {','.join(PARTS)} (default: {','.join(DEFAULT_PARTS)})")
    parser.add_argument("--device", help="torch device (default: cpu for --part cpu, cuda for --part gpu)")
    parser.add_argument("--classes", type=int, default=50, help="classes for the transferability table (default 50)")
    parser.add_argument("--steps", type=int, help="steps per timed call (default 3 on cpu, 20 on gpu)")
    parser.add_argument("--images", type=Path, metavar="DIR",
                        help="ImageNet-layout folder for the concepts part (default: a sample made from "
                             "scikit-image's photos)")
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

    if "quality" in parts or "search" in parts:
        judges = [load_model("efficientnet_lite1"), load_model("efficientnet_lite2")]
        classes = bench.QUALITY_CLASSES[: args.classes] if args.classes <= 50 else \
            tuple(range(0, 1000, max(1, 1000 // args.classes)))[: args.classes]
    if "quality" in parts:
        measured = _quality_rows(bench, lite0, judges, quality_configs(gpu), classes, device, gpu)
        results["quality"] = [_row_json(r, p) for r, p in measured]
        rows = [r for r, _ in measured]
        print(f"\n## Quality on the judging protocol ({_protocol()}), {device}\n")
        common = classes[: min(r.classes for r in rows)]
        print(f"Every config on the same {len(common)} classes ({', '.join(map(str, common))}):\n")
        print(quality_table(rows, common) + "\n")
        plot_quality(rows, common, args.out / f"quality-{args.part}.png")
        print(f"plot: {args.out / f'quality-{args.part}.png'}\n")

    if "search" in parts:
        configs = [(label, "cpu", bench.CPU_BEFORE | overrides, {}, None) for label, overrides in bench.SEARCH]
        measured = _quality_rows(bench, lite0, judges, configs, classes, device, gpu)
        results["search"] = [_row_json(r, p) for r, p in measured]
        print(f"\n## Settings search for the `cpu` preset ({_protocol()}), rendered on {device}\n")
        print(quality_table([r for r, _ in measured], classes) + "\n")

    if "cost" in parts:
        # Seconds per image of every searched config, timed twice in alternating order (min kept).
        from atlas.device import native_bf16

        def timings(runs):
            best: dict = {}
            for order in (runs, runs[::-1]):
                for key, preset, batch, options in order:
                    wall, cpu = bench.seconds_per_image(lite0, preset, device, batch=batch, steps=steps, **options)
                    old = best.get(key, (wall, cpu))
                    best[key] = (min(old[0], wall), min(old[1], cpu))
            return best

        configs = timings([(label, get_preset("cpu", **(bench.CPU_BEFORE | o)), 1, {}) for label, o in bench.SEARCH])
        print(f"## Seconds per image of the searched configs, {device}, {torch.get_num_threads()} threads, "
              f"batch 1, {steps} timed steps (wall, and CPU time of this process)\n")
        print(_table(["config", "wall s/image", "CPU s/image"], [[k, *v] for k, v in configs.items()]) + "\n")
        # The render options at the `cpu` preset; bf16 only where this machine has bf16 instructions.
        combos = [((b, cl, bf), default, b, {"channels_last": cl, "autocast_bf16": bf})
                  for b in (1, 2) for cl, bf in ((False, False), (True, False), (True, True))
                  if not bf or native_bf16(device)]
        options = timings(combos)
        results["cost"] = {"threads": torch.get_num_threads(),
                           "configs": {k: {"wall": w, "cpu": c} for k, (w, c) in configs.items()},
                           "options": [{"batch": b, "channels_last": cl, "bf16": bf, "wall": w, "cpu": c}
                                       for (b, cl, bf), (w, c) in options.items()]}
        print(f"## Render options at the `{default.name}` preset, {device} (native bf16: {native_bf16(device)})\n")
        print(_table(["batch", "channels_last", "bf16", "wall s/image", "CPU s/image"],
                     [[*k, *v] for k, v in options.items()]) + "\n")

    if "concepts" in parts:
        results["concepts"] = _concepts(lite0, args.images, device)

    if gpu and "speed" in parts:
        results["gpu_options"] = gpu_options(bench, lite0, resnet, default, steps, device)

    out = args.out / f"results-{args.part}.json"
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"results: {out}")
    return 0


def _concepts(lite0, images: Path | None, device: str) -> dict[str, object]:
    """Seconds per class of `atlas concepts` (50 images a class), per phase, and the 1000-class projection."""
    import tempfile
    from dataclasses import replace

    from atlas.concepts.bench import bench_concepts, sample_folder

    loaded = replace(lite0, module=lite0.module.to(device))
    with tempfile.TemporaryDirectory(prefix="atlas-concept-images-") as work:
        gpu = device.startswith("cuda")
        # on a GPU two classes would time mostly the warm-up: 16 make one NMF group
        folder = images if images is not None else sample_folder(Path(work), images_per_class=50,
                                                                 classes=16 if gpu else None)
        measured = bench_concepts(loaded, folder, images_per_class=50, batch_size=256 if gpu else 32,
                                  group=16 if gpu else 1)
    source = str(images) if images is not None else "scikit-image photos, 500x375 JPEG"
    print(f"## Concepts: Lite0, 10 concepts a class, {measured.classes} classes of {source}, {device}\n")
    for line in measured.lines():
        print(line)
    print()
    return {"source": source, "classes": measured.classes, "images_per_class": measured.images_per_class,
            "threads": measured.threads, "seconds_per_class": measured.per_class,
            "projected_hours_1000x500": measured.projected_seconds() / 3600}


def _protocol() -> str:
    from atlas.judging import SCALES

    return "; ".join(f"{name} {lo:.2f}-{hi:.2f}" if hi < 1 else f"{name} picture" for name, (lo, hi) in SCALES.items())


def _quality_rows(bench, lite0, judges, configs, classes, device: str, gpu: bool) -> list:
    from atlas.presets import get_preset

    measured = []
    for name, preset_name, overrides, options, limit in configs:
        preset = get_preset(preset_name, **overrides)
        n = classes[:limit] if limit else classes
        # 512 crops a step (32 images x 16 crops) took 40 GB of an H100 on Lite0; xplique's 32 crops at
        # 32 images ran out of its 80 GB
        batch = max(1, min(32, 512 // preset.crops)) if gpu else 2
        row = bench.quality(lite0, judges, preset, n, device, config=name, batch=batch, **options)
        measured.append((row, preset))
        print("  " + quality_table([row], n).splitlines()[-1], flush=True)  # the row now: a run may be cut short
    return measured


def _row_json(row, preset) -> dict:
    return asdict(row) | {"rates": row.rates, "preset": preset.to_dict()}


def quality_table(rows: list, classes) -> str:
    """Corner ratio, then per scale the generator's top-1 and each judge's top-1/top-5, over `classes`."""
    classes = list(classes)
    header = ["config", "classes", "s/image", "corner ratio", "border share", "HF share"]
    names = list(rows[0].rates["large"])
    short = [n.replace("efficientnet_lite", "Lite") for n in names]
    header += [f"large {short[0]} top-1"] + [f"large {n} top-1 / top-5" for n in short[1:]]
    header += [f"{scale} {n} top-5" for scale in ("small", "whole") for n in short[1:]]
    table = []
    for r in rows:
        large = r.rates_on(classes, "large")
        cells = [r.config, len(classes), r.seconds_per_image, f"{r.stat_on(classes, 'corner_ratio'):.2f}",
                 f"{r.stat_on(classes, 'border_energy_share'):.2f}",
                 f"{1000 * r.stat_on(classes, 'high_frequency_share'):.1f}‰"]
        cells += [f"{100 * large[names[0]][0]:.0f}%"]
        cells += [f"{100 * large[n][0]:.0f}% / {100 * large[n][1]:.0f}%" for n in names[1:]]
        for scale in ("small", "whole"):
            rates = r.rates_on(classes, scale)
            cells += [f"{100 * rates[n][1]:.0f}%" for n in names[1:]]
        table.append(cells)
    return _table(header, table)


def quality_configs(gpu: bool) -> list[tuple[str, str, dict, dict, int | None]]:
    """(label, preset, overrides, render options, class limit) of each quality row.

    On a CPU: the `cpu` preset before issue 12 and now, on the same classes (the before/after
    table of `make bench`), then the Fourier baseline at the new settings. The `atlas` preset
    (about 220 s an image on 2 cores) runs only with --part gpu or on its own.
    On a GPU: the `atlas` preset, its Fourier baseline and xplique's settings (16 classes, the
    costliest row); the `cpu` presets are rows of the search part there.
    """
    from atlas import bench

    if gpu:
        return [
            ("maco · atlas", "atlas", {}, {}, None),
            ("fourier · atlas", "atlas", {}, {"param": "fourier"}, None),
            ("maco · xplique", "xplique", {}, {}, 16),
        ]
    return [
        ("before: cpu v1", "cpu", bench.CPU_BEFORE, {}, None),
        ("after: cpu", "cpu", {}, {}, None),
        ("fourier · cpu", "cpu", {}, {"param": "fourier"}, None),
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
