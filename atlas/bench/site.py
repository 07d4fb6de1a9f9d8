"""How long `atlas build` takes on a full-scale concept atlas, and how much memory it holds.

`make_cache` writes a synthetic cache of the size of a whole ImageNet atlas's concepts: banks of
1000 classes x 10 concepts x 10 crops (random 1280-float vectors, as Lite0's `bn2` gives; every crop
a real, distinct 16 px WebP file), and 256 `conv_head` channels, each a small render with 16 dataset
examples, each with its source image's thumbnail (another small WebP). `bench_site` builds it in a
subprocess (`python -m atlas build`), timing the wall clock and reading the child's peak resident
memory (ru_maxrss): once as `atlas concepts` leaves the cache, with the similar concepts stored, and
once without them, so that the build computes them in blocks.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from atlas.cache import Cache, encode_png
from atlas.concepts import similar, store
from atlas.concepts.formats import BANK_KIND, EXAMPLES_KIND, ChannelExamples, Concept, ConceptBank, Crop, ExampleSet
from atlas.kind import content_key
from atlas.model_record import LayerInfo, ModelInfo
from atlas.record import ModelRef, ObjectiveInfo, RenderRecord, Timing

MODEL, WEIGHTS, LAYER, CHANNELS_LAYER = "bench-model", "b" * 64, "bn2", "conv_head"
CROP_SIDE = 16
EXAMPLES = 16  # a channel's dataset examples, as `atlas concepts` keeps them
SUMMARY = re.compile(r"(?P<pages>\d+) pages, \d+ files, (?P<mb>[\d.]+) MB; largest page \S+ \((?P<kb>[\d.]+) KB\)")


@dataclass(frozen=True)
class BuildRun:
    case: str  # what the cache held
    seconds: float
    peak_mb: float  # the build process's peak resident memory
    pages: int
    site_mb: float
    largest_page_kb: float
    computed_similar: bool  # whether the build said it computed the similar concepts


@dataclass(frozen=True)
class SiteBench:
    classes: int
    concepts: int
    crops: int
    channels: int
    cache_files: int
    make_seconds: float
    similar_seconds: float  # what `atlas concepts` adds at its end: similar concepts of every bank, in blocks
    builds: tuple[BuildRun, ...]

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    def lines(self) -> list[str]:
        head = (f"{self.classes} classes x {self.concepts} concepts x {self.crops} crops, {self.channels} channels "
                f"with examples: {self.cache_files:,} cache files (made in {self.make_seconds:.0f} s); similar "
                f"concepts of all banks in blocks: {self.similar_seconds:.1f} s")
        return [head] + [
            f"atlas build, {b.case}: {b.seconds:.1f} s, peak {b.peak_mb:.0f} MB; {b.pages:,} pages, "
            f"{b.site_mb:.1f} MB, largest page {b.largest_page_kb:.1f} KB, within the budgets"
            + ("; computed the similar concepts" if b.computed_similar else "") for b in self.builds]


def _webp_crops(rng: np.random.Generator, count: int) -> list[bytes]:
    return [store.encode_webp(p) for p in rng.integers(0, 256, (count, CROP_SIDE, CROP_SIDE, 3), dtype=np.uint8)]


def _write_crops(folder: Path, crops: list[bytes]) -> dict[str, bytes]:
    """Plain writes, not the store's fsynced ones: a benchmark's cache need not survive a power cut. The
    store then lists each crop's size and sha256 in its bank or example set (it skips files already there)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for data in crops:
        name = store.crop_name(data)
        (folder / name).write_bytes(data)
        written[name] = data
    return written


def make_cache(root: Path, classes: int = 1000, concepts: int = 10, crops: int = 10, channels: int = 256,
               dim: int = 1280, seed: int = 0) -> Path:
    """A synthetic cache of `classes` banks and `channels` channel renders with examples (see the module doc)."""
    from atlas.models import imagenet_classes

    rng = np.random.default_rng(seed)
    root = Path(root)
    cache = Cache(root)
    infos = imagenet_classes()[:classes]
    cache.write_model(ModelInfo(
        name=MODEL, weights_sha256=WEIGHTS, weights_source="synthetic", num_classes=len(infos), classes=tuple(infos),
        nearest_classes={}, layers=(LayerInfo(CHANNELS_LAYER, channels, 32),), channel_top_classes={},
        hardware="synthetic", code_version="bench", spectrum_sha256="0" * 64))
    for info in infos:
        key = BANK_KIND.key({"bench": "bank", "class": info.index})
        written = _write_crops(root / "concepts" / key[:2] / key, _webp_crops(rng, concepts * crops))
        names = list(written)
        vectors = rng.random((concepts, dim), dtype=np.float32)
        bank = ConceptBank(
            key=key, model=MODEL, weights_sha256=WEIGHTS, class_index=info.index, wnid=info.wnid, layer=LAYER,
            exact=True, settings={"concepts": concepts}, images=50, skipped=0, patches=800, logit=10.0, residual=4.0,
            rest=0.5, relative_error=0.2, seconds={}, created="2026-12-01T00:00:00Z", concepts=tuple(
                Concept(k, store.encode_vector(vectors[k]), float(concepts - k), 0.05, 5, tuple(
                    Crop(f"{info.wnid}/{j:04d}.JPEG", (0, 0, 64, 64), float(crops - j), names[k * crops + j])
                    for j in range(crops)), ()) for k in range(concepts)))
        store.write_bank(root, bank, written)
    key = EXAMPLES_KIND.key({"bench": "examples"})
    folder = root / "examples" / key[:2] / key
    names = list(_write_crops(folder, _webp_crops(rng, channels * EXAMPLES)))
    # one source thumbnail per example: the top regions of different channels rarely share a photo
    thumbs = list(_write_crops(folder, [store.encode_webp(p, store.SOURCE_QUALITY) for p in rng.integers(
        0, 256, (channels * EXAMPLES, CROP_SIDE * 3 // 4, CROP_SIDE, 3), dtype=np.uint8)]))
    written = {name: (folder / name).read_bytes() for name in names + thumbs}
    store.write_examples(root, ExampleSet(
        key=key, model=MODEL, weights_sha256=WEIGHTS, layer=CHANNELS_LAYER, settings={}, images=classes * 50,
        skipped=0, seconds=1.0, created="2026-12-01T00:00:00Z", channels=tuple(
            ChannelExamples(c, tuple(
                Crop(f"{infos[j % classes].wnid}/{c:04d}.JPEG", (0, 0, 64, 64), float(EXAMPLES - j),
                     names[c * EXAMPLES + j], (256, 192), thumbs[c * EXAMPLES + j]) for j in range(EXAMPLES)),
                tuple(j % classes for j in range(EXAMPLES)))
            for c in range(channels))), written)
    for c in range(channels):
        _write_render(cache, c, rng)
    return root


def _write_render(cache: Cache, channel: int, rng: np.random.Generator) -> None:
    key = content_key({"bench": "render", "channel": channel})
    pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    np.save(buffer, rng.random((64, 64), dtype=np.float32))
    record = RenderRecord(
        key=key, status="ok", failure=None,
        objective=ObjectiveInfo(f"channel:{CHANNELS_LAYER}:{channel}", "channel",
                                f"{MODEL} · {CHANNELS_LAYER} channel {channel}", None, CHANNELS_LAYER, channel),
        model=ModelRef(MODEL, WEIGHTS), preset={"name": "bench", "canvas": 64}, param="maco", seed=channel,
        seed_index=0, spectrum_sha256="0" * 64, engine_version="2", objective_value=1.0,
        timing=Timing(1.0, 1, "cpu", "2026-12-01T00:00:00Z"), scores=None)
    cache.write_entry(key, {"image.png": encode_png(pixels), "attribution.npy": buffer.getvalue()}, record)


# Runs the build and prints its wall seconds and peak memory. A small process of its own: Linux's ru_maxrss
# of a child counts the memory it had before exec, a copy of its parent's, and this benchmark's own
# process holds torch.
_MEASURE = """
import os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
output = child.stdout.read()
_, status, usage = os.wait4(child.pid, 0)
sys.stdout.buffer.write(output)
print(f"@@ {os.waitstatus_to_exitcode(status)} {time.perf_counter() - started} {usage.ru_maxrss}")
"""


def time_build(cache: Path, out: Path, case: str) -> BuildRun:
    """`python -m atlas build` in a child process: wall seconds, and its own peak memory from wait4's rusage."""
    command = [sys.executable, "-m", "atlas", "build", "--cache", str(cache), "--out", str(out)]
    done = subprocess.run([sys.executable, "-c", _MEASURE, *command], capture_output=True, text=True, check=True)
    lines = done.stdout.strip().splitlines()
    code, seconds, maxrss = lines[-1].split()[1:]
    if int(code) != 0:  # among the reasons: the site check (links, page and site budgets) failed
        raise RuntimeError(f"atlas build failed on the benchmark cache: {' '.join(lines[-2:-1])}")
    # what the build's own check measured: "atlas build: M: N pages, F files, X MB; largest page P (K KB); ..."
    found = next(m for m in map(SUMMARY.search, lines) if m)
    kilobytes = int(maxrss) / (1024 if sys.platform == "darwin" else 1)  # ru_maxrss: KB on Linux, bytes on macOS
    return BuildRun(case=case, seconds=float(seconds), peak_mb=kilobytes / 1024, pages=int(found["pages"]),
                    site_mb=float(found["mb"]), largest_page_kb=float(found["kb"]),
                    computed_similar=any(line.startswith("atlas build: similar concepts") for line in lines))


def bench_site(classes: int = 1000, concepts: int = 10, crops: int = 10, channels: int = 256,
               work: Path | None = None) -> SiteBench:
    """Make the synthetic cache, store its similar concepts as `atlas concepts` does, and time three builds:
    a new site, the same site again (nothing changed), and a new site from a cache without the similar concepts."""
    with tempfile.TemporaryDirectory(prefix="atlas-site-bench-", dir=work) as folder:
        root = Path(folder)
        started = time.perf_counter()
        cache = make_cache(root / "cache", classes, concepts, crops, channels)
        made = time.perf_counter() - started
        files = sum(1 for p in cache.rglob("*") if p.is_file())
        banks = store.current_banks(cache, MODEL, WEIGHTS)
        started = time.perf_counter()
        similar.update(cache, banks, MODEL, WEIGHTS)
        similar_seconds = time.perf_counter() - started
        runs = [time_build(cache, root / "site", "similar concepts stored, new site"),
                time_build(cache, root / "site", "similar concepts stored, nothing changed")]
        store.similar_path(cache, MODEL, WEIGHTS).unlink()
        runs.append(time_build(cache, root / "site-2", "similar concepts missing, new site"))
    return SiteBench(classes, concepts, crops, channels, files, made, similar_seconds, tuple(runs))
