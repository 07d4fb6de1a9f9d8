"""The walk: which atlas modules a command passes through on its way to what it writes.

Runs two tiny walks in this process, on the `atlas` that PYTHONPATH finds (so one script measures
any commit: `PYTHONPATH=<worktree> python docs/tools/walk.py`), under `sys.setprofile`:

- render: `atlas render` of one class (`test_resnet`, random weights, 32 px, 2 steps, 1 crop, one
  seed, no judges, no channels: a temporary atlas.toml and flags), from `atlas.cli.main` until the
  first `write_entry` (the cache's entry writer) returns: the entry is written;
- concepts: `atlas concepts` of one class (`test_efficientnet`, random weights, 2 concepts, 4
  images tiled from two scikit-image photos, no dataset examples), then `atlas build` of that
  cache (one worker), from each `atlas.cli.main` until the first `atomic_write` of the class
  page `.../classes/0000.html` returns.  Between them an untraced tiny `atlas render` of the
  class writes the model file the build needs (and the concepts' pictures).

For each walk it prints two numbers, counting only Python frames of `atlas.*` modules and none
run while a module is being imported (a module's body, or anything importlib calls, such as the
package's lazy `__getattr__`):

(a) modules: the distinct atlas modules with a frame on the call stack during the walk;
(b) climbs back: control returns from a callee module to its caller, and the caller then calls
    into yet another atlas module (an orchestrator re-dispatching what it got back).  Frames of
    one module that call each other directly, and frames of other libraries between two atlas
    frames (torch calling a hook, jinja reading a page), are seen through: the caller is the run
    of consecutive frames of one module on the stack.  A climb is the step (caller module, the
    caller run's first function, module returned from, module called next) with the two callee
    modules different from each other and from the caller; each distinct step counts once, so
    a loop over steps or batches counts its climbs once, and the number measures the code, not
    the size of the run.  Whether the next call carries the same data is not checked: every
    re-dispatch counts.

`--list` also prints the modules and the climbs.  It takes about two minutes on two cores.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

TINY_RENDER = ('model = "{model}"\nrandom_weights = true\njudges = []\ncache = "cache"\n'
               '[preset]\nname = "cpu"\ncanvas = 32\nsteps = 2\ncrops = 1\n[layers]\n')
CLASS_PAGE = re.compile(r"(^|/)classes/0000\.html$")


@dataclass
class Run:
    """A run of consecutive frames of one atlas module on one thread's stack."""

    module: str
    function: str
    last_callee: str | None = None


@dataclass
class Walk:
    """What the profiler saw of the atlas modules while `active`, until `done`."""

    modules: set[str] = field(default_factory=set)
    climbs: set[tuple[str, str, str, str]] = field(default_factory=set)
    active: bool = False
    done: bool = False
    end_function: str = ""
    end_test: object = None  # frame -> bool: this call writes the target
    _stacks: dict[int, list] = field(default_factory=dict)

    def profile(self, frame, event, arg):  # noqa: ANN001 - sys.setprofile's signature
        if event not in ("call", "return"):
            return
        stack = self._stacks.setdefault(threading.get_ident(), [])
        if event == "return":
            while stack:
                top = stack.pop()
                if top[0] is frame:
                    if top[3] and self.active:  # the target's writer returned: the walk ends
                        self.active, self.done = False, True
                    break
            return
        module = frame.f_globals.get("__name__", "")
        atlas = module == "atlas" or module.startswith("atlas.")
        imports = frame.f_code.co_name == "<module>" or module.startswith("importlib")
        importing = imports or any(entry[2] for entry in stack)
        caller = next((entry[1] for entry in reversed(stack) if entry[1] is not None), None)
        run = None
        if atlas and not importing:
            if caller is not None and caller.module == module:
                run = caller
            else:
                run = Run(module, frame.f_code.co_name)
                if caller is not None and self.active:
                    if caller.last_callee not in (None, module):
                        self.climbs.add((caller.module, caller.function, caller.last_callee, module))
                    caller.last_callee = module
            if self.active:
                self.modules.add(module)
        ends = (self.active and atlas and frame.f_code.co_name == self.end_function
                and self.end_test(frame))
        stack.append((frame, run, imports, ends))


def traced(walk: Walk, argv: list[str]) -> int:
    from atlas.cli import main

    walk.active = not walk.done
    threading.setprofile(walk.profile)
    sys.setprofile(walk.profile)
    try:
        return main(argv)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
        walk.active = False
        walk._stacks.clear()


def render_walk(folder: Path) -> Walk:
    (folder / "atlas.toml").write_text(TINY_RENDER.format(model="test_resnet"), encoding="utf-8")
    walk = Walk(end_function="write_entry", end_test=lambda frame: True)
    code = traced(walk, ["render", "--config", str(folder / "atlas.toml"), "--full", "--classes", "0", "--layers",
                         "--seeds", "1", "--cache", str(folder / "cache"), "--device", "cpu", "--batch-size", "1",
                         "--no-progress"])
    assert code == 0 and walk.done, "atlas render did not write its entry"
    return walk


def photo_folder(root: Path, side: int = 224, count: int = 4) -> None:
    """root/n01440764/<i>.png: quadrants cut from two scikit-image photos (a cat, a cup)."""
    from skimage import data

    photos = [np.asarray(Image.fromarray(data.chelsea()).convert("RGB")), data.coffee()]
    rng = np.random.default_rng(0)
    (root / "n01440764").mkdir(parents=True)
    half = side // 2
    for i in range(count):
        image = np.zeros((side, side, 3), np.uint8)
        for row in range(2):
            for col in range(2):
                source = photos[int(rng.integers(0, 2))]
                top = int(rng.integers(0, source.shape[0] - half))
                left = int(rng.integers(0, source.shape[1] - half))
                image[row * half:(row + 1) * half, col * half:(col + 1) * half] = \
                    source[top:top + half, left:left + half]
        Image.fromarray(image).save(root / "n01440764" / f"{i:03d}.png")


def concepts_walk(folder: Path) -> Walk:
    photo_folder(folder / "images")
    cache = str(folder / "cache")
    walk = Walk(end_function="atomic_write",
                end_test=lambda frame: bool(CLASS_PAGE.search(str(frame.f_locals.get("path", "")))))
    code = traced(walk, ["concepts", "--images", str(folder / "images"), "--cache", cache, "--model",
                         "test_efficientnet", "--random-weights", "--device", "cpu", "--concepts", "2", "--patch",
                         "48", "--images-per-class", "4", "--layers", "--no-progress"])
    assert code == 0, "atlas concepts failed"
    from atlas.cli import main

    (folder / "atlas.toml").write_text(TINY_RENDER.format(model="test_efficientnet"), encoding="utf-8")
    assert main(["render", "--config", str(folder / "atlas.toml"), "--full", "--classes", "0", "--layers",
                 "--seeds", "1", "--cache", cache, "--device", "cpu", "--no-progress"]) == 0
    code = traced(walk, ["build", "--cache", cache, "--out", str(folder / "site"), "--workers", "1"])
    assert code == 0 and walk.done, "atlas build did not write the class page"
    return walk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="also list the modules and the climbs")
    args = parser.parse_args()
    import atlas

    print(f"atlas from {Path(atlas.__file__).parent}")
    for name, make in (("render", render_walk), ("concepts", concepts_walk)):
        with tempfile.TemporaryDirectory() as tmp:
            walk = make(Path(tmp))
        print(f"walk {name}: {len(walk.modules)} modules, {len(walk.climbs)} climbs back")
        if args.list:
            for module in sorted(walk.modules):
                print(f"  module {module}")
            for caller, function, left, right in sorted(walk.climbs):
                print(f"  climb {caller}.{function}: {left} -> {right}")


if __name__ == "__main__":
    main()
