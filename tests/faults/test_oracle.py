"""A stale, a zero and a wildly deviating ETH answer at a crash price (1,000 USD, which would call
for urgent protection): the daemon acts on none of them and alerts ``stale_oracle`` with the reason;
once both sources agree on the same price, it acts (the control that shows the crash was real)."""

from keeper.chain import contracts as C
from keeper.devnet.deployer import Deployer
from tests.faults.conftest import head, idle, keeper_actions, wait_for

CRASH = 1_000 * 10**8


def _feeds_toml(devnet: dict, second: str) -> str:
    out = []
    for sym, f in devnet["feeds"].items():
        out.append(f'[chains.devnet.feeds.{sym}]\naddress = "{f["address"]}"\n'
                   f'asset = "{devnet["tokens"][f["token"]]["address"]}"\nheartbeat = 3600\n'
                   + (f'second_source = "{second}"\nmax_deviation = 0.05\n' if sym == "ETH" else ""))
    return "\n".join(out)


def _issue_alerted(receiver, needle: str) -> bool:
    return any(p["kind"] == "stale_oracle" and needle in p.get("text", "") for p in receiver.posts)


def test_bad_oracle_answers_are_never_acted_on(env, w3, devnet, miner, receiver):
    admin = Deployer(w3, devnet["roles"]["admin"])
    agg = C.third_party("MockV3Aggregator")
    second = admin.deploy(agg, 8, 2_000 * 10**8)
    primary = admin.at(devnet["feeds"]["ETH"]["address"], agg)
    env.config(chain_extra=_feeds_toml(devnet, second.address))
    miner.start(0.5)
    daemon = env.daemon()
    try:
        wait_for(lambda: idle(daemon), 60, "the daemon to settle")
        start = head(w3)
        seen_ticks = len(daemon.seen("tick"))
        # 1. stale: the crash price, last updated two hours ago (heartbeat one hour)
        rnd = primary.functions.latestRoundData().call()
        now = w3.eth.get_block("latest")["timestamp"]
        admin.send(primary.functions.updateRoundData(rnd[0] + 1, CRASH, now - 7200, now - 7200))
        wait_for(lambda: _issue_alerted(receiver, "stale"), 30, "a stale_oracle alert (stale)")
        # 2. zero
        admin.send(primary.functions.updateAnswer(0))
        wait_for(lambda: _issue_alerted(receiver, "non-positive answer 0"), 30, "a stale_oracle alert (zero)")
        # 3. fresh, but 50% away from the second source
        admin.send(primary.functions.updateAnswer(CRASH))
        wait_for(lambda: _issue_alerted(receiver, "deviates 50.0%"), 30, "a stale_oracle alert (deviation)")
        b = head(w3)
        wait_for(lambda: daemon.ticked_after(b + 2), 30, "a few more ticks on the deviating answer")
        acted = keeper_actions(w3, devnet, start)
        assert acted == [], (start, acted)  # no action on any bad answer
        assert len(daemon.seen("tick")) > seen_ticks + 3
        whys = " | ".join(e["why"] for e in daemon.seen("stale_oracle"))
        assert all(w in whys for w in ("ETH: stale", "ETH: non-positive", "ETH: deviates")), whys
        # Control: the second source confirms the crash; now the keeper acts.
        admin.send(second.functions.updateAnswer(CRASH))
        wait_for(lambda: keeper_actions(w3, devnet, start), 30, "the keeper to act on a confirmed price")
    finally:
        code = daemon.stop()
    assert code == 0, daemon.text()[-3000:]
