"""From a chain read to planned actions: everything the pure planner needs, gathered from the
chain and config — each acting vault's reserve (token balances), asset parameters (prices, Aave
liquidation thresholds, Morpho LLTVs), the vault's health floors, and the risk model.

Positions are grouped by the KeeperVault that acts for them (a vault-held position: the vault
itself; an owner-held one: the owner's vault from config); each vault's reserve is planned alone."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from keeper.app.book_cache import BookCache
from keeper.app.deleverage_routes import SEL_MAX_SLIPPAGE, read_routes
from keeper.app.perp_reduce_routes import SEL_CAP as SEL_DELEVERAGE_CAP
from keeper.app.perp_reduce_routes import read_perp_routes
from keeper.chain.multicall import Call, Result
from keeper.config import ChainConfig, Config
from keeper.domain import USD_ADDRESS, WAD, Address, Asset, Position, Protocol, Side
from keeper.plan.deleverage import DeleverageRoute
from keeper.plan.perp_reduce import PerpReduceRoute
from keeper.plan.planner import plan
from keeper.plan.policy import Plan, Policy, Reserve
from keeper.plan.whatif import AssetParams
from keeper.protocols.aave_v3 import AaveV3Adapter
from keeper.protocols.base import enc_address, word
from keeper.protocols.gmx_v1 import GmxV1Adapter
from keeper.protocols.morpho_blue import MorphoBlueAdapter
from keeper.protocols.reader import ChainReader, Snapshot
from keeper.protocols.vault_calls import KIND, ref_for
from keeper.risk.model import RiskModel

SEL_BALANCE_OF = bytes.fromhex("70a08231")
# KeeperVault.floorOf((uint8,address,bytes32,address)) -> uint256: the floor a withdrawal must respect (Aave: the
# account's), 0 when the market is not allowed.
SEL_FLOOR_OF = bytes.fromhex("56d871a7")
# KeeperVault.releaseCaps(address) and releaseUsed(address): the release window per asset, and what is used of it.
SEL_RELEASE_CAP = bytes.fromhex("1ee69536")
SEL_RELEASE_USED = bytes.fromhex("69bbfb3e")


def policy_from(cfg: Config) -> Policy:
    p = cfg.policy
    return Policy(epsilon=p.epsilon, horizon_hours=p.horizon_hours, target_fraction=p.target_fraction,
                  release_fraction=p.release_fraction, min_action_usd=p.min_action_usd,
                  cooldown_blocks=p.cooldown_blocks, release_cooldown_blocks=p.release_cooldown_blocks,
                  target_gap=p.target_gap, release_gap=p.release_gap, reserve_cost=p.reserve_cost)


@dataclass
class VaultBook:
    vault: Address
    positions: list[Position] = field(default_factory=list)
    reserve: Reserve | None = None
    floors: dict[str, float] = field(default_factory=dict)
    release_left: dict[Address, int] = field(default_factory=dict)  # asset -> tokens the window still allows
    # position key -> how it can deleverage (lending: a swap; perps: by size)
    routes: dict[str, DeleverageRoute | PerpReduceRoute] = field(default_factory=dict)
    # the vault has deleverage set up: its slippage setting is not 0, or its caps on the GMX Vault are set
    deleverage: bool = False


def acting_vaults(ccfg: ChainConfig) -> dict[Address, Address]:
    """account -> the vault that acts for it."""
    return {a.address: a.acting_vault for a in ccfg.accounts if a.acting_vault}


def asset_params(reader: ChainReader, snap: Snapshot) -> list[AssetParams]:
    """Every asset a vault could move: Aave reserves (weights = liquidation thresholds), Morpho
    collateral (weight = LLTV per market), perp collateral tokens; prices from the positions' own
    legs (the protocols' oracles) or the checked feeds."""
    prices: dict[Address, float] = {}
    for p in snap.positions:
        for leg in p.legs:
            if leg.price_usd > 0 and leg.asset.address != USD_ADDRESS:
                prices.setdefault(leg.asset.address, leg.price_usd)
    for asset, feed in reader.asset_feeds.items():
        r = snap.prices.get(feed)
        if r is not None and r.ok:
            prices.setdefault(asset, r.price)
    params: dict[Address, dict[str, Any]] = {}

    def add(asset: Asset, key: str, weight: float) -> None:
        entry = params.setdefault(asset.address, {"asset": asset, "weights": {}})
        entry["weights"][key] = weight

    for ad in reader.adapters:
        if isinstance(ad, AaveV3Adapter):
            for res in ad.reserves:
                add(res.asset, "aave_v3", res.liquidation_threshold_bps / 10_000 if res.usable_as_collateral else 0.0)
        elif isinstance(ad, MorphoBlueAdapter):
            for m in ad.markets:
                add(m.collateral, f"morpho_blue:{m.id}", m.lltv / WAD)
                add(m.loan, f"morpho_blue:{m.id}:loan", 0.0)
        elif isinstance(ad, GmxV1Adapter):
            for token in ad.assets.values():
                add(token, "perp", 1.0)
    out = []
    for addr, e in params.items():
        price = prices.get(addr)
        if price is None or not math.isfinite(price) or price <= 0:
            continue  # no usable price: the planner cannot use this asset
        a = e["asset"]
        out.append(AssetParams(a.symbol, a.address, a.decimals, price, e["weights"]))
    return out


@dataclass(frozen=True)
class BookLayout:
    """What :func:`read_books` reads for a snapshot: the multicall (each vault's balance of every
    asset and what its release window still allows of it, then the health floor of each of its
    positions' collateral markets) and which position of
    which vault each call belongs to. Equal layouts read the same calls, so a read made for the last
    tick's layout (in the background, while the chain is read: :func:`read_book_calls`) serves this
    tick when the layouts are equal."""

    vaults: tuple[Address, ...]
    assets: tuple[Address, ...]
    floor_keys: tuple[tuple[Address, str], ...]  # (vault, position key) of each floor call
    calls: tuple[Call, ...]
    owners: tuple[Address, ...]  # the vault each call reads (its book: keeper.app.book_cache)
    # with Uniswap configured and ``slippage`` asked for, each vault's deleverage slippage last: only
    # vaults with a setting get their routes read (keeper.app.deleverage_routes). The daemon asks for
    # it every ``DELEVERAGE_SETTINGS_BLOCKS`` and reuses what it learnt in between.
    slippage: bool = False
    # likewise with a perp section: each vault's caps on the GMX Vault (keeper.app.perp_reduce_routes)
    perp_caps: bool = False


def book_layout(snap: Snapshot, ccfg: ChainConfig, assets: Sequence[AssetParams], *,
                slippage: bool = True) -> BookLayout:
    vault_of = acting_vaults(ccfg)
    held: dict[Address, list[Position]] = {}
    for p in snap.positions:
        v = vault_of.get(p.account)
        if v is not None:
            held.setdefault(v, []).append(p)
    calls: list[Call] = []
    owners: list[Address] = []
    for v in held:
        calls += [Call(a.address, SEL_BALANCE_OF + enc_address(v)) for a in assets]
        calls += [Call(v, sel + enc_address(a.address)) for a in assets for sel in (SEL_RELEASE_CAP, SEL_RELEASE_USED)]
        owners += [v] * (3 * len(assets))
    floor_keys: list[tuple[Address, str]] = []
    for v, positions in held.items():
        for p in positions:
            for addr in _floor_assets(p):
                ref = ref_for(p, addr)
                calls.append(Call(v, SEL_FLOOR_OF + KIND[p.protocol].to_bytes(32, "big") + enc_address(ref.protocol)
                                  + ref.market + enc_address(ref.account)))
                owners.append(v)
                floor_keys.append((v, p.key))
    perp_caps = slippage and ccfg.perp is not None
    slippage = slippage and ccfg.uniswap_v3 is not None
    if slippage:
        calls += [Call(v, SEL_MAX_SLIPPAGE) for v in held]
        owners += list(held)
    if perp_caps:
        assert ccfg.perp is not None
        calls += [Call(v, SEL_DELEVERAGE_CAP + enc_address(Address(ccfg.perp.vault))) for v in held]
        owners += list(held)
    return BookLayout(tuple(held), tuple(a.address for a in assets), tuple(floor_keys), tuple(calls), tuple(owners),
                      slippage, perp_caps)


def read_book_calls(reader: ChainReader, layout: BookLayout, block: int,
                    cache: BookCache | None = None) -> list[Result]:
    """``layout``'s calls at ``block``: one multicall, or through ``cache`` (only what changed)."""
    if cache is not None:
        return cache.read(layout, block)
    return reader.mc.call(list(layout.calls), block) if layout.calls else []


def read_books(reader: ChainReader, snap: Snapshot, ccfg: ChainConfig, assets: Sequence[AssetParams], *,
               slippage: bool = True, deleverage_vaults: frozenset[Address] = frozenset(),
               prefetched: tuple[BookLayout, int, list[Result]] | None = None,
               cache: BookCache | None = None) -> list[VaultBook]:
    """Positions grouped by acting vault, with each vault's token balances and health floors, read
    in one multicall at the snapshot's block. ``prefetched``: (layout, block, results) of a read
    made ahead; used when it is for this block and this snapshot's layout, else read again (through
    ``cache`` when given: only the books that changed since its last block).
    ``slippage``: read each vault's deleverage setting now (else ``deleverage_vaults``, the vaults known
    to have one, get their routes read)."""
    layout = book_layout(snap, ccfg, assets, slippage=slippage)
    if prefetched is not None and prefetched[0] == layout and prefetched[1] == snap.block:
        results = prefetched[2]
    else:
        results = read_book_calls(reader, layout, snap.block, cache)
    vault_of = acting_vaults(ccfg)
    books = {v: VaultBook(v) for v in layout.vaults}
    for p in snap.positions:
        v = vault_of.get(p.account)
        if v is not None:
            books[v].positions.append(p)
    k = 0
    for v in layout.vaults:
        bal: dict[Address, int] = {}
        for a in layout.assets:
            r = results[k]
            k += 1
            bal[a] = word(r.data, 0) if r.success and len(r.data) >= 32 else 0
        books[v].reserve = Reserve(bal)
        for a in layout.assets:
            cap, used = results[k], results[k + 1]
            k += 2
            if cap.success and used.success and len(cap.data) >= 32 and len(used.data) >= 32:
                books[v].release_left[a] = max(0, word(cap.data, 0) - word(used.data, 0))
    for (v, key), r in zip(layout.floor_keys, results[k:]):
        if r.success and len(r.data) >= 32 and word(r.data, 0):
            floor = word(r.data, 0) / WAD
            books[v].floors[key] = max(books[v].floors.get(key, 0.0), floor)
    set_up: set[Address] = set(deleverage_vaults) & set(books)  # what the caller learnt last time
    if layout.slippage or layout.perp_caps:
        k += len(layout.floor_keys)
        set_up = set()
        for on in (layout.slippage, layout.perp_caps):
            if on:
                set_up |= {v for v, r in zip(layout.vaults, results[k:])
                           if r.success and len(r.data) >= 32 and word(r.data, 0)}
                k += len(layout.vaults)
    for v in set_up:
        books[v].deleverage = True
    if set_up:
        held_by = {v: books[v].positions for v in set_up}
        if ccfg.uniswap_v3 is not None:
            for v, routes in read_routes(reader, ccfg, held_by, assets, snap.block).items():
                books[v].routes.update(routes)
        for v, perp_routes in read_perp_routes(reader, ccfg, held_by, assets, snap.block).items():
            books[v].routes.update(perp_routes)
    return list(books.values())


def _floor_assets(p: Position) -> list[Address | None]:
    if p.protocol is Protocol.AAVE_V3:
        return [leg.asset.address for leg in p.legs_on(Side.COLLATERAL)] or [None]
    return [None]


def plan_books(books: Sequence[VaultBook], risk: RiskModel, assets: Sequence[AssetParams], policy: Policy, block: int,
               last_action_block: dict[str, int] | None = None) -> Iterator[tuple[VaultBook, Plan]]:
    """Each vault's plan, lazily and the most endangered vault (lowest health) first: the daemon
    sends a vault's actions before planning the next vault."""
    live = [(b, b.reserve) for b in books if b.reserve is not None]
    live.sort(key=lambda br: min((p.health for p in br[0].positions), default=float("inf")))
    for book, reserve in live:
        yield book, plan(book.positions, risk, reserve, assets, policy, block=block,
                         last_action_block=last_action_block, floors=book.floors, release_left=book.release_left,
                         routes=book.routes)
