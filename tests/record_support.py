"""A valid render record for tests that store entries without rendering."""

from __future__ import annotations

import dataclasses
from typing import Any

from atlas.record import ModelRef, ObjectiveInfo, RenderRecord


def render_record(*, class_index: int = 1, model: str = "test_model", weights_sha256: str = "0" * 64,
                  **changes: Any) -> RenderRecord:
    """An "ok" record of class `class_index`; `changes` replace any other field."""
    record = RenderRecord(
        key="", status="ok", failure=None,
        objective=ObjectiveInfo(f"class:{class_index}", "class", f"{model} · class {class_index}", class_index,
                                None, None),
        model=ModelRef(model, weights_sha256), preset={"name": "cpu", "canvas": 8}, param="maco",
        seed=0, seed_index=0, spectrum_sha256="1" * 64, engine_version="1", objective_value=1.0,
        timing=None, scores=None,
    )
    return dataclasses.replace(record, **changes)
