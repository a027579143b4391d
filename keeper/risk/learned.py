"""The learned P(liquidation within h): gradient boosting, calibrated on a later time slice.

Pure: scikit-learn and numpy. Saving and loading (joblib) live in ``keeper.backtest.training``.

* Estimator: ``HistGradientBoostingClassifier`` with a monotone (non-increasing) constraint on the
  distance features, so a position further from its liquidation price never gets a higher P.
* Calibration (``calibration="isotonic"`` or ``"sigmoid"`` (Platt), fitted on out-of-time
  predictions, never on in-sample ones):
  - ``scheme="forward"`` (default): the samples are cut into ``n_folds`` blocks in time; for each
    block after the first a booster is fitted on the blocks *before* it (purged by one horizon, so
    overlapping label windows do not leak) and predicts it; the calibrator is fitted on those
    forward predictions, and the final booster on every sample. The calibrator thus sees several
    regimes, and every prediction it learns from was made the way the live model makes them.
  - ``scheme="holdout"``: booster on the early ``1 - calib_fraction`` of the time range (purged),
    calibrator on the last slice. Cheaper, but the calibrator learns one regime only (on ETH/BTC
    2018-2020 the last slice, a calm 2020, made the model under-predict 2021-2022).
  Isotonic and Platt maps are non-decreasing, so the monotone constraint survives calibration.
  (``CalibratedClassifierCV`` shuffles K folds, which leaks across overlapping label windows of a
  time series, and its ``cv="prefit"`` mode is gone from scikit-learn 1.9.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from keeper.risk.features import DEFAULT_FEATURES, DISTANCE_FEATURES

P_MIN, P_MAX = 1e-5, 1.0 - 1e-5


class LearnedPLiq:
    """Calibrated classifier of "crossed the liquidation price within ``horizon_hours``"."""

    def __init__(self, horizon_hours: int, *, feature_names: Sequence[str] = DEFAULT_FEATURES,
                 calibration: str = "isotonic", scheme: str = "forward", n_folds: int = 4,
                 calib_fraction: float = 0.25, max_iter: int = 300,
                 learning_rate: float = 0.06, max_leaf_nodes: int = 31, min_samples_leaf: int = 200,
                 l2_regularization: float = 1.0, random_state: int = 0,
                 decreasing: Sequence[str] | None = None) -> None:
        if calibration not in ("isotonic", "sigmoid", "none"):
            raise ValueError("calibration must be 'isotonic', 'sigmoid' or 'none'")
        if scheme not in ("forward", "holdout"):
            raise ValueError("scheme must be 'forward' or 'holdout'")
        if n_folds < 2:
            raise ValueError("n_folds must be >= 2")
        if not 0.0 < calib_fraction < 1.0:
            raise ValueError("calib_fraction must be in (0, 1)")
        self.horizon_hours = int(horizon_hours)
        self.feature_names = tuple(feature_names)
        # Features P(liq) must not increase with (the distance ones); None: those of DISTANCE_FEATURES present.
        self.decreasing = tuple(name for name in (DISTANCE_FEATURES if decreasing is None else decreasing)
                                if name in self.feature_names)
        self.calibration = calibration
        self.scheme = scheme
        self.n_folds = int(n_folds)
        self.calib_fraction = calib_fraction
        self.params = {"max_iter": max_iter, "learning_rate": learning_rate, "max_leaf_nodes": max_leaf_nodes,
                           "min_samples_leaf": min_samples_leaf, "l2_regularization": l2_regularization,
                           "random_state": random_state}
        self.train_hash: str | None = None
        self.trained_on: tuple[str, str] | None = None
        self.estimator_: HistGradientBoostingClassifier | None = None
        self.calibrator_: IsotonicRegression | LogisticRegression | None = None
        self.n_train_: int = 0
        self.base_rate_: float = float("nan")

    # ------------------------------------------------------------------------------------ fitting
    def _monotonic_cst(self) -> list[int]:
        return [-1 if name in self.decreasing else 0 for name in self.feature_names]

    def _new_estimator(self) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(monotonic_cst=self._monotonic_cst(), early_stopping=False,
                                              **self.params)

    def fit(self, X: np.ndarray, y: np.ndarray, t: np.ndarray | None = None,
            sample_weight: np.ndarray | None = None) -> LearnedPLiq:
        """Fit on samples ``X`` (columns ``feature_names``), labels ``y`` in {0, 1}.

        ``t``: the samples' decision times (any monotone unit, e.g. epoch seconds); without it the
        rows are taken to be in time order already, one hour apart per row at most.
        ``sample_weight``: weights for the boosters only; the calibrator is fitted unweighted, so
        the calibrated P stays a frequency of the samples as drawn."""
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise ValueError(f"X must have {len(self.feature_names)} columns ({', '.join(self.feature_names)})")
        if len(y) != len(X) or not np.all((y == 0) | (y == 1)):
            raise ValueError("y must be 0/1 with one label per row")
        if len(np.unique(y)) < 2:
            raise ValueError("need both crossed and not-crossed samples to fit")
        if t is None:
            order = np.arange(len(X))
            t_sorted = order.astype(float) * 3600.0
        else:
            order = np.argsort(np.asarray(t), kind="stable")
            t_sorted = np.asarray(t, dtype=float)[order]
        X, y = X[order], y[order]
        if sample_weight is None:
            w = np.ones(len(y))
        else:
            w = np.asarray(sample_weight, dtype=float)
            if w.shape != y.shape or np.any(~np.isfinite(w)) or np.any(w < 0):
                raise ValueError("sample_weight must be finite, >= 0, one per row")
            w = w[order]
        self.n_train_, self.base_rate_ = len(y), float(y.mean())
        if self.calibration == "none":
            self.estimator_ = self._new_estimator().fit(X, y.astype(int), sample_weight=w)
            self.calibrator_ = None
            return self
        if self.scheme == "holdout":
            cut_t = np.quantile(t_sorted, 1.0 - self.calib_fraction)
            fit_rows = t_sorted + self.horizon_hours * 3600.0 <= cut_t   # purge: label window ends before the cut
            cal_rows = t_sorted >= cut_t
            if len(np.unique(y[fit_rows])) < 2 or len(np.unique(y[cal_rows])) < 2:
                raise ValueError("both time slices (fit, calibration) need crossed and not-crossed samples")
            self.estimator_ = self._new_estimator().fit(X[fit_rows], y[fit_rows].astype(int),
                                                        sample_weight=w[fit_rows])
            raw, y_cal = self.estimator_.predict_proba(X[cal_rows])[:, 1], y[cal_rows]
        else:
            raw, y_cal = self._forward_predictions(X, y, t_sorted, w)
            self.estimator_ = self._new_estimator().fit(X, y.astype(int), sample_weight=w)
        self._fit_calibrator(raw, y_cal)
        return self

    def _forward_predictions(self, X: np.ndarray, y: np.ndarray, t: np.ndarray,
                             w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Out-of-time predictions of each block after the first by a booster fitted on the earlier blocks."""
        edges = np.quantile(t, np.linspace(0.0, 1.0, self.n_folds + 1))
        raws, ys = [], []
        for k in range(1, self.n_folds):
            lo, hi = edges[k], edges[k + 1]
            past = t + self.horizon_hours * 3600.0 <= lo
            block = (t >= lo) & ((t < hi) if k < self.n_folds - 1 else (t <= hi))
            if len(np.unique(y[past])) < 2 or not block.any():
                continue
            est = self._new_estimator().fit(X[past], y[past].astype(int), sample_weight=w[past])
            raws.append(est.predict_proba(X[block])[:, 1])
            ys.append(y[block])
        if not raws or len(np.unique(np.concatenate(ys))) < 2:
            raise ValueError("too little history for forward calibration (need both outcomes in later blocks)")
        return np.concatenate(raws), np.concatenate(ys)

    def _fit_calibrator(self, raw: np.ndarray, y_cal: np.ndarray) -> None:
        if self.calibration == "isotonic":
            self.calibrator_ = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
            self.calibrator_.fit(raw, y_cal)
        else:
            self.calibrator_ = LogisticRegression(C=1e6).fit(_logit(raw)[:, None], y_cal.astype(int))

    # --------------------------------------------------------------------------------- predicting
    def raw_proba(self, X: np.ndarray) -> np.ndarray:
        """The booster's uncalibrated probability."""
        if self.estimator_ is None:
            raise RuntimeError("model is not fitted")
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise ValueError(f"X must have {len(self.feature_names)} columns")
        raw: np.ndarray = self.estimator_.predict_proba(X)[:, 1]
        return raw

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Calibrated P(cross within the horizon), one value per row, clipped to [1e-5, 1-1e-5]."""
        raw = self.raw_proba(X)
        if self.calibrator_ is None:
            p = raw
        elif isinstance(self.calibrator_, IsotonicRegression):
            p = self.calibrator_.predict(raw)
        else:
            p = self.calibrator_.predict_proba(_logit(raw)[:, None])[:, 1]
        clipped: np.ndarray = np.clip(np.asarray(p, dtype=float), P_MIN, P_MAX)
        return clipped

    def describe(self) -> dict[str, Any]:
        return {"horizon_hours": self.horizon_hours, "features": list(self.feature_names),
                "calibration": self.calibration, "scheme": self.scheme,
                "decreasing": list(getattr(self, "decreasing", DISTANCE_FEATURES)), "n_train": self.n_train_,
                "base_rate": self.base_rate_,
                "train_hash": self.train_hash, "trained_on": self.trained_on, **self.params}


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    logit: np.ndarray = np.log(p / (1 - p))
    return logit
