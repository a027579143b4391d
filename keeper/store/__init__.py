"""keeper.store: the keeper's database (SQLModel; SQLite file by default, any SQLAlchemy URL).

    store = Store.open("sqlite:///var/keeper.db")
    store.write_tick(chain, block, block_hash, positions, rounds, accounts)  # one transaction
    store.checkpoint(chain)  # -> (block, block_hash) | None
"""

from keeper.store.db import Store
from keeper.store.migrations import MIGRATIONS, SCHEMA_VERSION
from keeper.store.models import (
    ACCOUNT_KINDS,
    Account,
    Checkpoint,
    ExactInt,
    PositionSnapshot,
    PriceRound,
    SchemaVersion,
)
from keeper.store.records import AccountRecord, PriceRoundRecord

__all__ = [
    "ACCOUNT_KINDS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Account",
    "AccountRecord",
    "Checkpoint",
    "ExactInt",
    "PositionSnapshot",
    "PriceRound",
    "PriceRoundRecord",
    "SchemaVersion",
    "Store",
]
