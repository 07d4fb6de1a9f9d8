"""`atlas concepts --images DIR`: concept banks per class and dataset examples per channel, into the cache."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from atlas.config import load_config
from atlas.errors import AtlasError
from atlas.jobs import parse_layers_arg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE", help="settings file (default: ./atlas.toml)")
    parser.add_argument("--images", type=Path, metavar="DIR",
                        help="one subfolder per class named by WordNet id, as ImageNet's train/val (DIR/n01440764/...)")
    parser.add_argument("--classes", metavar="SPEC",
                        help='classes of DIR to explain: "all" (default), "0-99", "n01440764"')
    parser.add_argument("--concepts", type=int, metavar="N", help="concepts per class (default 10)")
    parser.add_argument("--layer", metavar="NAME",
                        help="layer of the concepts (default: the feature map the classifier pools)")
    parser.add_argument("--images-per-class", type=int, metavar="N", help="deterministic sample per class (default 50)")
    parser.add_argument("--patch", type=int, metavar="PX", help="patch side on the model's input (default 64 of 224)")
    parser.add_argument("--layers", nargs="*", metavar="LAYER=SPEC",
                        help="dataset examples for these channels (default: the render layers); no value: none")
    parser.add_argument("--model", metavar="NAME", help="timm model name (default from the config)")
    parser.add_argument("--checkpoint", type=Path, metavar="PATH", help="load the model's weights from a state dict")
    parser.add_argument("--random-weights", action="store_true", default=None, help="random weights (for tests)")
    parser.add_argument("--cache", type=Path, metavar="DIR", help="cache folder (default from the config)")
    parser.add_argument("--device", metavar="D", help="auto, cpu, cuda, cuda:N (default auto)")
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help="patches per forward pass (default 32 on a CPU, 256 on a GPU)")
    parser.add_argument("--group", type=int, metavar="N", help="classes per NMF call (default 1 on a CPU, 16 on a GPU)")
    parser.add_argument("--shard", metavar="I/N",
                        help="compute shard I of N (0-based); default from RANK/WORLD_SIZE or a SLURM array")
    parser.add_argument("--merge", action="store_true",
                        help="only merge the shards' dataset examples and store the similar concepts")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    # These import torch: only now
    from atlas.commands.render import progress_bar
    from atlas.concepts.run import ConceptRequest, run_concepts, wnid_index
    from atlas.device import resolve_device
    from atlas.jobs import parse_shard, shard_from_env
    from atlas.models import load_model
    from atlas.plan import select_targets
    from atlas.specs import parse_classes

    config = load_config(args.config)
    settings = config.concepts
    images = args.images or settings.images
    if images is None:
        raise AtlasError("no image folder: pass --images DIR (one subfolder per class, DIR/n01440764/...) "
                         "or set images in [concepts] of atlas.toml")
    device = resolve_device(args.device or config.device)
    gpu = device.startswith("cuda")
    loaded = load_model(args.model or config.model,
                        checkpoint=args.checkpoint if args.checkpoint is not None else config.checkpoint,
                        random_weights=config.random_weights if args.random_weights is None else args.random_weights,
                        device=device)
    spec = args.classes or settings.classes
    classes = None if spec.strip().lower() == "all" else parse_classes(spec, loaded.num_classes, wnid_index(loaded))
    selection = dataclasses.replace(config.full if gpu else config.cpu, classes="none")
    if args.layers is not None:
        selection = dataclasses.replace(selection, layers=parse_layers_arg(args.layers))
    _, channels = select_targets(loaded, selection)
    request = ConceptRequest(
        images=images,
        cache=args.cache or config.cache,
        classes=classes,
        concepts=args.concepts or settings.concepts,
        layer=args.layer or settings.layer,
        per_class=args.images_per_class or settings.images_per_class,
        patch=args.patch or settings.patch,
        example_layers={layer: c for layer, c in channels.items() if c},
        batch_size=args.batch_size or (256 if gpu else 32),
        group=args.group or (16 if gpu else 1),
        shard=parse_shard(args.shard) if args.shard else shard_from_env(),
        merge=args.merge,
    )
    summary = run_concepts(loaded, request, report=lambda line: print(f"atlas concepts: {line}", flush=True),
                           progress=None if args.no_progress else progress_bar())
    print(f"atlas concepts: done: {summary.line()}; cache {request.cache}", flush=True)
    return 0
