"""Pareto frontier, grids and the pick of the cheapest safe parameters."""

import numpy as np

from keeper.backtest.charts import pareto_chart, run_chart
from keeper.backtest.engine import lending_position, run
from keeper.backtest.pareto import Evaluator, cheapest, frontier, pareto_front, risk_grid, static_grid
from keeper.backtest.policies import SeriesModel, StaticPolicy
from keeper.backtest.prices import PriceSeries
from keeper.risk.laws import TailLaw


def test_pareto_front_minimises_every_column():
    pts = np.array([[1, 5], [2, 3], [3, 3], [2, 4], [4, 1], [5, 1], [1, 5]])
    front = pareto_front(pts)
    assert [tuple(pts[i]) for i in front] == [(1, 5), (1, 5), (2, 3), (4, 1)]
    assert len(pareto_front(np.empty((0, 2)))) == 0


def test_grids_are_valid_and_labelled():
    st = static_grid()
    assert len(st) == len({p.label() for p in st}) and all(p.trigger < p.target <= p.boost_target for p in st)
    rk = risk_grid(SeriesModel(TailLaw()))
    assert len(rk) == len({p.label() for p in rk})
    for p in rk:
        p.levels()


def _crashy(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.006, n)))
    low = c * (1 - np.abs(rng.normal(0, 0.004, n)))
    low[700] = c[699] * 0.78                              # one 22% wick out of a calm market
    t = 1_577_836_800 + 3600 * np.arange(n, dtype=np.int64)
    return PriceSeries("ETH", t, c.copy(), c * 1.003, np.minimum(low, c), c, np.zeros(n, dtype=bool))


def test_evaluator_cheapest_needs_zero_liquidations_and_zero_trigger_failures(tmp_path):
    s = _crashy()
    ev = Evaluator([s], delay_bars=1, keep_results=True)
    evals = ev.grid([StaticPolicy(1.2, 1.3, 1.5, 1.3), StaticPolicy(1.35, 1.45, 1.7, 1.45),
                     StaticPolicy(1.5, 1.6, 1.9, 1.6)])
    assert not evals[0].feasible and evals[0].metrics.trigger_failures > 0
    best = cheapest(evals)
    assert best is evals[1]
    assert [e.policy for e in frontier(evals)] == [evals[1].policy]
    png = pareto_chart({"static": evals}, tmp_path / "p.png")
    assert png.stat().st_size > 1000
    res = run(s, lending_position("ETH", 100.0, 1.45), evals[1].policy)
    assert run_chart(res, tmp_path / "r.png").stat().st_size > 1000


def test_evaluator_caches_the_risk_model_matrix():
    s = _crashy(800)
    ev = Evaluator([s], delay_bars=1)
    grid = risk_grid(SeriesModel(TailLaw()), epsilons=(1e-3, 1e-4), horizons=(2,), bands=((0.5, 0.1),))
    out = ev.grid(grid)
    assert len(ev._p) == 1 and len(out) == 2
    assert out[1].metrics.avg_trigger > out[0].metrics.avg_trigger


def _write_csv(path, s):
    stamps = np.asarray(s.t, dtype="datetime64[s]").astype(str)
    lines = ["timestamp_utc,open,high,low,close"]
    lines += [f"{ts.replace('T', ' ')},{o},{h},{lo},{c}" for ts, o, h, lo, c in
              zip(stamps, s.open, s.high, s.low, s.close)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_backtest_cli_prints_a_table_writes_charts_and_json(tmp_path, capsys):
    import json

    from keeper.cli import main
    csv = _write_csv(tmp_path / "ETHUSDT_synth_1h.csv", _crashy(2600))
    assert main(["backtest", "--prices", str(csv), "--policy", "static", "--trigger", "1.35", "--target", "1.45",
                 "--boost-trigger", "1.7", "--boost-target", "1.45", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "ETH static trig 1.35" in out and "trig fails" in out
    assert (tmp_path / "o" / "backtest_ETH_static.png").exists()
    assert main(["backtest", "--prices", str(csv), "--policy", "risk", "--from", "2020-02-20", "--json",
                 "--delay-minutes", "90"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["delay_bars"] == 2 and rep["runs"][0]["bars"] > 0 and "fitted on" in rep["model"]
    assert main(["backtest", "--prices", str(tmp_path / "missing.csv")]) != 0
    assert main(["backtest", "--prices", str(csv), "--policy", "risk", "--release-below", "0.9",
                 "--target-below", "0.5"]) != 0
