"""Sizing searches on the "what if" estimates (``keeper.plan.whatif``): the smallest top-up or
repayment that brings P(liquidation) to a target, and the largest release that keeps it there and
keeps health above a floor. Pure: ``p_liq`` is any risk model's function of a position.

Each search brackets the raw amount and narrows it to within ``TOLERANCE_PPM`` on the safe side,
starting from a first guess interpolated on an "axis" (health as a line in the amount for lending,
the log distance to the liquidation price for perps) calibrated on the position's own P."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

from keeper.domain import ActionKind, Position, Side
from keeper.plan.deleverage import DeleverageRoute, deleverage_line
from keeper.plan.perp_reduce import PerpReduceAxis, PerpReduceRoute
from keeper.plan.whatif import (
    USD_RAW,
    AssetParams,
    Sized,
    _deposit_fee_factor,
    _perp_health_of,
    _perp_remaining,
    held,
    simulate,
    weight_for,
)

PFn = Callable[[Position], float]
# What an evaluated amount leaves: the position after it, and its P.
_Payload = tuple[Position, float]


# How close the searches below get to the exact boundary: within 100 ppm (0.01 %) of the amount (at
# least one raw unit). The answer is always on the safe side (a top-up never smaller than needed, a
# release never larger than allowed), so stopping early only costs up to 0.01 % of the amount moved
# (0.11 USDC on a 1,076 USDC repayment), far below the model's own uncertainty; it saves about three
# of eleven P evaluations per plan (bench/plan_speed.py: 27.5 -> 23.1 ms per 100 plans at 1 -> 100).
TOLERANCE_PPM = 100

DEFAULT_LOG_HEALTH_VOL = 0.05  # for the first guess only, when P of the untouched position says nothing
_NORMAL = NormalDist()


def _score(p: float, target: float) -> float:
    """<= 0 exactly when P meets the target (``p <= target``, compared as is); otherwise
    continuous in P (log scale), for interpolation."""
    s = math.log(max(p, 1e-300)) - math.log(target)
    return min(s, 0.0) if p <= target else max(s, 1e-300)


def _tol(x: int) -> int:
    """The search tolerance at amount ``x``: ``TOLERANCE_PPM`` of it, at least one raw unit."""
    return max(1, abs(x) * TOLERANCE_PPM // 1_000_000)


def _probit_half(p: float) -> float:
    """``Phi^-1(p / 2)``, the scale the searches interpolate P on. For a driftless first passage,
    ``P = 2 Phi(-log(health) / sigma)``, so this is exactly ``-log(health) / sigma``: linear in log
    health. Increasing in p; -inf at 0; nan for nan and for p >= 1 (P saturated, e.g. by a tail
    multiplier: no slope to interpolate). Only ever used to *propose* amounts."""
    if not p < 1.0:
        return math.nan
    if p <= 0.0:
        return -math.inf
    return _NORMAL.inv_cdf(p / 2.0)


# --------------------------------------------------------------- distance to liquidation vs amount
# The searches interpolate against ``t``, a distance to liquidation in log-price units as a function
# of the amount, in which the probit of P is close to linear (exactly, for a driftless single
# barrier: ``Phi^-1(P / 2) = -t / sigma``). It only shapes proposals, never decisions.
@dataclass(frozen=True)
class _HealthLine:
    """Lending: the estimated health after ``x`` raw units, ``(num + a x) / (den + b x)`` (exact
    from the legs), and ``t = log(health)`` (the co-moving collateral's barrier). Perps have
    :class:`_PerpHealth` instead."""

    num: float
    den: float
    a: float
    b: float

    def t(self, x: float) -> float:
        n, d = self.num + self.a * x, self.den + self.b * x
        return math.log(n / d) if n > 0 and d > 0 and math.isfinite(n / d) else math.nan

    def x(self, t: float) -> float:
        if not -700.0 < t < 700.0:
            return math.nan
        e = math.exp(t)
        slope = self.a - e * self.b
        return (e * self.den - self.num) / slope if slope != 0 else math.nan


@dataclass(frozen=True)
class _PerpHealth:
    """Perps: :func:`perp_health_estimate` after ``x`` raw units of collateral moved
    (``usd_per_raw``: signed USD per raw unit, a long's top-up net of the deposit fee), and
    ``t = log(health)``. With ``r = remaining + usd_per_raw * x`` the health is
    ``min(r * max_leverage / size, (r - fees) / liquidation_fee)``, 0 below ``r = fees``: the
    smaller of two lines in ``x``, so ``x(t)`` takes the amount at which *both* reach ``exp(t)``
    (health is increasing in ``r``). Used for the health floor of releases."""

    remaining: float  # collateral + PnL at the mark now, USD
    size: float
    fees: float
    liquidation_fee: float
    max_leverage: float
    usd_per_raw: float

    def t(self, x: float) -> float:
        h = _perp_health_of(self.remaining + self.usd_per_raw * x, self.size, self.fees, self.liquidation_fee,
                            self.max_leverage)
        return math.log(h) if 0 < h < math.inf else math.nan

    def x(self, t: float) -> float:
        if not -700.0 < t < 700.0 or self.usd_per_raw == 0:
            return math.nan
        h = math.exp(t)
        need = max(h * self.size / self.max_leverage, self.fees)  # health > 0 needs r >= fees
        if self.liquidation_fee > 0:
            need = max(need, self.fees + h * self.liquidation_fee)
        return (need - self.remaining) / self.usd_per_raw


@dataclass(frozen=True)
class _PerpBarrier:
    """Perps: ``t`` = the log move of the index from the mark to the liquidation price
    (``health.perp_liquidation_price``) once ``x`` raw units of collateral moved (``usd_per_raw``:
    signed USD per raw unit)."""

    is_long: bool
    size: float
    slack: float  # collateral - max(margin fees + liquidation fee, size / max leverage), USD
    average: float
    mark: float
    usd_per_raw: float

    def t(self, x: float) -> float:
        move = (self.slack + self.usd_per_raw * x) / self.size
        price = self.average * (1 - move if self.is_long else 1 + move)
        if price <= 0 or self.mark <= 0:
            return math.nan
        return math.log(self.mark / price) if self.is_long else math.log(price / self.mark)

    def x(self, t: float) -> float:
        if not -700.0 < t < 700.0 or self.average <= 0:
            return math.nan
        price = self.mark * math.exp(-t if self.is_long else t)
        move = 1 - price / self.average if self.is_long else price / self.average - 1
        return (move * self.size - self.slack) / self.usd_per_raw


_Axis = _HealthLine | _PerpBarrier | PerpReduceAxis
Route = DeleverageRoute | PerpReduceRoute


def _perp_usd_per_raw(pos: Position, kind: ActionKind, params: AssetParams) -> float:
    """Signed USD of perp collateral per raw unit of ``kind``: a top-up at the asset's price, net
    of the deposit fee on a long; a release is a USD delta at 1e30."""
    p = pos.perp
    assert p is not None
    if kind is ActionKind.TOP_UP:
        return params.price_usd / params.unit * _deposit_fee_factor(p.is_long, p.deposit_fee_bps)
    return -1.0 / USD_RAW


def _health_line(pos: Position, kind: ActionKind, params: AssetParams) -> _HealthLine | _PerpHealth | None:
    """The estimated health as a function of the amount of ``kind`` in ``params`` on ``pos``:
    :class:`_HealthLine` (lending) or :class:`_PerpHealth` (None when it is degenerate)."""
    if pos.perp is not None:
        p = pos.perp
        if p.size_usd <= 0 or p.max_leverage <= 0:
            return None
        remaining = _perp_remaining(p.collateral_usd, p.size_usd, p.average_price, p.mark_price, p.is_long)
        return _PerpHealth(remaining, p.size_usd, p.margin_fees_usd, p.liquidation_fee_usd, p.max_leverage,
                           _perp_usd_per_raw(pos, kind, params))
    return _lending_line(pos, kind, params)


def _lending_line(pos: Position, kind: ActionKind, params: AssetParams) -> _HealthLine | None:
    """:func:`_health_line` of a lending position."""
    weighted = sum(leg.value_usd * leg.liquidation_weight for leg in pos.legs if leg.side is Side.COLLATERAL)
    debt = sum(leg.value_usd for leg in pos.legs if leg.side is Side.DEBT)
    side = Side.DEBT if kind is ActionKind.REPAY else Side.COLLATERAL
    leg = next((lg for lg in pos.legs if lg.side is side and lg.asset.address == params.address), None)
    if leg is not None:
        weight, per_raw = leg.liquidation_weight, leg.price_usd / 10**leg.asset.decimals
    else:
        weight, per_raw = (weight_for(params, pos) or 0.0), params.price_usd / params.unit
    if debt <= 0 or per_raw <= 0:
        return None
    if kind is ActionKind.REPAY:
        return _HealthLine(weighted, debt, 0.0, -per_raw)
    a = weight * per_raw * (1.0 if kind is ActionKind.TOP_UP else -1.0)
    return _HealthLine(weighted, debt, a, 0.0) if a != 0 else None


def _axis(pos: Position, kind: ActionKind, params: AssetParams, route: Route | None = None) -> _Axis | None:
    """What the searches interpolate against for ``kind`` in ``params`` on ``pos`` (a deleverage:
    along ``route``)."""
    if isinstance(route, PerpReduceRoute):
        return PerpReduceAxis(pos, route.fee_bps, float(route.largest_raw(pos)))
    if route is not None:
        line = deleverage_line(pos, route)
        return _HealthLine(*line) if line is not None else None
    p = pos.perp
    if p is None:
        return _lending_line(pos, kind, params)
    if p.size_usd <= 0 or p.max_leverage <= 0:
        return None
    threshold = max(p.margin_fees_usd + p.liquidation_fee_usd, p.size_usd / p.max_leverage)
    return _PerpBarrier(p.is_long, p.size_usd, p.collateral_usd - threshold, p.average_price, p.mark_price,
                        _perp_usd_per_raw(pos, kind, params))


def _log_vol(axis: _Axis | None, p0: float | None) -> float:
    """The vol ``sigma`` for which ``2 Phi(-t / sigma)`` is P of the untouched position
    (``DEFAULT_LOG_HEALTH_VOL`` when that cannot be solved)."""
    t0 = axis.t(0) if axis is not None else math.nan
    y0 = _probit_half(p0) if p0 is not None else math.nan
    if t0 > 0 and -math.inf < y0 < 0:
        return -t0 / y0
    return DEFAULT_LOG_HEALTH_VOL


# A model's P of the position with its factor's distance moved by ``dt`` (``LawRisk.p_shifted``): the
# same law as ``p_liq`` at a fraction of its cost (no what-if position, no reduction), so the searches
# solve it for their first proposal; decisions still rest on ``p_liq`` alone.
Shifted = Callable[[float], float]
_CURVE_STEPS = 24
_CURVE_RTOL = 1e-7  # on P: far inside the searches' tolerance on the amount


def _curve_guess(axis: _Axis | None, shifted: Shifted | None, target: float, p0: float, guess: float) -> float:
    """The amount at which ``shifted`` meets ``target`` along ``axis`` (``guess``, the calibrated
    first guess, seeds it); nan when it cannot say. A proposal only."""
    if axis is None or shifted is None or not math.isfinite(guess) or not p0 > target:
        return math.nan
    t0 = axis.t(0)
    tg = axis.t(guess)
    if not (math.isfinite(t0) and math.isfinite(tg)):
        return math.nan
    goal = _probit_half(target)
    lo, p_lo = 0.0, p0
    hi = max(tg - t0, 1e-4)
    p_hi = shifted(hi)
    n = 1
    while p_hi > target:  # grow the bracket
        if n >= _CURVE_STEPS or hi > 50:
            return math.nan
        lo, p_lo, hi = hi, p_hi, hi * 2
        p_hi, n = shifted(hi), n + 1
    side = 0  # Illinois: halve the weight of an end kept twice in a row
    w_lo = w_hi = 1.0
    while n < _CURVE_STEPS:
        y_lo, y_hi = (_probit_half(p_lo) - goal) * w_lo, (_probit_half(p_hi) - goal) * w_hi
        mid = lo + (hi - lo) * y_lo / (y_lo - y_hi) if math.isfinite(y_lo - y_hi) and y_lo != y_hi else math.nan
        if not lo < mid < hi:
            mid = (lo + hi) / 2
        pm = shifted(mid)
        n += 1
        if abs(pm - target) <= _CURVE_RTOL * target:
            hi = mid
            break
        if pm > target:
            lo, p_lo = mid, pm
            w_hi, w_lo = (w_hi / 2 if side == 1 else 1.0), 1.0
            side = 1
        else:
            hi, p_hi = mid, pm
            w_lo, w_hi = (w_lo / 2 if side == -1 else 1.0), 1.0
            side = -1
    x = axis.x(t0 + hi)
    return x if math.isfinite(x) and x > 0 else math.nan


def _first_guess(axis: _Axis | None, sigma: float, target: float) -> float:
    """The amount at which the calibrated model ``P = 2 Phi(-t / sigma)`` meets ``target``; nan
    without a model."""
    return axis.x(-sigma * _probit_half(target)) if axis is not None else math.nan


def estimated_amount(pos: Position, kind: ActionKind, params: AssetParams, target: float, p_before: float) -> float:
    """The raw amount of a top-up/repayment that the first-passage model calibrated on the untouched
    position (P ``p_before``) puts at ``target``: where :func:`smallest_to_target` starts its
    search, with no P evaluation. An estimate only (it is used to skip sizing a way that is clearly
    dearer than one sized already); nan when the model cannot say."""
    axis = _axis(pos, kind, params)
    guess = _first_guess(axis, _log_vol(axis, p_before), target)
    return guess if math.isfinite(guess) and guess >= 0 else math.nan


def distance_after(pos: Position, kind: ActionKind, params: AssetParams, raw: int) -> float:
    """The distance to liquidation (log health; a perp's barrier distance) ``raw`` units of
    ``kind`` in ``params`` leave ``pos`` at, by the exact health line; nan when there is none."""
    axis = _axis(pos, kind, params)
    return axis.t(raw) if axis is not None else math.nan


def amount_at_distance(pos: Position, kind: ActionKind, params: AssetParams, t: float) -> float:
    """The raw amount of ``kind`` in ``params`` that puts ``pos`` at distance ``t`` (the inverse
    of :func:`distance_after`); nan when none does."""
    axis = _axis(pos, kind, params)
    x = axis.x(t) if axis is not None and math.isfinite(t) else math.nan
    return x if math.isfinite(x) and x >= 0 else math.nan


# ------------------------------------------------------------------------------ the search engine
class _Probe:
    """Evaluates amounts and remembers, for interpolation, ``(x, t, y)`` of every evaluation with a
    finite ``t`` (log health, or ``x`` itself without a model) and ``y`` (zero at the target).

    ``check(x)`` returns ``(good, y, payload)``; good/bad is decided by the caller's exact test,
    ``y`` only steers proposals."""

    def __init__(self, check: Callable[[int], tuple[bool, float, _Payload]], axis: _Axis | None) -> None:
        self.check, self.axis = check, axis
        self.points: list[tuple[float, float]] = []  # (t, y), oldest first
        self.count = 0

    def _t(self, x: float) -> float:
        return self.axis.t(x) if self.axis is not None else float(x)

    def _x(self, t: float) -> float:
        return self.axis.x(t) if self.axis is not None else t

    def hint(self, x: int, y: float) -> None:
        """A point known without evaluating it here (P of the untouched position)."""
        t = self._t(x)
        if math.isfinite(t) and math.isfinite(y):
            self.points.append((t, y))

    def __call__(self, x: int) -> tuple[bool, _Payload]:
        self.count += 1
        good, y, payload = self.check(x)
        self.hint(x, y)
        return good, payload

    def estimate(self) -> float:
        """The secant root (an amount, float) through the last two points; nan when there is none."""
        if len(self.points) < 2:
            return math.nan
        (t0, y0), (t1, y1) = self.points[-2], self.points[-1]
        if y1 == y0 or t1 == t0:
            return math.nan
        x = self._x(t1 - y1 * (t1 - t0) / (y1 - y0))
        return x if math.isfinite(x) else math.nan


def _narrow(probe: _Probe, good: int, bad: int, payload: _Payload | None = None, *, good_known: bool = True,
            bad_known: bool = True) -> tuple[int, _Payload] | None:
    """Shrink the bracket between a ``good`` amount and a ``bad`` one until it is within
    ``TOLERANCE_PPM`` of ``good``; returns ``(good, its payload)``.

    Invariant, whatever the proposals: ``good`` was evaluated good and ``bad`` evaluated bad, except
    an end passed as not known (``good_known``/``bad_known`` False: presumed, e.g. amount 0 of a
    position whose P was given). A presumed end is evaluated only when needed: when the bracket
    closes on it, or when the estimate of the root is not inside the bracket. A presumed bad end
    found good is returned (by monotonicity it is the most favourable amount there is); a presumed
    good end found bad means no amount works: None.

    Proposals: the secant root of ``y`` against ``t`` (the probe's axis, a distance to liquidation)
    through the last two evaluations (P's probit is near linear there, so this converges in a few
    steps); once the root is within the tolerance of an end, the point one tolerance from that end,
    which closes the bracket. Outside the bracket, or after four evaluations in a row that do not
    halve it, bisection (so it always ends: every evaluation is strictly inside the bracket)."""
    stall = 0
    while True:
        width = abs(good - bad)
        if width <= _tol(good):
            if not bad_known:
                ok, pay = probe(bad)
                if ok:
                    return bad, pay
            if not good_known:
                ok, payload = probe(good)
                if not ok:
                    return None
            assert payload is not None  # an end known good always comes with its payload
            return good, payload
        lo, hi = min(good, bad), max(good, bad)
        d = 1 if bad > good else -1  # from good toward bad
        x = None
        est = probe.estimate()
        if not bad_known and not (est - bad) * d < 0:  # no estimate, or the root looks past a presumed
            ok, pay = probe(bad)  # end: settle that end now
            if ok:
                return bad, pay
            bad_known = True
            continue
        if not good_known and not (est - good) * d > 0:
            ok, payload = probe(good)
            if not ok:
                return None
            good_known = True
            continue
        if stall < 4:
            tg, tb = _tol(good), _tol(bad - d * _tol(bad))
            if -4 * tg < (est - good) * d < tg:  # the root is (about) within one tolerance of good:
                x = good + d * tg  # expect bad, which closes the bracket
            elif -4 * tb < (bad - est) * d < tb:  # ... of bad
                x = bad - d * tb  # expect good, which closes it
            elif lo < est < hi:
                x = round(est)
        if x is None or not lo < x < hi:
            x, stall = (lo + hi) // 2, 0
        ok, pay = probe(x)
        if ok:
            good, payload, good_known = x, pay, True
        else:
            bad, bad_known = x, True
        stall = stall + 1 if abs(good - bad) * 2 > width else 0


# ------------------------------------------------------------------------------------ sizing
def smallest_to_target(pos: Position, kind: ActionKind, params: AssetParams, p_liq: PFn,
                       target: float, *, p_before: float | None = None,
                       route: Route | None = None, shifted: Shifted | None = None) -> Sized | None:
    """The least raw amount of a top-up/repayment with ``p_liq(after) <= target`` (None if no
    amount reaches it), rounded up: never below the exact least amount, at most ``TOLERANCE_PPM``
    (at least one raw unit) above it, and evaluated good. Assumes P does not rise with the amount
    (true for adding collateral or repaying debt).

    ``p_before``: ``p_liq(pos)`` if the caller has it; it only steers the first guess (amount 0 is
    still evaluated if the answer comes down to it). The first guess solves a first-passage model
    calibrated on the untouched position; the rest is :func:`_narrow` (typically 2-5 evaluations).

    ``route``: a deleverage (``kind`` DELEVERAGE, ``params`` the route's: the debt asset repaid, or a
    perp's collateral token for a reduction by size), searched like a repayment up to the most one
    deleverage can do now (``route.largest_raw``).

    ``shifted``: the model's P with the position's distance to liquidation moved (``_curve_guess``).
    With it the first proposal is where that curve meets the target, half a tolerance up, and the
    amount one tolerance below is evaluated next: when the curve is the model's own (a one-factor
    position), two evaluations settle the search."""
    goal = _probit_half(target)

    def check(x: int) -> tuple[bool, float, _Payload]:
        after = route.simulate(pos, x) if route is not None else simulate(pos, kind, params, x)
        p = p_liq(after)
        return _score(p, target) <= 0, _probit_half(p) - goal, (after, p)

    def sized(x: int, pay: _Payload) -> Sized:
        after, p = pay
        return Sized(kind, params, x, after, p, route)

    axis = _axis(pos, kind, params, route)
    probe = _Probe(check, axis)
    if p_before is None or not p_before > target:  # not known bad: evaluate amount 0
        ok0, pay0 = probe(0)
        if ok0:
            return sized(0, pay0)
        p0, zero_known = pay0[1], True
    else:
        p0, zero_known = p_before, False
        probe.hint(0, _probit_half(p0) - goal)
    guess = _first_guess(axis, _log_vol(axis, p0), target)
    curved = _curve_guess(axis, shifted, target, p0, guess)
    if math.isfinite(curved) and curved < 1e60:
        guess = curved + _tol(int(curved)) / 2  # just above the curve's root: expected good
    x = max(1, math.ceil(guess)) if math.isfinite(guess) and guess < 1e60 else max(1, params.unit // 1000)
    evals_before = probe.count

    if kind is ActionKind.REPAY or route is not None:
        hi = route.largest_raw(pos) if route is not None else held(pos, params, Side.DEBT)
        if hi <= 0:
            return None
        good, pay, good_known, bad = hi, None, False, 0
        if x >= hi:
            ok, pay = probe(hi)
            if not ok:
                return None
            good_known = True
        else:
            ok, p = probe(x)
            if ok:
                good, pay, good_known = x, p, True
            else:
                bad, zero_known = x, True
    else:
        cap = 1e4 * (pos.collateral_usd + pos.debt_usd) + 1e6  # USD: beyond this, give up
        bad = 0
        while True:
            ok, pay = probe(x)
            if ok:
                good, good_known = x, True
                break
            if x / params.unit * params.price_usd > cap or x.bit_length() > 256:
                return None
            bad, zero_known = x, True
            # Extrapolate (at least one tolerance on: if the root is that close, that closes it);
            # without a usable estimate grow x8, a wide bracket is cheap: _narrow interpolates.
            est = probe.estimate()
            if math.isfinite(est) and est > x - 4 * _tol(x):
                x = max(int(min(est, 64.0 * x)), x + _tol(x))
            else:
                x *= 8
    if math.isfinite(curved) and good_known and pay is not None and good == x and probe.count == evals_before + 1:
        # the proposal was good: one tolerance below it closes the bracket if the curve was right
        lo = good - _tol(good)
        if lo > bad:
            ok, p = probe(lo)
            if ok:
                good, pay = lo, p
            else:
                bad, zero_known = lo, True
    out = _narrow(probe, good, bad, pay, good_known=good_known, bad_known=zero_known or bad > 0)
    return None if out is None else sized(*out)


def largest_withdrawal(pos: Position, params: AssetParams, p_liq: PFn, target: float,
                       floor: float, *, p_before: float | None = None) -> Sized | None:
    """The most that can leave ``pos`` in ``params`` (perps: USD at 1e30) with P at or below
    ``target`` and the estimated health at or above ``floor``; rounded down (at most
    ``TOLERANCE_PPM`` below the exact largest amount, never above it, and evaluated good).

    ``p_before``: ``p_liq(pos)`` if the caller has it (steers the first guess only)."""
    goal = _probit_half(target)
    axis = _axis(pos, ActionKind.WITHDRAW_EXCESS, params)
    health = _health_line(pos, ActionKind.WITHDRAW_EXCESS, params)
    sigma = _log_vol(axis, p_before)
    log_floor = math.log(floor) if floor > 0 else -math.inf

    def y(p: float, h: float) -> float:
        """Interpolated: the binding one of the two limits, each zero at its limit (the floor's in
        log health over a typical vol, about the probit's scale)."""
        y_floor = ((log_floor - math.log(h)) / DEFAULT_LOG_HEALTH_VOL if 0 < h < math.inf
                   else (math.inf if h <= 0 else -math.inf))
        return max(_probit_half(p) - goal, y_floor)

    def check(x: int) -> tuple[bool, float, _Payload]:
        after = simulate(pos, ActionKind.WITHDRAW_EXCESS, params, x)
        p = p_liq(after)
        h = after.health
        below_floor = (floor - h) / floor if h < floor else -math.inf
        return max(_score(p, target), below_floor) <= 0, y(p, h), (after, p)

    def sized(x: int, pay: _Payload) -> Sized:
        after, p = pay
        return Sized(ActionKind.WITHDRAW_EXCESS, params, x, after, p)

    def first_guess() -> float:
        """The smaller of the amounts that reach the target (calibrated model) and the floor."""
        at_target = _first_guess(axis, sigma, target)
        at_floor = health.x(log_floor) if health is not None and floor > 0 else math.nan
        return min((g for g in (at_target, at_floor) if g == g), default=math.nan)

    hi = int(pos.perp.collateral_usd * USD_RAW) if pos.perp else held(pos, params, Side.COLLATERAL)
    if pos.perp is not None and pos.perp.release_cap_usd is not None:
        # GMX's own check of what stays (at the Vault's current fee), less 1% for funding and price
        # until the transaction lands.
        hi = min(hi, int(pos.perp.release_cap_usd * 0.99 * USD_RAW))
        if hi <= 0:
            return None
    probe = _Probe(check, axis)
    guess = first_guess()
    # Amount 0 is presumed good (evaluated only if the answer comes down to it) when P is known to
    # meet the target and the health estimate (no P needed) meets the floor.
    h0 = simulate(pos, ActionKind.WITHDRAW_EXCESS, params, 0).health
    presume = p_before is not None and p_before <= target and hi > 1 and not h0 < floor
    if not presume or not 0 < guess < hi - 1:  # as it was: the ends first
        ok, pay = probe(hi)
        if ok:
            return sized(hi, pay)
        if presume:
            pay0, good_known = None, False
        else:
            ok, pay0 = probe(0)
            if not ok or hi <= 1:
                return None
            good_known = True
            if p_before is None:
                sigma = _log_vol(axis, pay0[1])
                guess = first_guess()
        good, bad, bad_known = 0, hi, True
    else:
        pay0, good, good_known, bad, bad_known = None, 0, False, hi, False
        assert p_before is not None  # presumed: P was given
        probe.hint(0, y(p_before, h0))
    if math.isfinite(guess) and 0 < guess < hi - 1:
        x = int(guess)
        ok, pay = probe(x)
        if ok:
            good, pay0, good_known = x, pay, True
        else:
            bad, bad_known = x, True
    out = _narrow(probe, good, bad, pay0, good_known=good_known, bad_known=bad_known)
    if out is None or out[0] == 0:
        return None
    return sized(*out)
