"""Gas bids: capped, monotone in urgency and elapsed replacements, replacements >= 12.5%."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keeper.chain.fees import GWEI, Bid, FeePolicy, bid, next_base_fee, projected_base_fee, replacement, urgency

POLICY = FeePolicy(min_priority_fee=1 * GWEI, max_priority_fee=5 * GWEI, max_fee_cap=100 * GWEI,
                   max_priority_fee_cap=10 * GWEI)
URGENT = FeePolicy(min_priority_fee=1 * GWEI, max_priority_fee=5 * GWEI, max_fee_cap=100 * GWEI,
                   max_priority_fee_cap=10 * GWEI, urgent_threshold=0.9, urgent_max_fee_cap=300 * GWEI)


def test_eip1559_base_fee_update():
    assert next_base_fee(100, 15, 30) == 100
    assert next_base_fee(800, 30, 30) == 900  # full block: +12.5%
    assert next_base_fee(800, 0, 30) == 700  # empty block: -12.5%


def test_projection_covers_full_blocks():
    assert projected_base_fee([10 * GWEI], 3) == pytest.approx(10 * GWEI * 1.125**3, rel=1e-12)


bases = st.lists(st.integers(min_value=1, max_value=500 * GWEI), min_size=1, max_size=5)


@given(bases, st.floats(0, 1), st.floats(0, 1), st.integers(0, 10))
def test_bid_is_monotone_in_urgency_and_never_above_the_cap(bf, u1, u2, n):
    lo, hi = sorted((u1, u2))
    a, b = bid(bf, lo, n, POLICY), bid(bf, hi, n, POLICY)
    assert a.max_priority_fee_per_gas <= b.max_priority_fee_per_gas
    assert a.max_fee_per_gas <= b.max_fee_per_gas
    for x in (a, b):
        assert x.max_fee_per_gas <= POLICY.max_fee_cap
        assert x.max_priority_fee_per_gas <= min(x.max_fee_per_gas, POLICY.max_priority_fee_cap)


def test_only_the_urgency_rule_exceeds_the_cap():
    spike = [400 * GWEI]
    routine = bid(spike, 0.5, 0, URGENT)
    assert routine.capped and routine.max_fee_per_gas == 100 * GWEI and not routine.over_normal_cap
    urgent = bid(spike, 0.95, 0, URGENT)
    assert urgent.over_normal_cap and urgent.max_fee_per_gas == 300 * GWEI
    assert bid(spike, 1.0, 0, POLICY).max_fee_per_gas == 100 * GWEI  # no rule, no exception


@given(bases, st.floats(0, 1), st.integers(0, 6))
def test_replacement_bumps_both_fields_by_at_least_an_eighth(bf, u, n):
    prev = bid(bf, u, n, POLICY)
    nxt = replacement(prev, bid(bf, u, n + 1, POLICY))
    if nxt is None:  # only when the cap leaves no room
        assert bid(bf, u, n + 1, POLICY).capped
        return
    assert nxt.max_fee_per_gas * 8 >= prev.max_fee_per_gas * 9
    assert nxt.max_priority_fee_per_gas * 8 >= prev.max_priority_fee_per_gas * 9
    assert nxt.max_priority_fee_per_gas <= nxt.max_fee_per_gas


def test_no_replacement_past_the_cap():
    prev = Bid(100 * GWEI, 10 * GWEI, capped=True)
    assert replacement(prev, bid([200 * GWEI], 0.5, 1, POLICY)) is None


def test_urgency():
    assert urgency(0.001, 0.01) == 0
    assert urgency(0.5, 0.01) > urgency(0.05, 0.01) > 0
    assert urgency(0.02, 0.01, blocks_left=1) >= 0.9


def test_bad_policies_are_refused():
    with pytest.raises(ValueError, match=r"1.125"):
        FeePolicy(bump_factor=1.1)
    with pytest.raises(ValueError, match="go together"):
        FeePolicy(urgent_threshold=0.9)
