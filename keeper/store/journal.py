"""The action journal: every keeper action is written as an *intent* before anything is signed,
every signed transaction (hash and raw bytes) before it is broadcast, and the outcome after.
``startup()`` reconciles the open entries with the chain before the first tick (see
``keeper.daemon.reconcile``), so a crash at any point causes neither a double action nor a lost one.

The idempotency key is unique in the table: a decision (position, epoch, action) can be journaled
once; journaling it again raises ``DuplicateIntent`` and nothing is sent."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy import exc as sa_exc

from keeper.errors import KeeperError
from keeper.store.db import Store, _translated
from keeper.store.models import JournalEntry

OPEN_STATUSES = ("intent", "signed")
FINAL_STATUSES = ("mined", "failed", "reverted", "abandoned")


class DuplicateIntent(KeeperError):
    """This decision was journaled already: do not act on it again."""


@dataclass(frozen=True)
class AttemptRecord:
    nonce: int
    tx_hash: str
    raw: str  # 0x-hex of the signed transaction
    max_fee: int
    tip: int


@dataclass(frozen=True)
class Entry:
    id: int
    chain: str
    idempotency_key: str
    position_key: str
    action: dict[str, Any]
    status: str
    nonce: int | None
    attempts: tuple[AttemptRecord, ...]
    mined_hash: str | None
    mined_block: int | None
    error: str | None


def _entry(row: JournalEntry) -> Entry:
    return Entry(row.id, row.chain, row.idempotency_key, row.position_key, json.loads(row.action), row.status,
                 row.nonce, tuple(AttemptRecord(**a) for a in json.loads(row.attempts)), row.mined_hash,
                 row.mined_block, row.error)


class Journal:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._t = JournalEntry.__table__

    def record_intent(self, chain: str, idempotency_key: str, position_key: str, action: dict[str, Any]) -> int:
        now = self.clock()
        row = {"chain": chain, "idempotency_key": idempotency_key, "position_key": position_key,
               "action": json.dumps(action, sort_keys=True, default=str), "status": "intent", "attempts": "[]",
               "created_at": now, "updated_at": now}
        try:
            with _translated("journaling an intent"), self.store.engine.begin() as conn:
                return int(conn.execute(self._t.insert().values(**row)).inserted_primary_key[0])
        except KeeperError as e:
            if not isinstance(e.__cause__, sa_exc.IntegrityError):
                raise
            retried = self._retry_unsigned(idempotency_key, row)
            if retried is not None:
                return retried
            raise DuplicateIntent(f"decision {idempotency_key} was journaled already; not acting again") from e

    def _retry_unsigned(self, idempotency_key: str, row: dict[str, Any]) -> int | None:
        """The same decision again, when its earlier entry ended without ever signing anything
        (abandoned after a crash, or failed before signing: a fee cap, a refused simulation). No
        transaction of it exists, so acting now cannot double it; refusing would lose the intent.
        One atomic update: of two racing retries, only one reopens the entry."""
        with _translated("journaling an intent"), self.store.engine.begin() as conn:
            found = conn.execute(select(self._t.c.id).where(self._t.c.idempotency_key == idempotency_key)).first()
            if found is None:
                return None
            done = conn.execute(self._t.update().where(
                self._t.c.id == found.id, self._t.c.status.in_(("abandoned", "failed")),
                self._t.c.attempts == "[]", self._t.c.nonce.is_(None)).values(
                status="intent", action=row["action"], error=None, updated_at=row["updated_at"]))
            return int(found.id) if done.rowcount == 1 else None

    def record_attempt(self, entry_id: int, attempt: AttemptRecord) -> None:
        """Before broadcast: the signed transaction, so a restart can find or resend it."""
        with _translated("journaling a signed transaction"), self.store.engine.begin() as conn:
            row = conn.execute(select(self._t.c.attempts, self._t.c.status).where(self._t.c.id == entry_id)).one()
            if row.status not in OPEN_STATUSES:
                raise KeeperError(f"journal entry {entry_id} is {row.status}; no new attempt")
            attempts = json.loads(row.attempts) + [attempt.__dict__]
            conn.execute(self._t.update().where(self._t.c.id == entry_id).values(
                attempts=json.dumps(attempts), nonce=attempt.nonce, status="signed", updated_at=self.clock()))

    def record_outcome(self, entry_id: int, status: str, *, mined_hash: str | None = None,
                       mined_block: int | None = None, error: str | None = None) -> None:
        if status not in FINAL_STATUSES:
            raise ValueError(f"not a final status: {status}")
        with _translated("journaling an outcome"), self.store.engine.begin() as conn:
            conn.execute(self._t.update().where(self._t.c.id == entry_id).values(
                status=status, mined_hash=mined_hash, mined_block=mined_block, error=error, updated_at=self.clock()))

    def reopen(self, entry_id: int, why: str) -> None:
        """A settled entry whose transaction left the chain (a reorg): open again (``signed``) so
        reconciliation finds, resends or fails it like any unsettled signed transaction."""
        with _translated("reopening a journal entry"), self.store.engine.begin() as conn:
            conn.execute(self._t.update().where(self._t.c.id == entry_id).values(
                status="signed", mined_hash=None, mined_block=None, error=why, updated_at=self.clock()))

    def settled_since(self, chain: str, block: int) -> list[Entry]:
        """Mined or reverted entries recorded at ``block`` or later (the ones a reorg can undo)."""
        with _translated("reading the journal"), self.store.engine.connect() as conn:
            rows = conn.execute(select(JournalEntry).where(self._t.c.chain == chain,
                                                           self._t.c.status.in_(("mined", "reverted")),
                                                           self._t.c.mined_block >= block)
                                .order_by(self._t.c.id)).all()
        return [_entry(JournalEntry(**r._mapping)) for r in rows]

    def get(self, entry_id: int) -> Entry:
        with _translated("reading the journal"), self.store.engine.connect() as conn:
            row = conn.execute(select(JournalEntry).where(self._t.c.id == entry_id)).one()
        return _entry(JournalEntry(**row._mapping))

    def by_key(self, idempotency_key: str) -> Entry | None:
        with _translated("reading the journal"), self.store.engine.connect() as conn:
            row = conn.execute(select(JournalEntry).where(self._t.c.idempotency_key == idempotency_key)).first()
        return None if row is None else _entry(JournalEntry(**row._mapping))

    def open_entries(self, chain: str) -> list[Entry]:
        with _translated("reading the journal"), self.store.engine.connect() as conn:
            rows = conn.execute(select(JournalEntry).where(self._t.c.chain == chain,
                                                           self._t.c.status.in_(OPEN_STATUSES))
                                .order_by(self._t.c.id)).all()
        return [_entry(JournalEntry(**r._mapping)) for r in rows]

    def entries(self, chain: str) -> list[Entry]:
        with _translated("reading the journal"), self.store.engine.connect() as conn:
            rows = conn.execute(select(JournalEntry).where(self._t.c.chain == chain).order_by(self._t.c.id)).all()
        return [_entry(JournalEntry(**r._mapping)) for r in rows]
