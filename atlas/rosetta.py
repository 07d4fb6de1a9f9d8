"""The same unit across models, after Rosetta Neurons (Dravid et al., ICCV 2023).

Two models see the same images; a channel of one and a channel of the other are "the same unit"
when their activation maps agree: the Pearson correlation of the two maps, over every image and
position, is the highest either has with any channel of the other model (a mutual best match).

The maps of both models are resized to one `grid` x `grid` (an area average when shrinking, so a
7x7 grid summarises a 28x28 map instead of sampling it; bilinear when growing), and the
correlation is computed streamed: per layer the sums of x and x^2, per pair of layers the C_A x
C_B matrix of the sums of products, in float64 on the device. Memory is bounded by those
matrices and one batch of maps, whatever the number of images.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from atlas.concepts.images import IMAGE_SUFFIXES, load_squares
from atlas.errors import AtlasError
from atlas.matches import Match, MatchSet, Side, key_of
from atlas.models import LoadedModel, list_layers
from atlas.objectives import ActivationCapture

METHOD = "pearson-mutual-best"
RESIZE = "area-or-bilinear"
DEFAULT_GRID = 7


def listing(root: str | Path, limit: int | None = None) -> tuple[list[str], str]:
    """The image files under `root` (relative, sorted) and the sha256 of their names, sizes and mtimes.

    `limit` keeps a deterministic sample chosen by a hash of the name, so adding files keeps most of it."""
    root = Path(root)
    if not root.is_dir():
        raise AtlasError(f"image folder {root} does not exist: pass --images DIR (images, subfolders searched)")
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith("."))
    if limit is not None and len(files) > limit:
        files = sorted(sorted(files, key=lambda f: hashlib.sha256(f.encode()).hexdigest())[:limit])
    if not files:
        raise AtlasError(f"no images (.jpg, .png, .webp) in {root}: pass a folder of photos with --images")
    stats = [[f, (root / f).stat().st_size, (root / f).stat().st_mtime_ns] for f in files]
    return files, hashlib.sha256(json.dumps(stats, separators=(",", ":")).encode()).hexdigest()


def on_grid(maps: torch.Tensor, grid: int) -> torch.Tensor:
    """(N, C, H, W) -> (N * grid * grid, C): one row per image position, one column per channel."""
    if maps.shape[-1] >= grid and maps.shape[-2] >= grid:
        maps = F.adaptive_avg_pool2d(maps.float(), grid)  # an area average: every position counts once
    else:
        maps = F.interpolate(maps.float(), size=(grid, grid), mode="bilinear", align_corners=False)
    return maps.float().permute(0, 2, 3, 1).reshape(-1, maps.shape[1])


class Correlator:
    """Streamed Pearson correlation of every channel of one set of layers with every channel of another.

    Values are shifted by the first batch's channel means before they are summed, so that the
    float64 sums do not lose the variance of a channel with a large mean to cancellation."""

    def __init__(self, device: str | torch.device):
        self.device = torch.device(device)
        self.dtype = torch.float32 if self.device.type == "mps" else torch.float64  # MPS has no float64
        self.shift: dict[str, torch.Tensor] = {}
        self.sums: dict[str, torch.Tensor] = {}
        self.squares: dict[str, torch.Tensor] = {}
        self.products: dict[tuple[str, str], torch.Tensor] = {}
        self.rows = 0

    def _centred(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if name not in self.shift:
            self.shift[name] = x.mean(0)
            self.sums[name] = torch.zeros(x.shape[1], dtype=self.dtype, device=self.device)
            self.squares[name] = torch.zeros_like(self.sums[name])
        x = x - self.shift[name]
        self.sums[name] += x.sum(0).to(self.dtype)
        self.squares[name] += (x * x).sum(0).to(self.dtype)
        return x

    def update(self, a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
        """One batch: a and b map "0:layer" / "1:layer" names to (rows, C) of the same rows."""
        rows = {x.shape[0] for x in [*a.values(), *b.values()]}
        assert len(rows) == 1, rows
        ca = {name: self._centred(name, x) for name, x in a.items()}
        cb = {name: self._centred(name, x) for name, x in b.items()}
        for na, xa in ca.items():
            for nb, xb in cb.items():
                product = (xa.T @ xb).to(self.dtype)  # float32 per batch, summed in float64
                if (na, nb) in self.products:
                    self.products[(na, nb)] += product
                else:
                    self.products[(na, nb)] = product
        self.rows += rows.pop()

    def _moments(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.sums[name] / self.rows
        var = (self.squares[name] / self.rows - mean * mean).clamp_min(0)
        return mean, var.sqrt()

    def matrix(self, names_a: Sequence[str], names_b: Sequence[str]) -> torch.Tensor:
        """The correlation of every channel of `names_a` (rows, in order) with every one of `names_b`;
        NaN for a channel that never varies (it has no correlation to speak of)."""
        if not self.rows:
            raise AtlasError("no image could be read: nothing to correlate")
        blocks = []
        for na in names_a:
            mean_a, std_a = self._moments(na)
            row = []
            for nb in names_b:
                mean_b, std_b = self._moments(nb)
                cov = self.products[(na, nb)] / self.rows - mean_a[:, None] * mean_b[None, :]
                row.append(cov / (std_a[:, None] * std_b[None, :]))
            blocks.append(torch.cat(row, 1))
        corr = torch.cat(blocks, 0)
        dead_a = torch.cat([self._moments(n)[1] for n in names_a]) <= 1e-12
        dead_b = torch.cat([self._moments(n)[1] for n in names_b]) <= 1e-12
        corr[dead_a] = float("nan")
        corr[:, dead_b] = float("nan")
        return corr.clamp(-1, 1)


def mutual_best(corr: torch.Tensor) -> list[tuple[int, int, float]]:
    """(row, column, r) of every pair that is the best of its row and of its column (NaN never wins)."""
    scores = torch.nan_to_num(corr, nan=-float("inf"))
    if scores.numel() == 0:
        return []
    best_col = scores.argmax(1)
    best_row = scores.argmax(0)
    rows = torch.arange(scores.shape[0], device=scores.device)
    mutual = (best_row[best_col] == rows) & torch.isfinite(scores[rows, best_col])
    return [(int(i), int(best_col[i]), float(corr[i, best_col[i]])) for i in rows[mutual].tolist()]


def _input(loaded: LoadedModel, squares: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> the model's normalised (B, 3, side, side) input; one read serves every model's side."""
    x = squares.to(device).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-1] != loaded.input_size:
        x = F.interpolate(x, size=(loaded.input_size,) * 2, mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(loaded.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(loaded.std, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


def side_of(loaded: LoadedModel, layers: Sequence[str] | None) -> Side:
    """The model's identity and its searched layers with their channel counts (all its layers by default)."""
    known = {info.name: info.channels for info in list_layers(loaded)}
    names = list(layers) if layers else list(known)
    missing = [n for n in names if n not in known]
    if missing:
        raise AtlasError(f"{loaded.name} has no layer {missing[0]!r}: `atlas layers {loaded.name}` lists them")
    return Side(loaded.name, loaded.weights_sha256, tuple((n, int(known[n])) for n in names))


@dataclass(frozen=True)
class Request:
    """What one pair's matches depend on: the files, both sides and the settings, and so the key."""

    files: tuple[str, ...]
    listing_sha256: str
    sides: tuple[Side, Side]
    settings: dict
    key: str


def request(a: LoadedModel, b: LoadedModel, root: str | Path, *, layers_a: Sequence[str] | None = None,
            layers_b: Sequence[str] | None = None, grid: int = DEFAULT_GRID, limit: int | None = None) -> Request:
    """The key of a pair's matches before any image is read (names and stat only), so a stored one is reused."""
    files, listing_sha256 = listing(root, limit)
    side_a, side_b = side_of(a, layers_a), side_of(b, layers_b)
    settings = {"grid": grid, "resize": RESIZE, "method": METHOD, "limit": limit}
    return Request(tuple(files), listing_sha256, (side_a, side_b), settings,
                   key_of(side_a, side_b, listing_sha256, settings))


def match(a: LoadedModel, b: LoadedModel, root: str | Path, *, layers_a: Sequence[str] | None = None,
          layers_b: Sequence[str] | None = None, grid: int = DEFAULT_GRID, batch_size: int = 32,
          limit: int | None = None, device: str = "cpu",
          progress: Callable[[int, int], None] | None = None) -> MatchSet:
    """The mutual best matches between the channels of `a`'s and `b`'s layers on the images of `root`."""
    started = time.perf_counter()
    asked = request(a, b, root, layers_a=layers_a, layers_b=layers_b, grid=grid, limit=limit)
    side_a, side_b = asked.sides
    dev = torch.device(device)
    correlator = Correlator(dev)
    names_a = [f"0:{n}" for n, _ in side_a.layers]
    names_b = [f"1:{n}" for n, _ in side_b.layers]
    read = skipped = 0
    side = max(a.input_size, b.input_size)
    # One capture per distinct module: a model matched against itself runs once, and the hooks of
    # one capture never stop the forward pass before the other's layers are reached.
    wanted = {id(a.module): set(), id(b.module): set()}
    wanted[id(a.module)] |= {n for n, _ in side_a.layers}
    wanted[id(b.module)] |= {n for n, _ in side_b.layers}
    batches = [asked.files[i : i + batch_size] for i in range(0, len(asked.files), batch_size)]
    with contextlib.ExitStack() as stack, torch.no_grad(), ThreadPoolExecutor(1) as reader:
        modules = {id(m.module): m.module for m in (a, b)}
        captures = {i: stack.enter_context(ActivationCapture(module, wanted[i], logits=False))
                    for i, module in modules.items()}
        # the next batch is read and decoded while this one runs through the models
        pending = reader.submit(load_squares, root, batches[0], side)
        for n in range(len(batches)):
            squares = pending.result()
            if n + 1 < len(batches):
                pending = reader.submit(load_squares, root, batches[n + 1], side)
            skipped += len(squares.skipped)
            if not len(squares.files):
                continue
            pixels = torch.from_numpy(squares.pixels)
            maps_a = captures[id(a.module)](_input(a, pixels, dev)).layers
            maps_b = maps_a if b.module is a.module and b.input_size == a.input_size \
                else captures[id(b.module)](_input(b, pixels, dev)).layers
            correlator.update({f"0:{n}": on_grid(maps_a[n], grid) for n, _ in side_a.layers},
                              {f"1:{n}": on_grid(maps_b[n], grid) for n, _ in side_b.layers})
            read += len(squares.files)
            if progress is not None:
                progress(read + skipped, len(asked.files))
    corr = correlator.matrix(names_a, names_b)
    where_a = [(n, c) for n, count in side_a.layers for c in range(count)]
    where_b = [(n, c) for n, count in side_b.layers for c in range(count)]
    matches = tuple(Match(*where_a[i], *where_b[j], round(r, 6)) for i, j, r in mutual_best(corr))
    finished = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    images = {"listing_sha256": asked.listing_sha256, "count": read, "skipped": skipped}
    return MatchSet(asked.key, asked.sides, images, asked.settings, matches, round(time.perf_counter() - started, 3),
                    str(device), finished)

