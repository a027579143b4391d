"""GMX v1's liquidation rule against the adapter through random sequences (hypothesis) of a trader's
increases and decreases, price moves and funding time, on both devnet modes: after every step the
adapter's health is below 1 exactly when GMX's own ``liquidatePosition`` succeeds (``eth_call``,
through the PositionManager where liquidations are private), and where the Vault's at-rest margin fee
is the liquidation fee (direct) its state and fees equal ``validateLiquidation``'s.

Increases go through GMX's own paths: the Router on a direct Vault, a PositionRouter request that
the position keeper executes on a gated one. Decreases through the Router (GMX validates the rest of
the position; a refused one is skipped, as a trader's UI would refuse it)."""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from keeper.chain import contracts as C
from keeper.chain.client import ChainClient
from keeper.chain.multicall import Multicall
from keeper.devnet.deployer import Deployer
from keeper.devnet.position_keeper import PositionKeeper
from keeper.domain import WAD
from keeper.errors import Reverted, TxFailed
from keeper.protocols.base import ReadContext, run_plans
from keeper.protocols.gmx_v1 import GmxV1Adapter, PerpMarket
from tests.conftest import evm_revert, evm_snapshot
from tests.devnet.helpers import gmx_liquidation, set_price, token

USD30 = 10**30
MAX = 2**256 - 1

OPS = st.one_of(
    st.tuples(st.just("increase"), st.integers(0, 3), st.integers(0, 30_000)),  # WETH collateral, size USD
    st.tuples(st.just("decrease"), st.integers(0, 2_000), st.integers(0, 20_000)),  # collateral USD, size USD
    st.tuples(st.just("price"), st.integers(1_300, 2_400), st.just(0)),  # ETH in USD
    st.tuples(st.just("time"), st.integers(1, 72), st.just(0)),  # hours of funding
)


def _read(dep, url, trader, market, w3):
    mc = Multicall(ChainClient("devnet", [url], dep["chain_id"]), dep["multicall3"], in_flight=1)
    try:
        ad = GmxV1Adapter("devnet", dep["perp"]["vault"], [market], dep["perp"]["position_router"])
        block = w3.eth.block_number
        ad.prepare(mc, block)
        ts = w3.eth.get_block(block)["timestamp"]
        (pos,) = run_plans(mc, [ad.plan([trader])], ReadContext("devnet", block, ts, {})) or (None,)
        return pos, block
    finally:
        mc.close()


def _liquidates(w3, dep, pos, block) -> bool:
    try:
        gmx_liquidation(w3, dep, pos.account, pos.market).call({"from": dep["roles"]["liquidator"]}, block)
        return True
    except Exception as e:  # only GMX's own "cannot be liquidated" means healthy
        assert "position cannot be liquidated" in str(e), e
        return False


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=(Phase.explicit, Phase.reuse, Phase.generate))  # no shrinking: each example is chain work
@given(ops=st.lists(OPS, min_size=3, max_size=10))
def test_adapter_health_is_gmx_rule_through_increases_decreases_prices_and_time(gmx_net, ops):
    w3, dep = gmx_net.w3, gmx_net.dep
    snap = evm_snapshot(w3)
    try:
        trader = w3.eth.accounts[9]  # no devnet role
        d = Deployer(w3, trader)
        weth = token(w3, dep, "WETH")
        gated = dep["perp"]["mode"] == "gated"
        router = d.at(dep["perp"]["router"], C.gmx("Router"))
        pr = d.at(dep["perp"]["position_router"], C.gmx("PositionRouter"))
        vault = d.at(dep["perp"]["vault"], C.gmx("Vault"))
        pk = PositionKeeper(w3, dep["perp"]["position_router"], dep["perp"]["position_keeper"])
        d.send(weth.functions.mint(trader, 100 * 10**18))
        d.send(weth.functions.approve(router.address, MAX))
        d.send(router.functions.approvePlugin(pr.address))
        a = weth.address
        market = PerpMarket(a, a, True)
        for kind, x, y in [("increase", 2, 20_000), *ops]:  # a 5x long to start from
            try:
                if kind == "increase" and (x or y):
                    limit = vault.functions.getMaxPrice(a).call() * 101 // 100
                    if gated:
                        fee = pr.functions.minExecutionFee().call()
                        d.send(pr.functions.createIncreasePosition([a], a, x * 10**18, 0, y * USD30, True, limit, fee,
                                                                   bytes(32), "0x" + "00" * 20), value=fee)
                        pk.step()
                    else:
                        d.send(router.functions.increasePosition([a], a, x * 10**18, 0, y * USD30, True, limit))
                elif kind == "decrease" and (x or y):
                    limit = vault.functions.getMinPrice(a).call() * 99 // 100
                    d.send(router.functions.decreasePosition(a, a, x * USD30, y * USD30, True, trader, limit))
                elif kind == "price":
                    set_price(w3, dep, "ETH", x)
                elif kind == "time":
                    w3.provider.make_request("evm_increaseTime", [x * 3600])
                    w3.provider.make_request("evm_mine", [])
            except (Reverted, TxFailed):
                continue  # GMX refused the step (too much leverage, below the minimum, ...): skip it
            pos, block = _read(dep, gmx_net.url, trader, market, w3)
            if pos is None:
                continue  # no position (yet, or closed)
            liquidates = _liquidates(w3, dep, pos, block)
            assert (pos.health_wad < WAD) == liquidates, (kind, x, y, pos.health_wad, pos.extra)
            if not gated:
                state, fees = vault.functions.validateLiquidation(trader, a, a, True, False).call(
                    block_identifier=block)
                # validateLiquidation reads the funding rate as stored; the adapter's read updates it
                # first (as liquidatePosition does): compare right after an update only.
                if vault.functions.getNextFundingRate(a).call(block_identifier=block) == 0:
                    assert (pos.perp.liquidation_state, pos.extra["margin_fees"]) == (state, fees)
    finally:
        evm_revert(w3, snap)
