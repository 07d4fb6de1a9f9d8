"""A cache is untrusted input: payloads planted in real caches made here, then build, render's plan,
serve and publish. Nothing outside an entry is read into the site, nothing outside `--out` is
written, the good entries are still built, and every message is one line."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atlas.cli import main
from atlas.concepts import store
from atlas.concepts.formats import BANK_KIND, loads_concepts
from atlas.concepts.images import load_squares, read_rgb
from atlas.errors import AtlasError
from atlas.evaluate import real_features
from atlas.image_limits import MAX_PIXELS
from atlas.record import InvalidRecord
from atlas.site.build import build
from atlas.site.cache_reader import read_cache
from atlas.site.publish import publish
from atlas.site.serve import make_server
from atlas.spectrum import decorrelated_image
from tests.concept_site_support import concept_cache
from tests.site_support import MODEL, copy_cache, records, sample_site

SECRET = "SECRET-7f3a9c-do-not-publish"


def tree(root: Path, skip: Path | None = None) -> dict[str, bytes | str]:
    """Every file and link under `root` (a link by its target), less the folder `skip`."""
    found: dict[str, bytes | str] = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if skip is None or Path(folder, d) != skip]
        for name in [*names, *(d for d in dirs if Path(folder, d).is_symlink())]:
            path = Path(folder, name)
            found[str(path.relative_to(root))] = os.readlink(path) if path.is_symlink() else path.read_bytes()
    return found


def site_text(out: Path) -> bytes:
    return b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file() and not p.is_symlink())


def bank_json(cache: Path, class_index: int) -> Path:
    weights = json.loads((cache / "models" / f"{MODEL}.json").read_text())["weights_sha256"]
    bank = store.current_banks(cache, MODEL, weights)[class_index]
    return store.entry_folder(cache, bank) / store.BANK


def examples_json(cache: Path) -> Path:
    return next(cache.glob("examples/*/*/examples.json"))


def rewrite(path: Path, change) -> None:  # noqa: ANN001 - a function of the JSON data
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def strict_json(raw: bytes) -> object:
    def refuse(name: str) -> None:
        raise ValueError(f"bare {name} in JSON")
    return json.loads(raw, parse_constant=refuse)


@pytest.fixture(scope="module")
def concepts(tmp_path_factory) -> Path:
    return concept_cache(tmp_path_factory.mktemp("hostile") / "cache")


@pytest.fixture()
def project(tmp_path: Path, concepts: Path) -> Path:
    """A project folder holding a copy of the concept cache and a secret beside it."""
    root = tmp_path / "project"
    shutil.copytree(concepts, root / "cache")
    (root / "id_rsa").write_text(SECRET)
    return root


def test_crop_names_that_are_paths_or_links_are_corrupt_entries(project):
    cache, out = project / "cache", project / "site"
    secret = project / "id_rsa"
    rewrite(bank_json(cache, 1), lambda d: d["concepts"][0]["crops"][0].update(image=str(secret)))  # H1
    # H2: a name that climbs out of the entry; the file it names exists, as an attacker would arrange
    target = bank_json(cache, 967).parent / "../../../../payload/evil.sh"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("#!/bin/sh\necho owned\n")
    rewrite(bank_json(cache, 967), lambda d: d["concepts"][0]["crops"][0].update(image="../../../../payload/evil.sh"))
    # a plain name that is a link to the secret
    examples = examples_json(cache)
    name = json.loads(examples.read_text())["channels"][0]["examples"][0]["image"]
    (examples.parent / name).unlink()
    (examples.parent / name).symlink_to(secret)
    before = tree(project.parent, skip=out)

    report = build(cache, out)

    assert SECRET.encode() not in site_text(out) and b"owned" not in site_text(out)
    assert tree(project.parent, skip=out) == before  # nothing written outside --out
    assert not list(out.rglob("*.sh"))
    assert len(report.problems) == 3 and all("\n" not in p for p in report.problems)
    assert {"not a plain name" in p for p in report.problems} == {True, False}
    assert any("symbolic link" in p for p in report.problems)
    assert report.skipped["invalid"] == 3
    assert (out / MODEL / "classes/0607.html").is_file() and report.check is not None and not report.check.problems
    assert "Concepts" not in (out / MODEL / "classes/0967.html").read_text()  # its bank is skipped, the page is built


def test_bad_values_are_skipped_with_their_entry_and_never_written_as_bare_nan(tmp_path, capsys):
    cache = copy_cache(tmp_path / "cache")
    planted = {}
    for (folder, data), change in zip(records(cache)[:5], [
        lambda d: d["objective"].update(class_index=5000),
        lambda d: d["objective"].update(class_index=-1),
        lambda d: d.update(objective_value=float("nan")),
        lambda d: d["preset"].update(lr=float("inf")),
        lambda d: d["timing"].update(seconds="fast"),
    ], strict=True):
        change(data)
        (folder / "record.json").write_text(json.dumps(data))  # json.dumps writes NaN and Infinity bare
        planted[folder.name] = data["objective"]["id"]
    out = tmp_path / "site"
    assert main(["build", "--cache", str(cache), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "skipped invalid cache entry" in line]
    assert len(warnings) == 5 and {key for key in planted if any(key in line for line in warnings)} == set(planted)
    assert "5 invalid" in captured.out and "site ready" in captured.out
    for path in out.rglob("*.json"):
        strict_json(path.read_bytes())
    assert b"NaN" not in site_text(out) and b"Infinity" not in site_text(out)


@pytest.mark.parametrize("damage", ["not base64", "nan", "short"])
def test_a_bad_vector_skips_its_bank_and_names_it(project, damage):
    cache = project / "cache"
    path = bank_json(cache, 967)
    vector = {"not base64": "!!not base64!!", "nan": store.encode_vector(np.array([1.0, np.nan], np.float32)),
              "short": store.encode_vector(np.ones(3, np.float32))}[damage]
    rewrite(path, lambda d: d["concepts"][2].update(vector=vector))
    if damage == "short":  # a length that fits no layer: the site checks it against the model's layers
        rewrite(path, lambda d: d.update(layer="conv_head"))
    contents = read_cache(cache)
    assert 967 not in contents.banks and 1 in contents.banks
    assert len(contents.problems) == 1 and str(path.parent) in contents.problems[0]
    report = build(cache, project / "site")
    assert report.problems == list(contents.problems)


def test_render_plans_around_a_bank_whose_vectors_do_not_fit_and_names_it(tmp_path):
    from atlas.config import load_config
    from atlas.models import load_model
    from atlas.plan import concept_targets
    from tests.test_render_cli import cli_config

    loaded = load_model("test_resnet", random_weights=True)
    config = load_config(cli_config(tmp_path))
    good = store.encode_vector(np.ones(loaded.module.layer4[-1].conv2.out_channels, np.float32))
    paths = {}
    for index, vector in ((0, good), (1, store.encode_vector(np.ones(3, np.float32)))):
        data = json.loads(bank_json_for(tmp_path, loaded, config.cache, index, vector).read_text())
        paths[index] = data["key"]
    undecodable = bank_json_for(tmp_path, loaded, config.cache, 2, good)
    rewrite(undecodable, lambda d: d["concepts"][0].update(vector="!!not base64!!"))
    problems: list[str] = []
    targets = concept_targets(config, loaded, [0, 1, 2], problems)
    assert [index for index, _ in targets] == [0]
    assert len(problems) == 2 and all("\n" not in p for p in problems)
    assert any(paths[1] in p and "has 3 entries" in p for p in problems)
    assert any(str(undecodable.parent) in p and "not base64" in p for p in problems)


def bank_json_for(tmp_path: Path, loaded, cache: Path, index: int, vector: str) -> Path:  # noqa: ANN001
    from tests.test_concepts_store import make_bank

    bank, crops = make_bank(key=BANK_KIND.key({"class": index}))
    concept = bank.concepts[0]
    bank = type(bank)(**{**bank.__dict__, "model": loaded.name, "weights_sha256": loaded.weights_sha256,
                         "class_index": index, "layer": "layer4",
                         "concepts": (type(concept)(**{**concept.__dict__, "vector": vector}),)})
    return store.write_bank(cache, bank, crops)


@pytest.mark.parametrize("odd", [".git", "x y.webp", "a#b.webp", "0123456789abcdef.png"])
def test_a_crop_name_atlas_never_writes_skips_its_bank_or_example_set(project, odd):
    """Plain names still: but the site makes a URL, a file under crops/ and a page's crop list of them."""
    cache, out = project / "cache", project / "site"

    def renamed(data):  # the file, its listing and every use of it renamed alike: only the name is odd
        crops = [c for concept in data["concepts"] for c in concept["crops"]] if "concepts" in data else \
            [c for channel in data["channels"] for c in channel["examples"]]
        name = crops[0]["image"]
        (folder / name).rename(folder / odd)
        data["files"][odd] = data["files"].pop(name)
        for crop in crops:
            crop["image"] = odd if crop["image"] == name else crop["image"]

    for path in (bank_json(cache, 967), examples_json(cache)):
        folder = path.parent
        rewrite(path, renamed)
    report = build(cache, out)
    assert len(report.problems) == 2 and all(f"crop {odd!r} is not a name `atlas concepts` writes" in p
                                             for p in report.problems)
    assert not (out / "crops" / odd).exists() and report.check is not None and not report.check.problems
    assert "Concepts" not in (out / MODEL / "classes/0967.html").read_text()


def test_a_crop_that_does_not_match_its_sha256_skips_its_bank_and_is_not_copied(project):
    cache, out = project / "cache", project / "site"
    folder = bank_json(cache, 967).parent
    crop = next(folder.glob("*.webp"))
    data = bytearray(crop.read_bytes())
    data[-1] ^= 0xFF  # same size: only the hash can tell
    crop.write_bytes(bytes(data))
    report = build(cache, out)
    assert any(str(folder) in p and "sha256" in p for p in report.problems)
    assert not (out / "crops" / crop.name).exists()
    assert "Concepts" not in (out / MODEL / "classes/0967.html").read_text()
    assert report.check and not report.check.problems
    goldfish = (out / MODEL / "classes/0001.html").read_text()
    assert "Concepts" in goldfish  # the other bank is shown as before, without links to the one skipped
    assert "0967.html#concept-" not in goldfish and '<p class="c-links"><b>Similar concepts</b>' not in goldfish


def test_a_bank_of_the_old_format_reads_as_needing_a_rebuild(project):
    cache = project / "cache"
    path = bank_json(cache, 1)
    rewrite(path, lambda d: (d.pop("files"), d.update(format=1)))
    problems = read_cache(cache).problems
    assert len(problems) == 1 and "format 1" in problems[0] and "run `atlas concepts` again" in problems[0]


def test_a_name_with_a_separator_is_not_a_crop(tmp_path):
    bank, crops = __import__("tests.test_concepts_store", fromlist=["make_bank"]).make_bank()
    path = store.write_bank(tmp_path, bank, crops)
    for name in ("/etc/passwd", "../x.webp", "a/b.webp", "..", "", "a\\b.webp", "x\x00.webp"):
        raw = path.read_text().replace(bank.concepts[0].crops[0].image, name.replace("\\", "\\\\")
                                       .replace("\x00", "\\u0000"))
        with pytest.raises(InvalidRecord, match="crop image"):
            loads_concepts(type(bank), raw.encode())


def test_the_build_refuses_to_write_through_a_link_in_the_site_and_leaves_it(tmp_path):
    cache = copy_cache(tmp_path / "cache")
    out = tmp_path / "site"
    build(cache, out)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "0000.html").write_text("the user's own file")
    shutil.rmtree(out / MODEL / "classes")
    (out / MODEL / "classes").symlink_to(elsewhere, target_is_directory=True)
    before = tree(tmp_path)
    with pytest.raises(AtlasError, match="classes is a symlink") as err:
        build(cache, out)
    assert "\n" not in str(err.value) and "nothing was written" in str(err.value)
    assert tree(tmp_path) == before  # the link, the user's file and the whole site as they were


def test_a_model_file_with_nan_is_a_one_line_error(tmp_path, capsys):
    cache = copy_cache(tmp_path / "cache")
    path = cache / "models" / f"{MODEL}.json"
    rewrite(path, lambda d: d["nearest_classes"]["0"][0].__setitem__(1, float("nan")))
    assert main(["build", "--cache", str(cache), "--out", str(tmp_path / "site")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a finite number" in err[0] and "atlas render" in err[0]
    assert not (tmp_path / "site").exists()


@functools.cache
def tiny_model():  # noqa: ANN201 - a LoadedModel, imported only where torch is wanted
    from atlas.models import load_model

    return load_model("test_resnet", random_weights=True)


@pytest.mark.parametrize("size", [(1, 60000), (60000, 1), (6000, 5000)])
def test_images_past_the_bound_are_skipped_before_decoding(tmp_path, size):
    path = tmp_path / "strip.png"
    Image.new("1", size).save(path)  # a few kilobytes on disk whatever it decodes to
    assert size[0] * size[1] > MAX_PIXELS or max(size) / min(size) > 10
    assert read_rgb(path) is None
    with pytest.raises(AtlasError, match="is not read") as err:
        decorrelated_image(path, 64)
    assert "\n" not in str(err.value)
    with pytest.raises(AtlasError, match="is not read") as err:
        real_features(tiny_model(), [path])
    assert "\n" not in str(err.value)
    Image.new("RGB", (300, 200)).save(tmp_path / "photo.png")
    squares = load_squares(tmp_path, ["strip.png", "photo.png"], 32)  # how `atlas concepts` reads a class
    assert squares.skipped == ("strip.png",) and squares.files == ("photo.png",) and squares.pixels.shape[0] == 1


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return sample_site(tmp_path_factory)


def test_serve_answers_malformed_paths_without_a_traceback(site, capfd):
    server = make_server(site, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    codes = {}
    try:
        for path in ("/%00", "/classes/%00.html", "/%ff%fe.html", "/%ed%a0%80", "/" + "a" * 5000, "/" + "b/" * 300):
            try:
                with urllib.request.urlopen(base + path, timeout=10) as r:
                    codes[path] = r.status
            except urllib.error.HTTPError as exc:
                codes[path] = exc.code
    finally:
        server.shutdown()
        server.server_close()
    assert all(code in (400, 404, 414) for code in codes.values()), codes
    assert "Traceback" not in capfd.readouterr().err


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def make_project(tmp_path: Path, commit: bool = True) -> Path:
    work = tmp_path / "project"
    work.mkdir()
    git("init", "--quiet", cwd=work)
    (work / "atlas.toml").write_text('site = "site"\n')
    if commit:
        git("add", "atlas.toml", cwd=work)
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "start", cwd=work)
    return work


@pytest.mark.parametrize("branch", ["refs/heads/main", "HEAD", "-f", "a..b", "x@{-1}", "has space"])
def test_publish_takes_a_branch_name_only(site, tmp_path, branch):
    origin = tmp_path / "origin.git"
    git("init", "--quiet", "--bare", str(origin))
    with pytest.raises(AtlasError, match="is not a branch name") as err:
        publish(site, str(origin), branch=branch, project=make_project(tmp_path))
    assert "\n" not in str(err.value)
    assert git("for-each-ref", cwd=origin) == ""  # nothing pushed, no refs/heads/refs/heads/main


def test_publish_never_passes_a_remote_as_an_option(site, tmp_path):
    work = make_project(tmp_path)
    proof = tmp_path / "ran"
    with pytest.raises(AtlasError, match="starts with '-'"):
        publish(site, f"--upload-pack=touch {proof}", project=work)
    git("config", "remote.origin.url", f"--upload-pack=touch {proof}", cwd=work)
    with pytest.raises(AtlasError, match="starts with '-'"):
        publish(site, None, project=work)
    assert not proof.exists()


def test_publish_from_a_repository_without_commits_is_one_line(site, tmp_path, capsys):
    work = make_project(tmp_path, commit=False)
    git("remote", "add", "origin", str(tmp_path / "origin.git"), cwd=work)
    assert main(["publish", "--config", str(work / "atlas.toml"), "--out", str(site)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no commits yet" in err[0], err


def test_publish_resolves_a_relative_origin_against_the_project(site, tmp_path, monkeypatch, capsys):
    work = make_project(tmp_path)
    git("init", "--quiet", "--bare", str(tmp_path / "origin.git"))
    git("remote", "add", "origin", "../origin.git", cwd=work)
    elsewhere = tmp_path / "elsewhere" / "deeper"
    elsewhere.mkdir(parents=True)
    (elsewhere.parent / "origin.git").mkdir()  # what the working directory would wrongly resolve to
    monkeypatch.chdir(elsewhere)
    assert main(["publish", "--config", str(work / "atlas.toml"), "--out", str(site)]) == 0
    assert git("rev-parse", "--verify", "gh-pages", cwd=tmp_path / "origin.git")
    assert not any((elsewhere.parent / "origin.git").iterdir())
    assert str(tmp_path / "origin.git") in capsys.readouterr().out


def test_a_render_rejected_for_an_unknown_judge_leaves_no_model_file(tmp_path, capsys):
    from tests.config_support import write_config

    config = write_config(tmp_path, "test_resnet", classes="0", judges=["no_such_judge"], batch_size=1,
                          scoring={"crops": 2}, random_weights=True)
    assert main(["render", "--config", str(config), "--full", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no_such_judge" in err[0], err
    assert not list((tmp_path / "cache").rglob("*.json"))


def test_entry_folders_and_files_that_are_links_are_not_read(tmp_path):
    cache = copy_cache(tmp_path / "cache")
    (folder, data), (other, _) = records(cache)[:2]
    outside = tmp_path / "outside"
    shutil.move(folder, outside)  # the whole entry lives elsewhere; the cache holds a link to it
    folder.symlink_to(outside, target_is_directory=True)
    secret = tmp_path / "secret.png"
    shutil.move(other / "image.png", secret)  # a file of an entry replaced by a link, sizes and hash still right
    (other / "image.png").symlink_to(secret)
    out = tmp_path / "site"
    report = build(cache, out)
    assert len(report.problems) == 2 and all("\n" not in p for p in report.problems)
    assert any("folder is a symbolic link" in p for p in report.problems)
    assert any("image.png is a symbolic link" in p for p in report.problems)
    shown = site_text(out)
    assert secret.read_bytes() not in shown and (outside / "image.png").read_bytes() not in shown


def test_an_example_crop_that_is_no_image_or_lacks_its_class_skips_its_set(project):
    import hashlib

    cache, out = project / "cache", project / "site"
    path = examples_json(cache)
    data = json.loads(path.read_text())
    name = data["channels"][0]["examples"][0]["image"]
    garbage = b"not an image at all"
    (path.parent / name).write_bytes(garbage)  # with its size and hash listed: only decoding can tell
    data["files"][name] = {"bytes": len(garbage), "sha256": hashlib.sha256(garbage).hexdigest()}
    path.write_text(json.dumps(data))
    report = build(cache, out)
    assert len(report.problems) == 1 and str(path.parent) in report.problems[0] and "not a readable image" \
        in report.problems[0]
    shown = site_text(out)
    assert not any(e["image"].encode() in shown for c in data["channels"] for e in c["examples"])
    data["channels"][0]["classes"] = data["channels"][0]["classes"][:-1]
    path.write_text(json.dumps(data))
    assert any("source classes" in p for p in read_cache(cache).problems)


@pytest.mark.parametrize("channel", [-3, 99999])
def test_an_example_set_of_a_channel_the_layer_lacks_is_skipped_not_given_a_page(project, channel):
    cache, out = project / "cache", project / "site"
    path = examples_json(cache)
    rewrite(path, lambda d: d["channels"][0].update(channel=channel))
    report = build(cache, out)
    assert len(report.problems) == 1 and str(path.parent) in report.problems[0]
    assert f"channel {channel} is outside layer conv_head's channels" in report.problems[0]
    assert not list((out / MODEL / "layers" / "conv_head").glob("c-*.html"))
    assert not (out / MODEL / "layers" / "conv_head" / "c99999.html").exists()
    assert "Dataset examples" not in (out / MODEL / "layers" / "conv_head" / "c0042.html").read_text()


def test_a_bad_source_thumbnail_is_reported_and_its_example_shown_without_it(project):
    import hashlib

    cache, out = project / "cache", project / "site"
    path = examples_json(cache)
    data = json.loads(path.read_text())
    names = [e["thumbnail"] for e in data["channels"][0]["examples"][:5]]
    folder = path.parent
    tampered = bytearray((folder / names[0]).read_bytes())
    tampered[-1] ^= 0xFF  # same size: only the hash can tell
    (folder / names[0]).write_bytes(bytes(tampered))
    (folder / names[1]).unlink()
    (folder / names[2]).unlink()
    (folder / names[2]).symlink_to(project / "id_rsa")
    garbage = b"not an image at all"
    (folder / names[3]).write_bytes(garbage)  # with its size and hash listed: only decoding can tell
    data["files"][names[3]] = {"bytes": len(garbage), "sha256": hashlib.sha256(garbage).hexdigest()}
    del data["files"][names[4]]
    path.write_text(json.dumps(data))

    with pytest.warns(UserWarning) as caught:
        report = build(cache, out)

    said = [str(w.message) for w in caught]
    assert len(said) == 5 and all(str(folder) in line and "\n" not in line for line in said)
    assert all("shown without it" in line and "run `atlas concepts` again" in line for line in said)
    for name, why in zip(names, ["does not match its sha256", "is missing", "symbolic link", "not a readable image",
                                 "not listed"], strict=True):
        assert any(name in line and why in line for line in said), (name, why)
        assert not (out / "crops" / name).exists()
    assert report.problems == [] and report.check is not None and report.check.problems == []
    assert SECRET.encode() not in site_text(out)
    for channel in ("c0042", "c0101"):  # both pages show those sources: each loses them, and keeps the rest
        html = (out / MODEL / "layers" / "conv_head" / f"{channel}.html").read_text()
        assert html.count('alt="Example ') == 16 and html.count('<svg class="where"') == 5
        assert html.count('alt="Source image of example ') == 11 and not any(name in html for name in names)


def test_render_warns_about_a_bad_bank_and_renders_the_rest(tmp_path, capsys):
    from atlas.config import load_config
    from tests.test_render_cli import cli_config

    config_path = cli_config(tmp_path, classes="0")
    config = load_config(config_path)
    path = bank_json_for(tmp_path, tiny_model(), config.cache, 0, store.encode_vector(np.ones(3, np.float32)))
    rewrite(path, lambda d: d["concepts"][0].update(vector="!!not base64!!"))
    assert main(["render", "--config", str(config_path), "--full", "--no-progress"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() + captured.err.splitlines() if "skipped concept bank" in line]
    assert len(lines) == 1 and str(path.parent) in lines[0] and "not base64" in lines[0]
    assert "Traceback" not in captured.err and "1 rendered" in captured.out
