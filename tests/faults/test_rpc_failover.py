"""The primary RPC dies while the daemon runs: the daemon fails over to the secondary within one
block (it ticks the very next block, no tick fails), alerts ``rpc_failover``, and still protects every
position that needs it (a price crash right after the failover)."""

from tests.devnet.helpers import set_price
from tests.faults.conftest import RpcProxy, head, idle, keeper_actions, per_position, protective_needed, wait_for


def test_primary_rpc_dies_mid_run(env, w3, devnet, anvil, miner, receiver):
    proxy = RpcProxy(anvil.url)
    env.config(chain_extra=f'rpc_urls = ["{proxy.url}", "{anvil.url}"]')
    miner.start(1.0)
    daemon = env.daemon()
    try:
        wait_for(lambda: idle(daemon), 60, "the daemon to settle through the primary")
        killed_at = head(w3)
        proxy.kill()
        wait_for(lambda: daemon.ticked_after(killed_at), 10, "a tick after the primary died")
        start = head(w3)
        set_price(w3, devnet, "ETH", 1_560)
        wait_for(lambda: keeper_actions(w3, devnet, start), 30, "a protective action")
        wait_for(lambda: not protective_needed(env), 60, "every endangered position to be protected")
        wait_for(lambda: "rpc_failover" in receiver.kinds(), 10, "the rpc_failover alert")
    finally:
        code = daemon.stop()
    assert code == 0, daemon.text()[-3000:]
    ticks = sorted(e["block"] for e in daemon.seen("tick"))
    assert min(b for b in ticks if b > killed_at) == killed_at + 1  # failed over within the block
    assert not daemon.seen("tick_failed")
    failover = daemon.seen("rpc_failover")
    assert len(failover) == 1 and failover[0]["from"] == proxy.url and failover[0]["to"] == anvil.url
    counts = per_position(keeper_actions(w3, devnet, start))
    assert len(counts) >= 3 and set(counts.values()) == {1}, counts  # each endangered one, once
    alert = next(p for p in receiver.posts if p["kind"] == "rpc_failover")
    assert alert["fields"]["from"] == proxy.url
