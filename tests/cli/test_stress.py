"""`keeper stress` from a `keeper status --json` file (no chain, no shared data): P(liq) per
horizon for every position, ordered sensibly, and a fan chart written."""

import json
import subprocess
import sys

from keeper.views import position_from_row, position_row
from tests.protocols.devnet_reader import devnet_reader


def test_status_json_round_trips(anvil, devnet):
    reader = devnet_reader(anvil.url, devnet)
    snap = reader.read()
    reader.mc.close()
    for p in snap.positions:
        back = position_from_row(json.loads(json.dumps(position_row(p))))
        assert back.key == p.key and back.health_wad == p.health_wad and back.legs == p.legs
        assert (back.perp is None) == (p.perp is None)


def test_stress_from_a_positions_file(tmp_path, anvil, devnet):
    reader = devnet_reader(anvil.url, devnet)
    snap = reader.read()
    reader.mc.close()
    doc = {"chains": [{"chain": "devnet", "positions": [position_row(p) for p in snap.positions]}]}
    f = tmp_path / "status.json"
    f.write_text(json.dumps(doc))
    proc = subprocess.run([sys.executable, "-m", "keeper", "stress", "--positions", str(f), "--prices",
                           "--vol", "WETH=1.5", "--vol", "WBTC=1.2", "--paths", "4000", "--horizons", "4,24",
                           "--json", "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    rows = {r["key"]: r for r in out["rows"]}
    assert len(rows) == len(snap.positions)
    for r in rows.values():
        assert 0 <= r["p_liq_4"] <= r["p_liq_24"] <= 1  # more time, more risk
    by_kind = {p.key: p for p in snap.positions}
    eth_long = next(k for k, p in by_kind.items() if p.perp is not None and p.perp.is_long)
    carol = next(k for k, p in by_kind.items()
                 if p.account.lower() == devnet["roles"]["carol"].lower() and p.protocol.value == "aave_v3")
    assert rows[eth_long]["p_liq_24"] > rows[carol]["p_liq_24"]  # a 5x long vs a 1.39-health loan
    # the configured model's paths (the default: the tail law), the vols named with their sources
    assert out["calibration"]["WETH"] == "150%/yr (override)" and "Student-t" in out["calibration"]["law"]
    assert out["model"].startswith("tail model")
    # stablecoins are stressed by depegs of their own: a falling USDC hurts no borrower of USDC
    assert all(r["depeg USDC -10%"] is False for r in rows.values() if "depeg USDC -10%" in r)
    assert any("depeg USDC +5%" in r for r in rows.values())
    assert (tmp_path / "out" / "stress_fan.png").stat().st_size > 10_000


def test_stress_refuses_bad_input(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "keeper", "stress", "--positions", str(tmp_path / "nope.json")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and "not found" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "keeper", "stress", "--horizons", "x"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and "--horizons" in proc.stderr
