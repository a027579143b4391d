"""What every protocol adapter offers: batched reads that turn chain state into ``Position``s.

A read is two-phase so that one multicall can serve every adapter and the oracles in a tick:
``plan(accounts)`` returns the calls and a decoder; the caller runs all calls at one block; the
decoder turns its slice of results into positions. ``prepare`` loads slow-changing metadata
(reserve configuration, market parameters), cached between ticks.

A plan may also carry pre-encoded ``fixed`` chunks (their values go to ``decode_fixed``) and a
``follow_up``: after decoding, it may return another plan to run at the same block (for instance
the accounts whose layout changed since the calls were built). ``run_plans`` runs all of that."""

from __future__ import annotations

import gc
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from eth_utils.crypto import keccak

from keeper.chain.multicall import Call, FixedChunk, Multicall, Result
from keeper.chain.oracle import PriceReading
from keeper.domain import Address, Position, Protocol
from keeper.errors import TemporaryError

WORD = 32


def selector(signature: str) -> bytes:
    """A function's 4-byte selector, e.g. ``selector("gov()")``."""
    return keccak(text=signature)[:4]


def word(data: bytes, i: int) -> int:
    """The i-th 32-byte word of ABI-encoded return data, as an unsigned int."""
    return int.from_bytes(data[WORD * i:WORD * (i + 1)], "big")


def address_word(data: bytes, i: int) -> Address:
    """The i-th word of ABI-encoded return data as an address (the keeper's ``Address``)."""
    return Address("0x" + data[WORD * i + 12:WORD * (i + 1)].hex())


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
    # Chainlink readings keyed by the address of the asset they price (see config).
    prices: Mapping[Address, PriceReading]


Decoder = Callable[[Sequence[Result], ReadContext], list[Position]]
# Values of a plan's fixed chunks, one list per chunk, in order, possibly while later chunks are
# still in flight (``Multicall.stream_fixed``): a decoder may work on each as it arrives.
FixedDecoder = Callable[[Iterable[list[int | bytes | None]], ReadContext], list[Position]]
FollowUp = Callable[[Multicall, ReadContext], "ReadPlan | None"]
MAX_ROUNDS = 4  # a plan and at most three follow-ups per read


@dataclass(frozen=True)
class ReadPlan:
    calls: list[Call]
    decode: Decoder
    # State-changing calls every chunk must run first (see Multicall.call); results dropped.
    prefix: tuple[Call, ...] = ()
    # Pre-encoded chunks run as they are (no prefix), values per chunk to decode_fixed.
    fixed: tuple[FixedChunk, ...] = ()
    decode_fixed: FixedDecoder | None = None
    # Called after decode: another plan to run at the same block, or None.
    follow_up: FollowUp | None = None


def run_plans(mc: Multicall, plans: Sequence[ReadPlan], ctx: ReadContext) -> list[Position]:
    """Run plans at ``ctx.block``: every plan's ``calls`` in one chunked multicall (prefixes
    merged), their fixed chunks, the decoders in plan order, then follow-up rounds likewise.

    Python's cyclic garbage collector is paused meanwhile: a read builds a few hundred thousand
    small acyclic objects (positions, legs, decoded words), which reference counting frees, and
    collection passes over them cost about a fifth of a 30,000-position read."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _run_plans(mc, plans, ctx)
    finally:
        if enabled:
            gc.enable()


def _run_plans(mc: Multicall, plans: Sequence[ReadPlan], ctx: ReadContext) -> list[Position]:
    positions: list[Position] = []
    rounds = 0
    while plans:
        rounds += 1
        if rounds > MAX_ROUNDS:
            raise TemporaryError(f"read at block {ctx.block} still had follow-ups after {MAX_ROUNDS} rounds")
        calls = [c for p in plans for c in p.calls]
        prefix = [c for p in plans for c in p.prefix]
        results = mc.call(calls, ctx.block, prefix) if calls else []
        fixed = [c for p in plans for c in p.fixed]
        if any(p.fixed and p.decode_fixed is None for p in plans):
            raise TypeError("a plan with fixed chunks needs decode_fixed")
        # One stream for every plan's fixed chunks, consumed in plan order: the first plan decodes
        # its chunks while the node still answers the later ones.
        stream = iter(mc.stream_fixed(fixed, ctx.block)) if fixed else iter(())
        start = 0
        for p in plans:
            positions.extend(p.decode(results[start:start + len(p.calls)], ctx))
            start += len(p.calls)
            if p.fixed and p.decode_fixed is not None:
                positions.extend(p.decode_fixed(_take(stream, len(p.fixed)), ctx))
        nxt = []
        for p in plans:
            if p.follow_up is not None:
                f = p.follow_up(mc, ctx)
                if f is not None:
                    nxt.append(f)
        plans = nxt
    return positions


def _take(stream: Iterator[list[int | bytes | None]], n: int) -> Iterator[list[int | bytes | None]]:
    for _ in range(n):
        yield next(stream)


class Adapter(ABC):
    protocol: Protocol

    @abstractmethod
    def prepare(self, mc: Multicall, block: int) -> None:
        """Load or refresh metadata needed to plan and decode."""

    @abstractmethod
    def plan(self, accounts: Sequence[Address]) -> ReadPlan:
        """The calls that read these accounts' positions, and how to decode them."""

    def read(self, mc: Multicall, accounts: Sequence[Address], ctx: ReadContext) -> list[Position]:
        self.prepare(mc, ctx.block)
        return run_plans(mc, [self.plan(accounts)], ctx)


def price_issue(prices: Mapping[Address, PriceReading], assets: Sequence[Address]) -> str | None:
    """Why a position's prices are unusable (a checked Chainlink reading failed), else None.
    Assets without a configured feed are not checked here."""
    for a in assets:
        reading = prices.get(a)
        if reading is not None and not reading.ok:
            return f"price unusable for {reading.name}: {reading.issue}"
    return None
