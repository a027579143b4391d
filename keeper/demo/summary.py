"""The demo's verdict: protected positions (alice's vault, and bob's and dave's) against alice's
unprotected twins (carol): liquidations, collateral committed, actions, gas. Watched-only positions
(erin) are on no side. Pure: no chain, no files."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from keeper.demo.chain import BlockRecord
from keeper.demo.collect import ChainLiquidation, DeleverageCost, KeeperAction, Liquidation

PROTECTIVE = ("top_up", "repay", "rebalance")


def twin_of(pid: str) -> str | None:
    """``alice-aave`` -> ``carol-aave-unprotected``; None for a position without a twin."""
    return f"carol-{pid.removeprefix('alice-')}-unprotected" if pid.startswith("alice-") else None


@dataclass
class Side:
    label: str
    positions: list[str]
    liquidated: list[str] = field(default_factory=list)
    liquidations: int = 0
    per_position: Counter[str] = field(default_factory=Counter)  # liquidation transactions
    seized_usd: float = 0.0
    repaid_by_liquidator_usd: float = 0.0
    committed_usd: float = 0.0  # top-ups and repays by the keeper
    deleverages: list[DeleverageCost] = field(default_factory=list)  # sales of the positions' own collateral
    gas_by_kind: Counter[str] = field(default_factory=Counter)  # keeper gas per action kind
    released_usd: float = 0.0  # excess withdrawn back to the reserve
    actions: Counter[str] = field(default_factory=Counter)
    keeper_gas: int = 0
    liquidator_gas: int = 0
    min_health: dict[str, float | None] = field(default_factory=dict)
    final_health: dict[str, float | None] = field(default_factory=dict)


@dataclass
class Summary:
    protected: Side  # alice's vault
    twins: Side  # carol, no keeper
    others: Side  # bob (owner-held, protected by his vault), dave and frank (their vaults)
    pairs: list[tuple[str, str]]
    blocks: int
    first_block: int
    last_block: int
    problems: list[str] = field(default_factory=list)
    onchain: list[ChainLiquidation] = field(default_factory=list)
    daemon_exit: int | None = 0  # the daemon's exit code after SIGTERM (0: it stopped cleanly)
    preliquidations: list[Liquidation] = field(default_factory=list)  # through Morpho pre-liquidation contracts

    @property
    def protected_liquidated(self) -> list[str]:
        return self.protected.liquidated + self.others.liquidated

    @property
    def ok(self) -> bool:
        return not self.protected_liquidated and bool(self.twins.liquidated) and self.daemon_exit == 0

    def verdict(self) -> str:
        if self.protected_liquidated:
            return ("FAIL: protected position(s) liquidated despite the keeper: "
                    + ", ".join(sorted(set(self.protected_liquidated))))
        if self.daemon_exit != 0:
            return f"FAIL: the keeper daemon did not run cleanly to the end (exit code {self.daemon_exit})"
        if not self.twins.liquidated:
            return ("FAIL: no unprotected twin was liquidated: the crash did not test the keeper "
                    "(or the liquidator failed)")
        return (f"OK: every protected position survived; {len(self.twins.liquidated)} of {len(self.twins.positions)} "
                f"unprotected twins were liquidated")

    def as_dict(self) -> dict[str, Any]:
        def side(s: Side) -> dict[str, Any]:
            return {"label": s.label, "positions": s.positions, "liquidated": s.liquidated,
                    "liquidations": s.liquidations, "seized_usd": round(s.seized_usd, 2),
                    "repaid_by_liquidator_usd": round(s.repaid_by_liquidator_usd, 2),
                    "committed_usd": round(s.committed_usd, 2), "released_usd": round(s.released_usd, 2),
                    "actions": dict(s.actions), "keeper_gas": s.keeper_gas, "liquidator_gas": s.liquidator_gas,
                    "deleverages": [{"sold_usd": round(d.sold_usd, 2), "bought_usd": round(d.bought_usd, 2),
                                     "repaid_usd": round(d.repaid_usd, 2), "flash_fee_usd": round(d.flash_fee_usd, 2),
                                     "cost_usd": round(d.cost_usd, 2), "penalty_at_stake_usd": d.penalty_at_stake_usd}
                                    for d in s.deleverages],
                    "min_health": {k: _json_num(v) for k, v in s.min_health.items()},
                    "final_health": {k: _json_num(v) for k, v in s.final_health.items()}}

        return {"ok": self.ok, "verdict": self.verdict(), "daemon_exit": self.daemon_exit, "blocks": self.blocks,
                "first_block": self.first_block,
                "last_block": self.last_block, "protected": side(self.protected), "twins": side(self.twins),
                "others": side(self.others), "pairs": self.pairs, "problems": self.problems,
                "onchain_liquidations": [c.__dict__ for c in self.onchain],
                "preliquidations": [x.__dict__ for x in self.preliquidations]}


def _json_num(x: float | None) -> float | str | None:
    if x is None:
        return None
    return round(x, 4) if math.isfinite(x) else "inf"


def summarise(dep: dict[str, Any], records: Sequence[BlockRecord], actions: Sequence[KeeperAction],
              liquidations: Sequence[Liquidation], problems: Sequence[str] = (),
              onchain: Sequence[ChainLiquidation] | None = None,
              preliquidations: Sequence[Liquidation] = ()) -> Summary:
    """``onchain``, when given, is the truth about who was liquidated: the liquidator's own records
    only add what was seized and the gas; a record without its event on chain, or an event the
    liquidator did not report, becomes a problem."""
    problems = list(problems)
    if onchain is not None:
        on_chain_txs = {c.tx for c in onchain}
        reported = {liq.tx for liq in liquidations}
        for liq in liquidations:
            if liq.tx not in on_chain_txs:
                problems.append(f"the liquidator reported {liq.tx} on {liq.position}, "
                                "but no liquidation event is on chain")
        unreported = [c for c in onchain if c.tx not in reported]
        for c in unreported:
            problems.append(f"{c.position} was liquidated in {c.tx} ({c.event}), which the liquidator did not report")
        liquidations = [liq for liq in liquidations if liq.tx in on_chain_txs] + [
            Liquidation(c.block, c.position, c.tx, 0, 0, 0.0, 0.0, {"event": c.event}) for c in unreported]
    ids = [p["id"] for p in dep["positions"]]
    holder = {p["id"]: p["holder"] for p in dep["positions"]}
    # alice's vault against carol's twins; the other protected positions (held by a vault, or by an
    # owner whose vault is authorised on them: bob, dave, frank) apart; watched-only ones (erin) on no side.
    sides = {
        "alice": Side("protected (alice's vault)", [i for i in ids if i.startswith("alice-")]),
        "carol": Side("unprotected twins (carol)", [i for i in ids if holder[i] == "none"]),
        "bob": Side("others protected (bob owner-held, dave's and frank's vaults, gina's pre-liquidation)",
                    [i for i in ids if holder[i] in ("vault", "owner", "preliq") and not i.startswith("alice-")]),
    }
    side_by_id = {pid: side for side in sides.values() for pid in side.positions}

    def side_of(pid: str) -> Side | None:
        return side_by_id.get(pid)

    for liq in liquidations:
        if (s := side_of(liq.position)) is None:
            continue
        s.liquidations += 1
        s.per_position[liq.position] += 1
        s.seized_usd += liq.seized_usd
        s.repaid_by_liquidator_usd += liq.repaid_usd
        s.liquidator_gas += liq.gas_used
        if liq.position not in s.liquidated:
            s.liquidated.append(liq.position)
    for a in actions:
        if (s := side_of(a.position)) is None:
            continue
        s.actions[a.kind] += 1
        s.keeper_gas += a.gas_used
        s.gas_by_kind[a.kind] += a.gas_used
        if a.kind in PROTECTIVE:
            s.committed_usd += a.usd
        elif a.kind == "deleverage" and a.swap is not None:
            s.deleverages.append(a.swap)
        elif a.kind == "withdraw_excess":
            s.released_usd += a.usd
    for pid in ids:
        seen = [h for r in records if (h := r.health.get(pid)) is not None]
        if (s := side_of(pid)) is None:
            continue
        s.min_health[pid] = min(seen) if seen else None
        s.final_health[pid] = records[-1].health.get(pid) if records else None
    pairs = [(pid, t) for pid in sides["alice"].positions if (t := twin_of(pid)) is not None and t in ids]
    first = records[0].block if records else 0
    last = records[-1].block if records else 0
    return Summary(sides["alice"], sides["carol"], sides["bob"], pairs, len(records), first, last, problems,
                   list(onchain or []), preliquidations=list(preliquidations))


# --- rendering ------------------------------------------------------------------------------------
def _usd(x: float) -> str:
    return f"${x:,.0f}"


def _h(x: float | None) -> str:
    if x is None:
        return "gone"
    # truncated, not rounded: 0.9996 must not read as 1.000
    return "no debt" if not math.isfinite(x) else f"{math.floor(x * 1000) / 1000:.3f}"


def _actions(c: Counter[str]) -> str:
    if not c:
        return "0"
    return f"{sum(c.values())} (" + ", ".join(f"{n} {k}" for k, n in sorted(c.items())) + ")"


def render(s: Summary) -> str:
    """A side-by-side table in plain text (what the demo prints)."""
    a, c = s.protected, s.twins
    rows = [
        ("", a.label, c.label),
        ("positions", str(len(a.positions)), str(len(c.positions))),
        ("positions liquidated", str(len(a.liquidated)), str(len(c.liquidated))),
        ("liquidation transactions", str(a.liquidations), str(c.liquidations)),
        ("collateral seized by the liquidator", _usd(a.seized_usd), _usd(c.seized_usd)),
        ("debt repaid by the liquidator", _usd(a.repaid_by_liquidator_usd), _usd(c.repaid_by_liquidator_usd)),
        ("collateral committed by the keeper", _usd(a.committed_usd), _usd(c.committed_usd)),
        ("excess released by the keeper", _usd(a.released_usd), _usd(c.released_usd)),
        ("keeper actions", _actions(a.actions), _actions(c.actions)),
        ("gas used by keeper transactions", f"{a.keeper_gas:,}", f"{c.keeper_gas:,}"),
        ("gas used by liquidator transactions", f"{a.liquidator_gas:,}", f"{c.liquidator_gas:,}"),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{r[0]:<{w0}}  {r[1]:>{w1}}  {r[2]:>{max(len(x[2]) for x in rows)}}" for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines += ["", "health, lowest during the crash / at the end (below 1.000 is liquidatable):"]
    for pid, twin in s.pairs:
        lines.append(f"  {pid.removeprefix('alice-'):<16} alice {_h(a.min_health.get(pid)):>7} / "
                     f"{_h(a.final_health.get(pid)):<7}   carol {_h(c.min_health.get(twin)):>7} / "
                     f"{_h(c.final_health.get(twin)):<7}"
                     + (f"   liquidated x{c.per_position[twin]}" if twin in c.liquidated else ""))
    b = s.others
    if b.positions:
        lines.append(f"  {b.label}: {len(b.liquidated)} liquidated, actions {_actions(b.actions)}, "
                     f"committed {_usd(b.committed_usd)}, lowest health "
                     + ", ".join(f"{p} {_h(b.min_health.get(p))}" for p in b.positions))
    lines += ["", *by_method(s)]
    lines += ["", f"{s.blocks} blocks read ({s.first_block}..{s.last_block})"]
    for p in s.problems[:5]:
        lines.append(f"  daemon reported: {p[:160]}")
    if len(s.problems) > 5:
        lines.append(f"  ... and {len(s.problems) - 5} more in the daemon's log")
    lines.append(s.verdict())
    return "\n".join(lines)


def by_method(s: Summary) -> list[str]:
    """Protection by method, against the liquidation penalty: the reserve's (capital committed,
    returned when released; the penalty avoided is what carol's twins paid) and deleverage's (what
    the sales of the positions' own collateral cost, against the penalty at stake just before)."""
    sides = (s.protected, s.others)
    reserve = sum(sd.committed_usd for sd in sides)
    reserve_n = sum(sd.actions[k] for sd in sides for k in PROTECTIVE)
    paid = s.twins.seized_usd - s.twins.repaid_by_liquidator_usd
    gas = sum(sd.gas_by_kind[k] for sd in sides for k in PROTECTIVE)
    lines = ["protection by method (cost against the liquidation penalty):",
             f"  reserve (top-up, repay, rebalance): {reserve_n} actions, {_usd(reserve)} committed (capital, "
             f"not spent; released when safe), {gas:,} gas; the unprotected twins paid {_usd(paid)} in "
             f"liquidation penalties"]
    dl = [d for sd in sides for d in sd.deleverages]
    if dl:
        sold, cost = sum(d.sold_usd for d in dl), sum(d.cost_usd for d in dl)
        stake = [d.penalty_at_stake_usd for d in dl if d.penalty_at_stake_usd is not None]
        lines.append(f"  deleverage (own collateral, no reserve): {len(dl)} actions, sold {_usd(sold)}, "
                     f"repaid {_usd(sum(d.repaid_usd for d in dl))}; swap and flash cost {_cents(cost)} "
                     f"({cost / sold:.2%} of what was sold), "
                     f"{sum(sd.gas_by_kind['deleverage'] for sd in sides):,} gas"
                     + (f"; liquidation penalty at stake {_usd(max(stake))}" if stake else ""))
    else:
        lines.append("  deleverage (own collateral, no reserve): none")
    pl = s.preliquidations
    if pl:
        repaid = sum(x.repaid_usd for x in pl)
        paid_pl = sum(x.seized_usd - x.repaid_usd for x in pl)
        who = ", ".join(sorted({x.position for x in pl}))
        lines.append(f"  pre-liquidation (no keeper; {who}): {len(pl)} by a third party, repaid {_usd(repaid)}, "
                     f"incentive paid {_cents(paid_pl)} ({paid_pl / repaid:.2%} of what was repaid), "
                     f"{sum(x.gas_used for x in pl):,} gas (the third party's)")
    else:
        lines.append("  pre-liquidation (no keeper): none")
    return lines


def _cents(x: float) -> str:
    return f"${x:,.2f}"
