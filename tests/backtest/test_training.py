"""Train / save / load / evaluate the learned P(liq) and its CLI, on a synthetic GBM-with-jumps file."""

import argparse
import json

import joblib
import numpy as np
import pytest

from keeper.backtest.training import (
    data_hash,
    evaluate,
    format_report,
    load_model,
    train,
)
from keeper.cli import train as train_cli
from keeper.errors import ConfigError
from keeper.risk.features import DEFAULT_FEATURES, FEATURE_NAMES

SPLIT = "2020-05-10"
FAST = {"max_iter": 25, "max_samples": 8000}


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
    assert b["feature_names"] == list(DEFAULT_FEATURES) and b["horizon_hours"] == 24
    assert len(b["train_hash"]) == 64 and b["train_hash"][:12] in path.name
    assert b["model"].train_hash == b["train_hash"] and b["model"].horizon_hours == 24
    start, end = b["trained_on"]
    assert start >= "2020-01-31" and end < SPLIT     # after the warm-up, before the split
    assert {"sklearn_version", "static_freq", "distances", "split"} <= set(b)
    w = b["train_window"]
    assert (w["first_decision"], w["last_decision"]) == tuple(b["trained_on"]) and w["split"] == SPLIT
    assert w["last_decision"] < w["last_label_bar"] <= SPLIT + " 00:00:00"
    assert len(b["data_hash"]) == 64 and b["data_hash"] != b["train_hash"]
    assert b["files"] == [csv.name] and b["symbols"] == ["SYN"]
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


def test_per_asset_reliability_sums_to_the_pooled_counts(tmp_path_factory):
    d = tmp_path_factory.mktemp("two")
    a = write_csv(d / "AAAUSDT_test_1h.csv", seed=3)
    b = write_csv(d / "BBBUSDT_test_1h.csv", seed=4, n=4500)
    model = train([a, b], 24, d / "models", SPLIT, **FAST)
    rep = evaluate([a, b], model, SPLIT, out_dir=d / "charts")
    per = rep["per_symbol"]
    assert set(per) == {"AAA", "BBB"}
    assert sum(r["n"] for r in per.values()) == rep["n"]
    pooled_events = sum(bn["count"] * bn["observed"] for bn in rep["learned"]["reliability"])
    asset_events = 0.0
    for r in per.values():
        bins = r["learned"]["reliability"]
        assert sum(bn["count"] for bn in bins) == r["n"] and len(bins) <= 10
        asset_events += sum(bn["count"] * bn["observed"] for bn in bins)
        for bn in bins:
            assert bn["lo"] - 1e-12 <= bn["mean_pred"] <= bn["hi"] + 1e-12
            assert bn["gap_pts"] == pytest.approx(100 * abs(bn["mean_pred"] - bn["observed"]))
        assert r["learned"]["max_gap_pts"] == pytest.approx(max(bn["gap_pts"] for bn in bins))
        low = r["learned"]["low_p"]
        assert low["cut"] == 0.05 and sum(bn["count"] for bn in low.get("reliability", [])) == low["n"]
        assert all(bn["hi"] < 0.05 for bn in low.get("reliability", []))
    assert asset_events == pytest.approx(pooled_events) == pytest.approx(rep["event_rate"] * rep["n"])
    charts = rep["charts"]
    assert set(charts) == {"pooled", "AAA", "BBB"}
    for path in charts.values():
        with open(path, "rb") as fh:
            data = fh.read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    text = format_report(rep)
    assert "reliability (learned, AAA)" in text and "reliability (learned, BBB)" in text
    assert "low-P region (learned, pooled)" in text and "|gap| pts" in text
    assert json.loads(json.dumps(rep))["per_symbol"]["AAA"]["learned"]["n"] == per["AAA"]["n"]


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
    b["feature_names"] = [*FEATURE_NAMES[:-1], "open_interest"]
    bad = tmp_path / "other_features.joblib"
    joblib.dump(b, bad)
    with pytest.raises(ConfigError, match="other features"):
        load_model(bad)
    b = joblib.load(path)
    b["feature_names"] = list(reversed(b["feature_names"]))    # known names, another order than the model's
    joblib.dump(b, tmp_path / "reordered.joblib")
    with pytest.raises(ConfigError, match="other features"):
        load_model(tmp_path / "reordered.joblib")
    joblib.dump({"just": "a dict"}, tmp_path / "junk.joblib")
    with pytest.raises(ConfigError, match="not a keeper model"):
        load_model(tmp_path / "junk.joblib")
    (tmp_path / "text.joblib").write_text("hello")
    with pytest.raises(ConfigError, match="cannot load"):
        load_model(tmp_path / "text.joblib")
    with pytest.raises(ConfigError, match="no model file"):
        load_model(tmp_path / "nope.joblib")


def test_bad_feature_lists_are_refused(trained, tmp_path):
    csv, _ = trained
    for names in (["dist_vol_units", "moon_phase"], [], ["log_vol", "log_vol"]):
        with pytest.raises(ConfigError, match="bad feature list"):
            train([csv], 24, tmp_path / "m", SPLIT, features=names, **FAST)


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
    assert args.handler(args, None) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["horizon_hours"] == 24 and (tmp_path / "m").is_dir()
    assert info["model"].startswith(str(tmp_path / "m"))
    args = cli(["evaluate", "--prices", str(csv), "--model", str(model_path), "--test-from", SPLIT, "--json"])
    assert args.handler(args, None) == 0
    rep = json.loads(capsys.readouterr().out)
    assert {"learned", "static", "analytic_ewma"} <= set(rep)
    args = cli(["evaluate", "--prices", str(csv), "--model", str(model_path), "--test-from", SPLIT])
    assert args.handler(args, None) == 0
    assert "Brier" in capsys.readouterr().out


def test_cli_feature_choice_and_charts(trained, tmp_path, capsys):
    csv, _ = trained
    args = cli(["train", "--prices", str(csv), "--out", str(tmp_path / "m"), "--split", SPLIT, "--max-iter", "15",
                "--max-samples", "4000", "--features", "dist_vol_units,log_dist,lv_rv24h",
                "--calibration", "sigmoid", "--json"])
    assert args.handler(args, None) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["feature_names"] == ["dist_vol_units", "log_dist", "lv_rv24h"]
    assert len(info["data_hash"]) == 64 and info["train_window"]["split"] == SPLIT
    b = load_model(info["model"])
    assert b["feature_names"] == list(b["model"].feature_names) and b["model"].calibration == "sigmoid"
    args = cli(["evaluate", "--prices", str(csv), "--model", info["model"], "--test-from", SPLIT,
                "--out", str(tmp_path / "charts")])
    assert args.handler(args, None) == 0
    out = capsys.readouterr().out
    assert "reliability (learned, SYN)" in out and "calibration_SYN_24h.png" in out
    assert sorted(p.name for p in (tmp_path / "charts").iterdir()) == ["calibration_SYN_24h.png",
                                                                       "calibration_pooled_24h.png"]
    with pytest.raises(ConfigError, match="unknown features"):
        (a := cli(["train", "--prices", str(csv), "--features", "dist_vol_units,moon_phase"])).handler(a, None)


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
        args.handler(args, None)


def test_evaluate_scores_the_products_law(trained):
    """`keeper evaluate --params`: the product's law is scored on the same held-out positions."""
    from keeper.risk.laws import TailLaw

    csv, model_path = trained
    law = TailLaw(nu=4.0, lam_u=0.01, u=0.03, xi=0.2, beta=0.015)
    report = evaluate([csv], model_path, SPLIT, law=law, law_source="test law")
    tail = report["tail"]
    assert tail["law"] == "test law" and sum(r["count"] for r in tail["reliability"]) == report["n"]
    assert 0 < tail["brier"] < 1 and "tail" in format_report(report)
    # a law with fatter jumps says more: higher forecasts on the same positions
    fat = evaluate([csv], model_path, SPLIT, law=TailLaw(nu=4.0, lam_u=0.1, u=0.03, xi=0.2, beta=0.015))
    mean = lambda r: sum(b["mean_pred"] * b["count"] for b in r["reliability"]) / r["n"]  # noqa: E731
    assert mean(fat["tail"]) > mean(tail)
