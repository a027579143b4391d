"""How each vault can deleverage each GMX v1 perp it acts for, read at the tick's block: what its caps
on size taken off (``DeleverageModule.setDeleverageCap`` on the GMX Vault's address) still allow, the
PositionRouter's execution fee on gated GMX v1, in one multicall, turned into
``keeper.plan.perp_reduce.PerpReduceRoute`` for the planner.

Read only for chains with a ``perp`` section, and only for the vaults whose caps on the GMX Vault are
set (``keeper.app.books`` finds those). On gated GMX v1 a vault needs its route to the PositionRouter
(``setPerpRoute``) with a fee cap at or above GMX's minimum execution fee, else no route is offered.
GMX's margin fee on the size taken off is the position's own (``PerpTerms.margin_fee_bps``, read with
it). The gas is not counted beyond a reserve action's: a
reduction costs about what a top-up costs (a request either way on gated GMX v1; the contract tests
print both)."""

from __future__ import annotations

from collections.abc import Sequence

from eth_utils.crypto import keccak

from keeper.chain.multicall import Call
from keeper.config import ChainConfig
from keeper.domain import Address, Position, Protocol
from keeper.plan.perp_reduce import PerpReduceRoute
from keeper.plan.whatif import AssetParams, perp_collateral_address
from keeper.protocols.base import address_word, enc_address, word
from keeper.protocols.reader import ChainReader

SEL_CAP = keccak(text="deleverageCap(address)")[:4]
SEL_USED = keccak(text="deleverageUsed(address)")[:4]
SEL_MIN_EXECUTION_FEE = keccak(text="minExecutionFee()")[:4]
SEL_PERP_ROUTES = keccak(text="perpRoutes(address)")[:4]


def read_perp_routes(reader: ChainReader, ccfg: ChainConfig, positions_by_vault: dict[Address, list[Position]],
                     assets: Sequence[AssetParams], block: int) -> dict[Address, dict[str, PerpReduceRoute]]:
    """vault -> position key -> its route, for the perps a route exists for (the vault's caps on the
    GMX Vault leave room, the collateral token is a configured asset, the price is usable)."""
    perp = ccfg.perp
    if perp is None:
        return {}
    gmx = Address(perp.vault)
    by_addr = {a.address: a for a in assets}
    wants = [(v, pos) for v, positions in positions_by_vault.items() for pos in positions
             if pos.protocol is Protocol.PERP and pos.perp is not None and pos.price_ok
             and Address(pos.protocol_address) == gmx and perp_collateral_address(pos) in by_addr]
    if not wants:
        return {}
    vaults = sorted({v for v, _ in wants})
    calls = [Call(v, sel + enc_address(gmx)) for v in vaults for sel in (SEL_CAP, SEL_USED, SEL_PERP_ROUTES)]
    router = Address(perp.position_router) if perp.position_router else None
    if router is not None:
        calls.append(Call(router, SEL_MIN_EXECUTION_FEE))
    results = reader.mc.call(calls, block)
    fee_wei = None
    if router is not None and results[-1].success and len(results[-1].data) >= 32:
        fee_wei = word(results[-1].data, 0)
    room: dict[Address, int] = {}
    requests_ok: set[Address] = set()  # vaults whose route to the PositionRouter takes its fee
    for i, v in enumerate(vaults):
        cap, used, route = results[3 * i], results[3 * i + 1], results[3 * i + 2]
        if cap.success and used.success and len(cap.data) >= 64 and len(used.data) >= 32:
            per_call, per_window = word(cap.data, 0), word(cap.data, 1)
            room[v] = max(0, min(per_call, per_window - word(used.data, 0)))
        if (route.success and len(route.data) >= 64 and fee_wei is not None
                and int(address_word(route.data, 0), 16) != 0 and word(route.data, 1) >= fee_wei):
            requests_ok.add(v)
    eth = next((a.price_usd for a in assets if a.symbol in ("WETH", "ETH")), 0.0)
    out: dict[Address, dict[str, PerpReduceRoute]] = {}
    for v, pos in wants:
        assert pos.perp is not None
        gated = bool(pos.extra.get("gated"))
        if not room.get(v) or (gated and v not in requests_ok):
            continue  # no room in the caps, or gated without a route to the PositionRouter that takes its fee
        fee_usd = (fee_wei or 0) / 1e18 * eth if gated else 0.0
        out.setdefault(v, {})[pos.key] = PerpReduceRoute(
            by_addr[perp_collateral_address(pos)], gmx, pos.perp.margin_fee_bps, room[v], fee_usd, 0.0, gated)
    return out
