"""`atlas layers MODEL`: the layers an atlas can visualize."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a timm model name, or efficientnet_lite0/1/2 (bundled weights)")
    parser.add_argument("--checkpoint", help="weights file (a state dict saved with torch.save)")
    parser.add_argument("--random-weights", action="store_true", help="random weights (for tests)")


def run(args: argparse.Namespace) -> int:
    from atlas.models import list_layers, load_model, pre_logits_layer

    loaded = load_model(args.model, checkpoint=args.checkpoint, random_weights=args.random_weights)
    layers = list_layers(loaded)
    last = pre_logits_layer(loaded)
    width = max(len(info.name) for info in layers)
    print(f"{loaded.name}: {loaded.weights_source}, input {loaded.input_size} px, {loaded.num_classes} classes")
    print(f"{'layer':<{width}}  channels  reduction")
    for info in layers:
        note = "  (feeds the classifier)" if info.name == last else ""
        print(f"{info.name:<{width}}  {info.channels:>8}  {info.reduction:>9}{note}")
    return 0
