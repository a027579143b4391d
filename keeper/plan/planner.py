"""Risk budget -> sized actions, each with its reason. Pure: no web3, no DB, no clock, no I/O.

Bands (hysteresis, so the keeper does not flap), with ``eps`` the risk budget per horizon:

* ``P > eps``: protect — top up or repay so that ``P <= eps * target_fraction``;
* ``P < eps * release_fraction``: release — withdraw collateral until ``P`` is back at the target
  level ``eps * target_fraction`` (never below the vault's health floor);
* in between: nothing. Landing at the middle of the band means the next tick does nothing.

A position acted on within ``cooldown_blocks`` gets no new action unless it is urgent (``P > eps``),
and no release within ``release_cooldown_blocks`` (releases are optional: each one spends gas and
one of the vault's limited keeper actions per asset and window, which a later top-up may need);
a position read at or before the block of our last action on it (the action is not visible yet)
gets nothing at all. Positions with ``price_ok=False`` are never acted on.

Sizing: a bracketing search on the raw amount (``sizing.smallest_to_target`` /
``largest_withdrawal``: a calibrated first guess, then secant steps on the probit of P, within 1 ppm)
for the smallest top-up/repayment that reaches the target (rounded up: never less than needed) and
the largest withdrawal that keeps it (rounded down). The planner hands it the P of the untouched
position it already has (a hint for the first guess). This assumes P is monotone in the amount,
true of the analytic model for adding collateral or repaying debt. Healths after an action are
estimates (``whatif``).

Asset choice: every way to reach the target (repay each debt asset, post each allowed collateral)
is priced as USD committed x (1 + haircut); the cheapest that the reserve can pay wins. The weight
(liquidation threshold / LLTV) and the correlation with the debt enter through the risk model's P
of the position after the action. The comparison is written into the reason.

Reserve short (some risky position cannot be paid in full): first rebalance from a very safe
position of the same account that holds a usable collateral (the source lands no riskier than the
target level, the same rule as a withdrawal), then share what is left by expected loss avoided
(``allocate``) and raise an alert.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from keeper.domain import Action, ActionKind, Address, Position, Protocol, Reason, Side, Swap
from keeper.errors import ConfigError
from keeper.plan.allocate import Allocation, Need, allocate
from keeper.plan.deleverage import DeleverageRoute
from keeper.plan.perp_reduce import PerpReduceRoute
from keeper.plan.policy import Plan, PlanAlert, Policy, Reserve
from keeper.plan.sizing import (
    Route,
    Shifted,
    amount_at_distance,
    distance_after,
    estimated_amount,
    largest_withdrawal,
    smallest_to_target,
)
from keeper.plan.whatif import USD_RAW, AssetParams, Sized, held, perp_collateral_address, simulate, weight_for
from keeper.risk.first_loss import first_loss_fraction, first_loss_view
from keeper.risk.model import RiskModel
from keeper.risk.probability import morpho_incentive

# A way to protect a position is sized exactly only if its estimated cost is at most this much above
# the cheapest way sized (``_Planner.options``).
PRUNE_MARGIN = 0.25
AAVE_CLOSE_FACTOR = 0.5


class _Planner:
    def __init__(self, risk: RiskModel, reserve: Reserve, assets: Sequence[AssetParams], policy: Policy,
                 block: int, last: Mapping[str, int], floors: Mapping[str, float],
                 release_left: Mapping[Address, int] | None = None,
                 routes: Mapping[str, Route] | None = None) -> None:
        horizon = getattr(risk, "horizon_hours", None)
        if horizon is not None and not math.isclose(horizon, policy.horizon_hours):
            raise ConfigError(f"risk model horizon {horizon}h differs from the policy's {policy.horizon_hours}h")
        self.risk, self.policy, self.block = risk, policy, block
        self.assets = {a.address: a for a in assets}
        self.balances = {a: reserve.get(a) for a in self.assets}
        self.last, self.floors = last, floors
        self.release_left = dict(release_left or {})
        self.model = risk.describe()
        self.skipped: list[tuple[str, str]] = []
        self.alerts: list[PlanAlert] = []
        self.allocation: Allocation | None = None
        self._lead_models: dict[float, RiskModel] = {}
        self._levels: dict[str, tuple[float, float]] = {}
        self.unsized: dict[str, list[str]] = {}  # position key -> ways not sized (reserve holds none)
        self.routes = routes or {}  # position key -> how its vault can deleverage it
        self.no_deleverage: dict[str, str] = {}  # position key -> why its route cannot protect it now

    def _model_for(self, position: Position) -> RiskModel:
        lead = position.extra.get("lead_hours", 0.0)
        if lead > 0 and hasattr(self.risk, "with_lead"):
            model = self._lead_models.get(lead)
            if model is None:
                model = self._lead_models[lead] = self.risk.with_lead(lead)
            return model
        return self.risk

    def levels(self, pos: Position) -> tuple[float, float]:
        """(target P, release P) of a position: the policy's fractions of epsilon, or with price-move
        bands the P at the band's distances for this position's factor (computed once per plan, on
        the position as read)."""
        pol = self.policy
        if pol.target_gap is None or pol.release_gap is None:
            return pol.target, pol.release
        hit = self._levels.get(pos.key)
        if hit is None:
            gl = getattr(self._model_for(pos), "gap_levels", None)
            got = gl(first_loss_view(pos), pol.epsilon, pol.target_gap, pol.release_gap) if gl is not None else None
            hit = self._levels[pos.key] = got if got is not None else (pol.target, pol.release)
        return hit

    # ------------------------------------------------------------------ sizing
    def _p(self, position: Position) -> float:
        """P(liquidation within the horizon); for a position whose protection lands late (a GMX
        PositionRouter request: ``extra["lead_hours"]``), within the horizon plus that delay, so the
        keeper acts that much earlier (models without ``with_lead`` ignore it). A Morpho position with an
        authorised pre-liquidation: P of its first loss, the pre-liquidation (``risk.first_loss``)."""
        return float(self._model_for(position).p_liq(first_loss_view(position)))

    def _shifted(self, position: Position) -> Shifted | None:
        """The model's P of ``position`` with its distance moved (``LawRisk.p_shifted``), for the
        sizing's first proposal; None for models without it."""
        fn = getattr(self._model_for(position), "p_shifted", None)
        return fn(first_loss_view(position)) if fn is not None else None

    def smallest(self, pos: Position, kind: ActionKind, params: AssetParams,
                 p: float | None = None) -> Sized | None:
        """``p``: P of ``pos`` if already known (steers the search's first guess only)."""
        return smallest_to_target(pos, kind, params, self._p, self.levels(pos)[0], p_before=p,
                                  shifted=self._shifted(pos))

    def floor_of(self, pos: Position) -> float:
        return self.floors.get(pos.key, self.policy.default_health_floor) * (1 + self.policy.floor_margin)

    def largest_withdrawal(self, pos: Position, params: AssetParams, p: float | None = None) -> Sized | None:
        return largest_withdrawal(pos, params, self._p, self.levels(pos)[0], self.floor_of(pos), p_before=p)

    # The vault's release window (``KeeperVault.setReleaseCap``) counts the tokens that arrive. A perp
    # release is sized in USD (1e30): converted at the asset's price less this margin, toward safety.
    PERP_RELEASE_MARGIN = 0.99

    def release_room(self, pos: Position, params: AssetParams) -> int | None:
        """What the vault's release window still lets leave ``pos`` in ``params``, in the action's raw
        units (tokens; USD 1e30 for a perp), or None when not known (no vault book)."""
        left = self.release_left.get(params.address)
        if left is None or pos.perp is None:
            return left
        return int(left / params.unit * params.price_usd * self.PERP_RELEASE_MARGIN * USD_RAW)

    def spend_release(self, pos: Position, opt: Sized) -> None:
        key = opt.params.address
        if key not in self.release_left:
            return
        tokens = opt.raw if pos.perp is None else math.ceil(
            opt.raw / USD_RAW / (opt.params.price_usd * self.PERP_RELEASE_MARGIN) * opt.params.unit)
        self.release_left[key] = max(0, self.release_left[key] - tokens)

    def within_window(self, pos: Position, opt: Sized) -> Sized | None:
        """``opt`` cut to the release window (a smaller withdrawal is always safer), or None when the
        window has nothing left."""
        room = self.release_room(pos, opt.params)
        if room is None or opt.raw <= room:
            return opt
        if room <= 0:
            return None
        after = simulate(pos, opt.kind, opt.params, room)
        return Sized(opt.kind, opt.params, room, after, self._p(after))

    # --------------------------------------------------------------- options
    def options(self, pos: Position, p: float | None = None, *, funded_only: bool = False) -> list[Sized]:
        """The ways to bring ``pos`` to its target, each sized, cheapest first.

        ``funded_only`` (the first pass of a protection): only ways the reserve can pay, and of
        those only the ones that may be cheapest. Sizing a way costs several P evaluations, so
        after the way most likely cheapest is sized (by the search's own first guess), another is
        sized only if, at the same distance to liquidation, it would cost at most ``PRUNE_MARGIN``
        more (an estimate: exact for ways that keep the position's risk factor, such as repaying
        the debt or adding the collateral it holds; adding a stable collateral needs less distance
        than that, so the estimate is high for it). The ways left out, with the reason, are kept in
        ``unsized`` for the decision's explanation; a rebalance sizes every way (``funded_only``
        False)."""
        out: list[Sized] = []
        if pos.perp is not None:
            params = self.assets.get(perp_collateral_address(pos))
            ways = [(ActionKind.TOP_UP, params)] if params else []
        else:
            ways = [(ActionKind.REPAY, self.assets[leg.asset.address]) for leg in pos.legs_on(Side.DEBT)
                    if leg.asset.address in self.assets and leg.amount_raw > 0]
            ways += [(ActionKind.TOP_UP, a) for a in self.assets.values() if (weight_for(a, pos) or 0) > 0]
        if not funded_only:
            self.unsized.pop(pos.key, None)
            for kind, params in ways:
                opt = self.smallest(pos, kind, params, p)
                if opt is not None:
                    out.append(opt)
            return self.with_deleverage(pos, p, sorted(out, key=lambda o: o.cost_usd))
        unsized = self.unsized[pos.key] = [f"{_way_label(kind, params)} (the reserve holds none)"
                                           for kind, params in ways if self.balances.get(params.address, 0) <= 0]
        ways = [(kind, params) for kind, params in ways if self.balances.get(params.address, 0) > 0]
        if p is not None and len(ways) > 1:
            target = self.levels(pos)[0]
            ways.sort(key=lambda w: _nan_last(_usd(w[1], estimated_amount(pos, w[0], w[1], target, p))))
        best: Sized | None = None
        for kind, params in ways:
            if best is not None:
                x = amount_at_distance(pos, kind, params, distance_after(pos, best.kind, best.params, best.raw))
                est = _usd(params, x)
                if est > best.cost_usd * (1 + PRUNE_MARGIN):
                    cut = f", incl. {params.haircut:.1%} haircut" if params.haircut else ""
                    unsized.append(f"{_way_label(kind, params)} ~{est:,.2f} USD (estimated{cut})")
                    continue
            opt = self.smallest(pos, kind, params, p)
            if opt is not None:
                out.append(opt)
                if best is None or opt.cost_usd < best.cost_usd:
                    best = opt
        return self.with_deleverage(pos, p, sorted(out, key=lambda o: o.cost_usd))

    def deleverage(self, pos: Position, p: float | None) -> Sized | None:
        """The smallest deleverage that brings ``pos`` to its target; else the largest its route allows
        now if that lowers P (a partial one: a thin pool or the vault's caps); None without a route."""
        route = self.routes.get(pos.key)
        if route is None or (pos.perp is not None) != isinstance(route, PerpReduceRoute):
            return None
        opt = smallest_to_target(pos, ActionKind.DELEVERAGE, route.params, self._p, self.levels(pos)[0], p_before=p,
                                 route=route, shifted=self._shifted(pos))
        if opt is not None:
            return opt
        most = route.largest_raw(pos)
        if most <= 0:
            self.no_deleverage[pos.key] = "its deleverage has no room now (the vault's caps, the pool's depth)"
            return None
        after = route.simulate(pos, most)
        p_after = self._p(after)
        if p is not None and p_after >= p:
            self.no_deleverage[pos.key] = (f"deleverage cannot lower its P now (health {pos.health:.3f}: selling "
                                           f"collateral to repay debt would leave it at {after.health:.3f})")
            return None
        return Sized(ActionKind.DELEVERAGE, route.params, most, after, p_after, route)

    def with_deleverage(self, pos: Position, p: float | None, opts: list[Sized]) -> list[Sized]:
        """``opts`` (the reserve's ways, in order) with the deleverage: first when it reaches the target
        and costs less (swap, flash fee, gas) than ``reserve_cost`` of what the cheapest way the
        reserve can pay commits, else last (when the reserve is short)."""
        d = self.deleverage(pos, p)
        if d is None or d.route is None:
            return opts
        best = next((o for o in opts if self.fits(o, self.balances)), None)
        cost = d.route.loss_usd(d.raw) + d.route.gas_usd
        cheaper = best is None or cost < best.value_usd * self.policy.reserve_cost
        return [d, *opts] if d.p_after <= self.levels(pos)[0] and cheaper else [*opts, d]

    def fits(self, opt: Sized, balances: dict[Address, int], sold: Mapping[Address, int] | None = None) -> bool:
        """The reserve can pay ``opt``; a deleverage takes nothing from it, only room in the vault's
        caps on what it sells or reduces (``sold``: what this plan's deleverages take already, by cap key)."""
        if opt.route is not None:
            key, use = opt.route.cap_use(opt.raw)
            return (sold or {}).get(key, 0) + use <= opt.route.cap_raw
        return opt.raw <= balances.get(opt.params.address, 0)

    # --------------------------------------------------------------- actions
    def reason(self, pos: Position, p: float, after: Position, p_after: float, note: str) -> Reason:
        return Reason(p, p_after, pos.health, after.health, self.policy.epsilon, self.policy.horizon_hours,
                      self.model, note)

    def action(self, pos: Position, p: float, opt: Sized, note: str, target_key: str | None = None,
               kind: ActionKind | None = None) -> Action:
        in_usd = pos.perp is not None and (opt.kind is ActionKind.WITHDRAW_EXCESS or opt.route is not None)
        amount = opt.raw / USD_RAW if in_usd else opt.raw / opt.params.unit
        swap = None
        if isinstance(opt.route, DeleverageRoute):
            r = opt.route
            sell = r.sell_raw(opt.raw)
            swap = Swap(r.collateral.asset, sell, r.min_out_raw(sell, opt.raw), r.pool, r.flash_source,
                        r.loss_usd(opt.raw))
        if pos.preliq is not None:
            pre = pos.preliq
            note += (f"; P counts the authorised pre-liquidation {pre.address[:10]} (first loss once LTV passes "
                     f"{pre.pre_lltv:.1%}: {pre.pre_lif1 - 1:.1%} on up to {pre.pre_lcf1:.0%} of the debt)")
        return Action(kind or opt.kind, pos.key, opt.params.asset, amount, opt.raw,
                      self.reason(pos, p, opt.after, opt.p_after, note), target_key, opt.value_usd, swap=swap)


def levels_of(risk: RiskModel, policy: Policy, pos: Position) -> tuple[float, float]:
    """(target P, release P) of one position under ``policy`` (as the planner sets them)."""
    return _Planner(risk, Reserve(), (), policy, pos.block, {}, {}).levels(pos)


def _usd(params: AssetParams, raw: float) -> float:
    """What ``raw`` units of ``params`` cost (haircut included), as ``Sized.cost_usd``; nan stays nan."""
    return raw / params.unit * params.price_usd * (1 + params.haircut)


def _nan_last(x: float) -> float:
    return math.inf if math.isnan(x) else x


def _way_label(kind: ActionKind, params: AssetParams) -> str:
    return f"{'repay' if kind is ActionKind.REPAY else 'add'} {params.symbol}"


def _comparison(pos: Position, opts: Sequence[Sized], chosen: Sized, unsized: Sequence[str] = ()) -> str:
    parts = []
    for o in opts:
        w = weight_for(o.params, pos) if o.kind is ActionKind.TOP_UP and pos.perp is None else None
        extra = [f"weight {w:.2f}"] if w is not None else []
        extra += [f"incl. {o.params.haircut:.1%} haircut"] if o.params.haircut else []
        if isinstance(o.route, PerpReduceRoute):
            how = "a PositionRouter request, " if o.route.gated else ""
            extra += [f"{how}GMX fees ~{o.route.loss_usd(o.raw):,.2f} USD, gas ~{o.route.gas_usd:,.2f} USD, "
                      "no reserve"]
        elif o.route is not None:
            r = o.route
            extra += [f"sells {r.sell_raw(o.raw) / r.collateral.unit:.6g} {r.collateral.symbol}, "
                      f"swap and flash cost ~{r.loss_usd(o.raw):,.2f} USD, gas ~{r.gas_usd:,.2f} USD, no reserve"]
        parts.append(f"{o.label()} {o.cost_usd:,.2f} USD" + (f" ({', '.join(extra)})" if extra else ""))
    none = f"; not sized: {', '.join(unsized)}" if unsized else ""
    return f"cost to target: {'; '.join(parts)}{none}; chose {chosen.label()}"


def _loss_weight(pos: Position, policy: Policy) -> tuple[float, float]:
    """(penalty fraction, size USD): the expected loss if liquidated is ``P * penalty * size``."""
    if pos.perp is not None:
        return 1.0, pos.perp.collateral_usd
    pre = first_loss_fraction(pos)
    if pre is not None:
        return pre, pos.debt_usd  # the first pre-liquidation's incentive on what it repays
    if pos.protocol is Protocol.MORPHO_BLUE:
        coll = pos.legs_on(Side.COLLATERAL)
        tot = sum(leg.value_usd for leg in coll)
        lltv = sum(leg.value_usd * leg.liquidation_weight for leg in coll) / tot if tot > 0 else 0.0
        return morpho_incentive(lltv) - 1.0, pos.debt_usd
    return policy.aave_bonus * AAVE_CLOSE_FACTOR, pos.debt_usd


def _has_exposure(pos: Position) -> bool:
    return pos.perp.size_usd > 0 if pos.perp is not None else pos.debt_usd > 0


def plan(positions: Sequence[Position], risk: RiskModel, reserve: Reserve, assets: Sequence[AssetParams],
         policy: Policy = Policy(), *, block: int, last_action_block: Mapping[str, int] | None = None,
         floors: Mapping[str, float] | None = None, release_left: Mapping[Address, int] | None = None,
         routes: Mapping[str, Route] | None = None) -> Plan:
    """Choose this tick's actions (see the module doc). ``last_action_block``: the block at which
    each position was last acted on; ``floors``: the vault's health floor per position key;
    ``release_left``: per asset address, the tokens the vault's release window still lets the keeper
    take out of positions (releases and rebalance sources are cut to it; an asset not named: no
    limit known)."""
    keys = [pos.key for pos in positions]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate position keys")
    pl = _Planner(risk, reserve, assets, policy, block, last_action_block or {}, floors or {}, release_left or {},
                  routes)
    risky: list[tuple[Position, float]] = []
    safe: list[tuple[Position, float]] = []
    p_liq: dict[str, float] = {}
    for pos in positions:
        if not pos.price_ok:
            pl.skipped.append((pos.key, f"price not usable ({pos.price_issue or 'unknown'}): never act on bad prices"))
            continue
        if not _has_exposure(pos):
            continue
        p = pl._p(pos)
        p_liq[pos.key] = p
        if not math.isfinite(p):
            pl.skipped.append((pos.key, "no forecast (P is not a number): no action"))
            continue
        last = pl.last.get(pos.key)
        if last is not None and pos.block <= last:
            pl.skipped.append((pos.key, f"read at block {pos.block}, not after our action at block {last}"))
            continue
        wait = max(policy.cooldown_blocks, policy.release_cooldown_blocks)
        cooling = last is not None and block - last < wait
        if p > policy.epsilon:
            risky.append((pos, p))
        elif p < pl.levels(pos)[1]:
            if cooling and last is not None:
                pl.skipped.append((pos.key, f"P {p:.2e} below the release level but acted on at block {last}: "
                                            f"no release until block {last + wait}"))
            else:
                safe.append((pos, p))
    risky.sort(key=lambda t: -t[1])
    safe.sort(key=lambda t: t[1])

    protect, rebalances, allocation = _protect(pl, risky, safe)
    used_sources = {a.position_key for a in rebalances}
    releases = [a for a in (_release(pl, pos, p) for pos, p in safe if pos.key not in used_sources) if a]
    ordered = protect + rebalances + releases
    actions = ordered[:policy.max_actions_per_tick]
    for a in ordered[policy.max_actions_per_tick:]:
        pl.skipped.append((a.position_key, f"{a.kind} deferred: max {policy.max_actions_per_tick} actions per tick"))
    return Plan(tuple(actions), tuple(pl.skipped), tuple(pl.alerts), p_liq, allocation)


def _protect(pl: _Planner, risky: list[tuple[Position, float]], safe: list[tuple[Position, float]]
             ) -> tuple[list[Action], list[Action], Allocation | None]:
    policy = pl.policy
    menus: dict[str, list[Sized]] = {}
    full: set[str] = set()  # positions whose menu has every way sized, funded or not

    def size_all(pos: Position, p: float) -> None:
        if pos.key not in full:
            menus[pos.key] = pl.options(pos, p)
            full.add(pos.key)

    for pos, p in risky:
        # What the reserve can pay first: the cheapest way that fits is the same either way (an
        # unfunded way never fits); the others are sized only if the reserve falls short.
        menus[pos.key] = pl.options(pos, p, funded_only=True)
        if not menus[pos.key]:
            size_all(pos, p)
        if not menus[pos.key]:
            pl.skipped.append((pos.key, f"P {p:.2e} above budget but no reserve asset can reach the target"))
            pl.alerts.append(PlanAlert("unprotected", f"{pos.key}: P {p:.2%} > {policy.epsilon:.2%} "
                                                     f"and no asset can protect it"))
    risky = [(pos, p) for pos, p in risky if menus[pos.key]]

    def fit(group: list[tuple[Position, float]]) -> tuple[list[Action], list[tuple[Position, float]]]:
        bal = dict(pl.balances)
        sold: dict[Address, int] = {}
        done, unmet = [], []
        # Most urgent first; positions the vault can also deleverage after the others, so the reserve
        # goes first to those that have no other way (the actions are sent most urgent first anyway).
        for pos, p in sorted(group, key=lambda t: t[0].key in pl.routes):
            opts = menus[pos.key]
            ok = [o for o in opts if pl.fits(o, bal, sold)]
            if not ok:
                unmet.append((pos, p))
                continue
            o = ok[0]
            note = _comparison(pos, opts, o, pl.unsized.get(pos.key, ()))
            if o.route is not None:
                key, use = o.route.cap_use(o.raw)
                sold[key] = sold.get(key, 0) + use
                if o.p_after > pl.levels(pos)[0]:
                    note += "; partial: the most the pool's depth and the vault's caps allow now"
                    pl.alerts.append(PlanAlert("deleverage_partial", f"{pos.key}: deleverage cut to "
                                               f"{o.value_usd:,.2f} USD (pool depth or caps); P after {o.p_after:.2%}"))
            else:
                bal[o.params.address] -= o.raw
            done.append((p, pl.action(pos, p, o, note)))
        done.sort(key=lambda t: -t[0])
        return [a for _, a in done], unmet

    done, unmet = fit(risky)
    if not unmet:
        return _big_enough(pl, done), [], None
    rebalances: list[Action] = []
    sources = {pos.key: (pos, p) for pos, p in safe}
    for pos, p in unmet:
        size_all(pos, p)  # a rebalance moves what a safer position holds, funded or not
        a = _rebalance(pl, pos, p, menus[pos.key], sources)
        if a is not None:
            rebalances.append(a)
            sources.pop(a.position_key)
    moved = {a.target_key for a in rebalances}
    rest = [(pos, p) for pos, p in risky if pos.key not in moved]
    done, unmet = fit(rest)
    if rebalances:
        pl.alerts.append(PlanAlert("reserve_short", "reserve short for " + ", ".join(a.target_key or ""
                                                                                  for a in rebalances)
                                   + ": rebalanced from safer positions of the same account"))
    if not unmet:
        return _big_enough(pl, done), _big_enough(pl, rebalances), None
    return _share(pl, rest, menus), _big_enough(pl, rebalances), pl.allocation


def _big_enough(pl: _Planner, actions: list[Action]) -> list[Action]:
    out = []
    for a in actions:
        if a.usd < pl.policy.min_action_usd:
            why = f"{a.kind} of {a.usd:,.2f} USD below the minimum action size"
            pl.skipped.append((a.position_key, why))
            pl.alerts.append(PlanAlert("unprotected", f"{a.target_key or a.position_key}: "
                                                     f"P {a.reason.p_before:.2%} above budget, {why}"))
        else:
            out.append(a)
    return out


def _share(pl: _Planner, risky: list[tuple[Position, float]], menus: dict[str, list[Sized]]) -> list[Action]:
    """Reserve short: a menu of partial amounts per position in its cheapest payable asset, shared
    by expected loss avoided."""
    policy = pl.policy
    needs, chosen = [], {}
    for pos, p in risky:
        payable = [o for o in menus[pos.key] if o.route is None and pl.balances.get(o.params.address, 0) > 0]
        if not payable:
            why = pl.no_deleverage.get(pos.key)
            pl.skipped.append((pos.key, f"P {p:.2e} above budget and the reserve holds none of "
                                        + ", ".join(sorted({o.params.symbol for o in menus[pos.key]}))
                                        + (f"; {why}" if why else "")))
            continue
        o = payable[0]
        chosen[pos.key] = (pos, p, o)
        pts = []
        for raw in sorted({-(-o.raw * k // policy.partial_steps) for k in range(1, policy.partial_steps + 1)}):
            after = simulate(pos, o.kind, o.params, raw)
            pts.append((raw / o.params.unit * o.params.price_usd, min(p, pl._p(after))))
        penalty, size = _loss_weight(pos, policy)
        needs.append(Need(pos.key, p, penalty, size, tuple(pts), o.params.address))
    budget: dict[str, float] = {a: pl.balances.get(a, 0) / pl.assets[a].unit * pl.assets[a].price_usd
                                for a in pl.assets}
    alloc = allocate(needs, budget)
    pl.allocation = alloc
    pl.alerts.append(PlanAlert("reserve_short", alloc.message or "reserve short"))
    out, left = [], dict(pl.balances)
    for n in needs:
        pos, p, o = chosen[n.key]
        grant = alloc.grants[n.key]
        if grant >= n.target_cost - 1e-9 and o.raw <= left[o.params.address]:
            left[o.params.address] -= o.raw
            out.append(pl.action(pos, p, o, _comparison(pos, menus[pos.key], o, pl.unsized.get(pos.key, ()))))
            continue
        raw = min(left[o.params.address], math.ceil(grant / o.params.price_usd * o.params.unit))
        if raw <= 0 or raw / o.params.unit * o.params.price_usd < policy.min_action_usd:
            pl.skipped.append((n.key, f"reserve short: granted {grant:,.2f} USD of {n.target_cost:,.2f}, "
                                      "below the minimum action size"))
            continue
        after = simulate(pos, o.kind, o.params, raw)
        part = Sized(o.kind, o.params, raw, after, pl._p(after))
        if part.p_after >= p:
            pl.skipped.append((n.key, f"reserve short: {part.value_usd:,.2f} USD granted would not lower P"))
            continue
        left[o.params.address] -= raw
        note = (f"reserve short: partial {o.label()} ({part.value_usd:,.2f} of {n.target_cost:,.2f} USD to "
                f"target), allocated by expected loss avoided")
        out.append(pl.action(pos, p, part, note))
    return _big_enough(pl, out)


def _rebalance(pl: _Planner, pos: Position, p: float, opts: list[Sized],
               sources: dict[str, tuple[Position, float]]) -> Action | None:
    """Move collateral from a very safe position of the same account to ``pos``."""
    best = None
    for o in opts:
        if o.kind is not ActionKind.TOP_UP:
            continue
        for src, ps in sources.values():
            if (src.perp is not None or src.chain != pos.chain or src.account != pos.account
                    or held(src, o.params, Side.COLLATERAL) < o.raw):
                continue
            out = pl.largest_withdrawal(src, o.params, ps)
            room = pl.release_room(src, o.params)
            if out is None or out.raw < o.raw or (room is not None and room < o.raw):
                continue
            if best is None or o.cost_usd < best[0].cost_usd:
                best = (o, src, ps)
    if best is None:
        return None
    o, src, ps = best
    pl.spend_release(src, o)
    src_after = simulate(src, ActionKind.WITHDRAW_EXCESS, o.params, o.raw)
    note = (f"rebalance {o.params.symbol} from {src.key} (P {ps:.2e} -> {pl._p(src_after):.2e}, health "
            f"{src.health:.3f} -> {src_after.health:.3f}) to {pos.key}: reserve short; "
            + _comparison(pos, opts, o))
    a = pl.action(pos, p, o, note, target_key=pos.key, kind=ActionKind.REBALANCE)
    return Action(a.kind, src.key, a.asset, a.amount, a.amount_raw, a.reason, pos.key, a.usd)


def _release(pl: _Planner, pos: Position, p: float) -> Action | None:
    if pos.perp is not None:
        params = pl.assets.get(perp_collateral_address(pos))
        cands = [params] if params else []
    else:
        cands = [pl.assets[leg.asset.address] for leg in pos.legs_on(Side.COLLATERAL)
                 if leg.asset.address in pl.assets and leg.amount_raw > 0]
    sized = [o for o in (pl.largest_withdrawal(pos, c, p) for c in cands) if o is not None and o.raw > 0]
    pairs = [(o, pl.within_window(pos, o)) for o in sized]
    opts = [w for _, w in pairs if w is not None]
    cut = [o.params.symbol for o, w in pairs if w is not None and w is not o]
    if sized and not opts:
        pl.skipped.append((pos.key, f"P {p:.2e} below the release level but the vault's release window for "
                                    f"{', '.join(o.params.symbol for o in sized)} is used up"))
        return None
    if not opts:
        pl.skipped.append((pos.key, f"P {p:.2e} below the release level but nothing can be withdrawn "
                                    f"keeping P at the target level and health above the floor "
                                    f"{pl.floor_of(pos):.3f}"))
        return None
    o = max(opts, key=lambda x: x.value_usd)
    if o.value_usd < pl.policy.min_action_usd:
        pl.skipped.append((pos.key, f"release of {o.value_usd:,.2f} USD below the minimum action size"))
        return None
    pl.spend_release(pos, o)
    parts = "; ".join(f"{x.params.symbol} {x.value_usd:,.2f} USD" for x in opts)
    target, release = pl.levels(pos)
    note = (f"P {p:.2e} < release level {release:.2e}: release to the target level "
            f"{target:.2e}, health floor {pl.floor_of(pos):.3f}; releasable: {parts}"
            + (f" (cut to the vault's release window: {', '.join(cut)})" if cut else ""))
    return pl.action(pos, p, o, note)
