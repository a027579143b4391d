"""The action journal: every keeper action is written as an *intent* before anything is signed,
every signed transaction (hash and raw bytes) before it is broadcast, and the outcome after.
``startup()`` reconciles the open entries with the chain before the first tick (see
``keeper.app.reconcile``), so a crash at any point causes neither a double action nor a lost one.

The idempotency key is unique in the table: a decision (position, epoch, action) can be journaled
once; journaling it again raises ``DuplicateIntent`` and nothing is sent."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select
from sqlalchemy import exc as sa_exc

from keeper.errors import KeeperError
from keeper.store.db import Store, _translated
from keeper.store.lease import Fence, check_fence
from keeper.store.models import JournalEntry, KeyNonce, table_of


class Status(StrEnum):
    """A journal entry's status (stored as its value). Open: ``INTENT`` (journaled, nothing signed),
    ``SIGNED`` (a transaction signed, maybe broadcast). Final: ``MINED``, ``REVERTED`` (mined with
    status 0), ``FAILED`` (refused before anything was broadcast, or its nonce taken by another
    transaction), ``ABANDONED`` (an intent a stopped keeper never signed)."""

    INTENT = "intent"
    SIGNED = "signed"
    MINED = "mined"
    REVERTED = "reverted"
    FAILED = "failed"
    ABANDONED = "abandoned"


OPEN_STATUSES = (Status.INTENT, Status.SIGNED)
FINAL_STATUSES = (Status.MINED, Status.FAILED, Status.REVERTED, Status.ABANDONED)
RETRYABLE = (Status.ABANDONED, Status.FAILED)  # with nothing signed: the decision may be taken again


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
    status: Status
    nonce: int | None
    attempts: tuple[AttemptRecord, ...]
    mined_hash: str | None
    mined_block: int | None
    error: str | None


@dataclass(frozen=True)
class Decision:
    """One row of :meth:`Journal.record_decisions`: a decision and its signed transaction (or,
    when it was refused before signing, ``attempt=None`` and the reason in ``error``)."""
    idempotency_key: str
    position_key: str
    action: dict[str, Any]
    attempt: AttemptRecord | None
    error: str | None = None


def _entry(row: JournalEntry) -> Entry:
    if row.id is None:  # a row read back from the table always has its primary key
        raise KeeperError("journal entry without an id")
    return Entry(row.id, row.chain, row.idempotency_key, row.position_key, json.loads(row.action), Status(row.status),
                 row.nonce, tuple(AttemptRecord(**a) for a in json.loads(row.attempts)), row.mined_hash,
                 row.mined_block, row.error)


class Journal:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._t = table_of(JournalEntry)
        # A replica's lease (keeper.store.lease): every write checks it in its own transaction and
        # carries its epoch; None (one process) checks nothing.
        self.fence: Fence | None = None
        # the keeper key's address, stamped on the entries it journals (None: not known here)
        self.sender: str | None = None
        self._marks = table_of(KeyNonce)
        # the last :meth:`record_decisions`' time (s) waiting for the write lock (connection and
        # BEGIN), writing its rows, and committing (SQLite: the WAL's fsync): the daemon's phases
        self.last_batch_timing: dict[str, float] = {}

    def _fenced(self, conn: Connection) -> dict[str, Any]:
        """Inside a write: refuse unless this journal's lease still holds; the columns to stamp."""
        fence = self.fence
        if fence is None:
            return {}
        check_fence(conn, fence)
        return {"epoch": fence.epoch}

    def _signer(self) -> dict[str, Any]:
        return {} if self.sender is None else {"sender": self.sender}

    def record_intent(self, chain: str, idempotency_key: str, position_key: str, action: dict[str, Any]) -> int:
        now = self.clock()
        row = {"chain": chain, "idempotency_key": idempotency_key, "position_key": position_key,
               "action": json.dumps(action, sort_keys=True, default=str), "status": Status.INTENT.value,
               "attempts": "[]",
               "created_at": now, "updated_at": now, **self._signer()}
        try:
            with _translated("journaling an intent"), self.store.write() as conn:
                pk = conn.execute(self._t.insert().values(**row, **self._fenced(conn))).inserted_primary_key
                if pk is None:
                    raise KeeperError("journaling an intent: the database returned no id")
                return int(pk[0])
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
        with _translated("journaling an intent"), self.store.write() as conn:
            stamp = self._fenced(conn)
            found = conn.execute(select(self._t.c.id).where(self._t.c.idempotency_key == idempotency_key)).first()
            if found is None:
                return None
            done = conn.execute(self._t.update().where(
                self._t.c.id == found.id, self._t.c.status.in_([s.value for s in RETRYABLE]),
                self._t.c.attempts == "[]", self._t.c.nonce.is_(None)).values(
                status=Status.INTENT.value, action=row["action"], error=None, updated_at=row["updated_at"], **stamp))
            return int(found.id) if done.rowcount == 1 else None

    def _retryable(self, row: Row[*tuple[Any, ...]]) -> bool:
        return row.status in RETRYABLE and row.attempts == "[]" and row.nonce is None

    def taken(self, keys: list[str]) -> set[str]:
        """Of ``keys``, the decisions journaled already that may not be acted on again (all but
        those that ended without anything signed; see :meth:`_retry_unsigned`)."""
        if not keys:
            return set()
        with _translated("reading the journal"), self.store.engine.connect() as conn:
            rows = conn.execute(select(self._t.c.idempotency_key, self._t.c.status, self._t.c.attempts, self._t.c.nonce)
                                .where(self._t.c.idempotency_key.in_(keys))).all()
        return {r.idempotency_key for r in rows if not self._retryable(r)}

    def taken_at_block(self, prefix: str, block: int) -> set[str]:
        """The decisions journaled with keys ``{prefix}:<position>:{block}:...`` (the daemon's form)
        that may not be acted on again, as :meth:`taken` decides; read before the keys are known
        (a superset filter in SQL, the exact match by the caller's membership test)."""
        with _translated("reading the journal"), self.store.engine.connect() as conn:
            rows = conn.execute(select(self._t.c.idempotency_key, self._t.c.status, self._t.c.attempts, self._t.c.nonce)
                                .where(self._t.c.idempotency_key.like(f"{prefix}:%:{block}:%"))).all()
        return {r.idempotency_key for r in rows if not self._retryable(r)}

    def record_decisions(self, chain: str, decisions: list[Decision]) -> list[int]:
        """A batch of decisions in one transaction (one commit), before any of them is broadcast:
        each with its signed transaction (status ``signed``) or, refused before signing, its reason
        (``failed``). All are journaled or none is (then none may be sent). A decision journaled
        already raises ``DuplicateIntent`` for the whole batch unless it ended unsigned (then it is
        reopened, as :meth:`record_intent` does); check with :meth:`taken` first."""
        keys = [d.idempotency_key for d in decisions]
        if len(set(keys)) != len(keys):
            raise ValueError("the same idempotency key twice in one batch")
        now = self.clock()
        ids: dict[str, int] = {}
        t0 = time.perf_counter()
        with _translated("journaling decisions"), self.store.write() as conn:
            t1 = time.perf_counter()
            stamp = self._fenced(conn)
            found = {r.idempotency_key: r for r in conn.execute(
                select(self._t.c.id, self._t.c.idempotency_key, self._t.c.status, self._t.c.attempts, self._t.c.nonce)
                .where(self._t.c.idempotency_key.in_(keys)))} if keys else {}
            new_rows = []
            for d in decisions:
                a = d.attempt
                values = {"action": json.dumps(d.action, sort_keys=True, default=str),
                          "status": (Status.SIGNED if a is not None else Status.FAILED).value,
                          "attempts": json.dumps([a.__dict__] if a is not None else []),
                          "nonce": a.nonce if a is not None else None, "error": d.error, "updated_at": now, **stamp}
                old = found.get(d.idempotency_key)
                if old is None:
                    new_rows.append({"chain": chain, "idempotency_key": d.idempotency_key,
                                     "position_key": d.position_key, "created_at": now, **values, **self._signer()})
                elif self._retryable(old):
                    conn.execute(self._t.update().where(self._t.c.id == old.id).values(**values))
                    ids[d.idempotency_key] = int(old.id)
                else:
                    raise DuplicateIntent(f"decision {d.idempotency_key} was journaled already; not acting again")
            if new_rows:  # one multi-row INSERT ... RETURNING
                stmt = self._t.insert().returning(self._t.c.id, self._t.c.idempotency_key, sort_by_parameter_order=True)
                ids.update({r.idempotency_key: int(r.id) for r in conn.execute(stmt, new_rows)})
            t2 = time.perf_counter()
        t3 = time.perf_counter()
        self.last_batch_timing = {"lock_s": t1 - t0, "write_s": t2 - t1, "commit_s": t3 - t2}
        return [ids[k] for k in keys]

    def record_attempt(self, entry_id: int, attempt: AttemptRecord) -> None:
        """Before broadcast: the signed transaction, so a restart can find or resend it."""
        with _translated("journaling a signed transaction"), self.store.write() as conn:
            stamp = self._fenced(conn)
            row = conn.execute(select(self._t.c.attempts, self._t.c.status).where(self._t.c.id == entry_id)).one()
            if row.status not in OPEN_STATUSES:
                raise KeeperError(f"journal entry {entry_id} is {row.status}; no new attempt")
            attempts = [*json.loads(row.attempts), attempt.__dict__]
            conn.execute(self._t.update().where(self._t.c.id == entry_id).values(
                attempts=json.dumps(attempts), nonce=attempt.nonce, status=Status.SIGNED.value,
                updated_at=self.clock(), **stamp))

    def record_outcome(self, entry_id: int, status: Status, *, mined_hash: str | None = None,
                       mined_block: int | None = None, error: str | None = None) -> None:
        if status not in FINAL_STATUSES:
            raise ValueError(f"not a final status: {status}")
        with _translated("journaling an outcome"), self.store.write() as conn:
            self._fenced(conn)
            conn.execute(self._t.update().where(self._t.c.id == entry_id).values(
                status=Status(status).value, mined_hash=mined_hash, mined_block=mined_block, error=error,
                updated_at=self.clock()))

    def record_mined(self, outcomes: Sequence[tuple[int, str, int]]) -> None:
        """Several entries mined, as (entry id, transaction hash, block), in one DB transaction."""
        if not outcomes:
            return
        now = self.clock()
        stmt = (self._t.update().where(self._t.c.id == bindparam("entry_id"))
                .values(status=Status.MINED.value, mined_hash=bindparam("hash"), mined_block=bindparam("block"),
                        error=None, updated_at=now))
        with _translated("journaling outcomes"), self.store.write() as conn:
            self._fenced(conn)
            conn.execute(stmt, [{"entry_id": e, "hash": h, "block": b} for e, h, b in outcomes])

    def reopen(self, entry_id: int, why: str) -> None:
        """A settled entry whose transaction left the chain (a reorg): open again (``signed``) so
        reconciliation finds, resends or fails it like any unsettled signed transaction."""
        with _translated("reopening a journal entry"), self.store.write() as conn:
            self._fenced(conn)
            conn.execute(self._t.update().where(self._t.c.id == entry_id).values(
                status=Status.SIGNED.value, mined_hash=None, mined_block=None, error=why, updated_at=self.clock()))

    def settled_since(self, chain: str, block: int) -> list[Entry]:
        """Mined or reverted entries recorded at ``block`` or later (the ones a reorg can undo)."""
        with _translated("reading the journal"), self.store.engine.connect() as conn:
            settled = [Status.MINED.value, Status.REVERTED.value]
            rows = conn.execute(select(JournalEntry).where(self._t.c.chain == chain,
                                                           self._t.c.status.in_(settled),
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
                                                           self._t.c.status.in_([s.value for s in OPEN_STATUSES]))
                                .order_by(self._t.c.id)).all()
        return [_entry(JournalEntry(**r._mapping)) for r in rows]

    def entries(self, chain: str) -> list[Entry]:
        with _translated("reading the journal"), self.store.engine.connect() as conn:
            rows = conn.execute(select(JournalEntry).where(self._t.c.chain == chain).order_by(self._t.c.id)).all()
        return [_entry(JournalEntry(**r._mapping)) for r in rows]

    # --- the key's nonces: is this store's journal the key's only sender? (keeper.app.key_guard) ---
    def nonce_mark(self, chain: str, sender: str) -> int | None:
        """The key's mined transaction count the journal last accounted for, None before the first."""
        with _translated("reading the key's nonce mark"), self.store.engine.connect() as conn:
            got = conn.execute(select(self._marks.c.nonce).where(self._marks.c.name == f"{chain}:{sender}")).first()
        return None if got is None else int(got.nonce)

    def set_nonce_mark(self, chain: str, sender: str, nonce: int) -> None:
        """Record ``nonce`` as accounted for (an upsert: replicas on one store share the mark)."""
        name = f"{chain}:{sender}"
        with _translated("writing the key's nonce mark"), self.store.write() as conn:
            done = conn.execute(self._marks.update().where(self._marks.c.name == name)
                                .values(nonce=nonce, updated_at=self.clock()))
            if done.rowcount == 0:
                conn.execute(self._marks.insert().values(name=name, nonce=nonce, updated_at=self.clock()))

    def nonces_sent(self, chain: str, sender: str, lo: int, hi: int) -> set[int]:
        """The nonces in ``[lo, hi)`` of transactions this journal signed with ``sender``'s key
        (entries journaled before schema v5 have no sender and count as the key's)."""
        signed = [Status.SIGNED.value, Status.MINED.value, Status.REVERTED.value]
        with _translated("reading the journal"), self.store.engine.connect() as conn:
            rows = conn.execute(select(self._t.c.nonce).where(
                self._t.c.chain == chain, self._t.c.status.in_(signed), self._t.c.nonce >= lo, self._t.c.nonce < hi,
                (self._t.c.sender == sender) | self._t.c.sender.is_(None))).all()
        return {int(r.nonce) for r in rows}
