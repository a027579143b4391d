"""The GMX v1 PositionRouter requests a KeeperVault has pending, read from the chain: increases (the
keeper's margin top-ups) and decreases (its size reductions).

Requests are keyed ``keccak256(abi.encodePacked(account, index))`` with ``index`` the account's
running ``increasePositionsIndex`` (``decreasePositionsIndex``); a request is pending while
``increasePositionRequests(key)`` (``decreasePositionRequests``) still has an account (execution and
cancellation delete it). The keeper never creates a second request for a position while one is
pending, so the last ``LOOKBACK`` indexes of each vault hold every request of its that can still be
pending.

Read from the chain at every tick, not from the keeper's own memory: a restarted keeper (or one
whose journal was lost) sees exactly the requests that are still waiting."""

from __future__ import annotations

from collections.abc import Sequence

from eth_utils.crypto import keccak

from keeper.chain.multicall import Call, Multicall
from keeper.domain import ZERO_ADDRESS, Address
from keeper.plan.perp_requests import PendingRequest, RouterRules
from keeper.protocols.base import address_word, enc_address, selector, word

LOOKBACK = 16



SEL_INDEX = selector("increasePositionsIndex(address)")
SEL_REQUEST = selector("increasePositionRequests(bytes32)")
SEL_PATH = selector("getIncreasePositionRequestPath(bytes32)")
SEL_DEC_INDEX = selector("decreasePositionsIndex(address)")
SEL_DEC_REQUEST = selector("decreasePositionRequests(bytes32)")
SEL_DEC_PATH = selector("getDecreasePositionRequestPath(bytes32)")
SEL_MIN_BLOCK_DELAY = selector("minBlockDelayKeeper()")
SEL_MIN_TIME_PUBLIC = selector("minTimeDelayPublic()")
SEL_MAX_TIME = selector("maxTimeDelay()")
SEL_PUBLIC = selector("isLeverageEnabled()")


def request_key(account: Address, index: int) -> str:
    """GMX v1's ``PositionRouter.getRequestKey(account, index)``."""
    return "0x" + keccak(bytes.fromhex(account[2:]) + index.to_bytes(32, "big")).hex()


def _address_array(data: bytes) -> list[Address]:
    """An ABI-encoded ``address[]`` return value."""
    if len(data) < 64:
        return []
    start = word(data, 0) // 32
    n = word(data, start)
    return [address_word(data, start + 1 + i) for i in range(n)]


class RequestReader:
    """Pending requests of some accounts on one PositionRouter."""

    def __init__(self, mc: Multicall, position_router: Address) -> None:
        self.mc = mc
        self.router = position_router

    def read(self, accounts: Sequence[Address], block: int) -> tuple[RouterRules, list[PendingRequest]]:
        head = [Call(self.router, s, False) for s in (SEL_MIN_BLOCK_DELAY, SEL_MIN_TIME_PUBLIC, SEL_MAX_TIME,
                                                       SEL_PUBLIC)]
        indexes = [Call(self.router, sel + enc_address(a), False)
                   for a in accounts for sel in (SEL_INDEX, SEL_DEC_INDEX)]
        first = self.mc.call(head + indexes, block)
        rules = RouterRules(word(first[0].data, 0), word(first[1].data, 0), word(first[2].data, 0),
                            bool(word(first[3].data, 0)))
        keys: list[tuple[str, bool]] = []  # (key, decrease)
        for j, a in enumerate(accounts):
            for decrease, r in ((False, first[4 + 2 * j]), (True, first[5 + 2 * j])):
                n = word(r.data, 0) if r.success else 0
                keys += [(request_key(a, i), decrease) for i in range(max(1, n - LOOKBACK + 1), n + 1)]
        if not keys:
            return rules, []
        calls = []
        for k, decrease in keys:
            raw = bytes.fromhex(k[2:])
            sels = (SEL_DEC_REQUEST, SEL_DEC_PATH) if decrease else (SEL_REQUEST, SEL_PATH)
            calls += [Call(self.router, sels[0] + raw, False), Call(self.router, sels[1] + raw, False)]
        results = self.mc.call(calls, block)
        out = []
        for i, (k, decrease) in enumerate(keys):
            req, path = results[2 * i], results[2 * i + 1]
            account = address_word(req.data, 0)
            if int(account, 16) == 0:
                continue  # executed or cancelled
            tokens = _address_array(path.data)
            if decrease:  # (account, indexToken, collateralDelta, sizeDelta, isLong, receiver, acceptablePrice,
                # minOut, executionFee, blockNumber, blockTime, ...); the path starts at the collateral
                out.append(PendingRequest(
                    key=k, account=account, collateral_token=tokens[0] if tokens else ZERO_ADDRESS,
                    index_token=address_word(req.data, 1), is_long=bool(word(req.data, 4)), amount_raw=0,
                    size_delta=word(req.data, 3), execution_fee=word(req.data, 8), block=word(req.data, 9),
                    timestamp=word(req.data, 10), decrease=True))
                continue
            out.append(PendingRequest(
                key=k, account=account, collateral_token=tokens[-1] if tokens else ZERO_ADDRESS,
                index_token=address_word(req.data, 1), is_long=bool(word(req.data, 5)), amount_raw=word(req.data, 2),
                size_delta=word(req.data, 4), execution_fee=word(req.data, 7), block=word(req.data, 8),
                timestamp=word(req.data, 9)))
        return rules, out

