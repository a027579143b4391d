"""Chainlink price feeds (AggregatorV3Interface): batched reads with the checks a keeper needs
before it acts on a price, and backfill of round history.

Checks (``check_round``, pure): answer > 0; ``updatedAt`` within the feed's heartbeat of the block's
timestamp (never the local clock); ``answeredInRound >= roundId``; relative deviation from a second
source within a bound when one is configured; and, on L2s, the sequencer uptime feed says "up"
(answer 0) for longer than a grace period. A reading that fails any check carries ``ok=False`` and
the reason; callers must not act on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_abi.abi import decode

from keeper.chain.multicall import Call, Multicall
from keeper.domain import Address

LATEST_ROUND_DATA = bytes.fromhex("feaf968c")
GET_ROUND_DATA = bytes.fromhex("9a6fc8f5")
DECIMALS = bytes.fromhex("313ce567")
ROUND_TYPES = ["uint80", "int256", "uint256", "uint256", "uint80"]


@dataclass(frozen=True)
class FeedSpec:
    name: str
    address: Address
    heartbeat: int  # seconds: older answers are stale
    decimals: int | None = None  # read from the feed when None
    second_source: Address | None = None  # another feed of the same pair
    max_deviation: float = 0.05  # relative, against the second source


@dataclass(frozen=True)
class SequencerSpec:
    address: Address
    grace_period: int = 3600


@dataclass(frozen=True)
class Round:
    round_id: int
    answer: int
    started_at: int
    updated_at: int
    answered_in_round: int


@dataclass(frozen=True)
class PriceReading:
    feed: Address
    name: str
    round: Round | None
    decimals: int
    ok: bool
    issue: str | None = None

    @property
    def price(self) -> float:
        return self.round.answer / 10**self.decimals if self.round else float("nan")


def round_issue(rnd: Round | None, heartbeat: int, block_timestamp: int) -> str | None:
    """Why one round cannot be trusted at ``block_timestamp``, else None: a failed call, a
    non-positive answer, an incomplete round, an answer from the future (``updatedAt`` after the
    block: no honest feed writes one), an answer older than the heartbeat, a carried-over round."""
    if rnd is None:
        return "feed call failed"
    if rnd.answer <= 0:
        return f"non-positive answer {rnd.answer}"
    if rnd.updated_at == 0:
        return "round not complete (updatedAt = 0)"
    age = block_timestamp - rnd.updated_at
    if age < 0:
        return f"updated in the future: updatedAt {rnd.updated_at} is {-age} s after the block"
    if age > heartbeat:
        return f"stale: updated {age} s before the block, heartbeat {heartbeat} s"
    if rnd.answered_in_round < rnd.round_id:
        return f"answeredInRound {rnd.answered_in_round} < roundId {rnd.round_id}"
    return None


def check_round(spec: FeedSpec, rnd: Round | None, decimals: int, block_timestamp: int,
                second: float | None = None, sequencer_issue: str | None = None, *,
                second_round: Round | None = None, second_decimals: int | None = None) -> PriceReading:
    """The primary round checked (``round_issue``, the sequencer), then against the second source:
    the second round gets the same checks under the primary's heartbeat (a frozen or future second
    source is a price problem, never a silent pass), then the relative deviation. ``second`` (a
    price) is the older way to pass the second source, unchecked."""
    def bad(why: str) -> PriceReading:
        return PriceReading(spec.address, spec.name, rnd, decimals, False, why)

    if rnd is None:
        return bad("feed call failed")
    if sequencer_issue:
        return bad(sequencer_issue)
    why = round_issue(rnd, spec.heartbeat, block_timestamp)
    if why:
        return bad(why)
    if spec.second_source and second is None:
        if second_decimals is None:
            return bad("second source: decimals() unreadable")
        why = round_issue(second_round, spec.heartbeat, block_timestamp)
        if why:
            return bad(f"second source {why}")
        if second_round is None:  # round_issue reported it above
            return bad("second source feed call failed")
        second = second_round.answer / 10**second_decimals
    if second is not None:
        price = rnd.answer / 10**decimals
        if second <= 0:
            return bad("second source unusable")
        dev = abs(price - second) / second
        if dev > spec.max_deviation:
            return bad(f"deviates {dev:.1%} from the second source (max {spec.max_deviation:.1%})")
    return PriceReading(spec.address, spec.name, rnd, decimals, True)


def check_sequencer(rnd: Round | None, grace_period: int, block_timestamp: int) -> str | None:
    """None when the L2 sequencer is up and past its grace period; else why prices are unusable."""
    if rnd is None:
        return "sequencer uptime feed unreadable"
    if rnd.answer != 0:
        return "L2 sequencer is down"
    since = block_timestamp - rnd.started_at
    if since < grace_period:
        return f"L2 sequencer back up only {since} s ago (grace period {grace_period} s)"
    return None


def _round(data: bytes) -> Round:
    return Round(*decode(ROUND_TYPES, data))


class OracleReader:
    def __init__(self, multicall: Multicall, feeds: Sequence[FeedSpec], sequencer: SequencerSpec | None = None):
        self.mc = multicall
        self.feeds = list(feeds)
        self.sequencer = sequencer
        self._decimals: dict[Address, int] = {f.address: f.decimals for f in feeds if f.decimals is not None}

    def _load_decimals(self, block: int) -> None:
        wanted = dict.fromkeys(a for f in self.feeds for a in (f.address, f.second_source) if a)
        missing = [a for a in wanted if a not in self._decimals]
        if not missing:
            return
        for a, r in zip(missing, self.mc.call([Call(a, DECIMALS) for a in missing], block)):
            if r.success and len(r.data) == 32:
                self._decimals[a] = int.from_bytes(r.data, "big")

    def read(self, block: int, block_timestamp: int) -> dict[Address, PriceReading]:
        """Every configured feed at ``block``, checked; keyed by feed address."""
        self._load_decimals(block)
        addrs = [f.address for f in self.feeds]
        seconds = [f.second_source for f in self.feeds if f.second_source]
        calls = [Call(a, LATEST_ROUND_DATA) for a in addrs + seconds]
        if self.sequencer:
            calls.append(Call(self.sequencer.address, LATEST_ROUND_DATA))
        results = self.mc.call(calls, block)
        rounds = [(_round(r.data) if r.success and len(r.data) == 160 else None) for r in results]
        seq_issue = None
        if self.sequencer:
            seq_issue = check_sequencer(rounds.pop(), self.sequencer.grace_period, block_timestamp)
        primary, second_rounds = rounds[:len(addrs)], dict(zip(seconds, rounds[len(addrs):]))
        out = {}
        for spec, rnd in zip(self.feeds, primary):
            dec = self._decimals.get(spec.address)
            if dec is None:
                out[spec.address] = PriceReading(spec.address, spec.name, rnd, 0, False, "decimals() unreadable")
                continue
            srnd = sdec = None
            if spec.second_source:
                srnd = second_rounds.get(spec.second_source)
                sdec = self._decimals.get(spec.second_source)
            out[spec.address] = check_round(spec, rnd, dec, block_timestamp, None, seq_issue,
                                                    second_round=srnd, second_decimals=sdec)
        return out

    def backfill(self, feed: Address, block: int, *, newest_round: int | None = None, count: int = 1000,
                 stop_at_round: int | None = None) -> list[Round]:
        """Round history through ``getRoundData``, newest first going back ``count`` rounds (or to
        ``stop_at_round``). Chainlink round ids are ``phaseId << 64 | aggregatorRoundId``; the walk
        stays within the latest phase. Rounds that revert or are incomplete are skipped."""
        if newest_round is None:
            (latest,) = self.mc.call([Call(feed, LATEST_ROUND_DATA, allow_failure=False)], block)
            newest_round = _round(latest.data).round_id
        phase, agg_round = newest_round >> 64, newest_round & ((1 << 64) - 1)
        lowest = max(1, agg_round - count + 1)
        if stop_at_round is not None:
            lowest = max(lowest, (stop_at_round & ((1 << 64) - 1)) + 1)
        ids = [(phase << 64) | r for r in range(agg_round, lowest - 1, -1)]
        calls = [Call(feed, GET_ROUND_DATA + rid.to_bytes(32, "big")) for rid in ids]
        out = []
        for r in self.mc.call(calls, block):
            if r.success and len(r.data) == 160:
                rnd = _round(r.data)
                if rnd.updated_at > 0:
                    out.append(rnd)
        return out
