"""New heads by WebSocket subscription, polling as the fallback, on a real anvil (which serves
ws:// on its http:// port): the subscription delivers the mined blocks and drives the ticks; a
refused, silent or dropped WebSocket falls back to polling (warning, metric) and the daemon keeps
ticking, then the subscription comes back; ``heads = "poll"`` never opens a socket."""

from __future__ import annotations

import logging
import select
import socket

import pytest

from keeper.config import ChainConfig, ConfigError, load_config
from keeper.daemon.heads import HeadFeed, ws_url_for
from keeper.daemon.keeper import Keeper
from keeper.demo.faultlab import CuttableProxy
from keeper.devnet.anvil import free_port
from tests.daemon.helpers import VOLS, devnet_config, running, wait_for

pytestmark = [pytest.mark.usefixtures("snapshot"), pytest.mark.timeout(180)]


def _fallbacks(k: Keeper) -> float:
    return k.metrics.registry.get_sample_value("keeper_ws_fallbacks_total", {"chain": "devnet"}) or 0.0


def _source_ws(k: Keeper) -> float | None:
    return k.metrics.registry.get_sample_value("keeper_head_source_ws", {"chain": "devnet"})


def test_ws_url_rules():
    http = ChainConfig(rpc_urls=["https://node.example:8545/v1/KEY"])
    assert ws_url_for(http, "auto") == "wss://node.example:8545/v1/KEY"
    assert ws_url_for(ChainConfig(rpc_urls=["http://127.0.0.1:8545"]), "auto") == "ws://127.0.0.1:8545"
    assert ws_url_for(http, "poll") is None
    assert ws_url_for(http, "ws") is None  # "ws" never guesses (the config check demands ws_urls)
    explicit = ChainConfig(rpc_urls=["http://a:8545"], ws_urls=["ws://a:8546"])
    assert ws_url_for(explicit, "auto") == ws_url_for(explicit, "ws") == "ws://a:8546"


def test_config_validates_heads_keys(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[daemon]\nheads = "sometimes"\n')
    with pytest.raises(ConfigError, match=r"daemon.heads"):
        load_config(f, env={})
    f.write_text('[chains.main]\nrpc_urls = ["http://a:8545"]\nws_urls = ["http://a:8546"]\n')
    with pytest.raises(ConfigError, match=r"ws_urls.*ws\(s\)"):
        load_config(f, env={})
    f.write_text('[daemon]\nheads = "ws"\n[chains.main]\nrpc_urls = ["http://a:8545"]\n')
    with pytest.raises(ConfigError, match=r"heads = 'ws' needs chains.main.ws_urls"):
        load_config(f, env={})
    f.write_text('[daemon]\nheads = "ws"\n[chains.main]\nrpc_urls = ["http://a:8545"]\nws_urls = ["ws://a:8546"]\n')
    assert load_config(f, env={}).chains["main"].ws_urls == ["ws://a:8546"]


def test_ws_source_delivers_heads_of_mined_blocks(anvil, w3):
    seen: list[int] = []
    feed = HeadFeed(anvil.url.replace("http://", "ws://"), chain_id=w3.eth.chain_id, on_head=seen.append, retry_s=1)
    feed.start()
    try:
        wait_for(lambda: feed.source == "ws", 10, "the subscription")
        start = w3.eth.block_number
        for _ in range(3):
            w3.provider.make_request("evm_mine", [])
        wait_for(lambda: seen and seen[-1] >= start + 3, 10, "three mined heads")
        assert seen[-3:] == [start + 1, start + 2, start + 3]
        assert feed.newest() == start + 3 and feed.connects == 1
        for n in (start + 1, start + 3):  # the header comes with the head: the reader need not fetch it
            block = w3.eth.get_block(n)
            assert feed.header(n) == ("0x" + block["hash"].hex().removeprefix("0x"), block["timestamp"])
        assert feed.header(start + 4) is None
    finally:
        feed.stop()


def test_a_reorg_onto_a_shorter_chain_lowers_the_newest_head(anvil, w3, snapshot):
    """After a reorg to a lower height the blocks above are gone: the feed's newest head follows the
    node down (a tick must never ask for a block that no longer exists)."""
    seen: list[int] = []
    feed = HeadFeed(anvil.url.replace("http://", "ws://"), chain_id=w3.eth.chain_id, on_head=seen.append, retry_s=1)
    feed.start()
    try:
        wait_for(lambda: feed.source == "ws", 10, "the subscription")
        snap = w3.provider.make_request("evm_snapshot", [])["result"]
        start = w3.eth.block_number
        for _ in range(4):
            w3.provider.make_request("evm_mine", [])
        wait_for(lambda: feed.newest() == start + 4, 10, "four mined heads")
        w3.provider.make_request("evm_revert", [snap])
        w3.provider.make_request("evm_mine", [])  # the new chain: one block above the fork point
        wait_for(lambda: seen and seen[-1] == start + 1, 10, "the new, lower head")
        assert feed.newest() == start + 1 == w3.eth.block_number
    finally:
        feed.stop()


def test_ws_on_another_chain_is_refused(anvil, w3):
    feed = HeadFeed(anvil.url.replace("http://", "ws://"), chain_id=w3.eth.chain_id + 1, retry_s=60)
    feed.start()
    try:
        wait_for(lambda: feed.fallbacks == 1, 10, "the fallback")
        assert feed.source == "poll" and feed.newest() is None
    finally:
        feed.stop()


def test_daemon_ticks_on_each_subscribed_head(tmp_path, anvil, w3, devnet, monkeypatch):
    # Polling every 30 s could not tick three times in 15 s: the subscription drives the ticks.
    cfg = devnet_config(tmp_path, anvil.url, devnet, monkeypatch, poll_interval=30, watchdog_seconds=60)
    k = Keeper(cfg, dry_run=True, vols=VOLS)
    with running(k, w3):
        wait_for(lambda: k.ticks >= 3, 15, "three ticks")
        assert k.heads.source == "ws" and _source_ws(k) == 1.0 and _fallbacks(k) == 0
    assert k.halted is None


def test_refused_ws_falls_back_to_polling_and_the_daemon_ticks(tmp_path, anvil, w3, devnet, monkeypatch, caplog):
    cfg = devnet_config(tmp_path, anvil.url, devnet, monkeypatch, heads="ws",
                        chain={"ws_urls": [f"ws://127.0.0.1:{free_port()}"]})  # nothing listens there
    k = Keeper(cfg, dry_run=True, vols=VOLS)
    with caplog.at_level(logging.WARNING, logger="keeper.daemon.heads"), running(k, w3):
        start = wait_for(lambda: k.ticks, 15, "a first tick")
        wait_for(lambda: k.ticks >= start + 2, 15, "ticks by polling")
        assert k.heads.source == "poll" and _fallbacks(k) == 1 and _source_ws(k) == 0.0
    warnings = [r for r in caplog.records if getattr(r, "event", None) == "heads_fallback"]
    assert len(warnings) == 1 and "Refused" in warnings[0].why
    assert k.halted is None


def test_dropped_ws_falls_back_then_comes_back(tmp_path, anvil, w3, devnet, monkeypatch):
    proxy = CuttableProxy(anvil.port)
    cfg = devnet_config(tmp_path, anvil.url, devnet, monkeypatch, ws_retry_seconds=1,
                        chain={"ws_urls": [f"ws://127.0.0.1:{proxy.port}"]})
    k = Keeper(cfg, dry_run=True, vols=VOLS)
    try:
        with running(k, w3):
            wait_for(lambda: k.heads is not None and k.heads.source == "ws" and k.ticks >= 2, 15,
                     "ticks from the subscription")
            proxy.cut()  # the network drops the socket; reconnects are refused
            wait_for(lambda: _fallbacks(k) == 1, 10, "the fallback")
            before = k.ticks
            wait_for(lambda: k.ticks >= before + 2, 15, "ticks by polling while the WebSocket is down")
            assert k.heads.source == "poll"
            proxy.restore()
            wait_for(lambda: k.heads.source == "ws", 15, "the subscription back")
            before = k.ticks
            wait_for(lambda: k.ticks >= before + 2, 15, "ticks from the restored subscription")
            assert _source_ws(k) == 1.0 and k.heads.connects >= 3
    finally:
        proxy.close()
    assert k.halted is None


@pytest.mark.parametrize("heads", ["poll", "ws"])
def test_poll_never_opens_a_socket(tmp_path, anvil, w3, devnet, monkeypatch, heads):
    # A listener that accepts and never answers: "ws" connects to it (and, as the handshake times
    # out, falls back); "poll" must never connect.
    listener = socket.create_server(("127.0.0.1", 0))
    cfg = devnet_config(tmp_path, anvil.url, devnet, monkeypatch, heads=heads,
                        chain={"ws_urls": [f"ws://127.0.0.1:{listener.getsockname()[1]}"], "timeout": 1})
    k = Keeper(cfg, dry_run=True, vols=VOLS)
    try:
        with running(k, w3):
            start = wait_for(lambda: k.ticks, 15, "a first tick")
            wait_for(lambda: k.ticks >= start + 2, 15, "more ticks")
            if heads == "ws":
                wait_for(lambda: _fallbacks(k) == 1, 10, "the fallback after the handshake timeout")
            knocked = bool(select.select([listener], [], [], 0)[0])
    finally:
        listener.close()
    assert knocked == (heads == "ws")
    assert (k.heads.connects == 0) == (heads == "poll")
