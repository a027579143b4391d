"""Forecast scores: known values, agreement with scikit-learn, reliability deciles."""

import numpy as np
import pytest
from sklearn import metrics

from keeper.risk.evaluation import (
    auc,
    brier,
    brier_skill,
    expected_calibration_error,
    format_reliability,
    log_loss,
    reliability_table,
    scores,
)


def test_known_values():
    p = np.array([0.1, 0.9, 0.5, 0.0])
    y = np.array([0, 1, 1, 0])
    assert brier(p, y) == pytest.approx((0.01 + 0.01 + 0.25 + 0) / 4)
    assert log_loss(p, y) == pytest.approx(metrics.log_loss(y, np.clip(p, 1e-6, 1 - 1e-6)))
    assert auc(p, y) == pytest.approx(1.0)
    assert np.isnan(auc(p, np.zeros(4)))
    assert brier_skill(p, y, p) == pytest.approx(0.0)
    assert brier_skill(y.astype(float), y, p) == pytest.approx(1.0)
    assert brier_skill(np.full(4, 0.5), y, p) < 0


def test_against_sklearn_on_random_forecasts():
    rng = np.random.default_rng(0)
    p = rng.random(5000)
    y = (rng.random(5000) < p).astype(float)
    assert brier(p, y) == pytest.approx(metrics.brier_score_loss(y, p))
    assert auc(p, y) == pytest.approx(metrics.roc_auc_score(y, p))
    assert log_loss(p, y) == pytest.approx(metrics.log_loss(y, p), rel=1e-6)


def test_reliability_deciles_of_a_calibrated_forecast():
    rng = np.random.default_rng(1)
    p = rng.random(100_000) ** 2
    y = (rng.random(100_000) < p).astype(float)
    table = reliability_table(p, y)
    assert len(table) == 10 and sum(b.count for b in table) == 100_000
    assert all(b.count == 10_000 for b in table)
    assert all(b.lo <= b.mean_pred <= b.hi for b in table)
    assert [b.mean_pred for b in table] == sorted(b.mean_pred for b in table)
    assert expected_calibration_error(table) < 0.01
    skewed = reliability_table(p * 0.5, y)
    assert expected_calibration_error(skewed) > 0.1
    text = format_reliability(table, "deciles")
    assert text.splitlines()[0] == "deciles" and len(text.splitlines()) == 12


def test_ties_are_not_split_and_scores_dict():
    p = np.r_[np.full(50, 0.01), np.full(50, 0.3)]
    y = np.r_[np.zeros(49), 1, np.ones(15), np.zeros(35)]
    table = reliability_table(p, y)
    assert [b.count for b in table] == [50, 50]
    assert table[1].observed == pytest.approx(0.3)
    s = scores(p, y, np.full(100, y.mean()))
    assert set(s) >= {"brier", "log_loss", "auc", "ece", "reliability", "brier_skill", "n", "event_rate"}
    assert s["n"] == 100 and s["brier_skill"] > 0


@pytest.mark.parametrize("p,y", [([0.5], [2]), ([1.5], [1]), ([np.nan], [0]), ([], []), ([0.1, 0.2], [1])])
def test_bad_inputs(p, y):
    with pytest.raises(ValueError):
        brier(np.array(p, dtype=float), np.array(y, dtype=float))
