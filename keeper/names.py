"""Short, stable position names (``alice-aave``, ``bob-morpho``, ``alice-perp-eth-long``): shown by
every command and accepted wherever a position is selected.

A name is built from the account's label (else ``0x`` and 6 hex digits of its address), the protocol
and, for perps, the index and side. Only when two positions of one chain would share a name do both
take more of their market (Morpho: collateral and loan symbols, then 6 hex digits of the market id;
perps: the collateral token; then the protocol contract), and at last a digest of the key. So a name
depends on the position alone, except for that deterministic disambiguation. Pure: no I/O."""

from __future__ import annotations

import difflib
import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from keeper.domain import Address, Position, Protocol, Side

PROTOCOL_WORD = {Protocol.AAVE_V3: "aave", Protocol.MORPHO_BLUE: "morpho", Protocol.PERP: "perp"}
# A perp's exposure is to the underlying: GMX indexes by the wrapped token (WETH), operators say ETH.
_WRAPPED_NATIVE = {"WETH": "eth", "WBTC": "btc", "WAVAX": "avax", "WMATIC": "matic", "WBNB": "bnb", "WFTM": "ftm"}


def slug(text: str) -> str:
    """Lower case, runs of anything but letters and digits as one ``-``: ``Alice Main`` -> ``alice-main``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def short_address(address: Address) -> str:
    """``0x`` and the first 6 hex digits: ``0x15d34a``."""
    return address[:8]


def account_word(account: Address, labels: Mapping[Address, str] | None = None) -> str:
    """The account's label as a name part, else its short address. ``labels``: address -> label."""
    label = (labels or {}).get(account)
    return slug(label) if label and slug(label) else short_address(account)


def _hex6(value: str) -> str:
    v = value.lower()
    return (v[2:] if v.startswith("0x") else v)[:6]


def aliases(p: Position, who: str) -> list[str]:
    """The names ``p`` may take, least specific first; each longer one adds to the previous."""
    base = f"{who}-{PROTOCOL_WORD.get(p.protocol, slug(p.protocol.value))}"
    steps: list[str] = []
    if p.protocol is Protocol.MORPHO_BLUE:
        coll = next((leg.asset.symbol for leg in p.legs if leg.side is Side.COLLATERAL), "")
        debt = next((leg.asset.symbol for leg in p.legs if leg.side is Side.DEBT), "")
        steps = [slug(f"{coll} {debt}"), _hex6(p.market)]
    elif p.protocol is Protocol.PERP:
        parts = p.market.split(":")  # "<collateral>:<index>:<long|short>"
        if p.perp is not None:
            index = p.perp.index.symbol
            base += f"-{_WRAPPED_NATIVE.get(index.upper(), slug(index))}-{'long' if p.perp.is_long else 'short'}"
        elif len(parts) == 3:
            base += f"-{_hex6(parts[1])}-{slug(parts[2])}"
        steps = [_hex6(parts[0]) if len(parts) == 3 else _hex6(p.market), _hex6(p.protocol_address)]
    else:
        steps = [_hex6(p.protocol_address)]
    out = [base]
    for step in [*steps, hashlib.sha256(p.key.encode()).hexdigest()[:8]]:
        if step and f"{out[-1]}-{step}" not in out:
            out.append(f"{out[-1]}-{step}")
    return out


def position_names(positions: Iterable[Position], labels: Mapping[Address, str] | None = None) -> dict[str, str]:
    """key -> short name for every position of one chain. Positions whose names would clash all take
    their next alias, until none clash; the result does not depend on the order of ``positions``."""
    return Names.of(positions, labels).by_key


def names_by_chain(positions: Iterable[Position], labels: Mapping[Address, str] | None = None) -> dict[str, str]:
    """key -> short name for positions of several chains: each chain's named on its own, as commands
    resolve names (one chain at a time)."""
    by_chain: dict[str, list[Position]] = {}
    for p in positions:
        by_chain.setdefault(p.chain, []).append(p)
    return {k: n for ps in by_chain.values() for k, n in position_names(ps, labels).items()}


@dataclass(frozen=True)
class Names:
    """The names of one chain's positions, and the lookups ``rebalance`` makes with them."""

    positions: tuple[Position, ...]
    by_key: dict[str, str]  # key -> the name shown
    alias_lists: dict[str, list[str]]  # key -> every name the position answers to

    @classmethod
    def of(cls, positions: Iterable[Position], labels: Mapping[Address, str] | None = None) -> Names:
        unique = {p.key: p for p in positions}
        cands = {k: aliases(p, account_word(p.account, labels)) for k, p in unique.items()}
        level = dict.fromkeys(cands, 0)
        while True:
            holders: dict[str, list[str]] = {}
            for k, names in cands.items():
                holders.setdefault(names[level[k]], []).append(k)
            moved = False
            for keys in holders.values():
                if len(keys) > 1:
                    for k in keys:
                        if level[k] < len(cands[k]) - 1:
                            level[k] += 1
                            moved = True
            if not moved:
                break
        by_key = {k: cands[k][level[k]] for k in cands}
        count = Counter(by_key.values())
        by_key = {k: n if count[n] == 1 else k for k, n in by_key.items()}  # a clash left: the key itself
        return cls(tuple(unique.values()), by_key, cands)

    def name(self, p: Position) -> str:
        return self.by_key.get(p.key, p.key)

    def match(self, selector: str) -> list[Position]:
        """The positions ``selector`` names: the key; the name (any case); a name the position answers to
        (``alice-morpho-weth-usdc``); the start of names (``bob``: ``bob-aave``, ``bob-morpho``); else,
        as before names, a fragment of the key or ``:``-separated fragments (``0x15d34a:aave``)."""
        sel = selector.strip().lower()
        if not sel:
            return []
        tests = (lambda p: p.key == sel,
                 lambda p: self.name(p) == sel,
                 lambda p: sel in self.alias_lists.get(p.key, ()),
                 lambda p: self.name(p).startswith(sel + "-"),
                 lambda p: all(part in p.key for part in sel.split(":")))
        for test in tests:
            hits = [p for p in self.positions if test(p)]
            if hits:
                return sorted(hits, key=self.name)
        return []

    def closest(self, selector: str, among: Sequence[Position] | None = None, n: int = 3) -> list[str]:
        """The few names nearest to ``selector`` (difflib), best first."""
        names = sorted(self.name(p) for p in (self.positions if among is None else among))
        return difflib.get_close_matches(selector.strip().lower(), names, n=n, cutoff=0.4)


def with_names(text: str, names: Mapping[str, str]) -> str:
    """``text`` with every position key in it replaced by that position's name (the planner's notes,
    skip reasons and alerts name positions by key)."""
    for key in sorted(names, key=len, reverse=True):
        if key in text:
            text = text.replace(key, names[key])
    return text
