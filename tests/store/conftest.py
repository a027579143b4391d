"""Store test fixtures."""

import os

import pytest


@pytest.fixture(scope="session")
def pg_url():
    """KEEPER_TEST_POSTGRES_URL (an empty database), else a throwaway local server."""
    if os.environ.get("KEEPER_TEST_POSTGRES_URL"):
        yield os.environ["KEEPER_TEST_POSTGRES_URL"]
        return
    from keeper.devnet.postgres import temporary_postgres

    with temporary_postgres() as url:
        if url is None:
            pytest.skip("no PostgreSQL server binaries (initdb/postgres) on this machine")
        yield url


def drop_keeper_tables(store) -> None:
    """Leave a shared PostgreSQL database as it was found."""
    from sqlalchemy import text

    from keeper.store.models import TABLE_NAMES

    with store.engine.begin() as conn:
        for table in sorted(TABLE_NAMES):  # (no foreign keys between them)
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
