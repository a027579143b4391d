"""Batched reads through Multicall3 ``aggregate3``: allowFailure per call, chunked, every chunk of a
tick pinned to one block number, a few chunks in flight at once.

Encoding and decoding are done by hand on 32-byte words rather than through eth-abi's generic
codec: the layout of ``(address,bool,bytes)[]`` and ``(bool,bytes)[]`` is fixed, and doing it in bulk
is several times faster for thousands of calls per block (``tests/chain/test_multicall.py`` checks
both against eth-abi)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from keeper.chain.client import ChainClient
from keeper.errors import Reverted

MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
AGGREGATE3 = bytes.fromhex("82ad56cb")  # aggregate3((address,bool,bytes)[])
WORD = 32


@dataclass(frozen=True)
class Call:
    target: str  # 0x-prefixed address
    data: bytes
    allow_failure: bool = True


@dataclass(frozen=True)
class Result:
    success: bool
    data: bytes


def _word(n: int) -> bytes:
    return n.to_bytes(WORD, "big")


def _padded(data: bytes) -> bytes:
    rem = len(data) % WORD
    return data + b"\0" * (WORD - rem) if rem else data


def encode_aggregate3(calls: Sequence[Call]) -> bytes:
    n = len(calls)
    offsets, bodies = [], []
    pos = WORD * n
    for c in calls:
        target = bytes.fromhex(c.target[2:] if c.target.startswith("0x") else c.target)
        body = (b"\0" * 12 + target + _word(1 if c.allow_failure else 0) + _word(3 * WORD)
                + _word(len(c.data)) + _padded(c.data))
        offsets.append(_word(pos))
        bodies.append(body)
        pos += len(body)
    return AGGREGATE3 + _word(WORD) + _word(n) + b"".join(offsets) + b"".join(bodies)


def decode_aggregate3(ret: bytes) -> list[Result]:
    mv = memoryview(ret)
    base = int.from_bytes(mv[0:WORD], "big")
    n = int.from_bytes(mv[base:base + WORD], "big")
    head = base + WORD
    out = []
    for i in range(n):
        t = head + int.from_bytes(mv[head + i * WORD:head + (i + 1) * WORD], "big")
        ok = mv[t + WORD - 1] == 1
        d = t + int.from_bytes(mv[t + WORD:t + 2 * WORD], "big")
        length = int.from_bytes(mv[d:d + WORD], "big")
        out.append(Result(ok, bytes(mv[d + WORD:d + WORD + length])))
    return out


def _data_offsets(n: int, lengths: Sequence[int]) -> tuple[list[int], list[int], int]:
    """Where each call's success flag and data sit in an aggregate3 return when every call
    succeeds with its expected length (the layout is then fixed), and the total size."""
    t = 2 * WORD + WORD * n
    flags, data = [], []
    for length in lengths:
        flags.append(t + WORD - 1)
        data.append(t + 3 * WORD)
        t += 3 * WORD + (length + WORD - 1) // WORD * WORD
    return flags, data, t


@dataclass
class FixedChunk:
    """One aggregate3 batch whose every call has a known return length (-1 where unknown).

    Encoded once and reused across ticks; its return is decoded in bulk when every call succeeded
    with the expected length, else by the generic decoder. Values come back as ints for 32-byte
    returns, bytes otherwise, and None for a call that failed or returned an unexpected length."""
    calls: list[Call]
    lengths: list[int]
    _payload: str | None = field(default=None, repr=False)
    _layout: tuple[bool, list[int], list[int], int] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if len(self.calls) != len(self.lengths):
            raise ValueError("one expected length per call")

    @property
    def payload(self) -> str:
        if self._payload is None:
            self._payload = "0x" + encode_aggregate3(self.calls).hex()
        return self._payload

    def decode(self, ret: bytes) -> list[int | bytes | None]:
        if self._layout is None:
            fixed = all(length >= 0 for length in self.lengths)
            flags, data, total = _data_offsets(len(self.calls), [max(n, 0) for n in self.lengths])
            self._layout = (fixed, flags, data, total)
        fixed, flags, data, total = self._layout
        if fixed and len(ret) == total and self._fast_ok(ret, flags, data):
            fb = int.from_bytes
            return [fb(ret[o:o + WORD], "big") if n == WORD else ret[o:o + n] for o, n in zip(data, self.lengths)]
        return self.values(decode_aggregate3(ret))

    def _fast_ok(self, ret: bytes, flags: list[int], data: list[int]) -> bool:
        if ret[0:WORD] != _word(WORD) or ret[WORD:2 * WORD] != _word(len(self.calls)):
            return False
        try:
            import numpy as np
        except ImportError:  # pragma: no cover - numpy is a dependency of risk
            return all(ret[f] == 1 for f in flags) and all(
                int.from_bytes(ret[o - WORD:o], "big") == n for o, n in zip(data, self.lengths))
        arr = np.frombuffer(ret, np.uint8)
        d = np.asarray(data)
        lengths = np.asarray(self.lengths)
        return bool((arr[np.asarray(flags)] == 1).all() and (arr[d - 1] == (lengths & 0xFF)).all()
                    and (arr[d - 2] == ((lengths >> 8) & 0xFF)).all())

    def values(self, results: Sequence[Result]) -> list[int | bytes | None]:
        out: list[int | bytes | None] = []
        for r, n in zip(results, self.lengths):
            if not r.success or (n >= 0 and len(r.data) != n):
                out.append(None)
            elif n == WORD:
                out.append(int.from_bytes(r.data, "big"))
            else:
                out.append(r.data)
        return out


class Multicall:
    def __init__(self, client: ChainClient, address: str = MULTICALL3, *, chunk_size: int = 500,
                 in_flight: int = 2, gas: int | None = None) -> None:
        if chunk_size < 1 or in_flight < 1:
            raise ValueError("chunk_size and in_flight must be >= 1")
        self.client = client
        self.address = address
        self.chunk_size = chunk_size
        self.in_flight = in_flight
        self.gas = gas
        self._pool = (ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="multicall")
                      if in_flight > 1 else None)

    def _run_chunk(self, chunk: Sequence[Call], block: int, prefix: Sequence[Call] = ()) -> list[Result]:
        try:
            ret = self.client.eth_call(self.address, encode_aggregate3(list(prefix) + list(chunk)), block, gas=self.gas)
        except Reverted:
            # With allowFailure the batch itself reverts only when it runs out of gas or a call
            # that must not fail fails: split to find out, down to single calls.
            if len(chunk) == 1:
                if chunk[0].allow_failure:
                    return [Result(False, b"")]
                raise
            mid = len(chunk) // 2
            return self._run_chunk(chunk[:mid], block, prefix) + self._run_chunk(chunk[mid:], block, prefix)
        results = decode_aggregate3(ret)[len(prefix):]
        if len(results) != len(chunk):
            raise Reverted(f"multicall at {self.address} returned {len(results)} results for {len(chunk)} calls")
        return results

    def call(self, calls: Sequence[Call], block: int, prefix: Sequence[Call] = ()) -> list[Result]:
        """Run every call at ``block`` (an explicit number: all reads of a tick see one state).

        ``prefix`` calls run first in *every* chunk and their results are dropped: state changes
        that reads must see inside the simulated call, such as Morpho's ``accrueInterest`` (so
        reads include interest up to the block exactly as the contract would accrue it)."""
        if not isinstance(block, int):
            raise TypeError("pin multicall reads to a block number")
        chunks = [calls[i:i + self.chunk_size] for i in range(0, len(calls), self.chunk_size)]
        if self._pool is None or len(chunks) < 2:
            parts = [self._run_chunk(c, block, prefix) for c in chunks]
        else:
            parts = list(self._pool.map(lambda c: self._run_chunk(c, block, prefix), chunks))
        return [r for part in parts for r in part]

    def call_fixed(self, chunks: Sequence[FixedChunk], block: int) -> list[list[int | bytes | None]]:
        """Run pre-encoded chunks at ``block`` (a few in flight); each chunk's values (see FixedChunk)."""
        return list(self.stream_fixed(chunks, block))

    def stream_fixed(self, chunks: Sequence[FixedChunk], block: int) -> Iterator[list[int | bytes | None]]:
        """Like ``call_fixed``, but each chunk's values are yielded, in order, as soon as that chunk
        is back, while the later ones are still in flight: a decoder consuming the stream works
        while the node answers the rest. A chunk whose batch reverts (out of gas, a call that must
        not fail) is re-run through the splitting path of ``call``."""
        if not isinstance(block, int):
            raise TypeError("pin multicall reads to a block number")

        def one(chunk: FixedChunk) -> list[int | bytes | None]:
            try:
                ret = self.client.call_hex(self.address, chunk.payload, block, self.gas)
            except Reverted:
                return chunk.values(self._run_chunk(chunk.calls, block))
            return chunk.decode(ret)

        if self._pool is None or len(chunks) < 2:
            for c in chunks:
                yield one(c)
            return
        futures = [self._pool.submit(one, c) for c in chunks]
        try:
            for f in futures:
                yield f.result()
        finally:
            for f in futures:  # the consumer stopped early (an error): drop what has not started
                f.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
