"""The archs one ask chooses among: random archs of the space plus one-axis changes of the front."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from search.strategy._costs import within_limits
from search.strategy._history import Scored
from search.strategy._objectives import Roles
from space.search_space import SearchSpace
from space.spec import ArchSpec

CONDITIONAL = ("branch_split", "gate_init")  # axes that only apply to some blocks and gates


class CandidatePool:
    """Candidates, none already in the study nor over a limit. It owns the strategy's random stream:
    the draw and the pick while the study is too young for the surrogate."""

    def __init__(
        self, space: SearchSpace, size: int, limits: Mapping[str, float], seed: int | None
    ):
        self.space, self.size, self.limits = space, size, limits
        self.rng = np.random.default_rng(seed)
        self._grid: list[dict] | None = None
        self._drawn: dict[str, dict] = {}  # the random candidates, kept from ask to ask

    def reseed(self) -> None:
        self.rng = np.random.default_rng()

    def pick(self, pool: Sequence[dict]) -> dict:
        """One candidate at random."""
        return pool[int(self.rng.integers(len(pool)))]

    def build(self, seen: set[str], front: Sequence[dict]) -> list[dict]:
        """Random archs of the space plus one-axis changes of the `front` archs, none seen."""
        pool = dict(self.draw(seen))
        for arch in front:
            for n in self.neighbours(arch):
                pool.setdefault(ArchSpec.from_dict(n).arch_id, n)
        return [a for i, a in pool.items() if i not in seen and within_limits(a, self.limits)]

    def draw(self, seen: set[str]) -> dict[str, dict]:
        """`size` random archs not yet seen. Each ask replaces only a quarter of them, the oldest:
        counting a new arch's FLOPs costs 0.05-0.5 s, and 64 new ones per ask took 6-30 s."""
        if self._grid is None:
            self._grid = self.space.grid()
        unseen = [(i, a) for i, a in self._drawn.items() if i not in seen]
        keep = max(self.size - max(1, self.size // 4), 0)
        kept = dict(unseen[max(len(unseen) - keep, 0) :])  # the newest `keep`
        size = min(self.size, len(self._grid))
        for i in self.rng.permutation(len(self._grid)):
            if len(kept) >= size:
                break
            arch_id = ArchSpec.from_dict(self._grid[i]).arch_id
            if arch_id not in seen:
                kept.setdefault(arch_id, self._grid[i])
        self._drawn = kept
        return kept

    def neighbours(self, arch: dict) -> list[dict]:
        """The valid archs one choice away from `arch`."""
        out = []
        for key, choices in self.space.axes.items():
            for v in choices:
                if len(choices) > 1 and v != arch.get(key) and key not in CONDITIONAL:
                    out.append(self._repair({**arch, key: v}))
                elif key in CONDITIONAL and self.space.active(key, arch) and v != arch.get(key):
                    out.append({**arch, key: v})
        return [a for a in out if a is not None and self.space.is_valid(a)]

    def _repair(self, arch: dict) -> dict:
        # a changed block or gate turns a conditional axis on or off: on, it takes the space's
        # first value
        for key in CONDITIONAL:
            active = self.space.active(key, arch)
            if active and arch.get(key) is None:
                arch[key] = self.space.axes.get(key, (None,))[0]
            elif not active:
                arch[key] = None
        return arch


def front_archs(done: Sequence[Scored], roles: Roles) -> list[dict]:
    """The archs of the scored trials that no other scored trial dominates."""
    pts = np.array([roles.point(s.value, s.cost) for s in done]).reshape(-1, 2)
    return [
        done[i].arch
        for i in range(len(done))
        if not ((pts <= pts[i]).all(axis=1) & (pts < pts[i]).any(axis=1)).any()
    ]
