"""The Aave adapter read with ONE instance across blocks (as the daemon does) while alice's vault
position changes layout and prices move, every account compared with the pool's
``getUserAccountData`` to the wei; and a node that answers the chunks of one read (separate
eth_calls at the same block number) from different states — what anvil does for the head while it
mines the next block, and what a reorg or a load-balanced RPC does on a real chain — must not
produce a health that differs from the pool's (the "health unverified" safety stop)."""

from __future__ import annotations

import itertools
import threading

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from web3 import Web3

from keeper.chain import contracts as C
from keeper.chain.client import ChainClient
from keeper.chain.multicall import Multicall
from keeper.devnet.deployer import Deployer
from keeper.protocols.base import ReadContext
from tests.aave_versions import anvil, devnet, w3  # noqa: F401  (the module runs on both Aave versions)
from tests.conftest import evm_revert, evm_snapshot
from tests.devnet.helpers import set_price, token
from tests.protocols.test_aave_fast_path import adapter, pool

MAX = 2**256 - 1

UNITS = {"WETH": 10**18, "WBTC": 10**8, "USDC": 10**6}


class SkewedMulticall(Multicall):
    """A real multicall on the devnet whose first ``stream_fixed`` answers every chunk after the first
    from block + 1 (the next state), as a node does that serves a call for the head from the block it
    is mining. Later reads are answered honestly."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.skew = True
        self.rounds = 0

    def stream_fixed(self, chunks, block):
        self.rounds += 1
        if not self.skew or len(chunks) < 2:
            if self.skew and chunks:  # one chunk: all of it from the next state
                self.skew = False
                return super().stream_fixed(chunks, block + 1)
            return super().stream_fixed(chunks, block)
        self.skew = False
        return itertools.chain(super().stream_fixed(chunks[:1], block), super().stream_fixed(chunks[1:], block + 1))


def accounts_of(devnet) -> list[str]:
    return sorted({p["account"] for p in devnet["positions"] if p["protocol"] == "aave_v3"})


def read(ad, mc, accounts, block):
    return {p.account.lower(): p for p in ad.read(mc, accounts, ReadContext("devnet", block, 0, {}))}


def pool_health(w3, devnet, acct, block) -> tuple:
    return tuple(pool(w3, devnet).functions.getUserAccountData(Web3.to_checksum_address(acct)).call(
        block_identifier=block))


def assert_matches_pool(w3, devnet, positions, accounts, block):
    for acct in accounts:
        want = pool_health(w3, devnet, acct, block)
        p = positions.get(acct.lower())
        if want[1] == 0 and p is None:  # nothing borrowed and nothing supplied
            continue
        assert p is not None, acct
        assert p.price_ok, (acct, block, p.price_issue)
        assert (p.health_wad, p.extra["total_collateral_base"], p.extra["total_debt_base"]) == \
            (want[5], want[0], want[1]), (acct, block)


@pytest.mark.usefixtures("snapshot")
@pytest.mark.parametrize("chunk_calls", [1, 2_000])
def test_chunks_answered_from_different_states_give_the_pools_health(w3, devnet, anvil, chunk_calls):
    """Before the fix, prices and indexes came from one chunk (one eth_call) and balances plus the
    getUserAccountData check from others: a node answering them from two states made the computed
    health differ from the pool's and every position of the read unusable."""
    accounts = accounts_of(devnet)
    ad = adapter(devnet, chunk_calls=chunk_calls)  # 1: one chunk per account
    honest = Multicall(ChainClient("devnet", [anvil.url], devnet["chain_id"]), devnet["multicall3"])
    skewed = SkewedMulticall(ChainClient("devnet", [anvil.url], devnet["chain_id"]), devnet["multicall3"])
    try:
        read(ad, honest, accounts, w3.eth.block_number)  # first tick: layouts known, chunks cached
        block = w3.eth.block_number
        set_price(w3, devnet, "ETH", 1_870.25)  # block + 1: another state
        set_price(w3, devnet, "BTC", 31_400)
        assert pool_health(w3, devnet, accounts[0], block)[5] != pool_health(w3, devnet, accounts[0], block + 1)[5]
        pos = read(ad, skewed, accounts, block)
        assert set(pos) == {a.lower() for a in accounts}
        assert all(p.price_ok for p in pos.values()), [p.price_issue for p in pos.values()]
        if chunk_calls == 1:
            # several chunks disagreed: read again, and what was read again is block's state
            assert skewed.rounds == 2
            assert_matches_pool(w3, devnet, pos, accounts, block)
        else:
            # one chunk, one state (the one the node answered from): self-consistent
            assert skewed.rounds == 1
            assert_matches_pool(w3, devnet, pos, accounts, block + 1)
    finally:
        honest.close()
        skewed.close()


@pytest.mark.usefixtures("snapshot")
def test_reading_the_head_while_blocks_are_mined(w3, devnet, mc):
    """The soak's situation: the keeper reads the head while prices are being updated (each
    update mined at once). No read may report a health the pool disagrees with."""
    accounts = accounts_of(devnet)
    ad = adapter(devnet)
    read(ad, mc, accounts, w3.eth.block_number)
    stop = threading.Event()
    issues: list[str] = []
    reads = [0]

    def reader():
        while not stop.is_set():
            block = mc.client.block_number()
            for p in read(ad, mc, accounts, block).values():
                if not p.price_ok:
                    issues.append(f"{block}: {p.price_issue}")
            reads[0] += 1

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(80):
            set_price(w3, devnet, "ETH" if i % 2 else "BTC", (2_000 + 7 * i) if i % 2 else (30_000 - 41 * i))
    finally:
        stop.set()
        t.join(timeout=60)
    assert reads[0] > 10
    assert not issues, issues[:3]


# --- one adapter across blocks while alice's vault position changes layout ------------------------

OPS = st.one_of(
    st.tuples(st.just("price"), st.sampled_from(["ETH", "BTC"]), st.floats(0.85, 1.15)),
    st.tuples(st.just("supply"), st.sampled_from(["WETH", "WBTC", "USDC"]), st.floats(0.0001, 0.5)),
    st.tuples(st.just("withdraw"), st.sampled_from(["WETH", "WBTC", "USDC"]), st.sampled_from([0.1, 0.5, 1.0])),
    st.tuples(st.just("repay"), st.just("USDC"), st.sampled_from([0.05, 0.5, 1.0])),
    st.tuples(st.just("borrow"), st.just("USDC"), st.floats(0.01, 0.2)),
    st.tuples(st.just("time"), st.just(""), st.floats(0.01, 30)),
)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=(Phase.explicit, Phase.reuse, Phase.generate))  # no shrinking: each example is chain work
@given(ops=st.lists(OPS, min_size=4, max_size=14))
def test_vault_layout_changes_read_by_one_adapter_match_the_pool(w3, devnet, mc, ops):
    snap = evm_snapshot(w3)
    try:
        accounts = accounts_of(devnet)
        vault_addr = next(p["account"] for p in devnet["positions"] if p["id"] == "alice-aave")
        vault = w3.eth.contract(address=vault_addr, abi=C.ours("KeeperVault").abi)
        admin, alice = devnet["roles"]["admin"], devnet["roles"]["alice"]
        d = Deployer(w3, admin)
        p_ = pool(w3, devnet)
        toks = {s: token(w3, devnet, s) for s in UNITS}
        for s, t in toks.items():
            d.send(t.functions.mint(admin, 10**9 * UNITS[s]))
            d.send(t.functions.approve(p_.address, MAX))
        prices = {"ETH": 2_000.0, "BTC": 30_000.0}
        ad = adapter(devnet)  # one instance for the whole sequence, as the daemon keeps one
        block = w3.eth.block_number
        assert_matches_pool(w3, devnet, read(ad, mc, accounts, block), accounts, block)
        for kind, what, x in ops:
            a_tok = devnet["aave_v3"]["a_tokens"].get(what)
            if kind == "price":
                prices[what] *= x
                set_price(w3, devnet, what, prices[what])
            elif kind == "supply":  # what a keeper topUp does: supply on behalf of the vault
                d.send(p_.functions.supply(toks[what].address, max(1, int(x * 10 * UNITS[what])), vault_addr, 0))
            elif kind == "withdraw":  # withdrawExcess (or a full withdrawal), from the vault
                have = w3.eth.contract(address=a_tok, abi=C.ours("TestERC20").abi).functions.balanceOf(
                    vault_addr).call()
                if have == 0:
                    continue
                amount = MAX if x == 1.0 else int(have * x)
                data = p_.encode_abi("withdraw", [toks[what].address, amount, vault_addr])
                try:
                    d.send(vault.functions.execute(p_.address, 0, data), sender=alice)
                except Exception:  # the pool refuses (health would fall below 1): nothing changed
                    continue
            elif kind == "repay":  # the keeper's repay, on behalf of the vault
                debt_tok = devnet["aave_v3"]["variable_debt_tokens"]["USDC"]
                owed = w3.eth.contract(address=debt_tok, abi=C.ours("TestERC20").abi).functions.balanceOf(
                    vault_addr).call()
                if owed == 0:
                    continue
                # on behalf, a full repay names an amount (Aave refuses max uint: error 40); the pool takes
                # what is owed
                amount = owed + owed // 100 + UNITS["USDC"] if x == 1.0 else max(1, int(owed * x))
                d.send(p_.functions.repay(toks["USDC"].address, amount, 2, vault_addr))
            elif kind == "borrow":
                data = p_.encode_abi("borrow", [toks["USDC"].address, int(x * 10_000 * UNITS["USDC"]), 2, 0,
                                                vault_addr])
                try:
                    d.send(vault.functions.execute(p_.address, 0, data), sender=alice)
                except Exception:
                    continue
            else:
                w3.provider.make_request("evm_increaseTime", [int(x * 86_400)])
                w3.provider.make_request("evm_mine", [])
            block = w3.eth.block_number
            pos = read(ad, mc, accounts, block)
            assert_matches_pool(w3, devnet, pos, accounts, block)
    finally:
        evm_revert(w3, snap)
