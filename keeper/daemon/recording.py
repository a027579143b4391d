"""Writing a tick's snapshot to the store: positions, checked price rounds, accounts and the
checkpoint, in one transaction (``Store.write_tick``)."""

from __future__ import annotations

from collections.abc import Sequence

from keeper.protocols.reader import Snapshot
from keeper.store import AccountRecord, PriceRoundRecord, Store


def record_snapshot(store: Store, snap: Snapshot, *, watched: Sequence[str] = (), kind: str = "watch") -> None:
    rounds = [PriceRoundRecord(snap.chain, r.feed.lower(), r.round.round_id, r.round.answer, r.round.started_at,
                               r.round.updated_at, r.round.answered_in_round)
              for r in snap.prices.values() if r.round is not None]
    accounts = [AccountRecord(snap.chain, a.lower(), kind) for a in watched]
    store.write_tick(snap.chain, snap.block, snap.block_hash, snap.positions, rounds=rounds, accounts=accounts)
