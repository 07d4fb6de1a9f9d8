"""`atlas render`: render the configured classes and channels into the cache."""

from __future__ import annotations

import argparse
import sys

from atlas import flags
from atlas.config import Config, load_config, parse_batch_size
from atlas.flags import Bounded, Flag, class_spec, config_range, preset_name
from atlas.presets import CANVAS, PRESETS, STEPS


def _layers(values: list[str]) -> tuple[tuple[str, str], ...]:
    from atlas.jobs import parse_layers_arg

    return parse_layers_arg(values)


# Every flag of `atlas render`: a flag with a `key` replaces that key of atlas.toml (its default
# is atlas.config's); the others are this command's own, with their defaults here.
FLAGS = (
    flags.CONFIG,
    Flag("--model", "timm model name; in an atlas of several models (models = [...]), the one to render",
         key="model", note="from the config: every model of models, else model", options=(("metavar", "NAME"),)),
    flags.CHECKPOINT,
    flags.RANDOM_WEIGHTS,
    flags.labels_flag("from the config, else the model's own, else the class folders of [concepts] images"),
    Flag("--classes", 'classes: "all", "none", "0-99", "1,207,967", "n01440764", a class name',
         key="selection.classes",
         type=class_spec, options=(("metavar", "SPEC"),)),
    Flag("--layers", 'channels per layer, e.g. blocks.3=0-31 conv_head=top:64; no value (or "none"): none',
         key="selection.layers", convert=_layers, options=(("nargs", "*"), ("metavar", "LAYER=SPEC"))),
    Flag("--preset", f"one of {', '.join(PRESETS)}", key="selection.preset", type=preset_name,
         options=(("metavar", "NAME"),)),
    Flag("--steps", "optimisation steps (overrides the preset)", key="selection.steps", type=Bounded(*STEPS),
         options=(("metavar", "N"),)),
    Flag("--canvas", "image side in pixels (overrides the preset)", key="selection.canvas", type=Bounded(*CANVAS),
         options=(("metavar", "PX"),)),
    Flag("--seeds", "images per objective", key="selection.seeds", type=config_range("preset.seeds"),
         options=(("metavar", "N"),)),
    Flag("--judges", "models that score each image; no value: none", key="selection.judges", convert=tuple,
         options=(("nargs", "*"), ("metavar", "MODEL"))),
    flags.CACHE,
    flags.DEVICE,
    Flag("--batch-size", 'objectives per optimisation call, or "auto" (what fits on the device)', key="batch_size",
         type=config_range("batch_size", ("auto",)), convert=parse_batch_size, note="from the config: auto",
         options=(("metavar", "K"),)),
    Flag("--spectrum", "magnitude spectrum .npy made by `atlas spectrum`", key="spectrum", type=flags.path,
         note="from the config: the MACO authors' ImageNet one", options=(("metavar", "FILE"),)),
    Flag("--bf16", "bfloat16 autocast of the model (GPU speed; other images, other cache keys)", key="bf16",
         options=(("action", argparse.BooleanOptionalAction),)),
    Flag("--channels-last", "channels-last memory for convolutions (GPU speed; the same images)",
         key="channels_last", options=(("action", argparse.BooleanOptionalAction),)),
    Flag("--shard", "render shard I of N (0-based)", note="from RANK/WORLD_SIZE or a SLURM array, else 0/1",
         options=(("metavar", "I/N"),)),
    Flag("--force", "render again even what the cache holds", options=(("action", "store_true"),)),
    Flag("--retry-failed", "render again the objectives recorded as failed", options=(("action", "store_true"),)),
    Flag("--no-progress", "no progress bar", options=(("action", "store_true"),)),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flags.add_flags(parser, FLAGS)
    subset = parser.add_mutually_exclusive_group()
    subset.add_argument("--cpu-subset", dest="subset", action="store_const", const="cpu",
                        help="render the [cpu] subset of the config (the default without a GPU)")
    subset.add_argument("--full", dest="subset", action="store_const", const="full",
                        help="render the full configuration (the default on a GPU)")


def run(args: argparse.Namespace) -> int:
    # These import torch: only now, so that `atlas render --help` answers at once.
    from atlas import pipeline
    from atlas.device import resolve_device
    from atlas.jobs import parse_shard, shard_from_env

    config = flags.merge(load_config(args.config), args, FLAGS)
    device = resolve_device(config.device)
    cpu_subset = device == "cpu" if args.subset is None else args.subset == "cpu"
    shard = parse_shard(args.shard) if args.shard is not None else shard_from_env()
    full_command = full_atlas_command(config)
    if cpu_subset:
        why = "no GPU found" if args.subset is None else "--cpu-subset"
        subset = flags.merge_selection(config.cpu, args, FLAGS)
        built_in = subset == Config().cpu and (config.model, config.checkpoint) == (Config().model, None)
        cost = "" if not built_in else (" (about 9 minutes on 2 cores at the cpu-best preset, 4x the cpu preset's "
                                        "time, so that the pictures hold their class on small crops too; --preset "
                                        "cpu takes about 2 min 17 s)")
        print(f"atlas render: {why}: rendering the CPU subset ([cpu] in {config.source or 'the defaults'}): "
              f"{subset.describe()}{cost}. Full atlas: {full_command}", flush=True)
    progress = None if args.no_progress else progress_bar()
    say = lambda line: print(f"atlas render: {line}", flush=True)  # noqa: E731
    warn = lambda line: print(f"atlas render: {line}", file=sys.stderr, flush=True)  # noqa: E731
    configs = config.model_configs(only=args.model)
    for own in configs:
        selection = flags.merge_selection(own.cpu if cpu_subset else own.full, args, FLAGS)
        request = pipeline.RenderRequest(config=own, selection=selection, device=device,
                                         batch_size=config.batch_size, shard=shard, force=args.force,
                                         retry_failed=args.retry_failed)
        summary = pipeline.run(request, report=say, progress=progress, warn=warn)
        which = f"{own.model}: " if len(configs) > 1 or config.models else ""
        print(f"atlas render: done: {which}{summary.line()}; cache {config.cache}", flush=True)
    if len(config.model_configs()) > 1:  # every model judges the others' class pictures it has not judged yet
        from atlas.crossjudge import judge_across

        made = judge_across(config.model_configs(), device, report=say)
        print(f"atlas render: done: {made} judgments of one model's pictures by another", flush=True)
    if cpu_subset:
        print(f"atlas render: that was the CPU subset; for the full atlas run: {full_command}", flush=True)
    return 0


def full_atlas_command(config: Config) -> str:
    where = f" --config {config.source}" if config.source is not None and config.source.name != "atlas.toml" else ""
    return f"atlas render --full{where}  (or `make atlas` on a machine with a GPU)"


def progress_bar():
    from tqdm.auto import tqdm

    def progress(**kwargs):
        return tqdm(file=sys.stderr, mininterval=1.0, **kwargs)

    return progress
