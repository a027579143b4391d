"""A position as one factor: the log ratio of what protects it to what it owes, with the joint vol of
its assets.

Pure: math only (one pass over a position's legs; the planner calls this for every amount it tries).

Every position the keeper watches has a margin linear in the assets' price ratios ``m_a``
(``keeper.risk.probability`` module doc): ``margin = sum_a e_a m_a + k`` where ``e_a`` is the
asset's weighted collateral minus its debt (USD) and ``k`` the same for stable legs (held fixed).
Split it into what protects the position, ``N = sum e_a+ + k+``, and what it owes,
``D = sum e_a- + k-``: it is liquidated when ``N < D``, so the factor is ``Y = log(N / D)``, started
at ``x = log(N0 / D0)`` (``log(health)`` for lending) and liquidated at 0. Its weights are
``w_a = e_a / N0`` for a protecting asset and ``-e_a / D0`` for an owed one, and its hourly vol is
``sqrt(w' Sigma w)`` with ``Sigma`` from the market's vols and correlations.

Why this is on the safe side where it is not exact:

* the protecting side: ``log(sum c_a e^(X_a)) >= sum w_a X_a + log N0`` at every instant (Jensen),
  so the linear factor reaches the barrier no later than the true ratio: for stable debt (the common
  case) the P of the linear factor is an upper bound — exact for one collateral asset, for perps,
  and when every collateral moves as one (correlation 1);
* the owed side (volatile debt): Jensen runs the other way, so the barrier is moved nearer by the
  debt basket's convexity, ``0.5 (sum v_a s_a^2 - v' Sigma v) h`` (second order: the Jensen gap
  over the horizon), an approximation checked against Monte Carlo in the tests;
* an unknown correlation takes, per pair, the end of [0, 1] that raises the factor's variance.

A jump (a market-wide gap) moves every volatile asset on one side together: the factor moves by at
most ``J = max(sum w+, sum w-)`` per unit of jump, the law's ``jump_exposure``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from keeper.domain import Position, Side
from keeper.risk.health import perp_threshold
from keeper.risk.market import Market, is_stable


@dataclass(frozen=True)
class Factor:
    x: float                      # log distance to liquidation (> 0)
    sigma: float                  # hourly vol of the factor
    jump_exposure: float
    debt_convexity: float         # per hour: move the barrier nearer by this x horizon hours
    driver: str                   # the asset contributing most of the factor's variance
    extra: tuple[float, ...] = ()  # the driver's regime state (law-specific)


def exposures_of(position: Position) -> tuple[bool, dict[str, float], float] | None:
    """(liquidated now, {volatile symbol: e_a}, k) of one position, or None when it cannot be
    liquidated (no debt, no open size). Lending sums follow ``probability.liquidated_now``."""
    if position.perp is not None:
        p = position.perp
        if p.size_usd <= 0:
            return None
        t = perp_threshold(p.margin_fees_usd, p.liquidation_fee_usd, p.size_usd, p.max_leverage)
        sign = 1.0 if p.is_long else -1.0
        slope = p.size_usd * p.mark_price / p.average_price
        c = p.collateral_usd - t - sign * p.size_usd
        sym = p.index.symbol
        if is_stable(sym):
            return (sign * slope + c < 0), {}, sign * slope + c
        return (sign * slope + c < 0), {sym: sign * slope}, c
    e: dict[str, float] = {}
    k = margin = 0.0
    at_risk = False
    for leg in position.legs:
        v = leg.amount_raw / 10**leg.asset.decimals * leg.price_usd  # Leg.value_usd
        if leg.side is Side.COLLATERAL:
            term = v * leg.liquidation_weight
        else:
            term = -v
            at_risk |= v > 0
        margin += term
        sym = leg.asset.symbol
        if is_stable(sym) or sym == "USD":
            k += term
        else:
            e[sym] = e.get(sym, 0.0) + term
    if not at_risk:
        return None
    return margin < 0, e, k


def reduce_position(position: Position, market: Market, *, shape: bool = False) -> Factor | float:
    """The position's factor, or a fixed P: 0.0 (nothing can liquidate it), 1.0 (liquidated now).
    ``shape``: the factor even when liquidated now (its ``x`` is then <= 0), for the levels a
    policy sets from the factor's vol; still 0.0 when nothing can liquidate it."""
    ex = exposures_of(position)
    if ex is None:
        return 0.0
    now, e, k = ex
    if now and not shape:
        return 1.0
    n = max(k, 0.0) + sum(v for v in e.values() if v > 0)
    d = max(-k, 0.0) + sum(-v for v in e.values() if v < 0)
    if d <= 0:
        return 0.0
    if n <= 0:
        return 1.0
    if n <= d and not shape:
        return 1.0
    syms = [s for s, v in e.items() if v != 0]
    if len(syms) == 1:  # one volatile asset (perps, single-collateral lending): no correlation to weigh
        s = syms[0]
        st = market.state(s)
        w1 = e[s] / n if e[s] > 0 else e[s] / d
        return Factor(math.log(n / d), abs(w1) * st.sigma, abs(w1), 0.0, s, st.extra)
    w, sig, extra = [], [], []
    for s in syms:
        st = market.state(s)
        w.append(e[s] / n if e[s] > 0 else e[s] / d)
        sig.append(st.sigma)
        extra.append(st.extra)
    var = 0.0
    contrib = [0.0] * len(syms)
    for i in range(len(syms)):
        wi_si = w[i] * sig[i]
        for j in range(len(syms)):
            term = wi_si * w[j] * sig[j]
            if i != j:
                rho = market.rho(syms[i], syms[j])
                if rho is None:  # unknown: the riskier end of [0, 1]
                    rho = 1.0 if term > 0 else 0.0
                term *= rho
            var += term
            contrib[i] += term
    jp = sum(x for x in w if x > 0)
    jn = sum(-x for x in w if x < 0)
    conv = 0.0
    if jn > 0:  # the owed basket's Jensen gap per hour (v = debt weights, all >= 0)
        idx = [i for i in range(len(syms)) if w[i] < 0]
        lin = sum(-w[i] * sig[i] ** 2 for i in idx)
        quad = 0.0
        for i in idx:
            for j in idx:
                rho = 1.0 if i == j else market.rho(syms[i], syms[j])
                quad += w[i] * w[j] * sig[i] * sig[j] * (0.0 if rho is None else rho)
        conv = max(0.5 * (lin - quad), 0.0)
    top = max(range(len(syms)), key=lambda i: contrib[i]) if syms else -1
    return Factor(math.log(n / d), math.sqrt(max(var, 0.0)), max(jp, jn), conv,
                  syms[top] if top >= 0 else "", extra[top] if top >= 0 else ())
