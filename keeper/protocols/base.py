"""What every protocol adapter offers: batched reads that turn chain state into ``Position``s.

A read is two-phase so that one multicall can serve every adapter and the oracles in a tick:
``plan(accounts)`` returns the calls and a decoder; the caller runs all calls at one block; the
decoder turns its slice of results into positions. ``prepare`` loads slow-changing metadata
(reserve configuration, market parameters), cached between ticks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from keeper.chain.multicall import Call, Multicall, Result
from keeper.chain.oracle import PriceReading
from keeper.domain import Position, Protocol

WORD = 32


def word(data: bytes, i: int) -> int:
    """The i-th 32-byte word of ABI-encoded return data, as an unsigned int."""
    return int.from_bytes(data[WORD * i:WORD * (i + 1)], "big")


def address_word(data: bytes, i: int) -> str:
    return "0x" + data[WORD * i + 12:WORD * (i + 1)].hex()


def enc_address(addr: str) -> bytes:
    return b"\0" * 12 + bytes.fromhex(addr[2:] if addr.startswith("0x") else addr)


def enc_uint(n: int) -> bytes:
    return n.to_bytes(WORD, "big")


def enc_bool(b: bool) -> bytes:
    return enc_uint(1 if b else 0)


@dataclass(frozen=True)
class ReadContext:
    chain: str
    block: int
    timestamp: int
    # Chainlink readings keyed by the lower-case address of the asset they price (see config).
    prices: Mapping[str, PriceReading]


Decoder = Callable[[Sequence[Result], ReadContext], list[Position]]


@dataclass(frozen=True)
class ReadPlan:
    calls: list[Call]
    decode: Decoder
    # State-changing calls every chunk must run first (see Multicall.call); results dropped.
    prefix: tuple[Call, ...] = ()


class Adapter(ABC):
    protocol: Protocol

    @abstractmethod
    def prepare(self, mc: Multicall, block: int) -> None:
        """Load or refresh metadata needed to plan and decode."""

    @abstractmethod
    def plan(self, accounts: Sequence[str]) -> ReadPlan:
        """The calls that read these accounts' positions, and how to decode them."""

    def read(self, mc: Multicall, accounts: Sequence[str], ctx: ReadContext) -> list[Position]:
        self.prepare(mc, ctx.block)
        plan = self.plan(accounts)
        return plan.decode(mc.call(plan.calls, ctx.block, plan.prefix), ctx)


def price_issue(prices: Mapping[str, PriceReading], assets: Sequence[str]) -> str | None:
    """Why a position's prices are unusable (a checked Chainlink reading failed), else None.
    Assets without a configured feed are not checked here."""
    for a in assets:
        reading = prices.get(a.lower())
        if reading is not None and not reading.ok:
            return f"price unusable for {reading.name}: {reading.issue}"
    return None
