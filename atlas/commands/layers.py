"""`atlas layers MODEL`: the layers an atlas can visualize."""

from __future__ import annotations

import argparse

from atlas.flags import path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a timm model name, or efficientnet_lite0/1/2 (bundled weights)")
    parser.add_argument("--checkpoint", help="weights file (a state dict saved with torch.save)")
    parser.add_argument("--random-weights", action="store_true", help="random weights (for tests)")
    parser.add_argument("--labels", type=path, metavar="FILE",
                        help="class names of the head, one a line in class-index order (checked against the head)")


def run(args: argparse.Namespace) -> int:
    from atlas.classifier import load_configured_model
    from atlas.config import Config
    from atlas.models import list_layers, pre_logits_layer

    config = Config(model=args.model, checkpoint=args.checkpoint, random_weights=args.random_weights,
                    labels=args.labels)
    loaded = load_configured_model(config)
    layers = list_layers(loaded)
    last = pre_logits_layer(loaded)
    width = max(len(info.name) for info in layers)
    names = ", ".join(c.name for c in loaded.classes[:5]) + (", ..." if len(loaded.classes) > 5 else "")
    print(f"{loaded.name}: {loaded.weights_source}, input {loaded.input_size} px, {loaded.num_classes} classes"
          + (f" ({names})" if names else ""))
    print(f"{'layer':<{width}}  channels  reduction")
    for info in layers:
        note = "  (feeds the classifier)" if info.name == last else ""
        print(f"{info.name:<{width}}  {info.channels:>8}  {info.reduction:>9}{note}")
    return 0
