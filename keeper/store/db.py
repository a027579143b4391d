"""``Store``: the keeper's database. SQLite file by default, any SQLAlchemy URL (PostgreSQL) by config.

One tick's snapshots, price rounds, accounts and its checkpoint are written in ONE transaction
(DESIGN.md, style rule 6): after a crash the checkpoint never claims a block whose rows are missing,
and no rows exist beyond the checkpoint's block from a tick that did not finish.

SQLite: WAL journal (readers do not block the writer), foreign keys on, and the pysqlite driver's own
transaction handling switched off in favour of an explicit ``BEGIN``, so DDL (migrations) is
transactional too. Bulk rows go through ``executemany`` (one round trip per statement, not per row).
SQLAlchemy errors are translated here: connection and operational trouble -> ``TemporaryError``; a bad
URL, a missing driver, a database that is not ours -> ``ConfigError``.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, and_, create_engine, event, func, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select, SelectOfScalar

from keeper.domain import Position
from keeper.errors import ConfigError, KeeperError, TemporaryError
from keeper.store.migrations import ensure_schema
from keeper.store.models import Account, Checkpoint, ExactInt, PositionSnapshot, PriceRound, table_of
from keeper.store.records import SNAPSHOT_COLUMNS, AccountRecord, PriceRoundRecord, SnapshotRows

SCHEMA_LOCK_KEY = 0x6B656570_65720001  # PostgreSQL advisory lock keys of our own ("keep" "er" 1)
TICK_LOCK_BASE = 0x6B656570_00000000  # | crc32 of the chain's name
_URL_EXAMPLE = "e.g. sqlite:///var/keeper.db or postgresql+psycopg2://user@host/keeper"


def _brief(e: BaseException) -> str:
    orig = getattr(e, "orig", None)
    return (str(orig) if orig is not None else str(e)).strip().splitlines()[0][:300] or type(e).__name__


class StoreUnreachable(TemporaryError):
    """The database did not answer (connection refused or lost, timed out)."""


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Map SQLAlchemy errors onto the keeper's classes, keeping the original as ``__cause__``."""
    try:
        yield
    except KeeperError:
        raise
    except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
            sa_exc.TimeoutError) as e:
        raise StoreUnreachable(f"store: {what} failed: {_brief(e)}") from e
    except sa_exc.IntegrityError as e:
        raise KeeperError(f"store: {what} violated a constraint: {_brief(e)}") from e
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, sa_exc.DatabaseError) as e:
        raise ConfigError(f"store: {what} failed: {_brief(e)}",
                          hint="check store.url and that it names a keeper database") from e
    except sa_exc.SQLAlchemyError as e:
        raise KeeperError(f"store: {what} failed: {_brief(e)}") from e


_SNAPSHOT_INSERT = (f"INSERT INTO position_snapshot ({', '.join(SNAPSHOT_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in SNAPSHOT_COLUMNS)})")  # SQLite (qmark)

WRITE_OPTION = "keeper_write"  # execution option of Store.write()'s connections


def _sqlite_setup(engine: Engine, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA foreign_keys=ON")
            if wal:
                cur.execute("PRAGMA journal_mode=WAL")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # A write transaction takes the write lock at once (IMMEDIATE), waiting for another writer
        # (the busy timeout) instead of failing: a deferred one that reads first cannot upgrade to
        # a writer once another connection has committed since its read ("database is locked").
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN")


PG_TIMEOUTS: dict[str, int] = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 5,
                               "keepalives_interval": 2, "keepalives_count": 3, "tcp_user_timeout": 10_000}


def _make_engine(url: str) -> Engine:
    try:
        u = make_url(url)
    except sa_exc.ArgumentError as e:
        raise ConfigError(f"store URL is not a valid SQLAlchemy URL ({_URL_EXAMPLE})") from e
    shown = u.render_as_string(hide_password=True)
    kwargs: dict[str, Any] = {}
    sqlite = u.get_backend_name() == "sqlite"
    memory = sqlite and u.database in (None, "", ":memory:")
    if sqlite:
        kwargs["connect_args"] = {"check_same_thread": False}
        if memory:
            kwargs["poolclass"] = StaticPool  # one connection, else every checkout is a new empty DB
        elif u.database is not None and not u.database.startswith("file:"):
            try:
                Path(u.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ConfigError(f"cannot create the directory of the database {shown}: {e}") from e
    else:
        kwargs["pool_pre_ping"] = True
        if u.get_backend_name() == "postgresql" and u.drivername.partition("+")[2] in ("", "psycopg2"):
            # A database that stops answering (a partition) must fail a statement, not hang it: libpq's
            # connect timeout, TCP keepalives, and a limit on unacknowledged data (tcp_user_timeout, ms).
            # A replica's lease thread and its journal writes then fail closed within seconds. The URL's
            # own query parameters win.
            kwargs["connect_args"] = {k: v for k, v in PG_TIMEOUTS.items() if k not in u.query}
    try:
        engine = create_engine(u, **kwargs)
    except sa_exc.NoSuchModuleError as e:
        raise ConfigError(f"store URL {shown}: unknown database kind {u.drivername!r} ({_URL_EXAMPLE})") from e
    except ImportError as e:
        raise ConfigError(f"store URL {shown}: the database driver is not installed: {e}",
                          hint="pip install the driver, e.g. psycopg2-binary for PostgreSQL") from e
    except (sa_exc.ArgumentError, TypeError, ValueError) as e:
        raise ConfigError(f"store URL {shown} is not usable: {e}") from e
    if sqlite:
        _sqlite_setup(engine, wal=not memory)
    return engine


def _write(conn: Connection, table: Table, rows: list[dict[str, Any]], keys: Sequence[str],
           update: bool, native: bool | None = None) -> None:
    """Insert ``rows``; on a clash of ``keys`` update the other columns (``update``) or keep the old row.

    SQLite and PostgreSQL: one ``INSERT ... ON CONFLICT`` statement run with executemany. Other
    databases (``native=False``): a look-up per row; fine for the few rows they get here."""
    if not rows:
        return
    dialect = conn.dialect.name
    if native is None:
        native = dialect in ("sqlite", "postgresql")
    if native:
        stmt = (sqlite_insert if dialect == "sqlite" else pg_insert)(table)
        if update:
            stmt = stmt.on_conflict_do_update(
                index_elements=list(keys),
                set_={c: stmt.excluded[c] for c in rows[0] if c not in keys})
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
        conn.execute(stmt, rows)
        return
    for row in rows:
        match = and_(*(table.c[k] == row[k] for k in keys))
        if conn.execute(select(table.c.id).where(match)).first() is None:
            conn.execute(table.insert(), row)
        elif update:
            conn.execute(table.update().where(match).values({c: v for c, v in row.items() if c not in keys}))


def _round_row(r: PriceRoundRecord) -> dict[str, Any]:
    return {"chain": r.chain, "feed": r.feed.lower(), "round_id": r.round_id, "answer": r.answer,
            "started_at": r.started_at, "updated_at": r.updated_at,
            "answered_in_round": r.answered_in_round}


def _account_row(a: AccountRecord) -> dict[str, Any]:
    return {"chain": a.chain, "address": a.address.lower(), "kind": a.kind, "label": a.label}


class Store:
    """The keeper's database. Make one with ``Store.open(url)``; ``close()`` when done."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time,
                 version: int, upgraded_from: int | None = None) -> None:
        self._engine = engine
        self._clock = clock
        self.version = version  # the schema version the database is at
        self.upgraded_from = upgraded_from  # the version it had before this open, if it was migrated
        self.url = engine.url.render_as_string(hide_password=True)
        self._rows: SnapshotRows | None = None  # the last tick's prepared snapshot rows, reused
        self._rows_dialect = ""
        self._rows_lock = threading.Lock()

    @classmethod
    def open(cls, url: str, *, clock: Callable[[], float] = time.time) -> Store:
        """Connect, create the schema or migrate it to ``SCHEMA_VERSION`` in one transaction."""
        engine = _make_engine(url)
        try:
            with (_translated(f"opening {engine.url.render_as_string(hide_password=True)}"),
                  engine.begin() as conn):
                if conn.dialect.name == "postgresql":
                    # Replicas starting together on a new database: one creates or migrates the
                    # schema, the others wait for its commit, then find it (CREATE TABLE races on
                    # PostgreSQL's catalogue otherwise). Released at the transaction's end.
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCHEMA_LOCK_KEY})
                found, now = ensure_schema(conn)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, clock=clock, version=now, upgraded_from=found if found != now else None)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for code that adds its own tables to this database."""
        return self._engine

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (committed at the end, rolled back on an error); on SQLite it holds
        the write lock from its first statement (``BEGIN IMMEDIATE``), so a read-then-write
        transaction waits for a concurrent writer instead of failing."""
        with self._engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes -------------------------------------------------------------------------------

    def write_tick(self, chain: str, block: int, block_hash: str, positions: Sequence[Position],
                   rounds: Sequence[PriceRoundRecord] = (), accounts: Sequence[AccountRecord] = ()) -> None:
        """Write one tick's snapshots, rounds and accounts and the "tick" checkpoint, atomically.

        Re-writing a block replaces that block's snapshots (no duplicates); rounds already stored are
        kept; accounts are upserted; the checkpoint is set to this block even if it was further on
        (a re-org replay moves it back)."""
        keys = [p.key for p in positions]
        for p, key in zip(positions, keys, strict=True):
            if p.chain != chain or p.block != block:
                raise ValueError(f"position {key} was read at {p.chain}@{p.block}, not {chain}@{block}")
        if len(set(keys)) != len(keys):
            seen: set[str] = set()
            for key in keys:
                if key in seen:
                    raise ValueError(f"position {key} appears twice in the tick at block {block}")
                seen.add(key)
        items: tuple[PriceRoundRecord | AccountRecord, ...] = (*rounds, *accounts)
        for item in items:
            if item.chain != chain:
                raise ValueError(f"{item!r} is not on chain {chain!r}")
        snap = table_of(PositionSnapshot)
        with _translated(f"writing the tick at {chain}@{block}"), self.write() as conn:
            if conn.dialect.name == "postgresql":
                # Writers of one chain's ticks take turns (replicas at a handover, a paused leader's
                # queued write): delete-then-insert of one block from two at once would clash.
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                             {"k": TICK_LOCK_BASE | zlib.crc32(chain.encode())})
            conn.execute(snap.delete().where(and_(snap.c.chain == chain, snap.c.block == block)))
            if positions:
                self._insert_snapshots(conn, block, block_hash, positions, keys)
            _write(conn, table_of(PriceRound), [_round_row(r) for r in rounds],
                   ("chain", "feed", "round_id"), update=False)
            _write(conn, table_of(Account), [_account_row(a) for a in accounts], ("chain", "address"),
                   update=True)
            _write(conn, table_of(Checkpoint), [{"chain": chain, "name": "tick", "block": block,
                                                 "block_hash": block_hash, "updated_at": self._clock()}],
                   ("chain", "name"), update=True)

    def _insert_snapshots(self, conn: Connection, block: int, block_hash: str, positions: Sequence[Position],
                          keys: Sequence[str]) -> None:
        """The tick's snapshot rows in one executemany. SQLite: prepared tuples straight to the
        driver (the only column needing the type's bind processing, ``health_wad``, is converted
        when the row is prepared), skipping SQLAlchemy's per-row parameter processing, the largest
        cost of a 5,000-position write after the rows themselves. Other databases: the typed Core
        insert (PostgreSQL batches it as insertmanyvalues)."""
        snap = table_of(PositionSnapshot)
        with self._rows_lock:
            if self._rows is None or self._rows_dialect != conn.dialect.name:
                health_type = snap.c.health_wad.type
                assert isinstance(health_type, ExactInt)
                dialect = conn.dialect
                raw = dialect.name == "sqlite"
                self._rows = SnapshotRows((lambda v: health_type.process_bind_param(v, dialect)) if raw
                                          else (lambda v: v))
                self._rows_dialect = dialect.name
            rows = self._rows.rows(block, block_hash, positions, keys)
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(_SNAPSHOT_INSERT, rows)
        else:
            conn.execute(snap.insert(), [dict(zip(SNAPSHOT_COLUMNS, row, strict=True)) for row in rows])

    def upsert_accounts(self, accounts: Iterable[AccountRecord]) -> None:
        """Insert accounts, or update ``kind`` and ``label`` of those already known."""
        rows = [_account_row(a) for a in accounts]
        with _translated("writing accounts"), self.write() as conn:
            _write(conn, table_of(Account), rows, ("chain", "address"), update=True)

    def add_price_rounds(self, rounds: Iterable[PriceRoundRecord]) -> None:
        """Store rounds; a round already stored (same chain, feed, round id) is left as it was."""
        rows = [_round_row(r) for r in rounds]
        with _translated("writing price rounds"), self.write() as conn:
            _write(conn, table_of(PriceRound), rows, ("chain", "feed", "round_id"), update=False)

    # -- reads --------------------------------------------------------------------------------

    def _select(self, what: str, stmt: Select[*tuple[Any, ...]] | SelectOfScalar[Any]) -> list[Any]:
        with _translated(f"reading {what}"), Session(self._engine, expire_on_commit=False) as s:
            return list(s.exec(stmt).all())

    def checkpoint(self, chain: str, name: str = "tick") -> tuple[int, str] | None:
        """(block, block hash) of the last finished ``name`` job on ``chain``; None before the first."""
        rows = self._select("the checkpoint", select(Checkpoint.block, Checkpoint.block_hash).where(
            Checkpoint.chain == chain, Checkpoint.name == name))
        return (int(rows[0][0]), rows[0][1]) if rows else None

    def snapshots(self, position_key: str, since_block: int | None = None,
                  limit: int | None = None) -> list[PositionSnapshot]:
        """One position's snapshots, oldest first; from ``since_block`` (inclusive); the newest
        ``limit`` of them when a limit is given."""
        stmt = select(PositionSnapshot).where(PositionSnapshot.position_key == position_key.lower())
        if since_block is not None:
            stmt = stmt.where(PositionSnapshot.block >= since_block)
        stmt = stmt.order_by(col(PositionSnapshot.block).desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        return self._select("snapshots", stmt)[::-1]

    def latest_snapshots(self, chain: str) -> list[PositionSnapshot]:
        """The newest snapshot of every position ever seen on ``chain``, by position key."""
        ps = PositionSnapshot
        newest = (select(ps.position_key, func.max(ps.block).label("block"))
                  .where(ps.chain == chain).group_by(ps.position_key).subquery())
        stmt = (select(ps).join(newest, and_(col(ps.position_key) == newest.c.position_key,
                                             col(ps.block) == newest.c.block))
                .order_by(col(ps.position_key)))
        return self._select("the latest snapshots", stmt)

    def accounts(self, chain: str, kind: str | None = None) -> list[AccountRecord]:
        stmt = select(Account).where(Account.chain == chain)
        if kind is not None:
            stmt = stmt.where(Account.kind == kind)
        rows = self._select("accounts", stmt.order_by(Account.address))
        return [AccountRecord(r.chain, r.address, r.kind, r.label) for r in rows]

    def price_rounds(self, chain: str, feed: str, since_round: int | None = None) -> list[PriceRoundRecord]:
        """A feed's stored rounds by round id; from ``since_round`` (inclusive)."""
        stmt = select(PriceRound).where(PriceRound.chain == chain, PriceRound.feed == feed.lower())
        if since_round is not None:
            stmt = stmt.where(PriceRound.round_id >= since_round)
        rows = self._select("price rounds", stmt.order_by(col(PriceRound.round_id)))
        return [PriceRoundRecord(r.chain, r.feed, r.round_id, r.answer, r.started_at, r.updated_at,
                                 r.answered_in_round) for r in rows]
