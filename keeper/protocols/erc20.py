"""ERC20 metadata (symbol, decimals) through one multicall, tolerant of tokens without them."""

from __future__ import annotations

from collections.abc import Sequence

from eth_abi.abi import decode

from keeper.chain.multicall import Call, Multicall
from keeper.domain import Address, Asset

SEL_DECIMALS = bytes.fromhex("313ce567")
SEL_SYMBOL = bytes.fromhex("95d89b41")


def _symbol(data: bytes, fallback: str) -> str:
    try:
        if len(data) == 32:  # some old tokens return bytes32
            return data.rstrip(b"\0").decode() or fallback
        (sym,) = decode(["string"], data)
        return sym or fallback
    except Exception:  # undecodable metadata is not worth failing a read for
        return fallback


def load_assets(mc: Multicall, addresses: Sequence[Address], block: int,
                default_decimals: int = 18) -> dict[Address, Asset]:
    """Asset per address. A token without ``decimals()`` (Morpho's ERC20Mock) gets
    ``default_decimals``; one without ``symbol()`` a short address."""
    calls = [Call(a, sel) for a in addresses for sel in (SEL_DECIMALS, SEL_SYMBOL)]
    results = mc.call(calls, block)
    out = {}
    for k, a in enumerate(addresses):
        dec_r, sym_r = results[2 * k], results[2 * k + 1]
        decimals = int.from_bytes(dec_r.data, "big") if dec_r.success and len(dec_r.data) == 32 else default_decimals
        symbol = _symbol(sym_r.data, a[:8]) if sym_r.success else a[:8]
        out[a] = Asset(symbol, a, decimals)
    return out
