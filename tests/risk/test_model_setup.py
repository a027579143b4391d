"""One model from config to decision: `keeper fit` files, the backtest reading them, the market from
history (never a silent default), and the learned model with its checks and fallback. Synthetic
price files only."""

import json
import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from keeper.app.risk_setup import Rounds, assemble_model, choose, read_params
from keeper.backtest.engine import policy_thresholds
from keeper.backtest.metrics import thresholds_digest
from keeper.backtest.policies import RiskPolicy, SeriesModel
from keeper.backtest.prices import load_csv
from keeper.backtest.training import load_model, train
from keeper.cli import fit as fit_cli
from keeper.cli import main as keeper_main
from keeper.config import Config
from keeper.domain import WAD, Asset, Leg, Position, Protocol, Side
from keeper.errors import ConfigError
from keeper.risk.laws import TailLaw
from keeper.risk.learned_model import BundleMismatch, LearnedRisk, check_bundle, feature_rows
from keeper.risk.market import History, market_from_history
from keeper.risk.mc_model import McRisk
from keeper.risk.model import LawRisk
from tests.backtest.test_training import write_csv

WETH, WBTC, USDC = Asset("WETH", "0xe", 18), Asset("WBTC", "0xb", 8), Asset("USDC", "0xu", 6)


def position(health: float = 1.3) -> Position:
    legs = (Leg(WETH, Side.COLLATERAL, 5 * 10**18, 2000.0, 0.8), Leg(USDC, Side.DEBT, int(8000 / health * 10**6), 1.0))
    return Position("eth", Protocol.AAVE_V3, "0xpool", "0xa", "pool", legs, WAD, 1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("fit")
    eth = write_csv(d / "ETHUSDT_test_1h.csv", n=6000, seed=1)
    btc = write_csv(d / "BTCUSDT_test_1h.csv", n=6000, seed=2)
    return d, eth, btc


def test_fit_writes_what_the_backtest_and_the_daemon_read(files, capsys):
    d, eth, _btc = files
    out = d / "fit.json"
    args = SimpleNamespace(prices=[str(eth)], model="tail", start=None, end="2020-06-01", jump_threshold=0.03,
                           slow=0.0, jump_regime="vol", exponent_scale=0.25, nu="10", out=out, json=False)
    assert fit_cli.run(args) == 0
    assert "written to" in capsys.readouterr().out
    law, meta = read_params(out)
    assert isinstance(law, TailLaw) and meta["window"] == [None, "2020-06-01"]
    # identical parameters, identical thresholds: the benchmark's path (a RiskPolicy over the law)
    # against `keeper backtest --params`, bar by bar (a digest of the four threshold arrays)
    series = load_csv(eth).window("2020-06-01", None)
    bench = policy_thresholds(RiskPolicy(1e-3, 2, 0.1, SeriesModel(law), 0.5), series, "long")
    rc = keeper_main(["backtest", "--prices", str(eth), "--policy", "risk", "--params", str(out),
                            "--from", "2020-06-01", "--epsilon", "1e-3", "--horizon", "2", "--release-below", "0.1",
                            "--target-below", "0.5", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["runs"][0]["thresholds_sha256"] == thresholds_digest(bench)
    assert str(out) in report["model"]
    # a different law gives different thresholds (the digest is not blind)
    other = policy_thresholds(RiskPolicy(1e-3, 2, 0.1, SeriesModel(TailLaw()), 0.5), series, "long")
    assert thresholds_digest(other) != thresholds_digest(bench)


def test_bad_params_files_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not JSON"):
        read_params(bad)
    bad.write_text(json.dumps({"format": 1, "law": {"kind": "tail", "nu": 4.0, "wobble": 1}}))
    with pytest.raises(ConfigError, match="wobble"):
        read_params(bad)
    with pytest.raises(ConfigError, match="keeper fit"):
        read_params(tmp_path / "missing.json")


def test_market_never_defaults_silently():
    law = TailLaw()
    hist = {"WETH": History(np.linspace(2000, 2100, 200), None, "feed rounds"),
            "WBTC": History(np.linspace(30000, 30100, 5), None, "feed rounds")}
    m = market_from_history(law, ["WETH", "WBTC", "USDC", "LINK"], hist, default_annual=0.8, min_returns=24)
    assert m.assets["WETH"].source == "199 h of feed rounds"
    assert m.assets["WBTC"].source.startswith("DEFAULT 80%/yr: 4 hourly returns from feed rounds")
    assert m.assets["LINK"].source.startswith("DEFAULT") and m.assets["USDC"].sigma == 0.0
    cfg = Config()
    choice = choose(cfg)
    model, warnings = assemble_model(cfg, choice, ["WETH", "USDC"], {"WETH": Rounds([0.0], [2000.0], ["1 round"])})
    assert any("WETH" in w and "DEFAULT" in w for w in warnings)
    assert any("built-in" in w for w in warnings)
    assert "WETH 80%/yr (DEFAULT" in model.describe()


def test_chain_rounds_give_the_vol(files):
    cfg = Config()
    t0 = 1_700_000_000
    rng = np.random.default_rng(0)
    prices = 2000 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))
    rounds = {"WETH": Rounds(list(t0 + 3600.0 * np.arange(300)), list(prices), ["300 Chainlink rounds"])}
    model, warnings = assemble_model(cfg, choose(cfg), ["WETH"], rounds, overrides=None)
    state = model.market.state("WETH")
    assert state.source == "299 h of 300 Chainlink rounds" and 0.005 < state.sigma < 0.02
    assert not any("WETH" in w for w in warnings)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    d = tmp_path_factory.mktemp("learned")
    csv = write_csv(d / "ETHUSDT_test_1h.csv", n=4800, seed=3)
    path = train([csv], 24, d / "models", "2020-05-10", max_iter=25, max_samples=8000)
    return csv, path, load_model(path)


def test_learned_model_decides_and_falls_back(bundle):
    csv, path, b = bundle
    with pytest.raises(BundleMismatch, match="24 h horizon"):
        check_bundle(b, 12)
    s = load_csv(csv)
    hist = {"WETH": History(s.close, s.low, "file", s.t)}
    law = TailLaw()
    market = market_from_history(law, ["WETH", "USDC"], hist, default_annual=0.8)
    learned = LearnedRisk(b, LawRisk(law, market, 24.0), feature_rows(hist), source=str(path))
    near, far = learned.p_liq(position(1.05)), learned.p_liq(position(2.0))
    assert 0 <= far <= near <= 1 and not learned.fallbacks
    assert learned.inputs()["model"] == "learned" and "learned model, 24h" in learned.describe()
    # too little history for the features: the tail model answers and the asset is named
    short = {"WETH": History(s.close[-100:], s.low[-100:], "file", s.t[-100:])}
    fallback = LearnedRisk(b, LawRisk(law, market, 24.0), feature_rows(short))
    assert fallback.p_liq(position(1.05)) == LawRisk(law, market, 24.0).p_liq(position(1.05))
    assert fallback.fallbacks == {"WETH"}


def test_config_requires_a_bundle_for_learned_and_existing_files(tmp_path):
    from keeper.config import load_config

    cfg_path = tmp_path / "keeper.toml"
    cfg_path.write_text('[policy]\nmodel = "learned"\n')
    with pytest.raises(ConfigError, match="model_bundle"):
        load_config(cfg_path, env={}, resolve_chains=False)
    cfg_path.write_text('[policy]\nmodel_params = "nope.json"\n')
    with pytest.raises(ConfigError, match=r"policy\.model_params: no file"):
        load_config(cfg_path, env={}, resolve_chains=False)


def test_mc_model_is_built_from_the_same_law(files):
    cfg = Config.model_validate({"policy": {"model": "mc", "mc_paths": 2000, "vols": {"WETH": 0.8}}})
    model, _ = assemble_model(cfg, choose(cfg), ["WETH"], {})
    assert model.kind == "mc" and model.n_paths == 2000
    assert model.law == choose(cfg).law  # the configured law, not another
    tail = LawRisk(model.law, model.market, 24.0)
    p_mc, p_tail = model.p_liq(position(1.15)), tail.p_liq(position(1.15))
    # jumps add up along a path where the closed form counts the largest one: the paths are riskier
    assert 0 < p_tail <= p_mc < 5 * p_tail
    # without jumps the two agree (the t diffusion is exact for a path-wise t mixture)
    calm = McRisk(replace(model.law, lam_u=0.0), model.market, 24.0, n_paths=20_000, steps_per_hour=4)
    p_calm, p_cf = calm.p_liq(position(1.08)), LawRisk(calm.law, model.market, 24.0).p_liq(position(1.08))
    assert math.isclose(p_calm, p_cf, rel_tol=0.25)
