"""Deleverage as the planner sees it: repay a lending position's debt with its own collateral, in one
vault transaction (``KeeperVault.deleverage``: a flash loan of the debt asset, the repayment, the
collateral withdrawn and sold in a Uniswap v3 pool, the loan paid back). Pure: the route's figures
(the vault's settings, the pool's depth, the flash fee, gas) are read by the app layer.

Amounts. For ``repay`` raw units of the debt asset the vault sells ``sell_raw(repay)`` of the
collateral: the repaid value times ``(1 + flash fee) / (1 - max slippage)`` at the oracle prices,
rounded up. The vault's on-chain bound on the sale is the oracle value less the owner's slippage,
so this sale's bound is exactly what the flash source is owed; ``min_out_raw`` is that bound with a
margin of 1 ppm plus one unit (the keeper's float arithmetic must never ask for less than the
contract's integer bound). What the pool gives beyond it stays in the vault: the owner's.

Cost. What a deleverage loses is the pool's fee and price impact on what it sells plus the flash fee
(``loss_usd``) and the gas it uses beyond a reserve action (``EXTRA_GAS`` at the block's base fee plus
a 1 gwei tip, in ETH at the oracle price); a reserve top-up or repayment loses nothing but ties the reserve up
(``Policy.reserve_cost``: the cost of committing one USD of it, a fraction). Price impact is the
constant-product estimate over the pool's active liquidity, ``V / (depth + V)`` for a sale of value
``V`` against a virtual reserve worth ``depth`` USD (what Uniswap's QuoterV2 would answer while the
sale stays within the current tick range; a larger one crosses ranges, where this is an estimate).
Before anything is sent, the execution pipeline simulates the vault call itself, which runs the real
swap in the real pool: a sale the pool cannot cover at the bound reverts there (``SwapShort``) and is
never broadcast.

Thin pools: a sale can only go through if the pool's fee and impact stay inside the owner's slippage
(with ``IMPACT_MARGIN`` to spare); :func:`largest_sale` is the most that does, and the planner
sizes a deleverage no larger (a partial one, with an alert: the next tick does the rest once
arbitrage has brought the pool back)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from keeper.domain import Address, Position, Side, evolved
from keeper.plan.whatif import AssetParams, _health_wad, held
from keeper.risk.health import lending_health

# The fee and impact of a sale must stay this far (a fraction of its value) inside the owner's
# slippage: the pool moves between the plan and the block.
IMPACT_MARGIN = 0.001
MIN_OUT_MARGIN = 1e-6
# Gas a deleverage uses beyond a reserve top-up or repayment: 524 k against 331 k per action in the
# demo's crash (bench/BENCHMARKS.md, stage 12), rounded up.
EXTRA_GAS = 200_000


@dataclass(frozen=True)
class DeleverageRoute:
    """How one vault can deleverage one lending position: the assets, the pool and flash source the
    owner allow-listed, and what they cost."""

    collateral: AssetParams  # sold
    debt: AssetParams  # repaid
    pool: Address
    flash_source: Address
    flash_fee: float  # of the loan (0 on Morpho Blue)
    pool_fee: float  # of the sale (0.003 for a 0.3 % pool)
    max_slippage: float  # the vault's bound below the oracle value (its maxSlippageBps / 10,000)
    depth_usd: float  # the pool's virtual reserve of the collateral side, in USD
    sell_cap_raw: int  # what the vault's deleverage caps still let it sell now (per call and window)
    gas_usd: float = 0.0  # what its gas costs beyond a reserve action's, at the current fees
    max_repay_raw: int | None = None  # what the flash source can lend of the debt asset (None: not known)

    @property
    def params(self) -> AssetParams:
        """The action's asset: the debt repaid."""
        return self.debt

    def largest_raw(self, position: Position) -> int:
        return self.largest_repay_raw(position)

    def cap_use(self, repay_raw: int) -> tuple[Address, int]:
        """What repaying ``repay_raw`` takes of the vault's caps (on the collateral sold), and its key."""
        return self.collateral.address, self.sell_raw(repay_raw)

    @property
    def cap_raw(self) -> int:
        return self.sell_cap_raw

    def simulate(self, position: Position, repay_raw: int) -> Position:
        return simulate_deleverage(position, self, repay_raw)

    @property
    def sell_per_repay(self) -> float:
        """Collateral value sold per unit of debt value repaid (oracle prices)."""
        return (1.0 + self.flash_fee) / (1.0 - self.max_slippage)

    def sell_raw(self, repay_raw: int) -> int:
        c, d = self.collateral, self.debt
        return math.ceil(repay_raw / d.unit * d.price_usd * self.sell_per_repay / c.price_usd * c.unit)

    def min_out_raw(self, sell_raw: int, repay_raw: int) -> int:
        c, d = self.collateral, self.debt
        bound = sell_raw / c.unit * c.price_usd * (1.0 - self.max_slippage) / d.price_usd * d.unit
        owed = repay_raw * (1.0 + self.flash_fee)
        return math.ceil(max(bound, owed) * (1.0 + MIN_OUT_MARGIN)) + 1

    def impact(self, sell_usd: float) -> float:
        return sell_usd / (self.depth_usd + sell_usd) if self.depth_usd > 0 else 1.0

    def loss_usd(self, repay_raw: int) -> float:
        """Pool fee and price impact on the sale plus the flash fee, in USD (gas apart)."""
        sell_usd = self.sell_raw(repay_raw) / self.collateral.unit * self.collateral.price_usd
        repay_usd = repay_raw / self.debt.unit * self.debt.price_usd
        return sell_usd * (self.pool_fee + self.impact(sell_usd)) + repay_usd * self.flash_fee

    def largest_sale_usd(self) -> float:
        """The largest sale whose fee and impact stay ``IMPACT_MARGIN`` inside the owner's slippage
        (0 when even a small one cannot)."""
        room = self.max_slippage - self.pool_fee - IMPACT_MARGIN
        if room <= 0 or self.depth_usd <= 0:
            return 0.0
        return self.depth_usd * room / (1.0 - room)  # V / (depth + V) = room

    def largest_repay_raw(self, position: Position) -> int:
        """The most debt one deleverage can repay now: the position's debt, what the vault's caps
        let it sell, the pool's depth, the collateral it holds and what the flash source can lend,
        the smallest."""
        c, d = self.collateral, self.debt
        per_repay = d.price_usd / d.unit * self.sell_per_repay  # collateral USD sold per raw repaid
        if per_repay <= 0:
            return 0
        by_cap = min(self.sell_cap_raw, held(position, c, Side.COLLATERAL)) / c.unit * c.price_usd
        by_pool = self.largest_sale_usd()
        most = min(held(position, d, Side.DEBT), math.floor(min(by_cap, by_pool) / per_repay))
        if self.max_repay_raw is not None:
            most = min(most, self.max_repay_raw)
        return max(0, most)


def simulate_deleverage(position: Position, route: DeleverageRoute, repay_raw: int) -> Position:
    """The lending position once ``repay_raw`` of its debt is repaid with ``route.sell_raw`` of its
    collateral (an estimate, as ``whatif.simulate``)."""
    if repay_raw < 0:
        raise ValueError("negative amount")
    if position.perp is not None:
        raise ValueError("a perp position is not deleveraged through a swap")
    sell = route.sell_raw(repay_raw)
    legs, repaid, sold = [], False, False
    for leg in position.legs:
        if not repaid and leg.side is Side.DEBT and leg.asset.address == route.debt.address:
            legs.append(evolved(leg, amount_raw=max(0, leg.amount_raw - repay_raw)))
            repaid = True
        elif not sold and leg.side is Side.COLLATERAL and leg.asset.address == route.collateral.address:
            legs.append(evolved(leg, amount_raw=max(0, leg.amount_raw - sell)))
            sold = True
        else:
            legs.append(leg)
    if not (repaid and sold):
        raise ValueError(f"{position.key} holds no {route.collateral.symbol} collateral against "
                         f"{route.debt.symbol} debt")
    new = tuple(legs)
    return evolved(position, legs=new, health_wad=_health_wad(lending_health(new)))


def deleverage_line(position: Position, route: DeleverageRoute) -> tuple[float, float, float, float] | None:
    """``(num, den, a, b)`` of the health after ``x`` raw repaid, ``(num + a x) / (den + b x)``: the
    weighted collateral loses the sale's weighted value, the debt the repaid value."""
    weighted = sum(leg.value_usd * leg.liquidation_weight for leg in position.legs if leg.side is Side.COLLATERAL)
    debt = sum(leg.value_usd for leg in position.legs if leg.side is Side.DEBT)
    leg = next((lg for lg in position.legs
                if lg.side is Side.COLLATERAL and lg.asset.address == route.collateral.address), None)
    per_raw = route.debt.price_usd / route.debt.unit
    if leg is None or debt <= 0 or per_raw <= 0:
        return None
    return weighted, debt, -leg.liquidation_weight * per_raw * route.sell_per_repay, -per_raw
