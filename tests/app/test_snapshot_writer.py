"""The daemon's snapshot writer (keeper.app.recording.SnapshotWriter): it writes off the tick's
thread; a newer snapshot replaces one still waiting, but a snapshot without positions (the daemon's
ticks between two history rows: rounds and the checkpoint only) never replaces one with them. Real
SQLite store; the writer is held busy by gating the store's write."""

import threading

from keeper.app.recording import SnapshotWriter
from keeper.protocols.reader import Snapshot
from keeper.store import Store
from tests.store.test_store import CHAIN, lending


def snap(block: int, *, positions: bool = True) -> Snapshot:
    pos = [lending(block=block)] if positions else []
    return Snapshot(CHAIN, block, f"0x{block:064x}", 1_700_000_000 + block, pos, {})


def test_a_snapshot_without_positions_never_replaces_one_with_them(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'k.db'}") as store:
        gate, entered = threading.Event(), threading.Event()
        write = store.write_tick

        def held(*args, **kw):
            entered.set()
            gate.wait(10)
            return write(*args, **kw)

        store.write_tick = held  # type: ignore[method-assign]
        w = SnapshotWriter(store)
        try:
            w.submit(snap(100))
            assert entered.wait(10)  # the writer is busy with block 100
            w.submit(snap(101))  # a full one replaces a waiting full one ...
            w.submit(snap(102))  # ... so block 102 waits
            w.submit(snap(103, positions=False))  # would replace it: kept out, block 102 stays
            gate.set()
            assert w.flush(10)
        finally:
            w.close()
        key = lending().key
        assert [r.block for r in store.snapshots(key)] == [100, 102]
        assert store.checkpoint(CHAIN)[0] == 102
        assert (w.written, w.skipped) == (2, 2)


def test_rounds_only_snapshots_move_the_checkpoint(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'k.db'}") as store:
        w = SnapshotWriter(store)
        try:
            w.submit(snap(100))
            assert w.flush(10)
            w.submit(snap(101, positions=False))
            assert w.flush(10)
        finally:
            w.close()
        assert [r.block for r in store.snapshots(lending().key)] == [100]
        assert store.checkpoint(CHAIN)[0] == 101
