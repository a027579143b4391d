"""A Python model of contracts/PerpVault.sol's state, built on keeper/risk/perp_math.py.

Each operation mirrors the contract statement by statement (including the order of its checks), so
after any sequence of transactions the model's integers equal the contract's, and an operation the
contract refuses raises ``ModelRevert`` with the custom error's name. Operations are transactional:
on a revert the model is left as it was (``VaultModel.apply``).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Callable, TypeVar

from keeper.risk import perp_math as pm
from keeper.risk.perp_math import PerpParams, PerpPosition


class ModelRevert(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass(frozen=True)
class TokenCfg:
    decimals: int
    feed_decimals: int
    is_stable: bool
    is_shortable: bool


PosKey = tuple[str, str, str, bool]  # (account, collateralToken, indexToken, isLong)
T = TypeVar("T")


class VaultModel:
    def __init__(self, params: PerpParams, tokens: dict[str, TokenCfg], answers: dict[str, int]) -> None:
        self.params = params
        self.tokens = dict(tokens)
        self.answers = dict(answers)
        self.balance: dict[str, int] = defaultdict(int)  # ERC20 balanceOf(vault)
        self.token_balances: dict[str, int] = defaultdict(int)
        self.pool: dict[str, int] = defaultdict(int)
        self.reserved: dict[str, int] = defaultdict(int)
        self.guaranteed: dict[str, int] = defaultdict(int)
        self.short_sizes: dict[str, int] = defaultdict(int)
        self.short_avg: dict[str, int] = defaultdict(int)
        self.cum_rate: dict[str, int] = defaultdict(int)
        self.last_funding: dict[str, int] = defaultdict(int)
        self.positions: dict[PosKey, PerpPosition] = {}
        self.paid: dict[tuple[str, str], int] = defaultdict(int)  # (token, receiver) -> tokens sent

    # ------------------------------------------------------------------ transactional wrapper

    def apply(self, op: Callable[[VaultModel], T]) -> T:
        """Run ``op`` on a copy of the model; keep the copy only if ``op`` does not raise."""
        trial = copy.deepcopy(self)
        result = op(trial)
        self.__dict__.update(trial.__dict__)
        return result

    # ------------------------------------------------------------------ prices and conversions

    def price(self, token: str) -> int:
        answer = self.answers[token]
        if answer <= 0:
            raise ModelRevert("InvalidPrice")
        return pm.scale_price(answer, self.tokens[token].feed_decimals)

    def to_usd(self, token: str, amount: int) -> int:
        return 0 if amount == 0 else pm.token_to_usd(amount, self.price(token), self.tokens[token].decimals)

    def to_tokens(self, token: str, usd: int) -> int:
        return 0 if usd == 0 else pm.usd_to_token(usd, self.price(token), self.tokens[token].decimals)

    # ------------------------------------------------------------------ pool accounting

    def _increase_pool(self, token: str, amount: int) -> None:
        self.pool[token] += amount
        if self.pool[token] > self.balance[token]:
            raise ModelRevert("PoolExceedsBalance")

    def _decrease_pool(self, token: str, amount: int) -> None:
        if self.pool[token] < amount:
            raise ModelRevert("PoolAmountExceeded")
        self.pool[token] -= amount
        if self.reserved[token] > self.pool[token]:
            raise ModelRevert("ReserveExceedsPool")

    def _increase_reserved(self, token: str, amount: int) -> None:
        self.reserved[token] += amount
        if self.reserved[token] > self.pool[token]:
            raise ModelRevert("ReserveExceedsPool")

    def _decrease_reserved(self, token: str, amount: int) -> None:
        if self.reserved[token] < amount:
            raise ModelRevert("InsufficientReserve")
        self.reserved[token] -= amount

    def _decrease_guaranteed(self, token: str, amount: int) -> None:
        if self.guaranteed[token] < amount:
            raise ModelRevert("Panic")
        self.guaranteed[token] -= amount

    def _transfer_in(self, token: str) -> int:
        delta = self.balance[token] - self.token_balances[token]
        self.token_balances[token] = self.balance[token]
        return delta

    def _transfer_out(self, token: str, amount: int, receiver: str) -> None:
        self.balance[token] -= amount
        self.token_balances[token] = self.balance[token]
        self.paid[(token, receiver)] += amount

    def external_transfer_in(self, token: str, amount: int) -> None:
        """Tokens sent (or minted) to the vault outside its accounting."""
        self.balance[token] += amount

    def direct_pool_deposit(self, token: str) -> None:
        amount = self._transfer_in(token)
        if amount == 0:
            raise ModelRevert("InvalidAmountIn")
        self._increase_pool(token, amount)

    # ------------------------------------------------------------------ funding

    def update_funding(self, token: str, now: int) -> None:
        interval = self.params.funding_interval
        if self.last_funding[token] == 0:
            self.last_funding[token] = now // interval * interval
            return
        if self.last_funding[token] + interval > now:
            return
        factor = (self.params.stable_funding_rate_factor if self.tokens[token].is_stable
                  else self.params.funding_rate_factor)
        self.cum_rate[token] += pm.next_funding_rate(now, self.last_funding[token], interval, factor,
                                                     self.reserved[token], self.pool[token])
        self.last_funding[token] = now // interval * interval

    # ------------------------------------------------------------------ views

    def position(self, key: PosKey) -> PerpPosition:
        return self.positions.get(key, PerpPosition())

    def delta(self, key: PosKey) -> pm.Delta:
        p = self.position(key)
        if p.average_price == 0:
            raise ModelRevert("InvalidAveragePrice")
        return pm.get_delta(p.size, p.average_price, self.price(key[2]), key[3])

    def validate_liquidation(self, key: PosKey, raise_: bool = False) -> pm.LiquidationCheck:
        p = self.position(key)
        d = self.delta(key)
        fees = pm.margin_fees(p.size, self.cum_rate[key[1]], p.entry_funding_rate, self.params.margin_fee_bps)
        check = pm.validate_liquidation(p.collateral, p.size, d.has_profit, d.delta, fees,
                                        self.params.liquidation_fee_usd, self.params.max_leverage_bps)
        if raise_ and check.state != 0:
            raise ModelRevert(check.reason)
        return check

    def health(self, key: PosKey) -> int:
        p = self.position(key)
        if p.size == 0:
            return pm.MAX_UINT256
        d = self.delta(key)
        fees = pm.margin_fees(p.size, self.cum_rate[key[1]], p.entry_funding_rate, self.params.margin_fee_bps)
        return pm.perp_health(p.collateral, p.size, d.has_profit, d.delta, fees,
                              self.params.liquidation_fee_usd, self.params.max_leverage_bps)

    @staticmethod
    def _validate_position(size: int, collateral: int) -> None:
        if size == 0:
            if collateral != 0:
                raise ModelRevert("CollateralShouldBeWithdrawn")
            return
        if size < collateral:
            raise ModelRevert("SizeLessThanCollateral")

    # ------------------------------------------------------------------ positions

    def increase(self, key: PosKey, size_delta: int, now: int) -> None:
        _account, coll_token, index_token, is_long = key
        self.update_funding(coll_token, now)
        p = self.position(key)
        price = self.price(index_token)
        avg = p.average_price
        if p.size == 0:
            avg = price
        if p.size > 0 and size_delta > 0:
            avg = pm.next_average_price(p.size, p.average_price, is_long, price, size_delta)
        fee = pm.position_fee(size_delta, self.params.margin_fee_bps) + \
            pm.funding_fee(p.size, self.cum_rate[coll_token], p.entry_funding_rate)
        collateral_delta = self._transfer_in(coll_token)
        collateral_delta_usd = self.to_usd(coll_token, collateral_delta)
        collateral = p.collateral + collateral_delta_usd
        if collateral < fee:
            raise ModelRevert("InsufficientCollateralForFees")
        collateral -= fee
        size = p.size + size_delta
        p = replace(p, average_price=avg, collateral=collateral, entry_funding_rate=self.cum_rate[coll_token],
                    size=size, last_increased_time=now)
        self.positions[key] = p
        if size == 0:
            raise ModelRevert("InvalidPositionSize")
        self._validate_position(p.size, p.collateral)
        self.validate_liquidation(key, raise_=True)

        reserve_delta = self.to_tokens(coll_token, size_delta)
        self.positions[key] = replace(p, reserve_amount=p.reserve_amount + reserve_delta)
        self._increase_reserved(coll_token, reserve_delta)
        if is_long:
            self.guaranteed[coll_token] += size_delta + fee
            self._decrease_guaranteed(coll_token, collateral_delta_usd)
            self._increase_pool(coll_token, collateral_delta)
        else:
            self._increase_pool(coll_token, self.to_tokens(coll_token, fee))
            if self.short_sizes[index_token] == 0:
                self.short_avg[index_token] = price
            else:
                self.short_avg[index_token] = pm.next_global_short_average_price(
                    self.short_sizes[index_token], self.short_avg[index_token], price, size_delta)
            self.short_sizes[index_token] += size_delta

    def decrease(self, key: PosKey, collateral_delta: int, size_delta: int, receiver: str, now: int) -> int:
        _account, coll_token, index_token, is_long = key
        self.update_funding(coll_token, now)
        p = self.position(key)
        if p.size == 0:
            raise ModelRevert("EmptyPosition")
        if p.size < size_delta:
            raise ModelRevert("PositionSizeExceeded")
        if p.collateral < collateral_delta:
            raise ModelRevert("PositionCollateralExceeded")
        collateral_before = p.collateral
        reserve_delta = p.reserve_amount * size_delta // p.size
        p = replace(p, reserve_amount=p.reserve_amount - reserve_delta)
        self._decrease_reserved(coll_token, reserve_delta)

        # _reduceCollateral
        fee = pm.position_fee(size_delta, self.params.margin_fee_bps) + \
            pm.funding_fee(p.size, self.cum_rate[coll_token], p.entry_funding_rate)
        d = pm.get_delta(p.size, p.average_price, self.price(index_token), is_long)
        adjusted = size_delta * d.delta // p.size
        usd_out, collateral, pnl = 0, p.collateral, p.realised_pnl
        if d.has_profit and adjusted > 0:
            usd_out = adjusted
            pnl += adjusted
            if not is_long:
                self._decrease_pool(coll_token, self.to_tokens(coll_token, adjusted))
        if not d.has_profit and adjusted > 0:
            if collateral < adjusted:
                raise ModelRevert("InsufficientCollateral")
            collateral -= adjusted
            if not is_long:
                self._increase_pool(coll_token, self.to_tokens(coll_token, adjusted))
            pnl -= adjusted
        if collateral_delta > 0:
            if collateral < collateral_delta:
                raise ModelRevert("InsufficientCollateral")
            usd_out += collateral_delta
            collateral -= collateral_delta
        if p.size == size_delta:
            usd_out += collateral
            collateral = 0
        usd_out_after_fee = usd_out
        if usd_out > fee:
            usd_out_after_fee = usd_out - fee
        else:
            if collateral < fee:
                raise ModelRevert("InsufficientCollateral")
            collateral -= fee
        if not is_long:
            self._increase_pool(coll_token, self.to_tokens(coll_token, fee))
        p = replace(p, collateral=collateral, realised_pnl=pnl)

        if p.size != size_delta:
            p = replace(p, entry_funding_rate=self.cum_rate[coll_token], size=p.size - size_delta)
            self.positions[key] = p
            self._validate_position(p.size, p.collateral)
            self.validate_liquidation(key, raise_=True)
            if is_long:
                self.guaranteed[coll_token] += collateral_before - p.collateral
                self._decrease_guaranteed(coll_token, size_delta)
        else:
            if is_long:
                self.guaranteed[coll_token] += collateral_before
                self._decrease_guaranteed(coll_token, size_delta)
            self.positions.pop(key, None)
        if not is_long:
            self.short_sizes[index_token] = max(0, self.short_sizes[index_token] - size_delta)
        if usd_out > 0:
            amount = self.to_tokens(coll_token, usd_out_after_fee)
            if is_long:
                self._decrease_pool(coll_token, amount)
            self._transfer_out(coll_token, amount, receiver)
            return amount
        return 0

    def liquidate(self, key: PosKey, fee_receiver: str, now: int) -> int:
        """Returns the liquidation state that was acted on (1 or 2)."""
        account, coll_token, index_token, is_long = key
        self.update_funding(coll_token, now)
        p = self.position(key)
        if p.size == 0:
            raise ModelRevert("EmptyPosition")
        check = self.validate_liquidation(key)
        if check.state == 0:
            raise ModelRevert("PositionNotLiquidatable")
        if check.state == 2:
            self.decrease(key, 0, p.size, account, now)
            return 2
        self._decrease_reserved(coll_token, p.reserve_amount)
        if is_long:
            self._decrease_guaranteed(coll_token, p.size - p.collateral)
        else:
            self._increase_pool(coll_token, self.to_tokens(coll_token, p.collateral))
            self.short_sizes[index_token] = max(0, self.short_sizes[index_token] - p.size)
        del self.positions[key]
        fee_tokens = self.to_tokens(coll_token, self.params.liquidation_fee_usd)
        self._decrease_pool(coll_token, fee_tokens)
        self._transfer_out(coll_token, fee_tokens, fee_receiver)
        return 1
