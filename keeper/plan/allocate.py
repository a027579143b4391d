"""One reserve shared by all positions of an owner: least capital for the risk target, and when the
reserve cannot cover every position, the allocation that avoids the most expected loss.

Each :class:`Need` is a position's menu: committing ``cost`` USD of one reserve pool (an asset)
lowers its P(liquidation) from ``p_before`` to ``p_after(cost)``, given at a few points (the last
one reaches the target). The expected loss avoided is ``penalty * size * (p_before - p_after)``.

* Enough reserve in every pool: each position gets exactly its target cost — the least capital
  committed such that every position meets its target.
* Short: maximise the total expected loss avoided within each pool's budget. Benefit is taken on
  the upper concave hull of each menu (partial top-ups between menu points are allowed), so the
  problem is a fractional knapsack per pool, and greedy by marginal benefit per USD is optimal
  (:func:`brute_force` checks it on small books). Pools are independent: a need draws from one.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

ANY = "*"
EPS = 1e-12


@dataclass(frozen=True)
class Need:
    key: str
    p_before: float
    penalty: float  # fraction of ``size_usd`` lost if liquidated (bonus x close factor; perps: 1)
    size_usd: float  # debt (lending) or collateral at stake (perps)
    options: tuple[tuple[float, float], ...]  # (cost_usd, p_after), cost increasing; last = target
    pool: str = ANY

    def __post_init__(self) -> None:
        costs = [c for c, _ in self.options]
        if not self.options or any(c <= 0 for c in costs) or costs != sorted(costs):
            raise ValueError(f"{self.key}: options need positive, increasing costs")

    @property
    def target_cost(self) -> float:
        return self.options[-1][0]

    @property
    def loss_weight(self) -> float:
        return self.penalty * self.size_usd

    def points(self) -> list[tuple[float, float]]:
        """(cost, expected loss avoided), starting at (0, 0)."""
        w = self.loss_weight
        return [(0.0, 0.0)] + [(c, w * max(0.0, self.p_before - p)) for c, p in self.options]

    def hull(self) -> list[tuple[float, float]]:
        """Upper concave hull of :meth:`points` (increasing cost, decreasing slope)."""
        out: list[tuple[float, float]] = []
        for pt in self.points():
            if out and pt[1] <= out[-1][1] + EPS:
                continue  # more cost, no more benefit
            while len(out) >= 2 and _cross(out[-2], out[-1], pt) >= 0:
                out.pop()
            out.append(pt)
        return out

    def benefit(self, cost: float) -> float:
        """Expected loss avoided by committing ``cost`` (linear between hull points)."""
        h = self.hull()
        for (c0, b0), (c1, b1) in itertools.pairwise(h):
            if cost <= c1 + EPS:
                return b0 + (b1 - b0) * max(0.0, cost - c0) / (c1 - c0)
        return h[-1][1]


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


@dataclass(frozen=True)
class Allocation:
    grants: dict[str, float]  # USD granted per need key (0 when nothing)
    benefit: float  # total expected loss avoided, USD
    committed_usd: float
    uncovered: tuple[str, ...]  # needs granted less than their target cost
    reserve_short: bool
    message: str = ""

    def covered(self, key: str) -> bool:
        return key not in self.uncovered


def _pooled(needs: Sequence[Need], budget: float | Mapping[str, float]) -> tuple[list[Need], dict[str, float]]:
    """A single USD ``budget`` is one pool shared by every need; a mapping gives one per pool."""
    if isinstance(budget, Mapping):
        return list(needs), {n.pool: float(budget.get(n.pool, 0.0)) for n in needs}
    return [replace(n, pool=ANY) for n in needs], {ANY: float(budget)}


def allocate(needs: Sequence[Need], budget: float | Mapping[str, float]) -> Allocation:
    """USD granted per need under ``budget``: a number is one USD budget shared by every need
    (pools ignored); a mapping is a USD budget per pool (a pool it does not name has none).
    See the module doc."""
    keys = [n.key for n in needs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate need keys")
    needs, budgets = _pooled(needs, budget)
    demand: dict[str, float] = {}
    for n in needs:
        demand[n.pool] = demand.get(n.pool, 0.0) + n.target_cost
    grants = {n.key: 0.0 for n in needs}
    short_pools = {p for p, d in demand.items() if d > budgets[p] + EPS}
    for n in needs:
        if n.pool not in short_pools:
            grants[n.key] = n.target_cost  # least capital: exactly the target cost
    left = {p: budgets[p] for p in short_pools}
    pieces = []  # (slope, need index, piece index, cost width)
    for i, n in enumerate(needs):
        if n.pool not in short_pools:
            continue
        h = n.hull()
        for j, ((c0, b0), (c1, b1)) in enumerate(itertools.pairwise(h)):
            pieces.append((-(b1 - b0) / (c1 - c0), i, j, c1 - c0))
    for _slope, i, _j, width in sorted(pieces):
        n = needs[i]
        take = min(width, left[n.pool])
        if take <= EPS:
            continue
        grants[n.key] += take
        left[n.pool] -= take
    for n in needs:  # a need whose hull stops short of its target cost keeps what the hull gives
        if n.pool in short_pools:
            grants[n.key] = min(grants[n.key], n.target_cost)
    uncovered = tuple(n.key for n in needs if grants[n.key] < n.target_cost - 1e-9)
    benefit = sum(n.benefit(grants[n.key]) for n in needs)
    message = ""
    if short_pools:
        parts = [f"{p}: need {demand[p]:,.2f} USD, have {budgets[p]:,.2f}" for p in sorted(short_pools)]
        lacking = [f"{k} ({grants[k]:,.2f} of {next(n.target_cost for n in needs if n.key == k):,.2f} USD)"
                   for k in uncovered]
        message = ("reserve short (" + "; ".join(parts) + "): not at target: " + ", ".join(lacking)
                   + f"; allocated by expected loss avoided ({benefit:,.2f} USD)")
    return Allocation(grants, benefit, sum(grants.values()), uncovered, bool(short_pools), message)


def brute_force(needs: Sequence[Need], budget: float | Mapping[str, float]) -> float:
    """The best total expected loss avoided, by enumeration (small books only; for tests).

    Per pool, every combination of whole menu steps per need (on the raw menu points, not the
    hull), then the leftover budget into one partial next step of one need — the optimum of the
    linear relaxation has at most one fractional step per budget constraint when every menu is
    concave; a non-concave menu may do better on its hull, which :func:`allocate` uses."""
    needs, budgets = _pooled(needs, budget)
    total = 0.0
    for pool in sorted(set(n.pool for n in needs)):
        group = [n for n in needs if n.pool == pool]
        pts = [n.points() for n in group]
        best = 0.0
        for combo in itertools.product(*(range(len(p)) for p in pts)):
            cost = sum(p[k][0] for p, k in zip(pts, combo))
            if cost > budgets[pool] + 1e-9:
                continue
            value = sum(p[k][1] for p, k in zip(pts, combo))
            extra = 0.0
            rest = budgets[pool] - cost
            for p, k in zip(pts, combo):
                if k + 1 < len(p):
                    (c0, b0), (c1, b1) = p[k], p[k + 1]
                    extra = max(extra, (b1 - b0) * min(1.0, rest / (c1 - c0)))
            best = max(best, value + extra)
        total += best
    return total
