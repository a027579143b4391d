"""`keeper run` as operators run it: JSON log lines with a reason per decision, --dry-run sends
nothing, SIGTERM stops cleanly after the current tick (exit 0)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.devnet.helpers import set_price

pytestmark = pytest.mark.usefixtures("snapshot")


def test_run_dry_run_logs_decisions_and_stops_on_sigterm(tmp_path, anvil, w3, devnet):
    (tmp_path / "dep.json").write_text(json.dumps({**devnet, "rpc_url": anvil.url}))
    (tmp_path / "config.toml").write_text('[store]\nurl = "sqlite:///k.db"\n[daemon]\npoll_interval = 0.2\n'
                                          '[chains.devnet]\ndeployment = "dep.json"\n')
    set_price(w3, devnet, "ETH", 1_560)
    nonce = w3.eth.get_transaction_count(devnet["roles"]["keeper"])
    proc = subprocess.Popen([sys.executable, "-m", "keeper", "run", "--dry-run", "--vol", "WETH=0.8"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ})
    seen: list[str] = []
    threading.Thread(target=lambda: seen.extend(iter(proc.stdout.readline, "")), daemon=True).start()

    def wait_for(event: str, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while not any(f'"event":"{event}"' in ln.replace(" ", "") for ln in list(seen)):
            assert proc.poll() is None and time.monotonic() < end, f"no {event} line: {''.join(seen)[-2000:]}"
            time.sleep(0.1)

    try:
        wait_for("startup")
        set_price(w3, devnet, "BTC", 25_000)  # a new block: the daemon ticks
        wait_for("decision")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        time.sleep(0.2)  # the reader thread drains the pipe
        out, err = "".join(seen), ""
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    lines = [json.loads(ln) for ln in (out + err).splitlines() if ln.startswith("{")]
    events = [ln.get("event") for ln in lines]
    assert "startup" in events and "shutdown" in events
    decisions = [ln for ln in lines if ln.get("event") == "decision"]
    assert decisions and all(d["dry_run"] and d["why"] and "p_before" in d for d in decisions)
    assert w3.eth.get_transaction_count(devnet["roles"]["keeper"]) == nonce  # dry run: nothing sent
