"""Train, save, load and evaluate the learned P(liquidation within h) on price history.

The I/O side of ``keeper.risk.{features,labels,learned,evaluation}``: reads price files, hashes
them, saves the model with joblib, and runs the time-split evaluation against two baselines:

* ``static``: the static ratio rule made probabilistic: the historical frequency of crossing within
  h at each distance of the grid, measured on the *training* period only (one constant per
  distance, blind to the market state);
* ``analytic_ewma``: the analytic first-passage probability of a driftless random walk with the
  EWMA(0.94) hourly vol, sqrt-of-time scaled, continuously monitored
  (``keeper.risk.probability.first_passage_probability``).

Leakage rules: a training sample's label window (bars i+1..i+h) ends before the split; evaluation
samples start at ``test_from`` (their features may use older history, which is past information).

The bundle (a dict saved with joblib by :func:`train`, read back by :func:`load_model`). Keys a
consumer (the daemon) may rely on:

* ``format``: ``BUNDLE_FORMAT`` (1);
* ``model``: the fitted ``keeper.risk.learned.LearnedPLiq`` (``predict_proba(X)`` -> P per row);
* ``horizon_hours``: int, the horizon the labels looked ahead (bars of ``step`` seconds, 1 h on
  hourly data); the model answers P(cross within exactly that horizon) and nothing else;
* ``feature_names``: the model's input columns, in order: names of
  ``keeper.risk.features.FEATURE_NAMES``; build a row with ``features.assemble`` (which returns every
  ``FEATURE_NAMES`` column) and pick these columns by name, in this order;
* ``train_window``: ``{"first_decision", "last_decision"}`` (UTC, ``YYYY-MM-DD HH:MM:SS``: the first
  and last decision times of a training sample), ``"split"`` (the exclusive end given to
  ``train``, or None: all the data) and ``"last_label_bar"`` (the close of the last bar any label
  looked at, < split);
* ``data_hash``: sha256 over the price files' bytes only (in the order given);
* ``train_hash``: sha256 over the files and the training parameters (names the bundle file);
* ``trained_on``: (first, last) decision time, the same as ``train_window``'s; ``split``;
  ``files``: the price files' names; ``symbols``; ``params``; ``sklearn_version``;
* ``distances``, ``static_freq``: the evaluation grid and the static baseline's crossing frequency
  per grid distance on the training period; ``n_samples``, ``event_rate``, ``fit_seconds``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np
import sklearn
from threadpoolctl import threadpool_limits

from keeper.backtest.prices import PriceSeries, load_prices
from keeper.errors import ConfigError
from keeper.risk import evaluation as ev
from keeper.risk.features import (
    DEFAULT_FEATURES,
    FEATURE_NAMES,
    MARKET_NAMES,
    assemble,
    market_features,
    valid_rows,
)
from keeper.risk.labels import (
    DEFAULT_DISTANCES,
    future_min_low,
    label_grid,
    sample_positions,
)
from keeper.risk.learned import LearnedPLiq
from keeper.risk.probability import first_passage_probability
from keeper.risk.recipes import DEFAULT_MAX_ITER, DEFAULT_MAX_LEAF_NODES, DEFAULT_MIN_SAMPLES_LEAF

if TYPE_CHECKING:
    from keeper.risk.laws import Law

BUNDLE_FORMAT = 1
DEFAULT_SPLIT = "2021-01-01"
DISTANCE_BANDS = ((0.0, 0.05), (0.05, 0.15), (0.15, 1.0))   # report breakdown by distance to liquidation


@dataclass(frozen=True)
class Samples:
    X: np.ndarray          # features, columns FEATURE_NAMES
    y: np.ndarray          # 1.0 crossed within h, 0.0 not
    t: np.ndarray          # decision time (bar close), epoch seconds
    didx: np.ndarray       # index into the distance grid
    sigma: np.ndarray      # EWMA(0.94) hourly vol at the decision
    symbol: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


def _epoch(value: str | int) -> int:
    """ISO date (``YYYY-MM-DD[ HH:MM[:SS]]``, UTC) or epoch seconds -> epoch seconds."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    try:
        return int(np.datetime64(str(value).strip().replace(" ", "T"), "s").astype(np.int64))
    except ValueError as e:
        raise ConfigError(f"bad date {value!r}", hint="use YYYY-MM-DD") from e


def _iso(epoch: float) -> str:
    return str(np.datetime64(int(epoch), "s")).replace("T", " ")


def data_hash(paths: Sequence[Path | str], params: dict[str, Any]) -> str:
    """sha256 of every input file's bytes (in the order given) and of the training parameters."""
    h = _hash_files(paths)
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    return h.hexdigest()


def files_hash(paths: Sequence[Path | str]) -> str:
    """sha256 of the price files' bytes only (in the order given): the bundle's ``data_hash``."""
    return _hash_files(paths).hexdigest()


def _hash_files(paths: Sequence[Path | str]) -> hashlib._Hash:
    h = hashlib.sha256()
    for p in paths:
        try:
            data = Path(p).read_bytes()
        except OSError as e:
            raise ConfigError(f"cannot read price file {p}: {e.strerror}") from e
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h


def _rows_in(s: PriceSeries, market: np.ndarray, horizon: int, start: int | None, end: int | None,
             label_inside: bool) -> np.ndarray:
    """Bars usable as decisions in [start, end): past the warm-up, with a full label window (ending
    before ``end`` when ``label_inside``)."""
    ok = valid_rows(market)
    ok[max(len(s) - horizon, 0):] = False
    decided = s.t + s.step
    if start is not None:
        ok &= decided >= start
    if end is not None:
        last_bar_close = decided + horizon * s.step
        ok &= (last_bar_close <= end) if label_inside else (decided < end)
    return np.flatnonzero(ok)


def build_samples(series: Sequence[PriceSeries], horizon: int, *, start: str | int | None = None,
                  end: str | int | None = None, distances: np.ndarray = DEFAULT_DISTANCES,
                  per_row: int | None = None, max_samples: int | None = None, seed: int = 0,
                  label_inside: bool = True) -> Samples:
    """Samples from every series: positions at the grid distances below each usable bar's close.
    ``per_row`` random distances per bar (all when None); at most ``max_samples`` per series."""
    rng = np.random.default_rng(seed)
    lo = None if start is None else _epoch(start)
    hi = None if end is None else _epoch(end)
    parts = []
    for s in series:
        market = market_features(s.t, s.close, s.high, s.low, step=s.step)
        rows = _rows_in(s, market, horizon, lo, hi, label_inside)
        r, d = sample_positions(rows, len(distances), per_row or len(distances), rng, max_samples)
        fmin = future_min_low(s.low, horizon)
        y = (fmin[r] <= s.close[r] * (1.0 - distances[d])).astype(float)
        X = assemble(market, r, distances[d], horizon)
        sigma = market[r, MARKET_NAMES.index("ewma_vol_094")]
        parts.append((X, y, s.t[r] + s.step, d, sigma, np.full(len(r), s.symbol)))
    if not parts or sum(len(p[1]) for p in parts) == 0:
        raise ConfigError("no usable samples in that period (too short for the 30-day warm-up "
                          "and the horizon?)")
    cat = [np.concatenate([p[k] for p in parts]) for k in range(6)]
    order = np.argsort(cat[2], kind="stable")
    return Samples(*(c[order] for c in cat))


def static_frequencies(series: Sequence[PriceSeries], horizon: int, end: str | int | None,
                       distances: np.ndarray = DEFAULT_DISTANCES) -> np.ndarray:
    """Crossing frequency per grid distance over every usable bar before ``end`` (all series pooled)."""
    hi = None if end is None else _epoch(end)
    hits = np.zeros(len(distances))
    count = 0
    for s in series:
        market = market_features(s.t, s.close, s.high, s.low, step=s.step)
        rows = _rows_in(s, market, horizon, None, hi, True)
        grid = label_grid(s.close, s.low, horizon, distances)[rows]
        hits += grid.sum(axis=0)
        count += len(rows)
    if count == 0:
        raise ConfigError("no training bars for the static baseline")
    # A pseudo-count keeps unseen events at a small positive probability.
    return (hits + 0.5) / (count + 1.0)


def train(paths: Sequence[Path | str], horizon_hours: int, out_dir: Path | str, split_date: str | None = None,
          *, per_row: int = 6, max_samples: int = 150_000, seed: int = 0, max_iter: int = DEFAULT_MAX_ITER,
          calibration: str = "isotonic", scheme: str = "forward", threads: int | None = 1,
          features: Sequence[str] | None = None, model_params: dict[str, Any] | None = None) -> Path:
    """Fit the learned model on bars before ``split_date`` (all bars when None) and save a bundle.
    Returns the bundle's path (``out_dir/pliq_<h>h_<hash12>.joblib``). ``threads`` caps OpenMP
    (None: all cores; 1 is the fastest on a busy machine, where OpenMP spin-waiting thrashes).
    ``features``: the model's inputs, names of ``FEATURE_NAMES`` (default ``DEFAULT_FEATURES``);
    ``model_params``: further ``LearnedPLiq`` arguments (default: the recipe's ``max_leaf_nodes``
    and ``min_samples_leaf``, ``DEFAULT_*`` above)."""
    if horizon_hours < 1:
        raise ConfigError(f"horizon must be at least 1 hour, not {horizon_hours}")
    names = list(DEFAULT_FEATURES if features is None else features)
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown or not names or len(set(names)) != len(names):
        raise ConfigError(f"bad feature list {names}: unknown {unknown or 'none'}, or empty, or repeated",
                          hint="choose among: " + ", ".join(FEATURE_NAMES))
    cols = [FEATURE_NAMES.index(n) for n in names]
    files = [Path(p) for p in paths]
    extra: dict[str, Any] = {"max_leaf_nodes": DEFAULT_MAX_LEAF_NODES, "min_samples_leaf": DEFAULT_MIN_SAMPLES_LEAF}
    extra.update(model_params or {})
    params = {"horizon_hours": int(horizon_hours), "split": split_date, "per_row": per_row,
              "max_samples": max_samples, "seed": seed, "max_iter": max_iter, "calibration": calibration,
              "scheme": scheme,
              "distances": [float(d) for d in DEFAULT_DISTANCES], "features": names,
              "files": [p.name for p in files], "model_params": extra}
    digest = data_hash(files, params)
    series = load_prices(files, aligned=False)
    t0 = time.perf_counter()
    samples = build_samples(series, horizon_hours, end=split_date, per_row=per_row,
                            max_samples=max_samples, seed=seed)
    try:
        model = LearnedPLiq(horizon_hours, feature_names=names, calibration=calibration, scheme=scheme,
                            max_iter=max_iter, random_state=seed, **extra)
        with threadpool_limits(threads):
            model.fit(samples.X[:, cols], samples.y, samples.t)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"cannot train on these prices: {e}") from e
    model.train_hash = digest
    model.trained_on = (_iso(samples.t.min()), _iso(samples.t.max()))
    step = series[0].step if series else 3600
    window = {"first_decision": model.trained_on[0], "last_decision": model.trained_on[1], "split": split_date,
              "last_label_bar": _iso(samples.t.max() + horizon_hours * step)}
    bundle = {"format": BUNDLE_FORMAT, "model": model, "feature_names": names,
              "horizon_hours": int(horizon_hours), "train_hash": digest, "trained_on": model.trained_on,
              "train_window": window, "data_hash": files_hash(files), "files": [p.name for p in files],
              "symbols": sorted({s.symbol for s in series}),
              "split": split_date, "sklearn_version": sklearn.__version__, "params": params,
              "distances": np.asarray(DEFAULT_DISTANCES, dtype=float),
              "static_freq": static_frequencies(series, horizon_hours, split_date),
              "n_samples": len(samples), "event_rate": float(samples.y.mean()),
              "fit_seconds": round(time.perf_counter() - t0, 2)}
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"pliq_{int(horizon_hours)}h_{digest[:12]}.joblib"
        joblib.dump(bundle, path, compress=3)
    except OSError as e:
        raise ConfigError(f"cannot write the model to {out}: {e.strerror}") from e
    return path


def load_model(path: Path | str) -> dict[str, Any]:
    """Load a bundle saved by :func:`train`; refuse one made for other features or another format."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no model file at {path}", hint="train one with `keeper train`")
    try:
        bundle = joblib.load(path)
    except Exception as e:  # joblib/pickle raise many kinds on a corrupt or foreign file
        raise ConfigError(f"cannot load the model {path}: {e}") from e
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT or "model" not in bundle:
        raise ConfigError(f"{path} is not a keeper model bundle (format {BUNDLE_FORMAT})")
    names = list(bundle.get("feature_names", []))
    model = bundle["model"]
    unknown = sorted(set(names) - set(FEATURE_NAMES))
    if not names or unknown or list(getattr(model, "feature_names", ())) != names:
        raise ConfigError(f"model {path} was trained on other features than this code computes "
                          f"(unknown: {unknown or 'none'}; or the model's own list differs from the bundle's)",
                          hint="retrain it with `keeper train`")
    return bundle


def model_columns(bundle: dict[str, Any]) -> list[int]:
    """Indices of the bundle's ``feature_names`` among ``FEATURE_NAMES`` (``assemble``'s columns)."""
    return [FEATURE_NAMES.index(n) for n in bundle["feature_names"]]


def evaluate(paths: Sequence[Path | str], model_path: Path | str, test_from: str = DEFAULT_SPLIT,
             test_to: str | None = None, *, per_row: int | None = None, max_samples: int | None = None,
             seed: int = 1, threads: int | None = 1, out_dir: Path | str | None = None,
             law: Law | None = None, law_source: str = "") -> dict[str, Any]:
    """Score the saved model and both baselines on bars from ``test_from`` (every grid distance at
    every usable bar by default). Refuses a test period that overlaps the model's training period.

    Pooled and per asset (``per_symbol``): Brier, skills, and the learned model's full
    ``evaluation.scores`` (deciles' reliability table with gaps in points, low-P region on its own).
    With ``out_dir``: a calibration chart per asset and one pooled (``calibration_<SYM>_<h>h.png``,
    ``calibration_pooled_<h>h.png``), their paths under ``report["charts"]``.

    ``law``: the product's law (``keeper.risk.laws``, e.g. a ``keeper fit`` file's) scored on the same
    positions as ``report["tail"]``: its P at each position's log distance given the EWMA(0.94)
    hourly vol (the state's fast vol; a law with a slow or long EWMA is scored on that vol alone, an
    approximation)."""
    bundle = load_model(model_path)
    model: LearnedPLiq = bundle["model"]
    h = int(bundle["horizon_hours"])
    split = bundle.get("split")
    if split is None or _epoch(test_from) < _epoch(split):
        raise ConfigError(f"test period from {test_from} overlaps the model's training data "
                          f"(trained up to {split or 'the end of its data'})")
    distances = np.asarray(bundle["distances"], dtype=float)
    series = load_prices(paths, aligned=False)
    t0 = time.perf_counter()
    s = build_samples(series, h, start=test_from, end=test_to, distances=distances, per_row=per_row,
                      max_samples=max_samples, seed=seed, label_inside=False)
    with threadpool_limits(threads):
        p_model = model.predict_proba(s.X[:, model_columns(bundle)])
    p_static = np.asarray(bundle["static_freq"], dtype=float)[s.didx]
    log_d = -np.log1p(-distances[s.didx])
    # continuous monitoring: the labels use bar lows, which see the path between closes
    p_analytic = np.asarray(first_passage_probability(-log_d, s.sigma * np.sqrt(h)), dtype=float)
    report = {
        "model_path": str(model_path), "horizon_hours": h, "trained_on": bundle["trained_on"],
        "train_hash": bundle["train_hash"], "test_from": test_from, "test_to": test_to or _iso(s.t.max()),
        "files": [Path(p).name for p in paths], "n": len(s), "event_rate": float(s.y.mean()),
        "learned": ev.scores(p_model, s.y, p_static),
        "static": ev.scores(p_static, s.y, p_static),
        "analytic_ewma": ev.scores(p_analytic, s.y, p_static),
    }
    report["learned"]["brier_skill_vs_analytic"] = ev.brier_skill(p_model, s.y, p_analytic)
    if law is not None:
        state = np.repeat(s.sigma[:, None], 3, axis=1)  # (sigma, fast, long) all the EWMA(0.94) vol
        p_tail = np.asarray(law.prob(log_d, state, h), dtype=float)
        report["tail"] = ev.scores(p_tail, s.y, p_static)
        report["tail"]["law"] = law_source or law.describe()
    report["per_symbol"] = {}
    for sym in np.unique(s.symbol):
        m = s.symbol == sym
        report["per_symbol"][str(sym)] = {
            "n": int(m.sum()), "event_rate": float(s.y[m].mean()),
            "brier_learned": ev.brier(p_model[m], s.y[m]), "brier_static": ev.brier(p_static[m], s.y[m]),
            "brier_analytic": ev.brier(p_analytic[m], s.y[m]),
            "skill_learned_vs_static": ev.brier_skill(p_model[m], s.y[m], p_static[m]),
            "skill_learned_vs_analytic": ev.brier_skill(p_model[m], s.y[m], p_analytic[m]),
            "learned": ev.scores(p_model[m], s.y[m], p_static[m])}
    if out_dir is not None:
        report["charts"] = _write_charts(Path(out_dir), s, p_model, h, report["test_from"], report["test_to"])
    report["per_distance_band"] = {}
    d = distances[s.didx]
    for lo, hi in DISTANCE_BANDS:
        m = (d >= lo) & (d < hi)
        if not m.any():
            continue
        report["per_distance_band"][f"{lo:.0%}-{hi:.0%}"] = {
            "n": int(m.sum()), "event_rate": float(s.y[m].mean()),
            **{f"{k}_{name}": fn(p[m], s.y[m]) for name, p in
               (("learned", p_model), ("static", p_static), ("analytic", p_analytic))
               for k, fn in (("brier", ev.brier), ("log_loss", ev.log_loss))},
            "skill_learned_vs_static": ev.brier_skill(p_model[m], s.y[m], p_static[m]),
            "skill_learned_vs_analytic": ev.brier_skill(p_model[m], s.y[m], p_analytic[m])}
    # The keeper band: grid distances whose training-period crossing frequency is below 5% (where a
    # keeper leaves a position for the horizon; nearer ones are in its trigger zone whatever the model).
    kb = p_static < ev.LOW_P
    if kb.any():
        report["keeper_band"] = {
            "static_below": ev.LOW_P, "min_distance": float(distances[s.didx][kb].min()),
            "n": int(kb.sum()), "event_rate": float(s.y[kb].mean()),
            "skill_learned_vs_static": ev.brier_skill(p_model[kb], s.y[kb], p_static[kb]),
            "skill_analytic_vs_static": ev.brier_skill(p_analytic[kb], s.y[kb], p_static[kb])}
    report["eval_seconds"] = round(time.perf_counter() - t0, 2)
    return report


def _write_charts(out_dir: Path, s: Samples, p: np.ndarray, h: int, test_from: str, test_to: str) -> dict[str, Any]:
    from keeper.backtest.calibration_chart import calibration_chart
    period = f"{test_from[:10]} .. {str(test_to)[:10]}"
    charts = {}
    groups = [("pooled", np.ones(len(s), dtype=bool))] + [(str(sym), s.symbol == sym) for sym in np.unique(s.symbol)]
    try:
        for name, m in groups:
            path = out_dir / f"calibration_{name}_{h}h.png"
            calibration_chart(p[m], s.y[m], path, f"learned P(liquidation within {h}h), {name}, {period}")
            charts[name] = str(path)
    except OSError as e:
        raise ConfigError(f"cannot write the calibration charts to {out_dir}: {e.strerror}") from e
    return charts


def format_report(report: dict[str, Any]) -> str:
    """The evaluation as plain text: a score table and the reliability table of each forecast."""
    lines = [(f"P(liquidation within {report['horizon_hours']}h): trained on {report['trained_on'][0]} .. "
             f"{report['trained_on'][1]}; tested on {report['test_from']} .. {report['test_to']} "
             f"({', '.join(report['files'])})"),
             f"{report['n']} test positions, event rate {report['event_rate']:.4f}", "",
             f"{'forecast':<15} {'Brier':>8} {'log-loss':>9} {'AUC':>7} {'ECE':>7} {'BSS vs static':>14}"]
    names = ("learned", "analytic_ewma", "static") + (("tail",) if "tail" in report else ())
    for name in names:
        r = report[name]
        lines.append(f"{name:<15} {r['brier']:>8.5f} {r['log_loss']:>9.5f} {r['auc']:>7.4f} {r['ece']:>7.4f} "
                     f"{r['brier_skill']:>14.4f}")
    if "tail" in report:
        lines.append(f"tail: the product's law, {report['tail']['law']}")
    lines.append(f"learned Brier skill vs analytic EWMA: {report['learned']['brier_skill_vs_analytic']:.4f}")
    for sym, r in report.get("per_symbol", {}).items():
        lines.append(f"  {sym}: n={r['n']} rate={r['event_rate']:.4f} Brier learned {r['brier_learned']:.5f} "
                     f"static {r['brier_static']:.5f} analytic {r['brier_analytic']:.5f} "
                     f"(skill vs static {r['skill_learned_vs_static']:.4f})")
    if report.get("per_distance_band"):
        lines += ["", (f"{'distance':<9} {'n':>7} {'rate':>7} {'Brier L/S/A':>26} {'log-loss L/S/A':>26} "
                      f"{'BSS vs S':>9} {'vs A':>7}")]
        for band, r in report["per_distance_band"].items():
            lines.append(f"{band:<9} {r['n']:>7} {r['event_rate']:>7.4f} "
                         f"{r['brier_learned']:>8.5f} {r['brier_static']:>8.5f} {r['brier_analytic']:>8.5f} "
                         f"{r['log_loss_learned']:>8.4f} {r['log_loss_static']:>8.4f} {r['log_loss_analytic']:>8.4f} "
                         f"{r['skill_learned_vs_static']:>9.4f} {r['skill_learned_vs_analytic']:>7.4f}")
    if report.get("keeper_band"):
        k = report["keeper_band"]
        lines += ["", (f"keeper band (distances >= {k['min_distance']:.1%}, static P < {k['static_below']:.0%}): "
                       f"n={k['n']} rate={k['event_rate']:.4f} skill vs static: learned "
                       f"{k['skill_learned_vs_static']:.4f}, analytic {k['skill_analytic_vs_static']:.4f}")]
    for name in names:
        lines += ["", ev.format_reliability(report[name]["reliability"], f"reliability ({name}), deciles of forecast")]
    groups = [("pooled", report["learned"])] + [(sym, r["learned"]) for sym, r in report.get("per_symbol", {}).items()
                                               if "learned" in r]
    lines += ["", "calibration of the learned model (goal: |gap| <= 3 points in every decile)",
              (f"{'set':<8} {'n':>8} {'max |gap| pts':>14} {'goal':>5} {'low-P n':>8} {'low-P mean P':>13} "
               f"{'observed':>9} {'max |gap| pts':>14} {'P/obs range':>12}")]
    for name, r in groups:
        lo = r["low_p"]
        low_cols = (f"{lo['n']:>8} {lo['mean_pred']:>13.5f} {lo['observed']:>9.5f} {lo['max_gap_pts']:>14.2f} "
                    f"{lo['min_ratio']:>5.2f}-{lo['max_ratio']:<6.2f}") if lo["n"] else f"{0:>8}"
        lines.append(f"{name:<8} {r['n']:>8} {r['max_gap_pts']:>14.2f} {'met' if r['calibrated'] else 'no':>5} "
                     f"{low_cols}")
    for sym, r in report.get("per_symbol", {}).items():
        if "learned" not in r:
            continue
        lines += ["", ev.format_reliability(r["learned"]["reliability"],
                                            f"reliability (learned, {sym}), deciles of forecast")]
    for name, r in groups:
        if r["low_p"]["n"]:
            lines += ["", ev.format_reliability(r["low_p"]["reliability"],
                                                f"low-P region (learned, {name}): forecasts below "
                                                f"{r['low_p']['cut']:.0%}, their deciles")]
    for name, path in report.get("charts", {}).items():
        lines.append(f"chart ({name}): {path}")
    return "\n".join(lines)
