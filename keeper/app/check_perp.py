"""``keeper check-config`` for GMX v1 perps: which path the keeper's margin top-ups take for each
perp position it may act on, and whether that path works. One Multicall3 batch at the read's block.

- Gated Vault (``isLeverageEnabled`` off, as production GMX v1): a top-up is a PositionRouter
  request (``createIncreasePosition``) that GMX's position keepers execute later. It needs the
  vault's route (``perpRoutes(gmxVault)``: the PositionRouter the owner trusts, and a fee cap at or
  above the PositionRouter's ``minExecutionFee``), the fee in ether in the vault, and an ether cap
  (``caps(address(0))``) that lets the keeper pay it. A position held by the owner's own address
  cannot be topped up at all there (a request is always for its sender): a failure, since the keeper
  could only release margin, never protect it.
- Direct Vault (leverage on): a top-up is the vault's own transfer + ``increasePosition`` in one
  transaction; an owner-held position needs the owner's ``Vault.addRouter(keeperVault)``.
Releases are ``decreasePosition`` from the vault in both modes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from keeper.chain.multicall import Call, Multicall
from keeper.config import ChainConfig
from keeper.domain import ZERO_ADDRESS, Address, Position, Protocol
from keeper.errors import KeeperError
from keeper.protocols.base import address_word, enc_address, selector, word
from keeper.views import shown_address

NATIVE = ZERO_ADDRESS


@dataclass(frozen=True)
class PathCheck:
    """One line of ``check-config`` (``check_config.Check`` has the same fields)."""

    what: str
    ok: bool
    detail: str = ""
    warning: bool = False



SEL_ROUTE = selector("perpRoutes(address)")  # KeeperVault -> (address positionRouter, uint256 maxExecutionFee)
SEL_CAPS = selector("caps(address)")  # KeeperVault -> (uint256 perCall, uint256 perWindow)
SEL_ETH_BALANCE = selector("getEthBalance(address)")  # Multicall3
SEL_MIN_FEE = selector("minExecutionFee()")  # PositionRouter
SEL_APPROVED = selector("approvedRouters(address,address)")  # GMX Vault


def perp_paths(name: str, ccfg: ChainConfig, mc: Multicall, positions: Sequence[Position],
               vault_of: Mapping[Address, Address], describe: Callable[[Position], str]) -> list[PathCheck]:
    """One check per perp position a KeeperVault may act on (``vault_of``: account -> vault)."""
    jobs = [(p, vault_of[p.account]) for p in positions if p.protocol is Protocol.PERP and p.account in vault_of]
    if not jobs:
        return []
    calls: list[Call] = []
    for p, v in jobs:
        calls += [Call(v, SEL_ROUTE + enc_address(p.protocol_address)), Call(v, SEL_CAPS + enc_address(NATIVE)),
                  Call(mc.address, SEL_ETH_BALANCE + enc_address(v)),
                  Call(p.protocol_address, SEL_APPROVED + enc_address(p.account) + enc_address(v))]
    try:
        results = mc.call(calls, positions[0].block)
    except KeeperError as e:
        return [PathCheck(f"{name}: perp top-up paths", False, str(e))]
    routers = sorted({address_word(results[4 * i].data, 0) for i in range(len(jobs)) if results[4 * i].success
                      and len(results[4 * i].data) >= 64 and int(address_word(results[4 * i].data, 0), 16)})
    fees = {}
    if routers:
        fee_results = mc.call([Call(r, SEL_MIN_FEE) for r in routers], positions[0].block)
        fees = {r: word(f.data, 0) for r, f in zip(routers, fee_results) if f.success and len(f.data) >= 32}
    out = []
    configured = ccfg.perp.position_router if ccfg.perp else None
    for i, (p, v) in enumerate(jobs):
        route_r, caps_r, eth_r, approved_r = results[4 * i:4 * i + 4]
        what = f"{name}: perp path of {describe(p)}"
        vault_held = p.account == v
        shown = shown_address(v)
        if not p.extra.get("gated"):
            if vault_held:
                out.append(PathCheck(what, True, "direct GMX v1 (leverage on): top-up = the vault's transfer + "
                                             "increasePosition in one transaction; release = decreasePosition"))
            elif approved_r.success and len(approved_r.data) >= 32 and word(approved_r.data, 0):
                out.append(PathCheck(what, True, "direct GMX v1, owner-held: top-up = transfer + increasePosition "
                                             f"as the owner's approved router {shown}; release = decreasePosition"))
            else:
                out.append(PathCheck(what, False, f"direct GMX v1, owner-held, but {shown} is not the owner's approved "
                                              "router: every keeper call would revert (owner: Vault.addRouter(vault))"))
            continue
        if not vault_held:
            out.append(PathCheck(what, False, "gated GMX v1 (leverage only inside PositionRouter executions) and the "
                                          "position is held by the owner's own address: a PositionRouter request is "
                                          "always for its sender, so the keeper cannot add margin here (it could "
                                          "only release it); hold the position in the vault to protect it"))
            continue
        router = address_word(route_r.data, 0) if route_r.success and len(route_r.data) >= 64 else NATIVE
        if int(router, 16) == 0:
            out.append(PathCheck(what, False, f"gated GMX v1, but vault {shown} has no PositionRouter route for "
                                          f"{shown_address(p.protocol_address)}: top-ups would revert NoPerpRoute "
                                          "(owner: setPerpRoute(gmxVault, positionRouter, maxExecutionFee))"))
            continue
        cap_fee, min_fee = word(route_r.data, 1), fees.get(router)
        per_call = word(caps_r.data, 0) if caps_r.success and len(caps_r.data) >= 64 else 0
        eth = word(eth_r.data, 0) if eth_r.success and len(eth_r.data) >= 32 else 0
        problems = []
        if min_fee is None:
            problems.append(f"minExecutionFee() of the route's PositionRouter {router} failed: is it one?")
        else:
            if min_fee > cap_fee:
                problems.append(f"the PositionRouter's minExecutionFee {min_fee} wei is above the vault's cap "
                                f"{cap_fee} (ExecutionFeeTooHigh)")
            if min_fee > per_call:
                problems.append(f"the ether cap per call ({per_call} wei) is below the fee {min_fee}")
            if min_fee > eth:
                problems.append(f"the vault holds {eth} wei, less than one request's fee {min_fee}")
        if problems:
            out.append(PathCheck(what, False,
                                 "gated GMX v1, top-ups by PositionRouter request: " + "; ".join(problems)))
            continue
        warn = configured is not None and router != configured
        detail = (f"gated GMX v1: top-up = PositionRouter request to {router} (fee {min_fee} wei of the vault's "
                  f"{eth / 1e18:g} ETH, executed by GMX's position keepers about "
                  f"{ccfg.perp.request_latency_blocks if ccfg.perp else '?'} blocks later); release = decreasePosition")
        if warn:
            detail += f"; the vault's route is not the configured perp.position_router {configured}"
        out.append(PathCheck(what, True, detail, warning=warn))
    return out
