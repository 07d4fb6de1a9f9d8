"""The whole path on the command line, as a user runs it: `atlas concepts --images DIR` on a folder
of scikit-image photographs, `atlas render`, `atlas build`; a tiny random model on the CPU."""

from __future__ import annotations

import json

import pytest

from atlas.cli import main
from atlas.site.check import inspect_site, page_links
from tests.concept_folders import make_folder, one_thread  # noqa: F401 - a fixture
from tests.config_support import TINY_PRESET, write_config

pytestmark = pytest.mark.usefixtures("one_thread")

# Everything under [cpu], for `atlas render --cpu-subset`: no top-level judges, preset or layers.
CPU = {"classes": "0-1", "judges": [], "preset": TINY_PRESET, "layers": {"blocks.3": "0,2"}}


def test_concepts_then_render_then_build_give_concept_and_example_pages(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_config(tmp_path, "test_efficientnet", device="cpu", judges=None, preset=None, layers=None, cpu=CPU)
    make_folder(tmp_path / "images", {"n01440764": 3, "n01443537": 3}, side=160)
    assert main(["concepts", "--images", "images", "--concepts", "2", "--patch", "64", "--no-progress"]) == 0
    assert main(["render", "--cpu-subset", "--no-progress"]) == 0
    out = capsys.readouterr().out
    # 2 classes, 2 channels, 2 concepts of each class
    assert "8 objectives (4 of them concepts, from `atlas concepts`): 8 to render" in out and "8 rendered" in out
    assert main(["build", "--out", "site"]) == 0
    assert inspect_site(tmp_path / "site").problems == []
    site = tmp_path / "site" / "test_efficientnet"  # the model's folder
    for number in ("0000", "0001"):
        html = (site / "classes" / f"{number}.html").read_text()
        assert html.count('<li class="concept') == 2 and "not rendered yet" not in html
        assert html.count("MACO visualization of concept") == 2
        crops = [link for link in page_links(html) if "/crops/" in link]
        assert crops and all((site / "classes" / link).is_file() for link in crops)
        doc = json.loads((site / "data" / "classes" / f"{number}.json").read_text())
        assert [c["render"]["objective"]["kind"] for c in doc["concepts"]["concepts"]] == ["concept", "concept"]
    for channel in ("c0000", "c0002"):
        html = (site / "layers" / "blocks.3" / f"{channel}.html").read_text()
        assert "Dataset examples" in html and html.count('alt="Example ') == 6  # 6 images: fewer than 9
    index = json.loads((site / "data" / "index.json").read_text())
    assert all("concept_thumb" in c for c in index["classes"][:2])
