"""How the 59-class interim held-out row of the `atlas` preset's whole view was judged (6 December 2026).

The pictures were rendered by `atlas bench --only objectives --objectives logit --presets atlas --checkpoints
build/bench-checkpoints` from the start of the held-out list, and by the loop in `fill_from_the_end` from its
end, both one torch thread, each picture kept under the key `atlas bench` reads back. The session ended before
the two met; this judges the kept pictures as `atlas bench` would (16 crops a scale, each picture on its own
boxes) and sets them beside the 5 December row (16 crops, no whole view) on the same classes.

    OMP_NUM_THREADS=2 python docs/bench/atlas-whole-view/heldout_interim.py build/bench-checkpoints OUT.json
"""

import json
import sys
from pathlib import Path

from atlas.bench.checkpoints import chunk_key, load_chunk, save_chunk
from atlas.bench.protocol import HELDOUT_CLASSES, QualityRow, load_judges, quality, quality_json
from atlas.bench.runs import run_ours
from atlas.commands.bench import quality_table
from atlas.models import load_model
from atlas.presets import get_preset

OPTIONS = {"objective": "logit"}


def fill_from_the_end(folder: Path) -> None:
    """Render the held-out list from its end into `folder` until a picture is kept already."""
    loaded, preset = load_model("efficientnet_lite0"), get_preset("atlas")
    for c in reversed(HELDOUT_CLASSES):
        key = chunk_key(loaded, preset, [c], "cpu", "ours", OPTIONS)
        if load_chunk(folder, key, 1, preset.canvas) is not None:
            return
        out, seconds = run_ours(loaded, preset, 1, "cpu", classes=[c], **OPTIONS)
        save_chunk(folder, key, out, seconds)


def main(folder: Path, out: Path) -> None:
    loaded, preset = load_model("efficientnet_lite0"), get_preset("atlas")
    kept = [c for c in HELDOUT_CLASSES
            if (folder / f"{chunk_key(loaded, preset, [c], 'cpu', 'ours', OPTIONS)}.npz").is_file()]
    row = quality(loaded, load_judges(), preset, kept, "cpu", config="logit · atlas (16 crops + 1 whole view)",
                  batch=1, checkpoints=folder, **OPTIONS)
    old = json.loads(Path("docs/bench/objectives-atlas/heldout-100-logit.json").read_text())["objectives"][0]
    before = QualityRow("logit · atlas (16 crops, 5 December)", old["classes"], old["seconds_per_image"],
                        {int(k): v for k, v in old["per_class"].items()}, {int(k): v for k, v in old["stats"].items()})
    print(f"{len(kept)} of {len(HELDOUT_CLASSES)} held-out pictures kept: {kept}")
    print(quality_table([before, row], kept))
    out.write_text(json.dumps({"classes": kept, "row": quality_json(row, preset)}, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
