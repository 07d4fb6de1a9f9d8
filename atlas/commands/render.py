"""`atlas render`: render the configured classes and channels into the cache."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from atlas.config import Config, load_config, override, parse_batch_size
from atlas.errors import AtlasError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE", help="settings file (default: ./atlas.toml)")
    parser.add_argument("--model", metavar="NAME", help="timm model name (default from the config)")
    parser.add_argument("--checkpoint", type=Path, metavar="PATH", help="load the model's weights from a state dict")
    parser.add_argument("--random-weights", action="store_true", default=None,
                        help="random initial weights (for tests and demos)")
    parser.add_argument("--classes", metavar="SPEC", help='classes: "all", "none", "0-99", "1,207,967", "n01440764"')
    parser.add_argument("--layers", nargs="*", metavar="LAYER=SPEC",
                        help='channels per layer, e.g. blocks.3=0-31 conv_head=top:64; no value (or "none"): none')
    parser.add_argument("--preset", metavar="NAME", help="horama, xplique, atlas or cpu")
    parser.add_argument("--steps", type=int, metavar="N", help="optimisation steps (overrides the preset)")
    parser.add_argument("--canvas", type=int, metavar="PX", help="image side in pixels (overrides the preset)")
    parser.add_argument("--seeds", type=int, metavar="N", help="images per objective")
    parser.add_argument("--judges", nargs="*", metavar="MODEL", help="models that score each image; no value: none")
    parser.add_argument("--cache", type=Path, metavar="DIR", help="cache folder (default from the config)")
    parser.add_argument("--device", metavar="D", help="auto, cpu, cuda, cuda:N (default auto)")
    parser.add_argument("--batch-size", metavar="K", help='objectives per optimisation call, or "auto"')
    parser.add_argument("--spectrum", type=Path, metavar="FILE",
                        help="magnitude spectrum .npy made by `atlas spectrum` "
                             "(default: the MACO authors' ImageNet one)")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bfloat16 autocast of the model (GPU speed; other images, other cache keys)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="channels-last memory for convolutions (GPU speed; the same images)")
    parser.add_argument("--shard", metavar="I/N",
                        help="render shard I of N (0-based); default from RANK/WORLD_SIZE or a SLURM array")
    parser.add_argument("--force", action="store_true", help="render again even what the cache holds")
    parser.add_argument("--retry-failed", action="store_true", help="render again the objectives recorded as failed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    subset = parser.add_mutually_exclusive_group()
    subset.add_argument("--cpu-subset", dest="subset", action="store_const", const="cpu",
                        help="render the [cpu] subset of the config (the default without a GPU)")
    subset.add_argument("--full", dest="subset", action="store_const", const="full",
                        help="render the full configuration (the default on a GPU)")


def run(args: argparse.Namespace) -> int:
    # These import torch: only now, so that `atlas render --help` answers at once.
    from atlas import pipeline
    from atlas.device import resolve_device
    from atlas.jobs import parse_layers_arg, parse_shard, shard_from_env

    config = load_config(args.config)
    _check_classes_arg(args.classes)
    config = dataclasses.replace(
        config,
        model=args.model or config.model,
        checkpoint=args.checkpoint if args.checkpoint is not None else config.checkpoint,
        random_weights=config.random_weights if args.random_weights is None else args.random_weights,
        cache=args.cache if args.cache is not None else config.cache,
        device=args.device or config.device,
        batch_size=parse_batch_size(args.batch_size) if args.batch_size is not None else config.batch_size,
        spectrum=args.spectrum if args.spectrum is not None else config.spectrum,
        bf16=config.bf16 if args.bf16 is None else args.bf16,
        channels_last=config.channels_last if args.channels_last is None else args.channels_last,
    )
    device = resolve_device(config.device)
    cpu_subset = device == "cpu" if args.subset is None else args.subset == "cpu"
    selection = override(
        config.cpu if cpu_subset else config.full,
        classes=args.classes,
        layers=None if args.layers is None else parse_layers_arg(args.layers),
        preset=args.preset,
        seeds=args.seeds,
        judges=None if args.judges is None else tuple(args.judges),
        steps=args.steps,
        canvas=args.canvas,
    )
    shard = parse_shard(args.shard) if args.shard else shard_from_env()
    request = pipeline.RenderRequest(config=config, selection=selection, device=device, batch_size=config.batch_size,
                                     shard=shard, force=args.force, retry_failed=args.retry_failed)
    full_command = full_atlas_command(config)
    if cpu_subset:
        why = "no GPU found" if args.subset is None else "--cpu-subset"
        print(f"atlas render: {why}: rendering the CPU subset ([cpu] in {config.source or 'the defaults'}): "
              f"{selection.describe()} (the default subset takes about 2 minutes on 2 cores). "
              f"Full atlas: {full_command}", flush=True)
    progress = None if args.no_progress else progress_bar()
    summary = pipeline.run(request, report=lambda line: print(f"atlas render: {line}", flush=True), progress=progress)
    print(f"atlas render: done: {summary.line()}; cache {config.cache}", flush=True)
    if cpu_subset:
        print(f"atlas render: that was the CPU subset; for the full atlas run: {full_command}", flush=True)
    return 0


def full_atlas_command(config: Config) -> str:
    where = f" --config {config.source}" if config.source is not None and config.source.name != "atlas.toml" else ""
    return f"atlas render --full{where}  (or `make atlas` on a machine with a GPU)"


def _check_classes_arg(classes: str | None) -> None:
    if classes is not None and not classes.strip():
        raise AtlasError('--classes "" names no class: write --classes none to render only channels, '
                         'or a spec like 0-99 or all')


def progress_bar():
    from tqdm.auto import tqdm

    def progress(**kwargs):
        return tqdm(file=sys.stderr, mininterval=1.0, **kwargs)

    return progress
