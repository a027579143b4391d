"""The vaults' books read through keeper.app.book_cache on the devnet: at every block the cached
results equal one plain multicall of every call, while only the vaults the logs name (a token sent in
by anyone, an owner's setting), the vaults due for their periodic read, and calls not held yet are
read again; a reorg, a gap, or a block the snapshot saw differently makes it read everything."""

from __future__ import annotations

import pytest

from keeper.app.book_cache import BookCache
from keeper.app.books import asset_params, book_layout, read_book_calls
from keeper.chain import contracts as C
from keeper.daemon.keeper import Keeper
from keeper.devnet.deployer import Deployer
from tests.daemon.helpers import VOLS, devnet_config
from tests.devnet.helpers import E18, token

pytestmark = pytest.mark.usefixtures("snapshot")


@pytest.fixture
def keeper(tmp_path, anvil, devnet, monkeypatch):
    k = Keeper(devnet_config(tmp_path, anvil.url, devnet, monkeypatch), vols=VOLS)
    yield k
    k.shutdown()


def _read(k: Keeper, cache: BookCache, w3):
    """The cache's read at the head, checked against a plain read of the same layout."""
    block = w3.eth.block_number
    snap = k.reader.read(block)
    layout = book_layout(snap, k.ccfg, asset_params(k.reader, snap))
    got = cache.read(layout, block)
    assert cache.confirm(block, snap.block_hash)
    assert got == read_book_calls(k.reader, layout, block), f"cached books differ from the chain at block {block}"
    return layout, cache.stats


def _calls_of(layout, vault) -> int:
    return sum(1 for v in layout.owners if v == vault)


def test_only_the_vaults_the_logs_name_are_read_again(keeper, w3, devnet):
    k = keeper
    cache = BookCache(k.reader.client, k.reader.mc, refresh_blocks=10_000)
    alice, bob = (devnet["keeper_vaults"][w]["address"] for w in ("alice", "bob"))
    layout, stats = _read(k, cache, w3)
    assert stats.full == "first read" and stats.read == stats.calls == len(layout.calls) > 0
    assert {a.lower() for a in (alice, bob)} <= set(layout.vaults)

    w3.provider.make_request("evm_mine", [])  # nothing happens to any vault
    _, stats = _read(k, cache, w3)
    assert stats.full is None and stats.changed == 0 and stats.read == 0

    # USDC sent to alice's vault by someone else: no event of the vault, only the token's Transfer
    lp = devnet["roles"]["lp"]
    Deployer(w3, lp).send(token(w3, devnet, "USDC").functions.transfer(alice, 1_234 * 10**6))
    layout, stats = _read(k, cache, w3)
    assert stats.changed == 1 and stats.read == _calls_of(layout, alice.lower())

    # bob's owner lowers a release cap: an event of the vault only
    vault = Deployer(w3, devnet["roles"]["bob"]).at(bob, C.ours("KeeperVault"))
    Deployer(w3, devnet["roles"]["bob"]).send(vault.functions.setReleaseCap(devnet["tokens"]["WETH"]["address"],
                                                                              E18))
    layout, stats = _read(k, cache, w3)
    assert stats.changed == 1 and stats.read == _calls_of(layout, bob.lower())

    # several blocks at once, a change in the middle one: still seen
    w3.provider.make_request("evm_mine", [])
    Deployer(w3, lp).send(token(w3, devnet, "WETH").functions.transfer(bob, E18))
    w3.provider.make_request("evm_mine", [])
    layout, stats = _read(k, cache, w3)
    assert stats.full is None and stats.changed == 1 and stats.read == _calls_of(layout, bob.lower())

    # the same block again: nothing read
    block = w3.eth.block_number
    snap = k.reader.read(block)
    assert cache.read(book_layout(snap, k.ccfg, asset_params(k.reader, snap)), block) and cache.stats.read == 0


def test_a_reorg_a_gap_or_another_block_reads_everything(keeper, w3, devnet):
    k = keeper
    cache = BookCache(k.reader.client, k.reader.mc, refresh_blocks=10_000, max_gap=3)
    alice = devnet["keeper_vaults"]["alice"]["address"]
    lp = Deployer(w3, devnet["roles"]["lp"])
    usdc = token(w3, devnet, "USDC")
    _read(k, cache, w3)

    # The block last read is replaced by another of the same number: its logs were never seen.
    fork = w3.provider.make_request("evm_snapshot", [])["result"]
    w3.provider.make_request("evm_mine", [])
    _read(k, cache, w3)  # the cache now holds this block
    w3.provider.make_request("evm_revert", [fork])
    lp.send(usdc.functions.transfer(alice, 777 * 10**6))  # the same number, another block
    w3.provider.make_request("evm_mine", [])
    layout, stats = _read(k, cache, w3)
    assert stats.full is not None and "reorg" in stats.full and stats.read == len(layout.calls)

    # More blocks than max_gap since the last read
    w3.provider.make_request("anvil_mine", [hex(5)])
    layout, stats = _read(k, cache, w3)
    assert stats.full is not None and stats.read == len(layout.calls)

    # The snapshot saw another block than the logs did: everything is dropped and read again.
    w3.provider.make_request("evm_mine", [])
    block = w3.eth.block_number
    snap = k.reader.read(block)
    layout = book_layout(snap, k.ccfg, asset_params(k.reader, snap))
    cache.read(layout, block)
    assert cache.stats.full is None
    assert not cache.confirm(block, "0x" + "ab" * 32)
    assert cache.read(layout, block) == read_book_calls(k.reader, layout, block)
    assert cache.stats.full == "first read"


def test_every_vault_is_read_in_full_once_per_refresh_period(keeper, w3, devnet):
    """What no log shows (a release window's records ageing out, a token that changes balances
    without a Transfer) is caught up by a periodic read, spread over the vaults."""
    k = keeper
    period = 4
    cache = BookCache(k.reader.client, k.reader.mc, refresh_blocks=period)
    layout, _ = _read(k, cache, w3)
    refreshed = []
    for _ in range(period):
        w3.provider.make_request("evm_mine", [])
        _, stats = _read(k, cache, w3)
        assert stats.changed == 0
        refreshed.append(stats.refreshed)
    assert sum(refreshed) == len(layout.vaults), refreshed
    # a vault forgotten (its action refused) is read in full at the next block
    w3.provider.make_request("evm_mine", [])
    cache.forget(layout.vaults[0])
    _, stats = _read(k, cache, w3)
    assert stats.read >= _calls_of(layout, layout.vaults[0])


def test_the_daemon_reads_the_books_its_own_actions_changed(keeper, w3, devnet):
    """A crash, the daemon's top-ups at one block, then its next tick: the vaults it acted for are
    read again (their tokens moved), and every book equals a plain read."""
    from keeper.app.books import read_books
    from tests.devnet.helpers import set_price

    k = keeper
    k.startup()
    k.tick(w3.eth.block_number)  # the books' first read; the next tick's layout
    set_price(w3, devnet, "ETH", 1_560)
    acted = k.tick(w3.eth.block_number)
    assert acted >= 2, "the crash must make the daemon act for several vaults"
    w3.provider.make_request("evm_mine", [])
    block = w3.eth.block_number
    t = k._read(block)
    k.executor.finish()
    stats = k.books.cache.stats
    assert stats.full is None and stats.changed >= 2 and 0 < stats.read < stats.calls

    def view(books):
        return sorted((b.vault, sorted(p.key for p in b.positions), sorted(b.reserve.balances.items()),
                       sorted(b.floors.items()), sorted(b.release_left.items())) for b in books)

    assert view(t.books) == view(read_books(k.reader, t.snap, k.ccfg, t.assets))
