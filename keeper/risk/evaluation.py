"""Scores for probability forecasts of a binary event: Brier, log-loss, ROC AUC, Brier skill,
and a reliability table per decile of the forecast (over every forecast, and over the low-P region
alone, where a keeper's decisions are made). Pure numpy (and scikit-learn for the AUC)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

EPS = 1e-6
LOW_P = 0.05          # forecasts below this are the "low-P region", tabulated on their own
GOAL_GAP = 0.03       # calibration goal: |mean forecast - observed| within 3 points in every decile


def _check(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if len(p) != len(y) or len(p) == 0:
        raise ValueError("p and y must be non-empty and of one length")
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must be finite and within [0, 1]")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("outcomes must be 0 or 1")
    return p, y


def brier(p: np.ndarray, y: np.ndarray) -> float:
    """Mean squared error of the probabilities (0 is perfect)."""
    p, y = _check(p, y)
    return float(np.mean((p - y) ** 2))


def log_loss(p: np.ndarray, y: np.ndarray, eps: float = EPS) -> float:
    """Mean negative log-likelihood (natural log), probabilities clipped to [eps, 1-eps]."""
    p, y = _check(p, y)
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def auc(p: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class occurs."""
    p, y = _check(p, y)
    if y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, p))


def brier_skill(p: np.ndarray, y: np.ndarray, p_ref: np.ndarray) -> float:
    """1 - Brier(p) / Brier(reference): 1 is perfect, 0 is no better than the reference, < 0 worse."""
    ref = brier(p_ref, y)
    return float("nan") if ref == 0 else 1.0 - brier(p, y) / ref


@dataclass(frozen=True)
class ReliabilityBin:
    lo: float           # forecast range of the bin
    hi: float
    count: int
    mean_pred: float
    observed: float     # frequency of the event among the bin's samples


def reliability_table(p: np.ndarray, y: np.ndarray, n_bins: int = 10) -> list[ReliabilityBin]:
    """Samples sorted by forecast and cut into ``n_bins`` groups of (nearly) equal count (deciles
    by default); equal forecasts are never split across bins, so a bin may be larger or empty-merged."""
    p, y = _check(p, y)
    order = np.argsort(p, kind="stable")
    ps, ys = p[order], y[order]
    edges = np.unique(np.searchsorted(ps, np.quantile(ps, np.linspace(0, 1, n_bins + 1)[1:-1]), side="right"))
    out = []
    for part_p, part_y in zip(np.split(ps, edges), np.split(ys, edges)):
        if len(part_p) == 0:
            continue
        out.append(ReliabilityBin(lo=float(part_p[0]), hi=float(part_p[-1]), count=len(part_p),
                                  mean_pred=float(part_p.mean()), observed=float(part_y.mean())))
    return out


def expected_calibration_error(table: list[ReliabilityBin]) -> float:
    """Count-weighted mean |mean_pred - observed| over the bins."""
    n = sum(b.count for b in table)
    return float(sum(b.count * abs(b.mean_pred - b.observed) for b in table) / n) if n else float("nan")


def table_rows(table: list[ReliabilityBin]) -> list[dict[str, Any]]:
    """JSON-ready bins, each with ``gap_pts``: |mean_pred - observed| in percentage points."""
    return [{**asdict(b), "gap_pts": 100.0 * abs(b.mean_pred - b.observed)} for b in table]


def max_gap(table: list[ReliabilityBin] | list[dict[str, Any]]) -> float:
    """Largest |mean_pred - observed| over the bins (a fraction, not points)."""
    rows = [b if isinstance(b, dict) else asdict(b) for b in table]
    return max((abs(b["mean_pred"] - b["observed"]) for b in rows), default=float("nan"))


def low_p_summary(p: np.ndarray, y: np.ndarray, cut: float = LOW_P, n_bins: int = 10) -> dict[str, Any]:
    """The forecasts below ``cut`` alone: their count, mean forecast, observed frequency, their own
    deciles (``reliability``), the largest gap in points, and the smallest and largest forecast /
    observed ratio over the deciles that saw at least one event (``min_ratio``, ``max_ratio``; a
    decile without an event has no ratio: ``eventless_bins`` counts them)."""
    p, y = _check(p, y)
    low = p < cut
    out: dict[str, Any] = {"cut": cut, "n": int(low.sum())}
    if not low.any():
        return out
    table = reliability_table(p[low], y[low], n_bins)
    ratios = [b.mean_pred / b.observed for b in table if b.observed > 0]
    out.update(mean_pred=float(p[low].mean()), observed=float(y[low].mean()),
               max_gap_pts=100.0 * max_gap(table), min_ratio=min(ratios, default=float("nan")),
               max_ratio=max(ratios, default=float("nan")), eventless_bins=len(table) - len(ratios),
               reliability=table_rows(table))
    return out


def scores(p: np.ndarray, y: np.ndarray, p_ref: np.ndarray | None = None, n_bins: int = 10) -> dict[str, Any]:
    """All scores of one forecast as a JSON-ready dict (``brier_skill`` when a reference is given):
    the deciles' reliability table and its largest gap (``max_gap_pts``, ``calibrated``: within
    ``GOAL_GAP`` in every decile), and the same for the low-P region (``low_p``)."""
    table = reliability_table(p, y, n_bins)
    gap = max_gap(table)
    out = {"n": len(np.ravel(y)), "event_rate": float(np.mean(y)), "brier": brier(p, y),
           "log_loss": log_loss(p, y), "auc": auc(p, y), "ece": expected_calibration_error(table),
           "reliability": table_rows(table), "max_gap_pts": 100.0 * gap, "calibrated": bool(gap <= GOAL_GAP),
           "low_p": low_p_summary(p, y, n_bins=n_bins)}
    if p_ref is not None:
        out["brier_skill"] = brier_skill(p, y, p_ref)
    return out


def format_reliability(table: list[ReliabilityBin] | list[dict[str, Any]], title: str = "") -> str:
    """A plain-text reliability table."""
    rows = [b if isinstance(b, dict) else asdict(b) for b in table]
    lines = [title] if title else []
    lines.append(f"{'bin':>3} {'forecast range':>17} {'count':>8} {'mean P':>8} {'observed':>8} {'|gap| pts':>9}")
    for i, b in enumerate(rows, 1):
        gap = 100.0 * abs(b["mean_pred"] - b["observed"])
        lines.append(f"{i:>3} {b['lo']:>8.5f}-{b['hi']:<8.5f} {b['count']:>8d} {b['mean_pred']:>8.5f} "
                     f"{b['observed']:>8.5f} {gap:>9.2f}")
    return "\n".join(lines)
