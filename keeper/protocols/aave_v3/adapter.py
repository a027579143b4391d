"""Aave v3 (and forks with the same interface, e.g. Spark): positions of accounts at a Pool.

Per account and block only the cheap getters: ``Pool.getUserEMode``, ``Pool.getUserConfiguration``
(the bitmap: bit 2*id borrowing, bit 2*id+1 using as collateral) and, for the reserves that bitmap
marks, ``aToken.scaledBalanceOf`` / ``variableDebtToken.scaledBalanceOf`` (+
``stableDebtToken.balanceOf`` where stable debt exists). Once per block, shared: the prices
(``AaveOracle.getAssetsPrices``, what the pool uses), each reserve's normalized income / variable
debt, and a fingerprint of the metadata the maths depends on (reserve list, configuration words,
stable debt supplies, e-mode categories). These shared calls open *every* chunk: a chunk is one
``eth_call``, i.e. one EVM state, so each account's balances, the prices and indexes they are valued
at and the pool's own ``getUserAccountData`` check come from the same state. Chunks are separate
``eth_call``s and a node does not always answer them from one state even when they name the same
block number (anvil answers a call for the head from the next block while it mines it; a reorg or a
load-balanced RPC does the same on a real chain): mixing one chunk's prices with another's balances
gave healths that matched neither state. When chunks of one round disagree on the shared values,
the whole round is read again at that block. Amounts are ``rayMul(scaled, index)`` (= ``balanceOf``)
and the health factor is ``GenericLogic.calculateUserAccountData``'s integer maths
(``aave_math``): equal to ``getUserAccountData(...).healthFactor`` to the wei.

Correctness guards, all resolved in the same tick at the same block (a follow-up round):
- an account whose bitmap differs from the one its calls were built for (or first seen) is
  re-read with calls for its current bitmap;
- when the chunks of a round saw different states (their shared values differ), every account is
  re-read;
- when the metadata fingerprint differs from what ``prepare`` loaded (a new reserve, a changed
  threshold / decimals / e-mode category, stable debt appearing, an edited e-mode category),
  metadata is reloaded at that block and every account is re-read.
Calldata is encoded once per group of accounts and layout and reused across ticks."""

from __future__ import annotations

import gc
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from eth_abi import decode

from keeper.chain.multicall import Call, FixedChunk, Multicall, Result
from keeper.domain import Asset, Leg, Position, Protocol, Side
from keeper.protocols.aave_math import ReserveConfig, health_factor, ray_mul
from keeper.protocols.base import (Adapter, ReadContext, ReadPlan, address_word, enc_address, enc_uint, price_issue,
                                   word)

SEL_ACCOUNT_DATA = bytes.fromhex("bf92857c")
SEL_USER_RESERVE = bytes.fromhex("28dd2d01")
SEL_USER_EMODE = bytes.fromhex("eddf1b79")
SEL_RESERVE_CONFIG = bytes.fromhex("3e150141")
SEL_ALL_RESERVES = bytes.fromhex("b316ff89")
SEL_RESERVE_EMODE = bytes.fromhex("163a0f20")
SEL_EMODE_DATA = bytes.fromhex("6c6f6ae1")
SEL_ASSETS_PRICES = bytes.fromhex("9d23d9f2")
SEL_RESERVES_LIST = bytes.fromhex("d1946dbc")  # Pool.getReservesList()
SEL_RESERVE_DATA = bytes.fromhex("35ea6a75")  # Pool.getReserveData(address)
SEL_CONFIGURATION = bytes.fromhex("c44b11f7")  # Pool.getConfiguration(address)
SEL_USER_CONFIG = bytes.fromhex("4417a583")  # Pool.getUserConfiguration(address)
SEL_NORM_INCOME = bytes.fromhex("d15e0053")  # Pool.getReserveNormalizedIncome(address)
SEL_NORM_VDEBT = bytes.fromhex("386497fd")  # Pool.getReserveNormalizedVariableDebt(address)
SEL_SCALED_BALANCE = bytes.fromhex("1da24f3e")  # scaledBalanceOf(address)
SEL_BALANCE = bytes.fromhex("70a08231")  # balanceOf(address)
SEL_TOTAL_SUPPLY = bytes.fromhex("18160ddd")  # totalSupply()
log = logging.getLogger(__name__)
BPS = 10_000
W = 32
UNKNOWN = -1  # layout of an account not read yet: only its e-mode and bitmap are read


@dataclass(frozen=True)
class Reserve:
    asset: Asset
    liquidation_threshold_bps: int
    ltv_bps: int
    liquidation_bonus_bps: int
    emode_category: int
    usable_as_collateral: bool
    reserve_id: int = 0
    a_token: str = ""
    stable_debt_token: str = ""
    variable_debt_token: str = ""
    config_word: int = 0
    has_stable_debt: bool = False  # stableDebtToken.totalSupply() > 0: read balanceOf per borrower

    @property
    def unit(self) -> int:
        return 10**self.asset.decimals


@dataclass(frozen=True)
class EModeCategory:
    liquidation_threshold_bps: int
    price_source: str


@dataclass
class _Group:
    """Accounts whose reads share one pre-encoded chunk, with the layouts it was built for."""
    accounts: tuple[str, ...]
    layouts: tuple[int, ...]
    chunk: FixedChunk
    # per account: ((reserve index, collateral?, borrowing?), ...) in call order
    slots: list[tuple[tuple[int, bool, bool], ...]] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)  # calls per account
    # One account per chunk whose computed health is checked against the pool's getUserAccountData
    # (the chunk's last call): a guard against maths that no longer matches the pool (an upgrade).
    check: str | None = None
    shared: int = 0  # the chunk opens with this many shared calls (prices, indexes, metadata)


@dataclass
class _Round:
    """What one read round left to do: accounts to read again, and whether metadata is stale."""
    accounts: list[str] = field(default_factory=list)
    stale: bool = False
    retry: bool = False  # the chunks saw different chain states: read the same chunks again


class AaveV3Adapter(Adapter):
    protocol = Protocol.AAVE_V3

    def __init__(self, chain: str, pool: str, data_provider: str, oracle: str, *, price_decimals: int = 8,
                 refresh_blocks: int = 300, chunk_calls: int = 2_000) -> None:
        self.chain = chain
        self.pool = pool
        self.data_provider = data_provider
        self.oracle = oracle
        self.price_scale = 10**price_decimals
        self.refresh_blocks = refresh_blocks
        self.chunk_calls = chunk_calls
        self.reserves: list[Reserve] = []
        self.emode: dict[int, EModeCategory] = {}
        self._prepared_at: int | None = None
        self._fingerprint: tuple = ()
        self._reserves_list_raw = b""
        self._emode_raw: dict[int, bytes] = {}
        self._sources: list[str] = []
        self._by_id: dict[int, int] = {}  # reserve id -> index in self.reserves
        self._layout: dict[str, int] = {}  # account (lower case) -> user configuration bitmap
        self._groups: list[_Group] = []
        self._groups_key: tuple[str, ...] | None = None
        self._shared: tuple[list[Call], list[int]] | None = None  # calls opening every chunk
        self._dirty: set[str] = set()  # accounts whose layout changed since their group was encoded

    # --- metadata ----------------------------------------------------------------------------
    def prepare(self, mc: Multicall, block: int, *, force: bool = False) -> None:
        if not force and self._prepared_at is not None and block - self._prepared_at < self.refresh_blocks:
            return
        tokens, listed = mc.call([Call(self.data_provider, SEL_ALL_RESERVES, allow_failure=False),
                                  Call(self.pool, SEL_RESERVES_LIST, allow_failure=False)], block)
        (pairs,) = decode(["(string,address)[]"], tokens.data)
        symbols = {addr.lower(): sym for sym, addr in pairs}
        (addresses,) = decode(["address[]"], listed.data)
        data = mc.call([Call(self.pool, SEL_RESERVE_DATA + enc_address(a), allow_failure=False) for a in addresses],
                       block)
        stable_tokens = [address_word(d.data, 9) for d in data]
        cfgs = [ReserveConfig.from_word(word(d.data, 0)) for d in data]
        categories = sorted({c.emode_category for c in cfgs if c.emode_category})
        more = mc.call([Call(t, SEL_TOTAL_SUPPLY, allow_failure=False) for t in stable_tokens]
                       + [Call(self.pool, SEL_EMODE_DATA + enc_uint(c), allow_failure=False) for c in categories], block)
        reserves = []
        for addr, d, cfg, supply in zip(addresses, data, cfgs, more):
            sym = symbols.get(addr.lower(), addr)
            reserves.append(Reserve(
                Asset(sym, addr, cfg.decimals), cfg.liquidation_threshold, cfg.ltv, cfg.liquidation_bonus,
                cfg.emode_category, cfg.liquidation_threshold != 0, word(d.data, 7), address_word(d.data, 8),
                address_word(d.data, 9), address_word(d.data, 10), word(d.data, 0), word(supply.data, 0) > 0))
        emode, emode_raw = {}, {}
        for c, r in zip(categories, more[len(addresses):]):
            # EModeCategory(uint16 ltv, uint16 liquidationThreshold, uint16 liquidationBonus, address priceSource, string label)
            emode[c] = EModeCategory(word(r.data, 2), address_word(r.data, 4))
            emode_raw[c] = r.data
        fingerprint = (listed.data, tuple(reserves), tuple(sorted(emode_raw.items())))
        self.reserves, self.emode, self._prepared_at = reserves, emode, block
        self._reserves_list_raw, self._emode_raw = listed.data, emode_raw
        self._sources = sorted({c.price_source for c in emode.values() if int(c.price_source, 16)})
        self._by_id = {r.reserve_id: i for i, r in enumerate(reserves)}
        if fingerprint != self._fingerprint:  # calls depend on the metadata: encode them again
            self._fingerprint = fingerprint
            self._groups, self._groups_key, self._shared = [], None, None

    # --- calls -------------------------------------------------------------------------------
    def _priced(self) -> list[str]:
        return [r.asset.address for r in self.reserves] + self._sources

    def _shared_calls(self) -> tuple[list[Call], list[int]]:
        """Per block, shared by every account: prices, indexes and the metadata fingerprint. They open
        every chunk, so that a chunk's accounts are valued with what the same state says."""
        if self._shared is None:
            self._shared = self._encode_shared()
        return self._shared

    def _encode_shared(self) -> tuple[list[Call], list[int]]:
        priced = self._priced()
        calls = [Call(self.oracle, SEL_ASSETS_PRICES + enc_uint(W) + enc_uint(len(priced))
                      + b"".join(enc_address(a) for a in priced))]
        lengths = [2 * W + W * len(priced)]
        for r in self.reserves:
            a = enc_address(r.asset.address)
            calls += [Call(self.pool, SEL_NORM_INCOME + a), Call(self.pool, SEL_NORM_VDEBT + a),
                      Call(self.pool, SEL_CONFIGURATION + a), Call(r.stable_debt_token, SEL_TOTAL_SUPPLY)]
            lengths += [W, W, W, W]
        for c, raw in sorted(self._emode_raw.items()):
            calls.append(Call(self.pool, SEL_EMODE_DATA + enc_uint(c)))
            lengths.append(len(raw))
        calls.append(Call(self.pool, SEL_RESERVES_LIST))
        lengths.append(len(self._reserves_list_raw))
        return calls, lengths

    def _slots(self, layout: int) -> tuple[tuple[int, bool, bool], ...]:
        if layout == UNKNOWN:
            return ()
        out = []
        for i, r in enumerate(self.reserves):
            coll = bool((layout >> (2 * r.reserve_id + 1)) & 1)
            borr = bool((layout >> (2 * r.reserve_id)) & 1)
            if coll or borr:
                out.append((i, coll, borr))
        return tuple(out)

    def _group(self, accounts: Sequence[str], layouts: Sequence[int]) -> _Group:
        shared_calls, shared_lengths = self._shared_calls()
        calls: list[Call] = list(shared_calls)
        lengths: list[int] = list(shared_lengths)
        all_slots, counts = [], []
        for acct, layout in zip(accounts, layouts):
            before = len(calls)
            e = enc_address(acct)
            calls += [Call(self.pool, SEL_USER_EMODE + e), Call(self.pool, SEL_USER_CONFIG + e)]
            lengths += [W, W]
            slots = self._slots(layout)
            for i, coll, borr in slots:
                r = self.reserves[i]
                if coll:
                    calls.append(Call(r.a_token, SEL_SCALED_BALANCE + e))
                    lengths.append(W)
                if borr:
                    calls.append(Call(r.variable_debt_token, SEL_SCALED_BALANCE + e))
                    lengths.append(W)
                    if r.has_stable_debt:
                        calls.append(Call(r.stable_debt_token, SEL_BALANCE + e))
                        lengths.append(W)
            all_slots.append(slots)
            counts.append(len(calls) - before)
        check = next((a for a, lay in zip(accounts, layouts) if lay not in (UNKNOWN, 0)), None)
        if check is not None:
            calls.append(Call(self.pool, SEL_ACCOUNT_DATA + enc_address(check)))
            lengths.append(6 * W)
        return _Group(tuple(accounts), tuple(layouts), FixedChunk(calls, lengths), all_slots, counts, check,
                      len(shared_calls))

    def _calls_for(self, layout: int) -> int:
        n = 2
        for i, coll, borr in self._slots(layout):
            n += coll + borr * (2 if self.reserves[i].has_stable_debt else 1)
        return n

    def _build_groups(self, accounts: Sequence[str]) -> list[_Group]:
        groups, cur, n = [], [], 0
        for acct in accounts:
            cur.append(acct)
            n += self._calls_for(self._layout.get(acct.lower(), UNKNOWN))
            if n >= self.chunk_calls:
                groups.append(self._group(cur, [self._layout.get(a.lower(), UNKNOWN) for a in cur]))
                cur, n = [], 0
        if cur:
            groups.append(self._group(cur, [self._layout.get(a.lower(), UNKNOWN) for a in cur]))
        return groups

    def _cached_groups(self, accounts: Sequence[str]) -> list[_Group]:
        """Groups for the account list, re-encoding only those whose accounts' layouts changed."""
        key = tuple(accounts)
        if key != self._groups_key:
            self._groups, self._groups_key, self._dirty = self._build_groups(accounts), key, set()
            return self._groups
        if self._dirty:
            dirty, self._dirty = self._dirty, set()
            for k, g in enumerate(self._groups):
                if any(a.lower() in dirty for a in g.accounts):
                    layouts = tuple(self._layout.get(a.lower(), UNKNOWN) for a in g.accounts)
                    if layouts != g.layouts:
                        self._groups[k] = self._group(g.accounts, layouts)
            if any(len(g.chunk.calls) > 3 * self.chunk_calls // 2 for g in self._groups):
                self._groups = self._build_groups(accounts)  # layouts grew: keep chunks near the target size
        return self._groups

    # --- reads -------------------------------------------------------------------------------
    def plan(self, accounts: Sequence[str]) -> ReadPlan:
        return self._plan(self._cached_groups(accounts))

    def _plan(self, groups: Sequence[_Group]) -> ReadPlan:
        groups = tuple(groups)  # this round's groups, whatever later rounds or ticks re-encode
        todo = _Round()

        def decode_fixed(values: list[list[int | bytes | None]], ctx: ReadContext) -> list[Position]:
            enabled = gc.isenabled()
            gc.disable()  # thousands of small objects: no collection passes in the hot loop
            try:
                return self._decode(values, groups, ctx, todo)
            finally:
                if enabled:
                    gc.enable()

        def follow_up(mc: Multicall, ctx: ReadContext) -> ReadPlan | None:
            if todo.stale:
                self.prepare(mc, ctx.block, force=True)
            elif todo.retry:  # the same chunks again, at the same block
                return self._plan(groups)
            if not todo.accounts:
                return None
            # Built for the layouts seen in this round, read at the same block.
            new = self._build_groups(todo.accounts)
            if tuple(todo.accounts) == self._groups_key:  # every account (first tick): cache these chunks
                self._groups, self._dirty = new, set()
            return self._plan(new)

        return ReadPlan([], _no_generic, fixed=tuple(g.chunk for g in groups), decode_fixed=decode_fixed,
                        follow_up=follow_up)

    def _metadata_changed(self, shared: list[int | bytes | None]) -> bool:
        if any(v is None for v in shared[1:]):
            return True
        k = 1
        for r in self.reserves:
            cfg, stable_supply = shared[k + 2], shared[k + 3]
            if cfg != r.config_word or (stable_supply and not r.has_stable_debt):
                return True
            k += 4
        for c in sorted(self._emode_raw):
            if shared[k] != self._emode_raw[c]:
                return True
            k += 1
        return shared[k] != self._reserves_list_raw

    def _decode(self, values: list[list[int | bytes | None]], groups: Sequence[_Group], ctx: ReadContext,
                todo: _Round) -> list[Position]:
        if not groups:
            return []
        states = [vals[:g.shared] for g, vals in zip(groups, values)]
        if any(self._metadata_changed(st) for st in states):
            todo.stale = True
            todo.accounts = [a for g in groups for a in g.accounts]
            return []
        shared = states[0]
        if any(st != shared for st in states[1:]):
            # The chunks (separate eth_calls at the same block number) were answered from different
            # states: positions of one read must come from one state. Read them all again.
            log.info("Aave chunks saw different states at block %s: reading again", ctx.block)
            todo.retry = True
            return []
        reserves = self.reserves
        n = len(reserves)
        prices_raw = shared[0]
        prices_ok = isinstance(prices_raw, bytes)
        priced = self._priced()
        if prices_ok:
            all_prices = [word(prices_raw, 2 + i) for i in range(len(priced))]
        else:  # AaveOracle reverts when a source answers <= 0 and there is no fallback oracle
            all_prices = [0] * len(priced)
        source_price = dict(zip(self._sources, all_prices[n:]))
        income = [shared[1 + 4 * i] for i in range(n)]
        vdebt = [shared[2 + 4 * i] for i in range(n)]
        # Per e-mode category: each reserve's (price, USD price, liquidation threshold) as the pool uses
        # them (EModeLogic: the category's price source when it answers non-zero, its threshold).
        base = [(p, p / self.price_scale, r.liquidation_threshold_bps) for r, p in zip(reserves, all_prices)]
        tables = {0: base}
        for c, cat in self.emode.items():
            ep = source_price.get(cat.price_source, 0)
            tables[c] = [((ep or p), (ep or p) / self.price_scale, cat.liquidation_threshold_bps)
                         if r.emode_category == c else (p, usd, lt) for r, (p, usd, lt) in zip(reserves, base)]
        oracle_issue = None if prices_ok else "price unusable: the pool's oracle (getAssetsPrices) reverted"
        units = [r.unit for r in reserves]
        counts_collateral = [r.liquidation_threshold_bps != 0 for r in reserves]
        stable = [r.has_stable_debt for r in reserves]
        assets = [r.asset for r in reserves]
        proto, pool, chain, block = self.protocol, self.pool, ctx.chain, ctx.block
        # Checked Chainlink readings (price_issue), per reserve once per tick, not per position.
        feed_issue = [price_issue(ctx.prices, [r.asset.address]) for r in reserves]
        out = []
        mismatch = None
        for g, vals in zip(groups, values):
            k = g.shared
            pool_data = vals[-1] if g.check is not None else None
            for acct, layout, slots, count in zip(g.accounts, g.layouts, g.slots, g.counts):
                start, k = k, k + count
                emode, now = vals[start], vals[start + 1]
                if now != layout or emode is None or None in vals[start + 2:k]:
                    todo.accounts.append(acct)
                    if now is not None and now != layout:
                        self._layout[acct.lower()] = now
                        self._dirty.add(acct.lower())
                    continue
                table = tables.get(emode, base)
                j = start + 2
                coll_base = lt_sum = debt_base = 0
                legs = []
                issue = None
                for i, coll, borr in slots:
                    p, usd, lt = table[i]
                    if coll:
                        amount = ray_mul(vals[j], income[i])
                        j += 1
                        if amount:
                            if counts_collateral[i]:  # GenericLogic: reserve threshold != 0 and the collateral bit
                                b = amount * p // units[i]
                                coll_base += b
                                lt_sum += b * lt
                            else:
                                lt = 0
                            legs.append(Leg(assets[i], Side.COLLATERAL, amount, usd, lt / BPS))
                            issue = issue or feed_issue[i]
                    if borr:
                        scaled = vals[j]
                        j += 1
                        debt = ray_mul(scaled, vdebt[i]) if scaled else 0
                        if stable[i]:
                            debt += vals[j]
                            j += 1
                        if debt:
                            debt_base += p * debt // units[i]
                            legs.append(Leg(assets[i], Side.DEBT, debt, usd))
                            issue = issue or feed_issue[i]
                if not legs:
                    continue
                if issue is None:
                    issue = oracle_issue
                if issue is None and any(leg.price_usd <= 0 for leg in legs):
                    issue = "price unusable: the pool's oracle answered 0"
                hf = health_factor(coll_base, lt_sum, debt_base) if prices_ok else 0
                if acct is g.check and prices_ok and isinstance(pool_data, bytes) and word(pool_data, 5) != hf:
                    mismatch = f"{acct}: computed {hf}, getUserAccountData {word(pool_data, 5)}"
                out.append(Position(
                    chain=chain, protocol=proto, protocol_address=pool, account=acct, market="pool",
                    legs=tuple(legs), health_wad=hf, block=block, price_ok=issue is None, price_issue=issue,
                    extra={"emode": emode, "total_collateral_base": coll_base, "total_debt_base": debt_base}))
        if mismatch is not None:
            # The maths does not reproduce this pool (an implementation it was not written for):
            # no position of this read may be acted on.
            log.error("Aave health differs from the pool's at block %s: %s", block, mismatch)
            issue = f"health unverified: computed health factor differs from the pool's ({mismatch})"
            out = [replace(p, price_ok=False, price_issue=p.price_issue or issue) for p in out]
        return out


def _no_generic(results: Sequence[Result], ctx: ReadContext) -> list[Position]:
    return []
