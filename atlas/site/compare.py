"""The same class across the atlas's models: one compare page per class, and the model x model matrix.

A compare page (`compare/0001.html`) shows every model's picture of the class side by side, each
judged by every model of the atlas on the judging protocol (atlas.scoring): its generator's own
reading and the render-time judges from its record, the other models' from their cached judgments
(atlas.judgment).  The matrix (rows: generator, columns: judge) gives the mean rate over the
classes each generator rendered, on the whole picture and on large crops.  Only models of the
default model's class table take part: another table's class 1 is another class.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from atlas.judgment import Judgment
from atlas.model_record import ClassInfo
from atlas.record import target_rates
from atlas.site.pages import ClassPage, OfClass, Page, Render, Site, scale_words

SCALES = ("small", "large", "whole")
Rates = dict[str, tuple[float | None, float | None]]  # scale -> (top-1 rate, top-5 rate)


@dataclass(frozen=True)
class JudgeRow:
    judge: str
    role: str  # "generator", or "judge"
    rates: tuple[tuple[float | None, float | None], ...]  # per scale of SCALES


@dataclass(frozen=True)
class Column:
    """One model's picture of the class (None: not rendered) and how every model reads it."""

    site: Site
    page: ClassPage
    render: Render | None
    rows: tuple[JudgeRow, ...]


@dataclass(eq=False)
class ComparePage(OfClass, Page):
    info: ClassInfo | None = None
    columns: list[Column] = field(default_factory=list)
    scales: tuple[str, ...] = SCALES  # column headings, SCALES in words: "small crops (20-45% of the side)", ...


@dataclass(frozen=True)
class MatrixRow:
    generator: str
    cells: tuple[tuple[float | None, float | None], ...]  # per judge: (mean whole top-1, mean large top-1)
    pictures: int


@dataclass(frozen=True)
class Matrix:
    judges: tuple[str, ...]
    rows: tuple[MatrixRow, ...]
    large: str = "large crops"  # the large scale in words, with its crop sides


def table(site: Site) -> list[tuple[str, str]]:
    return [(c.wnid, c.name) for c in site.model.classes]


def comparable(sites: list[Site]) -> list[Site]:
    """The sites whose class table is the default (first) model's."""
    return [s for s in sites if table(s) == table(sites[0])] if sites else []


def words(sites: list[Site]) -> dict[str, str]:
    """SCALES in the words of the pages, from the first site whose records have each scale."""
    found: dict[str, str] = {}
    for site in sites:
        for name, text in site.scale_words.items():
            found.setdefault(name, text)
    return {name: found.get(name, scale_words(name, None)) for name in SCALES}


def index_judgments(found: Iterable[Judgment]) -> dict[tuple[str, str], Rates]:
    """(picture key, judge name) -> the judge's rates per scale; a judgment on the picture's own boxes
    over one on boxes shared by every picture (atlas.scoring), where the cache has both."""
    ordered = sorted(found, key=lambda j: bool(j.per_picture_boxes))
    return {(j.picture, j.judge): {name: (r.top1_rate, r.top5_rate) for name, r in j.scales.items()} for j in ordered}


def rates_of(render: Render, judges: list[str], judged: dict[tuple[str, str], Rates]) -> dict[str, Rates]:
    """judge name -> its rates of `render`: the record's own scores first, then cached judgments."""
    out: dict[str, Rates] = {}
    record = render.entry.record
    if record.judging:
        for scale, by_model in target_rates(record.judging).items():
            for name, pair in by_model.items():
                out.setdefault(name, {})[scale] = pair
    for judge in judges:
        if judge not in out and (record.key, judge) in judged:
            out[judge] = judged[(record.key, judge)]
    return out


def compare_pages(sites: list[Site], judged: dict[tuple[str, str], Rates]) -> list[ComparePage]:
    """A compare page for each class that at least one model of the default's class table rendered."""
    sites = comparable(sites)
    if len(sites) < 2:
        return []
    names = [s.model.name for s in sites]
    headings = tuple(words(sites).values())
    pages = []
    for info in sites[0].model.classes:
        columns = []
        for site in sites:
            page = site.classes[info.index]
            render = page.main
            rows: tuple[JudgeRow, ...] = ()
            if render is not None:
                rates = rates_of(render, names, judged)
                rows = tuple(JudgeRow(name, "generator" if name == site.model.name else "judge",
                                      tuple(rates.get(name, {}).get(s, (None, None)) for s in SCALES))
                             for name in names)
            columns.append(Column(site, page, render, rows))
        if any(c.render is not None for c in columns):
            pages.append(ComparePage(f"compare/{info.index:04d}.html", f"{info.index:04d} {info.name} in every model",
                                     "compare.html", info=info, columns=columns, scales=headings))
    return pages


def matrix(sites: list[Site], judged: dict[tuple[str, str], Rates]) -> Matrix | None:
    """Mean whole-picture and large-crop top-1 rates, generator x judge, over each generator's class pictures."""
    sites = comparable(sites)
    if len(sites) < 2:
        return None
    names = [s.model.name for s in sites]
    rows = []
    for site in sites:
        sums = {name: ([], []) for name in names}
        renders = [p.main for p in site.classes if p.main is not None]
        for render in renders:
            rates = rates_of(render, names, judged)
            for name in names:
                whole, large = rates.get(name, {}).get("whole"), rates.get(name, {}).get("large")
                if whole and whole[0] is not None:
                    sums[name][0].append(whole[0])
                if large and large[0] is not None:
                    sums[name][1].append(large[0])
        cells = tuple((_mean(sums[n][0]), _mean(sums[n][1])) for n in names)
        rows.append(MatrixRow(site.model.name, cells, len(renders)))
    return Matrix(tuple(names), tuple(rows), words(sites)["large"])


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
