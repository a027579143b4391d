"""Aave v3 (and forks with the same interface, e.g. Spark): positions of accounts at a Pool, with
the exact maths of the pool's version family (``families``, chosen from ``POOL_REVISION()``).

Per account and block only the cheap getters: ``Pool.getUserEMode``, ``Pool.getUserConfiguration``
(the bitmap: bit 2*id borrowing, bit 2*id+1 using as collateral) and, for the reserves that bitmap
marks, ``aToken.scaledBalanceOf`` / ``variableDebtToken.scaledBalanceOf`` (+
``stableDebtToken.balanceOf`` where stable debt exists, v3.0-3.1). Once per block, shared: the
prices (``AaveOracle.getAssetsPrices``, what the pool uses), each reserve's normalized income /
variable debt, and a fingerprint of the metadata the maths depends on (revision, reserve list,
configuration words, stable debt supplies, e-mode categories). These shared calls open *every*
chunk: a chunk is one ``eth_call``, i.e. one EVM state, so each account's balances, the prices and
indexes they are valued at and the pool's own ``getUserAccountData`` checks come from the same
state. When chunks of one round disagree on the shared values (a node answering separate calls at
one block number from different states: anvil while it mines, a reorg, a load balancer), the
whole round is read again at that block.

Verification: ``getUserAccountData`` is read in the same chunk, and compared to the wei with the
computed health, for every account in ``verify`` (the accounts the keeper may act for), every
account in a non-zero e-mode, and one sampled account per chunk. A mismatch flags that account
only ("health unverified", never acted on) and is logged as an error. With ``health="pool"`` the
pool's own health is used for every account (exact whatever the maths; needed for revisions the
keeper does not know).

Correctness guards, all resolved in the same tick at the same block (a follow-up round):
- an account whose bitmap or e-mode differs from what its calls were built for is re-read;
- when the chunks of a round saw different states, every account is re-read;
- when the metadata fingerprint differs from what ``prepare`` loaded (a new reserve, a changed
  threshold / decimals / e-mode category, stable debt appearing, a pool upgrade), metadata is
  reloaded at that block and every account is re-read.
Calldata is encoded once per group of accounts and layout and reused across ticks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

from keeper.chain.multicall import Call, FixedChunk, Multicall, Result
from keeper.domain import Address, Leg, Position, Protocol, Side
from keeper.protocols.aave_v3.maths import is_borrowing, is_using_as_collateral
from keeper.protocols.aave_v3.metadata import (
    SEL_EMODE_BITMAP,
    SEL_EMODE_CONFIG,
    SEL_EMODE_DATA,
    SEL_RESERVES_LIST,
    SEL_REVISION,
    SEL_TOTAL_SUPPLY,
    Metadata,
    Reserve,
    load,
)
from keeper.protocols.base import Adapter, ReadContext, ReadPlan, enc_address, enc_uint, price_issue, word

SEL_ACCOUNT_DATA = bytes.fromhex("bf92857c")  # Pool.getUserAccountData(address)
SEL_USER_EMODE = bytes.fromhex("eddf1b79")
SEL_ASSETS_PRICES = bytes.fromhex("9d23d9f2")
SEL_CONFIGURATION = bytes.fromhex("c44b11f7")  # Pool.getConfiguration(address)
SEL_USER_CONFIG = bytes.fromhex("4417a583")  # Pool.getUserConfiguration(address)
SEL_NORM_INCOME = bytes.fromhex("d15e0053")  # Pool.getReserveNormalizedIncome(address)
SEL_NORM_VDEBT = bytes.fromhex("386497fd")  # Pool.getReserveNormalizedVariableDebt(address)
SEL_SCALED_BALANCE = bytes.fromhex("1da24f3e")  # scaledBalanceOf(address)
SEL_BALANCE = bytes.fromhex("70a08231")  # balanceOf(address)
log = logging.getLogger(__name__)
BPS = 10_000
W = 32
UNKNOWN = -1  # layout of an account not read yet: only its e-mode and bitmap are read
HealthMode = Literal["exact", "pool"]


@dataclass
class _Group:
    """Accounts whose reads share one pre-encoded chunk, with the layouts it was built for."""
    accounts: tuple[Address, ...]
    layouts: tuple[int, ...]
    emodes: tuple[int, ...]
    chunk: FixedChunk
    # per account: ((reserve index, collateral?, borrowing?), ...) in call order
    slots: list[tuple[tuple[int, bool, bool], ...]] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)  # calls per account
    checked: list[bool] = field(default_factory=list)  # getUserAccountData is the account's last call
    shared: int = 0  # the chunk opens with this many shared calls (prices, indexes, metadata)


@dataclass
class _Round:
    """What one read round left to do: accounts to read again, and whether metadata is stale."""
    accounts: list[Address] = field(default_factory=list)
    stale: bool = False
    retry: bool = False  # the chunks saw different chain states: read the same chunks again


class AaveV3Adapter(Adapter):
    protocol = Protocol.AAVE_V3

    def __init__(self, chain: str, pool: Address, data_provider: Address, oracle: Address, *,
                 price_decimals: int = 8, refresh_blocks: int = 300, chunk_calls: int = 2_000,
                 health: HealthMode = "exact", verify: Collection[Address] = ()) -> None:
        self.chain = chain
        self.pool = pool
        self.data_provider = data_provider
        self.oracle = oracle
        self.price_scale = 10**price_decimals
        self.refresh_blocks = refresh_blocks
        self.chunk_calls = chunk_calls
        self.health = health
        self.verify = set(verify)
        self.meta: Metadata | None = None
        self._prepared_at: int | None = None
        self._layout: dict[Address, int] = {}  # account -> user configuration bitmap
        self._emode: dict[Address, int] = {}  # account -> e-mode category last seen
        self._groups: list[_Group] = []
        self._groups_key: tuple[Address, ...] | None = None
        self._shared: tuple[list[Call], list[int]] | None = None  # calls opening every chunk
        self._dirty: set[Address] = set()  # accounts whose layout changed since their group was encoded

    @property
    def reserves(self) -> list[Reserve]:
        return self.meta.reserves if self.meta else []

    # --- metadata ----------------------------------------------------------------------------
    def prepare(self, mc: Multicall, block: int, *, force: bool = False) -> None:
        if not force and self._prepared_at is not None and block - self._prepared_at < self.refresh_blocks:
            return
        meta = load(mc, self.pool, self.data_provider, block, self.health)
        if meta != self.meta:  # calls depend on the metadata: encode them again
            if self.meta is not None and meta.family != self.meta.family:
                log.warning("Aave pool %s now has revision %s: %s maths", self.pool, meta.revision, meta.family.name)
            self._groups, self._groups_key, self._shared = [], None, None
        self.meta, self._prepared_at = meta, block

    def _need_meta(self) -> Metadata:
        if self.meta is None:
            raise RuntimeError("AaveV3Adapter.prepare must run before plan")
        return self.meta

    # --- calls -------------------------------------------------------------------------------
    def _priced(self) -> list[Address]:
        meta = self._need_meta()
        return [r.asset.address for r in meta.reserves] + meta.sources

    def _stride(self) -> int:
        return 4 if self._need_meta().family.stable_debt else 3

    def _shared_calls(self) -> tuple[list[Call], list[int]]:
        """Per block, shared by every account: prices, indexes and the metadata fingerprint. They open
        every chunk, so that a chunk's accounts are valued with what the same state says."""
        if self._shared is None:
            self._shared = self._encode_shared()
        return self._shared

    def _encode_shared(self) -> tuple[list[Call], list[int]]:
        meta = self._need_meta()
        priced = self._priced()
        calls = [Call(self.oracle, SEL_ASSETS_PRICES + enc_uint(W) + enc_uint(len(priced))
                      + b"".join(enc_address(a) for a in priced))]
        lengths = [2 * W + W * len(priced)]
        for r in meta.reserves:
            a = enc_address(r.asset.address)
            calls += [Call(self.pool, SEL_NORM_INCOME + a), Call(self.pool, SEL_NORM_VDEBT + a),
                      Call(self.pool, SEL_CONFIGURATION + a)]
            lengths += [W, W, W]
            if meta.family.stable_debt:
                calls.append(Call(r.stable_debt_token, SEL_TOTAL_SUPPLY))
                lengths.append(W)
        for c, raw in sorted(meta.emode_raw.items()):
            sels = (SEL_EMODE_CONFIG, SEL_EMODE_BITMAP) if meta.family.emode_bitmaps else (SEL_EMODE_DATA,)
            for sel, value in zip(sels, raw):
                calls.append(Call(self.pool, sel + enc_uint(c)))
                lengths.append(W if isinstance(value, int) else len(value))
        calls += [Call(self.pool, SEL_RESERVES_LIST), Call(self.pool, SEL_REVISION)]
        lengths += [len(meta.reserves_list_raw), W if meta.revision is not None else -1]
        return calls, lengths

    def _slots(self, layout: int) -> tuple[tuple[int, bool, bool], ...]:
        if layout == UNKNOWN:
            return ()
        out = []
        for i, r in enumerate(self.reserves):
            coll = is_using_as_collateral(layout, r.reserve_id)
            borr = is_borrowing(layout, r.reserve_id)
            if coll or borr:
                out.append((i, coll, borr))
        return tuple(out)

    def _must_check(self, acct: Address, layout: int | bytes | None, emode: int | bytes | None) -> bool:
        if layout in (UNKNOWN, 0):
            return False
        return self.health == "pool" or emode != 0 or acct in self.verify

    def _group(self, accounts: Sequence[Address], layouts: Sequence[int], emodes: Sequence[int]) -> _Group:
        shared_calls, shared_lengths = self._shared_calls()
        calls: list[Call] = list(shared_calls)
        lengths: list[int] = list(shared_lengths)
        all_slots, counts, checked = [], [], []
        checks = [self._must_check(a, lay, em) for a, lay, em in zip(accounts, layouts, emodes)]
        if not any(checks):  # one sampled account per chunk: a guard against maths the pool no longer matches
            sample = next((k for k, lay in enumerate(layouts) if lay not in (UNKNOWN, 0)), None)
            if sample is not None:
                checks[sample] = True
        stable = [r.has_stable_debt for r in self.reserves]
        for acct, layout, check in zip(accounts, layouts, checks):
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
                    if stable[i]:
                        calls.append(Call(r.stable_debt_token, SEL_BALANCE + e))
                        lengths.append(W)
            if check:
                calls.append(Call(self.pool, SEL_ACCOUNT_DATA + e))
                lengths.append(6 * W)
            all_slots.append(slots)
            counts.append(len(calls) - before)
            checked.append(check)
        return _Group(tuple(accounts), tuple(layouts), tuple(emodes), FixedChunk(calls, lengths), all_slots, counts,
                      checked, len(shared_calls))

    def _calls_for(self, acct: Address) -> int:
        layout = self._layout.get(acct, UNKNOWN)
        n = 2 + self._must_check(acct, layout, self._emode.get(acct, 0))
        for i, coll, borr in self._slots(layout):
            n += coll + borr * (2 if self.reserves[i].has_stable_debt else 1)
        return n

    def _group_for(self, accounts: Sequence[Address]) -> _Group:
        return self._group(accounts, [self._layout.get(a, UNKNOWN) for a in accounts],
                           [self._emode.get(a, 0) for a in accounts])

    def _build_groups(self, accounts: Sequence[Address]) -> list[_Group]:
        groups, cur, n = [], [], 0
        for acct in accounts:
            cur.append(acct)
            n += self._calls_for(acct)
            if n >= self.chunk_calls:
                groups.append(self._group_for(cur))
                cur, n = [], 0
        if cur:
            groups.append(self._group_for(cur))
        return groups

    def _cached_groups(self, accounts: Sequence[Address]) -> list[_Group]:
        """Groups for the account list, re-encoding only those whose accounts' layouts changed."""
        key = tuple(accounts)
        if key != self._groups_key:
            self._groups, self._groups_key, self._dirty = self._build_groups(accounts), key, set()
            return self._groups
        if self._dirty:
            dirty, self._dirty = self._dirty, set()
            for k, g in enumerate(self._groups):
                if any(a in dirty for a in g.accounts):
                    self._groups[k] = self._group_for(g.accounts)
            if any(len(g.chunk.calls) > 3 * self.chunk_calls // 2 for g in self._groups):
                self._groups = self._build_groups(accounts)  # layouts grew: keep chunks near the target size
        return self._groups

    # --- reads -------------------------------------------------------------------------------
    def plan(self, accounts: Sequence[Address]) -> ReadPlan:
        self._need_meta()
        return self._plan(self._cached_groups(accounts))

    def _plan(self, groups: Sequence[_Group]) -> ReadPlan:
        groups = tuple(groups)  # this round's groups, whatever later rounds or ticks re-encode
        todo = _Round()

        def decode_fixed(values: Iterable[list[int | bytes | None]], ctx: ReadContext) -> list[Position]:
            return self._decode(values, groups, ctx, todo)  # run_plans pauses the cyclic GC meanwhile

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
        meta = self._need_meta()
        if any(v is None for v in shared[1:-1]):
            return True
        k, stride = 1, self._stride()
        for r in meta.reserves:
            if shared[k + 2] != r.config_word:
                return True
            if stride == 4 and shared[k + 3] and not r.has_stable_debt:
                return True
            k += stride
        for _c, raw in sorted(meta.emode_raw.items()):
            for value in raw:
                if shared[k] != value:
                    return True
                k += 1
        return shared[k] != meta.reserves_list_raw or shared[k + 1] != meta.revision

    def _decode(self, stream: Iterable[list[int | bytes | None]], groups: Sequence[_Group], ctx: ReadContext,
                todo: _Round) -> list[Position]:
        """Decode each chunk as it arrives (``stream``), valued with the shared state of the first chunk;
        every chunk's shared state must equal it (one EVM state for the whole read) and match the
        loaded metadata, else nothing of this round is returned and the follow-up reads again."""
        out: list[Position] = []
        first: list[int | bytes | None] | None = None
        decode_group = None
        stale = retry = False
        for g, vals in zip(groups, stream):  # zip stops at the last group: the stream is consumed exactly
            if stale or retry:
                continue
            state = vals[:g.shared]
            if self._metadata_changed(state):
                stale = True
            elif first is None:
                first = state
                decode_group = self._group_decoder(state, ctx, todo, out)
                decode_group(g, vals)
            elif state != first:
                retry = True
            else:
                assert decode_group is not None
                decode_group(g, vals)
        if stale:
            todo.stale = True
            todo.accounts = [a for g in groups for a in g.accounts]
            return []
        if retry:
            # The chunks (separate eth_calls at the same block number) were answered from different
            # states: positions of one read must come from one state. Read them all again.
            log.info("Aave chunks saw different states at block %s: reading again", ctx.block)
            todo.retry = True
            return []
        return out

    def _group_decoder(self, shared: list[int | bytes | None], ctx: ReadContext, todo: _Round,
                       out: list[Position]) -> Callable[[_Group, list[int | bytes | None]], None]:
        """What the shared state of a read gives every account (prices, indexes, e-mode tables), and
        the decoder of one group's values into ``out`` with it."""
        meta = self._need_meta()
        fam = meta.family
        reserves = meta.reserves
        n = len(reserves)
        prices_raw = shared[0]
        prices_ok = isinstance(prices_raw, bytes)
        priced = self._priced()
        # AaveOracle reverts when a source answers <= 0 and there is no fallback oracle
        all_prices = ([word(prices_raw, 2 + i) for i in range(len(priced))] if isinstance(prices_raw, bytes)
                      else [0] * len(priced))
        source_price = dict(zip(meta.sources, all_prices[n:]))
        stride = self._stride()
        # 32-byte words (decoded as ints); a failed shared call makes _metadata_changed reload first.
        income = cast(list[int], [shared[1 + stride * i] for i in range(n)])
        vdebt = cast(list[int], [shared[2 + stride * i] for i in range(n)])
        # Per e-mode category: each reserve's (price, USD price, liquidation threshold) as the pool uses
        # them (v3.0-3.1: the category's price source when it answers non-zero; v3.2+: the bitmap).
        base = [(p, p / self.price_scale, r.liquidation_threshold_bps) for r, p in zip(reserves, all_prices)]
        tables = {0: base}
        for c, cat in meta.emode.items():
            ep = source_price.get(cat.price_source, 0)
            tables[c] = [((ep or p), (ep or p) / self.price_scale, cat.liquidation_threshold_bps)
                         if cat.applies_to(fam, r, c) else (p, usd, lt) for r, (p, usd, lt) in zip(reserves, base)]
        oracle_issue = None if prices_ok else "price unusable: the pool's oracle (getAssetsPrices) reverted"
        units = [r.unit for r in reserves]
        # Which enabled collaterals count (GenericLogic): before v3.6 only where the reserve's LT != 0.
        counts_collateral = [fam.zero_lt_counts or r.liquidation_threshold_bps != 0 for r in reserves]
        stable = [r.has_stable_debt for r in reserves]
        assets = [r.asset for r in reserves]
        coll_balance, debt_balance, debt_to_base, health = (fam.collateral_balance, fam.debt_balance,
                                                            fam.debt_to_base, fam.health)
        from_pool = self.health == "pool"
        proto, pool, chain, block = self.protocol, self.pool, ctx.chain, ctx.block
        # Checked Chainlink readings (price_issue), per reserve once per tick, not per position.
        feed_issue = [price_issue(ctx.prices, [r.asset.address]) for r in reserves]

        def decode_group(g: _Group, vals: list[int | bytes | None]) -> None:
            k = g.shared
            # Every per-account call but getUserAccountData is a 32-byte word (an int, or None when it
            # failed); the balances are read below only once none of them is None.
            words = cast(list[int], vals)
            for acct, layout, old_emode, slots, count, checked in zip(g.accounts, g.layouts, g.emodes, g.slots,
                                                                      g.counts, g.checked):
                start, k = k, k + count
                emode, now = vals[start], vals[start + 1]
                # Re-read when the bitmap changed, a call failed, or a new e-mode changes whether the
                # account must be cross-checked (entering an e-mode: its calls need getUserAccountData).
                recheck = emode != old_emode and layout != UNKNOWN and self._must_check(acct, now, emode) != checked
                if now != layout or not isinstance(emode, int) or None in vals[start + 2:k - checked] or recheck:
                    todo.accounts.append(acct)
                    if isinstance(now, int) and now != layout:
                        self._layout[acct] = now
                        self._dirty.add(acct)
                    if isinstance(emode, int) and emode != old_emode:
                        self._emode[acct] = emode
                        self._dirty.add(acct)
                    continue
                if emode and emode not in tables and fam.emode_bitmaps and self._prepared_at != block:
                    # A category created since the metadata was read (a user can enter a category only
                    # once it has a threshold): reload at this block.
                    todo.stale = True
                    todo.accounts.append(acct)
                    continue
                table = tables.get(emode, base)
                j = start + 2
                coll_base = lt_sum = debt_base = 0
                legs = []
                issue = None
                for i, coll, borr in slots:
                    p, usd, lt = table[i]
                    if coll:
                        amount = coll_balance(words[j], income[i])
                        j += 1
                        if amount:
                            if counts_collateral[i]:
                                b = amount * p // units[i]
                                coll_base += b
                                lt_sum += b * lt
                            else:
                                lt = 0
                            legs.append(Leg(assets[i], Side.COLLATERAL, amount, usd, lt / BPS))
                            issue = issue or feed_issue[i]
                    if borr:
                        scaled = words[j]
                        j += 1
                        debt = debt_balance(scaled, vdebt[i]) if scaled else 0
                        if stable[i]:
                            debt += words[j]
                            j += 1
                        if debt:
                            debt_base += debt_to_base(debt, p, units[i])
                            legs.append(Leg(assets[i], Side.DEBT, debt, usd))
                            issue = issue or feed_issue[i]
                if not legs:
                    continue
                if issue is None:
                    issue = oracle_issue
                if issue is None and any(leg.price_usd <= 0 for leg in legs):
                    issue = "price unusable: the pool's oracle answered 0"
                hf = health(coll_base, lt_sum, debt_base) if prices_ok else 0
                if checked:
                    pool_data = vals[k - 1]
                    if not isinstance(pool_data, bytes):
                        issue = issue or "health unverified: the pool's getUserAccountData failed"
                    elif from_pool:
                        hf, coll_base, debt_base = word(pool_data, 5), word(pool_data, 0), word(pool_data, 1)
                    elif prices_ok and word(pool_data, 5) != hf:
                        want = word(pool_data, 5)
                        log.error("Aave health differs from the pool's at block %s for %s: computed %s, "
                                  "getUserAccountData %s (revision %s, %s maths)", block, acct, hf, want,
                                  meta.revision, fam.name)
                        issue = (f"health unverified: computed health factor {hf} differs from the pool's {want} "
                                 f"(revision {meta.revision}, {fam.name} maths); not acting on it")
                # Positional: ~1.8 us less per position than keywords (30,000 positions a read).
                # (chain, protocol, protocol_address, account, market, legs, health_wad, block, perp,
                #  price_ok, price_issue, label, extra)
                out.append(Position(
                    chain, proto, pool, acct, "pool", tuple(legs), hf, block, None, issue is None, issue, None,
                    {"emode": emode, "total_collateral_base": coll_base, "total_debt_base": debt_base,
                     "verified": checked, "revision": meta.revision}))

        return decode_group

def _no_generic(results: Sequence[Result], ctx: ReadContext) -> list[Position]:
    return []
