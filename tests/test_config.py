"""atlas.toml -> frozen settings: defaults, overrides, and one-line errors naming key and file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from atlas.config import Config, PresetChoice, Selection, load_config, override, parse_batch_size
from atlas.errors import AtlasError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "atlas.toml"
    path.write_text(text)
    return path


def test_repository_file_matches_the_built_in_defaults():
    loaded = load_config(ROOT / "atlas.toml")
    assert loaded.cache == ROOT / "cache" and loaded.site == ROOT / "site"
    assert dataclasses.replace(loaded, source=None, cache=Path("cache"), site=Path("site")) == Config()
    assert loaded.model == "efficientnet_lite0"
    assert loaded.full.judges == ("efficientnet_lite1", "efficientnet_lite2")
    assert loaded.cpu.preset.name == "cpu-best"


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().model = "resnet50"  # type: ignore[misc]


def test_full_file_is_parsed_and_paths_resolve_against_its_folder(tmp_path):
    path = write(tmp_path, """
model = "test_resnet"
random_weights = true
classes = [1, "n01440764", "5-7", "goldfish"]
judges = []
cache = "out/cache"
labels = "labels/names.txt"
dataset = "Pond"
batch_size = 3
[preset]
name = "cpu"
seeds = 2
steps = 5
canvas = 32
[layers]
layer1 = "0-3"
"layer4" = "top:2"
[scoring]
crops = 4
seed = 7
[cpu]
classes = "0"
[cpu.layers]
""")
    config = load_config(path)
    assert config.source == path and config.random_weights
    assert config.cache == tmp_path / "out" / "cache"
    assert config.batch_size == 3
    assert config.full.classes == "1,n01440764,5-7,goldfish"
    assert config.labels == tmp_path / "labels" / "names.txt" and config.dataset == "Pond"
    assert config.full.layers == (("layer1", "0-3"), ("layer4", "top:2"))
    assert config.full.preset == PresetChoice("cpu", 2, (("canvas", 32), ("steps", 5)))
    assert config.full.judges == ()
    assert config.scoring.crops == 4 and config.scoring.seed == 7
    assert config.cpu.classes == "0" and config.cpu.layers == ()
    assert config.cpu.judges == ()  # the file's judges hold for the CPU subset unless [cpu] names its own
    assert (config.cpu.key("layers"), config.full.key("layers")) == ("cpu.layers", "layers")


def test_the_cpu_subset_keeps_its_own_judges_and_the_built_in_ones_by_default(tmp_path):
    own = load_config(write(tmp_path, 'judges = []\n[cpu]\njudges = ["resnet50"]\n'))
    assert own.full.judges == () and own.cpu.judges == ("resnet50",)
    assert load_config(write(tmp_path, '[cpu]\nclasses = "0"\n')).cpu.judges == Config().cpu.judges
    assert Config().cpu.classes == "sample"


def test_dotted_layer_names_written_without_quotes_still_work(tmp_path):
    config = load_config(write(tmp_path, '[layers]\nblocks.3 = "0-31"\nconv_head = "top:64"\n'))
    assert config.full.layers == (("blocks.3", "0-31"), ("conv_head", "top:64"))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('modle = "x"', "modle"),
        ('[preset]\nstepz = 3', "preset.stepz"),
        ('[cpu]\nlayerz = {}', "cpu.layerz"),
        ('[scoring]\ncrops = 0', "scoring.crops"),
        ('batch_size = "lots"', "batch_size"),
        ('batch_size = 0', "batch_size"),
        ('judges = "efficientnet_lite1"', "judges"),
        ('judges = [{model = "efficientnet_lite1"}]', "judges"),
        ('judges = [{model = "efficientnet_lite1", checkpoint = "a.pth", weights = "b"}]', "judges[].weights"),
        ('labels = ""', "labels"),
        ('param = "pixels"', "param"),
        ('[preset]\nseeds = 0', "preset.seeds"),
        ('[layers]\nlayer1 = 3.5', "layers.layer1"),
        ('random_weights = "yes"', "random_weights"),
        ('classes = true', "classes"),
        # the full selection's preset is checked even where only [cpu] will run: a bad [preset] must not wait for a GPU
        ('[preset]\nsteps = 0', "preset.steps"),
        ('[preset]\nname = "fast"', "preset.name"),
        ('[preset]\ncrop_min = "small"', "preset.crop_min"),
        ('[preset]\ncrop_min = 0.5\ncrop_max = 0.3', "preset"),
        ('[cpu.preset]\ncanvas = 8', "cpu.preset.canvas"),
        ('classes = "0-x"', "classes"),
        ('[cpu]\nclasses = "9-3"', "cpu.classes"),
        ('[layers]\n"blocks.3" = "top:0"', "layers.blocks.3"),
        ('[cpu.layers]\nlayer1 = "1-two"', "cpu.layers.layer1"),
    ],
)
def test_unknown_key_or_bad_value_is_one_line_naming_key_and_file(tmp_path, text, key):
    path = write(tmp_path, text + "\n")
    with pytest.raises(AtlasError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert f"'{key}'" in message and str(path) in message


def test_a_config_that_is_not_utf8_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "atlas.toml"
    path.write_bytes('model = "efficientnet_lite0" # caf\u00e9\n'.encode("latin-1"))
    with pytest.raises(AtlasError, match="not UTF-8 text.*save it as UTF-8") as info:
        load_config(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_valid_specs_and_presets_still_load(tmp_path):
    text = ('classes = "n01440764, 1-3,7"\n[preset]\nname = "xplique"\nsteps = 8\ncrop_anneal = [0.5, 0.1]\n'
            '[layers]\nconv_head = "top:64"\n"blocks.3" = "none"\n[cpu.layers]\nlayer1 = "all"\n')
    config = load_config(write(tmp_path, text))
    assert config.full.preset.overrides_dict() == {"steps": 8, "crop_anneal": (0.5, 0.1)}
    assert config.full.classes == "n01440764, 1-3,7"


def test_bad_toml_and_missing_file_are_errors(tmp_path):
    with pytest.raises(AtlasError, match="not valid TOML"):
        load_config(write(tmp_path, "model = \n"))
    with pytest.raises(AtlasError, match="--config"):
        load_config(tmp_path / "nope.toml")


def test_no_file_in_the_working_directory_gives_the_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config() == Config()


def test_override_replaces_single_keys_and_a_new_preset_drops_old_overrides():
    base = Selection("all", (("layer1", "all"),), PresetChoice("atlas", 1, (("canvas", 256),)), ("j",))
    same = override(base)
    assert same == base
    changed = override(base, classes="0-9", steps=4)
    assert changed.classes == "0-9" and changed.layers == base.layers and changed.judges == ("j",)
    assert changed.preset.overrides_dict() == {"canvas": 256, "steps": 4}
    other = override(base, preset="cpu", canvas=32, seeds=3)
    assert other.preset == PresetChoice("cpu", 3, (("canvas", 32),))
    with pytest.raises(AtlasError):
        override(base, seeds=0)


def test_batch_size_values():
    assert parse_batch_size("auto") is None
    assert parse_batch_size("8") == 8
    for bad in ("0", "-1", "x", True):
        with pytest.raises(AtlasError):
            parse_batch_size(bad)


def test_judging_crops_default_by_device_unless_the_config_sets_them():
    from atlas.config import CPU_CROPS, GPU_CROPS, Scoring

    assert Config().scoring.crops is None and GPU_CROPS == 16
    assert Scoring().crops_on("cpu") == CPU_CROPS and Scoring().crops_on("cuda:0") == GPU_CROPS
    assert Scoring(crops=5).crops_on("cpu") == Scoring(crops=5).crops_on("cuda:1") == 5


@pytest.mark.parametrize(("text", "message"), [
    ("[cpu.preset]\nnoise = nan\n", "noise must be a finite number, not nan"),
    ("[preset]\nlr = inf\n", "lr must be a finite number, not inf"),
    ("[preset]\ncrop_max = true\n", "crop_max must be a finite number, not True"),
])
def test_a_preset_number_that_is_not_finite_is_one_line_at_load(tmp_path, text, message):
    with pytest.raises(AtlasError, match=message) as caught:
        load_config(write(tmp_path, text))
    assert "\n" not in str(caught.value)


def test_a_layer_written_twice_in_a_table_is_one_line(tmp_path):
    with pytest.raises(AtlasError, match="layers.blocks.3.* is written twice"):
        load_config(write(tmp_path, '[layers]\n"blocks.3" = "0-1"\nblocks = { 3 = "5" }\n'))
