"""PerpVault on anvil against the Python model (tests/contracts/perp_model.py, built on
keeper/risk/perp_math.py): hypothesis-generated sequences compared exactly, plus targeted tests of
liquidation, router-approved top-ups, refused routers and bad feed answers.

Block time is made deterministic for this module (``anvil_setBlockTimestampInterval 1``: every
mined block is one second after the previous one; time jumps use ``evm_setNextBlockTimestamp`` +
``evm_mine``), so funding intervals in the model and on chain line up to the second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from web3 import Web3

from keeper.chain import contracts as C
from keeper.chain.revert import decode, revert_data
from keeper.errors import Reverted
from keeper.risk import perp_math as pm
from tests.conftest import evm_revert, evm_snapshot
from tests.contracts.perp_model import ModelRevert, PosKey, TokenCfg, VaultModel

pytestmark = pytest.mark.chain

USD = pm.PRICE_PRECISION
WETH_ANSWER = 2_000 * 10**8
USDC_ANSWER = 10**8
POOL_WETH = 100 * 10**18
POOL_USDC = 200_000 * 10**6
ABIS = [C.ours("PerpVault").abi]


def _name(exc: BaseException) -> str:
    return decode(revert_data(exc), ABIS).name


@dataclass
class Env:
    w3: Web3
    deployer: Any
    vault: Any
    weth: Any
    usdc: Any
    weth_feed: Any
    usdc_feed: Any
    gov: str
    trader: str
    router: str
    liquidator: str
    stranger: str

    @property
    def long_key(self) -> PosKey:
        return (self.trader, self.weth.address, self.weth.address, True)

    @property
    def short_key(self) -> PosKey:
        return (self.trader, self.usdc.address, self.weth.address, False)

    def fresh_model(self) -> VaultModel:
        tokens = {self.weth.address: TokenCfg(18, 8, False, True), self.usdc.address: TokenCfg(6, 8, True, False)}
        answers = {self.weth.address: WETH_ANSWER, self.usdc.address: USDC_ANSWER}
        m = VaultModel(pm.PerpParams(), tokens, answers)
        for token, amount in ((self.weth.address, POOL_WETH), (self.usdc.address, POOL_USDC)):
            m.balance[token] = m.token_balances[token] = m.pool[token] = amount
        return m


@pytest.fixture(scope="module")
def env(w3, deployer, accounts):
    snap = evm_snapshot(w3)
    w3.provider.make_request("anvil_setBlockTimestampInterval", [1])
    gov, trader, router, liquidator, stranger = accounts[:5]
    weth = deployer.deploy(C.ours("TestERC20"), "Wrapped Ether", "WETH", 18, 0)
    usdc = deployer.deploy(C.ours("TestERC20"), "USD Coin", "USDC", 6, 0)
    weth_feed = deployer.deploy(C.third_party("MockV3Aggregator"), 8, WETH_ANSWER)
    usdc_feed = deployer.deploy(C.third_party("MockV3Aggregator"), 8, USDC_ANSWER)
    vault = deployer.deploy(C.ours("PerpVault"), sender=gov)
    deployer.send(vault.functions.setTokenConfig(weth.address, 18, weth_feed.address, False, True), sender=gov)
    deployer.send(vault.functions.setTokenConfig(usdc.address, 6, usdc_feed.address, True, False), sender=gov)
    for token, amount in ((weth, POOL_WETH), (usdc, POOL_USDC)):
        deployer.send(token.functions.mint(vault.address, amount))
        deployer.send(vault.functions.directPoolDeposit(token.address))
    deployer.send(vault.functions.addRouter(router), sender=trader)
    yield Env(w3, deployer, vault, weth, usdc, weth_feed, usdc_feed, gov, trader, router, liquidator, stranger)
    w3.provider.make_request("anvil_removeBlockTimestampInterval", [])
    evm_revert(w3, snap)


class Harness:
    """Sends each transaction to the chain and its mirror to the model; compares the outcomes."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.vault = env.vault
        self.model = env.fresh_model()
        self.now = env.w3.eth.get_block("latest")["timestamp"]
        self.tokens = {env.weth.address: env.weth, env.usdc.address: env.usdc}
        self.outcomes: list[str] = []  # "fn: ok" / "fn: ErrorName", for hypothesis statistics

    def tx(self, fn: Any, sender: str, op: Callable[[VaultModel, int], Any] | None = None) -> Any:
        now = self.now + 1  # interval mining: the next block is one second later
        expected, result = None, None
        if op is not None:
            try:
                result = self.model.apply(lambda m: op(m, now))
            except ModelRevert as e:
                expected = e.name
        try:
            receipt = self.env.deployer.send(fn, sender=sender)
        except Reverted as e:
            got = _name(e.__cause__)
            assert got == expected, f"{fn.fn_name}: chain reverted {got}, model expected {expected or 'success'}"
            self.outcomes.append(f"{fn.fn_name}: {got}")
            return ModelRevert(got)
        assert expected is None, f"{fn.fn_name}: model expected {expected}, chain succeeded"
        assert self.env.w3.eth.get_block(receipt["blockNumber"])["timestamp"] == now
        self.now = now
        self.outcomes.append(f"{fn.fn_name}: ok" + (f" (state {result})" if fn.fn_name == "liquidatePosition" else ""))
        return result

    def fund(self, token: str, amount: int) -> None:
        """Mint collateral straight to the vault: 'transferred in beforehand'."""
        self.tx(self.tokens[token].functions.mint(self.vault.address, amount), self.env.gov,
                lambda m, _now: m.external_transfer_in(token, amount))

    def set_answer(self, feed: Any, token: str, answer: int) -> None:
        self.tx(feed.functions.updateAnswer(answer), self.env.gov,
                lambda m, _now: m.answers.__setitem__(token, answer))

    def advance(self, secs: int) -> None:
        self.env.w3.provider.make_request("evm_setNextBlockTimestamp", [self.now + secs])
        self.env.w3.provider.make_request("evm_mine", [])
        self.now += secs

    def increase(self, key: PosKey, size_delta: int, sender: str | None = None) -> Any:
        fn = self.vault.functions.increasePosition(*key[:3], size_delta, key[3])
        return self.tx(fn, sender or key[0], lambda m, now: m.increase(key, size_delta, now))

    def decrease(self, key: PosKey, collateral_delta: int, size_delta: int) -> Any:
        fn = self.vault.functions.decreasePosition(*key[:3], collateral_delta, size_delta, key[3], key[0])
        return self.tx(fn, key[0], lambda m, now: m.decrease(key, collateral_delta, size_delta, key[0], now))

    def liquidate(self, key: PosKey, fee_receiver: str) -> Any:
        fn = self.vault.functions.liquidatePosition(*key, fee_receiver)
        return self.tx(fn, self.env.liquidator, lambda m, now: m.liquidate(key, fee_receiver, now))

    def update_funding(self, key: PosKey) -> Any:
        fn = self.vault.functions.updateCumulativeFundingRate(key[1], key[2])
        return self.tx(fn, self.env.stranger, lambda m, now: m.update_funding(key[1], now))

    def chain_state(self, key: PosKey) -> int:
        return self.vault.functions.validateLiquidation(*key, False).call()[0]

    def check(self) -> None:
        """Every view the keeper reads, and the pool's books, equal the model's to the unit."""
        v, m = self.vault.functions, self.model
        for key in (self.env.long_key, self.env.short_key):
            p = m.position(key)
            expected = (p.size, p.collateral, p.average_price, p.entry_funding_rate, p.reserve_amount,
                        abs(p.realised_pnl), p.realised_pnl >= 0, p.last_increased_time)
            assert tuple(v.getPosition(*key).call()) == expected, key
            if p.size == 0:
                continue
            d = m.delta(key)
            assert tuple(v.getPositionDelta(*key).call()) == (d.has_profit, d.delta)
            check = m.validate_liquidation(key)
            assert tuple(v.validateLiquidation(*key, False).call()) == (check.state, check.margin_fees)
            assert (m.health(key) < pm.HEALTH_ONE) == (check.state != 0)
        for addr, token in self.tokens.items():
            assert v.poolAmounts(addr).call() == m.pool[addr]
            assert v.reservedAmounts(addr).call() == m.reserved[addr]
            assert v.tokenBalances(addr).call() == m.token_balances[addr]
            assert v.guaranteedUsd(addr).call() == m.guaranteed[addr]
            assert v.cumulativeFundingRates(addr).call() == m.cum_rate[addr]
            assert v.lastFundingTimes(addr).call() == m.last_funding[addr]
            assert token.functions.balanceOf(self.vault.address).call() == m.balance[addr]
            for who in (self.env.trader, self.env.liquidator):
                assert token.functions.balanceOf(who).call() == m.paid[(addr, who)]
        weth = self.env.weth.address
        assert v.globalShortSizes(weth).call() == m.short_sizes[weth]
        assert v.globalShortAveragePrices(weth).call() == m.short_avg[weth]


# ---------------------------------------------------------------------- hypothesis sequences

SIDES = st.sampled_from(["long", "short"])
STEPS = st.one_of(
    # collateral (1e-4 of 1 WETH / of 2,000 USDC), leverage in bps (up to 56x), size jitter (1e-6 USD)
    st.tuples(st.just("increase"), SIDES, st.integers(0, 10**4), st.integers(0, 560_000), st.integers(0, 10**6)),
    st.tuples(st.just("topup"), SIDES, st.integers(1, 10**4)),
    st.tuples(st.just("decrease"), SIDES, st.integers(0, 1000), st.integers(0, 1000)),
    st.tuples(st.just("price"), st.one_of(st.integers(9_900, 10_100), st.integers(8_500, 11_500))),
    st.tuples(st.just("time"), st.integers(1, 4 * 3600)),
    st.tuples(st.just("funding"), SIDES),
    st.tuples(st.just("liquidate"), SIDES),
)


def _collateral(h: Harness, side: str, units: int) -> tuple[str, int]:
    if side == "long":
        return h.env.weth.address, units * 10**14
    return h.env.usdc.address, units * 2 * 10**5


def run_step(h: Harness, step: tuple) -> None:
    kind = step[0]
    key = None if kind in ("price", "time") else (h.env.long_key if step[1] == "long" else h.env.short_key)
    if kind == "increase":
        _, _, units, lev, jitter = step
        token, amount = _collateral(h, step[1], units)
        if amount:
            h.fund(token, amount)
        size = h.model.to_usd(token, amount) * lev // 10_000 + jitter * 10**24
        h.increase(key, size)
    elif kind == "topup":
        token, amount = _collateral(h, step[1], step[2])
        h.fund(token, amount)
        h.increase(key, 0, sender=h.env.router)
    elif kind == "decrease":
        p = h.model.position(key)
        h.decrease(key, p.collateral * step[2] // 1000, p.size * step[3] // 1000)
    elif kind == "price":
        answer = max(1, h.model.answers[h.env.weth.address] * step[1] // 10_000)
        h.set_answer(h.env.weth_feed, h.env.weth.address, answer)
    elif kind == "time":
        h.advance(step[1])
    elif kind == "funding":
        h.update_funding(key)
    elif kind == "liquidate":
        h.liquidate(key, h.env.liquidator)


# every sequence starts by opening both positions, mostly at high leverage, so that later steps
# (price moves, funding, top-ups, decreases) push them across the liquidation states
OPENING = st.tuples(st.just("increase"), SIDES, st.integers(1, 10**4),
                    st.one_of(st.integers(10_000, 560_000), st.integers(300_000, 480_000)), st.integers(0, 10**6))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(opening=st.lists(OPENING, min_size=2, max_size=2), steps=st.lists(STEPS, min_size=1, max_size=14))
def test_random_sequences_match_model(env, opening, steps):
    snap = evm_snapshot(env.w3)
    try:
        h = Harness(env)
        for step in [("increase", "long", *opening[0][2:]), ("increase", "short", *opening[1][2:]), *steps]:
            run_step(h, step)
            h.check()
            for key in (env.long_key, env.short_key):
                if h.model.position(key).size:
                    event(f"{'long' if key[3] else 'short'} in state {h.model.validate_liquidation(key).state}")
        for outcome in h.outcomes:
            event(outcome)
    finally:
        evm_revert(env.w3, snap)


# ---------------------------------------------------------------------- targeted tests


@pytest.fixture
def h(env):
    snap = evm_snapshot(env.w3)
    yield Harness(env)
    evm_revert(env.w3, snap)


def _open_long(h: Harness, weth_amount: int, size: int) -> PosKey:
    key = h.env.long_key
    h.fund(h.env.weth.address, weth_amount)
    assert not isinstance(h.increase(key, size), ModelRevert)
    h.check()
    return key


def test_defaults_and_gov_only_config(env):
    v = env.vault.functions
    assert v.gov().call() == env.gov
    assert (v.maxLeverage().call(), v.marginFeeBasisPoints().call(), v.liquidationFeeUsd().call()) == (500_000, 10, 5 * USD)
    assert (v.fundingInterval().call(), v.fundingRateFactor().call(), v.stableFundingRateFactor().call()) == (3600, 100, 100)
    assert v.getPositionFee(1_000 * USD).call() == pm.position_fee(1_000 * USD, 10)
    assert v.getMinPrice(env.weth.address).call() == v.getMaxPrice(env.weth.address).call() == 2_000 * USD
    for fn in (v.setFees(0, 0), v.setMaxLeverage(20_000), v.setFundingRate(3600, 1, 1), v.setGov(env.stranger)):
        with pytest.raises(Reverted) as exc:
            env.deployer.send(fn, sender=env.stranger)
        assert _name(exc.value.__cause__) == "Forbidden"


def test_underwater_long_is_liquidated_by_a_third_party(h):
    key = _open_long(h, 10**17, 4_000 * USD)  # 200 USD collateral, 20x
    h.set_answer(h.env.weth_feed, h.env.weth.address, 1_905 * 10**8)  # -4.75%: 190 USD loss
    state, fees = h.env.vault.functions.validateLiquidation(*key, False).call()
    assert state == 1 and fees == h.model.validate_liquidation(key).margin_fees
    assert h.model.health(key) < pm.HEALTH_ONE
    receiver = Web3.to_checksum_address("0x" + "fe" * 20)
    assert h.liquidate(key, receiver) == 1
    h.check()
    fee_tokens = pm.usd_to_token(5 * USD, 1_905 * USD, 18)
    assert h.env.weth.functions.balanceOf(receiver).call() == fee_tokens == h.model.paid[(key[1], receiver)]
    assert h.env.vault.functions.getPosition(*key).call()[0] == 0


def test_underwater_short_is_liquidated_by_a_third_party(h):
    key = h.env.short_key
    h.fund(h.env.usdc.address, 100 * 10**6)
    h.increase(key, 3_000 * USD)
    h.set_answer(h.env.weth_feed, h.env.weth.address, 2_130 * 10**8)  # +6.5%: 195 USD loss
    assert h.chain_state(key) == 1
    pool_before = h.model.pool[key[1]]
    assert h.liquidate(key, h.env.liquidator) == 1
    h.check()
    assert h.model.paid[(key[1], h.env.liquidator)] == 5 * 10**6
    assert h.model.pool[key[1]] > pool_before  # the short's collateral went to the pool


def test_over_max_leverage_is_closed_back_to_the_account(h):
    """State 2 (GMX v1): the whole position is closed through decrease, the rest goes to the account."""
    key = _open_long(h, 10**18, 90_000 * USD)  # 2,000 USD collateral, 45x
    h.set_answer(h.env.weth_feed, h.env.weth.address, 1_990 * 10**8)  # -0.5%: 450 USD loss -> >50x
    assert h.chain_state(key) == 2
    assert h.liquidate(key, h.env.liquidator) == 2
    h.check()
    assert h.model.paid[(key[1], h.env.trader)] > 0
    assert h.model.paid[(key[1], h.env.liquidator)] == 0


def test_healthy_or_missing_position_cannot_be_liquidated(h):
    key = _open_long(h, 10**18, 10_000 * USD)
    assert h.chain_state(key) == 0
    with pytest.raises(Reverted) as exc:
        h.env.deployer.send(h.vault.functions.liquidatePosition(*key, h.env.liquidator), sender=h.env.liquidator)
    assert _name(exc.value.__cause__) == "PositionNotLiquidatable"
    with pytest.raises(Reverted) as exc:
        h.env.deployer.send(h.vault.functions.liquidatePosition(*h.env.short_key, h.env.liquidator),
                            sender=h.env.liquidator)
    assert _name(exc.value.__cause__) == "EmptyPosition"


def test_router_top_up_restores_health(h):
    key = _open_long(h, 10**18, 90_000 * USD)  # 45x
    h.set_answer(h.env.weth_feed, h.env.weth.address, 1_990 * 10**8)
    assert h.chain_state(key) == 2 and h.model.health(key) < pm.HEALTH_ONE
    # the keeper (an approved router) transfers WETH in, then increases by 0 in the trader's name
    h.tx(h.env.weth.functions.mint(h.env.router, 5 * 10**17), h.env.gov)
    h.tx(h.env.weth.functions.transfer(h.vault.address, 5 * 10**17), h.env.router,
         lambda m, _now: m.external_transfer_in(key[1], 5 * 10**17))
    assert not isinstance(h.increase(key, 0, sender=h.env.router), ModelRevert)
    h.check()
    assert h.chain_state(key) == 0 and h.model.health(key) >= pm.HEALTH_ONE
    assert h.env.vault.functions.approvedRouters(h.env.trader, h.env.router).call()
    # and the router may release margin back to the trader
    h.tx(h.vault.functions.decreasePosition(*key[:3], 100 * USD, 0, True, h.env.trader), h.env.router,
         lambda m, now: m.decrease(key, 100 * USD, 0, h.env.trader, now))
    h.check()


def test_unapproved_router_is_refused(h):
    key = _open_long(h, 10**18, 10_000 * USD)
    v = h.vault.functions
    for fn in (v.increasePosition(*key[:3], 0, True),
               v.decreasePosition(*key[:3], USD, 0, True, h.env.stranger)):
        with pytest.raises(Reverted) as exc:
            h.env.deployer.send(fn, sender=h.env.stranger)
        assert _name(exc.value.__cause__) == "RouterNotApproved"
    h.env.deployer.send(v.removeRouter(h.env.router), sender=h.env.trader)
    with pytest.raises(Reverted) as exc:
        h.env.deployer.send(v.increasePosition(*key[:3], 0, True), sender=h.env.router)
    assert _name(exc.value.__cause__) == "RouterNotApproved"


@pytest.mark.parametrize("answer", [0, -1])
def test_non_positive_feed_answer_reverts(h, answer):
    key = _open_long(h, 10**18, 10_000 * USD)
    h.set_answer(h.env.weth_feed, h.env.weth.address, answer)
    v = h.vault.functions
    for call in (v.getMinPrice(h.env.weth.address), v.getMaxPrice(h.env.weth.address),
                 v.validateLiquidation(*key, False)):
        with pytest.raises(Exception) as exc:
            call.call()
        assert _name(exc.value) == "InvalidPrice"
    h.fund(h.env.weth.address, 10**17)
    assert h.increase(key, 0).name == "InvalidPrice"


def test_funding_accrues_per_whole_interval(h):
    key = _open_long(h, 10**18, 40_000 * USD)  # reserves 20 WETH of the 101 in the pool
    token = key[1]
    first = h.env.vault.functions.lastFundingTimes(token).call()
    assert first % 3600 == 0 and first > 0
    h.advance(3 * 3600 + 17)
    expected = pm.next_funding_rate(h.now + 1, first, 3600, 100, h.model.reserved[token], h.model.pool[token])
    assert expected > 0
    h.update_funding(key)
    h.check()
    assert h.env.vault.functions.cumulativeFundingRates(token).call() == expected
    fee = h.env.vault.functions.getFundingFee(token, 40_000 * USD, 0).call()
    assert fee == 40_000 * USD * expected // 10**6
