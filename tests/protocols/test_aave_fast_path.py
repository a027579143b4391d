"""The Aave adapter's fast path (bitmap-driven balance reads, health computed with Aave's own
integer maths) against the pool itself, on the devnet: health equal to
``getUserAccountData(...).healthFactor`` to the wei, legs equal to the tokens' ``balanceOf``, and
an account whose reserves change between two ticks (or metadata the maths depends on) read
correctly in the very next tick."""

import pytest
from web3 import Web3

from keeper.chain import contracts as C
from keeper.devnet.deployer import Deployer
from keeper.domain import MAX_UINT256, Side
from keeper.protocols.aave_v3 import AaveV3Adapter
from keeper.protocols.aave_v3.maths import health_factor, percent_mul, ray_mul, wad_div
from keeper.protocols.base import ReadContext
from tests.aave_versions import anvil, devnet, w3  # noqa: F401  (the module runs on both Aave versions)
from tests.devnet.helpers import E18, set_price, token

pytestmark = pytest.mark.usefixtures("snapshot")


MAX = 2**256 - 1
USDC = 10**6
ANVIL_BLOCK_GAS = 30_000_000  # anvil's default block gas limit, which also caps eth_call


def adapter(devnet, **kw) -> AaveV3Adapter:
    a = devnet["aave_v3"]
    return AaveV3Adapter("devnet", a["pool"], a["data_provider"], a["oracle"], **kw)


def pool(w3, devnet):
    return w3.eth.contract(address=devnet["aave_v3"]["pool"], abi=C.aave("Pool").abi)


def tick(w3, ad, mc, accounts, rounds=None):
    """One read at the head; ``rounds`` (a list) gets how many multicall rounds it took."""
    block = w3.eth.block_number
    n = [0]
    orig = mc.stream_fixed

    def counted(chunks, b):
        n[0] += 1
        return orig(chunks, b)

    mc.stream_fixed = counted
    try:
        out = {p.account.lower(): p for p in ad.read(mc, accounts, ReadContext("devnet", block, 0, {}))}
    finally:
        del mc.stream_fixed
    if rounds is not None:
        rounds.append(n[0])
    return block, out


def assert_equals_pool(w3, devnet, positions, block):
    p_ = pool(w3, devnet)
    for acct, p in positions.items():
        want = p_.functions.getUserAccountData(Web3.to_checksum_address(acct)).call(block_identifier=block)
        assert p.health_wad == want[5], acct
        assert p.extra["total_collateral_base"] == want[0] and p.extra["total_debt_base"] == want[1]
        for leg in p.legs:
            sym = leg.asset.symbol
            if leg.side is Side.COLLATERAL:
                tok = devnet["aave_v3"]["a_tokens"][sym]
            else:
                tok = devnet["aave_v3"]["variable_debt_tokens"][sym]
            bal = w3.eth.contract(address=tok, abi=C.ours("TestERC20").abi).functions.balanceOf(
                Web3.to_checksum_address(acct)).call(block_identifier=block)
            assert leg.amount_raw == bal, (acct, sym, leg.side)


def carol_setup(w3, devnet):
    carol = devnet["roles"]["carol"]
    d = Deployer(w3, devnet["roles"]["admin"])
    return carol, d, pool(w3, devnet)


def test_aave_maths_matches_solidity_rounding():
    assert ray_mul(3, 10**27 // 2) == 2  # 1.5 rounds half up
    assert percent_mul(1, 5_000) == 1 and percent_mul(1, 4_999) == 0
    assert wad_div(1, 3) == 333_333_333_333_333_333
    assert health_factor(0, 0, 0) == MAX_UINT256
    assert health_factor(100, 100 * 8_000, 0) == MAX_UINT256
    assert health_factor(0, 0, 5) == 0


def test_bitmap_changes_are_read_in_the_very_next_tick(w3, devnet, mc):
    carol, d, p_ = carol_setup(w3, devnet)
    accounts = [carol, devnet["roles"]["bob"]]
    ad = adapter(devnet)
    block, pos = tick(w3, ad, mc, accounts)  # first tick: bitmaps first, then the balances
    assert {leg.asset.symbol for leg in pos[carol.lower()].legs} == {"WETH", "WBTC", "USDC"}
    assert_equals_pool(w3, devnet, pos, block)

    # Supplies a new asset: USDC becomes collateral too.
    usdc, weth, wbtc = token(w3, devnet, "USDC"), token(w3, devnet, "WETH"), token(w3, devnet, "WBTC")
    d.send(usdc.functions.mint(carol, 50_000 * USDC))
    d.send(usdc.functions.approve(p_.address, MAX), sender=carol)
    d.send(p_.functions.supply(usdc.address, 5_000 * USDC, carol, 0), sender=carol)
    rounds = []
    block, pos = tick(w3, ad, mc, accounts, rounds)
    assert rounds == [2]  # carol's new bitmap: re-read in a follow-up round at the same block
    legs = {(leg.asset.symbol, leg.side) for leg in pos[carol.lower()].legs}
    assert ("USDC", Side.COLLATERAL) in legs and ("USDC", Side.DEBT) in legs
    assert_equals_pool(w3, devnet, pos, block)

    # Disables WBTC as collateral.
    d.send(p_.functions.setUserUseReserveAsCollateral(wbtc.address, False), sender=carol)
    block, pos = tick(w3, ad, mc, accounts)
    assert "WBTC" not in {leg.asset.symbol for leg in pos[carol.lower()].legs}
    assert_equals_pool(w3, devnet, pos, block)

    # Repays all debt: no debt leg, health max uint as the pool says.
    d.send(p_.functions.repay(usdc.address, MAX, 2, carol), sender=carol)
    block, pos = tick(w3, ad, mc, accounts)
    assert pos[carol.lower()].health_wad == MAX_UINT256
    assert all(leg.side is Side.COLLATERAL for leg in pos[carol.lower()].legs)
    assert_equals_pool(w3, devnet, pos, block)

    # Borrows WETH again (a new borrowing bit) after a price move and time.
    d.send(p_.functions.borrow(weth.address, E18, 2, 0, carol), sender=carol)
    set_price(w3, devnet, "ETH", 2_345.678)
    w3.provider.make_request("evm_increaseTime", [40 * 86_400])
    w3.provider.make_request("evm_mine", [])
    block, pos = tick(w3, ad, mc, accounts)
    assert ("WETH", Side.DEBT) in {(leg.asset.symbol, leg.side) for leg in pos[carol.lower()].legs}
    assert_equals_pool(w3, devnet, pos, block)


def set_emode_category(net, d, cfg, lt: int, assets: list[str], label: str = "majors") -> None:
    """(Re)configure e-mode category 1 with ``assets`` as collateral and borrowable, as each version
    does it: v3.0 puts the category in the reserve's configuration, v3.7 in the category's bitmaps."""
    if net.version == "3.0":
        d.send(cfg.functions.setEModeCategory(1, lt - 300, lt, 10_200, "0x" + "00" * 20, label))
        for a in assets:
            d.send(cfg.functions.setAssetEModeCategory(a, 1))
    else:
        d.send(cfg.functions.setEModeCategory(1, lt - 300, lt, 10_200, label, False))
        for a in assets:
            d.send(cfg.functions.setAssetCollateralInEMode(a, 1, True))
            d.send(cfg.functions.setAssetBorrowableInEMode(a, 1, True))


def test_emode_user_and_category_edits(aave_net, w3, devnet, mc):
    carol, d, p_ = carol_setup(w3, devnet)
    cfg = w3.eth.contract(address=devnet["aave_v3"]["pool_configurator"],
                          abi=C.aave_for(aave_net.version, "PoolConfigurator").abi)
    weth, usdc = devnet["tokens"]["WETH"]["address"], devnet["tokens"]["USDC"]["address"]
    set_emode_category(aave_net, d, cfg, 9_300, [weth, usdc])
    ad = adapter(devnet)
    accounts = [carol, devnet["roles"]["bob"]]
    block, pos = tick(w3, ad, mc, accounts)
    assert_equals_pool(w3, devnet, pos, block)
    d.send(p_.functions.setUserEMode(1), sender=carol)
    block, pos = tick(w3, ad, mc, accounts)
    p = pos[carol.lower()]
    assert p.extra["emode"] == 1 and p.extra["verified"]  # an e-mode account is always cross-checked
    assert {leg.asset.symbol: leg.liquidation_weight for leg in p.legs if leg.side is Side.COLLATERAL} == \
        {"WETH": 0.93, "WBTC": 0.75}
    assert_equals_pool(w3, devnet, pos, block)
    # The admin edits the category the user is in: the next tick sees it (metadata guard).
    set_emode_category(aave_net, d, cfg, 9_150, [])
    set_price(w3, devnet, "BTC", 31_234.5)
    rounds = []
    block, pos = tick(w3, ad, mc, accounts, rounds)
    assert rounds == [2] and ad._prepared_at == block  # metadata reloaded at that block, everyone re-read
    assert_equals_pool(w3, devnet, pos, block)
    assert {leg.asset.symbol: leg.liquidation_weight for leg in pos[carol.lower()].legs
            if leg.side is Side.COLLATERAL}["WETH"] == 0.915
    if aave_net.version == "3.0":
        # A category priced from its own source (v3.0-3.1 only): every asset in it at the source's price.
        d.send(p_.functions.setUserEMode(0), sender=carol)
        d.send(cfg.functions.setEModeCategory(1, 8_900, 9_150, 10_300, usdc, "majors"))
        d.send(cfg.functions.setAssetEModeCategory(weth, 0))
        d.send(p_.functions.setUserEMode(1), sender=carol)
    else:
        # v3.2+: WETH leaves the category's collateral bitmap; its own threshold applies again.
        d.send(cfg.functions.setAssetCollateralInEMode(weth, 1, False))
    block, pos = tick(w3, ad, mc, accounts)
    assert_equals_pool(w3, devnet, pos, block)
    if aave_net.version == "3.7":
        assert {leg.asset.symbol: leg.liquidation_weight for leg in pos[carol.lower()].legs
                if leg.side is Side.COLLATERAL}["WETH"] == 0.825


def test_many_users_across_chunks(w3, devnet, mc):
    d = Deployer(w3, devnet["roles"]["admin"])
    p_ = pool(w3, devnet)
    weth, wbtc = token(w3, devnet, "WETH"), token(w3, devnet, "WBTC")
    usdc = devnet["tokens"]["USDC"]["address"]
    users = []
    for i in range(24):
        u = Web3.to_checksum_address("0x" + f"{0xA11CE000 + i:040x}")
        w3.provider.make_request("anvil_impersonateAccount", [u])
        w3.provider.make_request("anvil_setBalance", [u, hex(10**20)])
        d.send(weth.functions.mint(u, 5 * E18))
        d.send(weth.functions.approve(p_.address, MAX), sender=u)
        d.send(p_.functions.supply(weth.address, (1 + i % 4) * E18, u, 0), sender=u)
        if i % 3 == 0:
            d.send(wbtc.functions.mint(u, 10**6))
            d.send(wbtc.functions.approve(p_.address, MAX), sender=u)
            d.send(p_.functions.supply(wbtc.address, 10**6, u, 0), sender=u)
        if i % 5 != 4:  # some only supply
            d.send(p_.functions.borrow(usdc, (300 + 37 * i) * USDC, 2, 0, u), sender=u)
        users.append(u)
    nobody = "0x" + "ab" * 20
    accounts = [*users[:12], nobody, *users[12:], devnet["roles"]["carol"]]
    ad = adapter(devnet, chunk_calls=10)
    block, pos = tick(w3, ad, mc, accounts)
    assert len(ad._groups) >= 5  # several chunks
    assert set(pos) == {u.lower() for u in users} | {devnet["roles"]["carol"].lower()}
    assert_equals_pool(w3, devnet, pos, block)
    set_price(w3, devnet, "ETH", 1_777.77)
    rounds = []
    block, pos2 = tick(w3, ad, mc, accounts, rounds)  # cached chunks, one round
    assert rounds == [1]
    assert_equals_pool(w3, devnet, pos2, block)
    assert all(pos2[a].health_wad != pos[a].health_wad for a in pos if pos[a].health_wad != MAX_UINT256)

    # Gas: a chunk of about 2,000 of these calls stays well under anvil's default 30M limit.
    big = adapter(devnet)
    big.prepare(mc, block)
    big._layout = dict(ad._layout)
    group = big._group_for(accounts * 20)
    assert len(group.chunk.calls) >= 2_000
    gas = w3.eth.estimate_gas({"to": devnet["multicall3"], "data": group.chunk.payload}, block)
    assert gas < ANVIL_BLOCK_GAS // 2, gas


def test_unchanged_ticks_reuse_calldata(w3, devnet, mc):
    ad = adapter(devnet)
    accounts = [devnet["roles"]["carol"], devnet["roles"]["bob"]]
    tick(w3, ad, mc, accounts)
    first = ad.plan(accounts)
    second = ad.plan(accounts)
    assert [c is d for c, d in zip(first.fixed, second.fixed)] == [True] * len(first.fixed)
    # and that plan is one round: nothing changed
    rounds = []
    tick(w3, ad, mc, accounts, rounds)
    assert rounds == [1]


def test_health_that_differs_from_the_pool_flags_the_checked_accounts(w3, devnet, mc):
    """Accounts the keeper may act for (``verify``) are each checked against getUserAccountData in
    the same chunk, and one other account per chunk is sampled: maths that no longer matches the
    pool (simulated here by a wrong cached threshold) flags every checked account, by name, and
    leaves the unchecked watch-only one as it was read."""
    from dataclasses import replace

    carol, bob = devnet["roles"]["carol"], devnet["roles"]["bob"]
    for verify, flagged in (([carol, bob], {carol, bob}), ([bob], {bob}), ([], {carol})):
        ad = adapter(devnet, verify=verify)
        accounts = [carol, bob]
        tick(w3, ad, mc, accounts)
        _block, pos = tick(w3, ad, mc, accounts)
        assert all(p.price_ok for p in pos.values())
        assert {a for a in accounts if pos[a.lower()].extra["verified"]} == flagged
        weth = next(i for i, r in enumerate(ad.reserves) if r.asset.symbol == "WETH")
        ad.reserves[weth] = replace(ad.reserves[weth], liquidation_threshold_bps=5_000)
        _block, pos = tick(w3, ad, mc, accounts)
        bad = {a for a in accounts if not pos[a.lower()].price_ok}
        assert bad == flagged, verify
        for a in bad:
            assert "health unverified" in pos[a.lower()].price_issue and "differs from the pool's" in \
                pos[a.lower()].price_issue


def test_bulk_decoder_equals_the_generic_one_and_falls_back(w3, devnet, mc):
    from keeper.chain.multicall import decode_aggregate3

    ad = adapter(devnet)
    accounts = [devnet["roles"]["carol"], devnet["roles"]["bob"]]
    tick(w3, ad, mc, accounts)
    plan = ad.plan(accounts)
    block = w3.eth.block_number
    for chunk in plan.fixed:
        raw = mc.client.eth_call(mc.address, chunk.payload, block)
        fast = chunk.decode(raw)
        assert fast == chunk.values(decode_aggregate3(raw)) and None not in fast
    set_price(w3, devnet, "ETH", 0)  # AaveOracle.getAssetsPrices now reverts: the slow path marks it
    raw = mc.client.eth_call(mc.address, plan.fixed[0].payload, w3.eth.block_number)
    values = plan.fixed[0].decode(raw)
    # the chunk opens with the shared calls (prices first); the sampled account's calls end with the
    # pool's own getUserAccountData check, which prices through the same oracle: both revert, nothing else
    g = ad._groups[0]
    k = g.checked.index(True)
    check_at = g.shared + sum(g.counts[:k + 1]) - 1
    assert [i for i, v in enumerate(values) if v is None] == [0, check_at]
    _block, pos = tick(w3, ad, mc, accounts)
    assert len(pos) == 2 and all(not p.price_ok and p.health_wad == 0 for p in pos.values())
