"""The daemon's follow-up of GMX v1 PositionRouter requests (gated deployments).

Each tick, for the vaults the keeper acts for, the pending requests are read from the chain
(``keeper.protocols.gmx_requests``; the chain, not memory, so a restart loses nothing) and each gets
a decision (``keeper.plan.perp_requests.next_step``):

- while a request is pending, its position gets no new top-up (the margin is on its way); the skip
  is logged with the request's age;
- a request older than ``perp.request_timeout_blocks`` is alerted (``perp_request_stuck``, once per
  request and step) and, as soon as GMX allows the account to act (``minTimeDelayPublic``), executed
  by the vault itself (``executePerpRequest``: the margin lands, the fee comes back); an expired one
  is cancelled from the vault (the collateral comes back and the planner may ask again);
- a request that leaves the queue is counted in the request-latency figure the keeper reports
  (blocks from creation to the block it was last seen pending, plus one: an upper bound on GMX's
  ``blockGap``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from eth_utils.crypto import keccak

from keeper.app.books import VaultBook
from keeper.chain.tx import Receipt
from keeper.domain import Action, ActionKind, Address, Asset, Position, Protocol, Reason
from keeper.plan.perp_requests import Decision, PendingRequest, RouterRules, Step, next_step
from keeper.protocols.gmx_requests import RequestReader

if TYPE_CHECKING:
    from keeper.alerts import Alerter
    from keeper.chain.client import ChainClient
    from keeper.chain.multicall import Multicall

log = logging.getLogger("keeper.daemon")


@dataclass
class RequestView:
    """One tick's view: the decisions per pending request, and the positions they block."""

    rules: RouterRules | None = None
    decisions: list[tuple[PendingRequest, Decision]] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)  # position key -> why no new top-up
    settled: list[int] = field(default_factory=list)  # latencies (blocks) of requests that left the queue


class PerpRequestWatch:
    def __init__(self, chain: str, mc: Multicall, gmx_vault: Address, position_router: Address,
                 timeout_blocks: int) -> None:
        self.chain = chain
        self.gmx_vault = gmx_vault
        self.reader = RequestReader(mc, position_router)
        self.timeout_blocks = timeout_blocks
        # (request key, decrease) -> (created block, last block seen pending): GMX keys increases and
        # decreases alike (account, index), in two maps, so a key alone may name two requests
        self._seen: dict[tuple[str, bool], tuple[int, int]] = {}
        self._alerted: set[tuple[str, bool, Step]] = set()
        self.latencies: list[int] = []  # blocks, for requests seen to leave the queue (the last 50)

    def position_key(self, req: PendingRequest) -> str:
        # as Position.key spells it (lower case: the chain's name may not be)
        return f"{self.chain}:{Protocol.PERP}:{self.gmx_vault}:{req.account}:{req.market}".lower()

    def read(self, vaults: Sequence[Address], block: int, timestamp: int) -> RequestView:
        if not vaults:
            return RequestView()
        rules, pending = self.reader.read(list(vaults), block)
        view = RequestView(rules)
        now_pending = set()
        for req in pending:
            now_pending.add((req.key, req.decrease))
            self._seen[(req.key, req.decrease)] = (req.block, block)
            d = next_step(req, block, timestamp, rules, self.timeout_blocks)
            view.decisions.append((req, d))
            what = "size reduction" if req.decrease else "margin"
            view.blocked[self.position_key(req)] = f"a {what} request ({req.key[:10]}) is pending: {d.why}"
        for key in [k for k in self._seen if k not in now_pending]:
            created, last = self._seen.pop(key)
            view.settled.append(last + 1 - created)
        self.latencies = (self.latencies + view.settled)[-50:]
        return view

    def measured_latency(self) -> int:
        """The median request latency seen (blocks), 0 before any."""
        if not self.latencies:
            return 0
        return sorted(self.latencies)[len(self.latencies) // 2]

    def maintenance(self, view: RequestView, books: Sequence[VaultBook], alerter: Alerter,
                    name: str) -> list[tuple[VaultBook, Action]]:
        """The vault calls that settle late requests, and the alerts for stuck ones."""
        out = []
        by_vault = {b.vault: b for b in books}
        for req, d in view.decisions:
            if d.step is Step.WAIT:
                continue
            pkey = self.position_key(req)
            if (req.key, req.decrease, d.step) not in self._alerted:
                self._alerted.add((req.key, req.decrease, d.step))
                log.warning(f"perp request {d.step.value}: {d.why}",
                            extra={"event": "perp_request", "position": pkey, "request": req.key, "step": d.step.value,
                                   "age_blocks": d.age_blocks, "age_seconds": d.age_seconds})
                severity = "critical" if d.step is Step.STUCK else "warning"
                what = "size reduction" if req.decrease else "margin"
                alerter.notify("perp_request_stuck", severity, f"{name}: {what} request late", d.why, position=pkey,
                               request=req.key)
            book = by_vault.get(req.account)
            if d.step in (Step.EXECUTE, Step.CANCEL) and book is not None:
                pos = next((p for p in book.positions if p.key == pkey), None)
                if pos is not None:
                    out.append((book, request_action(pos, req, d)))
        return out


def request_action(pos: Position, req: PendingRequest, d: Decision) -> Action:
    """The vault call that executes or cancels ``req`` (amounts informational: nothing new moves)."""
    kind = ActionKind.EXECUTE_REQUEST if d.step is Step.EXECUTE else ActionKind.CANCEL_REQUEST
    asset = Asset("collateral", req.collateral_token, 0)  # for the journal and logs: nothing new moves
    reason = Reason(0.0, 0.0, pos.health, pos.health, 0.0, 0.0, "gmx request follow-up", d.why)
    return Action(kind, pos.key, asset, float(req.amount_raw), 0, reason, request_key=req.key,
                  request_decrease=req.decrease)


PERP_INCREASE_REQUESTED = "0x" + keccak(
    text="PerpIncreaseRequested(bytes32,address,bytes32,address,address,uint256,uint256,uint256)").hex()
PERP_DECREASE_REQUESTED = "0x" + keccak(
    text="PerpDecreaseRequested(bytes32,address,bytes32,uint256,uint256,uint256)").hex()


def requests_in(receipt: Receipt, vault: Address) -> list[tuple[str, Address, bool]]:
    """(request key, PositionRouter, decrease) of every ``PerpIncreaseRequested`` and
    ``PerpDecreaseRequested`` the vault emitted in ``receipt``."""
    out = []
    for log_ in receipt.logs:  # raw JSON-RPC logs: their case is the node's (the boundary)
        topics = log_.get("topics", [])
        if log_.get("address", "").lower() != vault or not topics:
            continue
        topic = topics[0].lower()
        if topic in (PERP_INCREASE_REQUESTED, PERP_DECREASE_REQUESTED):
            out.append((topics[1].lower(), Address("0x" + topics[2][-40:]), topic == PERP_DECREASE_REQUESTED))
    return out


def wait_settled(client: ChainClient, position_router: str, key: str, timeout_s: float, poll_s: float = 0.5,
                 decrease: bool = False) -> bool:
    """Wait until the request leaves the PositionRouter (executed or cancelled); False on timeout."""
    getter = "decreasePositionRequests(bytes32)" if decrease else "increasePositionRequests(bytes32)"
    data = keccak(text=getter)[:4] + bytes.fromhex(key[2:])
    deadline = time.monotonic() + timeout_s
    while True:
        if int.from_bytes(client.eth_call(position_router, data)[:32], "big") == 0:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
