"""A vault with no reserve, after a crash, on the devnet (real Aave v3, Morpho Blue, Uniswap v3): the
keeper reads the vault's deleverage settings and the pool (``keeper.app.deleverage_routes``), plans a
deleverage and sends it through the one execution pipeline; on chain the position is repaid with its
own collateral and lands where the plan said. Without the vault's settings, no deleverage is planned."""

from __future__ import annotations

import copy

import pytest
from web3.logs import DISCARD

from keeper.app.books import asset_params, plan_books, read_books
from keeper.chain import contracts as C
from keeper.daemon.keeper import Keeper
from keeper.devnet.deployer import Deployer
from keeper.devnet.uniswap import PoolSpec, add_pool, arbitrage
from keeper.domain import ActionKind
from keeper.plan.deleverage import EXTRA_GAS
from tests.daemon.helpers import VOLS, devnet_config
from tests.daemon.test_dispatch import _planned
from tests.devnet.helpers import set_price

pytestmark = pytest.mark.usefixtures("snapshot")

E18, E6 = 10**18, 10**6
MAX = 2**256 - 1


def _vault_without_reserve(w3, devnet, *, configure: bool):
    """A fresh KeeperVault of a fresh owner holding one Aave position (10 WETH, 13,000 USDC debt:
    health 1.27 at ETH 2,000), no reserve; with ``configure`` its deleverage is set up (Morpho flash
    loans, the WETH/USDC pool, the devnet's feeds, 1 % slippage, caps)."""
    # an owner no devnet role uses: impersonated, with ether for gas
    owner = w3.to_checksum_address("0x" + "d1" * 20)
    w3.provider.make_request("anvil_setBalance", [owner, hex(100 * E18)])
    w3.provider.make_request("anvil_impersonateAccount", [owner])
    d = Deployer(w3, owner)
    erc20 = C.ours("TestERC20")
    weth, usdc = (d.at(devnet["tokens"][s]["address"], erc20) for s in ("WETH", "USDC"))
    pool = d.at(devnet["aave_v3"]["pool"], C.aave_for(devnet["aave_v3"].get("version"), "Pool"))
    d.send(weth.functions.mint(owner, 10 * E18))
    v = d.deploy(C.ours("KeeperVault"), owner, devnet["roles"]["keeper"])
    for tok in (weth, usdc):
        d.send(v.functions.setMarket(0, pool.address, bytes(12) + bytes.fromhex(tok.address[2:]), True, 12 * E18 // 10))
    d.send(weth.functions.transfer(v.address, 10 * E18))
    d.send(v.functions.execute(weth.address, 0, weth.encode_abi("approve", args=[pool.address, MAX])))
    d.send(v.functions.execute(pool.address, 0, pool.encode_abi("supply", args=[weth.address, 10 * E18, v.address, 0])))
    d.send(v.functions.execute(pool.address, 0, pool.encode_abi("borrow", args=[usdc.address, 13_000 * E6, 2, 0,
                                                                                   v.address])))
    d.send(v.functions.withdraw(usdc.address, MAX))  # what was borrowed goes to the owner: no reserve at all
    if configure:
        uni = devnet["uniswap_v3"]
        d.send(v.functions.setFlashSource(devnet["morpho_blue"]["morpho"], 1))
        d.send(v.functions.setSwapPool(uni["pools"]["WETH/USDC"]["address"], True))
        for s in ("WETH", "USDC"):
            d.send(v.functions.setPriceFeed(devnet["tokens"][s]["address"], devnet["tokens"][s]["feed"], 86_400))
        d.send(v.functions.setMaxSlippage(100))
        d.send(v.functions.setDeleverageCap(weth.address, 5 * E18, 8 * E18))
    return v, pool


def _crash(w3, devnet, usd: float) -> None:
    set_price(w3, devnet, "ETH", usd)
    prices = {"WETH": usd, "USDC": 1.0, "WBTC": 30_000.0}
    arbitrage(Deployer(w3, devnet["roles"]["admin"]), devnet["uniswap_v3"], "WETH/USDC", devnet["tokens"], prices,
              devnet["roles"]["lp"])


def _keeper(tmp_path, anvil, devnet, monkeypatch, vault, **chain) -> Keeper:
    cfg = devnet_config(tmp_path, anvil.url, devnet, monkeypatch, chain={
        "accounts": [{"address": vault.address, "kind": "vault", "label": "dana", "protocols": ["aave_v3"]}],
        **chain})
    k = Keeper(cfg, vols=VOLS)
    k.startup()
    return k


def _send(k: Keeper, w3, vault, session, book, action, block: int, event: str = "Deleveraged"):
    """``action`` through the keeper's execution pipeline, mined; the vault's ``event`` in its receipt."""
    d = k.executor
    d.begin(block)
    item = d.add(session, book, action)
    d.flush()
    d.settle_all([item])
    assert item.error is None, item.error
    rc = w3.eth.get_transaction_receipt(item.out.receipt.tx_hash)
    (ev,) = [e["args"] for e in w3.eth.contract(address=vault.address, abi=C.ours("KeeperVault").abi)
             .events[event]().process_receipt(rc, errors=DISCARD)]
    return ev


def test_a_reserveless_vault_is_deleveraged_by_the_pipeline(tmp_path, anvil, w3, devnet, monkeypatch):
    v, pool = _vault_without_reserve(w3, devnet, configure=True)
    _crash(w3, devnet, 1_700)  # health 10 * 1700 * 0.825 / 13,000 = 1.08
    k = _keeper(tmp_path, anvil, devnet, monkeypatch, v)
    try:
        block = w3.eth.block_number
        session, actions = _planned(k, block)
        ((book, a),) = actions
        assert a.kind is ActionKind.DELEVERAGE and a.swap is not None
        assert a.asset.symbol == "USDC" and a.swap.collateral.symbol == "WETH"
        assert a.swap.pool == devnet["uniswap_v3"]["pools"]["WETH/USDC"]["address"].lower()
        assert a.reason.p_after <= k.policy.epsilon * k.policy.target_fraction
        hf0 = pool.functions.getUserAccountData(v.address).call()[5]

        ev = _send(k, w3, v, session, book, a, block)
        assert ev["repaid"] == a.amount_raw and ev["sold"] == a.swap.sell_raw
        assert ev["bought"] >= a.swap.min_out_raw
        hf1 = pool.functions.getUserAccountData(v.address).call()[5]
        assert hf1 > hf0
        assert hf1 / E18 == pytest.approx(a.reason.health_after, rel=2e-3)  # the plan's estimate
        # the next read: at or under the risk target, nothing more to do
        _, again = _planned(k, w3.eth.block_number)
        assert again == []
    finally:
        k.shutdown()


def test_without_the_vaults_settings_no_deleverage_is_planned(tmp_path, anvil, w3, devnet, monkeypatch):
    v, _pool = _vault_without_reserve(w3, devnet, configure=False)
    _crash(w3, devnet, 1_700)
    k = _keeper(tmp_path, anvil, devnet, monkeypatch, v)
    try:
        _session, actions = _planned(k, w3.eth.block_number)
        assert actions == []  # no reserve and no deleverage: an alert, nothing sent
    finally:
        k.shutdown()


def test_a_thin_pool_cuts_the_deleverage_short_and_never_past_the_bound(tmp_path, anvil, w3, devnet, monkeypatch):
    """The vault allows only a thin pool (100,000 USD deep, 0.05 %): the planner sells no more than
    keeps the pool's fee and impact inside the owner's 1 % (a partial deleverage, alerted), and on
    chain the sale brings at least its minimum; the rest waits for the next tick."""
    v, _pool = _vault_without_reserve(w3, devnet, configure=True)
    admin = Deployer(w3, devnet["roles"]["admin"])
    uni = copy.deepcopy(devnet["uniswap_v3"])  # add_pool records the pool: not in the session's deployment
    thin = add_pool(admin, uni, devnet["tokens"], {"WETH": 2_000.0, "USDC": 1.0, "WBTC": 30_000.0},
                    PoolSpec("WETH", depth_usd=100_000, fee=500), devnet["roles"]["lp"])
    owner = Deployer(w3, w3.eth.contract(address=v.address, abi=v.abi).functions.owner().call())
    owner.send(v.functions.setSwapPool(uni["pools"]["WETH/USDC"]["address"], False))
    owner.send(v.functions.setSwapPool(thin["address"], True))
    _crash(w3, devnet, 1_700)
    arbitrage(admin, uni, "WETH/USDC@500", devnet["tokens"], {"WETH": 1_700.0, "USDC": 1.0, "WBTC": 30_000.0},
              devnet["roles"]["lp"])
    k = _keeper(tmp_path, anvil, devnet, monkeypatch, v,
                uniswap_v3={"factory": uni["factory"], "fee_tiers": [500, 3000]})
    try:
        block = w3.eth.block_number
        snap = k.reader.read(block)
        assets = asset_params(k.reader, snap)
        books = read_books(k.reader, snap, k.ccfg, assets)
        ((book, plan),) = list(plan_books(books, k.risk, assets, k.policy, block, {}))
        (a,) = plan.actions
        assert a.kind is ActionKind.DELEVERAGE and a.swap.pool == thin["address"].lower()
        assert a.reason.p_after > k.policy.epsilon * k.policy.target_fraction  # partial
        assert any(al.kind == "deleverage_partial" for al in plan.alerts)
        route = book.routes[a.position_key]
        assert route.pool == thin["address"].lower() and route.pool_fee == 0.0005
        # no more than keeps the fee and the impact on the pool's active liquidity within 1 % less a margin
        assert a.swap.sell_raw / E18 * route.collateral.price_usd <= route.largest_sale_usd() * (1 + 1e-6)

        ev = _send(k, w3, v, k._session(snap, assets, books), book, a, block)
        assert ev["bought"] >= a.swap.min_out_raw
        cost = 1 - ev["bought"] / E6 / (ev["sold"] / E18 * 1_700)
        assert 0 < cost < 0.01  # the fee and the impact, inside the owner's slippage
    finally:
        k.shutdown()


def test_the_cheapest_flash_source_that_can_lend_the_debt_is_chosen(tmp_path, anvil, w3, devnet, monkeypatch):
    """Morpho Blue (free) while the vault allows it; without it, a Uniswap pool other than the sale's
    (the WBTC/USDC pool lends USDC at its 0.3 %), and the deleverage goes through with that fee."""
    v, _pool = _vault_without_reserve(w3, devnet, configure=True)
    owner = Deployer(w3, w3.eth.contract(address=v.address, abi=v.abi).functions.owner().call())
    wbtc_pool = devnet["uniswap_v3"]["pools"]["WBTC/USDC"]["address"]
    owner.send(v.functions.setFlashSource(wbtc_pool, 3))
    _crash(w3, devnet, 1_700)
    k = _keeper(tmp_path, anvil, devnet, monkeypatch, v)
    try:
        def routed():
            snap = k.reader.read(w3.eth.block_number)
            assets = asset_params(k.reader, snap)
            books = read_books(k.reader, snap, k.ccfg, assets)
            ((route,),) = [list(b.routes.values()) for b in books]
            return snap, assets, books, route

        snap, _a, _b, route = routed()
        assert route.flash_source == devnet["morpho_blue"]["morpho"].lower() and route.flash_fee == 0
        # its extra gas over a reserve action, at the block's base fee and a 1 gwei tip, in ether at the feed
        base = w3.eth.get_block(snap.block)["baseFeePerGas"]
        assert route.gas_usd == pytest.approx(EXTRA_GAS * (base + 10**9) / 1e18 * 1_700) and route.gas_usd > 0
        owner.send(v.functions.setFlashSource(devnet["morpho_blue"]["morpho"], 0))
        snap, assets, books, route = routed()
        assert route.flash_source == wbtc_pool.lower() and route.flash_fee == pytest.approx(0.003)
        ((book, plan),) = list(plan_books(books, k.risk, assets, k.policy, snap.block, {}))
        (a,) = plan.actions
        assert a.swap.flash_source == wbtc_pool.lower()
        ev = _send(k, w3, v, k._session(snap, assets, books), book, a, snap.block)
        assert ev["flashFee"] == -(-a.amount_raw * 3_000 // 10**6) > 0
    finally:
        k.shutdown()
