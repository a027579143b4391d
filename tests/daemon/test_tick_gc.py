"""keeper.daemon.tick_gc.TickGC: collections between ticks, not inside them; memory stays bounded.

Pure: the real ``gc`` module, no chain."""

from __future__ import annotations

import gc
import weakref

import pytest

from keeper.daemon.tick_gc import TickGC


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    """Cyclic garbage (only a collection frees it); a weak reference to watch it go."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture
def tgc():
    enabled, threshold = gc.isenabled(), gc.get_threshold()
    t = TickGC(full_every=3, threshold=(5_000, 10, 10))
    t.start()
    yield t
    t.stop()
    (gc.enable if enabled else gc.disable)()
    assert gc.get_threshold() == threshold  # stop() restored the interpreter's thresholds


def test_start_freezes_and_raises_thresholds(tgc):
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (5_000, 10, 10)


def test_no_automatic_collection_inside_a_tick(tgc):
    before = [s["collections"] for s in gc.get_stats()]
    with tgc.tick():
        assert not gc.isenabled()
        junk = [cycle() for _ in range(50_000)]  # far past the gen-0 threshold: would collect if enabled
        assert [s["collections"] for s in gc.get_stats()] == before
        assert all(r() is not None for r in junk[:100])  # nothing freed inside the tick
    assert gc.isenabled()
    tgc.after()
    assert all(r() is None for r in junk)  # ... but right after it


def test_collection_advances_across_ticks_and_memory_is_bounded(tgc):
    young0, full0 = (gc.get_stats()[1]["collections"], gc.get_stats()[2]["collections"])
    gens, refs = [], []
    for _ in range(7):
        with tgc.tick():
            refs.append(cycle())
        gens.append(tgc.after(idle=True))
        assert refs[-1]() is None  # every tick's cyclic garbage is gone after it
    assert gens == [1, 1, 2, 1, 1, 2, 1]  # the old generation every full_every (3) ticks
    assert gc.get_stats()[2]["collections"] - full0 >= 2
    assert gc.get_stats()[1]["collections"] - young0 >= 5
    assert (tgc.ticks, tgc.young, tgc.full) == (7, 5, 2)


def test_full_collection_waits_for_idle_but_not_forever(tgc):
    gens = [tgc.after(idle=False) for _ in range(6)]
    assert gens == [1, 1, 1, 1, 1, 2]  # due at 3, postponed while heads wait, forced at 2 * 3
    assert tgc.after(idle=True) == 1


def test_gc_is_re_enabled_when_a_tick_fails(tgc):
    with pytest.raises(RuntimeError), tgc.tick():
        raise RuntimeError("tick failed")
    assert gc.isenabled()


def test_nested_ticks_and_a_disabled_gc_stay_as_they_were(tgc):
    with tgc.tick():
        with tgc.tick():
            assert not gc.isenabled()
        assert not gc.isenabled()  # still inside the outer tick
    assert gc.isenabled()
    gc.disable()
    try:
        with tgc.tick():
            pass
        assert not gc.isenabled()  # someone else turned it off: left off
    finally:
        gc.enable()


def test_stop_unfreezes():
    t = TickGC()
    t.start()
    t.stop()
    assert gc.get_freeze_count() == 0
    t.stop()  # twice: nothing more


def test_two_keepers_in_one_process_restore_the_defaults_once_both_stop():
    threshold = gc.get_threshold()
    a, b = TickGC(threshold=(1_000, 10, 10)), TickGC(threshold=(2_000, 10, 10))
    a.start()
    b.start()
    a.stop()
    assert gc.get_threshold() == (2_000, 10, 10) and gc.get_freeze_count() > 0  # b still runs
    b.stop()
    assert gc.get_threshold() == threshold and gc.get_freeze_count() == 0


def test_full_every_must_be_positive():
    with pytest.raises(ValueError):
        TickGC(full_every=0)
