"""Simulated positions: health, distance, liquidation on bar extremes, penalties, sizing."""

import math

import pytest

from keeper.backtest.book import LendingPosition, PerpPosition, morpho_market
from keeper.backtest.engine import lending_position


def test_lending_health_distance_and_buffer():
    pos = LendingPosition({"ETH": 10.0, "BTC": 1.0}, {"ETH": 0.8, "BTC": 0.75}, debt=20_000)
    px = {"ETH": 2000.0, "BTC": 30_000.0}
    h = (10 * 2000 * 0.8 + 30_000 * 0.75) / 20_000
    assert pos.health(px) == pytest.approx(h)
    assert pos.distance(px) == pytest.approx(1 - 1 / h)
    # every collateral price falling by the distance lands exactly on health 1
    d = pos.distance(px)
    assert pos.health({k: v * (1 - d) for k, v in px.items()}) == pytest.approx(1.0)
    assert pos.buffer_usd(px) == pytest.approx(50_000 * d)
    assert pos.topup_symbol == "ETH"


def test_lending_liquidates_on_the_low_not_the_close_and_charges_the_penalty():
    pos = lending_position("ETH", 100.0, health=1.25, debt_usd=1000.0, lt=0.8, penalty=0.05)
    assert not pos.breached({"ETH": 81.0}, {"ETH": 100.0})
    assert pos.breached({"ETH": 79.0}, {"ETH": 100.0})
    before = pos.collateral["ETH"]
    penalty = pos.liquidate({"ETH": 79.0}, {"ETH": 100.0})
    assert pos.debt == pytest.approx(500.0)            # close factor 50% above 0.95
    assert penalty == pytest.approx(500.0 * 0.05)
    assert pos.collateral["ETH"] == pytest.approx(before - 525.0 / 79.0)


def test_deep_breach_closes_everything_and_volatile_debt_uses_the_high():
    pos = LendingPosition({"ETH": 1.0}, {"ETH": 0.8}, debt=0.5, debt_symbol="BTC")
    assert pos.health({"ETH": 1000.0, "BTC": 1000.0}) == pytest.approx(1.6)
    assert pos.breached({"ETH": 1000.0, "BTC": 900.0}, {"ETH": 1000.0, "BTC": 1700.0})
    pos.liquidate({"ETH": 1000.0, "BTC": 900.0}, {"ETH": 1000.0, "BTC": 1700.0})
    assert pos.debt == 0 and pos.closed


def test_morpho_market_incentive_and_full_close():
    m = morpho_market("WSTETH", 1.0, debt=800.0, lltv=0.86)
    assert m.penalty == pytest.approx(min(1.15, 1 / (1 - 0.3 * 0.14)) - 1)
    assert m.breached({"WSTETH": 900.0}, {"WSTETH": 900.0})
    m.liquidate({"WSTETH": 900.0}, {"WSTETH": 900.0})
    assert m.closed


def test_size_to_distance_round_trip_lending():
    pos = lending_position("ETH", 2000.0, health=1.2)
    px = {"ETH": 2000.0}
    pos.apply(pos.size_to_distance(0.3, px), px)
    assert pos.distance(px) == pytest.approx(0.3)
    pos.apply(pos.size_to_distance(0.1, px), px)      # a withdrawal
    assert pos.distance(px) == pytest.approx(0.1)


@pytest.mark.parametrize("is_long", [True, False])
def test_perp_liquidation_side_funding_and_sizing(is_long):
    p = PerpPosition("ETH", is_long, size_usd=10_000, collateral_usd=1_000, average_price=2000.0,
                     margin_fee_bps=10, liquidation_fee_usd=5, max_leverage=50, funding_per_hour=2e-4)
    px = {"ETH": 2000.0}
    d0 = p.distance(px)
    # GMX v1: threshold = max(10 fee + 5, 10000 / 50) = 200: slack 800 / 10000 = 8%
    assert d0 == pytest.approx(0.08)
    p.accrue(1)                                        # 1 h x 2e-4 x 10k = 2 USD of funding: fees + 5 < 200 still
    assert p.distance(px) == pytest.approx(d0)
    p.accrue(99)                                       # 200 USD of funding in all: threshold 210 + 5 = 215
    assert p.distance(px) == pytest.approx(0.0785)
    assert p.distance(px) < d0
    liq = p.liquidation_price()
    lo, hi = ({"ETH": liq * 0.999}, {"ETH": 2000.0}) if is_long else ({"ETH": 2000.0}, {"ETH": liq * 1.001})
    assert p.breached(lo, hi)
    safe_lo, safe_hi = ({"ETH": liq * 1.01}, {"ETH": 2000.0}) if is_long else ({"ETH": 2000.0}, {"ETH": liq * 0.99})
    assert not p.breached(safe_lo, safe_hi)
    p.apply(p.size_to_distance(0.2, px), px)
    assert p.distance(px) == pytest.approx(0.2)
    held = p.collateral_usd
    assert p.liquidate(lo, hi) == pytest.approx(held)   # GMX: the remaining collateral is lost
    assert p.closed and not p.breached(lo, hi)


def test_no_debt_is_infinitely_safe():
    pos = LendingPosition({"ETH": 1.0}, {"ETH": 0.8}, debt=0.0)
    assert math.isinf(pos.health({"ETH": 1.0})) and pos.distance({"ETH": 1.0}) == 1.0
    assert not pos.breached({"ETH": 0.01}, {"ETH": 0.01})
