"""`keeper watch --record`'s path: a snapshot read from the devnet round-trips through the store."""

from keeper.app.recording import record_snapshot
from keeper.store import Store
from tests.protocols.devnet_reader import devnet_reader


def test_snapshot_round_trips_through_the_store(tmp_path, anvil, devnet):
    reader = devnet_reader(anvil.url, devnet)
    snap = reader.read()
    reader.mc.close()
    with Store.open(f"sqlite:///{tmp_path / 'k.db'}") as store:
        record_snapshot(store, snap, watched=reader.accounts)
        assert store.checkpoint("devnet") == (snap.block, snap.block_hash)
        for p in snap.positions:
            (row,) = store.snapshots(p.key)
            back = row.to_position()
            assert back.health_wad == p.health_wad and back.legs == p.legs
        eth_feed = devnet["feeds"]["ETH"]["address"].lower()
        rounds = store.price_rounds("devnet", eth_feed)
        assert rounds and rounds[-1].answer == 2000 * 10**8
        # Same block again: idempotent, no duplicates.
        record_snapshot(store, snap, watched=reader.accounts)
        assert len(store.latest_snapshots("devnet")) == len(snap.positions)
