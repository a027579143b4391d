"""The daemon on a fork: a second anvil forks the session devnet (``--fork-url``), a config points
at the fork with the same deployment addresses, the daemon runs there with 1 s blocks (new heads
by WebSocket from the fork), prices crash on the fork, and the keeper protects the vault positions
on the fork — while the original chain is untouched."""

from __future__ import annotations

import json

import pytest
from web3 import Web3

from keeper.config import load_config
from keeper.daemon.keeper import Keeper
from keeper.devnet.anvil import Anvil
from keeper.devnet.position_keeper import start_thread
from tests.daemon.helpers import KEEPER_KEY, running, wait_for
from tests.devnet.helpers import set_price
from tests.protocols.devnet_reader import devnet_reader

pytestmark = [pytest.mark.usefixtures("snapshot"), pytest.mark.timeout(300)]


def _positions(url: str, devnet: dict) -> dict:
    r = devnet_reader(url, devnet)
    try:
        return {p.key: p for p in r.read().positions}
    finally:
        r.mc.close()


def test_keeper_run_on_a_fork_protects_the_forks_positions(tmp_path, anvil, w3, devnet, monkeypatch):
    origin_block = w3.eth.block_number
    origin = _positions(anvil.url, devnet)
    keeper_nonce = w3.eth.get_transaction_count(devnet["roles"]["keeper"])
    with Anvil(fork_url=anvil.url, block_time=1) as fork:
        fw3 = Web3(Web3.HTTPProvider(fork.url, request_kwargs={"timeout": 60}))
        assert fw3.eth.chain_id == w3.eth.chain_id  # same chain id, same addresses: only the URL differs
        (tmp_path / "fork.json").write_text(json.dumps({**devnet, "rpc_url": fork.url, "fork_url": anvil.url}))
        (tmp_path / "config.toml").write_text(
            f'[store]\nurl = "sqlite:///{tmp_path / "k.db"}"\n[keeper]\nkey_env = "KEEPER_TEST_KEY"\n'
            '[daemon]\npoll_interval = 0.2\nwatchdog_seconds = 30\n'
            f'[chains.fork]\ndeployment = "{tmp_path / "fork.json"}"\n')
        monkeypatch.setenv("KEEPER_TEST_KEY", KEEPER_KEY)
        cfg = load_config(tmp_path / "config.toml", env={"KEEPER_TEST_KEY": KEEPER_KEY})
        assert cfg.chains["fork"].rpc_urls == [fork.url]
        k = Keeper(cfg, vols={"WETH": 0.8, "WBTC": 0.7})
        # GMX v1 is gated on the devnet: its position keeper executes the vault's margin requests.
        pk, pk_stop = start_thread(fw3, devnet["perp"])
        with running(k, fw3, block_time=None):  # the fork mines a block a second by itself
            wait_for(lambda: k.ticks >= 1, 20, "a first tick on the fork")
            assert k.heads.source == "ws"
            for eth, btc in ((1_900, 29_000), (1_780, 27_500), (1_650, 26_000), (1_560, 25_000), (1_400, 21_000)):
                set_price(fw3, devnet, "ETH", eth)
                set_price(fw3, devnet, "BTC", btc)
                moved = fw3.eth.block_number
                # ticked two blocks past the move: its transactions, if any, have landed
                wait_for(lambda moved=moved: (k.last_block or 0) >= moved + 2, 20, f"ticks after ETH {eth}")
            carol = devnet["roles"]["carol"].lower()
            kept = {p["account"].lower() for p in devnet["positions"] if p["holder"] in ("vault", "owner")}
            wait_for(lambda: all(p.health >= 1.0 for p in _positions(fork.url, devnet).values()
                                 if p.account.lower() in kept), 30, "every vault position healthy on the fork")
        pk_stop.set()
        pk.join(timeout=10)
        assert k.halted is None and k.actions_sent >= 3
        after = _positions(fork.url, devnet)
        assert any(p.liquidatable for p in after.values() if p.account.lower() == carol)  # the control went under
        assert fw3.eth.get_transaction_count(devnet["roles"]["keeper"]) >= keeper_nonce + 3
    # The original chain never saw any of it.
    assert w3.eth.block_number == origin_block
    assert w3.eth.get_transaction_count(devnet["roles"]["keeper"]) == keeper_nonce
    now = _positions(anvil.url, devnet)
    assert {k: p.health_wad for k, p in now.items()} == {k: p.health_wad for k, p in origin.items()}
