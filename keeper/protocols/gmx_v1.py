"""Isolated-margin perps on GMX v1 (gmx-io/gmx-contracts ``core/Vault.sol``) and its forks.

Health is GMX's own liquidation rule, ``VaultUtils.validateLiquidation(..., false)`` as
``liquidatePosition`` runs it (``keeper.risk.perp_math``): remaining collateral after the loss, or
with the profit added; liquidatable below ``marginFees + liquidationFeeUsd`` or below
``size / maxLeverage``. What goes in:

- per position, ``getPosition`` and ``getPositionDelta`` (GMX's ``getDelta``: longs at the index's min
  price, shorts at its max price, the minProfitBps rule applied);
- funding: each chunk first calls ``updateCumulativeFundingRate`` for every market (permissionless;
  ``eth_call`` writes nothing) so the cumulative rate includes every elapsed interval, exactly what
  ``liquidatePosition`` would see, then reads ``cumulativeFundingRates(collateral)``; the fee is
  ``size * (cumulative - entry) / 1e6`` (VaultUtils);
- the closing fee on the whole size at the margin fee *liquidations* run with. On a gated deployment
  (``isLeverageEnabled`` off; production GMX v1) the Vault charges the Timelock's
  ``maxMarginFeeBasisPoints`` (5%) at rest and its ``marginFeeBasisPoints`` (0.1%) only inside
  PositionRouter / PositionManager executions; in ``inPrivateLiquidationMode`` only the
  PositionManager liquidates, inside ``enableLeverage``, so the 0.1% applies. The rule: the Vault's
  own fee, unless the Vault is in private liquidation mode and its governor answers
  ``marginFeeBasisPoints()`` (a GMX Timelock); KeeperVault's ``HealthLib.perp`` uses the same rule.

``validateLiquidation(..., false)`` is read too: where the Vault's current fee is the liquidation fee
its state must equal ours, else the position is flagged "health unverified" (never acted on). A fork
whose VaultUtils computes funding or position fees differently fails that check rather than being
acted on with wrong numbers.

Also reported per position: whether the deployment is gated (increases, margin top-ups included,
only through PositionRouter requests that position keepers execute later: ``extra["gated"]``) and,
when the PositionRouter is configured, its ``depositFee`` (charged on collateral added to a long
without adding size: ``PerpTerms.deposit_fee_bps``) and ``minExecutionFee``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from keeper.chain.multicall import Call, Multicall, Result
from keeper.domain import USD_ASSET, ZERO_ADDRESS, Address, Asset, Leg, PerpTerms, Position, Protocol, Side
from keeper.errors import ConfigError
from keeper.protocols.base import (
    Adapter,
    ReadContext,
    ReadPlan,
    address_word,
    enc_address,
    enc_bool,
    price_issue,
    selector,
    word,
)
from keeper.protocols.erc20 import load_assets
from keeper.risk.perp_math import funding_fee, perp_health, position_fee, validate_liquidation

SEL_GET_POSITION = selector("getPosition(address,address,address,bool)")
SEL_POSITION_DELTA = selector("getPositionDelta(address,address,address,bool)")
SEL_VALIDATE_LIQ = selector("validateLiquidation(address,address,address,bool,bool)")
SEL_MIN_PRICE = selector("getMinPrice(address)")
SEL_MAX_PRICE = selector("getMaxPrice(address)")
SEL_LIQ_FEE = selector("liquidationFeeUsd()")
SEL_MAX_LEVERAGE = selector("maxLeverage()")
SEL_MARGIN_FEE = selector("marginFeeBasisPoints()")
SEL_LEVERAGE_ENABLED = selector("isLeverageEnabled()")
SEL_PRIVATE_LIQ = selector("inPrivateLiquidationMode()")
SEL_GOV = selector("gov()")
SEL_CUMULATIVE_FUNDING = selector("cumulativeFundingRates(address)")
SEL_UPDATE_FUNDING = selector("updateCumulativeFundingRate(address,address)")
SEL_DEPOSIT_FEE = selector("depositFee()")
SEL_MIN_EXECUTION_FEE = selector("minExecutionFee()")
USD = 10**30
BPS = 10_000


@dataclass(frozen=True)
class PerpMarket:
    collateral_token: Address
    index_token: Address
    is_long: bool

    @property
    def key(self) -> str:
        return f"{self.collateral_token}:{self.index_token}:{'long' if self.is_long else 'short'}"


@dataclass(frozen=True)
class VaultState:
    """The Vault-wide values of one read."""

    liquidation_fee_usd: int
    max_leverage_bps: int
    margin_fee_bps: int  # the Vault's current fee (at rest)
    liquidation_margin_fee_bps: int  # the fee liquidations run with (see module doc)
    gated: bool  # isLeverageEnabled off: increases only through PositionRouter requests
    private_liquidation: bool
    deposit_fee_bps: int = 0  # the PositionRouter's (0 when none is configured)
    min_execution_fee: int = 0  # wei, the PositionRouter's


class GmxV1Adapter(Adapter):
    protocol = Protocol.PERP

    def __init__(self, chain: str, vault: Address, markets: Sequence[PerpMarket],
                 position_router: Address | None = None) -> None:
        self.chain = chain
        self.vault = vault
        self.position_router = position_router
        self.markets = list(markets)
        self.assets: dict[Address, Asset] = {}
        self.gov: Address | None = None
        self.state: VaultState | None = None  # as of the last read

    def prepare(self, mc: Multicall, block: int) -> None:
        if not self.assets:
            tokens = sorted({t for m in self.markets for t in (m.collateral_token, m.index_token)})
            self.assets = load_assets(mc, tokens, block)
        if self.gov is None:
            (r,) = mc.call([Call(self.vault, SEL_GOV)], block)
            self.gov = address_word(r.data, 0) if r.success and len(r.data) >= 32 else ZERO_ADDRESS

    def plan(self, accounts: Sequence[Address]) -> ReadPlan:
        markets = list(self.markets)
        prefix = tuple(Call(self.vault, SEL_UPDATE_FUNDING + enc_address(m.collateral_token)
                            + enc_address(m.index_token))
                       for m in markets)
        indexes = sorted({m.index_token for m in markets})
        collaterals = sorted({m.collateral_token for m in markets})
        gov = self.gov or ZERO_ADDRESS
        calls = [Call(self.vault, SEL_LIQ_FEE), Call(self.vault, SEL_MAX_LEVERAGE), Call(self.vault, SEL_MARGIN_FEE),
                 Call(self.vault, SEL_LEVERAGE_ENABLED), Call(self.vault, SEL_PRIVATE_LIQ), Call(self.vault, SEL_GOV),
                 Call(gov, SEL_MARGIN_FEE)]
        if self.position_router:
            calls += [Call(self.position_router, SEL_DEPOSIT_FEE), Call(self.position_router, SEL_MIN_EXECUTION_FEE)]
        n_fixed = len(calls)
        calls += [Call(self.vault, SEL_CUMULATIVE_FUNDING + enc_address(t)) for t in collaterals]
        calls += [Call(self.vault, sel + enc_address(t)) for t in indexes for sel in (SEL_MIN_PRICE, SEL_MAX_PRICE)]
        for m in markets:
            for a in accounts:
                args = (enc_address(a) + enc_address(m.collateral_token) + enc_address(m.index_token)
                        + enc_bool(m.is_long))
                calls.append(Call(self.vault, SEL_GET_POSITION + args))
                calls.append(Call(self.vault, SEL_POSITION_DELTA + args))
                calls.append(Call(self.vault, SEL_VALIDATE_LIQ + args + enc_bool(False)))

        def decode_all(results: Sequence[Result], ctx: ReadContext) -> list[Position]:
            state = self._vault_state(results[:n_fixed])
            self.state = state
            k = n_fixed
            funding = {}
            for t in collaterals:
                funding[t] = word(results[k].data, 0) if results[k].success else None
                k += 1
            marks = {}
            for t in indexes:
                lo, hi = results[k], results[k + 1]
                marks[t] = (word(lo.data, 0) if lo.success else 0, word(hi.data, 0) if hi.success else 0)
                k += 2
            out = []
            for m in markets:
                low, high = marks[m.index_token]
                mark = low if m.is_long else high
                cumulative = funding[m.collateral_token]
                for a in accounts:
                    pos = self._decode(m, a, results[k:k + 3], state, mark, cumulative, ctx)
                    k += 3
                    if pos is not None:
                        out.append(pos)
            return out

        return ReadPlan(calls, decode_all, prefix)

    def _vault_state(self, rs: Sequence[Result]) -> VaultState:
        liq_fee, max_lev, margin, enabled, private, gov, gov_margin = rs[:7]
        deposit_fee = min_fee = 0
        if self.position_router:
            for name, r in (("depositFee", rs[7]), ("minExecutionFee", rs[8])):
                if not r.success:
                    raise ConfigError(f"GMX v1 PositionRouter {self.position_router}: {name}() reverted; "
                                      "is it a GMX v1 PositionRouter?", hint="check chains.<name>.perp.position_router")
            deposit_fee, min_fee = word(rs[7].data, 0), word(rs[8].data, 0)
        for name, r in (("liquidationFeeUsd", liq_fee), ("maxLeverage", max_lev), ("marginFeeBasisPoints", margin)):
            if not r.success:
                raise ConfigError(f"GMX v1 Vault {self.vault}: {name}() reverted; is it a GMX v1 Vault?",
                                  hint="check chains.<name>.perp.vault")
        margin_bps = word(margin.data, 0)
        liq_bps = margin_bps
        is_private = private.success and bool(word(private.data, 0))
        if gov.success and address_word(gov.data, 0) != self.gov:
            self.gov = None  # the governor changed: re-read at the next prepare
        elif is_private and gov_margin.success and len(gov_margin.data) >= 32:
            liq_bps = word(gov_margin.data, 0)
        gated = enabled.success and not bool(word(enabled.data, 0))
        return VaultState(word(liq_fee.data, 0), word(max_lev.data, 0), margin_bps, liq_bps, gated, is_private,
                          deposit_fee, min_fee)

    def _decode(self, m: PerpMarket, account: Address, rs: Sequence[Result], state: VaultState, mark: int,
                cumulative: int | None, ctx: ReadContext) -> Position | None:
        got, delta_r, valid_r = rs
        if not got.success:
            return None
        size, collateral, avg_price, entry_funding = (word(got.data, i) for i in range(4))
        if size == 0:
            return None
        issue: str | None
        if not delta_r.success or mark == 0 or cumulative is None:
            # Health unknown: 0 with price_ok False, so nothing ever acts on it.
            issue = "price unusable: the vault's price or funding read reverted"
            has_profit, delta, state_code, fees, h = True, 0, 0, 0, 0
        else:
            has_profit, delta = bool(word(delta_r.data, 0)), word(delta_r.data, 1)
            fees = (funding_fee(size, max(cumulative, entry_funding), entry_funding)
                    + position_fee(size, state.liquidation_margin_fee_bps))
            check = validate_liquidation(collateral, size, has_profit, delta, fees, state.liquidation_fee_usd,
                                         state.max_leverage_bps)
            state_code = check.state
            h = perp_health(collateral, size, has_profit, delta, fees, state.liquidation_fee_usd,
                            state.max_leverage_bps)
            issue = price_issue(ctx.prices, [m.index_token, m.collateral_token])
            if state.liquidation_margin_fee_bps == state.margin_fee_bps:
                if not valid_r.success:
                    issue = issue or "health unverified: the Vault's validateLiquidation reverted"
                elif word(valid_r.data, 0) != state_code:
                    issue = issue or (f"health unverified: the Vault's validateLiquidation says state "
                                      f"{word(valid_r.data, 0)}, computed {state_code}")
        # decreasePosition validates what stays with _raise (a profit not counted) at the Vault's
        # current fee: what may leave is what stays above that rule.
        at_rest = (funding_fee(size, max(cumulative or 0, entry_funding), entry_funding)
                   + position_fee(size, state.margin_fee_bps))
        kept = collateral - (0 if has_profit else delta)
        need = max(at_rest + state.liquidation_fee_usd, -(-size * BPS // max(state.max_leverage_bps, 1)))
        release_cap = max(0, kept - need) / USD if issue is None else 0.0
        index = self.assets[m.index_token]
        terms = PerpTerms(index=index, is_long=m.is_long, size_usd=size / USD, collateral_usd=collateral / USD,
                          average_price=avg_price / USD, mark_price=mark / USD, margin_fees_usd=fees / USD,
                          liquidation_fee_usd=state.liquidation_fee_usd / USD,
                          max_leverage=state.max_leverage_bps / BPS, liquidation_state=state_code,
                          deposit_fee_bps=state.deposit_fee_bps if m.is_long and state.gated else 0,
                          release_cap_usd=release_cap, margin_fee_bps=state.liquidation_margin_fee_bps)
        # GMX v1 books collateral in USD at deposit: one leg in USD (1e30), the exposure is in ``perp``.
        legs = (Leg(USD_ASSET, Side.COLLATERAL, collateral, 1.0),)
        return Position(
            chain=ctx.chain, protocol=self.protocol, protocol_address=self.vault, account=account, market=m.key,
            legs=legs, health_wad=h, block=ctx.block, perp=terms, price_ok=issue is None, price_issue=issue,
            extra={"entry_funding_rate": entry_funding, "has_profit": has_profit, "delta": delta,
                   "size": size, "collateral": collateral, "margin_fees": fees, "gated": state.gated,
                   "liquidation_margin_fee_bps": state.liquidation_margin_fee_bps},
        )

