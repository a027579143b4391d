"""Train / save / load / evaluate the learned P(liq) and its CLI, on a synthetic GBM-with-jumps file."""

import argparse
import json

import joblib
import numpy as np
import pytest

from keeper.backtest import train_cli
from keeper.backtest.training import data_hash, evaluate, format_report, load_model, train
from keeper.errors import ConfigError
from keeper.risk.features import FEATURE_NAMES

SPLIT = "2020-05-10"
FAST = dict(max_iter=25, max_samples=8000)


def write_csv(path, n=4800, seed=0, start="2020-01-01"):
    """Hourly GBM with vol regimes and downward jumps, as timestamp_utc,open,high,low,close."""
    rng = np.random.default_rng(seed)
    sigma = np.repeat(np.where(rng.random(n // 120 + 1) < 0.3, 0.018, 0.006), 120)[:n]
    r = rng.standard_normal(n) * sigma + np.where(rng.random(n) < 0.003, rng.normal(-0.04, 0.02, n), 0.0)
    close = 1000 * np.exp(np.cumsum(r))
    open_ = np.r_[1000.0, close[:-1]]
    high = np.maximum(open_, close) * np.exp(np.abs(rng.standard_normal(n)) * sigma * 0.4)
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.standard_normal(n)) * sigma * 0.4)
    t = np.datetime64(start + "T00:00:00", "s") + np.arange(n) * np.timedelta64(3600, "s")
    lines = ["timestamp_utc,open,high,low,close"]
    lines += [f"{str(ti).replace('T', ' ')},{o:.6f},{h:.6f},{lo:.6f},{c:.6f}"
              for ti, o, h, lo, c in zip(t, open_, high, low, close)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    csv = write_csv(d / "SYNUSDT_test_1h.csv")
    model_path = train([csv], 24, d / "models", SPLIT, **FAST)
    return csv, model_path


def test_train_saves_a_complete_bundle(trained):
    csv, path = trained
    assert path.exists() and path.name.startswith("pliq_24h_")
    b = load_model(path)
    assert b["feature_names"] == list(FEATURE_NAMES) and b["horizon_hours"] == 24
    assert len(b["train_hash"]) == 64 and b["train_hash"][:12] in path.name
    assert b["model"].train_hash == b["train_hash"] and b["model"].horizon_hours == 24
    start, end = b["trained_on"]
    assert start >= "2020-01-31" and end < SPLIT     # after the warm-up, before the split
    assert {"sklearn_version", "static_freq", "distances", "split"} <= set(b)
    assert np.all(np.diff(b["static_freq"]) <= 0)      # farther = rarer


def test_evaluate_on_the_held_out_period(trained):
    csv, path = trained
    rep = evaluate([csv], path, SPLIT)
    assert rep["n"] > 10_000 and 0 < rep["event_rate"] < 1
    for name in ("learned", "static", "analytic_ewma"):
        r = rep[name]
        assert 0 <= r["brier"] < 0.25 and r["log_loss"] > 0 and 0.5 < r["auc"] <= 1
        assert sum(b["count"] for b in r["reliability"]) == rep["n"]
    assert rep["static"]["brier_skill"] == 0.0
    assert rep["learned"]["brier_skill"] > 0          # the regimes are learnable
    assert np.isfinite(rep["learned"]["brier_skill_vs_analytic"])
    text = format_report(rep)
    assert "reliability (learned)" in text and "BSS vs static" in text
    bands = rep["per_distance_band"]
    assert sum(b["n"] for b in bands.values()) == rep["n"] and "0%-5%" in bands
    with pytest.raises(ConfigError, match="overlaps"):
        evaluate([csv], path, "2020-04-01")


def test_hash_follows_data_and_parameters(tmp_path):
    a = write_csv(tmp_path / "AUSDT_x.csv", n=300)
    params = {"horizon_hours": 24}
    h1 = data_hash([a], params)
    assert h1 == data_hash([a], dict(params))
    assert h1 != data_hash([a], {"horizon_hours": 12})
    a.write_text(a.read_text().replace("\n2020-01-02 00:00:00,", "\n2020-01-02 00:00:00,1", 1))
    assert data_hash([a], params) != h1
    with pytest.raises(ConfigError):
        data_hash([tmp_path / "missing.csv"], params)


def test_foreign_bundles_are_refused(trained, tmp_path):
    _, path = trained
    b = joblib.load(path)
    b["feature_names"] = list(FEATURE_NAMES[:-1]) + ["open_interest"]
    bad = tmp_path / "other_features.joblib"
    joblib.dump(b, bad)
    with pytest.raises(ConfigError, match="other features"):
        load_model(bad)
    joblib.dump({"just": "a dict"}, tmp_path / "junk.joblib")
    with pytest.raises(ConfigError, match="not a keeper model"):
        load_model(tmp_path / "junk.joblib")
    (tmp_path / "text.joblib").write_text("hello")
    with pytest.raises(ConfigError, match="cannot load"):
        load_model(tmp_path / "text.joblib")
    with pytest.raises(ConfigError, match="no model file"):
        load_model(tmp_path / "nope.joblib")


def test_too_short_history_is_a_config_error(tmp_path):
    csv = write_csv(tmp_path / "SHORTUSDT_x.csv", n=500)
    with pytest.raises(ConfigError):
        train([csv], 24, tmp_path / "m", None, **FAST)


@pytest.mark.parametrize("text,hours", [("24h", 24), ("1d", 24), ("36", 36), ("2D", 48), (" 6h ", 6)])
def test_parse_horizon(text, hours):
    assert train_cli.parse_horizon(text) == hours


@pytest.mark.parametrize("text", ["", "h", "24m", "-1h", "0h", "1.5h", "100d"])
def test_bad_horizons(text):
    with pytest.raises(ConfigError):
        train_cli.parse_horizon(text)


def cli(argv):
    parser = argparse.ArgumentParser(prog="keeper")
    train_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_train_and_evaluate(trained, tmp_path, capsys):
    csv, model_path = trained
    args = cli(["train", "--prices", str(csv), "--horizon", "1d", "--out", str(tmp_path / "m"),
                "--split", SPLIT, "--max-iter", "20", "--max-samples", "5000", "--json"])
    assert train_cli.handle(args) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["horizon_hours"] == 24 and (tmp_path / "m").is_dir()
    assert info["model"].startswith(str(tmp_path / "m"))
    args = cli(["evaluate", "--prices", str(csv), "--model", str(model_path), "--test-from", SPLIT, "--json"])
    assert train_cli.handle(args) == 0
    rep = json.loads(capsys.readouterr().out)
    assert {"learned", "static", "analytic_ewma"} <= set(rep)
    args = cli(["evaluate", "--prices", str(csv), "--model", str(model_path), "--test-from", SPLIT])
    assert train_cli.handle(args) == 0
    assert "Brier" in capsys.readouterr().out


@pytest.mark.parametrize("argv,needle", [
    (["train", "--prices", "nowhere.csv"], "no price file"),
    (["train", "--prices", "{csv}", "--horizon", "soon"], "bad horizon"),
    (["train", "--prices", "{csv}", "--split", "next year"], "bad split"),
    (["evaluate", "--prices", "{csv}", "--model", "nowhere.joblib"], "no model file"),
    (["evaluate", "--prices", "{csv}", "--model", "{model}", "--test-from", "2020-02-01"], "overlaps"),
])
def test_cli_errors(trained, argv, needle):
    csv, model_path = trained
    args = cli([a.format(csv=csv, model=model_path) for a in argv])
    with pytest.raises(ConfigError, match=needle):
        train_cli.handle(args)
