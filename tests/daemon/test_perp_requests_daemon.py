"""The daemon and GMX v1's PositionRouter requests on the gated devnet, with GMX's position keeper
*not* running (a stuck request): the keeper asks once, never again while the request is pending,
alerts it once late, executes it from the vault as soon as GMX lets the account do so, or cancels
it once expired and asks again. Ticks are driven by hand (automine), so each step is one block."""

from __future__ import annotations

import pytest

from keeper.daemon.keeper import Keeper
from keeper.protocols.gmx_requests import RequestReader
from tests.daemon.helpers import VOLS, devnet_config
from tests.devnet.helpers import set_price, token
from tests.faults.conftest import keeper_actions

pytestmark = pytest.mark.usefixtures("snapshot")
TIMEOUT_BLOCKS = 3


@pytest.fixture
def keeper(tmp_path, anvil, devnet, monkeypatch):
    cfg = devnet_config(tmp_path, anvil.url, devnet, monkeypatch)
    chain = cfg.chains["devnet"]
    perp = chain.perp.model_copy(update={"request_timeout_blocks": TIMEOUT_BLOCKS})
    cfg = cfg.model_copy(update={"chains": {"devnet": chain.model_copy(update={"perp": perp})}})
    k = Keeper(cfg, vols=VOLS)
    k.startup()
    alerts = []
    k.alerter.notify = lambda kind, severity, title, text, **fields: alerts.append((kind, severity, text))
    k.test_alerts = alerts
    yield k
    k.shutdown()


def mine(w3, n: int = 1, seconds: int = 0) -> int:
    if seconds:
        w3.provider.make_request("evm_increaseTime", [seconds])
    for _ in range(n):
        w3.provider.make_request("evm_mine", [])
    return w3.eth.block_number


def pending(k: Keeper, devnet: dict, block: int):
    alice = devnet["keeper_vaults"]["alice"]["address"]
    return RequestReader(k.reader.mc, devnet["perp"]["position_router"]).read([alice], block)[1]


def requests_made(w3, devnet, start):
    return [a for a in keeper_actions(w3, devnet, start) if "request" in a]


def settled(w3, devnet, start) -> list[bool]:
    from keeper.chain import contracts as C

    vault = w3.eth.contract(address=devnet["keeper_vaults"]["alice"]["address"], abi=C.ours("KeeperVault").abi)
    return [e.args.executed for e in vault.events.PerpRequestSettled().get_logs(from_block=start)]


def test_a_stuck_request_is_asked_once_alerted_then_executed_by_the_vault(keeper, w3, devnet):
    start = w3.eth.block_number
    set_price(w3, devnet, "ETH", 1_560)  # alice's 5x ETH long needs margin
    keeper.tick(w3.eth.block_number)
    (req,) = requests_made(w3, devnet, start)
    (p,) = pending(keeper, devnet, w3.eth.block_number)
    assert p.key == "0x" + req["request"] and p.size_delta == 0 and p.is_long
    # Pending: never asked again, nothing alerted while within the keeper's patience.
    while w3.eth.block_number < p.block + TIMEOUT_BLOCKS:
        keeper.tick(mine(w3))
    assert len(requests_made(w3, devnet, start)) == 1
    assert not [a for a in keeper.test_alerts if a[0] == "perp_request_stuck"]
    # Late, but GMX lets the account act only after minTimeDelayPublic (180 s): alerted, once.
    for _ in range(2):
        keeper.tick(mine(w3))
    stuck = [a for a in keeper.test_alerts if a[0] == "perp_request_stuck"]
    assert len(stuck) == 1 and stuck[0][1] == "critical" and "may execute it itself in" in stuck[0][2]
    assert settled(w3, devnet, start) == []
    # Once GMX allows it, the vault executes its own request: the margin lands, the fee comes back.
    health_before = next(q for q in keeper.read_all().positions if q.key.endswith(p.market)
                         and q.account.lower() == p.account.lower()).health
    keeper.tick(mine(w3, seconds=181))
    assert settled(w3, devnet, start) == [True]
    assert pending(keeper, devnet, w3.eth.block_number) == []
    after = next(q for q in keeper.read_all().positions if q.key.endswith(p.market)
                 and q.account.lower() == p.account.lower())
    assert after.health > health_before
    assert [a[0] for a in keeper.test_alerts].count("perp_request_stuck") == 2  # stuck, then "executed from the vault"


def test_an_expired_request_is_cancelled_and_asked_again(keeper, w3, devnet):
    start = w3.eth.block_number
    set_price(w3, devnet, "ETH", 1_560)
    keeper.tick(w3.eth.block_number)
    assert len(requests_made(w3, devnet, start)) == 1
    alice = devnet["keeper_vaults"]["alice"]["address"]
    held = token(w3, devnet, "WETH").functions.balanceOf(alice).call()
    keeper.tick(mine(w3, n=TIMEOUT_BLOCKS + 2, seconds=1_801))  # past GMX's maxTimeDelay (30 min)
    assert settled(w3, devnet, start) == [False]  # cancelled from the vault
    assert token(w3, devnet, "WETH").functions.balanceOf(alice).call() > held  # the collateral came back
    keeper.tick(mine(w3))
    assert len(requests_made(w3, devnet, start)) == 2  # the keeper asks again


def test_a_stuck_size_reduction_is_asked_once_then_executed_by_the_vault(tmp_path, anvil, w3, devnet, monkeypatch):
    """A reserve-less vault's perp deleveraged by size (a decrease request): the same rules as a margin
    request, through the decrease calls (``executePerpDecrease``)."""
    from keeper.chain import contracts as C
    from tests.app.test_perp_reduce_act import _config, _vault_with_a_perp

    v, g = _vault_with_a_perp(w3, devnet, caps=True)
    cfg = devnet_config(tmp_path, anvil.url, devnet, monkeypatch, chain=_config(v))
    chain = cfg.chains["devnet"]
    perp = chain.perp.model_copy(update={"request_timeout_blocks": TIMEOUT_BLOCKS})
    cfg = cfg.model_copy(update={"chains": {"devnet": chain.model_copy(update={"perp": perp})}})
    k = Keeper(cfg, vols=VOLS)
    k.startup()
    alerts: list = []
    k.alerter.notify = lambda kind, severity, title, text, **fields: alerts.append((kind, severity, text))
    vault = w3.eth.contract(address=v.address, abi=C.ours("KeeperVault").abi)
    try:
        start = w3.eth.block_number
        set_price(w3, devnet, "ETH", 1_880)
        k.tick(w3.eth.block_number)
        (asked,) = vault.events.PerpDecreaseRequested().get_logs(from_block=start)
        size0 = g.position(v.address, "ETH-long")[0]
        while w3.eth.block_number < asked.blockNumber + TIMEOUT_BLOCKS + 2:
            k.tick(mine(w3))
        assert len(vault.events.PerpDecreaseRequested().get_logs(from_block=start)) == 1  # never asked again
        stuck = [a for a in alerts if a[0] == "perp_request_stuck"]
        assert len(stuck) == 1 and "may execute it itself in" in stuck[0][2]
        k.tick(mine(w3, seconds=181))
        assert [e.args.executed for e in vault.events.PerpDecreaseSettled().get_logs(from_block=start)] == [True]
        assert g.position(v.address, "ETH-long")[0] == size0 - asked.args.sizeDelta
    finally:
        k.shutdown()
