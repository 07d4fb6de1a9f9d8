"""Objectives: what a visualization maximises, as values with an algebra.

    class_logit(967) ; class_logprob(967) ; class_margin(967) ;
    channel("blocks.5", 17) ; neuron("blocks.5", 17) ;
    direction("blocks.5", v, cosine=True) ; direction("blocks.5", v, power=2) ;
    0.5 * channel("blocks.5", 17) + class_logit(3)

An objective is a weighted sum of terms. It returns what to MAXIMISE, one value per
sample (only the optimiser negates), carries a stable `id` for cache keys and a
readable description, and names the layers it needs (`layers`, `needs_logits`).
Activations come from forward hooks on those layers only (`ActivationCapture`); layer
outputs are read as (B, C, H, W), ViT tokens folded into a grid (atlas.models.as_nchw),
so "channel c" means the same in every family.

`evaluate(objectives, activations, crops)` scores K objectives on a batch of K*n crops
(sample k owns rows k*n .. k*n+n-1) with one gather per kind of term, not a loop over K.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from atlas.errors import AtlasError
from atlas.models import as_nchw
from atlas.record import CLASS_TERM_FORMS, direction_id


@dataclass(frozen=True)
class ClassLogit:
    """One class's logit. The forms below read the same logit against the others; each is its own
    type, so it groups, compares and keys apart from the plain logit."""

    index: int
    prefix: ClassVar[str] = "class"
    form: ClassVar[str] = ""

    @property
    def id(self) -> str:
        return f"{self.prefix}:{self.index}"

    def describe(self) -> str:
        return f"class {self.index}" + (f" ({self.form})" if self.form else "")


@dataclass(frozen=True)
class ClassLogProb(ClassLogit):
    """The log-probability: the logit minus the log-sum-exp of all logits, so raising another class's
    logit lowers it."""

    prefix: ClassVar[str] = "logprob"
    form: ClassVar[str] = CLASS_TERM_FORMS[prefix]


@dataclass(frozen=True)
class ClassMargin(ClassLogit):
    """The logit minus the mean of the other logits: the plain logit, less what every class gains."""

    prefix: ClassVar[str] = "margin"
    form: ClassVar[str] = CLASS_TERM_FORMS[prefix]


@dataclass(frozen=True)
class Channel:
    layer: str
    channel: int

    @property
    def id(self) -> str:
        return f"channel:{self.layer}:{self.channel}"

    def describe(self) -> str:
        return f"{self.layer} · channel {self.channel}"


@dataclass(frozen=True)
class Neuron:
    """One channel at one position; x = y = None means the centre of the layer's grid."""

    layer: str
    channel: int
    x: int | None = None
    y: int | None = None

    @property
    def id(self) -> str:
        where = "centre" if self.x is None else f"{self.x}:{self.y}"
        return f"neuron:{self.layer}:{self.channel}:{where}"

    def describe(self) -> str:
        where = "centre" if self.x is None else f"({self.x}, {self.y})"
        return f"{self.layer} · channel {self.channel} at {where}"


@dataclass(frozen=True)
class Direction:
    """Mean over positions of <activation, vector>, of their cosine, or (power > 0) of
    <activation, vector> * max(cosine, 0.1) ** power, in a layer's channel space."""

    layer: str
    vector: tuple[float, ...] = field(repr=False)
    cosine: bool = False
    power: int = 0

    @property
    def digest(self) -> str:
        data = np.asarray(self.vector, dtype="<f4").tobytes()
        return hashlib.sha256(data).hexdigest()[:12]

    @property
    def id(self) -> str:
        return direction_id(self.layer, self.cosine, self.digest, self.power)

    def describe(self) -> str:
        form = f"dot × cosine^{self.power}" if self.power else ("cosine" if self.cosine else "dot")
        return f"{self.layer} · direction {self.digest[:6]} ({form})"


Term = ClassLogit | ClassLogProb | ClassMargin | Channel | Neuron | Direction
LOGIT_TERMS = (ClassLogit, ClassLogProb, ClassMargin)  # terms read from the logits, each targeting one class


def _format_weight(weight: float) -> str:
    return format(weight, ".6g")


class Objective:
    """A weighted sum of terms; build with the functions below and + - * /."""

    def __init__(self, terms: Iterable[tuple[float, Term]]):
        merged: dict[str, tuple[float, Term]] = {}
        for weight, term in terms:
            if not math.isfinite(float(weight)):  # its pictures would all fail, cached under an id that does not parse
                raise AtlasError(f"the weight of {term.id} is {weight}: an objective's weights are finite numbers")
            previous = merged.get(term.id, (0.0, term))[0]
            merged[term.id] = (previous + float(weight), term)
        # sorted by id: a + b and b + a are the same objective with the same cache key
        self.terms: tuple[tuple[float, Term], ...] = tuple(
            merged[key] for key in sorted(merged) if merged[key][0] != 0.0
        )
        if not self.terms:
            raise AtlasError("this objective has no terms left (the weights cancel): change the weights")

    # --- algebra -------------------------------------------------------------------------
    def __add__(self, other: object) -> Objective:
        if not isinstance(other, Objective):
            return NotImplemented
        return Objective(self.terms + other.terms)

    def __sub__(self, other: object) -> Objective:
        if not isinstance(other, Objective):
            return NotImplemented
        return Objective(self.terms + tuple((-w, t) for w, t in other.terms))

    def __mul__(self, factor: object) -> Objective:
        if not isinstance(factor, (int, float)) or isinstance(factor, bool):
            return NotImplemented
        return Objective((w * factor, t) for w, t in self.terms)

    __rmul__ = __mul__

    def __truediv__(self, divisor: object) -> Objective:
        if not isinstance(divisor, (int, float)) or isinstance(divisor, bool):
            return NotImplemented
        if divisor == 0:
            raise AtlasError("an objective divided by 0 has no finite weights: divide by another number")
        return self * (1.0 / divisor)

    def __neg__(self) -> Objective:
        return self * -1.0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Objective) and self.id == other.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"Objective({self.id!r})"

    # --- identity ------------------------------------------------------------------------
    @property
    def single(self) -> Term | None:
        """The term, when this objective is exactly one term with weight 1."""
        if len(self.terms) == 1 and self.terms[0][0] == 1.0:
            return self.terms[0][1]
        return None

    @property
    def id(self) -> str:
        """Stable text for cache keys, e.g. "class:967", "0.5*channel:blocks.5:17+class:3"."""
        parts = []
        for i, (weight, term) in enumerate(self.terms):
            sign = "-" if weight < 0 else ("+" if i else "")
            scale = "" if abs(weight) == 1.0 else f"{_format_weight(abs(weight))}*"
            parts.append(f"{sign}{scale}{term.id}")
        return "".join(parts)

    @property
    def kind(self) -> str:
        """"class", "logprob", "margin", "channel", "neuron", "direction", or "sum" for anything weighted
        or combined."""
        single = self.single
        kinds = {ClassLogit: "class", ClassLogProb: "logprob", ClassMargin: "margin", Channel: "channel",
                 Neuron: "neuron", Direction: "direction"}
        return "sum" if single is None else kinds[type(single)]

    @property
    def class_index(self) -> int | None:
        """The class this objective draws: one class's logit terms, each with a positive weight (the
        logit, its log-probability, or a blend of them); None for anything else."""
        indices = {t.index if isinstance(t, LOGIT_TERMS) and w > 0 else None for w, t in self.terms}
        return indices.pop() if len(indices) == 1 else None

    @property
    def layer(self) -> str | None:
        single = self.single
        return None if single is None or isinstance(single, LOGIT_TERMS) else single.layer

    @property
    def channel(self) -> int | None:
        return self.single.channel if isinstance(self.single, (Channel, Neuron)) else None

    def describe(self, model_name: str) -> str:
        """Caption text, e.g. "efficientnet_lite0 · blocks.5 · channel 17"."""
        if self.single is not None:
            return f"{model_name} · {self.single.describe()}"
        parts = []
        for i, (weight, term) in enumerate(self.terms):
            sign = ("− " if i else "−") if weight < 0 else ("+ " if i else "")
            scale = "" if abs(weight) == 1.0 else f"{_format_weight(abs(weight))} × "
            text = term.describe()
            parts.append(f"{sign}{scale}({text})" if scale and "·" in text else f"{sign}{scale}{text}")
        return f"{model_name} · " + " ".join(parts)

    # --- what it needs and computes ------------------------------------------------------
    @property
    def layers(self) -> frozenset[str]:
        return frozenset(t.layer for _, t in self.terms if not isinstance(t, LOGIT_TERMS))

    @property
    def needs_logits(self) -> bool:
        return any(isinstance(t, LOGIT_TERMS) for _, t in self.terms)

    def __call__(self, activations: Activations) -> torch.Tensor:
        """Per-row values (B,) of this objective on a batch of activations."""
        return evaluate([self], activations, crops=activations.batch_size, reduce=False)[0]


def class_logit(index: int) -> Objective:
    return Objective([(1.0, ClassLogit(_non_negative(index, "class index")))])


def class_logprob(index: int) -> Objective:
    return Objective([(1.0, ClassLogProb(_non_negative(index, "class index")))])


def class_margin(index: int) -> Objective:
    return Objective([(1.0, ClassMargin(_non_negative(index, "class index")))])


def class_blend(index: int) -> Objective:
    """The logit plus the log-probability: the logit's drive, with a push down on the other classes."""
    return class_logit(index) + class_logprob(index)


# What a class picture can maximise, by the name `class_objective` takes in atlas.toml: the plain
# logit, or forms that also push the other classes down (docs/benchmarks.md compares them).
CLASS_OBJECTIVES: dict[str, Callable[[int], Objective]] = {
    "logit": class_logit,
    "margin": class_margin,
    "logprob": class_logprob,
    "blend": class_blend,
}


def channel(layer: str, c: int) -> Objective:
    return Objective([(1.0, Channel(layer, _non_negative(c, "channel")))])


def neuron(layer: str, c: int, x: int | None = None, y: int | None = None) -> Objective:
    if (x is None) != (y is None):
        raise AtlasError("give a neuron both x and y, or neither for the centre")
    if x is not None:
        x, y = _non_negative(x, "neuron x"), _non_negative(y, "neuron y")
    return Objective([(1.0, Neuron(layer, _non_negative(c, "channel"), x, y))])


# the cosine's floor in the dot x cosine^power form, as in horama's dot_cossim: a position that points
# away from the vector still pulls (weakly) by its dot product instead of flipping or vanishing
COSINE_FLOOR = 0.1


def direction(layer: str, vector: Sequence[float] | np.ndarray | torch.Tensor, cosine: bool = False,
              power: int = 0) -> Objective:
    """cosine=True: the cosine; power > 0: dot product times max(cosine, 0.1) ** power; else the dot product."""
    power = _non_negative(power, "a direction's power")
    if cosine and power:
        raise AtlasError("a direction takes cosine=True or a power (dot x cosine^power), not both")
    if isinstance(vector, torch.Tensor):
        vector = vector.detach().cpu().numpy()
    values = np.asarray(vector, dtype=np.float32).reshape(-1)
    if values.size == 0 or not np.all(np.isfinite(values)) or not np.any(values):
        raise AtlasError("a direction needs a non-zero, finite vector with one entry per channel of the layer")
    return Objective([(1.0, Direction(layer, tuple(float(v) for v in values), bool(cosine), power))])


# One term of an objective id as `Objective.id` writes it: an optional sign and weight, then the term.
_TERM = re.compile(r"\s*(?P<sign>[+-]?)\s*(?:(?P<weight>\d+(?:\.\d*)?(?:e[+-]?\d+)?)\s*\*\s*)?"
                   r"(?P<term>(?P<ckind>class|logprob|margin):(?P<cls>\d+)|channel:(?P<clayer>[^:\s*+]+):(?P<cc>\d+)"
                   r"|neuron:(?P<nlayer>[^:\s*+]+):(?P<nc>\d+):(?:centre|(?P<x>\d+):(?P<y>\d+)))\s*")


CLASS_TERMS = {"class": class_logit, "logprob": class_logprob, "margin": class_margin}


def parse_objective(text: str | Objective) -> Objective:
    """An objective from its id, e.g. "class:1", "logprob:1", "channel:layer4:12", "neuron:blocks.3:5:centre",
    "0.5*channel:layer4:3+class:1"; an Objective is returned as it is.  A direction's id holds
    only a digest of its vector: build it with `direction(layer, vector)` instead."""
    if isinstance(text, Objective):
        return text
    if not isinstance(text, str):
        raise AtlasError(f"an objective is an id like \"class:1\" or an atlas.objectives value, not {text!r}")
    terms: list[tuple[float, Term]] = []
    position = 0
    while position < len(text) or not terms:
        match = _TERM.match(text, position)
        if match is None or (terms and not match.group("sign")):
            hint = (" (a direction needs its vector: atlas.objectives.direction(layer, vector))"
                    if "direction:" in text else "")
            raise AtlasError(f"cannot read objective {text!r} at {text[position:position + 20]!r}: write class:N, "
                             f"channel:LAYER:N, neuron:LAYER:N:centre or a weighted sum like "
                             f"0.5*channel:layer4:3+class:1{hint}")
        weight = float(match.group("weight") or 1.0) * (-1.0 if match.group("sign") == "-" else 1.0)
        if match.group("cls") is not None:
            term = CLASS_TERMS[match.group("ckind")](int(match.group("cls")))
        elif match.group("clayer") is not None:
            term = channel(match.group("clayer"), int(match.group("cc")))
        else:
            x, y = match.group("x"), match.group("y")
            term = neuron(match.group("nlayer"), int(match.group("nc")), None if x is None else int(x),
                          None if y is None else int(y))
        terms.append((weight, term.terms[0][1]))
        position = match.end()
    return Objective(terms)


def _non_negative(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise AtlasError(f"{what} must be a non-negative integer, not {value!r}")
    return int(value)


# --- activations ---------------------------------------------------------------------------
class _StopForward(Exception):
    """Raised from the last needed hook: the rest of the network is not computed."""


@dataclass
class Activations:
    """Captured layer outputs as (B, C, H, W), and the logits when some objective needs them."""

    layers: dict[str, torch.Tensor]
    logits: torch.Tensor | None
    batch_size: int


class ActivationCapture:
    """Forward hooks on the named modules only; use as a context manager so they always go.

        with ActivationCapture(model, {"blocks.5"}, logits=False) as capture:
            acts = capture(x)
    """

    def __init__(self, module: torch.nn.Module, layers: Iterable[str], logits: bool):
        self.module = module
        self.layers = sorted(set(layers))
        self.logits = logits
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._store: dict[str, torch.Tensor] = {}
        for name in self.layers:
            _submodule(module, name)  # fail before any forward pass

    def __enter__(self) -> ActivationCapture:
        for name in self.layers:
            self._handles.append(_submodule(self.module, name).register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._store = {}

    def _hook(self, name: str):
        def hook(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
            if name not in self._store:  # a module called twice: keep its first output
                self._store[name] = as_nchw(output, self.module)
            if not self.logits and len(self._store) == len(self.layers):
                raise _StopForward

        return hook

    def __call__(self, x: torch.Tensor) -> Activations:
        if not self._handles and self.layers:
            raise RuntimeError("ActivationCapture must be entered (with ...:) before it is called")
        self._store = {}
        logits = None
        try:
            if self.logits or not self.layers:
                logits = self.module(x)
            else:
                self.module(x)
        except _StopForward:
            pass
        missing = [name for name in self.layers if name not in self._store]
        if missing:
            raise AtlasError(f"layer {missing[0]!r} was not run by the forward pass: pick a layer the model uses")
        layers, self._store = self._store, {}
        return Activations(layers, logits, x.shape[0])


def _submodule(module: torch.nn.Module, name: str) -> torch.nn.Module:
    try:
        return module.get_submodule(name)
    except AttributeError as exc:
        raise AtlasError(f"the model has no layer {name!r}: `atlas layers MODEL` lists the layers") from exc


def capture(module: torch.nn.Module, objectives: Sequence[Objective], x: torch.Tensor) -> Activations:
    """Run `x` through `module`, capturing just what `objectives` need (hooks removed afterwards)."""
    layers = set().union(*(o.layers for o in objectives))
    needs_logits = any(o.needs_logits for o in objectives)
    with ActivationCapture(module, layers, needs_logits) as capturing:
        return capturing(x)


# --- batched evaluation --------------------------------------------------------------------
class BatchObjective:
    """K objectives scored on K*crops rows (sample k owns rows k*crops .. k*crops+crops-1).

    Terms are grouped by kind and layer once; each call does one gather per group,
    whatever K is. Index tensors are built once per device and reused every step.
    """

    def __init__(self, objectives: Sequence[Objective], crops: int):
        self.k = len(objectives)
        self.crops = crops
        grouped: dict[tuple, list[tuple[int, float, Term]]] = {}
        for sample, objective in enumerate(objectives):
            for weight, term in objective.terms:
                key = (type(term), getattr(term, "layer", None), getattr(term, "cosine", False),
                       getattr(term, "power", 0))
                grouped.setdefault(key, []).append((sample, weight, term))
        self.groups = [_Group(kind, layer, cosine, members, power)
                       for (kind, layer, cosine, power), members in grouped.items()]

    def __call__(self, activations: Activations, reduce: bool = True) -> torch.Tensor:
        """(K,) means over each sample's crops, or (K, crops) per-crop values when reduce=False."""
        if activations.batch_size != self.k * self.crops:
            raise ValueError(f"{activations.batch_size} rows for {self.k} objectives x {self.crops} crops")
        total = None
        for group in self.groups:
            contribution = group.values(activations, self.k, self.crops)
            total = contribution if total is None else total + contribution
        return total.mean(1) if reduce else total


class _Group:
    """Terms of one kind on one source (logits or one layer), possibly from many objectives."""

    def __init__(self, kind: type, layer: str | None, cosine: bool, members: list[tuple[int, float, Term]],
                 power: int = 0):
        self.kind, self.layer, self.cosine, self.power = kind, layer, cosine, power
        self.samples = [m[0] for m in members]
        self.weights = [m[1] for m in members]
        self.terms = [m[2] for m in members]
        self._tensors: dict[tuple, dict[str, torch.Tensor]] = {}

    def _on(self, device: torch.device, shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
        key = (device, shape)
        if key not in self._tensors:
            self._check(shape)
            height, width = (shape[2], shape[3]) if len(shape) == 4 else (0, 0)
            t: dict[str, list] = {"samples": self.samples, "weights": self.weights}
            if self.kind in LOGIT_TERMS:
                t["index"] = [term.index for term in self.terms]
            elif self.kind in (Channel, Neuron):
                t["index"] = [term.channel for term in self.terms]
            if self.kind is Neuron:
                t["x"] = [width // 2 if term.x is None else term.x for term in self.terms]
                t["y"] = [height // 2 if term.y is None else term.y for term in self.terms]
            if self.kind is Direction:
                t["vectors"] = [list(term.vector) for term in self.terms]
            self._tensors[key] = {
                name: torch.tensor(v, device=device, dtype=torch.float32 if name in ("weights", "vectors") else None)
                for name, v in t.items()
            }
        return self._tensors[key]

    def _check(self, shape: tuple[int, ...]) -> None:
        """Indices against the activation's shape, on the host, once per shape."""
        def over(values: list[int], size: int, message: str) -> None:
            if max(values) >= size:
                raise AtlasError(message.format(max(values), size))

        if self.kind in LOGIT_TERMS:
            over([t.index for t in self.terms], shape[-1], "class {} is out of range: the model has {} classes")
            return
        channels, height, width = shape[1:]
        where = f"layer {self.layer}"
        if self.kind in (Channel, Neuron):
            over([t.channel for t in self.terms], channels, f"channel {{}} is out of range: {where} has {{}} channels")
        if self.kind is Neuron:
            over([t.x or 0 for t in self.terms], width, f"neuron x {{}} is out of range: {where} is {{}} wide")
            over([t.y or 0 for t in self.terms], height, f"neuron y {{}} is out of range: {where} is {{}} high")
        if self.kind is Direction and any(len(t.vector) != channels for t in self.terms):
            raise AtlasError(f"a direction in {where} needs {channels} entries, one per channel")

    def values(self, activations: Activations, k: int, crops: int) -> torch.Tensor:
        """(K, crops) weighted contribution of this group's terms."""
        if self.kind in LOGIT_TERMS:
            if activations.logits is None:
                raise ValueError("class objectives need the logits; capture with logits=True")
            source = activations.logits
        else:
            source = activations.layers[self.layer]
        t = self._on(source.device, tuple(source.shape))
        source = source.float()
        samples = t["samples"]
        if self.kind in LOGIT_TERMS:
            logits = source.view(k, crops, -1)[samples]  # (T, n, classes)
            values = logits.gather(2, t["index"][:, None, None].expand(-1, crops, 1))[..., 0]
            if self.kind is ClassLogProb:
                values = values - logits.logsumexp(dim=2)
            elif self.kind is ClassMargin:
                values = values - (logits.sum(dim=2) - values) / (logits.shape[2] - 1)
        else:
            grid = source.view(k, crops, *source.shape[1:])  # (K, n, C, H, W)
            if self.kind is Channel:
                values = grid[samples, :, t["index"]].mean(dim=(-2, -1))
            elif self.kind is Neuron:
                values = grid[samples, :, t["index"], t["y"], t["x"]]
            else:
                picked = grid[samples]  # (T, n, C, H, W)
                vectors = t["vectors"]
                dots = torch.einsum("tnchw,tc->tnhw", picked, vectors)
                if self.cosine or self.power:
                    norms = picked.norm(dim=2) * vectors.norm(dim=1)[:, None, None, None]
                    cosines = dots / norms.clamp_min(1e-8)
                    dots = cosines if self.cosine else dots * cosines.clamp_min(COSINE_FLOOR) ** self.power
                values = dots.mean(dim=(-2, -1))
        out = torch.zeros((k, crops), device=source.device, dtype=torch.float32)
        return out.index_add(0, samples, values * t["weights"][:, None])


def evaluate(
    objectives: Sequence[Objective], activations: Activations, crops: int, reduce: bool = True
) -> torch.Tensor:
    """Values of K objectives on K*crops rows: (K,) means over each sample's crops, or (K, crops)."""
    return BatchObjective(objectives, crops)(activations, reduce)
