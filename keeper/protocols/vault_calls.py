"""Actions -> KeeperVault calls. The keeper's key only ever calls the user's ``KeeperVault``; this
turns a planned ``Action`` on a ``Position`` into the vault's calldata:

    topUp(Ref, amount), repay(Ref, amount), withdrawExcess(Ref, amount), rebalance(Ref, amount, Ref)
    executePerpRequest(gmxVault, requestKey), cancelPerpRequest(gmxVault, requestKey)
    deleverage((Ref, debtAsset, flashSource, repayAmount, collateralAmount, pool, minOut))
    reducePerp(Ref, sizeDelta), executePerpDecrease(gmxVault, requestKey), cancelPerpDecrease(gmxVault, requestKey)
    Ref = (uint8 kind, address protocol, bytes32 market, address account)

Aave: kind 0, market = the asset (left-padded); Morpho: kind 1, market = the market id; perps:
kind 2, market = keccak256(abi.encode(collateralToken, indexToken, isLong)), and a withdrawal's
amount is GMX v1's USD collateral delta (1e30). On a gated GMX v1 deployment the vault turns a perp
top-up into a PositionRouter request (see KeeperVault); the two request calls settle the vault's own
late requests. A deleverage's Ref names the collateral it sells (on Aave, the market of that asset); a
perp's deleverage is ``reducePerp`` (size in USD at 1e30; on gated GMX v1 a decrease request, settled
late by the two decrease calls)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eth_abi.abi import encode
from eth_utils.crypto import keccak

from keeper.chain.contracts import ours
from keeper.chain.tx import TxRequest
from keeper.domain import Action, ActionKind, Address, Position, Protocol
from keeper.errors import ConfigError

KIND = {Protocol.AAVE_V3: 0, Protocol.MORPHO_BLUE: 1, Protocol.PERP: 2}
# Addresses go to eth_abi and JSON-RPC as the keeper holds them (``Address``: lower-case hex, which
# both take as is); checksumming them here cost a keccak each, on the act path.


@dataclass(frozen=True)
class Ref:
    kind: int
    protocol: str
    market: bytes
    account: str

    def as_tuple(self) -> tuple[int, str, bytes, str]:
        return (self.kind, Address(self.protocol), self.market, Address(self.account))


def perp_market_key(collateral_token: str, index_token: str, is_long: bool) -> bytes:
    return keccak(encode(["address", "address", "bool"], [Address(collateral_token), Address(index_token), is_long]))


def ref_for(position: Position, asset_address: str | None = None) -> Ref:
    """The vault's reference to a position; for Aave the market is the asset acted on."""
    if position.protocol is Protocol.AAVE_V3:
        if asset_address is None:
            raise ValueError("an Aave reference names the asset")
        market = bytes(12) + bytes.fromhex(Address(asset_address)[2:])
    elif position.protocol is Protocol.MORPHO_BLUE:
        market = bytes.fromhex(position.market[2:])
    else:
        coll, index, side = position.market.split(":")
        market = perp_market_key(coll, index, side == "long")
    return Ref(KIND[position.protocol], position.protocol_address, market, position.account)


def _canonical(arg: dict[str, Any]) -> str:
    """An ABI input's canonical type: tuples spelled out as ``(t1,t2,...)`` (arrays keep their suffix)."""
    t: str = arg["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(_canonical(c) for c in arg["components"]) + ")" + t[len("tuple"):]
    return t


@lru_cache(maxsize=1)
def _vault_functions() -> dict[str, tuple[bytes, list[str]]]:
    """KeeperVault's keeper functions: name -> (4-byte selector, argument types), from the ABI, once.
    Encoding with ``eth_abi`` directly costs ~0.1 ms; web3's contract ``encode_abi`` ~2.5 ms."""
    out = {}
    for item in ours("KeeperVault").abi:
        if item.get("type") == "function" and item["name"] in ("topUp", "repay", "withdrawExcess", "rebalance",
                                                                "executePerpRequest", "cancelPerpRequest",
                                                                "deleverage", "reducePerp", "executePerpDecrease",
                                                                "cancelPerpDecrease"):
            types = [_canonical(a) for a in item["inputs"]]
            out[item["name"]] = (keccak(text=f"{item['name']}({','.join(types)})")[:4], types)
    return out


def _encode(name: str, args: list[Any]) -> bytes:
    selector, types = _vault_functions()[name]
    fixed = _encode_static(_static_layout(tuple(types)), args)
    return selector + (fixed if fixed is not None else encode(types, args))


_UINT_BITS = {"uint8": 8, "uint256": 256}


@lru_cache(maxsize=32)
def _static_layout(types: tuple[str, ...]) -> tuple[tuple[str, ...], ...] | None:
    """Each argument's word types when every one is a static word or a tuple of them (the refs and
    amounts of topUp, repay, withdrawExcess, rebalance, reducePerp); None otherwise (eth_abi then)."""
    out = []
    for t in types:
        inner = tuple(t[1:-1].split(",")) if t.startswith("(") and t.endswith(")") else (t,)
        if any(x not in _UINT_BITS and x not in ("address", "bytes32") for x in inner):
            return None
        out.append(inner)
    return tuple(out)


def _encode_static(layout: tuple[tuple[str, ...], ...] | None, args: list[Any]) -> bytes | None:
    """The ABI encoding of static words, one 32-byte word each, as eth_abi gives it (checked against
    it in tests/protocols/test_vault_calls.py) at a tenth of its cost; None for anything it does not
    take as is (eth_abi then encodes, or raises its own error)."""
    if layout is None or len(layout) != len(args):
        return None
    words = []
    for inner, arg in zip(layout, args):
        values = arg if len(inner) > 1 or isinstance(arg, tuple) else (arg,)
        if not isinstance(values, tuple) or len(values) != len(inner):
            return None
        for t, v in zip(inner, values):
            if t == "address":
                if not (isinstance(v, str) and len(v) == 42 and v.startswith("0x")):
                    return None
                try:
                    words.append(bytes(12) + bytes.fromhex(v[2:]))
                except ValueError:
                    return None
            elif t == "bytes32":
                if not (isinstance(v, bytes) and len(v) == 32):
                    return None
                words.append(v)
            else:
                if type(v) is not int or not 0 <= v < 1 << _UINT_BITS[t]:
                    return None
                words.append(v.to_bytes(32, "big"))
    return b"".join(words)


def vault_request(vault: str, action: Action, positions: dict[str, Position]) -> TxRequest:
    """The transaction that carries out ``action`` through ``vault``."""
    try:
        pos = positions[action.position_key]
    except KeyError:
        raise ConfigError(f"unknown position {action.position_key}") from None
    if action.kind is ActionKind.DELEVERAGE:
        return _deleverage(vault, action, pos)
    ref = ref_for(pos, action.asset.address).as_tuple()
    if action.kind is ActionKind.TOP_UP:
        data = _encode("topUp", [ref, action.amount_raw])
    elif action.kind is ActionKind.REPAY:
        data = _encode("repay", [ref, action.amount_raw])
    elif action.kind is ActionKind.WITHDRAW_EXCESS:
        data = _encode("withdrawExcess", [ref, action.amount_raw])
    elif action.kind is ActionKind.REBALANCE:
        if action.target_key is None or action.target_key not in positions:
            raise ConfigError(f"rebalance target {action.target_key} unknown")
        to_ref = ref_for(positions[action.target_key], action.asset.address).as_tuple()
        data = _encode("rebalance", [ref, action.amount_raw, to_ref])
    elif action.kind in (ActionKind.EXECUTE_REQUEST, ActionKind.CANCEL_REQUEST):
        if pos.protocol is not Protocol.PERP or not action.request_key:
            raise ConfigError(f"{action.kind.value} needs a perp position and a request key")
        verb = "execute" if action.kind is ActionKind.EXECUTE_REQUEST else "cancel"
        name = f"{verb}PerpDecrease" if action.request_decrease else f"{verb}PerpRequest"
        data = _encode(name, [Address(pos.protocol_address), bytes.fromhex(action.request_key[2:])])
        return TxRequest(Address(vault), data, label=f"{action.kind.value} {action.request_key[:10]} on perp")
    else:
        raise ValueError(f"unknown action kind {action.kind}")
    return TxRequest(Address(vault), data,
                     label=f"{action.kind.value} {action.amount:g} {action.asset.symbol} on {pos.protocol.value}")


def _deleverage(vault: str, action: Action, pos: Position) -> TxRequest:
    if pos.protocol is Protocol.PERP:
        # a perp is deleveraged by size: ``amount_raw`` is the size taken off (USD at 1e30)
        data = _encode("reducePerp", [ref_for(pos, action.asset.address).as_tuple(), action.amount_raw])
        return TxRequest(Address(vault), data, label=f"reduce perp size by {action.amount:,.2f} USD")
    swap = action.swap
    if swap is None or pos.protocol not in (Protocol.AAVE_V3, Protocol.MORPHO_BLUE):
        raise ConfigError(f"deleverage needs a lending position and its swap ({action.position_key})")
    ref = ref_for(pos, swap.collateral.address).as_tuple()
    data = _encode("deleverage", [(ref, Address(action.asset.address), Address(swap.flash_source), action.amount_raw,
                                   swap.sell_raw, Address(swap.pool), swap.min_out_raw)])
    return TxRequest(Address(vault), data,
                     label=f"deleverage {action.amount:g} {action.asset.symbol} with "
                           f"{swap.sell_raw / 10**swap.collateral.decimals:g} {swap.collateral.symbol} "
                           f"on {pos.protocol.value}")
