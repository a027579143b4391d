"""Replicas sharing one PostgreSQL store: starting together on a new database, every one opens it (the
schema is created under an advisory lock); writing the same block's tick together (a handover), both
writes land and the block holds one snapshot per position."""

import threading

import psycopg2
import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from keeper.store import Store
from keeper.store.migrations import SCHEMA_VERSION
from keeper.store.models import TABLE_NAMES
from tests.store.conftest import pg_url  # noqa: F401 (the PostgreSQL fixture)
from tests.store.test_store import CHAIN, lending


@pytest.fixture
def new_database(pg_url):
    url = make_url(pg_url)
    admin = psycopg2.connect(host=url.host, port=url.port, user=url.username, dbname=url.database)
    admin.autocommit = True  # (CREATE DATABASE refuses a transaction block)
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS replicas_race")
        cur.execute("CREATE DATABASE replicas_race")
    try:
        yield url.set(database="replicas_race").render_as_string(hide_password=False)
    finally:
        with admin.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS replicas_race WITH (FORCE)")
        admin.close()


def test_replicas_opening_a_new_database_together_all_succeed(new_database):
    n = 6
    start = threading.Barrier(n)
    opened: list[Store] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        start.wait()
        try:
            opened.append(Store.open(new_database))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors, errors[0]
        assert len(opened) == n
        assert all(s.version == SCHEMA_VERSION and s.upgraded_from is None for s in opened)
        assert set(inspect(opened[0].engine).get_table_names()) == TABLE_NAMES
    finally:
        for s in opened:
            s.close()


def test_two_writers_of_one_block_take_turns(new_database):
    stores = [Store.open(new_database) for _ in range(2)]
    positions = [lending(f"0x{k:040x}") for k in range(1, 200)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(s: Store) -> None:
        start.wait()
        try:
            for _ in range(5):
                s.write_tick(CHAIN, 100, "0xh100", positions)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=write, args=(s,)) for s in stores]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors[0]
        with stores[0].engine.connect() as conn:
            n = conn.exec_driver_sql("SELECT count(*) FROM position_snapshot WHERE block = 100").scalar_one()
        assert n == len(positions)
    finally:
        for s in stores:
            s.close()
