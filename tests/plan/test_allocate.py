"""Allocator: least capital when the reserve suffices; expected loss avoided when it is short;
greedy equals brute force on small books."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.plan.allocate import Need, allocate, brute_force


def need(key, p0=0.05, options=((100.0, 0.02), (300.0, 0.005)), penalty=0.05, size=10_000.0, pool="*"):
    return Need(key, p0, penalty, size, tuple(options), pool)


def test_enough_reserve_commits_exactly_the_target_costs():
    needs = [need("a"), need("b", options=((50.0, 0.01),))]
    alloc = allocate(needs, 1_000.0)
    assert not alloc.reserve_short and alloc.uncovered == () and alloc.message == ""
    assert alloc.grants == {"a": 300.0, "b": 50.0} and alloc.committed_usd == 350.0
    assert alloc.covered("a")


def test_short_reserve_goes_where_it_avoids_most_loss_and_says_so():
    big = need("big", size=100_000.0)
    small = need("small", size=1_000.0)
    alloc = allocate([big, small], 300.0)
    assert alloc.reserve_short and alloc.grants == {"big": 300.0, "small": 0.0}
    assert alloc.uncovered == ("small",)
    assert "reserve short" in alloc.message and "small" in alloc.message and "big (" not in alloc.message
    assert alloc.benefit == pytest.approx(0.05 * 100_000 * 0.045)


def test_partial_top_up_on_the_concave_hull():
    n = need("a")  # first 100 USD avoid 0.03 * 500, the next 200 USD 0.015 * 500
    assert n.hull() == [(0.0, 0.0), (100.0, pytest.approx(15.0)), (300.0, pytest.approx(22.5))]
    alloc = allocate([n], 200.0)
    assert alloc.grants["a"] == pytest.approx(200.0)
    assert alloc.benefit == pytest.approx(15.0 + 7.5 / 2)


def test_non_concave_menu_uses_its_hull():
    # A position that stays liquidatable until the second step: nothing, then everything.
    n = Need("x", 1.0, 0.05, 10_000.0, ((100.0, 1.0), (200.0, 0.0)))
    assert n.hull() == [(0.0, 0.0), (200.0, 500.0)]
    assert allocate([n], 100.0).benefit == pytest.approx(250.0)
    assert allocate([n], 100.0).benefit >= brute_force([n], 100.0) - 1e-9


def test_pools_are_separate_budgets():
    a, b = need("a", pool="usdc"), need("b", pool="weth")
    alloc = allocate([a, b], {"usdc": 1_000.0, "weth": 100.0})
    assert alloc.grants == {"a": 300.0, "b": 100.0} and alloc.uncovered == ("b",)
    assert "weth" in alloc.message and "usdc:" not in alloc.message
    assert allocate([a, b], 400.0).grants["a"] + allocate([a, b], 400.0).grants["b"] == pytest.approx(400.0)


def test_rejects_bad_menus():
    with pytest.raises(ValueError):
        need("a", options=((300.0, 0.01), (100.0, 0.02)))
    with pytest.raises(ValueError):
        need("a", options=())
    with pytest.raises(ValueError):
        allocate([need("a"), need("a")], 10.0)


@st.composite
def concave_need(draw, key, pools=("*",)):
    p0 = draw(st.floats(0.01, 0.9))
    k = draw(st.integers(1, 3))
    costs = draw(st.lists(st.floats(1.0, 500.0), min_size=k, max_size=k))
    weights = draw(st.lists(st.floats(0.05, 1.0), min_size=k, max_size=k))
    share = draw(st.floats(0.3, 1.0))
    drops = [p0 * share * w / sum(weights) for w in weights]
    pieces = sorted(zip(costs, drops), key=lambda cd: -cd[1] / cd[0])  # decreasing slope: concave
    options, c, p = [], 0.0, p0
    for dc, dp in pieces:
        c, p = c + dc, p - dp
        options.append((c, max(p, 0.0)))
    return Need(key, p0, draw(st.floats(0.01, 1.0)), draw(st.floats(100.0, 1e6)), tuple(options),
                draw(st.sampled_from(pools)))


@st.composite
def book(draw, pools=("*",)):
    n = draw(st.integers(1, 4))
    return [draw(concave_need(f"p{i}", pools)) for i in range(n)]


@settings(max_examples=150, deadline=None)
@given(book(), st.floats(0.0, 2_000.0))
def test_greedy_matches_brute_force_single_pool(needs, budget):
    alloc = allocate(needs, budget)
    best = brute_force(needs, budget)
    assert alloc.benefit == pytest.approx(best, rel=1e-9, abs=1e-6)
    assert alloc.committed_usd <= max(budget, sum(n.target_cost for n in needs)) + 1e-6
    if not alloc.reserve_short:
        assert alloc.committed_usd == pytest.approx(sum(n.target_cost for n in needs))
    else:
        assert alloc.committed_usd <= budget + 1e-6 and alloc.uncovered


@settings(max_examples=100, deadline=None)
@given(book(pools=("usdc", "weth")), st.floats(0.0, 1_000.0), st.floats(0.0, 1_000.0))
def test_greedy_matches_brute_force_per_pool(needs, usdc, weth):
    budget = {"usdc": usdc, "weth": weth}
    alloc = allocate(needs, budget)
    assert alloc.benefit == pytest.approx(brute_force(needs, budget), rel=1e-9, abs=1e-6)
    for pool, cap in budget.items():
        spent = sum(alloc.grants[n.key] for n in needs if n.pool == pool)
        demand = sum(n.target_cost for n in needs if n.pool == pool)
        assert spent <= max(cap, 0.0) + 1e-6 or spent == pytest.approx(demand)
