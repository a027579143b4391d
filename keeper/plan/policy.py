"""The planner's inputs and outputs: the risk policy, the vault's reserve, and the plan (actions,
skips, alerts). Pure data; ``keeper.plan.planner`` re-exports them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from keeper.domain import Action, Address
from keeper.plan.allocate import Allocation


@dataclass(frozen=True)
class Policy:
    epsilon: float = 0.01  # risk budget: P(liquidation within the horizon)
    horizon_hours: float = 24.0
    target_fraction: float = 0.5  # land at P <= epsilon * target_fraction
    release_fraction: float = 0.05  # withdraw only when P < epsilon * release_fraction
    min_action_usd: float = 50.0
    cooldown_blocks: int = 10
    release_cooldown_blocks: int = 300  # no release this soon after any action on the position
    max_actions_per_tick: int = 10
    default_health_floor: float = 1.1  # when the vault's floor for a position is not given
    floor_margin: float = 0.005  # withdrawals keep health >= floor * (1 + margin): ours is an estimate
    aave_bonus: float = 0.05  # liquidation bonus for the expected loss of Aave-style positions
    partial_steps: int = 4  # menu points per position when the reserve is short
    # What committing one USD of the reserve to a position costs (a fraction: the yield it forgoes while
    # it is committed). A deleverage is chosen over a funded top-up or repayment when its swap and flash
    # costs and gas are below this share of what the reserve would commit (and whenever the reserve is short).
    reserve_cost: float = 0.002
    # Price-move bands (the backtests' ``RiskPolicy(target_gap=, release_gap=)``): land a protective
    # action a log move ``target_gap`` of the position's factor beyond the trigger distance where
    # P = epsilon, release only beyond another ``release_gap``. They replace the two fractions.
    target_gap: float | None = None
    release_gap: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.epsilon < 1:
            raise ValueError("epsilon must be in (0, 1)")
        if (self.target_gap is None) != (self.release_gap is None):
            raise ValueError("target_gap and release_gap go together")
        if (self.target_gap is not None and self.release_gap is not None
                and not (0 < self.target_gap < 1 and 0 < self.release_gap < 1)):
            raise ValueError("target_gap and release_gap must be fractions in (0, 1)")
        if not 0 <= self.reserve_cost < 1:
            raise ValueError("reserve_cost must be in [0, 1)")
        if not 0 < self.release_fraction < self.target_fraction <= 1:
            raise ValueError("need 0 < release_fraction < target_fraction <= 1")
        if (self.cooldown_blocks < 0 or self.release_cooldown_blocks < 0 or self.max_actions_per_tick < 1
                or self.partial_steps < 1):
            raise ValueError("bad cooldown_blocks / max_actions_per_tick / partial_steps")

    @property
    def target(self) -> float:
        return self.epsilon * self.target_fraction

    @property
    def release(self) -> float:
        return self.epsilon * self.release_fraction


@dataclass(frozen=True)
class Reserve:
    """The vault's reserve: raw balances by token address."""

    balances: Mapping[Address, int] = field(default_factory=dict, hash=False)

    def get(self, address: Address) -> int:
        return self.balances.get(address, 0)


@dataclass(frozen=True)
class PlanAlert:
    """Something the planner could not do: ``kind`` is ``reserve_short`` (the vault's reserve cannot
    fund every protection) or ``unprotected`` (a position above its budget that no action covers)."""

    kind: str
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    skipped: tuple[tuple[str, str], ...]  # (position key, why no action)
    alerts: tuple[PlanAlert, ...]
    p_liq: dict[str, float] = field(default_factory=dict)  # the forecast of every assessed position
    allocation: Allocation | None = None  # when the reserve was short
