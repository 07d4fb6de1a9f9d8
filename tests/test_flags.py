"""Command-line flags: one table per command, bounds checked at parse time, given values never
replaced by defaults, and the merge over the config."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from atlas import flags
from atlas.cli import main
from atlas.commands import concepts as concepts_command
from atlas.commands import render as render_command
from atlas.config import Config, load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("argv", "message"), [
    (["render", "--canvas", "100000"], "argument --canvas: must be an integer from 16 to 4096, got '100000'"),
    (["render", "--canvas", "8"], "argument --canvas: must be an integer from 16 to 4096"),
    (["render", "--steps", "0"], "argument --steps: must be an integer from 1 to 100000, got '0'"),
    (["render", "--seeds", "0"], "argument --seeds: must be an integer from 1 to 1000"),
    (["render", "--batch-size", "0"], 'argument --batch-size: must be an integer from 1 to 4096 or "auto"'),
    (["render", "--batch-size", "many"], "argument --batch-size: must be an integer"),
    (["render", "--classes", ""], "argument --classes: '' names no class: write none"),
    (["render", "--classes", " "], "names no class"),
    (["render", "--classes", "3-1"], "argument --classes:"),
    (["concepts", "--concepts", "0"], "argument --concepts: must be an integer from 1 to 100, got '0'"),
    (["concepts", "--concepts", "-1"], "argument --concepts: must be an integer from 1 to 100, got '-1'"),
    (["concepts", "--images-per-class", "0"], "argument --images-per-class: must be an integer from 1 to 100000"),
    (["concepts", "--patch", "0"], "argument --patch: must be an integer from 8 to 4096, got '0'"),
    (["concepts", "--batch-size", "-3"], "argument --batch-size: must be an integer from 1 to 65536, got '-3'"),
    (["concepts", "--group", "0"], "argument --group: must be an integer from 1 to 1000"),
    (["serve", "--port", "99999"], "argument --port: must be an integer from 0 to 65535, got '99999'"),
    (["serve", "--port", "-1"], "argument --port: must be an integer from 0 to 65535"),
    (["build", "--workers", "0"], "argument --workers: must be an integer from 1 to 64, got '0'"),
    (["spectrum", "photos", "-o", "s.npy", "--size", "3"], "argument --size: must be an integer from 16 to 8192"),
    (["eval", "--images", "x", "--crops", "0"], "argument --crops: must be an integer from 1 to 1024"),
    (["bench", "--steps", "0"], "argument --steps: must be an integer from 1 to 100000"),
    (["render", "--preset", "atals"], "--preset: unknown preset 'atals': choose one of horama, xplique, atlas, cpu"),
    (["render", "--classes", ","], "argument --classes: class spec ',' names nothing: write none"),
    (["render", "--cache", ""], "argument --cache: an empty path names no file or folder"),
    (["build", "--out", " "], "argument --out: an empty path names no file or folder"),
    (["render", "--spectrum", ""], "argument --spectrum: an empty path"),
    (["layers", "resnet18", "--labels", ""], "argument --labels: an empty path"),
    (["bench", "--out", ""], "argument --out: an empty path"),
    (["match", "--models", "a", "b"], "the following arguments are required: --images"),
    (["eval"], "the following arguments are required: --images"),
    (["build", "--bogus"], "unrecognized arguments: --bogus"),
    (["bench", "--only", "speed,nosuch"], "argument --only: nosuch is not a benchmark part: name some of speed,"),
])
def test_a_flag_out_of_range_is_one_line_exit_2_naming_the_range(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    command = argv[0]
    assert len(err) == 1 and err[0].startswith(f"atlas {command}: error: ") and message in err[0], err
    assert err[0].endswith(f"(see `atlas {command} --help`)")
    assert list(tmp_path.iterdir()) == []  # refused before anything was read or made


def test_serve_with_a_port_out_of_range_is_one_line_as_a_user_runs_it(tmp_path):
    done = subprocess.run([sys.executable, "-m", "atlas", "serve", "--out", str(tmp_path), "--port", "99999"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "atlas serve: error: argument --port: must be an integer from 0 to 65535, got '99999' "
        "(see `atlas serve --help`)"]


def parse(module, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(argv)


def test_flags_not_given_leave_the_config_and_given_ones_replace_it_even_when_zero_like(tmp_path):
    config = Config()
    assert flags.merge(config, parse(render_command, []), render_command.FLAGS) == config
    args = parse(render_command, ["--model", "test_resnet", "--batch-size", "auto", "--no-bf16", "--cache", "c"])
    merged = flags.merge(Config(batch_size=8, bf16=True), args, render_command.FLAGS)
    # "auto" and False are given values, not "leave it": they replace 8 and True
    assert (merged.model, merged.batch_size, merged.bf16, merged.cache) == ("test_resnet", None, False, Path("c"))
    concepts = flags.merge(config, parse(concepts_command, ["--concepts", "1", "--patch", "8", "--images", "i"]),
                           concepts_command.FLAGS).concepts
    assert (concepts.concepts, concepts.patch, concepts.images, concepts.images_per_class) == (1, 8, Path("i"), 50)


def test_selection_flags_override_the_running_selection():
    args = parse(render_command, ["--steps", "3", "--canvas", "32", "--seeds", "2", "--judges", "--layers"])
    selection = flags.merge_selection(Config().cpu, args, render_command.FLAGS)
    assert selection.preset.overrides_dict() == {"steps": 3, "canvas": 32} and selection.preset.seeds == 2
    assert selection.judges == () and selection.layers == ()
    assert selection.classes == Config().cpu.classes  # not given: the config's
    assert flags.merge_selection(Config().cpu, parse(render_command, []), render_command.FLAGS) == Config().cpu


def test_a_commands_own_default_depends_on_the_device_only_when_the_table_says_so():
    args = parse(concepts_command, [])
    assert flags.value(args, concepts_command.FLAGS, "--batch-size", "cpu") == 32
    assert flags.value(args, concepts_command.FLAGS, "--batch-size", "cuda:0") == 256
    given = parse(concepts_command, ["--batch-size", "5"])
    assert flags.value(given, concepts_command.FLAGS, "--batch-size", "cuda:0") == 5


def test_a_flag_and_the_same_key_in_atlas_toml_are_refused_alike(tmp_path, capsys):
    from atlas.errors import AtlasError

    (tmp_path / "atlas.toml").write_text("[concepts]\nconcepts = 0\n", encoding="utf-8")
    with pytest.raises(AtlasError, match="must be an integer from 1 to 100, got 0"):
        load_config(tmp_path / "atlas.toml")
    assert main(["concepts", "--concepts", "0"]) == 2
    assert "must be an integer from 1 to 100, got '0'" in capsys.readouterr().err


def test_every_help_names_the_default_and_the_range(capsys):
    with pytest.raises(SystemExit):
        main(["concepts", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "concepts per class (default from the config: 10; an integer from 1 to 100)" in out
    assert "patches per forward pass (default 32 on a CPU, 256 on a GPU; an integer from 1 to 65536)" in out
