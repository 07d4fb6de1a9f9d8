"""`atlas concepts --images DIR`: concept banks per class and dataset examples per channel, into the cache."""

from __future__ import annotations

import argparse
import dataclasses

from atlas import flags
from atlas.config import load_config
from atlas.errors import AtlasError
from atlas.flags import Bounded, Flag, class_spec, config_range


def _layers(values: list[str]) -> tuple[tuple[str, str], ...]:
    from atlas.jobs import parse_layers_arg

    return parse_layers_arg(values)


# Every flag of `atlas concepts`: a flag with a `key` replaces that key of atlas.toml (its default
# and range are atlas.config's, [concepts] for the method's settings); the others are this
# command's own, with their defaults here.
FLAGS = (
    flags.CONFIG,
    Flag("--images", "one subfolder per class, named by the class: DIR/daisy/..., or by WordNet id as ImageNet's "
         "train/val (DIR/n01440764/...)", key="concepts.images", type=flags.path, options=(("metavar", "DIR"),)),
    Flag("--classes", 'classes of DIR to explain: "all", "0-99", "n01440764", a class name', key="concepts.classes",
         type=class_spec, options=(("metavar", "SPEC"),)),
    Flag("--concepts", "concepts per class", key="concepts.concepts", type=config_range("concepts.concepts"),
         options=(("metavar", "N"),)),
    Flag("--layer", "layer of the concepts", key="concepts.layer",
         note="from the config, else the feature map the classifier pools", options=(("metavar", "NAME"),)),
    Flag("--images-per-class", "deterministic sample per class", key="concepts.images_per_class",
         type=config_range("concepts.images_per_class"), options=(("metavar", "N"),)),
    Flag("--patch", "patch side in pixels on the model's input", key="concepts.patch",
         type=config_range("concepts.patch"), note="from the config, else 64/224 of the input side",
         options=(("metavar", "PX"),)),
    Flag("--layers", "dataset examples for these channels; no value: none", convert=_layers,
         note="the render layers of the config", options=(("nargs", "*"), ("metavar", "LAYER=SPEC"))),
    Flag("--model", "timm model name", key="model", options=(("metavar", "NAME"),)),
    flags.CHECKPOINT,
    flags.RANDOM_WEIGHTS,
    flags.labels_flag("from the config, else the class folders of --images for a head without names of its own"),
    flags.CACHE,
    flags.DEVICE,
    Flag("--batch-size", "patches per forward pass", default={"cpu": 32, "gpu": 256}, type=Bounded(1, 65536),
         options=(("metavar", "N"),)),
    Flag("--group", "classes per NMF call", default={"cpu": 1, "gpu": 16}, type=Bounded(1, 1000),
         options=(("metavar", "N"),)),
    Flag("--shard", "compute shard I of N (0-based)", note="from RANK/WORLD_SIZE or a SLURM array, else 0/1",
         options=(("metavar", "I/N"),)),
    Flag("--merge", "only merge the shards' dataset examples and store the similar concepts",
         options=(("action", "store_true"),)),
    Flag("--no-progress", "no progress bar", options=(("action", "store_true"),)),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flags.add_flags(parser, FLAGS)


def run(args: argparse.Namespace) -> int:
    # These import torch: only now
    from atlas.classifier import load_configured_model
    from atlas.commands.render import progress_bar
    from atlas.concepts.run import ConceptRequest, run_concepts
    from atlas.device import resolve_device
    from atlas.jobs import parse_shard, shard_from_env
    from atlas.labels import lookup
    from atlas.plan import select_targets
    from atlas.specs import parse_classes

    config = flags.merge(load_config(args.config), args, FLAGS)
    settings = config.concepts
    if settings.images is None:
        raise AtlasError("no image folder: pass --images DIR (one subfolder per class, DIR/daisy/... or "
                         "DIR/n01440764/...) or set images in [concepts] of atlas.toml")
    device = resolve_device(config.device)
    gpu = device.startswith("cuda")
    loaded = load_configured_model(config, settings.images, device=device)
    spec = settings.classes
    classes = None if spec.strip().lower() == "all" else parse_classes(spec, loaded.num_classes, lookup(loaded.classes))
    selection = dataclasses.replace(config.full if gpu else config.cpu, classes="none")
    if args.layers is not None:
        selection = dataclasses.replace(selection, layers=flags.value(args, FLAGS, "--layers"))
    _, channels = select_targets(loaded, selection)
    request = ConceptRequest(
        images=settings.images,
        cache=config.cache,
        classes=classes,
        concepts=settings.concepts,
        layer=settings.layer,
        per_class=settings.images_per_class,
        patch=settings.patch,
        example_layers={layer: c for layer, c in channels.items() if c},
        batch_size=flags.value(args, FLAGS, "--batch-size", device),
        group=flags.value(args, FLAGS, "--group", device),
        shard=parse_shard(args.shard) if args.shard is not None else shard_from_env(),
        merge=args.merge,
    )
    summary = run_concepts(loaded, request, report=lambda line: print(f"atlas concepts: {line}", flush=True),
                           progress=None if args.no_progress else progress_bar())
    if (problem := summary.nothing_read(request.images)) is not None:
        raise AtlasError(problem)
    print(f"atlas concepts: done: {summary.line()}; cache {request.cache} (`atlas build` shows them now, "
          "`atlas render` draws their concepts' pictures)", flush=True)
    return 0
