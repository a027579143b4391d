"""The Aave adapter on both Aave versions users run: ``@aave/core-v3`` (v3.0.2, revision 1) and
aave-v3-origin (v3.7, revision 11), each deployed for real on its own anvil (``aave_net``).

Health equals ``getUserAccountData`` to the wei for every seeded Aave account (alice's vault,
bob's owner-held position, carol, dave's e-mode position, erin's several collaterals and two
debts) after random price moves and elapsed time; e-mode accounts are always cross-checked; a
pool whose revision the keeper does not know is refused unless ``aave_v3.health = "pool"``."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3

from keeper.chain import contracts as C
from keeper.chain.client import ChainClient
from keeper.chain.multicall import Multicall
from keeper.devnet.deployer import Deployer
from keeper.domain import Side
from keeper.errors import ConfigError
from keeper.protocols.aave_v3 import AaveV3Adapter
from keeper.protocols.base import ReadContext
from tests.devnet.helpers import set_price


def aave_accounts(dep: dict) -> list[str]:
    return sorted({p["account"] for p in dep["positions"] if p["protocol"] == "aave_v3"})


def role(dep: dict, name: str) -> str:
    return dep["roles"][name]


def pool_of(net, address: str | None = None):
    return net.w3.eth.contract(address=address or net.dep["aave_v3"]["pool"], abi=C.aave_for(net.version, "Pool").abi)


@pytest.fixture
def mc(aave_net):
    client = ChainClient("devnet", [aave_net.url], timeout=30)
    client.connect()
    m = Multicall(client, aave_net.dep["multicall3"], in_flight=2)
    yield m
    m.close()


def adapter(net, **kw) -> AaveV3Adapter:
    a = net.dep["aave_v3"]
    return AaveV3Adapter("devnet", kw.pop("pool", a["pool"]), a["data_provider"], a["oracle"], **kw)


def read(ad, mc, accounts, block):
    return {p.account.lower(): p for p in ad.read(mc, accounts, ReadContext("devnet", block, 0, {}))}


def assert_equals_pool(net, positions, accounts, block):
    pool = pool_of(net)
    for acct in accounts:
        want = pool.functions.getUserAccountData(Web3.to_checksum_address(acct)).call(block_identifier=block)
        p = positions.get(acct.lower())
        if want[0] == 0 and want[1] == 0:
            assert p is None
            continue
        assert p is not None and p.price_ok, (net.version, acct, p and p.price_issue)
        got = (p.health_wad, p.extra["total_collateral_base"], p.extra["total_debt_base"])
        assert got == (want[5], want[0], want[1]), (net.version, acct, block)


def test_revision_and_family_are_read_from_the_pool(aave_net, mc):
    ad = adapter(aave_net)
    ad.prepare(mc, aave_net.w3.eth.block_number)
    assert ad.meta is not None
    assert (ad.meta.revision, ad.meta.family.name) == {"3.0": (1, "3.0-3.1"), "3.7": (11, "3.6+")}[aave_net.version]
    assert ad.meta.revision == aave_net.dep["aave_v3"]["revision"]
    # v3.7 has no stable debt token (address 0); v3.0 has one per reserve.
    stable = {r.stable_debt_token for r in ad.reserves}
    assert (stable == {"0x" + "00" * 20}) == (aave_net.version == "3.7")
    # The e-mode category the devnet seeds (WETH in "ETH correlated"), as each version describes it.
    cat = ad.meta.emode[1]
    assert cat.liquidation_threshold_bps == 9_300
    weth = next(r for r in ad.reserves if r.asset.symbol == "WETH")
    assert cat.applies_to(ad.meta.family, weth, 1)
    assert not any(cat.applies_to(ad.meta.family, r, 1) for r in ad.reserves if r.asset.symbol != "WETH")


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(eth=st.integers(1_200, 2_600), btc=st.integers(18_000, 40_000), usdc=st.integers(97, 103),
       days=st.integers(1, 400), cents=st.integers(0, 99))
def test_health_to_the_wei_after_price_moves_and_time(aave_net, mc, eth, btc, usdc, days, cents):
    w3, dep = aave_net.w3, aave_net.dep
    snap = w3.provider.make_request("evm_snapshot", [])["result"]
    try:
        accounts = aave_accounts(dep)
        ad = adapter(aave_net)
        set_price(w3, dep, "ETH", eth + cents / 100)
        set_price(w3, dep, "BTC", btc + cents / 7)
        set_price(w3, dep, "USDC", usdc / 100)
        w3.provider.make_request("evm_increaseTime", [days * 86_400 + cents])
        w3.provider.make_request("evm_mine", [])
        block = w3.eth.block_number
        pos = read(ad, mc, accounts, block)
        assert_equals_pool(aave_net, pos, accounts, block)
        # Legs equal the tokens' own balanceOf (the version's rounding of scaled balances).
        erc20 = C.ours("TestERC20").abi
        for acct, p in pos.items():
            for leg in p.legs:
                book = "a_tokens" if leg.side is Side.COLLATERAL else "variable_debt_tokens"
                tok = w3.eth.contract(address=dep["aave_v3"][book][leg.asset.symbol], abi=erc20)
                assert leg.amount_raw == tok.functions.balanceOf(Web3.to_checksum_address(acct)).call(
                    block_identifier=block), (aave_net.version, acct, leg.asset.symbol)
    finally:
        w3.provider.make_request("evm_revert", [snap])


def test_emode_and_multi_asset_accounts(aave_net, mc):
    dep = aave_net.dep
    dave = next(p["account"] for p in dep["positions"] if p["id"] == "dave-aave-emode")
    erin = next(p["account"] for p in dep["positions"] if p["id"] == "erin-aave-multi")
    ad = adapter(aave_net)  # no verify list: e-mode accounts are cross-checked anyway
    block = aave_net.w3.eth.block_number
    pos = read(ad, mc, [dave, erin], block)
    assert_equals_pool(aave_net, pos, [dave, erin], block)
    d = pos[dave.lower()]
    assert d.extra["emode"] == 1 and d.extra["verified"]
    lts = {(leg.asset.symbol, leg.side): leg.liquidation_weight for leg in d.legs}
    assert lts[("WETH", Side.COLLATERAL)] == pytest.approx(0.93) and lts[("WBTC", Side.COLLATERAL)] == \
        pytest.approx(0.75)
    e = pos[erin.lower()]
    assert {leg.asset.symbol for leg in e.legs_on(Side.COLLATERAL)} == {"WETH", "WBTC", "USDC"}
    assert {leg.asset.symbol for leg in e.legs_on(Side.DEBT)} == {"USDC", "WETH"}


def test_a_user_entering_emode_is_read_and_checked_in_the_same_tick(aave_net, mc):
    w3, dep = aave_net.w3, aave_net.dep
    snap = w3.provider.make_request("evm_snapshot", [])["result"]
    try:
        erin = next(p["account"] for p in dep["positions"] if p["id"] == "erin-aave-multi")
        ad = adapter(aave_net)
        read(ad, mc, [erin], w3.eth.block_number)
        read(ad, mc, [erin], w3.eth.block_number)
        # erin repays her USDC debt (not borrowable in the ETH category) and enters e-mode 1.
        pool, usdc = pool_of(aave_net), dep["tokens"]["USDC"]["address"]
        d = Deployer(w3, role(dep, "admin"))
        tok = w3.eth.contract(address=usdc, abi=C.ours("TestERC20").abi)
        d.send(tok.functions.mint(erin, 20_000 * 10**6))
        d.send(tok.functions.approve(pool.address, 2**256 - 1), sender=erin)
        d.send(pool.functions.repay(usdc, 2**256 - 1, 2, erin), sender=erin)
        d.send(pool.functions.setUserEMode(1), sender=erin)
        block = w3.eth.block_number
        pos = read(ad, mc, [erin], block)
        assert pos[erin.lower()].extra["emode"] == 1 and pos[erin.lower()].extra["verified"]
        assert_equals_pool(aave_net, pos, [erin], block)
    finally:
        w3.provider.make_request("evm_revert", [snap])


@pytest.fixture
def override(aave_net):
    """A pool answering POOL_REVISION() with 99 and forwarding everything else to the real pool."""
    d = Deployer(aave_net.w3, role(aave_net.dep, "admin"))
    return d.deploy(C.ours("PoolRevisionOverride"), aave_net.dep["aave_v3"]["pool"], 99).address


def test_an_unknown_revision_is_refused_and_pool_mode_reads_it_exactly(aave_net, mc, override):
    block = aave_net.w3.eth.block_number
    accounts = aave_accounts(aave_net.dep)
    with pytest.raises(ConfigError) as e:
        adapter(aave_net, pool=override).read(mc, accounts, ReadContext("devnet", block, 0, {}))
    assert "revision 99" in str(e.value) and 'health = "pool"' in (e.value.hint or "")
    ad = adapter(aave_net, pool=override, health="pool")
    pos = read(ad, mc, accounts, block)
    assert all(p.extra["verified"] and p.extra["revision"] == 99 for p in pos.values())
    assert_equals_pool(aave_net, pos, accounts, block)
