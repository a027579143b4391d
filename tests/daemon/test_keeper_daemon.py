"""The daemon on the devnet: --dry-run sends nothing; ticking every block through a scripted crash
protects every vault position (the unprotected twin is liquidatable); a stalled chain trips the
watchdog, whether heads come by subscription or by polling."""

import http.server
import json
import threading
import time
import urllib.request
from typing import ClassVar

import pytest

from keeper.config import AlertsConfig, DaemonConfig, TelemetryConfig
from keeper.daemon.keeper import Keeper
from keeper.errors import Halt
from tests.daemon.helpers import devnet_config
from tests.devnet.helpers import set_price

pytestmark = pytest.mark.usefixtures("snapshot")


@pytest.fixture
def cfg(tmp_path, anvil, devnet, monkeypatch):
    return devnet_config(tmp_path, anvil.url, devnet, monkeypatch)


VOLS = {"WETH": 0.8, "WBTC": 0.7}


def test_dry_run_plans_but_sends_nothing(cfg, w3, devnet):
    set_price(w3, devnet, "ETH", 1_560)
    k = Keeper(cfg, dry_run=True, vols=VOLS)
    k.startup()
    try:
        nonce = w3.eth.get_transaction_count(devnet["roles"]["keeper"])
        assert k.tick(w3.eth.block_number) > 0  # it would act ...
        assert w3.eth.get_transaction_count(devnet["roles"]["keeper"]) == nonce  # ... but sends nothing
        assert k.phases["read_s"] > 0 and k.phases["plan_act_s"] > 0  # where the tick's time went
        # the read's split: the positions, then the vaults' books, both within the read
        assert k.phases["read_positions_s"] > 0 and k.phases["read_books_s"] > 0
        assert k.phases["read_positions_s"] + k.phases["read_books_s"] <= k.phases["read_s"]
        assert k.phases["read_cpu_s"] > 0
        assert "sign_s" not in k.phases  # the null executor signs nothing
    finally:
        k.shutdown()


class _Receiver(http.server.BaseHTTPRequestHandler):
    posts: ClassVar[list] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Receiver.posts.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_ticking_through_a_crash_protects_every_vault_position(cfg, w3, devnet, monkeypatch, position_keeper):
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    monkeypatch.setenv("KEEPER_TEST_WEBHOOK", f"http://127.0.0.1:{receiver.server_address[1]}/hook")
    cfg = cfg.model_copy(update={"telemetry": TelemetryConfig(metrics_port=0),
                                 "alerts": AlertsConfig(webhook_env="KEEPER_TEST_WEBHOOK", min_interval_s=0)})
    k = Keeper(cfg, vols=VOLS)
    t = threading.Thread(target=lambda: k.run(install_signals=False), daemon=True)
    w3.provider.make_request("evm_setIntervalMining", [1])
    try:
        t.start()
        time.sleep(2)
        for eth, btc in ((1_900, 29_000), (1_780, 27_500), (1_650, 26_000), (1_560, 25_000), (1_400, 21_000)):
            set_price(w3, devnet, "ETH", eth)
            set_price(w3, devnet, "BTC", btc)
            time.sleep(2.5)  # a couple of blocks: the keeper ticks and its transactions land
        scrape = urllib.request.urlopen(f"http://127.0.0.1:{k.metrics_port}/metrics", timeout=5).read().decode()
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{k.metrics_port}/healthz", timeout=5).read())
        k.stop.set()
        t.join(timeout=60)
        assert not t.is_alive() and k.halted is None
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    from tests.protocols.devnet_reader import devnet_reader

    r = devnet_reader(w3.provider.endpoint_uri, devnet)
    positions = {(p.protocol.value, p.account.lower(), p.market): p for p in r.read().positions}
    r.mc.close()
    kept = {p["account"].lower() for p in devnet["positions"] if p["holder"] in ("vault", "owner")}
    protected = [p for p in positions.values() if p.account.lower() in kept]  # not carol's, nor erin's or gina's
    assert all(p.health >= 1.0 for p in protected), [(p.key, p.health) for p in protected]
    carol = [p for p in positions.values() if p.account.lower() == devnet["roles"]["carol"].lower()]
    # the unprotected twins would be liquidated (but the BTC short, which gains when BTC falls)
    assert carol and all(p.liquidatable for p in carol if not (p.perp is not None and not p.perp.is_long))
    assert k.actions_sent >= 3
    assert 'keeper_actions_sent_total{chain="devnet"' in scrape and "keeper_positions_watched" in scrape
    assert "keeper_tick_seconds_bucket" in scrape and "keeper_position_pliq" in scrape
    assert health["status"] == "ok"
    kinds = [p.get("kind") for p in _Receiver.posts]
    assert "action" in kinds  # the webhook heard about the keeper's actions
    receiver.shutdown()


@pytest.mark.parametrize("heads", ["auto", "poll"])
def test_stalled_chain_trips_the_watchdog(cfg, heads):
    cfg = cfg.model_copy(update={"daemon": DaemonConfig(poll_interval=0.2, watchdog_seconds=1.5, heads=heads)})
    k = Keeper(cfg, dry_run=True, vols=VOLS)
    started = time.monotonic()
    with pytest.raises(Halt, match="watchdog: no new block"):
        k.run(install_signals=False)  # automine and no transactions: no block ever arrives
    assert time.monotonic() - started < 15
    source_ws = k.metrics.registry.get_sample_value("keeper_head_source_ws", {"chain": "devnet"})
    assert source_ws == (1.0 if heads == "auto" else 0.0)  # subscribed, yet no head came


def test_history_rows_once_per_interval_and_at_every_block_acted_at(cfg, w3, devnet):
    """``store.history_interval_s``: every position's row at the first tick, then only the rounds
    and the checkpoint until the interval has passed in chain time, except at a block the keeper
    acted at; the stress job reads the last tick's positions from memory."""
    from keeper.daemon.jobs import latest_positions

    cfg = cfg.model_copy(update={"store": cfg.store.model_copy(update={"history_interval_s": 3_600})})
    k = Keeper(cfg, vols=VOLS)
    k.startup()
    try:
        first = w3.eth.block_number
        k.tick(first)
        w3.provider.make_request("evm_mine", [])
        calm = w3.eth.block_number
        k.tick(calm)
        assert latest_positions(k)[0] == calm
        set_price(w3, devnet, "ETH", 1_560)
        crash = w3.eth.block_number
        assert k.tick(crash) > 0  # it acts here
        assert k.recorder.flush(30)
        key = next(p.key for p in k.last_snapshot.positions if p.account.lower() in
                   {v["address"].lower() for v in devnet["keeper_vaults"].values()})
        assert [r.block for r in k.store.snapshots(key)] == [first, crash]
        # the next calm tick writes no rows but moves the checkpoint
        k.tick(w3.eth.block_number)
        assert k.recorder.flush(30)
        assert [r.block for r in k.store.snapshots(key)] == [first, crash]
        assert k.store.checkpoint("devnet")[0] == w3.eth.block_number
    finally:
        k.shutdown()
