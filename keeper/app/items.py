"""The types an action takes on its way through the execution pipeline (``keeper.app.execution``):
its :class:`Intent` (what the journal records, with its idempotency key), the :class:`Item` the
pipeline moves through its :class:`Stage` values, and what a chunk of gas calls gives back."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from keeper.app.books import VaultBook
from keeper.chain.tx import Attempt, Receipt, TxOutcome, TxRequest, TxSender
from keeper.domain import Action, ActionKind, Address, Reason
from keeper.errors import KeeperError
from keeper.store.journal import AttemptRecord


class Stage(StrEnum):
    """Where an :class:`Item` is in the pipeline."""

    QUEUED = "queued"  # planned; its gas call may be running
    REFUSED = "refused"  # nothing broadcast: a revert in its gas call, the fee cap, a duplicate, a used nonce
    SENT = "sent"  # journaled with its signed transaction and broadcast (or left to the settle loop to resend)
    MINED = "mined"
    REVERTED = "reverted"  # mined with status 0
    UNSETTLED = "unsettled"  # signed, maybe broadcast, no receipt within the wait: open in the journal


@dataclass(frozen=True)
class Intent:
    """A decision as the journal records it; ``key`` makes it idempotent (one per position, block,
    kind and amount, per origin: ``daemon`` or ``manual``)."""

    key: str
    position_key: str
    kind: ActionKind
    asset: Address
    amount_raw: int
    target: str | None
    reason: Reason
    vault: Address
    at: float  # wall-clock time of the decision

    @classmethod
    def of(cls, origin: str, block: int, vault: Address, action: Action) -> Intent:
        key = f"{origin}:{action.position_key}:{block}:{action.kind.value}:{action.amount_raw}"
        return cls(key, action.position_key, action.kind, action.asset.address, action.amount_raw,
                   action.target_key, action.reason, vault, time.time())

    def record(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "asset": self.asset, "amount_raw": self.amount_raw, "target": self.target,
                "reason": self.reason.__dict__, "vault": self.vault, "at": self.at}


@dataclass
class Item:
    """One action in the pipeline. ``out`` once signed; ``error`` once refused or failed."""

    book: VaultBook
    action: Action
    intent: Intent
    request: TxRequest
    sender: TxSender
    urgency: float
    queued_at: float  # perf_counter
    stage: Stage = Stage.QUEUED
    gas_reply: tuple[GasReplies, int] | None = None  # (the batch of gas calls it is in, its index there)
    entry: int | None = None  # journal entry, once the decision is recorded
    out: TxOutcome | None = None
    error: KeeperError | None = None
    sent_at: float | None = None  # perf_counter when the broadcast returned

    @property
    def key(self) -> str:
        return self.intent.key

    def signed(self) -> TxOutcome:
        if self.out is None:
            raise RuntimeError(f"{self.key}: not signed")
        return self.out

    def journaled(self) -> int:
        if self.entry is None:
            raise RuntimeError(f"{self.key}: not journaled")
        return self.entry

    def receipt(self) -> Receipt:
        """The receipt of a ``MINED`` item."""
        rc = self.signed().receipt
        if rc is None:
            raise RuntimeError(f"{self.key}: settled without a receipt")
        return rc


class GasReplies(Protocol):
    """The replies of one chunk of gas calls: a ``Future`` (a worker thread's batch) or a
    :class:`_Simulation` (sent split-phase from the planning thread)."""

    def done(self) -> bool: ...
    def result(self) -> list[Any]: ...


def attempt_record(a: Attempt) -> AttemptRecord:
    return AttemptRecord(a.nonce, a.tx_hash, "0x" + a.raw.hex(), a.bid.max_fee_per_gas, a.bid.max_priority_fee_per_gas)


