"""How each vault can deleverage each lending position it acts for, read at the tick's block: the
vault's own settings (``DeleverageModule``'s views: flash sources, pools, slippage, caps), the
allow-listed Uniswap v3 pools' active liquidity and the flash sources' fee and liquidity, in one
multicall, turned into ``keeper.plan.deleverage.DeleverageRoute`` for the planner.

Read only for chains with ``[chains.<name>.uniswap_v3]`` configured (the factory whose pools a
vault may sell in). Per position the route sells its largest collateral for its largest debt, in
the allow-listed pool of those two assets (among the configured fee tiers) with the deepest active
liquidity, borrowing from the cheapest allow-listed flash source that can lend the whole debt (Morpho
Blue, free; an Aave v3 pool at its premium; another Uniswap v3 pool holding the debt asset, at its fee).

Approximation, said where it is used: the pool's depth is its active liquidity's virtual reserve
(exact within the current tick range; a larger sale crosses ranges), and the extra gas is a measured
constant (``keeper.plan.deleverage.EXTRA_GAS``) at the block's base fee and a 1 gwei tip. The vault
call is simulated before it is sent: a sale the pool cannot cover at the bound reverts there
(``SwapShort``) and is never broadcast."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eth_utils.crypto import keccak

from keeper.chain.multicall import Call, Result
from keeper.config import ChainConfig
from keeper.domain import Address, Position, Protocol, Side
from keeper.plan.deleverage import EXTRA_GAS, DeleverageRoute
from keeper.plan.whatif import AssetParams, held
from keeper.protocols.base import enc_address, word
from keeper.protocols.reader import ChainReader

MORPHO_KIND, AAVE_KIND, UNISWAP_KIND = 1, 2, 3  # DeleverageModule.FlashKind


def _sel(signature: str) -> bytes:
    return keccak(text=signature)[:4]


SEL_MAX_SLIPPAGE = _sel("maxSlippageBps()")
SEL_FLASH_KIND = _sel("flashSourceKind(address)")
SEL_IS_POOL = _sel("isSwapPool(address)")
SEL_CAP = _sel("deleverageCap(address)")
SEL_USED = _sel("deleverageUsed(address)")
SEL_LIQUIDITY = _sel("liquidity()")
SEL_SLOT0 = _sel("slot0()")
SEL_BALANCE_OF = _sel("balanceOf(address)")
SEL_PREMIUM = _sel("FLASHLOAN_PREMIUM_TOTAL()")
SEL_BASEFEE = _sel("getBasefee()")  # Multicall3's
TIP_WEI = 10**9  # the priority fee assumed when pricing gas


def pool_address(factory: str, token_a: str, token_b: str, fee: int, init_code_hash: str) -> Address:
    """Uniswap v3's CREATE2 address of the (token_a, token_b, fee) pool."""
    t0, t1 = sorted((Address(token_a), Address(token_b)), key=lambda a: int(a, 16))
    salt = keccak(bytes.fromhex(t0[2:]).rjust(32, b"\0") + bytes.fromhex(t1[2:]).rjust(32, b"\0")
                  + fee.to_bytes(32, "big"))
    digest = keccak(b"\xff" + bytes.fromhex(Address(factory)[2:]) + salt + bytes.fromhex(init_code_hash[2:]))
    return Address("0x" + digest[12:].hex())


@dataclass(frozen=True)
class _Want:
    """One position's candidate route: its vault, the assets and the candidate pools (by fee)."""

    vault: Address
    position: Position
    collateral: AssetParams
    debt: AssetParams
    pools: tuple[tuple[int, Address], ...]  # where the collateral can be sold
    flash_pools: tuple[tuple[int, Address], ...]  # other pools holding the debt asset (Uniswap flash loans)


def _largest(pos: Position, side: Side, assets: dict[Address, AssetParams]) -> AssetParams | None:
    legs = [leg for leg in pos.legs_on(side) if leg.asset.address in assets and leg.amount_raw > 0]
    return assets[max(legs, key=lambda leg: leg.value_usd).asset.address] if legs else None


def read_routes(reader: ChainReader, ccfg: ChainConfig, positions_by_vault: dict[Address, list[Position]],
                assets: Sequence[AssetParams], block: int) -> dict[Address, dict[str, DeleverageRoute]]:
    """vault -> position key -> its route, for the positions a route exists for (empty without
    ``uniswap_v3`` in the chain's config)."""
    uni = ccfg.uniswap_v3
    if uni is None:
        return {}
    by_addr = {a.address: a for a in assets}
    sources: list[tuple[Address, int]] = []
    if ccfg.morpho_blue is not None:
        sources.append((Address(ccfg.morpho_blue.morpho), MORPHO_KIND))
    if ccfg.aave_v3 is not None:
        sources.append((Address(ccfg.aave_v3.pool), AAVE_KIND))
    wants: list[_Want] = []
    for vault, positions in positions_by_vault.items():
        for pos in positions:
            if pos.protocol not in (Protocol.AAVE_V3, Protocol.MORPHO_BLUE) or not pos.price_ok:
                continue
            c, d = _largest(pos, Side.COLLATERAL, by_addr), _largest(pos, Side.DEBT, by_addr)
            if c is None or d is None or c.address == d.address:
                continue
            pools = tuple((fee, pool_address(uni.factory, c.address, d.address, fee, uni.pool_init_code_hash))
                          for fee in uni.fee_tiers)
            flash = tuple((fee, pool_address(uni.factory, a.address, d.address, fee, uni.pool_init_code_hash))
                          for a in assets if a.address != d.address for fee in uni.fee_tiers)
            wants.append(_Want(vault, pos, c, d, pools, tuple(f for f in flash if f not in pools)))
    if not wants or not sources:
        return {}

    calls: list[Call] = []
    slots: dict[tuple[str, ...], int] = {}

    def ask(key: tuple[str, ...], call: Call) -> None:
        if key not in slots:
            slots[key] = len(calls)
            calls.append(call)

    ask(("basefee",), Call(Address(ccfg.multicall), SEL_BASEFEE))
    for w in wants:
        v = w.vault
        ask(("slip", v), Call(v, SEL_MAX_SLIPPAGE))
        for src, _kind in sources:
            ask(("kind", v, src), Call(v, SEL_FLASH_KIND + enc_address(src)))
        ask(("cap", v, w.collateral.address), Call(v, SEL_CAP + enc_address(w.collateral.address)))
        ask(("used", v, w.collateral.address), Call(v, SEL_USED + enc_address(w.collateral.address)))
        for _fee, pool in w.pools:
            ask(("allowed", v, pool), Call(v, SEL_IS_POOL + enc_address(pool)))
            ask(("liquidity", pool), Call(pool, SEL_LIQUIDITY))
            ask(("slot0", pool), Call(pool, SEL_SLOT0))
        for src, kind in sources:
            if kind == MORPHO_KIND:
                ask(("balance", src, w.debt.address), Call(w.debt.address, SEL_BALANCE_OF + enc_address(src)))
            else:
                ask(("premium", src), Call(src, SEL_PREMIUM))
        for _fee, pool in w.flash_pools:
            ask(("kind", v, pool), Call(v, SEL_FLASH_KIND + enc_address(pool)))
            ask(("balance", pool, w.debt.address), Call(w.debt.address, SEL_BALANCE_OF + enc_address(pool)))
    results = reader.mc.call(calls, block)

    def get(*key: str, index: int = 0) -> int | None:
        r: Result = results[slots[key]]
        return word(r.data, index) if r.success and len(r.data) >= 32 * (index + 1) else None

    base_fee = get("basefee")
    eth = next((a.price_usd for a in assets if a.symbol in ("WETH", "ETH")), None)
    # The gas a deleverage uses beyond a reserve action; not counted (0) where the base fee or the
    # price of ether is not known (a multicall without getBasefee, a chain without WETH).
    gas_usd = (EXTRA_GAS * (base_fee + TIP_WEI) / 1e18 * eth) if base_fee is not None and eth else 0.0
    out: dict[Address, dict[str, DeleverageRoute]] = {}
    for w in wants:
        route = _route(w, sources, get, gas_usd)
        if route is not None:
            out.setdefault(w.vault, {})[w.position.key] = route
    return out


def _route(w: _Want, sources: list[tuple[Address, int]], get: Callable[..., int | None],
           gas_usd: float) -> DeleverageRoute | None:
    v, c, d = w.vault, w.collateral, w.debt
    slip_bps = get("slip", v)
    if not slip_bps:
        return None  # the vault has no deleverage settings (or predates them)
    best: tuple[float, int, Address] | None = None  # (depth USD, fee, pool)
    for fee, pool in w.pools:
        liquidity, slot0 = get("liquidity", pool), get("slot0", pool)
        if not get("allowed", v, pool) or not liquidity or not slot0:
            continue
        depth = _collateral_depth_usd(liquidity, slot0, c, d)
        if best is None or depth > best[0]:
            best = (depth, fee, pool)
    if best is None:
        return None
    # The cheapest allowed flash source that can lend the position's whole debt (Morpho Blue: free; an
    # Aave pool at its premium, its liquidity left to the simulation; a Uniswap pool at its fee, one
    # other than the sale's); when none can, the one that lends the most.
    options: list[tuple[float, Address, int | None]] = []  # (fee, source, what it can lend; None: not known)
    for src, kind in sources:
        if get("kind", v, src) != kind:
            continue
        if kind == MORPHO_KIND:
            options.append((0.0, src, get("balance", src, d.address) or 0))
        elif (premium := get("premium", src)) is not None:
            options.append((premium / 10_000, src, None))
    for fee, pool in w.flash_pools:
        if get("kind", v, pool) == UNISWAP_KIND and pool != best[2]:
            options.append((fee / 1e6, pool, get("balance", pool, d.address) or 0))
    if not options:
        return None
    need = held(w.position, d, Side.DEBT)
    enough = [o for o in options if o[2] is None or o[2] >= need]
    flash_fee, source, repay_cap = (min(enough, key=lambda o: o[0]) if enough
                                    else max(options, key=lambda o: o[2] or 0))
    per_call, per_window = get("cap", v, c.address), get("cap", v, c.address, index=1)
    used = get("used", v, c.address)
    if per_call is None or per_window is None or used is None:
        return None
    return DeleverageRoute(c, d, best[2], source, flash_fee, best[1] / 1e6, slip_bps / 10_000, best[0],
                           max(0, min(per_call, per_window - used)), gas_usd=gas_usd, max_repay_raw=repay_cap)


def _collateral_depth_usd(liquidity: int, sqrt_price_x96: int, collateral: AssetParams, debt: AssetParams) -> float:
    """The active liquidity's virtual reserve of the collateral, in USD: ``L / sqrt(P)`` of token0
    or ``L * sqrt(P)`` of token1 (P in raw token1 per raw token0)."""
    sqrt_p = sqrt_price_x96 / 2**96
    collateral_is_0 = int(collateral.address, 16) < int(debt.address, 16)
    raw = liquidity / sqrt_p if collateral_is_0 else liquidity * sqrt_p
    return raw / collateral.unit * collateral.price_usd
