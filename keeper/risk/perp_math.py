"""Integer maths of GMX v1 isolated-margin perps, as gmx-io/gmx-contracts computes it
(``contracts/core/Vault.sol`` and ``contracts/core/VaultUtils.sol``).

Pure: no web3, no I/O, no clock. Every function takes and returns the contracts' integers (USD at
1e30, funding rates at 1e6, basis points at 1e4, token base units) and uses floor division exactly
where Solidity does, so a result here equals GMX v1's to the unit.

Reproduced:

- Marks: the vault values a long at the index token's *min* price (``getMinPrice``) and a short at
  its *max* price (``getMaxPrice``); the ``price`` passed to :func:`get_delta` and
  :func:`position_check` must be that one. (Without a spread both are the oracle price.)
- ``getDelta``: ``delta = size * |price - averagePrice| / averagePrice``; longs profit when the
  mark is above the average price, shorts when it is below. Within ``minProfitTime`` of the last
  increase (``now <= lastIncreasedTime + minProfitTime``) a profit at or below the index's
  ``minProfitBasisPoints`` of the size counts as 0 (see :func:`get_delta`).
- ``getPositionFee``: ``sizeDelta - sizeDelta * (10000 - marginFeeBps) / 10000`` (rounds up).
- ``getFundingFee``: ``size * (cumulativeFundingRate - entryFundingRate) / 1e6``.
- ``getNextFundingRate``: ``factor * reservedAmount * intervals / poolAmount`` per whole
  ``fundingInterval`` elapsed since ``lastFundingTime``.
- ``getNextAveragePrice``: ``nextPrice * nextSize / (nextSize +- delta)``.
- ``validateLiquidation``: see :func:`validate_liquidation`. ``liquidatePosition`` calls it with
  ``_raise = false``, and then an unrealised *profit is added* to the collateral; the leverage test
  is ``remaining * maxLeverage < size * 10000``, without subtracting the fees.
"""

from __future__ import annotations

from dataclasses import dataclass

BASIS_POINTS_DIVISOR = 10_000
FUNDING_RATE_PRECISION = 1_000_000
PRICE_PRECISION = 10**30
HEALTH_ONE = 10**18
MAX_UINT256 = 2**256 - 1

HEALTHY = 0
LIQUIDATABLE = 1
MAX_LEVERAGE_EXCEEDED = 2


@dataclass(frozen=True)
class PerpParams:
    """The vault's risk parameters (GMX v1's usual values).

    ``margin_fee_bps`` is the position fee *liquidations run with*. On GMX v1 a liquidation goes
    through ``PositionManager.liquidatePosition``, which wraps ``Vault.liquidatePosition`` in the
    Timelock's ``enableLeverage``/``disableLeverage``: for that call the vault's
    ``marginFeeBasisPoints`` is the Timelock's ``marginFeeBasisPoints`` (10 = 0.1%), not the resting
    value (``maxMarginFeeBasisPoints``) that a plain view call of ``validateLiquidation`` would see."""

    max_leverage_bps: int = 500_000  # 50x
    margin_fee_bps: int = 10  # 0.1% of size, the fee liquidations run with (see above)
    liquidation_fee_usd: int = 5 * PRICE_PRECISION  # 5 USD
    funding_interval: int = 3600
    funding_rate_factor: int = 100
    stable_funding_rate_factor: int = 100


@dataclass(frozen=True)
class PerpPosition:
    """One position as ``Vault.positions(key)`` stores it (USD at 1e30; ``realised_pnl`` signed)."""

    size: int = 0
    collateral: int = 0
    average_price: int = 0
    entry_funding_rate: int = 0
    reserve_amount: int = 0
    realised_pnl: int = 0
    last_increased_time: int = 0


@dataclass(frozen=True)
class Delta:
    """``getDelta``'s answer: unrealised PnL magnitude and its sign."""

    has_profit: bool
    delta: int


@dataclass(frozen=True)
class LiquidationCheck:
    """``validateLiquidation``'s answer: ``state`` 0 healthy, 1 liquidatable, 2 over max leverage."""

    state: int
    margin_fees: int
    reason: str = ""

    @property
    def liquidatable(self) -> bool:
        return self.state != HEALTHY


def scale_price(answer: int, feed_decimals: int) -> int:
    """A Chainlink answer as a 1e30 price (``getMinPrice``/``getMaxPrice``; no spread)."""
    if answer <= 0:
        raise ValueError(f"feed answer {answer} is not positive (VaultPriceFeed: invalid price)")
    scale: int = 10**feed_decimals
    return answer * PRICE_PRECISION // scale


def token_to_usd(amount: int, price: int, token_decimals: int) -> int:
    """``tokenToUsdMin``: ``amount * price / 10**decimals``."""
    if amount == 0:
        return 0
    scale: int = 10**token_decimals
    return amount * price // scale


def usd_to_token(usd: int, price: int, token_decimals: int) -> int:
    """``usdToTokenMin``/``usdToTokenMax`` (equal without a spread): ``usd * 10**decimals / price``."""
    if usd == 0:
        return 0
    scale: int = 10**token_decimals
    return usd * scale // price


def get_delta(size: int, average_price: int, price: int, is_long: bool, *, last_increased_time: int = 0,
              now: int = 0, min_profit_time: int = 0, min_profit_bps: int = 0) -> Delta:
    """GMX v1 ``getDelta`` at the mark ``price`` (``getMinPrice`` for longs, ``getMaxPrice`` for
    shorts).

    The min-profit rule: while ``now <= last_increased_time + min_profit_time`` (the vault's
    ``minProfitTime``), a profit with ``delta * 10000 <= size * min_profit_bps`` (the index's
    ``minProfitBasisPoints``) is reported as ``(True, 0)``. Once ``now`` is past that time, or with
    ``min_profit_bps`` 0 (the default), no threshold applies. Losses are never affected.

    Raises ``ValueError`` when ``average_price`` is 0, where the contract reverts (error 38, an
    empty position)."""
    if average_price <= 0:
        raise ValueError("average price is zero (Vault.getDelta reverts, error 38)")
    price_delta = abs(average_price - price)
    delta = size * price_delta // average_price
    has_profit = price > average_price if is_long else average_price > price
    min_bps = 0 if now > last_increased_time + min_profit_time else min_profit_bps
    if has_profit and delta * BASIS_POINTS_DIVISOR <= size * min_bps:
        delta = 0
    return Delta(has_profit, delta)


def position_fee(size_delta: int, margin_fee_bps: int) -> int:
    """GMX v1 ``getPositionFee``: the margin fee on ``size_delta``, rounded up by construction."""
    if size_delta == 0:
        return 0
    after_fee = size_delta * (BASIS_POINTS_DIVISOR - margin_fee_bps) // BASIS_POINTS_DIVISOR
    return size_delta - after_fee


def funding_fee(size: int, cumulative_funding_rate: int, entry_funding_rate: int) -> int:
    """GMX v1 ``getFundingFee``: funding owed by ``size`` since it entered at ``entry_funding_rate``."""
    if size == 0:
        return 0
    rate = cumulative_funding_rate - entry_funding_rate
    if rate < 0:
        raise ValueError("entry funding rate above the cumulative rate (the contract underflows)")
    return size * rate // FUNDING_RATE_PRECISION


def margin_fees(size: int, cumulative_funding_rate: int, entry_funding_rate: int, margin_fee_bps: int) -> int:
    """What closing the whole position costs: funding fee plus the position fee on ``size``
    (the ``marginFees`` of ``validateLiquidation`` before any cap)."""
    return funding_fee(size, cumulative_funding_rate, entry_funding_rate) + position_fee(size, margin_fee_bps)


def next_funding_rate(now: int, last_funding_time: int, funding_interval: int, factor: int,
                      reserved_amount: int, pool_amount: int) -> int:
    """GMX v1 ``getNextFundingRate``: the rate to add for the whole intervals elapsed, 0 before one
    has elapsed or when the pool is empty. ``factor`` is the stable or the non-stable factor."""
    if last_funding_time + funding_interval > now:
        return 0
    intervals = (now - last_funding_time) // funding_interval
    if pool_amount == 0:
        return 0
    return factor * reserved_amount * intervals // pool_amount


def next_average_price(size: int, average_price: int, is_long: bool, next_price: int, size_delta: int,
                       mark_price: int | None = None) -> int:
    """GMX v1 ``getNextAveragePrice``: ``next_price * nextSize / divisor`` with
    longs ``nextSize + delta`` on profit, ``- delta`` on loss; shorts the other way round.

    ``mark_price`` is the price ``getDelta`` uses (min for longs, max for shorts); it defaults to
    ``next_price``, which is the same thing without a spread."""
    d = get_delta(size, average_price, next_price if mark_price is None else mark_price, is_long)
    next_size = size + size_delta
    if is_long:
        divisor = next_size + d.delta if d.has_profit else next_size - d.delta
    else:
        divisor = next_size - d.delta if d.has_profit else next_size + d.delta
    return next_price * next_size // divisor


def next_global_short_average_price(global_size: int, global_average_price: int, next_price: int,
                                    size_delta: int) -> int:
    """GMX v1 ``getNextGlobalShortAveragePrice`` (same shape as a short's next average price)."""
    price_delta = abs(global_average_price - next_price)
    delta = global_size * price_delta // global_average_price
    has_profit = global_average_price > next_price
    next_size = global_size + size_delta
    divisor = next_size - delta if has_profit else next_size + delta
    return next_price * next_size // divisor


def validate_liquidation(collateral: int, size: int, has_profit: bool, delta: int, margin_fees: int,
                         liquidation_fee_usd: int, max_leverage_bps: int, *,
                         raise_: bool = False) -> LiquidationCheck:
    """GMX v1 ``VaultUtils.validateLiquidation``, in its order of checks:

    1. a loss larger than the collateral -> 1 ("losses exceed collateral");
    2. ``remaining = collateral - loss``; on a profit ``remaining = collateral + profit`` unless
       ``raise_`` (GMX's ``_raise``: ``liquidatePosition`` passes false, so the profit is added;
       with true the collateral alone counts);
    3. ``remaining < marginFees`` -> 1, with ``marginFees`` capped to ``remaining``;
    4. ``remaining < marginFees + liquidationFeeUsd`` -> 1;
    5. ``remaining * maxLeverage < size * 10000`` -> 2 (over max leverage; the fees are *not*
       subtracted here);
    6. otherwise 0.

    ``has_profit``/``delta`` are :func:`get_delta`'s answer at the mark; ``margin_fees`` is
    :func:`margin_fees` (funding fee plus the position fee on the whole size). Where the contract
    reverts under ``_raise`` this returns the state it would have returned without reverting (no
    exception)."""
    if not has_profit and collateral < delta:
        return LiquidationCheck(LIQUIDATABLE, margin_fees, "LossesExceedCollateral")
    remaining = collateral
    if not has_profit:
        remaining = collateral - delta
    if not raise_ and has_profit:
        remaining = collateral + delta
    if remaining < margin_fees:
        return LiquidationCheck(LIQUIDATABLE, remaining, "FeesExceedCollateral")
    if remaining < margin_fees + liquidation_fee_usd:
        return LiquidationCheck(LIQUIDATABLE, margin_fees, "LiquidationFeesExceedCollateral")
    if remaining * max_leverage_bps < size * BASIS_POINTS_DIVISOR:
        return LiquidationCheck(MAX_LEVERAGE_EXCEEDED, margin_fees, "MaxLeverageExceeded")
    return LiquidationCheck(HEALTHY, margin_fees)


def perp_health(collateral: int, size: int, has_profit: bool, delta: int, margin_fees: int,
                liquidation_fee_usd: int, max_leverage_bps: int) -> int:
    """Health of a position at 1e18 scale: below ``1e18`` exactly when
    ``validate_liquidation(..., raise_=False)`` (what ``liquidatePosition`` runs) returns 1 or 2.

    With ``remaining = collateral - loss`` or ``collateral + profit``::

        min(remaining * maxLeverage * 1e18 / (size * 10000),
            (remaining - marginFees) * 1e18 / liquidationFeeUsd)

    (floor divisions; the second term dropped when ``liquidation_fee_usd == 0``); 0 when the loss
    exceeds the collateral or ``remaining < marginFees``; ``2**256 - 1`` when ``size == 0`` (GMX
    reverts on an empty position before ``validateLiquidation``).

    Why exact: for integers ``a >= 0``, ``b > 0``, ``floor(a * 1e18 / b) < 1e18`` iff ``a < b``. So
    the first term is below 1e18 iff ``remaining * maxLeverage < size * 10000`` (check 5) and the
    second iff ``remaining - marginFees < liquidationFeeUsd`` (check 4, which with a zero
    liquidation fee is check 3, already returned 0)."""
    if size == 0:
        return MAX_UINT256
    if not has_profit and delta > collateral:
        return 0
    remaining = collateral - delta if not has_profit else collateral + delta
    if remaining < margin_fees:
        return 0
    health = remaining * max_leverage_bps * HEALTH_ONE // (size * BASIS_POINTS_DIVISOR)
    if liquidation_fee_usd > 0:
        health = min(health, (remaining - margin_fees) * HEALTH_ONE // liquidation_fee_usd)
    return min(health, MAX_UINT256)


def position_check(position: PerpPosition, price: int, is_long: bool, cumulative_funding_rate: int,
                   params: PerpParams, *, now: int = 0, min_profit_time: int = 0,
                   min_profit_bps: int = 0) -> tuple[Delta, LiquidationCheck, int]:
    """Delta, ``validateLiquidation`` (as ``liquidatePosition`` calls it: ``_raise = false``) and
    health of a stored position at the mark ``price`` (min price for a long, max for a short).
    ``now``/``min_profit_time``/``min_profit_bps``: :func:`get_delta`'s min-profit rule, off by
    default."""
    d = get_delta(position.size, position.average_price, price, is_long,
                  last_increased_time=position.last_increased_time, now=now,
                  min_profit_time=min_profit_time, min_profit_bps=min_profit_bps)
    fees = margin_fees(position.size, cumulative_funding_rate, position.entry_funding_rate,
                       params.margin_fee_bps)
    check = validate_liquidation(position.collateral, position.size, d.has_profit, d.delta, fees,
                                 params.liquidation_fee_usd, params.max_leverage_bps)
    health = perp_health(position.collateral, position.size, d.has_profit, d.delta, fees,
                         params.liquidation_fee_usd, params.max_leverage_bps)
    return d, check, health
