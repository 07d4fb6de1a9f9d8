"""`atlas eval --images DIR`: plausibility and FID of class visualizations against real photos."""

from __future__ import annotations

import argparse
import json

from atlas import flags
from atlas.flags import Bounded, Flag

# Every flag of `atlas eval`: a flag with a `key` replaces that key of atlas.toml (the generator's
# checkpoint and labels, as `atlas render` loaded it); the others are this command's own.
FLAGS = (
    flags.CONFIG,
    Flag("--images", "a folder with one sub-folder of real photos per class, named by the class (DIR/daisy/...) "
         "or by WordNet id (DIR/n07920052/...)", type=flags.path, options=(("metavar", "DIR"), ("required", True))),
    Flag("--cache", "the render cache", key="cache", type=flags.path, options=(("metavar", "DIR"),)),
    Flag("--model", "the generating model, if the cache holds several", note="the cache's",
         options=(("metavar", "NAME"),)),
    Flag("--checkpoint", "the generating model's weights (a state dict)", key="checkpoint", type=flags.path,
         options=(("metavar", "PATH"),)),
    Flag("--labels", "class names of the generator's head, one a line", key="labels", type=flags.path,
         options=(("metavar", "FILE"),)),
    Flag("--feature-model", "the network whose features FID compares (the paper uses inception_v3, available "
         "when its weights are in your hub cache)", default="efficientnet_lite2", options=(("metavar", "NAME"),)),
    Flag("--feature-checkpoint", "weights file for --feature-model", note="its own", options=(("metavar", "PATH"),)),
    Flag("--crops", "random crops per visualization", default=16, type=Bounded(1, 1024), options=(("metavar", "N"),)),
    Flag("--out", "write the scores as JSON here", type=flags.path, note="CACHE/eval.json",
         options=(("metavar", "FILE"),)),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flags.add_flags(parser, FLAGS)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import numpy as np
    import torch

    from atlas.cache import entry_pixels
    from atlas.classifier import load_configured_model
    from atlas.config import load_config
    from atlas.errors import AtlasError
    from atlas.evaluate import real_image_paths, score_class
    from atlas.labels import folder_classes
    from atlas.models import load_model
    from atlas.site.cache_reader import Entry, read_cache

    config = flags.merge(load_config(args.config), args, FLAGS)
    if not args.images.is_dir():
        raise AtlasError(f"image folder {args.images} does not exist: pass --images with one sub-folder per class, "
                         "named by the class or its WordNet id")
    contents = read_cache(config.cache, args.model)  # this model's entries, with its weights only
    model_name = contents.model.name
    classes = contents.model.classes  # named as `atlas render` named them
    by_class: dict[int, list[Entry]] = {}
    for entry in contents.entries:
        if entry.status == "ok" and entry.record.objective.class_index is not None:
            by_class.setdefault(entry.record.objective.class_index, []).append(entry)
    if not by_class:
        raise AtlasError(f"no rendered classes of {model_name} in the cache {config.cache}: run `atlas render` first")
    folder = {index: name for name, index in folder_classes(args.images, classes).items()}
    todo = {i: es for i, es in sorted(by_class.items()) if i in folder}
    if not todo:
        first = classes[next(iter(by_class))]
        raise AtlasError(f"no folder in {args.images} matches a rendered class: "
                         f"name them by class, e.g. {first.wnid or first.name}")
    for index in todo:  # a folder without photos fails now, not after the models load
        real_image_paths(args.images / folder[index])

    # weights and head as `atlas render` loaded them; the classes' names are the cache's, above
    generator = load_configured_model(dataclasses.replace(config, model=model_name))
    if generator.weights_sha256 != contents.model.weights_sha256:
        raise AtlasError(f"the cache's {model_name} renders come from other weights than the installed ones: "
                         "render them again with these weights, or evaluate where they were rendered")
    feature_name, feature_checkpoint = flags.value(args, FLAGS, "--feature-model"), args.feature_checkpoint
    feature_model = generator if feature_name == model_name and not feature_checkpoint else \
        load_model(feature_name, checkpoint=feature_checkpoint)
    rows = []
    print(f"{'class':>5}  {'wnid':<10}  {'real':>4}  {'vis':>3}  {'plausibility':>12}  {'FID':>9}  name")
    for index, entries in todo.items():
        real = real_image_paths(args.images / folder[index])
        pixels = [entry_pixels(e.folder, e.image_sha256) for e in entries]
        images = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float() / 255.0
        scores = entries[0].record.scores
        scale = scores.crop_scale if scores and scores.crop_scale else (0.2, 0.25)
        plausibility, fid = score_class(generator, feature_model, images, real,
                                        crops=flags.value(args, FLAGS, "--crops"), crop_scale=scale)
        name, wnid = classes[index].name, classes[index].wnid
        rows.append({"class_index": index, "wnid": wnid or None, "name": name, "real_images": len(real),
                     "visualizations": len(entries), "plausibility": plausibility, "fid": fid})
        print(f"{index:>5}  {wnid or '-':<10}  {len(real):>4}  {len(entries):>3}  "
              f"{plausibility:>12.4f}  {fid:>9.2f}  {name}")
    summary = {"model": model_name, "feature_model": feature_model.name, "crops": flags.value(args, FLAGS, "--crops"),
               "plausibility_mean": float(np.mean([r["plausibility"] for r in rows])),
               "fid_mean": float(np.mean([r["fid"] for r in rows])), "classes": rows}
    print(f"mean over {len(rows)} classes: plausibility {summary['plausibility_mean']:.4f}, "
          f"FID {summary['fid_mean']:.2f} "
          f"(skipped {len(by_class) - len(todo)} rendered classes without a photo folder)")
    out = args.out or config.cache / "eval.json"
    out.write_text(json.dumps(summary, indent=1))
    print(f"wrote {out}")
    return 0
