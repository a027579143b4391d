"""Morpho pre-liquidation parameters from the risk model (``keeper preliq plan``). Pure.

A Morpho pre-liquidation contract (morpho-org/pre-liquidation) lets anyone repay part of a borrower's
debt, at a small incentive, once the position's LTV passes ``preLltv`` and before it reaches the
market's LLTV: a backstop that works while the keeper is down. Its close factor and incentive rise
linearly across that band, from ``preLCF1``/``preLIF1`` at ``preLltv`` to ``preLCF2``/``preLIF2`` at
the LLTV. The proposal puts the band where the risk model says a partial liquidation at a small
incentive is worth its cost:

- ``preLltv``: the LTV at which the position's P(liquidation within the horizon) reaches the policy's
  budget ``epsilon``: where the keeper itself would protect it (bounded to 1-15 points under the LLTV);
- ``preLCF1``: what one pre-liquidation at ``preLltv`` repays so that the position lands at the
  keeper's target level (P = ``epsilon * target_fraction``), the incentive paid included;
- ``preLCF2`` = 1: at the LLTV the whole debt may be repaid, so a pre-liquidation always comes before
  a full one;
- ``preLIF1`` = ``PRE_LIF1`` (1 %: enough for a liquidator's gas and swap), ``preLIF2`` halfway to
  Morpho's own incentive at this LLTV (never above ``1 / LLTV``, as the contract requires).

The explanation compares, at ``preLltv``, the certain cost of the first pre-liquidation (its incentive
on what it repays) with the expected cost of a full liquidation within the horizon (P times Morpho's
incentive on the debt). LTV moves are modelled as moves of the collateral's price (the debt fixed)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from keeper.domain import WAD, Position, Protocol, Side, evolved
from keeper.plan.policy import Policy
from keeper.plan.whatif import _health_wad
from keeper.risk.health import lending_health
from keeper.risk.model import RiskModel
from keeper.risk.probability import morpho_incentive

PRE_LIF1 = 1.01
MIN_GAP, MAX_GAP = 0.01, 0.15  # preLltv this far under the LLTV, at least and at most


@dataclass(frozen=True)
class PreLiqParams:
    pre_lltv: float
    pre_lcf1: float
    pre_lcf2: float
    pre_lif1: float
    pre_lif2: float

    def as_wad(self) -> tuple[int, int, int, int, int]:
        """The contract's (preLltv, preLCF1, preLCF2, preLIF1, preLIF2), 1e18-scaled; preLltv rounded
        down (pre-liquidable a little earlier), the incentives down (the borrower pays no more)."""
        return (math.floor(self.pre_lltv * WAD), math.ceil(self.pre_lcf1 * WAD), math.ceil(self.pre_lcf2 * WAD),
                math.floor(self.pre_lif1 * WAD), math.floor(self.pre_lif2 * WAD))


@dataclass(frozen=True)
class PreLiqProposal:
    params: PreLiqParams
    lltv: float
    ltv_now: float
    target_ltv: float  # where one pre-liquidation at preLltv lands the position
    p_now: float
    p_at_pre_lltv: float
    morpho_lif: float
    pre_cost_usd: float  # the incentive paid by one pre-liquidation at preLltv
    full_expected_usd: float  # P(liquidation) at preLltv x Morpho's incentive on the debt

    def explain(self) -> str:
        p = self.params
        return (f"LTV now {self.ltv_now:.3f} (P {self.p_now:.2%}); LLTV {self.lltv:.3f}, Morpho's incentive "
                f"{self.morpho_lif - 1:.2%}. Pre-liquidation from LTV {p.pre_lltv:.4f}, where P reaches the budget "
                f"({self.p_at_pre_lltv:.2%}): a first pre-liquidation repays {p.pre_lcf1:.1%} of the debt at a "
                f"{p.pre_lif1 - 1:.1%} incentive and lands the position at LTV {self.target_ltv:.3f}; at the LLTV "
                f"up to {p.pre_lcf2:.0%} at {p.pre_lif2 - 1:.2%}. At LTV {p.pre_lltv:.4f} that first one costs "
                f"{self.pre_cost_usd:,.2f} USD against {self.full_expected_usd:,.2f} USD expected from a full "
                f"liquidation within the horizon.")


def _at_ltv(pos: Position, ltv_now: float, ltv: float) -> Position:
    """``pos`` with its collateral's price scaled so that its LTV is ``ltv`` (the debt unchanged)."""
    f = ltv_now / ltv
    legs = tuple(evolved(leg, price_usd=leg.price_usd * f) if leg.side is Side.COLLATERAL else leg for leg in pos.legs)
    return evolved(pos, legs=legs, health_wad=_health_wad(lending_health(legs)))


def _ltv_where(pos: Position, risk: RiskModel, ltv_now: float, lo: float, hi: float, p_goal: float) -> float:
    """The least LTV in ``[lo, hi]`` where P reaches ``p_goal`` (``hi`` when it never does; ``lo``
    when it does already): bisection, P rising with the LTV."""
    if risk.p_liq(_at_ltv(pos, ltv_now, lo)) >= p_goal:
        return lo
    if risk.p_liq(_at_ltv(pos, ltv_now, hi)) < p_goal:
        return hi
    for _ in range(40):
        mid = (lo + hi) / 2
        if risk.p_liq(_at_ltv(pos, ltv_now, mid)) >= p_goal:
            hi = mid
        else:
            lo = mid
    return lo


def propose(pos: Position, risk: RiskModel, policy: Policy, lltv: float) -> PreLiqProposal:
    """Pre-liquidation parameters for a Morpho Blue position with one collateral (see the module doc)."""
    if pos.protocol is not Protocol.MORPHO_BLUE or pos.perp is not None:
        raise ValueError(f"{pos.key}: pre-liquidation is Morpho Blue's")
    if not 0 < lltv < 1:
        raise ValueError(f"LLTV {lltv} is not in (0, 1)")
    pos = evolved(pos, preliq=None)  # proposed from Morpho's own liquidation, whatever is authorised now
    debt = pos.debt_usd
    collateral = pos.collateral_usd
    if debt <= 0 or collateral <= 0:
        raise ValueError(f"{pos.key} has no debt: nothing to pre-liquidate")
    ltv_now = debt / collateral
    lo, hi = max(1e-3, lltv - MAX_GAP), lltv - MIN_GAP
    pre_lltv = _ltv_where(pos, risk, ltv_now, lo, hi, policy.epsilon)
    target_ltv = _ltv_where(pos, risk, ltv_now, max(1e-3, pre_lltv - 0.5), pre_lltv, policy.target)
    # One pre-liquidation at pre_lltv repaying a share r of the debt at incentive L leaves
    # LTV (l - r l) / (1 - r l L): solved for the target.
    lif1 = PRE_LIF1
    lcf1 = (pre_lltv - target_ltv) / (pre_lltv * (1.0 - target_ltv * lif1)) if target_ltv < pre_lltv else 0.0
    lcf1 = min(1.0, max(0.01, lcf1))
    mlif = morpho_incentive(lltv)
    lif2 = max(lif1, min(1.0 / lltv, 1.0 + (mlif - 1.0) / 2.0))
    params = PreLiqParams(pre_lltv, lcf1, 1.0, lif1, lif2)
    p_pre = risk.p_liq(_at_ltv(pos, ltv_now, pre_lltv))
    return PreLiqProposal(params, lltv, ltv_now, target_ltv, risk.p_liq(pos), p_pre, mlif,
                          pre_cost_usd=(lif1 - 1.0) * lcf1 * debt, full_expected_usd=p_pre * (mlif - 1.0) * debt)
