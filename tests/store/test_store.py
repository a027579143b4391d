"""keeper.store on SQLite in tmp_path (and on PostgreSQL when KEEPER_TEST_POSTGRES_URL names one).

No chain, no network."""

from __future__ import annotations

import dataclasses
import math
import sqlite3
from decimal import Decimal

import pytest
from sqlalchemy import event, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateTable

from keeper.domain import MAX_UINT256, WAD, Address, Asset, Leg, PerpTerms, Position, Protocol, Side
from keeper.errors import ConfigError, KeeperError, TemporaryError
from keeper.risk.health import nearest_liquidation
from keeper.store import (
    SCHEMA_VERSION,
    AccountRecord,
    ExactInt,
    PositionSnapshot,
    PriceRound,
    PriceRoundRecord,
    Store,
    migrations,
)
from keeper.store import db as store_db
from tests.store.conftest import drop_keeper_tables

CHAIN = "devnet"
WETH = Asset("WETH", Address("0x00000000000000000000000000000000000000E1"), 18)  # Address: as chain reads give
USDC = Asset("USDC", Address("0x00000000000000000000000000000000000000C6"), 6)
POOL = Address("0x0000000000000000000000000000000000000A0E")
FEED = "0x00000000000000000000000000000000000feed1"  # as the store spells it: lower case


def lending(account: str = "0x00000000000000000000000000000000000000A1", *, block: int = 100,
            health_wad: int = 1_234_567_890_123_456_789, chain: str = CHAIN,
            debt_raw: int = 1_000 * 10**6, eth_price: float = 2000.0 / 3) -> Position:
    legs = (Leg(WETH, Side.COLLATERAL, 3 * 10**18 + 7, eth_price, 0.825),)
    if debt_raw:
        legs += (Leg(USDC, Side.DEBT, debt_raw, 1.0001),)
    return Position(chain, Protocol.AAVE_V3, POOL, Address(account), "pool", legs, health_wad, block,
                    price_ok=False, price_issue="WETH feed stale by 3700 s", label="alice")


def perp(block: int = 100) -> Position:
    terms = PerpTerms(index=WETH, is_long=True, size_usd=10_000.0, collateral_usd=1_000.0 / 3,
                      average_price=2_000.0, mark_price=2_100.5, margin_fees_usd=10.25,
                      liquidation_fee_usd=5.0, max_leverage=50.0, liquidation_state=0)
    legs = (Leg(USDC, Side.COLLATERAL, 333_333_333, 1.0),)
    return Position(CHAIN, Protocol.PERP, Address("0x0000000000000000000000000000000000000B0B"),
                    Address("0x00000000000000000000000000000000000000A2"), f"{USDC.address}:{WETH.address}:long",
                    legs, 3 * WAD // 2, block, perp=terms)


def rnd(round_id: int, answer: int = 2000 * 10**8, feed: str = FEED) -> PriceRoundRecord:
    return PriceRoundRecord(CHAIN, feed, round_id, answer, 1_700_000_000 + round_id % 1000,
                            1_700_000_060 + round_id % 1000, round_id)


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "nested" / "dir" / "keeper.db"


@pytest.fixture
def store(db_path):
    s = Store.open(f"sqlite:///{db_path}", clock=lambda: 1_700_000_123.5)
    yield s
    s.close()


def count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


# -- open ------------------------------------------------------------------------------------

def test_open_creates_directory_schema_wal_and_foreign_keys(store, db_path):
    assert db_path.exists()
    assert store.version == SCHEMA_VERSION and store.upgraded_from is None
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        assert conn.exec_driver_sql("SELECT version FROM schema_version").scalars().all() == [SCHEMA_VERSION]
    assert set(inspect(store.engine).get_table_names()) == {
        "account", "position_snapshot", "price_round", "checkpoint", "journal_entry", "lease", "key_nonce",
        "replica_member", "schema_version"}


def test_reopen_keeps_data_and_version(db_path):
    with Store.open(f"sqlite:///{db_path}") as s:
        s.write_tick(CHAIN, 100, "0xh100", [lending()])
    with Store.open(f"sqlite:///{db_path}") as s:
        assert s.upgraded_from is None and s.version == SCHEMA_VERSION
        assert s.checkpoint(CHAIN) == (100, "0xh100")
        assert len(s.snapshots(lending().key)) == 1


def test_in_memory_url_shares_one_database():
    with Store.open("sqlite://") as s:
        s.write_tick(CHAIN, 1, "0x01", [lending(block=1)])
        assert s.checkpoint(CHAIN) == (1, "0x01")
        assert [r.block for r in s.snapshots(lending().key)] == [1]


@pytest.mark.parametrize("url", ["not a url", "nosuchdb://user@host/db", "sqlite+nosuchdriver:///x.db"])
def test_bad_url_is_config_error(url):
    with pytest.raises(ConfigError) as info:
        Store.open(url)
    assert "store URL" in str(info.value)
    assert info.value.__cause__ is not None


def test_url_password_is_never_shown():
    with pytest.raises(ConfigError) as info:
        Store.open("nosuchdb://keeper:hunter2@db.internal/keeper")
    assert "hunter2" not in str(info.value)


def test_unwritable_directory_is_config_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="directory"):
        Store.open(f"sqlite:///{blocker}/keeper.db")


def test_foreign_tables_are_refused(db_path):
    db_path.parent.mkdir(parents=True)
    con = sqlite3.connect(db_path)
    con.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    con.commit()
    con.close()
    with pytest.raises(ConfigError, match=r"not the keeper's.*users"):
        Store.open(f"sqlite:///{db_path}")
    con = sqlite3.connect(db_path)  # and nothing of ours was added to it
    assert [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["users"]
    con.close()


def test_file_that_is_not_a_database_is_config_error(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is certainly not an SQLite file" * 100)
    with pytest.raises(ConfigError) as info:
        Store.open(f"sqlite:///{junk}")
    assert "not a database" in str(info.value)


def test_newer_schema_version_is_refused_naming_both(db_path):
    Store.open(f"sqlite:///{db_path}").close()
    con = sqlite3.connect(db_path)
    con.execute("UPDATE schema_version SET version = 99")
    con.commit()
    con.close()
    with pytest.raises(ConfigError) as info:
        Store.open(f"sqlite:///{db_path}")
    message = str(info.value)
    assert "99" in message and f"version {SCHEMA_VERSION}" in message and "newer" in message


# -- round trip ------------------------------------------------------------------------------

def test_round_trip_of_lending_perp_and_max_health(store):
    no_debt = lending("0x00000000000000000000000000000000000000A3", health_wad=MAX_UINT256, debt_raw=0)
    positions = [lending(), perp(), no_debt]
    store.write_tick(CHAIN, 100, "0xhash100", positions)

    for p in positions:
        [row] = store.snapshots(p.key)
        assert row.to_position() == p  # legs, perp terms, labels, price flags: all of it
        assert type(row.health_wad) is int and row.health_wad == p.health_wad
        assert (row.chain, row.block, row.block_hash, row.position_key) == (CHAIN, 100, "0xhash100", p.key)
        assert row.collateral_usd == p.collateral_usd and row.debt_usd == p.debt_usd
        point = nearest_liquidation(p)
        if point is None:
            assert row.liquidation_symbol is None and row.liquidation_price is None and row.distance is None
        else:
            assert (row.liquidation_symbol, row.liquidation_price, row.distance) == \
                (point.symbol, point.price, point.distance)

    [inf_row] = store.snapshots(no_debt.key)
    assert inf_row.health_wad == 2**256 - 1 and inf_row.health is None
    [perp_row] = store.snapshots(perp().key)
    assert perp_row.to_position().perp == perp().perp and perp_row.liquidation_symbol == "WETH"
    assert perp_row.health == 1.5
    [aave_row] = store.snapshots(lending().key)
    assert aave_row.price_ok is False and aave_row.price_issue == "WETH feed stale by 3700 s"
    assert aave_row.to_position().legs[0].amount_raw == 3 * 10**18 + 7


def test_health_wad_is_stored_as_exact_text_on_sqlite(store, db_path):
    store.write_tick(CHAIN, 100, "0x64", [lending(health_wad=MAX_UINT256, debt_raw=0)])
    con = sqlite3.connect(db_path)
    [(stored, kind)] = con.execute("SELECT health_wad, typeof(health_wad) FROM position_snapshot").fetchall()
    con.close()
    assert kind == "text" and int(stored) == MAX_UINT256


def test_snapshot_history_since_and_limit(store):
    for block in (100, 101, 102, 103):
        store.write_tick(CHAIN, block, f"0x{block:x}", [lending(block=block, health_wad=WAD + block)])
    key = lending().key
    assert [r.block for r in store.snapshots(key)] == [100, 101, 102, 103]
    assert [r.block for r in store.snapshots(key, since_block=102)] == [102, 103]
    assert [r.block for r in store.snapshots(key, limit=2)] == [102, 103]  # newest two, oldest first
    assert [r.health_wad for r in store.snapshots(key.upper(), since_block=101, limit=1)] == [WAD + 103]
    assert store.snapshots("devnet:nothing:here") == []


def test_latest_snapshots_per_position(store):
    a, b = "0x00000000000000000000000000000000000000A1", "0x00000000000000000000000000000000000000B1"
    store.write_tick(CHAIN, 100, "0x64", [lending(a, block=100), lending(b, block=100)])
    store.write_tick(CHAIN, 101, "0x65", [lending(a, block=101, health_wad=WAD)])
    store.write_tick("other", 500, "0x1f4", [lending(a, block=500, chain="other")])
    latest = {r.position_key: r for r in store.latest_snapshots(CHAIN)}
    assert set(latest) == {lending(a).key, lending(b).key}
    assert latest[lending(a).key].block == 101 and latest[lending(a).key].health_wad == WAD
    assert latest[lending(b).key].block == 100
    assert [r.block for r in store.latest_snapshots("other")] == [500]
    assert store.latest_snapshots("nowhere") == []


# -- checkpoint, atomicity, idempotence --------------------------------------------------------

def test_checkpoint(store):
    assert store.checkpoint(CHAIN) is None
    store.write_tick(CHAIN, 100, "0x64", [])
    store.write_tick(CHAIN, 101, "0x65", [lending(block=101)])
    assert store.checkpoint(CHAIN) == (101, "0x65")
    assert store.checkpoint(CHAIN, name="retrain") is None
    assert store.checkpoint("other") is None
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT updated_at FROM checkpoint")).scalar_one() == 1_700_000_123.5


def test_tick_is_atomic_when_the_checkpoint_write_fails(store):
    store.write_tick(CHAIN, 100, "0x64", [lending(block=100)], [rnd(1)],
                     [AccountRecord(CHAIN, "0x00000000000000000000000000000000000000A1", "vault")])
    with store.engine.begin() as conn:  # the checkpoint is the tick's last write: make it fail
        for op in ("INSERT", "UPDATE"):
            conn.execute(text(f"CREATE TRIGGER fail_{op} BEFORE {op} ON checkpoint "
                              "BEGIN SELECT RAISE(ABORT, 'injected checkpoint failure'); END"))

    with pytest.raises(KeeperError, match="injected checkpoint failure") as info:
        store.write_tick(CHAIN, 101, "0x65", [lending(block=101), perp(block=101)], [rnd(2), rnd(3)],
                         [AccountRecord(CHAIN, "0x00000000000000000000000000000000000000B1", "watch"),
                          AccountRecord(CHAIN, "0x00000000000000000000000000000000000000A1", "owner")])
    assert info.value.__cause__ is not None

    assert store.checkpoint(CHAIN) == (100, "0x64")
    assert count(store, "position_snapshot") == 1 and store.snapshots(perp().key) == []
    assert [r.round_id for r in store.price_rounds(CHAIN, FEED)] == [1]
    assert store.accounts(CHAIN) == [AccountRecord(CHAIN, "0x00000000000000000000000000000000000000a1", "vault")]

    with store.engine.begin() as conn:  # without the fault the same tick goes through
        conn.execute(text("DROP TRIGGER fail_INSERT"))
        conn.execute(text("DROP TRIGGER fail_UPDATE"))
    store.write_tick(CHAIN, 101, "0x65", [lending(block=101), perp(block=101)], [rnd(2), rnd(3)])
    assert store.checkpoint(CHAIN) == (101, "0x65") and count(store, "position_snapshot") == 3


def test_rewriting_a_block_replaces_without_duplicates(store):
    acct = AccountRecord(CHAIN, "0x00000000000000000000000000000000000000A1", "vault", "old label")
    store.write_tick(CHAIN, 100, "0xaaa", [lending(block=100), perp(block=100)], [rnd(1), rnd(2)], [acct])
    changed = lending(block=100, health_wad=WAD + 1)
    renamed = AccountRecord(CHAIN, acct.address.upper().replace("0X", "0x"), "vault", "new label")
    store.write_tick(CHAIN, 100, "0xbbb", [changed], [rnd(2), rnd(3)], [renamed])  # e.g. after a re-org

    assert count(store, "position_snapshot") == 1
    [row] = store.snapshots(changed.key)
    assert row.health_wad == WAD + 1 and row.block_hash == "0xbbb"
    assert store.snapshots(perp().key) == []  # not in the re-written tick: gone
    assert [r.round_id for r in store.price_rounds(CHAIN, FEED)] == [1, 2, 3]
    assert store.accounts(CHAIN) == [AccountRecord(CHAIN, acct.address.lower(), "vault", "new label")]
    assert store.checkpoint(CHAIN) == (100, "0xbbb") and count(store, "checkpoint") == 1


def test_write_tick_rejects_inconsistent_input(store):
    with pytest.raises(ValueError, match="read at"):
        store.write_tick(CHAIN, 101, "0x65", [lending(block=100)])
    with pytest.raises(ValueError, match="read at"):
        store.write_tick("other", 100, "0x64", [lending(block=100)])
    with pytest.raises(ValueError, match="twice"):
        store.write_tick(CHAIN, 100, "0x64", [lending(block=100), lending(block=100)])
    with pytest.raises(ValueError, match="not on chain"):
        store.write_tick(CHAIN, 100, "0x64", [], [PriceRoundRecord("other", FEED, 1, 1, 1, 1, 1)])
    assert store.checkpoint(CHAIN) is None and count(store, "position_snapshot") == 0


def test_ten_thousand_snapshots_use_one_executemany(store):
    positions = [lending(f"0x{i:040x}", block=7) for i in range(10_000)]
    calls: list[tuple[str, bool, int]] = []

    def spy(conn, cursor, statement, parameters, context, executemany):
        calls.append((statement.split()[0], executemany, len(parameters) if executemany else 1))

    event.listen(store.engine, "before_cursor_execute", spy)
    try:
        store.write_tick(CHAIN, 7, "0x07", positions)
    finally:
        event.remove(store.engine, "before_cursor_execute", spy)

    assert count(store, "position_snapshot") == 10_000
    inserts = [c for c in calls if c[0] == "INSERT"]
    assert ("INSERT", True, 10_000) in inserts  # all snapshot rows in one executemany
    assert len(calls) <= 5, calls  # BEGIN, delete the block, insert snapshots, upsert checkpoint


# -- price rounds, accounts -------------------------------------------------------------------

def test_price_rounds_are_exact_and_ordered_numerically(store):
    phase1 = (1 << 64) + 9
    phase2 = (2 << 64) + 10
    rounds = [rnd(phase2, answer=-(2**255)), rnd(phase1, answer=2**255 - 1), rnd((1 << 64) + 10),
              rnd(2**80 - 1, answer=0)]
    store.add_price_rounds([dataclasses.replace(r, feed=FEED.upper().replace("0X", "0x")) for r in rounds])
    store.add_price_rounds([rnd(phase1, answer=1)])  # already stored: kept as first written
    got = store.price_rounds(CHAIN, FEED.upper().replace("0X", "0x"))  # any spelling finds it
    assert [r.round_id for r in got] == [phase1, (1 << 64) + 10, phase2, 2**80 - 1]
    assert got[0] == rounds[1] and got[2] == rounds[0]  # int256 extremes survive exactly
    assert all(r.feed == FEED.lower() for r in got)
    assert [r.round_id for r in store.price_rounds(CHAIN, FEED, since_round=(1 << 64) + 10)] == \
        [(1 << 64) + 10, phase2, 2**80 - 1]
    assert store.price_rounds(CHAIN, "0x0000000000000000000000000000000000000bad") == []


def test_accounts_upsert_and_kind_check(store):
    a = AccountRecord(CHAIN, "0x00000000000000000000000000000000000000AA", "vault", "main vault")
    o = AccountRecord(CHAIN, "0x00000000000000000000000000000000000000BB", "owner")
    store.upsert_accounts([a, o])
    store.upsert_accounts([AccountRecord(CHAIN, a.address.lower(), "watch", None)])
    got = store.accounts(CHAIN)
    assert [(r.address, r.kind, r.label) for r in got] == [(a.address.lower(), "watch", None),
                                                          (o.address.lower(), "owner", None)]
    assert [r.address for r in store.accounts(CHAIN, kind="owner")] == [o.address.lower()]
    with pytest.raises(ValueError, match="kind"):
        AccountRecord(CHAIN, "0x01", "admin")


def test_generic_conflict_path_matches_native(store):
    """The look-up path used for databases without ON CONFLICT, exercised on SQLite."""
    table = PriceRound.__table__
    row = {"chain": CHAIN, "feed": "0xf", "round_id": 5, "answer": 1, "started_at": 1,
           "updated_at": 2, "answered_in_round": 5}
    with store.engine.begin() as conn:
        store_db._write(conn, table, [row, {**row, "round_id": 6}], ("chain", "feed", "round_id"),
                        update=False, native=False)
        store_db._write(conn, table, [{**row, "answer": 99}], ("chain", "feed", "round_id"),
                        update=False, native=False)
    assert [(r.round_id, r.answer) for r in store.price_rounds(CHAIN, "0xf")] == [(5, 1), (6, 1)]
    with store.engine.begin() as conn:
        store_db._write(conn, table, [{**row, "answer": 99}], ("chain", "feed", "round_id"),
                        update=True, native=False)
    assert [(r.round_id, r.answer) for r in store.price_rounds(CHAIN, "0xf")] == [(5, 99), (6, 1)]


# -- errors -----------------------------------------------------------------------------------

def test_locked_database_is_temporary_error(db_path):
    with Store.open(f"sqlite:///{db_path}?timeout=0.05") as s:
        blocker = sqlite3.connect(db_path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(TemporaryError, match="locked") as info:
                s.write_tick(CHAIN, 1, "0x01", [lending(block=1)])
            assert info.value.__cause__ is not None
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        s.write_tick(CHAIN, 1, "0x01", [lending(block=1)])  # and it recovers
        assert s.checkpoint(CHAIN) == (1, "0x01")


# -- schema versions --------------------------------------------------------------------------

V1_DDL = """
CREATE TABLE account (id INTEGER NOT NULL, chain VARCHAR(64) NOT NULL, address VARCHAR(64) NOT NULL,
    kind VARCHAR(16) NOT NULL, label VARCHAR(200), PRIMARY KEY (id),
    CONSTRAINT ck_account_kind CHECK (kind IN ('vault', 'owner', 'watch')));
CREATE UNIQUE INDEX uq_account_chain_address ON account (chain, address);
CREATE TABLE position_snapshot (id INTEGER NOT NULL, chain VARCHAR(64) NOT NULL, block BIGINT NOT NULL,
    block_hash VARCHAR(80) NOT NULL, position_key VARCHAR(400) NOT NULL, protocol VARCHAR(32) NOT NULL,
    protocol_address VARCHAR(64) NOT NULL, account VARCHAR(64) NOT NULL, market VARCHAR(200) NOT NULL,
    health_wad VARCHAR(79) NOT NULL, health FLOAT, collateral_usd FLOAT, debt_usd FLOAT,
    liquidation_symbol VARCHAR(64), liquidation_price FLOAT, distance FLOAT, price_ok BOOLEAN NOT NULL,
    price_issue TEXT, legs TEXT NOT NULL, PRIMARY KEY (id));
CREATE UNIQUE INDEX uq_position_snapshot_key_block ON position_snapshot (position_key, block);
CREATE INDEX ix_position_snapshot_chain_block ON position_snapshot (chain, block);
CREATE TABLE price_round (id INTEGER NOT NULL, chain VARCHAR(64) NOT NULL, feed VARCHAR(64) NOT NULL,
    round_id VARCHAR(26) NOT NULL, answer VARCHAR(79) NOT NULL, started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL, answered_in_round VARCHAR(26) NOT NULL, PRIMARY KEY (id));
CREATE UNIQUE INDEX uq_price_round_chain_feed_round ON price_round (chain, feed, round_id);
CREATE TABLE checkpoint (id INTEGER NOT NULL, chain VARCHAR(64) NOT NULL, name VARCHAR(64) NOT NULL,
    block BIGINT NOT NULL, block_hash VARCHAR(80) NOT NULL, updated_at FLOAT NOT NULL, PRIMARY KEY (id));
CREATE UNIQUE INDEX uq_checkpoint_chain_name ON checkpoint (chain, name);
CREATE TABLE schema_version (id INTEGER NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (id),
    CONSTRAINT ck_schema_version_single_row CHECK (id = 1));
INSERT INTO schema_version (id, version) VALUES (1, 1);
"""


def make_v1(path) -> Position:
    """A database as schema version 1 left it, holding one snapshot and a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    p = lending(block=50, health_wad=MAX_UINT256, debt_raw=0)
    con = sqlite3.connect(path)
    con.executescript(V1_DDL)
    leg = p.legs[0]
    legs = (f'[{{"symbol":"WETH","address":"{WETH.address}","decimals":18,"side":"collateral",'
            f'"amount_raw":"{leg.amount_raw:d}","price_usd":{leg.price_usd!r},"liquidation_weight":0.825}}]')
    con.execute("INSERT INTO position_snapshot (chain, block, block_hash, position_key, protocol, "
                "protocol_address, account, market, health_wad, price_ok, price_issue, legs) "
                "VALUES (?, 50, '0x32', ?, 'aave_v3', ?, ?, 'pool', ?, 0, ?, ?)",
                (CHAIN, p.key, POOL, p.account, str(MAX_UINT256).zfill(78), p.price_issue, legs))
    con.execute("INSERT INTO checkpoint (chain, name, block, block_hash, updated_at) "
                "VALUES (?, 'tick', 50, '0x32', 1.0)", (CHAIN,))
    con.commit()
    con.close()
    return p


def schema_of(engine) -> dict:
    insp = inspect(engine)
    return {t: ({c["name"] for c in insp.get_columns(t)},
                {(i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(t)})
            for t in insp.get_table_names()}


def test_v1_database_is_migrated(db_path, tmp_path):
    old = make_v1(db_path)
    with Store.open(f"sqlite:///{db_path}") as s:
        assert (s.upgraded_from, s.version) == (1, SCHEMA_VERSION)
        with s.engine.connect() as conn:
            assert conn.execute(text("SELECT version FROM schema_version")).scalar_one() == SCHEMA_VERSION
        with Store.open(f"sqlite:///{tmp_path / 'fresh.db'}") as fresh:
            assert schema_of(s.engine) == schema_of(fresh.engine)  # migrated == created new
        [row] = s.snapshots(old.key)  # the v1 row survives, now with the v2 columns (NULL)
        assert row.health_wad == MAX_UINT256 and row.perp is None and row.label is None
        assert row.to_position() == Position(**{**old.__dict__, "label": None})
        assert s.checkpoint(CHAIN) == (50, "0x32")
        s.write_tick(CHAIN, 51, "0x33", [perp(block=51)])  # and it takes v2 data
        assert s.snapshots(perp().key)[0].to_position() == perp(block=51)
    with Store.open(f"sqlite:///{db_path}") as again:  # a second open has nothing to do
        assert again.upgraded_from is None


def test_failed_migration_leaves_the_database_untouched(db_path, monkeypatch):
    make_v1(db_path)

    def half_done(conn):
        conn.execute(text("ALTER TABLE position_snapshot ADD COLUMN perp TEXT"))
        conn.execute(text("SELECT * FROM injected_failure"))  # fails: no such table

    monkeypatch.setattr(migrations, "MIGRATIONS", [(2, half_done), *migrations.MIGRATIONS[1:]])
    with pytest.raises(KeeperError, match="injected_failure"):
        Store.open(f"sqlite:///{db_path}")
    con = sqlite3.connect(db_path)
    assert con.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
    assert "perp" not in {r[1] for r in con.execute("PRAGMA table_info(position_snapshot)")}
    con.close()


def test_migration_list_is_complete():
    assert [v for v, _ in migrations.MIGRATIONS] == list(range(2, SCHEMA_VERSION + 1))


# -- the exact integer column on PostgreSQL ------------------------------------------------------

def test_exact_int_on_postgresql_is_numeric_and_exact():
    ddl = str(CreateTable(PositionSnapshot.__table__).compile(dialect=postgresql.dialect()))
    assert "health_wad NUMERIC(78, 0) NOT NULL" in ddl
    ddl = str(CreateTable(PriceRound.__table__).compile(dialect=postgresql.dialect()))
    assert "round_id NUMERIC(25, 0) NOT NULL" in ddl and "answer NUMERIC(78, 0) NOT NULL" in ddl
    pg, lite = postgresql.dialect(), sqlite.dialect()
    u256, i256 = ExactInt(78), ExactInt(78, signed=True)
    for value in (0, 1, MAX_UINT256):
        bound = u256.process_bind_param(value, pg)
        assert isinstance(bound, Decimal) and int(bound) == value
        assert u256.process_result_value(Decimal(str(value)), pg) == value
        assert u256.process_result_value(u256.process_bind_param(value, lite), lite) == value
    for value in (-(2**255), 2**255 - 1):
        assert i256.process_result_value(i256.process_bind_param(value, pg), pg) == value
        assert i256.process_result_value(i256.process_bind_param(value, lite), lite) == value
    with pytest.raises(ValueError):
        u256.process_bind_param(-1, lite)
    with pytest.raises(ValueError):
        ExactInt(25).process_bind_param(10**25, pg)
    with pytest.raises(TypeError):
        u256.process_bind_param(1.5, pg)


def test_postgresql_round_trip(pg_url):
    s = Store.open(pg_url)
    try:
        no_debt = lending("0x00000000000000000000000000000000000000A3", health_wad=MAX_UINT256, debt_raw=0)
        s.write_tick(CHAIN, 100, "0x64", [lending(), perp(), no_debt], [rnd(2**80 - 1, answer=-(2**255))],
                     [AccountRecord(CHAIN, "0x00000000000000000000000000000000000000AA", "vault")])
        s.write_tick(CHAIN, 100, "0x64", [lending(), perp(), no_debt], [rnd(2**80 - 1, answer=-(2**255))])
        for p in (lending(), perp(), no_debt):
            [row] = s.snapshots(p.key)
            assert row.to_position() == p
        assert s.snapshots(no_debt.key)[0].health_wad == MAX_UINT256
        assert s.price_rounds(CHAIN, FEED) == [rnd(2**80 - 1, answer=-(2**255))]
        assert s.checkpoint(CHAIN) == (100, "0x64")
        assert len(s.latest_snapshots(CHAIN)) == 3
    finally:
        drop_keeper_tables(s)
        s.close()


def test_non_finite_usd_values_are_stored_as_null(store):
    p = lending(eth_price=math.nan)
    store.write_tick(CHAIN, 100, "0x64", [p])
    [row] = store.snapshots(p.key)
    assert row.collateral_usd is None and row.liquidation_price is None
    assert math.isnan(row.to_position().legs[0].price_usd)
