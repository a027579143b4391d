"""The store's tables (SQLModel) and the column type that keeps chain integers exact.

Chain integers wider than 64 bits (a health factor up to 2**256-1, a Chainlink round id (uint80), an
int256 answer) do not fit SQLite's INTEGER, and SQLite's NUMERIC affinity would turn them into
lossy REALs. ``ExactInt`` stores them as NUMERIC(p, 0) on PostgreSQL and as decimal text elsewhere;
unsigned values are zero-padded to a fixed width there so that ``ORDER BY`` and range comparisons on
the text agree with the numbers. Either way Python sees ``int``.

Addresses in ``account`` and ``price_round`` are stored lower-case (one spelling per address, so the
unique constraints mean what they say); snapshots keep the spelling of the ``Position`` they came from.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, Numeric, String, Table, Text, inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import Field, SQLModel

if TYPE_CHECKING:
    from keeper.domain import Position

UINT256_DIGITS = 78  # len(str(2**256 - 1))
UINT80_DIGITS = 25  # len(str(2**80 - 1))
ACCOUNT_KINDS = ("vault", "owner", "watch")

# A 64-bit surrogate key that is still SQLite's auto-incrementing rowid alias.
_ID = BigInteger().with_variant(Integer(), "sqlite")


class ExactInt(TypeDecorator[int]):
    """An integer of up to ``digits`` decimal digits, stored without loss on any backend."""

    impl = String
    cache_ok = True

    def __init__(self, digits: int, signed: bool = False) -> None:
        super().__init__()
        self.digits = digits
        self.signed = signed
        self._bound = 10**digits

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(self.digits, 0, asdecimal=True))
        return dialect.type_descriptor(String(self.digits + 1))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Decimal | str | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected an int, got {type(value).__name__}")
        if not -self._bound < value < self._bound or (value < 0 and not self.signed):
            raise ValueError(f"{value} does not fit a {'signed' if self.signed else 'unsigned'} "
                             f"{self.digits}-digit column")
        if dialect.name == "postgresql":
            return Decimal(value)  # exact: Decimal(int) never rounds
        return str(value) if self.signed else str(value).zfill(self.digits)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            if value != value.to_integral_value():
                raise ValueError(f"non-integral value {value} in an integer column")
            return int(value)
        return int(value)


def _exact(digits: int, signed: bool = False, nullable: bool = False) -> Any:
    return Field(sa_type=ExactInt(digits, signed), nullable=nullable)


class Account(SQLModel, table=True):
    """An address the keeper knows: a ``KeeperVault``, its owner, or a position it only watches."""

    __tablename__ = "account"
    __table_args__ = (
        Index("uq_account_chain_address", "chain", "address", unique=True),
        CheckConstraint("kind IN ('vault', 'owner', 'watch')", name="ck_account_kind"),
    )

    id: int | None = Field(default=None, primary_key=True)
    chain: str = Field(max_length=64)
    address: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    label: str | None = Field(default=None, max_length=200)


class PositionSnapshot(SQLModel, table=True):
    """One position as read at one block. ``health`` is NULL when infinite (no debt)."""

    __tablename__ = "position_snapshot"
    __table_args__ = (
        # The unique index is the (position_key, block) index: one structure serves both.
        Index("uq_position_snapshot_key_block", "position_key", "block", unique=True),
        Index("ix_position_snapshot_chain_block", "chain", "block"),
    )

    id: int | None = Field(default=None, sa_type=_ID, primary_key=True)
    chain: str = Field(max_length=64)
    block: int = Field(sa_type=BigInteger, nullable=False)
    block_hash: str = Field(max_length=80)
    position_key: str = Field(max_length=400)
    protocol: str = Field(max_length=32)
    protocol_address: str = Field(max_length=64)
    account: str = Field(max_length=64)
    market: str = Field(max_length=200)
    health_wad: int = _exact(UINT256_DIGITS)
    health: float | None = None
    collateral_usd: float | None = None
    debt_usd: float | None = None
    liquidation_symbol: str | None = Field(default=None, max_length=64)
    liquidation_price: float | None = None
    distance: float | None = None
    price_ok: bool = True
    price_issue: str | None = Field(default=None, sa_type=Text)
    legs: str = Field(sa_type=Text, nullable=False)  # JSON list, see keeper.store.records
    perp: str | None = Field(default=None, sa_type=Text)  # JSON object or NULL (schema v2)
    label: str | None = Field(default=None, max_length=200)  # schema v2

    def to_position(self) -> Position:
        """The ``keeper.domain.Position`` this row was written from (``extra`` is not kept)."""
        from keeper.store.records import snapshot_to_position

        return snapshot_to_position(self)


class PriceRound(SQLModel, table=True):
    """One Chainlink round of one feed, with the integers exactly as ``getRoundData`` returned them."""

    __tablename__ = "price_round"
    __table_args__ = (Index("uq_price_round_chain_feed_round", "chain", "feed", "round_id", unique=True),)

    id: int | None = Field(default=None, sa_type=_ID, primary_key=True)
    chain: str = Field(max_length=64)
    feed: str = Field(max_length=64)
    round_id: int = _exact(UINT80_DIGITS)
    answer: int = _exact(UINT256_DIGITS, signed=True)
    started_at: int = Field(sa_type=BigInteger, nullable=False)
    updated_at: int = Field(sa_type=BigInteger, nullable=False)
    answered_in_round: int = _exact(UINT80_DIGITS)


class Checkpoint(SQLModel, table=True):
    """The last block a job finished, per chain; ``updated_at`` is wall-clock unix seconds."""

    __tablename__ = "checkpoint"
    __table_args__ = (Index("uq_checkpoint_chain_name", "chain", "name", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    chain: str = Field(max_length=64)
    name: str = Field(max_length=64)
    block: int = Field(sa_type=BigInteger, nullable=False)
    block_hash: str = Field(max_length=80)
    updated_at: float


class JournalEntry(SQLModel, table=True):
    """One keeper action from intent to outcome (schema v3). Written before anything is sent.

    ``idempotency_key`` (position key + decision epoch + action) is unique: the same decision can
    never be journaled, and so never sent, twice. ``attempts`` is a JSON list of
    ``{"nonce", "tx_hash", "raw", "max_fee", "tip"}``: every signed transaction, recorded before it
    was broadcast, so a restart can find it on chain or broadcast it again."""

    __tablename__ = "journal_entry"
    __table_args__ = (
        Index("uq_journal_idempotency_key", "idempotency_key", unique=True),
        Index("ix_journal_chain_status", "chain", "status"),
        CheckConstraint("status IN ('intent', 'signed', 'mined', 'failed', 'reverted', 'abandoned')",
                        name="ck_journal_status"),
    )

    id: int | None = Field(default=None, sa_type=_ID, primary_key=True)
    chain: str = Field(max_length=64)
    idempotency_key: str = Field(max_length=400)
    position_key: str = Field(max_length=400)
    action: str = Field(sa_type=Text, nullable=False)  # JSON: what and why
    status: str = Field(max_length=16)
    nonce: int | None = Field(default=None, sa_type=BigInteger)
    attempts: str = Field(default="[]", sa_type=Text, nullable=False)
    mined_hash: str | None = Field(default=None, max_length=80)
    mined_block: int | None = Field(default=None, sa_type=BigInteger)
    error: str | None = Field(default=None, sa_type=Text)
    created_at: float
    updated_at: float
    # schema v4: the leader's lease epoch that journaled it (keeper.store.lease); None outside replicas
    epoch: int | None = Field(default=None, sa_type=BigInteger)
    # schema v5: the keeper key's address that signs it (None: journaled before v5)
    sender: str | None = Field(default=None, max_length=64)


class Lease(SQLModel, table=True):
    """Who leads one piece of work among keeper replicas (schema v4; ``keeper.store.lease``): one row
    per lease name (a chain and a keeper key), its holder, an epoch that only grows (every change of
    hands, or retaking after an expiry, adds one) and when it expires, in the database's own clock
    (seconds since 1970), so replicas on different hosts never compare their clocks."""

    __tablename__ = "lease"

    name: str = Field(max_length=200, primary_key=True)
    holder: str = Field(max_length=200)
    epoch: int = Field(sa_type=BigInteger)
    expires_at: float


class ReplicaMember(SQLModel, table=True):
    """A keeper replica's heartbeat (schema v5; ``keeper.store.lease``): its name and when it was last
    seen, in the database's clock. The live replicas share the leases among them."""

    __tablename__ = "replica_member"

    holder: str = Field(max_length=200, primary_key=True)
    seen_at: float


class KeyNonce(SQLModel, table=True):
    """The keeper key's mined transaction count on one chain as last accounted for by this store's
    journal (schema v5; ``keeper.app.key_guard``): every later nonce must be one the journal holds,
    or another process is sending with the key. ``name``: ``<chain>:<address>``."""

    __tablename__ = "key_nonce"

    name: str = Field(max_length=200, primary_key=True)
    nonce: int = Field(sa_type=BigInteger)
    updated_at: float


class SchemaVersion(SQLModel, table=True):
    """A single row: the schema version this database is at."""

    __tablename__ = "schema_version"
    __table_args__ = (CheckConstraint("id = 1", name="ck_schema_version_single_row"),)

    id: int = Field(default=1, primary_key=True)
    version: int


def table_of(model: type[SQLModel]) -> Table:
    """The ``Table`` of a ``table=True`` model (its ``__table__``, which SQLModel does not declare)."""
    table = inspect(model).local_table
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a single table")
    return table


TABLES = tuple(table_of(m) for m in (Account, PositionSnapshot, PriceRound, Checkpoint, JournalEntry, Lease,
                                     ReplicaMember, KeyNonce, SchemaVersion))
TABLE_NAMES = frozenset(t.name for t in TABLES)
