"""The record format: the sample cache reads back byte for byte, bad records name their fault."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import pytest

from atlas import record, store
from atlas.record import IMAGE, InvalidRecord, Retry
from tests.record_support import render_record
from tests.site_support import SAMPLE_CACHE, records


def file_problem(rec, folder, *, verify):
    """What the store says of a render entry's files, by the render kind."""
    return store.files_problem(folder, record.RECORD, rec.files, record.KIND.needs(rec), verify=verify)


def test_sample_records_read_back_exactly_and_typed():
    found = records(SAMPLE_CACHE)
    assert len(found) == 12
    for folder, raw in found:
        rec = record.from_dict(raw, folder.name)
        assert record.to_dict(rec) == raw and list(record.to_dict(rec)) == list(raw)
        assert record.loads(record.dumps(rec), folder.name) == rec
        assert (folder / "record.json").read_bytes() == record.dumps(rec)  # written by the cache's own writer
        assert file_problem(rec, folder, verify=True) is None
    espresso = next(record.from_dict(r) for _, r in found if r["objective"]["id"] == "class:967")
    assert espresso.objective.class_index == 967 and espresso.model.name == "efficientnet_lite0"
    assert espresso.scores is not None and espresso.scores.models[0].top5[0].index == 967
    assert espresso.timing is not None and espresso.timing.batch_seconds is None  # absent in old records


def test_optional_fields_are_left_out_while_unset_and_written_when_set():
    plain = record.to_dict(render_record())
    assert "retry" not in plain and "precision" not in plain and "kind" not in plain
    assert plain["objective"]["layer"] is None  # a field without a default is always written
    retried = record.to_dict(render_record(retry=Retry(5, "non-finite objective value (nan)"), precision="fp32"))
    assert retried["retry"] == {"first_seed": 5, "reason": "non-finite objective value (nan)"}
    assert retried["precision"] == "fp32"


def raw(**changes):
    data = record.to_dict(render_record(key="k"))
    return {**data, **changes}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ([], "not a format-1 record"),
        (raw(format=2), "not a format-1 record"),
        (raw(key="other"), "names another key"),
        (raw(status="done"), "unknown status 'done'"),
        (raw(kind="crop"), "unknown entry kind 'crop'"),
        (raw(seed=None), "record.seed is NoneType, expected int"),
        (raw(seed=True), "record.seed is bool, expected int"),
        (raw(model={"name": "m"}), "record.model lacks weights_sha256"),
        (raw(objective={**raw()["objective"], "class_index": None}), "class objective without class_index"),
        (raw(scores={"crops": 2, "crop_seed": 0, "models": [{"name": "m"}]}), "record.scores.models[0] lacks role"),
        (raw(files={IMAGE: {"bytes": "12", "sha256": "x"}}), "record.files.image.png.bytes is str"),
    ],
)
def test_invalid_records_say_what_is_wrong(data, reason):
    with pytest.raises(InvalidRecord, match=re.escape(reason)):
        record.from_dict(data, "k")


def test_file_problems(tmp_path):
    rec = record.with_files(render_record(), "k", {IMAGE: b"png", record.ATTRIBUTION: b"npy"})
    assert file_problem(rec, tmp_path, verify=False) == "image.png is missing"
    (tmp_path / IMAGE).write_bytes(b"PNG")
    (tmp_path / record.ATTRIBUTION).write_bytes(b"npy")
    assert file_problem(rec, tmp_path, verify=False) is None  # sizes only
    assert file_problem(rec, tmp_path, verify=True) == "image.png does not match its sha256"
    failed = dataclasses.replace(rec, status="failed", files={})
    assert file_problem(failed, tmp_path / "none", verify=True) is None


def test_the_record_module_imports_neither_torch_nor_numpy():
    code = "import sys, atlas.record; print(sorted(m for m in ('torch', 'numpy', 'PIL') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.replace("'", '"')) == []


def test_a_concept_pictures_expression_reads_back_and_says_whether_it_holds():
    from atlas.record import ConceptExpression

    strong = render_record(key="k", expression=ConceptExpression(share=0.64, rank=1, concepts=10))
    assert record.to_dict(strong)["expression"] == {"share": 0.64, "rank": 1, "concepts": 10}
    assert record.loads(record.dumps(strong), "k") == strong and strong.expression.holds
    assert "expression" not in record.to_dict(render_record())  # other renders, and records before it
    assert not ConceptExpression(0.5, 2, 10).holds and not ConceptExpression(0.2, 1, 10).holds
    with pytest.raises(InvalidRecord, match="record.expression lacks rank"):
        record.from_dict({**record.to_dict(strong), "expression": {"share": 0.5, "concepts": 10}}, "k")
