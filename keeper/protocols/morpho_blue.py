"""Morpho Blue: positions of accounts in configured markets, with health exactly as the contract
computes it at the block, interest included.

Each chunk of the tick's multicall first calls ``Morpho.accrueInterest(marketParams)`` for every
market (permissionless; inside ``eth_call`` nothing is written), so ``market(id)`` then returns the
totals with interest accrued up to the block by Morpho's own code and IRM. Health, at 1e18:
    borrowed  = borrowShares -> assets, rounded up (SharesMathLib.toAssetsUp, virtual shares 1e6)
    maxBorrow = collateral * price / 1e36 (down) * lltv / 1e18 (down)
    health    = maxBorrow * 1e18 / borrowed   (< 1e18 exactly when Morpho's _isHealthy is false)

With a pre-liquidation factory configured (``keeper.protocols.morpho_preliq``), a position with debt in
a market that has PreLiquidation contracts is read once more, in a follow-up round at the same block:
whether its borrower authorised one (``Position.preliq``: the lowest pre-LLTV authorised).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from keeper.chain.multicall import Call, Multicall, Result
from keeper.domain import MAX_UINT256, WAD, Address, Asset, Leg, Position, PreLiqTerms, Protocol, Side, evolved
from keeper.errors import ConfigError
from keeper.protocols.base import Adapter, ReadContext, ReadPlan, address_word, enc_address, enc_uint, price_issue, word
from keeper.protocols.erc20 import load_assets
from keeper.protocols.morpho_preliq import SEL_IS_AUTHORIZED, PreLiqIndex

SEL_POSITION = bytes.fromhex("93c52062")
SEL_MARKET = bytes.fromhex("5c60e39a")
SEL_PARAMS = bytes.fromhex("2c3c9157")
SEL_PRICE = bytes.fromhex("a035b1fe")
SEL_ACCRUE = bytes.fromhex("151c1ade")
ORACLE_PRICE_SCALE = 10**36
VIRTUAL_SHARES = 10**6
VIRTUAL_ASSETS = 1


@dataclass(frozen=True)
class MarketParams:
    id: str
    loan: Asset
    collateral: Asset
    oracle: Address
    irm: Address
    lltv: int

    def encoded(self) -> bytes:
        return (enc_address(self.loan.address) + enc_address(self.collateral.address) + enc_address(self.oracle)
                + enc_address(self.irm) + enc_uint(self.lltv))


def to_assets_up(shares: int, total_assets: int, total_shares: int) -> int:
    num = shares * (total_assets + VIRTUAL_ASSETS)
    den = total_shares + VIRTUAL_SHARES
    return -(-num // den)


def health_wad(collateral: int, price: int, lltv: int, borrowed: int) -> int:
    if borrowed == 0:
        return MAX_UINT256
    max_borrow = collateral * price // ORACLE_PRICE_SCALE * lltv // WAD
    return max_borrow * WAD // borrowed


class MorphoBlueAdapter(Adapter):
    protocol = Protocol.MORPHO_BLUE

    def __init__(self, chain: str, morpho: Address, market_ids: Sequence[str],
                 preliq: PreLiqIndex | None = None) -> None:
        self.chain = chain
        self.morpho = morpho
        self.market_ids = [m.lower() for m in market_ids]  # market ids (bytes32), not addresses
        self.markets: list[MarketParams] = []
        self.preliq = preliq

    def prepare(self, mc: Multicall, block: int) -> None:
        if self.preliq is not None:
            self.preliq.refresh(mc.client, block)
        if self.markets:
            return  # market params are immutable in Morpho Blue
        results = mc.call([Call(self.morpho, SEL_PARAMS + bytes.fromhex(m[2:]), allow_failure=False)
                           for m in self.market_ids], block)
        raw = [(address_word(r.data, 0), address_word(r.data, 1), address_word(r.data, 2), address_word(r.data, 3),
                word(r.data, 4)) for r in results]
        for mid, (loan, _c, _o, _i, _l) in zip(self.market_ids, raw):
            if int(loan, 16) == 0:
                raise ConfigError(f"Morpho market {mid} does not exist at {self.morpho}")
        tokens = sorted({a for p in raw for a in p[:2]})
        assets = load_assets(mc, tokens, block)
        self.markets = [MarketParams(mid, assets[p[0]], assets[p[1]], p[2], p[3], p[4])
                        for mid, p in zip(self.market_ids, raw)]

    def plan(self, accounts: Sequence[Address]) -> ReadPlan:
        markets = list(self.markets)
        prefix = tuple(Call(self.morpho, SEL_ACCRUE + m.encoded()) for m in markets)
        calls = []
        for m in markets:
            mid = bytes.fromhex(m.id[2:])
            calls.append(Call(self.morpho, SEL_MARKET + mid))
            calls.append(Call(m.oracle, SEL_PRICE))
            calls.extend(Call(self.morpho, SEL_POSITION + mid + enc_address(a)) for a in accounts)
        per = 2 + len(accounts)

        held: list[Position] = []  # positions whose pre-liquidation authorisations are read next

        def decode_all(results: Sequence[Result], ctx: ReadContext) -> list[Position]:
            out: list[Position] = []
            held.clear()
            for k, m in enumerate(markets):
                chunk = results[k * per:(k + 1) * per]
                for pos in self._decode_market(m, chunk, accounts, ctx):
                    candidates = self.preliq.for_market(m.id) if self.preliq is not None else []
                    (held if candidates and pos.debt_usd > 0 else out).append(pos)
            return out

        def follow_up(mc: Multicall, ctx: ReadContext) -> ReadPlan | None:
            if not held or self.preliq is None:
                return None
            pairs = [(pos, t) for pos in held for t in self.preliq.for_market(pos.market)]
            auth_calls = [Call(self.morpho, SEL_IS_AUTHORIZED + enc_address(pos.account) + enc_address(t.address))
                          for pos, t in pairs]
            positions = list(held)

            def attach(results: Sequence[Result], ctx: ReadContext) -> list[Position]:
                best: dict[str, PreLiqTerms] = {}
                for (pos, t), r in zip(pairs, results):
                    authorised = r.success and len(r.data) >= 32 and word(r.data, 0)
                    if authorised and (pos.key not in best or t.pre_lltv < best[pos.key].pre_lltv):
                        best[pos.key] = t
                return [evolved(pos, preliq=best[pos.key]) if pos.key in best else pos for pos in positions]

            return ReadPlan(auth_calls, attach)

        return ReadPlan(calls, decode_all, prefix, follow_up=follow_up)

    def _decode_market(self, m: MarketParams, chunk: Sequence[Result], accounts: Sequence[Address],
                       ctx: ReadContext) -> list[Position]:
        market_r, price_r = chunk[0], chunk[1]
        if not market_r.success:
            return []
        total_borrow_assets, total_borrow_shares = word(market_r.data, 2), word(market_r.data, 3)
        price_ok = price_r.success and len(price_r.data) == 32
        price = word(price_r.data, 0) if price_ok else 0
        issue = None if price_ok and price > 0 else "price unusable: the market's oracle reverted or answered 0"
        issue = issue or price_issue(ctx.prices, [m.collateral.address, m.loan.address])
        loan_reading = ctx.prices.get(m.loan.address)
        loan_usd = loan_reading.price if loan_reading is not None and loan_reading.ok else 1.0
        quote = "usd" if loan_reading is not None else "loan-units"
        # Collateral price in USD per whole token: price/1e36 loan base units per collateral base unit.
        coll_usd = price / ORACLE_PRICE_SCALE * 10**m.collateral.decimals / 10**m.loan.decimals * loan_usd
        out = []
        for acct, r in zip(accounts, chunk[2:]):
            if not r.success:
                continue
            borrow_shares, collateral = word(r.data, 1), word(r.data, 2)
            if borrow_shares == 0 and collateral == 0:
                continue
            borrowed = to_assets_up(borrow_shares, total_borrow_assets, total_borrow_shares)
            h = health_wad(collateral, price, m.lltv, borrowed) if price_ok else 0
            legs = (Leg(m.collateral, Side.COLLATERAL, collateral, coll_usd, m.lltv / WAD),
                    Leg(m.loan, Side.DEBT, borrowed, loan_usd))
            out.append(Position(
                chain=ctx.chain, protocol=self.protocol, protocol_address=self.morpho, account=acct, market=m.id,
                legs=legs, health_wad=h, block=ctx.block, price_ok=issue is None, price_issue=issue,
                extra={"borrow_shares": borrow_shares, "oracle_price": price, "quote": quote},
            ))
        return out
