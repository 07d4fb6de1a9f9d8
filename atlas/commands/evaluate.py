"""`atlas eval --images DIR`: plausibility and FID of class visualizations against real photos."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from atlas.flags import Bounded


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", required=True, type=Path,
                        help="a folder with one sub-folder of real photos per class, "
                             "named by WordNet id (n07920052/...)")
    parser.add_argument("--cache", type=Path, default=Path("cache"), help="the render cache (default: cache)")
    parser.add_argument("--model", help="the generating model, if the cache holds several")
    parser.add_argument("--feature-model", default="efficientnet_lite2",
                        help="the network whose features FID compares (default: efficientnet_lite2; "
                             "the paper uses inception_v3, available when its weights are in your hub cache)")
    parser.add_argument("--feature-checkpoint", help="weights file for --feature-model")
    parser.add_argument("--crops", type=Bounded(1, 1024), default=16, metavar="N",
                        help="random crops per visualization (default 16; an integer from 1 to 1024)")
    parser.add_argument("--out", type=Path, help="write the scores as JSON here (default: CACHE/eval.json)")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from atlas.errors import AtlasError
    from atlas.evaluate import real_image_paths, score_class
    from atlas.models import imagenet_classes, load_model
    from atlas.site.records import Entry, read_cache

    if not args.images.is_dir():
        raise AtlasError(f"image folder {args.images} does not exist: pass --images with one sub-folder per WordNet id")
    contents = read_cache(args.cache, args.model)  # this model's entries, with its weights only
    model_name = contents.model.name
    wnid = {c.index: c.wnid for c in imagenet_classes()}
    by_class: dict[int, list[Entry]] = {}
    for entry in contents.entries:
        if entry.status == "ok" and entry.objective.class_index is not None:
            by_class.setdefault(entry.objective.class_index, []).append(entry)
    if not by_class:
        raise AtlasError(f"no rendered classes of {model_name} in the cache {args.cache}: run `atlas render` first")
    todo = {i: es for i, es in sorted(by_class.items()) if (args.images / wnid[i]).is_dir()}
    if not todo:
        raise AtlasError(f"no folder in {args.images} matches a rendered class: "
                         f"name them by WordNet id, e.g. {wnid[next(iter(by_class))]}")
    for index in todo:  # a folder without photos fails now, not after the models load
        real_image_paths(args.images / wnid[index])

    generator = load_model(model_name)
    if generator.weights_sha256 != contents.model.weights_sha256:
        raise AtlasError(f"the cache's {model_name} renders come from other weights than the installed ones: "
                         "render them again with these weights, or evaluate where they were rendered")
    feature_model = generator if args.feature_model == model_name and not args.feature_checkpoint else \
        load_model(args.feature_model, checkpoint=args.feature_checkpoint)
    rows = []
    print(f"{'class':>5}  {'wnid':<10}  {'real':>4}  {'vis':>3}  {'plausibility':>12}  {'FID':>9}  name")
    for index, entries in todo.items():
        real = real_image_paths(args.images / wnid[index])
        pixels = [np.asarray(Image.open(e.image_path).convert("RGB")) for e in entries]
        images = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float() / 255.0
        scores = entries[0].record.scores
        scale = scores.crop_scale if scores and scores.crop_scale else (0.2, 0.25)
        plausibility, fid = score_class(generator, feature_model, images, real, crops=args.crops, crop_scale=scale)
        name = imagenet_classes()[index].name
        rows.append({"class_index": index, "wnid": wnid[index], "name": name, "real_images": len(real),
                     "visualizations": len(entries), "plausibility": plausibility, "fid": fid})
        print(f"{index:>5}  {wnid[index]:<10}  {len(real):>4}  {len(entries):>3}  "
              f"{plausibility:>12.4f}  {fid:>9.2f}  {name}")
    summary = {"model": model_name, "feature_model": feature_model.name, "crops": args.crops,
               "plausibility_mean": float(np.mean([r["plausibility"] for r in rows])),
               "fid_mean": float(np.mean([r["fid"] for r in rows])), "classes": rows}
    print(f"mean over {len(rows)} classes: plausibility {summary['plausibility_mean']:.4f}, "
          f"FID {summary['fid_mean']:.2f} "
          f"(skipped {len(by_class) - len(todo)} rendered classes without a photo folder)")
    out = args.out or args.cache / "eval.json"
    out.write_text(json.dumps(summary, indent=1))
    print(f"wrote {out}")
    return 0
