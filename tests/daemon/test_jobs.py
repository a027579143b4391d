"""The daemon's slow jobs on the devnet: the refit keeps the model on too little history and, after
a run of hourly feed updates, raises the vol of the asset that swung and lowers the calm one's;
the stress report logs P(liq) per position per horizon and sets its gauges; both run on their
schedule inside ``keeper run`` and a failing job is logged and counted, never fatal. Plus the pure
resampling under them."""

from __future__ import annotations

import logging

import pytest

from keeper.daemon import jobs
from keeper.daemon.keeper import Keeper
from keeper.risk.refit import bucket_closes
from tests.daemon.helpers import devnet_config, running, wait_for
from tests.devnet.helpers import set_price

pytestmark = [pytest.mark.usefixtures("snapshot"), pytest.mark.timeout(300)]


# --- pure -------------------------------------------------------------------------------------
def test_bucket_closes_takes_the_last_price_per_hour_and_carries_it_forward():
    t = [7300, 10, 3500, 3700, 11000, 0]  # unsorted; hour 1 has one price, hour 2 none
    p = [5.0, 2.0, 3.0, 4.0, 6.0, 1.0]
    assert bucket_closes(t, p, 3600).tolist() == [3.0, 4.0, 5.0, 6.0]
    assert bucket_closes([0, 3600, 3600 * 3], [1.0, 2.0, 3.0]).tolist() == [1.0, 2.0, 2.0, 3.0]
    assert bucket_closes([], []).size == 0
    assert bucket_closes([0, 10], [0.0, 2.0]).tolist() == [2.0]  # a zero answer is not a price


# --- on the devnet ----------------------------------------------------------------------------
def _hourly_swings(w3, devnet, hours: int) -> None:
    """ETH swings +-6% and BTC +-0.1% every hour for ``hours`` hours (anvil's clock moved on)."""
    for i in range(hours):
        w3.provider.make_request("evm_increaseTime", [3600])
        up = i % 2 == 0
        set_price(w3, devnet, "ETH", 2_000 * (1.06 if up else 0.94))
        set_price(w3, devnet, "BTC", 30_000 * (1.001 if up else 0.999))
    set_price(w3, devnet, "USDC", 1.0)  # fresh within its heartbeat


def test_refit_keeps_the_model_on_little_history_then_follows_the_feeds(tmp_path, anvil, w3, devnet, monkeypatch,
                                                                        caplog):
    cfg = devnet_config(tmp_path, anvil.url, devnet, monkeypatch, refit_min_returns=24)
    k = Keeper(cfg, dry_run=True)  # no --vol: the default 80%/yr to start with
    k.startup()
    try:
        old_risk = k.risk
        first = jobs.refit(k)
        assert first["kept"] and first["why"] == "no snapshot stored yet" and k.risk is old_risk
        k.tick(w3.eth.block_number)
        with caplog.at_level(logging.INFO, logger="keeper.daemon.jobs"):
            kept = jobs.refit(k)
        assert kept["kept"]  # still too little history: the default, named as such
        weth = kept["new"]["WETH"]
        assert weth["annual"] == pytest.approx(0.8) and weth["source"].startswith("DEFAULT 80%/yr")
        assert "Chainlink rounds" in weth["source"]
        assert any(getattr(r, "event", None) == "refit" and r.kept for r in caplog.records)

        _hourly_swings(w3, devnet, 30)
        k.tick(w3.eth.block_number)
        target = next(p for p in k.reader.read().positions if p.protocol.value == "morpho_blue")
        p_before = old_risk.p_liq(target)
        report = jobs.refit(k)
        assert not report["kept"]
        new = report["new"]
        assert report["old"]["WETH"]["annual"] == pytest.approx(0.8)
        assert new["WETH"]["annual"] > 3  # ~ the EWMA of log(1.06/0.94) swings * sqrt(8760)
        assert new["WBTC"]["annual"] < 0.5  # calm: the vol comes down
        assert new["USDC"]["annual"] == 0 and new["USDC"]["source"].startswith("stable leg")
        assert "Chainlink rounds" in new["WETH"]["source"] and not new["WETH"]["source"].startswith("DEFAULT")
        assert k.risk is not old_risk and k.risk.inputs()["vols"] == new
        assert k.risk.p_liq(target) > p_before  # the new model sees the storm
        assert "WETH" in report["model"] and "tail model" in report["model"]
        gauge = k.metrics.registry.get_sample_value("keeper_model_annual_vol", {"chain": "devnet", "symbol": "WETH"})
        assert gauge == pytest.approx(new["WETH"]["annual"])
    finally:
        k.shutdown()


def test_refit_never_overrides_the_operators_vols(tmp_path, anvil, w3, devnet, monkeypatch):
    cfg = devnet_config(tmp_path, anvil.url, devnet, monkeypatch, refit_min_returns=24)
    k = Keeper(cfg, dry_run=True, vols={"WETH": 0.5})
    k.startup()
    try:
        _hourly_swings(w3, devnet, 30)
        k.tick(w3.eth.block_number)
        report = jobs.refit(k)
        assert report["new"]["WETH"] == {"annual": pytest.approx(0.5), "source": "override"}
        assert report["new"]["WBTC"]["annual"] < 0.5  # the others are refitted
    finally:
        k.shutdown()


def test_stress_report_logs_every_position_and_sets_gauges(tmp_path, anvil, w3, devnet, monkeypatch, caplog):
    cfg = devnet_config(tmp_path, anvil.url, devnet, monkeypatch, stress_horizons_h=[24, 4], stress_paths=2000)
    k = Keeper(cfg, dry_run=True, vols={"WETH": 0.8, "WBTC": 0.7})
    k.startup()
    try:
        assert jobs.stress(k) is None  # no snapshot stored yet
        set_price(w3, devnet, "ETH", 1_560)  # close to the edge
        k.tick(w3.eth.block_number)
        positions = {p.key: p for p in k.read_all().positions}
        with caplog.at_level(logging.INFO, logger="keeper.daemon.jobs"):
            line = jobs.stress(k)
        logged = [r for r in caplog.records if getattr(r, "event", None) == "stress"]
        assert len(logged) == 1 and logged[0].positions == line["positions"]
        assert line["horizons_h"] == [4, 24] and line["paths"] == 2000
        assert {r["position"] for r in line["positions"]} == set(positions)
        for r in line["positions"]:
            assert 0 <= r["p_liq"]["4"] <= r["p_liq"]["24"] <= 1
        worst = line["worst"]
        assert worst[0]["p_liq"] == max(r["p_liq"]["24"] for r in line["positions"]) and worst[0]["p_liq"] > 0.2
        p = positions[worst[0]["position"]]
        g = k.metrics.registry.get_sample_value("keeper_stress_pliq", {
            "chain": "devnet", "protocol": str(p.protocol), "account": p.account, "market": p.market,
            "horizon_h": "24"})
        assert g == pytest.approx(worst[0]["p_liq"])
    finally:
        k.shutdown()


def test_a_failing_job_is_logged_and_counted_not_raised(tmp_path, anvil, devnet, monkeypatch, caplog):
    k = Keeper(devnet_config(tmp_path, anvil.url, devnet, monkeypatch), dry_run=True)

    def broken(_k):
        raise RuntimeError("the model file is corrupt")

    with caplog.at_level(logging.ERROR, logger="keeper.daemon.jobs"):
        jobs.guarded(k, "refit", broken)()
    assert k.metrics.registry.get_sample_value("keeper_job_failures_total", {"job": "refit"}) == 1.0
    errors = [r.error for r in caplog.records if getattr(r, "event", None) == "job_failed"]
    assert errors == ["the model file is corrupt"]
    assert not k.stop.is_set()


def test_jobs_run_on_their_schedule_in_the_daemon(tmp_path, anvil, w3, devnet, monkeypatch):
    cfg = devnet_config(tmp_path, anvil.url, devnet, monkeypatch, refit_interval_s=1, stress_interval_s=1,
                        stress_paths=500)
    k = Keeper(cfg, dry_run=True, vols={"WETH": 0.8, "WBTC": 0.7})

    def runs(job: str) -> float:
        return k.metrics.registry.get_sample_value("keeper_job_runs_total", {"job": job}) or 0.0

    with running(k, w3):
        wait_for(lambda: runs("refit") >= 2 and runs("stress") >= 2 and k.ticks >= 2, 30, "jobs and ticks")
    assert k.halted is None
    for job in ("refit", "stress"):
        assert not k.metrics.registry.get_sample_value("keeper_job_failures_total", {"job": job})


def test_job_config_is_validated():
    from pydantic import ValidationError

    from keeper.config import DaemonConfig

    assert DaemonConfig().refit_interval_s == 86_400 and DaemonConfig().stress_interval_s == 3600
    assert DaemonConfig(stress_horizons_h=[24, 1, 4, 4]).stress_horizons_h == [1, 4, 24]
    for bad in ({"stress_horizons_h": [0]}, {"stress_horizons_h": []}, {"refit_interval_s": 0},
                {"refit_lambda": 1.0}, {"stress_paths": 10}):
        with pytest.raises(ValidationError):
            DaemonConfig(**bad)
