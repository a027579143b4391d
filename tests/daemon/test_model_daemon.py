"""The configured model in the daemon on the devnet: the learned bundle is loaded and checked, falls
back to the tail model with an alert when its features cannot be computed, and every decision names
the model and each asset's vol with its source."""

from __future__ import annotations

import logging

import pytest

from keeper.backtest.training import train
from keeper.config import PolicyConfig
from keeper.daemon.keeper import Keeper
from keeper.errors import ConfigError
from tests.backtest.test_training import write_csv
from tests.daemon.helpers import devnet_config
from tests.devnet.helpers import set_price

pytestmark = [pytest.mark.usefixtures("snapshot"), pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def bundle_24h(tmp_path_factory):
    d = tmp_path_factory.mktemp("bundle")
    csv = write_csv(d / "ETHUSDT_test_1h.csv", n=4800, seed=5)
    return train([csv], 24, d / "models", "2020-05-10", max_iter=25, max_samples=8000)


def _cfg(tmp_path, anvil, devnet, monkeypatch, **policy):
    cfg = devnet_config(tmp_path, anvil.url, devnet, monkeypatch)
    return cfg.model_copy(update={"policy": PolicyConfig(**policy)})


def test_learned_model_refuses_another_horizon(tmp_path, anvil, devnet, monkeypatch, bundle_24h):
    cfg = _cfg(tmp_path, anvil, devnet, monkeypatch, model="learned", model_bundle=bundle_24h, horizon_hours=12)
    k = Keeper(cfg, dry_run=True, vols={"WETH": 0.8, "WBTC": 0.7})
    with pytest.raises(ConfigError, match="24 h horizon"):
        k.startup()
    k.shutdown()


def test_learned_model_falls_back_with_an_alert(tmp_path, anvil, w3, devnet, monkeypatch, bundle_24h, caplog):
    cfg = _cfg(tmp_path, anvil, devnet, monkeypatch, model="learned", model_bundle=bundle_24h)
    k = Keeper(cfg, dry_run=True, vols={"WETH": 0.8, "WBTC": 0.7})
    sent = []
    k.alerter.notify = lambda kind, severity, title, text="", **f: sent.append((kind, text)) or True
    k.startup()
    try:
        assert k.risk.kind == "learned"
        set_price(w3, devnet, "ETH", 1_600)
        with caplog.at_level(logging.INFO, logger="keeper.daemon"):
            k.tick(w3.eth.block_number)
        # the devnet's feeds have minutes of history, not the month the features need
        fallbacks = [t for kind, t in sent if kind == "model_fallback"]
        assert fallbacks and "WETH" in fallbacks[0] and "tail model decided" in fallbacks[0]
        decisions = [r for r in caplog.records if getattr(r, "event", None) == "decision" and hasattr(r, "model")]
        assert decisions  # ETH at 1,600 endangers alice's positions
        for r in decisions:
            assert r.model.startswith("learned model, 24h") and "WETH 80%/yr (override)" in r.model
    finally:
        k.shutdown()


def test_decisions_name_the_model_and_vol_sources(tmp_path, anvil, w3, devnet, monkeypatch, caplog):
    cfg = _cfg(tmp_path, anvil, devnet, monkeypatch, model="tail")
    k = Keeper(cfg, dry_run=True, vols={"WETH": 0.8})
    sent = []
    k.alerter.notify = lambda kind, severity, title, text="", **f: sent.append((kind, text)) or True
    k.startup()
    try:
        # WBTC has neither chain history nor a price file: the default vol, alerted by name
        defaults = [t for kind, t in sent if kind == "model_default"]
        assert any(t.startswith("default vol for WBTC: DEFAULT 80%/yr") for t in defaults)
        assert any("built-in" in t for t in defaults)
        text = k.risk.describe()
        assert text.startswith("tail model, 24h") and "WETH 80%/yr (override)" in text
        assert "WBTC 80%/yr (DEFAULT" in text and "USDC" in text and "stable legs" in text
    finally:
        k.shutdown()
