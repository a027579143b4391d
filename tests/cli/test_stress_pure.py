"""`keeper stress` without a chain (a synthetic `keeper status --json` file): a position already
liquidatable is marked so instead of a bare $0.00, the fan chart goes to the state directory by
default, and a terminal gets a one-line progress note (never in --json mode)."""

import io
import json
import subprocess
import sys

import pytest

from keeper.cli import main
from keeper.cli.stress import loss_cell
from keeper.domain import Asset, Leg, PerpTerms, Position, Protocol, Side
from keeper.views import position_row

WETH = Asset("WETH", "0x0000000000000000000000000000000000000001", 18)
USDC = Asset("USDC", "0x0000000000000000000000000000000000000002", 6)
ACCOUNT = "0x00000000000000000000000000000000000000aa"


def aave(usdc_debt: float, name: str) -> Position:
    legs = (Leg(WETH, Side.COLLATERAL, 10 * 10**18, 1400.0, 0.825), Leg(USDC, Side.DEBT, int(usdc_debt * 1e6), 1.0))
    health = 10 * 1400 * 0.825 / usdc_debt
    account = "0x" + name.encode().hex().rjust(40, "0")  # one account per name
    return Position("devnet", Protocol.AAVE_V3, "0x00000000000000000000000000000000000000a0", account,
                    "pool", legs, int(health * 1e18), 1)


def wiped_long() -> Position:
    """A 5x ETH long opened at 2,000 with $4,000 of collateral, marked at 1,400: a $6,000 loss,
    more than its collateral — liquidatable, and nothing left for the trader to forfeit."""
    terms = PerpTerms(WETH, True, 20_000.0, 4_000.0, 2_000.0, 1_400.0, 20.0, 5.0, 50.0, 1)
    return Position("devnet", Protocol.PERP, "0x00000000000000000000000000000000000000b0", ACCOUNT,
                    "WETH:WETH:long", (), 0, 1, perp=terms)


@pytest.fixture
def positions_file(tmp_path):
    book = [aave(12_000, "under"), aave(5_000, "safe"), wiped_long()]
    f = tmp_path / "status.json"
    f.write_text(json.dumps({"chains": [{"chain": "devnet", "positions": [position_row(p) for p in book]}]}))
    return f, book


def stress(tmp_path, f, *extra):
    return subprocess.run([sys.executable, "-m", "keeper", "stress", "--positions", str(f), "--prices",
                           "--vol", "WETH=0.8", "--paths", "1000", "--horizons", "1,24", *extra],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)


def test_liquidatable_now_is_said_not_zero_and_the_png_goes_to_the_state_dir(tmp_path, positions_file):
    f, book = positions_file
    proc = stress(tmp_path, f, "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["key"]: r for r in json.loads(proc.stdout)["rows"]}
    under, safe, perp = (rows[p.key] for p in book)
    assert under["p_liq_1"] == perp["p_liq_1"] == 1.0
    assert under["liquidatable_now"] and perp["liquidatable_now"] and not safe["liquidatable_now"]
    # lending liquidated now: Aave's bonus (5%) on the half of the debt repaid at health 0.9625
    assert under["expected_loss_usd"] == pytest.approx(0.05 * 0.5 * 12_000)
    # the long's losses already exceed its collateral: a liquidation takes nothing more from it
    assert perp["expected_loss_usd"] == 0.0
    png = tmp_path / ".keeper" / "stress" / "stress_fan.png"
    assert png.stat().st_size > 10_000 and json.loads(proc.stdout)["fan_chart"] == str(png.relative_to(tmp_path))
    assert not (tmp_path / "stress").exists()  # nothing written into the working directory
    assert "stress:" not in proc.stderr  # no progress note into a pipe

    table = stress(tmp_path, f)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    perp_line = next(line for line in lines if "perp" in line and "%" in line)
    assert "liquidatable now (collateral already lost)" in perp_line and "0.00 " not in perp_line.split("%")[-1]
    assert any("300.00 (liquidatable now)" in line for line in lines)
    assert f"fan chart: {png.relative_to(tmp_path)}" in table.stdout


def test_loss_cell():
    assert loss_cell({"expected_loss_usd": 1234.5, "liquidatable_now": False}) == "1,234.50"
    assert loss_cell({"expected_loss_usd": 0.0}) == "0.00"  # rows without the flag: as before
    assert loss_cell({"expected_loss_usd": 300.0, "liquidatable_now": True}) == "300.00 (liquidatable now)"
    wiped = loss_cell({"expected_loss_usd": 0.0, "liquidatable_now": True})
    assert wiped == "liquidatable now (collateral already lost)"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("json_mode", [False, True])
def test_progress_note_on_a_terminal_only_outside_json(tmp_path, positions_file, monkeypatch, capsys, json_mode):
    f, _ = positions_file
    monkeypatch.chdir(tmp_path)
    err = _Tty()
    monkeypatch.setattr(sys, "stderr", err)
    argv = ["stress", "--positions", str(f), "--prices", "--vol", "WETH=0.8", "--paths", "1000",
            "--horizons", "1,4,24", "--out", str(tmp_path / "o")] + (["--json"] if json_mode else [])
    assert main(argv) == 0
    notes = [line for line in err.getvalue().splitlines() if line.startswith("stress:")]
    if json_mode:
        assert notes == []
    else:
        assert len(notes) == 1
        assert notes[0].startswith("stress: 1,000 paths x 3 horizons ... ") and notes[0].endswith(" s")
    assert (tmp_path / "o" / "stress_fan.png").exists()
