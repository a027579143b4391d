"""Progress lines of the long offline commands: on stderr only when it is a terminal and not in
--json mode; stdout unchanged, and nothing at all when stderr is not a terminal (tests, CI)."""

import io
import json

import pytest

from keeper.cli import main
from keeper.cli.progress import Progress, enabled
from tests.backtest.test_pareto import _crashy, _write_csv
from tests.backtest.test_training import write_csv

pytestmark = pytest.mark.timeout(300)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_enabled_only_on_a_terminal_and_never_in_json_mode():
    assert enabled(stream=_Tty()) and not enabled(stream=io.StringIO())
    assert not enabled(json_mode=True, stream=_Tty())
    closed = _Tty()
    closed.close()
    assert not enabled(stream=io.StringIO()) and not enabled(stream=object())


def test_step_and_phase_lines():
    now = [100.0]
    tty = _Tty()
    p = Progress("train", stream=tty, clock=lambda: now[0], tick_seconds=60)
    now[0] = 112.4
    p.step("ETH 1/2")
    with p.phase("fit"):
        now[0] = 130.0
    with pytest.raises(ValueError), p.phase("calibrate"):
        raise ValueError("boom")
    assert tty.getvalue().split("\n") == ["train: ETH 1/2 ... 12 s", "train: fit ... 12 s\rtrain: fit ... 30 s done",
                                          "train: calibrate ... 30 s\rtrain: calibrate ... 30 s failed", ""]
    quiet = io.StringIO()
    q = Progress("train", stream=quiet)
    q.step("x")
    with q.phase("y"):
        pass
    assert quiet.getvalue() == ""


def _backtest_grid(tmp_path, monkeypatch, capsys, stderr, *extra):
    csv = _write_csv(tmp_path / "ETHUSDT_synth_1h.csv", _crashy(2600))
    monkeypatch.setattr("sys.stderr", stderr)
    assert main(["backtest", "--prices", str(csv), "--grid", *extra]) == 0
    return capsys.readouterr().out


def test_backtest_grid_progress_on_a_terminal_only(tmp_path, monkeypatch, capsys):
    tty = _Tty()
    out_tty = _backtest_grid(tmp_path, monkeypatch, capsys, tty)
    lines = tty.getvalue().replace("\r", "\n").splitlines()
    assert lines[0].startswith("backtest: risk model ... ")
    assert [line for line in lines if line.startswith("backtest: risk model")][-1].endswith(" s done")
    assert any(line.startswith("backtest: static ") and " on ETH ... " in line for line in lines)
    assert any(line.startswith("backtest: static grid 1/") for line in lines)
    last = [line for line in lines if line.startswith("backtest: risk grid ")][-1]
    n = last.split("/")[1].split()[0]
    assert last.startswith(f"backtest: risk grid {n}/{n} ... ") and last.endswith(" s")

    plain = io.StringIO()
    assert _backtest_grid(tmp_path, monkeypatch, capsys, plain) == out_tty  # stdout unchanged
    assert plain.getvalue() == ""
    json_tty = _Tty()
    json.loads(_backtest_grid(tmp_path, monkeypatch, capsys, json_tty, "--json"))
    assert json_tty.getvalue() == ""


def test_train_and_evaluate_progress_on_a_terminal_only(tmp_path, monkeypatch, capsys):
    csv = write_csv(tmp_path / "SYNUSDT_test_1h.csv")
    args = ["train", "--prices", str(csv), "--out", str(tmp_path / "m"), "--split", "2020-05-10",
            "--max-samples", "8000", "--max-iter", "25"]
    tty = _Tty()
    monkeypatch.setattr("sys.stderr", tty)
    assert main(args) == 0
    assert capsys.readouterr().out.startswith("model written to ")
    line = tty.getvalue().split("\r")[-1]
    assert line.startswith("train: SYNUSDT_test_1h, horizon 24h: samples, fit, calibration ... ")
    assert line.endswith(" s done\n")
    plain = io.StringIO()
    monkeypatch.setattr("sys.stderr", plain)
    assert main([*args, "--json"]) == 0
    model = json.loads(capsys.readouterr().out)["model"]
    assert plain.getvalue() == ""

    monkeypatch.setattr("sys.stderr", tty := _Tty())
    assert main(["evaluate", "--prices", str(csv), "--model", model, "--test-from", "2020-05-10"]) == 0
    capsys.readouterr()
    assert tty.getvalue().startswith(f"evaluate: scoring {model.rsplit('/', 1)[1]} on SYNUSDT_test_1h ... ")
    monkeypatch.setattr("sys.stderr", tty := _Tty())
    assert main(["evaluate", "--prices", str(csv), "--model", model, "--test-from", "2020-05-10", "--json"]) == 0
    assert tty.getvalue() == ""
