"""KeeperVault ``deleverage`` (contracts/vault/DeleverageModule.sol) on the real Aave v3 (both
versions), the real Morpho Blue and real Uniswap v3 pools: a position repaid with its own collateral
through a Morpho or Aave flash loan, the guardrails a hostile keeper meets, and a crash the deleverage
survives where the same position without it is liquidated by a third party.

The world (``env``, per Aave version): ``conftest.py`` here; on top of it, ``dl`` configures the
vault's deleverage (both flash sources, the WETH/USDC pool, Chainlink feeds, 1 % slippage, caps)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from web3 import Web3
from web3.logs import DISCARD

from keeper.chain import contracts as C
from keeper.devnet.deployer import Deployer
from keeper.devnet.uniswap import arbitrage
from keeper.errors import Reverted
from tests.contracts.vault_env import AAVE, E6, E18, MAX, MORPHO, PERP, ZERO, asset_key
from tests.devnet.helpers import aave_error, aave_revert_name

pytestmark = pytest.mark.usefixtures("snapshot")

MORPHO_FLASH, AAVE_FLASH, UNISWAP_FLASH = 1, 2, 3
SLIPPAGE_BPS = 100
FEED_AGE = 365 * 86_400
DL_CAPS = (5 * E18, 8 * E18)  # WETH sold: per call, per window


@pytest.fixture(scope="module")
def dl(env):
    v, o = env.vault, env.owner
    uni = env.net["uniswap_v3"]
    env.send(v.functions.setFlashSource(env.morpho.address, MORPHO_FLASH), o)
    env.send(v.functions.setFlashSource(env.pool.address, AAVE_FLASH), o)
    env.send(v.functions.setSwapPool(uni["pools"]["WETH/USDC"]["address"], True), o)
    for sym in ("WETH", "USDC", "WBTC"):
        env.send(v.functions.setPriceFeed(env.tok[sym].address, env.net["tokens"][sym]["feed"], FEED_AGE), o)
    env.send(v.functions.setMaxSlippage(SLIPPAGE_BPS), o)
    env.send(v.functions.setDeleverageCap(env.tok["WETH"].address, *DL_CAPS), o)
    return SimpleNamespace(uni=uni, weth_pool=uni["pools"]["WETH/USDC"]["address"],
                           wbtc_pool=uni["pools"]["WBTC/USDC"]["address"])


def aave_ref(env, account=None):
    return (AAVE, env.pool.address, asset_key(env.tok["WETH"].address), account or env.vault.address)


def morpho_ref(env, account=None):
    return (MORPHO, env.morpho.address, env.mid, account or env.vault.address)


def call(env, dl, ref, repay_usdc: float, sell_weth: float, *, source=None, pool=None, min_out=None):
    """The Deleverage struct; ``min_out`` defaults to the vault's own bound for the sale."""
    weth, usdc = env.tok["WETH"].address, env.tok["USDC"].address
    sell = int(sell_weth * E18)
    if min_out is None:
        min_out = env.vault.functions.swapBound(weth, usdc, sell).call()
    return (ref, usdc, source or env.morpho.address, int(repay_usdc * E6), sell, pool or dl.weth_pool, min_out)


def set_eth(env, usd: float) -> None:
    """Move the WETH feed (Aave's and Morpho's oracle) and arbitrage the WETH/USDC pool to it."""
    d = Deployer(env.w3, env.net["roles"]["admin"])
    feed = d.at(env.net["tokens"]["WETH"]["feed"], C.third_party("MockV3Aggregator"))
    d.send(feed.functions.updateAnswer(int(usd * 10**8)))
    arbitrage(d, env.net["uniswap_v3"], "WETH/USDC", env.net["tokens"], {"WETH": usd, "USDC": 1.0, "WBTC": 30_000.0},
              env.net["roles"]["lp"])


def aave_state(env, who):
    col, debt, _a, _lt, _ltv, hf = env.pool.functions.getUserAccountData(who).call()
    return col, debt, hf


def deleveraged(env, receipt):
    return [e["args"] for e in env.vault.events.Deleveraged().process_receipt(receipt, errors=DISCARD)]


def reserve(env):
    return {s: env.bal(s, env.vault.address) for s in ("WETH", "USDC")}


# ----------------------------------------------------------------- it saves, and pays only from the position


@pytest.mark.parametrize("source", ["morpho", "aave", "uniswap"])
def test_aave_position_repaid_with_its_own_collateral(env, dl, source):
    src = {"morpho": env.morpho.address, "aave": env.pool.address, "uniswap": dl.wbtc_pool}[source]
    v = env.vault
    if source == "uniswap":  # USDC flash-borrowed from the WBTC/USDC pool; the sale goes through WETH/USDC
        env.send(v.functions.setFlashSource(dl.wbtc_pool, UNISWAP_FLASH), env.owner)
    before, res0 = aave_state(env, v.address), reserve(env)
    debt_token = env.w3.eth.contract(address=env.net["aave_v3"]["variable_debt_tokens"]["USDC"],
                                     abi=C.ours("TestERC20").abi)
    debt0 = debt_token.functions.balanceOf(v.address).call()
    rc = env.frozen(v.functions.deleverage(call(env, dl, aave_ref(env), 3_000, 1.53, source=src)), env.keeper)
    (ev,) = deleveraged(env, rc)
    after, res1 = aave_state(env, v.address), reserve(env)

    assert ev["repaid"] == 3_000 * E6
    assert debt0 - debt_token.functions.balanceOf(v.address).call() == pytest.approx(3_000 * E6, abs=2)
    assert ev["sold"] == pytest.approx(int(1.53 * E18), abs=env.rounding)
    # health rose, and the event reports the pool's own figures
    assert after[2] > before[2] == ev["healthBefore"]
    assert ev["healthAfter"] == after[2]
    # the sale alone paid the flash source: the reserve only gained (the sale's surplus)
    assert res1["WETH"] == res0["WETH"]
    assert res1["USDC"] - res0["USDC"] == ev["bought"] - ev["repaid"] - ev["flashFee"] > 0
    if source == "morpho":
        assert ev["flashFee"] == 0  # Morpho Blue lends for free
    elif source == "aave":
        premium = env.pool.functions.FLASHLOAN_PREMIUM_TOTAL().call()  # basis points
        assert ev["flashFee"] == 3_000 * E6 * premium // 10_000
    else:
        assert ev["flashFee"] == -(-3_000 * E6 * 3_000 // 10**6)  # the pool's 0.3 %, rounded up as Uniswap does
    assert v.functions.deleverageUsed(env.tok["WETH"].address).call() == ev["sold"]


def test_morpho_position_repaid_with_its_own_collateral(env, dl):
    v = env.vault
    mid = env.mid
    pos0 = env.morpho.functions.position(mid, v.address).call()  # (supplyShares, borrowShares, collateral)
    h0 = v.functions.health(morpho_ref(env)).call()
    # mined at the latest block's timestamp: no interest between the read above and the call
    rc = env.frozen(v.functions.deleverage(call(env, dl, morpho_ref(env), 2_000, 1.02)), env.keeper)
    (ev,) = deleveraged(env, rc)
    pos1 = env.morpho.functions.position(mid, v.address).call()
    assert pos0[2] - pos1[2] == int(1.02 * E18) == ev["sold"]
    assert pos1[1] < pos0[1]
    assert ev["healthAfter"] > h0 == ev["healthBefore"]


@pytest.mark.parametrize("kind", ["aave", "morpho"])
def test_owner_held_positions_through_their_grants(env, dl, kind):
    ref = aave_ref(env, env.owner) if kind == "aave" else morpho_ref(env, env.owner)
    h0 = env.vault.functions.health(ref).call()
    owner_weth = env.bal("WETH", env.owner)
    rc = env.send(env.vault.functions.deleverage(call(env, dl, ref, 2_000, 1.02)), env.keeper)
    (ev,) = deleveraged(env, rc)
    assert ev["account"] == env.owner
    assert ev["healthAfter"] > h0
    assert env.bal("WETH", env.owner) == owner_weth  # the owner's wallet is not touched
    # without the grant, the same call cannot reach the owner's position
    if kind == "aave":
        env.send(env.a_weth.functions.approve(env.vault.address, 0), env.owner)
    else:
        env.send(env.morpho.functions.setAuthorization(env.vault.address, False), env.owner)
    with pytest.raises(Reverted):
        env.send(env.vault.functions.deleverage(call(env, dl, ref, 1_000, 0.51)), env.keeper)


def test_a_crash_is_survived_where_the_same_position_is_liquidated(env, dl):
    """ETH 2,000 -> 1,250 (health 1.03): the keeper deleverages; at 1,150 a third party's liquidation
    of the vault's Aave account reverts, where from the state before the deleverage it succeeds."""
    v, usdc = env.vault, env.tok["USDC"]
    set_eth(env, 1_250)

    def liquidate():
        s = env.stranger
        env.send(usdc.functions.mint(s, 1_000 * E6), s)
        env.send(usdc.functions.approve(env.pool.address, MAX), s)
        return env.send(env.pool.functions.liquidationCall(env.tok["WETH"].address, usdc.address, v.address,
                                                           1_000 * E6, False), s)

    snap = env.w3.provider.make_request("evm_snapshot", [])["result"]
    set_eth(env, 1_150)
    assert aave_state(env, v.address)[2] < E18
    assert liquidate()["status"] == 1  # without the keeper: liquidated, with the bonus to a stranger
    assert env.w3.provider.make_request("evm_revert", [snap])["result"]

    rc = env.send(v.functions.deleverage(call(env, dl, aave_ref(env), 5_000, 4.08)), env.keeper)
    assert deleveraged(env, rc)[0]["healthAfter"] > 12 * E18 // 10
    set_eth(env, 1_150)
    assert aave_state(env, v.address)[2] > E18
    with pytest.raises(Reverted) as info:
        liquidate()
    assert aave_revert_name(info.value, env.net) == aave_error(env.net, "HEALTH_FACTOR_NOT_BELOW_THRESHOLD")


# ----------------------------------------------------------------- a hostile keeper cannot take value


def test_foreign_or_mismatched_pool_is_refused(env, dl):
    v = env.vault
    e = env.err(v.functions.deleverage(call(env, dl, aave_ref(env), 1_000, 0.51, pool=env.pool.address)), env.keeper)
    assert e.name == "PoolNotAllowed"
    # an allow-listed pool of another pair
    env.send(v.functions.setSwapPool(dl.wbtc_pool, True), env.owner)
    e = env.err(v.functions.deleverage(call(env, dl, aave_ref(env), 1_000, 0.51, pool=dl.wbtc_pool)), env.keeper)
    assert e.name == "PoolMismatch"


def test_min_out_below_the_chainlink_bound_is_refused(env, dl):
    weth, usdc = env.tok["WETH"].address, env.tok["USDC"].address
    bound = env.vault.functions.swapBound(weth, usdc, E18).call()
    # 1 WETH at 2,000 USD less 1 %, rounded up, in USDC units
    assert bound == 1_980 * E6
    e = env.err(env.vault.functions.deleverage(call(env, dl, aave_ref(env), 1_000, 1.0, min_out=bound - 1)),
                env.keeper)
    assert (e.name, e.args) == ("MinOutBelowBound", (bound - 1, bound))


def test_a_pool_moved_just_before_makes_it_revert_not_sell_cheap(env, dl):
    """A stranger dumps WETH into the pool (its price 10 % under the feed) just before the keeper's
    call: the sale cannot reach the bound, so nothing is sold."""
    d = Deployer(env.w3, env.net["roles"]["admin"])
    arbitrage(d, dl.uni, "WETH/USDC", env.net["tokens"], {"WETH": 1_800.0, "USDC": 1.0, "WBTC": 30_000.0},
              env.stranger)
    h0 = env.vault.functions.health(aave_ref(env)).call()
    e = env.err(env.vault.functions.deleverage(call(env, dl, aave_ref(env), 1_000, 0.51)), env.keeper)
    assert e.name == "SwapShort"
    assert env.vault.functions.health(aave_ref(env)).call() == h0


def test_callbacks_are_taken_only_inside_the_keepers_call(env, dl):
    v, s = env.vault, env.stranger
    data = env.w3.codec.encode(["address"], [env.tok["WETH"].address])
    for fn in (v.functions.onMorphoFlashLoan(1, b""),
               v.functions.uniswapV3SwapCallback(10**18, -(10**9), data),
               v.functions.uniswapV3FlashCallback(0, 0, b""),
               v.functions.executeOperation(env.tok["USDC"].address, 1, 0, v.address, b"")):
        assert env.err(fn, s).name == "UnexpectedCallback"
    # a real Aave flash loan a stranger starts with the vault as receiver: refused in the callback
    with pytest.raises(Reverted):
        env.send(env.pool.functions.flashLoanSimple(v.address, env.tok["USDC"].address, 1_000 * E6, b"", 0), s)


def test_only_the_keeper_and_only_on_allowed_sources_markets_and_kinds(env, dl):
    v = env.vault
    c = call(env, dl, aave_ref(env), 1_000, 0.51)
    assert env.err(v.functions.deleverage(c), env.stranger).name == "NotKeeper"
    assert env.err(v.functions.deleverage(call(env, dl, aave_ref(env), 1_000, 0.51, source=env.tok["USDC"].address)),
                   env.keeper).name == "FlashSourceNotAllowed"
    assert env.err(v.functions.deleverage(call(env, dl, aave_ref(env, env.stranger), 1_000, 0.51)),
                   env.keeper).name == "NotOwnPosition"
    perp = (PERP, env.perp.address, env.perp_market, v.address)
    assert env.err(v.functions.deleverage(call(env, dl, perp, 1_000, 0.51)), env.keeper).name == "UnsupportedAction"
    env.send(v.functions.pause(), env.owner)
    assert env.err(v.functions.deleverage(c), env.keeper).name == "IsPaused"


def test_owner_settings_are_the_owners_and_bounded(env, dl):
    v = env.vault
    for fn in (v.functions.setFlashSource(env.stranger, MORPHO_FLASH), v.functions.setSwapPool(env.stranger, True),
               v.functions.setMaxSlippage(1), v.functions.setDeleverageCap(env.tok["WETH"].address, MAX, MAX),
               v.functions.setPriceFeed(env.tok["WETH"].address, ZERO, 0)):
        assert env.err(fn, env.keeper).name == "NotOwner"
    assert env.err(v.functions.setMaxSlippage(1_001), env.owner).name == "SlippageTooHigh"
    assert env.err(v.functions.setFlashSource(env.stranger, 4), env.owner).name == "InvalidFlashKind"
    # the module alone, called directly, does nothing
    module = env.w3.eth.contract(address=v.functions.module().call(), abi=C.ours("DeleverageModule").abi)
    assert env.err(module.functions.setMaxSlippage(1), env.owner).name == "NotDelegated"


def test_caps_per_call_and_per_window(env, dl):
    v = env.vault
    e = env.err(v.functions.deleverage(call(env, dl, aave_ref(env), 1_000, 5.01)), env.keeper)
    assert e.name == "CapPerCallExceeded"
    env.send(v.functions.setDeleverageCap(env.tok["WETH"].address, 5 * E18, 3 * E18), env.owner)
    env.send(v.functions.deleverage(call(env, dl, aave_ref(env), 4_000, 2.04)), env.keeper)
    e = env.err(v.functions.deleverage(call(env, dl, morpho_ref(env), 2_000, 1.02)), env.keeper)
    assert e.name == "CapPerWindowExceeded"  # 3.06 WETH in one window, over 3


def test_stale_or_missing_feed_refuses_the_swap(env, dl):
    v = env.vault
    env.send(v.functions.setPriceFeed(env.tok["WETH"].address, env.net["tokens"]["WETH"]["feed"], 1), env.owner)
    env.warp(60)
    assert env.err(v.functions.deleverage(call(env, dl, aave_ref(env), 1_000, 0.51, min_out=MAX)),
                   env.keeper).name == "StalePrice"
    env.send(v.functions.setPriceFeed(env.tok["WETH"].address, ZERO, 0), env.owner)
    assert env.err(v.functions.deleverage(call(env, dl, aave_ref(env), 1_000, 0.51, min_out=MAX)),
                   env.keeper).name == "NoPriceFeed"


def test_the_swap_must_repay_the_flash_loan_from_the_sale_alone(env, dl):
    """Selling too little collateral for the debt repaid: the flash source's pull needs more than the
    sale brought, and the vault's USDC reserve may not make up the difference."""
    e = env.err(env.vault.functions.deleverage(call(env, dl, aave_ref(env), 3_000, 1.0)), env.keeper)
    assert e.name == "ReserveSpent"
    assert Web3.to_checksum_address(e.args[0]) == env.tok["USDC"].address


@pytest.mark.parametrize("mode, error", [(0, "ReentrancyGuardReentrantCall"), (1, "UnexpectedCallback"),
                                         (2, "CallbackMissing")])
def test_a_hostile_flash_source_the_owner_allowed_still_cannot_reenter_or_replay(env, dl, mode, error):
    """Even a flash source the owner allow-listed by mistake: its re-entry into a keeper function, a
    second callback, or no callback at all reverts the whole deleverage (mode 3, a lender that
    behaves, shows the set-up works)."""
    v = env.vault
    hostile = env.d.deploy(C.ours("HostileFlashSource"))
    env.send(env.tok["USDC"].functions.mint(hostile.address, 10_000 * E6), env.owner)
    env.send(v.functions.setFlashSource(hostile.address, MORPHO_FLASH), env.owner)
    c = call(env, dl, aave_ref(env), 1_000, 0.51, source=hostile.address)
    env.send(hostile.functions.set(mode, v.encode_abi("topUp", args=[aave_ref(env), 10**15])), env.owner)
    h0 = v.functions.health(aave_ref(env)).call()
    assert env.err(v.functions.deleverage(c), env.keeper).name == error
    assert v.functions.health(aave_ref(env)).call() == h0
    env.send(hostile.functions.set(3, b""), env.owner)
    assert deleveraged(env, env.send(v.functions.deleverage(c), env.keeper))[0]["repaid"] == 1_000 * E6


def test_a_uniswap_flash_source_cannot_be_the_pool_the_sale_goes_through(env, dl):
    """That pool is locked during its own flash: refused by name before anything moves."""
    env.send(env.vault.functions.setFlashSource(dl.weth_pool, UNISWAP_FLASH), env.owner)
    c = call(env, dl, aave_ref(env), 1_000, 0.51, source=dl.weth_pool)
    assert env.err(env.vault.functions.deleverage(c), env.keeper).name == "FlashPoolIsSwapPool"
