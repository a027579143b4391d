"""Schema versions and the migrations between them.

A new database gets the current tables (``models``) and ``schema_version`` = ``SCHEMA_VERSION``. An
older one gets each missing migration in order, all in the caller's single transaction, so an upgrade
either completes or leaves the database as it was. A newer database, or one holding tables that are
not ours, is refused with a ``ConfigError``: the keeper never writes into what it does not understand.

History:
  v1  account, position_snapshot, price_round, checkpoint, schema_version.
  v2  position_snapshot gains ``perp`` (perp terms, JSON text) and ``label``, so a snapshot holds the
      whole ``Position`` it was written from.
  v3  journal_entry: every keeper action from intent to outcome (stage 4).
  v4  lease (replicas' leader leases, stage 13); journal_entry gains ``epoch`` (the lease epoch that
      journaled it: a stale leader's write is refused).
  v5  key_nonce (the key's nonce as the journal accounts for it: a second sender on the key is found);
      journal_entry gains ``sender`` (the key that signs it); replica_member (replicas' heartbeats:
      the live ones share the leases).

To change the schema: change ``models``, append a migration that takes the previous version's
database to the new one, bump ``SCHEMA_VERSION``. A test checks that a migrated database has the same
tables, columns and indexes as a new one.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, inspect, select, text
from sqlmodel import col

from keeper.errors import ConfigError
from keeper.store.models import (
    TABLE_NAMES,
    TABLES,
    JournalEntry,
    KeyNonce,
    Lease,
    ReplicaMember,
    SchemaVersion,
    table_of,
)

Migration = Callable[[Connection], None]


def _v1_to_v2(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE position_snapshot ADD COLUMN perp TEXT"))
    conn.execute(text("ALTER TABLE position_snapshot ADD COLUMN label VARCHAR(200)"))


def _v2_to_v3(conn: Connection) -> None:
    table_of(JournalEntry).create(conn)


def _v3_to_v4(conn: Connection) -> None:
    table_of(Lease).create(conn)
    # a v1/v2 database got journal_entry from today's model in _v2_to_v3: epoch is there already
    if "epoch" not in {c["name"] for c in inspect(conn).get_columns("journal_entry")}:
        conn.execute(text("ALTER TABLE journal_entry ADD COLUMN epoch BIGINT"))


def _v4_to_v5(conn: Connection) -> None:
    table_of(KeyNonce).create(conn)
    table_of(ReplicaMember).create(conn)
    if "sender" not in {c["name"] for c in inspect(conn).get_columns("journal_entry")}:
        conn.execute(text("ALTER TABLE journal_entry ADD COLUMN sender VARCHAR(64)"))


# (version it produces, migration from the version before). Ordered, no gaps, starting at 2.
MIGRATIONS: list[tuple[int, Migration]] = [
    (2, _v1_to_v2),
    (3, _v2_to_v3),
    (4, _v3_to_v4),
    (5, _v4_to_v5),
]
SCHEMA_VERSION = 5


def read_version(conn: Connection) -> int | None:
    """The database's schema version; ``None`` for an empty database. Refuses foreign tables."""
    names = set(inspect(conn).get_table_names())
    if not names:
        return None
    if SchemaVersion.__tablename__ not in names:
        shown = ", ".join(sorted(names)[:8]) + (", ..." if len(names) > 8 else "")
        raise ConfigError(f"the database holds tables that are not the keeper's ({shown}) and no "
                          f"schema_version table", hint="point store.url at an empty or keeper database")
    versions = conn.execute(select(col(SchemaVersion.version))).scalars().all()
    if len(versions) != 1:
        raise ConfigError(f"the schema_version table holds {len(versions)} rows, expected 1",
                          hint="the database is damaged or not the keeper's")
    return int(versions[0])


def ensure_schema(conn: Connection, migrations: list[tuple[int, Migration]] | None = None,
                  target: int | None = None) -> tuple[int | None, int]:
    """Create or upgrade the schema inside the caller's transaction; returns (found, now) versions."""
    migrations = MIGRATIONS if migrations is None else migrations
    target = SCHEMA_VERSION if target is None else target
    found = read_version(conn)
    if found is None:
        for table in TABLES:
            table.create(conn)
        conn.execute(table_of(SchemaVersion).insert().values(id=1, version=target))
        return None, target
    if found > target:
        raise ConfigError(f"the database is at schema version {found}, newer than this keeper's "
                          f"version {target}", hint="upgrade the keeper, or use another database")
    steps = [(v, m) for v, m in migrations if found < v <= target]
    if [v for v, _ in steps] != list(range(found + 1, target + 1)):
        raise RuntimeError(f"no complete migration path from schema version {found} to {target}")
    for version, migrate in steps:
        migrate(conn)
        conn.execute(table_of(SchemaVersion).update().values(version=version))
    missing = TABLE_NAMES - set(inspect(conn).get_table_names())
    if missing:
        raise ConfigError(f"the database at schema version {target} lacks tables: "
                          f"{', '.join(sorted(missing))}", hint="the database is damaged")
    return found, target
