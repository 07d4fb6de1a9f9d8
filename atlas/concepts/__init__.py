"""Concepts (CRAFT, as Lens shows them) and dataset examples (as Microscope shows them).

One noun per module, data flowing one way:

    images    the user's ImageNet-layout folder: scanning, the per-class sample, reading, fingerprints
    patches   square patches at a stride of 0.8 of their side, resized to the model's input
    nmf       non-negative matrix factorisation in torch, batched over classes
    craft     activations at a layer, concept banks, importance, crops, aligned classes
    examples      the images that drive each channel most: a running top-k in a total order
    example_pass  the streamed pass over the images, a shard's share of it, the exact merge of the shards' parts
    similar       the most similar concepts of other classes, in blocks (torch-free)
    store         the torch-free JSON + WebP format of concept banks, dataset examples, similar concepts, parts
    run           the orchestration behind `atlas concepts`: keys, shards, resume, timings
"""
