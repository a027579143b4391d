"""Price-move bands in the product's planner, as the backtests' RiskPolicy(target_gap, release_gap):
a protective action lands a log move ``target_gap`` beyond the distance where P = epsilon; excess is
released only ``release_gap`` beyond that, and down to the target."""

import math

import pytest

from keeper.domain import ActionKind
from keeper.plan.planner import Policy, levels_of, plan
from keeper.risk.joint import reduce_position
from keeper.risk.laws import TailLaw
from keeper.risk.model import LawRisk
from tests.plan.test_planner import ASSETS, BIG, aave, apply, only

LAW = TailLaw(nu=4.0, lam_u=0.02, u=0.03, xi=0.25, beta=0.013)
RISK = LawRisk.from_annual(LAW, {"WETH": 0.8, "WBTC": 0.7}, 2.0)
GAPS = Policy(epsilon=1e-4, horizon_hours=2.0, target_gap=0.07, release_gap=0.10, min_action_usd=50,
              cooldown_blocks=0, release_cooldown_blocks=0)


def distance_at(pos, p_level: float) -> float:
    """The factor's log distance at which the model's P equals ``p_level`` (bisection)."""
    f = reduce_position(pos, RISK.market, shape=True)
    lo, hi = 0.0, 5.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if LAW.prob_scalar(mid, f.sigma, 2.0, f.jump_exposure, f.extra) > p_level else (lo, mid)
    return hi


def test_levels_are_the_band_distances():
    pos = aave(10, 12_000)
    target, release = levels_of(RISK, GAPS, pos)
    d_eps = distance_at(pos, GAPS.epsilon)
    assert distance_at(pos, target) == pytest.approx(d_eps + 0.07, abs=1e-9)
    assert distance_at(pos, release) == pytest.approx(d_eps + 0.17, abs=1e-9)  # log moves add
    assert release < target < GAPS.epsilon
    with pytest.raises(ValueError):
        Policy(target_gap=0.05)


def test_protect_lands_at_the_band_and_release_comes_back_to_it():
    risky = aave(10, 15_000)  # health ~1.11: far inside the trigger distance for these jumps
    assert RISK.p_liq(risky) > GAPS.epsilon
    a = only(plan([risky], RISK, BIG, ASSETS, GAPS, block=200))
    assert a.kind in (ActionKind.TOP_UP, ActionKind.REPAY)
    (after,) = apply([risky], plan([risky], RISK, BIG, ASSETS, GAPS, block=200), block=201)
    target, _ = levels_of(RISK, GAPS, risky)
    assert RISK.p_liq(after) <= target * (1 + 1e-6)
    d_eps = distance_at(risky, GAPS.epsilon)
    assert math.log(after.health) == pytest.approx(d_eps + 0.07, abs=2e-3)  # one asset, stable debt
    # far beyond the release distance: released, down to (not below) the target band
    rich = aave(30, 12_000)
    _, release = levels_of(RISK, GAPS, rich)
    assert RISK.p_liq(rich) < release
    r = only(plan([rich], RISK, BIG, ASSETS, GAPS, block=300))
    assert r.kind is ActionKind.WITHDRAW_EXCESS and "release level" in r.reason.note
    (left,) = apply([rich], plan([rich], RISK, BIG, ASSETS, GAPS, block=300), block=301)
    target_rich, _ = levels_of(RISK, GAPS, rich)
    assert RISK.p_liq(left) <= target_rich * (1 + 1e-6)
    # between the target and the release distances: nothing to do (the hysteresis band)
    assert plan([after], RISK, BIG, ASSETS, GAPS, block=400).actions == ()
