"""EIP-1559 gas bids as a capped, pure function of urgency and elapsed time (DESIGN.md style rule 2).

- The base fee a transaction must clear is projected from the latest block: EIP-1559 moves it by at
  most 12.5% per block, so ``k`` blocks ahead it is at most ``base * 1.125**k``.
- The tip grows with urgency (0..1) and geometrically with every replacement (pymaker's
  GeometricGasPrice idea): a resend on the same nonce only with both fields raised by >= 12.5%,
  the replacement rule of geth and anvil.
- Caps from config: ``max_fee_cap`` and ``max_priority_fee_cap``. Only the urgency rule stated in
  config may exceed them, up to ``urgent_max_fee_cap``, and only when urgency >= ``urgent_threshold``.
Everything is in wei, integers, rounded up (a bid that is a wei short is a bid that waits)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

GWEI = 10**9
BUMP_NUM, BUMP_DEN = 9, 8  # 12.5%: the minimum replacement bump nodes accept


@dataclass(frozen=True)
class FeePolicy:
    min_priority_fee: int = 1 * GWEI
    max_priority_fee: int = 5 * GWEI
    max_fee_cap: int = 200 * GWEI
    max_priority_fee_cap: int = 20 * GWEI
    headroom_blocks: int = 3  # the bid covers the base fee rising this many full blocks
    bump_factor: float = 1.125  # per replacement; >= 1.125
    urgent_threshold: float | None = None  # urgency at which the urgent cap applies (None: never)
    urgent_max_fee_cap: int | None = None

    def __post_init__(self) -> None:
        if self.bump_factor < 1.125:
            raise ValueError("bump_factor must be >= 1.125 (nodes refuse smaller replacements)")
        if self.min_priority_fee > self.max_priority_fee:
            raise ValueError("min_priority_fee > max_priority_fee")
        if (self.urgent_threshold is None) != (self.urgent_max_fee_cap is None):
            raise ValueError("urgent_threshold and urgent_max_fee_cap go together")
        if self.urgent_max_fee_cap is not None and self.urgent_max_fee_cap < self.max_fee_cap:
            raise ValueError("urgent_max_fee_cap below max_fee_cap")


@dataclass(frozen=True)
class Bid:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    capped: bool = False  # the cap bound the bid: it may not be mined while the base fee is above it
    over_normal_cap: bool = False  # the urgency rule let it exceed max_fee_cap
    reason: str = ""


def next_base_fee(base_fee: int, gas_used: int, gas_limit: int) -> int:
    """EIP-1559's base fee of the next block (elasticity 2, denominator 8)."""
    target = gas_limit // 2
    if target == 0 or gas_used == target:
        return base_fee
    if gas_used > target:
        delta = max(base_fee * (gas_used - target) // target // 8, 1)
        return base_fee + delta
    return base_fee - base_fee * (target - gas_used) // target // 8


def projected_base_fee(base_fees: Sequence[int], blocks_ahead: int) -> int:
    """The worst case ``blocks_ahead`` blocks after the latest of ``base_fees`` (from
    ``eth_feeHistory``; the last entry is the pending block's)."""
    if not base_fees:
        raise ValueError("no base fee history")
    return math.ceil(base_fees[-1] * (1.125 ** max(blocks_ahead, 0)))


def urgency(p_liq: float, epsilon: float, blocks_left: float | None = None) -> float:
    """0 (routine) .. 1 (a liquidation is imminent): how far P(liq) is above the budget, raised
    when little time is left (``blocks_left`` until the forecast crossing, if known)."""
    if epsilon <= 0:
        raise ValueError("epsilon must be > 0")
    u = 0.0 if p_liq <= epsilon else min(1.0, math.log(p_liq / epsilon) / math.log(max(1 / epsilon, 2.0)))
    if blocks_left is not None and blocks_left <= 10:
        u = max(u, 1.0 - blocks_left / 10)
    return max(0.0, min(1.0, u))


def bid(base_fees: Sequence[int], urgency_: float, replacements: int, policy: FeePolicy) -> Bid:
    """The bid for a first send (``replacements=0``) or its n-th replacement."""
    if not 0 <= urgency_ <= 1:
        raise ValueError("urgency must be within [0, 1]")
    base = projected_base_fee(base_fees, policy.headroom_blocks)
    tip = policy.min_priority_fee + urgency_ * (policy.max_priority_fee - policy.min_priority_fee)
    tip = math.ceil(tip * policy.bump_factor**replacements)
    max_fee = base + tip
    cap = policy.max_fee_cap
    urgent = policy.urgent_threshold is not None and urgency_ >= policy.urgent_threshold
    if urgent and policy.urgent_max_fee_cap is not None:  # set whenever urgent_threshold is (__post_init__)
        cap = policy.urgent_max_fee_cap
    tip_cap = policy.max_priority_fee_cap if not urgent else max(policy.max_priority_fee_cap, tip)
    capped = False
    if tip > tip_cap:
        tip, capped = tip_cap, True
    max_fee = base + tip
    if max_fee > cap:
        max_fee, capped = cap, True
    tip = min(tip, max_fee)
    over = max_fee > policy.max_fee_cap
    why = (f"base {base / GWEI:.2f} gwei (+{policy.headroom_blocks} blocks), "
           f"tip {tip / GWEI:.2f} gwei, urgency {urgency_:.2f}")
    if replacements:
        why += f", replacement {replacements}"
    if capped:
        why += f", capped at {cap / GWEI:.2f} gwei"
    if over:
        why += " (urgency rule above the normal cap)"
    return Bid(max_fee, tip, capped, over, why)


def replacement(prev: Bid, new: Bid) -> Bid | None:
    """The bid for a resend on the same nonce: both fields at least 12.5% above ``prev`` (rounded
    up). None when the cap does not allow that much (the caller waits instead of sending a
    replacement nodes would refuse)."""
    min_fee = -(-prev.max_fee_per_gas * BUMP_NUM // BUMP_DEN)
    min_tip = -(-prev.max_priority_fee_per_gas * BUMP_NUM // BUMP_DEN)
    fee = max(new.max_fee_per_gas, min_fee)
    tip = max(new.max_priority_fee_per_gas, min_tip)
    if new.capped and fee > new.max_fee_per_gas:
        return None
    tip = min(tip, fee)
    if tip < min_tip:
        return None
    return Bid(fee, tip, new.capped, new.over_normal_cap, new.reason + ", bumped >= 12.5%")
