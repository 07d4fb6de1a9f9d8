"""`atlas match --images DIR --models A B`: the same unit across models (Rosetta Neurons), into the cache."""

from __future__ import annotations

import argparse
import itertools

from atlas import flags
from atlas.config import load_config
from atlas.errors import AtlasError
from atlas.flags import Bounded, Flag

# Every flag of `atlas match`: a flag with a `key` replaces that key of atlas.toml; the others are
# this command's own, with their defaults here.
FLAGS = (
    flags.CONFIG,
    Flag("--images", "folder of images both models see (subfolders are searched too)", type=flags.path,
         options=(("metavar", "DIR"), ("required", True))),
    Flag("--models", "two or more timm model names; every pair is matched (the config's model keeps its "
         "checkpoint and labels)", options=(("nargs", "+"), ("metavar", "NAME"), ("required", True))),
    Flag("--layers", "layers to search, in every model that has them; MODEL:LAYER for one model only",
         note="every layer `atlas layers` lists", options=(("nargs", "+"), ("metavar", "LAYER"))),
    Flag("--grid", "side of the grid every activation map is resized to before correlating", default=7,
         type=Bounded(1, 64), options=(("metavar", "N"),)),
    Flag("--limit", "at most N images of the folder (a deterministic sample)", type=Bounded(1, 10_000_000),
         note="all", options=(("metavar", "N"),)),
    flags.RANDOM_WEIGHTS,
    flags.CACHE,
    flags.DEVICE,
    Flag("--batch-size", "images per forward pass", default={"cpu": 16, "gpu": 128}, type=Bounded(1, 65536),
         options=(("metavar", "N"),)),
    Flag("--force", "compute again even when the cache holds these matches", options=(("action", "store_true"),)),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flags.add_flags(parser, FLAGS)


def layers_for(model: str, asked: list[str] | None, known: set[str]) -> list[str] | None:
    """The layers of `asked` that `model` has (None: all of them); MODEL:LAYER names one model's layer."""
    if not asked:
        return None
    mine = []
    for item in asked:
        owner, _, layer = item.rpartition(":") if ":" in item else ("", "", item)
        if owner in ("", model) and layer in known:
            mine.append(layer)
        elif owner == model:
            raise AtlasError(f"{model} has no layer {layer!r}: `atlas layers {model}` lists them")
    if not mine:
        raise AtlasError(f"{model} has none of the layers {' '.join(asked)}: name one of its own with "
                         f"--layers {model}:LAYER (`atlas layers {model}` lists them)")
    return mine


def run(args: argparse.Namespace) -> int:
    # These import torch: only now
    from atlas import matches, rosetta, store
    from atlas.classifier import load_configured_model
    from atlas.device import resolve_device
    from atlas.models import list_layers, load_model

    config = flags.merge(load_config(args.config), args, FLAGS)
    names = args.models
    if len(names) < 2:
        raise AtlasError("matching needs two models or more: pass --models A B")
    device = resolve_device(config.device)
    batch = flags.value(args, FLAGS, "--batch-size", device)
    grid = flags.value(args, FLAGS, "--grid")
    loaded = []
    for name in dict.fromkeys(names):
        model = load_configured_model(config, device=device) if name == config.model else \
            load_model(name, random_weights=bool(config.random_weights), device=device)
        loaded.append((model, layers_for(name, args.layers, {info.name for info in list_layers(model)})))
    if len(loaded) == 1:  # the same name twice: the model against itself
        loaded.append(loaded[0])
    for (a, layers_a), (b, layers_b) in itertools.combinations(loaded, 2):
        asked = rosetta.request(a, b, args.images, layers_a=layers_a, layers_b=layers_b, grid=grid, limit=args.limit)
        if not args.force and store.read(config.cache, matches.KIND.name, asked.key) is not None:
            print(f"atlas match: {a.name} / {b.name}: already in the cache "
                  f"({store.file_path(config.cache, matches.KIND.name, asked.key)})")
            continue
        result = rosetta.match(a, b, args.images, layers_a=layers_a, layers_b=layers_b, grid=grid, batch_size=batch,
                               limit=args.limit, device=device)
        path = matches.write(config.cache, result)
        channels = [sum(count for _, count in side.layers) for side in result.models]
        print(f"atlas match: {a.name} / {b.name}: {len(result.matches)} mutual matches of {channels[0]} x "
              f"{channels[1]} channels on {result.images['count']} images "
              f"({result.images['skipped']} unreadable) in {result.seconds:.1f} s; {path}", flush=True)
    return 0
