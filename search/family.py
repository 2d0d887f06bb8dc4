"""A hand design's family: the design at a ladder of sizes, its curve, and a found arch's margin over it.

The yardstick of NAS papers (MnasNet, EfficientNet, Lite-HRNet) is not the hand design at one size
but the design scaled over sizes: PCK against latency, the searched architectures above that curve.
A user picks by latency budget, and the paper's design reaches any budget by width alone.

`family_ladder` puts a reference design (space.references) at widths spanning the search space's
latency range at its smallest stacks and depth, plus deeper and 2-stack members. `FamilyCurve` is the
upper envelope of the family's trained points in PCK against log latency, linear between neighbours;
`margin` is a found arch's PCK minus the curve at the arch's own latency, None outside the family's
latency range (nothing can be said there).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from space.references import SHAPE_KEYS, project_reference
from space.spec import ArchSpec

# 40 fills the widest latency gap of the curve (1 x 32 at depth 4 to 1 x 48): without it a found arch
# there was measured against a straight line, not a member (docs/results.md section 8).
LADDER_WIDTHS = (16, 24, 32, 40, 48, 64, 96)


def ladder_shapes(
    base: Mapping[str, Any], widths: Sequence[int] = LADDER_WIDTHS
) -> list[dict[str, Any]]:
    """(stacks, width, depth) points of a family: every width at `base`'s stacks and depth, then one
    member a level deeper and one with a stack more, both at the middle width (a family scales by
    more than width)."""
    stacks, depth = int(base["stacks"]), int(base["depth"])
    shapes = [{"stacks": stacks, "width": int(w), "depth": depth} for w in widths]
    middle = sorted(widths)[len(widths) // 2 - 1] if len(widths) > 1 else widths[0]
    shapes.append({"stacks": stacks, "width": int(middle), "depth": depth + 1})
    shapes.append({"stacks": stacks + 1, "width": int(middle), "depth": depth})
    return shapes


def family_ladder(
    name: str, base: Mapping[str, Any], widths: Sequence[int] = LADDER_WIDTHS
) -> list[dict[str, Any]]:
    """Reference design `name` at each shape of `ladder_shapes(base)`, as ArchSpec dicts; `base` gives
    the other shape fields (joints, input size, supervision). Shapes the design cannot take (a width
    the split does not divide) are left out."""
    fixed = {k: base[k] for k in SHAPE_KEYS if k in base}
    archs: dict[str, dict[str, Any]] = {}
    for shape in ladder_shapes(base, widths):
        try:
            arch = project_reference(fixed | shape, name)
        except ValueError:  # ConfigError is a ValueError: an unbuildable size
            continue
        archs.setdefault(ArchSpec.from_dict(arch).arch_id, arch)
    return list(archs.values())


@dataclass(frozen=True)
class FamilyCurve:
    """Upper envelope of (latency, score) points in score against log latency."""

    latency: tuple[float, ...]  # the envelope's points, increasing
    score: tuple[float, ...]
    max_latency: float  # the slowest member, on the envelope or not: the range ends there

    @classmethod
    def from_points(cls, points: Sequence[tuple[float, float]]) -> FamilyCurve:
        """The points no other point beats (higher score at no more latency), by latency."""
        if not points:
            raise ValueError("a family curve needs at least one trained point")
        best: list[tuple[float, float]] = []
        for lat, score in sorted(points, key=lambda p: (p[0], -p[1])):
            if not best or score > best[-1][1]:
                best.append((float(lat), float(score)))
        slowest = max(float(p[0]) for p in points)
        return cls(tuple(p[0] for p in best), tuple(p[1] for p in best), slowest)

    def __call__(self, latency: float) -> float | None:
        """The curve at `latency`; None outside the family's latency range. Between two envelope
        points, linear in log latency; past the envelope's last point (a slower member that scored
        lower is still in range) the curve stays flat at its best score."""
        if not self.latency[0] <= latency <= self.max_latency:
            return None
        if latency >= self.latency[-1]:
            return self.score[-1]
        for i in range(len(self.latency) - 1):
            lo, hi = self.latency[i], self.latency[i + 1]
            if lo <= latency <= hi:
                t = (math.log(latency) - math.log(lo)) / (math.log(hi) - math.log(lo))
                return self.score[i] + t * (self.score[i + 1] - self.score[i])
        return self.score[0]


def margin(curve: FamilyCurve, latency: float, score: float) -> float | None:
    """`score` minus the family's curve at `latency`; None outside the family's latency range."""
    at = curve(latency)
    return None if at is None else score - at


@dataclass(frozen=True)
class Margin:
    """A found arch against one family's curve, in PCK points (percent)."""

    arch_id: str
    latency_ms: float
    margin: float | None  # None: outside the family's latency range
    spread: float | None  # the found arch's seed std, in points; None with one seed


def family_margins(rows: Sequence[Mapping[str, Any]], family: str) -> list[Margin]:
    """Each found row's margin over `family`'s curve, built from the rows of the family's members
    (`family` column; a found arch can be one): score `test_mean`, latency `latency_ms`."""
    members = [r for r in rows if r.get("family") == family]
    curve = FamilyCurve.from_points([(r["latency_ms"], r["test_mean"]) for r in members])
    out = []
    for r in rows:
        if r["source"] in ("found", "found+reference"):
            m = margin(curve, r["latency_ms"], r["test_mean"])
            spread = None if r.get("test_std") is None else 100 * r["test_std"]
            out.append(
                Margin(r["arch_id"], r["latency_ms"], None if m is None else 100 * m, spread)
            )
    return out


def summary_line(family: str, margins: Sequence[Margin], seeds: int) -> str:
    """`margin over the paper family: median X.XX, best Y.YY PCK over N found archs, S seeds`
    (archs outside the family's latency range are not counted, and said)."""
    inside = [m.margin for m in margins if m.margin is not None]
    outside = len(margins) - len(inside)
    tail = f" ({outside} outside its latency range)" if outside else ""
    if not inside:
        return f"margin over the {family} family: no found arch inside its latency range{tail}"
    med = statistics.median(inside)
    return (
        f"margin over the {family} family: median {med:+.2f}, best {max(inside):+.2f} PCK over "
        f"{len(inside)} found archs, {seeds} seeds{tail}"
    )
