"""Specs -> job list, deterministic seeds, sharding from flags and launchers' environments."""

from __future__ import annotations

import pytest

from atlas.errors import AtlasError
from atlas.jobs import (
    Shard,
    batches,
    build_jobs,
    parse_layers_arg,
    parse_shard,
    select_shard,
    shard_from_env,
)
from atlas.labels import lookup
from atlas.models import imagenet_classes
from atlas.specs import check_spec, parse_channels, parse_classes

WNIDS = {"n01440764": 0, "n01443537": 1, "n15075141": 999}


def test_class_specs():
    assert parse_classes("all", 10) == list(range(10))
    assert parse_classes("none", 10) == []
    assert parse_classes("0-3", 10) == [0, 1, 2, 3]
    assert parse_classes("7, 1,3-4,1", 10) == [1, 3, 4, 7]
    assert parse_classes("n01440764,n15075141,5", 1000, WNIDS) == [0, 5, 999]
    assert parse_classes("N01443537", 1000, WNIDS) == [1]


def test_a_spec_of_commas_alone_names_nothing_and_a_layer_given_twice_is_refused():
    for spec in (",", " , ,"):
        with pytest.raises(AtlasError, match="names nothing: write none"):
            parse_classes(spec, 10)
        with pytest.raises(AtlasError, match="names nothing"):
            check_spec(spec, "class")
        with pytest.raises(AtlasError, match="layer4 channel spec .* names nothing"):
            parse_channels(spec, "layer4", 8)
    with pytest.raises(AtlasError, match="--layers names blocks.3 twice: give its channels once, joined like"):
        parse_layers_arg(["blocks.3=0-1", "blocks.3=5"])


def test_the_sample_is_the_imagenet_sixteen_or_a_spread_of_any_other_head():
    sixteen = [1, 9, 130, 207, 309, 340, 388, 417, 430, 511, 852, 948, 954, 963, 980, 985]
    assert parse_classes("sample", 1000, lookup(imagenet_classes())) == sixteen
    assert parse_classes(" Sample ", 4, {"daisy": 0, "rose": 1}) == [0, 1, 2, 3]  # every class of a small head
    spread = parse_classes("sample", 100, {})
    assert len(spread) == 16 and spread[0] == 3 and spread[-1] == 96
    assert min(b - a for a, b in zip(spread, spread[1:], strict=False)) >= 6
    assert parse_classes("sample", 1000, {}) == [(2 * i + 1) * 1000 // 32 for i in range(16)]  # no WordNet ids
    assert parse_classes("sample", 0, {}) == []
    check_spec("sample", "class")
    with pytest.raises(AtlasError):
        check_spec("sample", "channel")


def test_class_specs_name_classes_by_their_labels():
    from atlas.labels import class_table, lookup

    names = lookup(class_table(("Apple", "banana split", "cherry", "n01440764", "Apple pie"), 5, "labels"))
    assert parse_classes("apple, BANANA SPLIT,4", 5, names) == [0, 1, 4]
    assert parse_classes("n01440764", 5, names) == [3]
    with pytest.raises(AtlasError, match="unknown class 'kiwi': not a name"):
        parse_classes("kiwi", 5, names)
    shared = {"crane": (134, 517)}  # ImageNet names two classes "crane"
    with pytest.raises(AtlasError, match="'crane' is shared by classes 134, 517: give the index"):
        parse_classes("crane", 1000, shared)
    check_spec("apple, banana split, 3-4", "class")  # a name passes the syntax check; the model resolves it
    with pytest.raises(AtlasError):
        check_spec("3-x", "class")


@pytest.mark.parametrize("spec", ["10", "5-12", "3-1", "x", "1;2", "n99999999", "-3"])
def test_bad_class_specs_are_one_line_errors(spec):
    with pytest.raises(AtlasError) as info:
        parse_classes(spec, 10, WNIDS)
    assert "\n" not in str(info.value)


def test_channel_specs():
    assert parse_channels("all", "l", 4) == [0, 1, 2, 3]
    assert parse_channels("1-2,0", "l", 4) == [0, 1, 2]
    assert parse_channels("top:2", "l", 4, ranking=[3, 0, 2, 1]) == [0, 3]
    with pytest.raises(AtlasError, match="layer l channel 4 is out of range: valid are 0-3"):
        parse_channels("0-4", "l", 4)
    with pytest.raises(AtlasError, match="feeds the classifier"):
        parse_channels("top:2", "l", 4)
    with pytest.raises(AtlasError, match="more channels"):
        parse_channels("top:5", "l", 4, ranking=[0, 1, 2, 3])
    with pytest.raises(AtlasError):
        parse_channels("top:x", "l", 4, ranking=[0, 1, 2, 3])


def test_layers_argument():
    assert parse_layers_arg(["blocks.3=0-31", "conv_head=top:64"]) == (("blocks.3", "0-31"), ("conv_head", "top:64"))
    assert parse_layers_arg([]) == () and parse_layers_arg(["none"]) == ()
    with pytest.raises(AtlasError, match="LAYER=SPEC"):
        parse_layers_arg(["blocks.3"])


def test_job_list_order_and_seeds_do_not_depend_on_order():
    jobs = build_jobs([5, 2], {"layer1": [0, 3]}, seeds=2)
    assert [j.id for j in jobs] == [
        "class:5#0", "class:5#1", "class:2#0", "class:2#1",
        "channel:layer1:0#0", "channel:layer1:0#1", "channel:layer1:3#0", "channel:layer1:3#1",
    ]
    # The same target gets the same seed whatever else is in the list.
    alone = build_jobs([2], {}, seeds=2)
    assert [j.seed for j in alone] == [j.seed for j in jobs if j.objective.id == "class:2"]
    assert len({j.seed for j in jobs}) == len(jobs)
    assert all(0 <= j.seed < 2**31 for j in jobs)


def test_shards_cover_the_list_exactly_once():
    jobs = build_jobs(range(11), {"a": [0, 1, 2]}, seeds=1)
    for count in (1, 2, 3, 5, 20):
        parts = [select_shard(jobs, Shard(i, count)) for i in range(count)]
        flat = [j for p in parts for j in p]
        assert sorted(j.id for j in flat) == sorted(j.id for j in jobs) and len(flat) == len(jobs)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_shard_flag():
    assert parse_shard("1/4") == Shard(1, 4, "--shard")
    for bad in ("4/4", "1", "a/b", "0/0", "-1/2"):
        with pytest.raises(AtlasError):
            parse_shard(bad)


def test_shard_from_launcher_environments():
    assert shard_from_env({}) == Shard()
    assert shard_from_env({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}) == Shard(3, 8, "RANK/WORLD_SIZE")
    slurm = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "3"}
    assert (shard_from_env(slurm).index, shard_from_env(slurm).count) == (2, 4)
    stepped = {"SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0",
               "SLURM_ARRAY_TASK_STEP": "2"}
    assert shard_from_env(stepped).index == 3
    with pytest.raises(AtlasError):
        shard_from_env({"RANK": "8", "WORLD_SIZE": "8"})
    with pytest.raises(AtlasError):
        shard_from_env({"RANK": "x", "WORLD_SIZE": "8"})


def test_batches_group_by_layer_and_respect_the_size():
    jobs = build_jobs([0, 1, 2], {"a": [0, 1, 2, 3, 4], "b": [0]}, seeds=1)
    chunks = batches(jobs, 2)
    assert [[j.id for j in c] for c in chunks] == [
        ["class:0#0", "class:1#0"], ["class:2#0"],
        ["channel:a:0#0", "channel:a:1#0"], ["channel:a:2#0", "channel:a:3#0"], ["channel:a:4#0"],
        ["channel:b:0#0"],
    ]
