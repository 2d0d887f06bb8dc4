"""Width scaling: the cell that beats the reference designs most, tried at the space's other widths.

The paper's design reaches every latency budget by width alone, and a front is judged against that
family at every budget (search/family.py). A 20-trial study finds a cell that beats the family at one
width, but rarely the same cell at the others: the candidates' expected improvement is spread over
the whole space. EfficientNet's recipe (search a cell at one size, then scale it) closes that gap:
the best cell, by its proxy margin over the references' own proxy curve, goes to each width of the
space it has not had, the width farthest (in log width) from those it has had first, so a short
study spreads it over the budgets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from search.family import FamilyCurve, margin
from search.strategy._costs import within_limits
from search.strategy._history import Scored
from search.strategy._objectives import Roles
from space.search_space import SearchSpace
from space.spec import ArchSpec


def cell_of(arch: Mapping) -> tuple:
    """An arch without its width: what width scaling keeps."""
    return tuple(sorted((k, str(v)) for k, v in arch.items() if k != "width"))


def best_cell(done: Sequence[Scored], references: Sequence[dict], roles: Roles) -> dict | None:
    """The scored non-reference arch of largest margin over the curve of the scored references
    (trained objective against cost); None when none lies above that curve."""
    ref_cells = {cell_of(a) for a in references}
    points = [(roles.point(s.value, s.cost), s.arch) for s in done]
    refs = [(cost, -loss) for (loss, cost), arch in points if cell_of(arch) in ref_cells]
    if not refs or min(c for c, _ in refs) <= 0:
        return None
    curve = FamilyCurve.from_points(refs)
    best, best_margin = None, 0.0
    for (loss, cost), arch in points:
        m = None if cell_of(arch) in ref_cells else margin(curve, cost, -loss)
        if m is not None and m > best_margin:
            best, best_margin = arch, m
    return best


def next_width(
    cell: dict, space: SearchSpace, seen: set[str], limits: Mapping[str, float]
) -> dict | None:
    """`cell` at the untried width of the space farthest in log width from its tried ones (valid,
    within the cost limits); None when it has had every width."""
    widths = [int(w) for w in space.axes.get("width", ())]
    tried, untried = [], []
    for w in widths:
        arch = {**cell, "width": w}
        if not space.is_valid(arch) or not within_limits(arch, limits):
            continue
        (tried if ArchSpec.from_dict(arch).arch_id in seen else untried).append(arch)
    if not untried:
        return None
    if not tried:
        return untried[0]

    def gap(arch: dict) -> float:
        return min(abs(math.log(arch["width"] / t["width"])) for t in tried)

    return max(untried, key=gap)
