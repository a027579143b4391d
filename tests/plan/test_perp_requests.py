"""The follow-up of a GMX v1 PositionRouter request (pure): wait within the keeper's patience, then
report it stuck until GMX lets the vault act, then execute it from the vault; once expired, cancel
it; and never act where GMX's PositionRouter does not allow the account to."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keeper.plan.perp_requests import PendingRequest, RouterRules, Step, next_step

REQ = PendingRequest(key="0x" + "ab" * 32, account="0x" + "11" * 20, collateral_token="0x" + "22" * 20,
                     index_token="0x" + "22" * 20, is_long=True, amount_raw=10**18, size_delta=0,
                     execution_fee=10**14, block=100, timestamp=1_000)
GMX = RouterRules(min_block_delay_keeper=0, min_time_delay_public=180, max_time_delay=1_800, public_enabled=True)


def test_market_key_matches_the_adapters():
    assert REQ.market == f"{'0x' + '22' * 20}:{'0x' + '22' * 20}:long"


@pytest.mark.parametrize("blocks,seconds,step", [
    (0, 0, Step.WAIT),  # the block it was made in
    (5, 60, Step.WAIT),  # within the keeper's patience (5 blocks)
    (6, 60, Step.STUCK),  # late, but GMX lets the vault act only after 180 s
    (6, 179, Step.STUCK),
    (6, 180, Step.EXECUTE),  # from minTimeDelayPublic on, the vault executes it itself
    (200, 1_799, Step.EXECUTE),
    (200, 1_800, Step.CANCEL),  # expired: execution would revert, a cancel returns the collateral
])
def test_steps_follow_gmx_delays(blocks, seconds, step):
    d = next_step(REQ, REQ.block + blocks, REQ.timestamp + seconds, GMX, timeout_blocks=5)
    assert d.step is step
    assert (d.age_blocks, d.age_seconds) == (blocks, seconds)
    if step is Step.STUCK:
        assert f"in {180 - seconds} s" in d.why


def test_without_public_execution_a_late_request_is_only_reported():
    closed = RouterRules(0, 180, 1_800, public_enabled=False)
    assert next_step(REQ, REQ.block + 50, REQ.timestamp + 600, closed, 5).step is Step.STUCK
    d = next_step(REQ, REQ.block + 500, REQ.timestamp + 5_000, closed, 5)
    assert d.step is Step.STUCK and "only GMX's position keepers" in d.why


@given(blocks=st.integers(0, 10_000), seconds=st.integers(0, 10_000), timeout=st.integers(1, 1_000),
       public=st.integers(0, 3_600), expiry=st.integers(1, 7_200), enabled=st.booleans())
def test_the_vault_never_acts_before_gmx_allows_it(blocks, seconds, timeout, public, expiry, enabled):
    rules = RouterRules(0, public, expiry, enabled)
    d = next_step(REQ, REQ.block + blocks, REQ.timestamp + seconds, rules, timeout)
    if d.step in (Step.EXECUTE, Step.CANCEL):
        assert enabled and seconds >= public  # GMX: the account acts after minTimeDelayPublic only
    if d.step is Step.EXECUTE:
        assert seconds < expiry and blocks > timeout  # never executes an expired one, never early
    if d.step is Step.CANCEL:
        assert seconds >= expiry  # cancels only what can no longer execute
    if d.step is Step.WAIT:
        assert blocks <= timeout and seconds < expiry
