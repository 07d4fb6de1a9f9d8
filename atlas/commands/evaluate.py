"""`atlas eval --images DIR`: plausibility and FID of class visualizations against real photos."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "score rendered class images against real photos (plausibility, FID)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", required=True, type=Path,
                        help="a folder with one sub-folder of real photos per class, named by WordNet id (n07920052/...)")
    parser.add_argument("--cache", type=Path, default=Path("cache"), help="the render cache (default: cache)")
    parser.add_argument("--model", help="the generating model, if the cache holds several")
    parser.add_argument("--feature-model", default="efficientnet_lite2",
                        help="the network whose features FID compares (default: efficientnet_lite2; "
                             "the paper uses inception_v3, available when its weights are in your hub cache)")
    parser.add_argument("--feature-checkpoint", help="weights file for --feature-model")
    parser.add_argument("--crops", type=int, default=16, help="random crops per visualization (default 16)")
    parser.add_argument("--out", type=Path, help="write the scores as JSON here (default: CACHE/eval.json)")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from atlas.cache import IMAGE, Cache
    from atlas.errors import AtlasError
    from atlas.evaluate import real_image_paths, score_class
    from atlas.models import imagenet_classes, load_model

    if not args.images.is_dir():
        raise AtlasError(f"image folder {args.images} does not exist: pass --images with one sub-folder per WordNet id")
    cache = Cache(args.cache)
    records = [r for r in cache.records() if r.get("status") == "ok" and r["objective"].get("kind") == "class"]
    models = sorted({r["model"]["name"] for r in records})
    if not records:
        raise AtlasError(f"no rendered classes in the cache {args.cache}: run `atlas render` first")
    model_name = args.model or (models[0] if len(models) == 1 else None)
    if model_name is None:
        raise AtlasError(f"the cache holds several models ({', '.join(models)}): pick one with --model")
    wnid = {c.index: c.wnid for c in imagenet_classes()}
    by_class: dict[int, list[dict]] = {}
    for record in records:
        if record["model"]["name"] == model_name:
            by_class.setdefault(record["objective"]["class_index"], []).append(record)
    todo = {i: rs for i, rs in sorted(by_class.items()) if (args.images / wnid[i]).is_dir()}
    if not todo:
        raise AtlasError(f"no folder in {args.images} matches a rendered class: name them by WordNet id, e.g. {wnid[next(iter(by_class))]}")
    for index in todo:  # a folder without photos fails now, not after the models load
        real_image_paths(args.images / wnid[index])

    generator = load_model(model_name)
    feature_model = generator if args.feature_model == model_name and not args.feature_checkpoint else \
        load_model(args.feature_model, checkpoint=args.feature_checkpoint)
    rows = []
    print(f"{'class':>5}  {'wnid':<10}  {'real':>4}  {'vis':>3}  {'plausibility':>12}  {'FID':>9}  name")
    for index, class_records in todo.items():
        real = real_image_paths(args.images / wnid[index])
        pixels = [np.asarray(Image.open(cache.entry_dir(r["key"]) / IMAGE).convert("RGB")) for r in class_records]
        images = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float() / 255.0
        scale = tuple(class_records[0].get("scores", {}).get("crop_scale") or (0.2, 0.25))
        plausibility, fid = score_class(generator, feature_model, images, real, crops=args.crops, crop_scale=scale)
        name = imagenet_classes()[index].name
        rows.append({"class_index": index, "wnid": wnid[index], "name": name, "real_images": len(real),
                     "visualizations": len(class_records), "plausibility": plausibility, "fid": fid})
        print(f"{index:>5}  {wnid[index]:<10}  {len(real):>4}  {len(class_records):>3}  {plausibility:>12.4f}  {fid:>9.2f}  {name}")
    summary = {"model": model_name, "feature_model": feature_model.name, "crops": args.crops,
               "plausibility_mean": float(np.mean([r["plausibility"] for r in rows])),
               "fid_mean": float(np.mean([r["fid"] for r in rows])), "classes": rows}
    print(f"mean over {len(rows)} classes: plausibility {summary['plausibility_mean']:.4f}, FID {summary['fid_mean']:.2f}"
          f" (skipped {len(by_class) - len(todo)} rendered classes without a photo folder)")
    out = args.out or args.cache / "eval.json"
    out.write_text(json.dumps(summary, indent=1))
    print(f"wrote {out}")
    return 0
