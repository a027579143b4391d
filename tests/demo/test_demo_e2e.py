"""``keeper demo`` end to end on a fresh anvil, shortened (46 steps, the crash still 28 blocks): a
real daemon subprocess protects alice's (and bob's) positions, a real liquidator subprocess
liquidates carol's unprotected twins, with the protocols' own liquidation events on chain."""

import json
import subprocess
import sys

import pytest

TWINS_AT_RISK = {"carol-aave-unprotected", "carol-morpho-unprotected", "carol-perp-eth-long-unprotected"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run([sys.executable, "-m", "keeper", "demo", "--out", str(out), "--steps", "46"],
                          capture_output=True, text=True, timeout=150, cwd=out)
    return proc, out


def test_exit_code_and_printed_summary(demo):
    proc, out = demo
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for line in ("positions liquidated", "collateral committed by the keeper", "keeper actions",
                 "gas used by keeper transactions", "gas used by liquidator transactions"):
        assert line in proc.stdout
    assert "OK: every protected position survived" in proc.stdout
    assert f"timeline: {out / 'timeline.png'}" in proc.stdout


def test_twins_liquidated_on_chain_protected_positions_not(demo):
    _proc, out = demo
    s = json.loads((out / "summary.json").read_text())
    onchain = s["onchain_liquidations"]
    liquidated = {c["position"] for c in onchain}
    assert liquidated >= TWINS_AT_RISK  # the protocols' own events: LiquidationCall, Liquidate, LiquidatePosition
    assert not any(p.startswith(("alice-", "bob-")) for p in liquidated)
    assert s["protected"]["liquidated"] == [] and s["others"]["liquidated"] == []
    assert set(s["twins"]["liquidated"]) == liquidated and s["twins"]["liquidations"] == len(onchain)
    # Every liquidation the liquidator process reported is one of those on-chain events, and vice versa.
    reported = [json.loads(line) for line in (out / "liquidator.jsonl").read_text().splitlines()]
    txs = {r["tx"] for r in reported if r["event"] == "liquidation"}
    assert txs == {c["tx"] for c in onchain}
    assert reported[0]["event"] == "ready" and reported[-1]["event"] == "stopped"  # it was stopped with SIGTERM


def test_summary_numbers(demo):
    _proc, out = demo
    s = json.loads((out / "summary.json").read_text())
    alice, carol = s["protected"], s["twins"]
    assert alice["committed_usd"] > 0 and carol["committed_usd"] == 0
    assert sum(alice["actions"].get(k, 0) for k in ("top_up", "repay")) >= 2 and carol["actions"] == {}
    assert alice["keeper_gas"] > 0 and carol["liquidator_gas"] > 0 and alice["liquidator_gas"] == 0
    assert carol["seized_usd"] > 1_000 and carol["repaid_by_liquidator_usd"] > 1_000
    for pid, h in alice["min_health"].items():
        assert h == "inf" or h >= 1.0, (pid, h)  # never liquidatable at any block read
    assert s["blocks"] >= 46


def test_timeline_png(demo):
    _proc, out = demo
    png = (out / "timeline.png").read_bytes()
    assert png[:8] == PNG_MAGIC and len(png) > 20_000
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width >= 800 and height >= 800


def test_everything_it_started_is_stopped(demo):
    _proc, out = demo
    from keeper.devnet.anvil import rpc_call
    from keeper.errors import TemporaryError

    dep = json.loads((out / "devnet.json").read_text())
    with pytest.raises(TemporaryError):
        rpc_call(dep["rpc_url"], "eth_chainId", timeout=1.0)  # anvil is gone
    log = (out / "keeper.log").read_text()
    assert '"event":"shutdown"' in log  # the daemon stopped cleanly on SIGTERM
