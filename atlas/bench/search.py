"""The settings search for the `cpu` preset (docs/benchmarks.md): the configs `atlas bench --only search,cost` runs."""

from __future__ import annotations

# The first `cpu` preset (engine version 1, labelled "v1" in the tables): the reference's phase,
# 224 px crops of 0.4-0.8; the baseline every searched config is measured against. Every field of a
# preset is named, so that v1 stays v1 whatever today's `cpu` preset becomes.
CPU_BEFORE = {"canvas": 256, "steps": 64, "crops": 4, "crop_min": 0.4, "crop_max": 0.8, "noise": 0.05, "lr": 1.0,
              "phase_offset": False, "input_scale": 1.0, "lr_end": 1.0, "crop_anneal": False, "init": "normal",
              "whole_views": 0}

# The settings search for the `cpu` preset (docs/benchmarks.md): rounds of (label, overrides of CPU_BEFORE).
# Cost on a CPU is about steps x crops x input_scale^2; the old preset is 64 x 4 x 1 = 256.
_MULTI = {"phase_offset": True, "crop_min": 0.25, "crop_max": 1.0, "input_scale": 0.72}
# Round 2 starts from round 1's pick, the `cpu` preset (48 x 4 x 0.72^2 = 99): the same cost spent
# otherwise, then more cost, to find what the small-scale targets would need.
_N = {**_MULTI, "steps": 48, "crop_min": 0.2, "crop_max": 0.6, "canvas": 384}
SEARCH_ROUNDS: dict[int, tuple[tuple[str, dict], ...]] = {
    1: (
        ("before: v1 cpu", {}),
        ("v1 cpu + phase offset", {"phase_offset": True}),
        ("offset, 160 px", {"phase_offset": True, "input_scale": 0.72}),
        ("M: offset, 0.25-1.0, 160 px, 48 steps", {**_MULTI, "steps": 48}),
        ("M, 64 steps", {**_MULTI, "steps": 64}),
        ("M, 32 steps", {**_MULTI, "steps": 32}),
        ("M, anneal 1.0->0.25", {**_MULTI, "steps": 48, "crop_min": 0.2, "crop_anneal": (1.0, 0.25)}),
        ("M, lr cosine to 0.1", {**_MULTI, "steps": 48, "lr_end": 0.1}),
        ("M, 6 crops, 32 steps", {**_MULTI, "steps": 32, "crops": 6}),
        ("M, 128 px, 64 steps", {**_MULTI, "steps": 64, "input_scale": 0.58}),
        ("M, 0.20-0.60", {**_MULTI, "steps": 48, "crop_min": 0.2, "crop_max": 0.6}),
        ("M, 0.20-0.60, canvas 384 (the new cpu preset)",
         {**_MULTI, "steps": 48, "crop_min": 0.2, "crop_max": 0.6, "canvas": 384}),
        ("M, 0.20-0.60, canvas 512", {**_MULTI, "steps": 48, "crop_min": 0.2, "crop_max": 0.6, "canvas": 512}),
        ("M, 0.15-0.50, canvas 384", {**_MULTI, "steps": 48, "crop_min": 0.15, "crop_max": 0.5, "canvas": 384}),
        ("M, 0.15-0.50", {**_MULTI, "steps": 48, "crop_min": 0.15, "crop_max": 0.5}),
        ("M, 0.20-0.60, 192 px", {**_MULTI, "steps": 48, "crop_min": 0.2, "crop_max": 0.6, "input_scale": 0.86}),
    ),
    2: (
        ("before: v1 cpu (cost 256)", {}),
        ("N: the cpu preset (99)", _N),
        ("N, 6 crops, 32 steps (99)", {**_N, "crops": 6, "steps": 32}),
        ("N, 128 px, 6 crops (97)", {**_N, "input_scale": 0.58, "crops": 6}),
        ("N, 128 px, 12 crops, 32 steps (129)", {**_N, "input_scale": 0.58, "crops": 12, "steps": 32}),
        ("N, 128 px, 8 crops (129)", {**_N, "input_scale": 0.58, "crops": 8}),
        ("N, 0.15-0.50 (99)", {**_N, "crop_min": 0.15, "crop_max": 0.5}),
        ("N, 0.15-0.60 (99)", {**_N, "crop_min": 0.15}),
        ("N, lr cosine to 0.1 (99)", {**_N, "lr_end": 0.1}),
        ("N, lr 1.5 cosine to 0.1 (99)", {**_N, "lr": 1.5, "lr_end": 0.1}),
        ("N, noise 0.1 (99)", {**_N, "noise": 0.1}),
        ("N, 8 crops (199)", {**_N, "crops": 8}),
        ("N, 8 crops, 96 steps (398)", {**_N, "crops": 8, "steps": 96}),
        ("N, 8 crops, 96 steps, 224 px (768)", {**_N, "crops": 8, "steps": 96, "input_scale": 1.0}),
        ("N, 16 crops, 128 steps, 224 px, canvas 512 (2048)",
         {**_N, "crops": 16, "steps": 128, "input_scale": 1.0, "canvas": 512}),
    ),
    # Round 3 looks for a picture that its own model reads as the class (views of the whole canvas
    # beside the crops) and for small crops that hold it, chosen on the tuning list and reported on
    # the held-out one. Every view is one forward: the cost counts crops + whole views.
    3: (
        ("N: round 2's cpu preset (99)", _N),
        ("N, 3 crops + 1 whole view (99)", {**_N, "crops": 3, "whole_views": 1}),
        ("N, 4 crops + 1 whole view (124) = `cpu`", {**_N, "whole_views": 1}),
        ("N, 3 crops of 0.15-0.50 + 1 whole view (99)",
         {**_N, "crops": 3, "whole_views": 1, "crop_min": 0.15, "crop_max": 0.5}),
        ("N, 3 crops + 1 whole view, 224 px, 24 steps (96)",
         {**_N, "crops": 3, "whole_views": 1, "input_scale": 1.0, "steps": 24}),
        ("N, 7 crops + 1 whole view, 96 steps, 224 px (768): round 3's `cpu-best`",
         {**_N, "crops": 7, "steps": 96, "input_scale": 1.0, "whole_views": 1}),
    ),
    # Round 4 prices the held-out goals below round 3's 768: which of steps, crops and the read side
    # buys small crops that hold the class.
    4: (
        ("N, 4 crops + 1 whole view (124) = `cpu`", {**_N, "whole_views": 1}),
        ("N, 7 crops + 1 whole view, 48 steps, 224 px (384)",
         {**_N, "crops": 7, "whole_views": 1, "input_scale": 1.0}),
        ("N, 7 crops + 1 whole view, 96 steps (398)", {**_N, "crops": 7, "whole_views": 1, "steps": 96}),
        ("N, 5 crops + 1 whole view, 128 steps (398)", {**_N, "crops": 5, "whole_views": 1, "steps": 128}),
        ("N, 7 crops + 1 whole view, 128 steps (531) = `cpu-best`",
         {**_N, "crops": 7, "whole_views": 1, "steps": 128}),
        ("N, 7 crops + 1 whole view, 96 steps, 224 px (768): round 3's `cpu-best`",
         {**_N, "crops": 7, "steps": 96, "input_scale": 1.0, "whole_views": 1}),
    ),
    # Round 6 asks whether anything at no more than 2x the cost of `cpu` meets the held-out goals on the
    # per-picture judging protocol (nothing did: `cpu-best` became the CPU default).
    6: (
        ("N, 4 crops + 1 whole view (124) = `cpu`", {**_N, "whole_views": 1}),
        ("N, 4 crops + 1 whole view, 96 steps (249)", {**_N, "whole_views": 1, "steps": 96}),
        ("N, 5 crops + 1 whole view, 80 steps (249)", {**_N, "crops": 5, "whole_views": 1, "steps": 80}),
        ("N, 6 crops + 1 whole view, 64 steps (232)", {**_N, "crops": 6, "whole_views": 1, "steps": 64}),
        ("N, 4 crops + 1 whole view, 96 steps, lr cosine to 0.1 (249)",
         {**_N, "whole_views": 1, "steps": 96, "lr_end": 0.1}),
        ("N, 7 crops + 1 whole view, 128 steps (531) = `cpu-best`",
         {**_N, "crops": 7, "whole_views": 1, "steps": 128}),
    ),
}
SEARCH = SEARCH_ROUNDS[max(SEARCH_ROUNDS)]  # what `atlas bench --only search,cost` runs


def search_configs() -> list[tuple[str, str, dict, dict, None]]:
    """(label, preset, overrides, render options, class limit) of each searched config, as `quality_configs`."""
    return [(label, "cpu", CPU_BEFORE | overrides, {}, None) for label, overrides in SEARCH]
