"""The demo's timeline (pure, no chain): both lines of a pair start from the same state even when
the keeper released collateral before the first block read, releases and protections have their
own legend labels, every panel has a title, the perp panel says what its health counts, and the
liquidation line (health 1) is on every health panel."""

import math

from keeper.demo.chain import BlockRecord
from keeper.demo.collect import KeeperAction, Liquidation
from keeper.demo.timeline import LIQUIDATION_LINE, health_series, timeline_figure, write_timeline

PAIRS = [("alice-aave", "carol-aave-unprotected"), ("alice-perp-btc-short", "carol-perp-btc-short-unprotected")]
PHASES = [("calm", 11, 12), ("crash", 12, 14)]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def hours(block):
    return (block - 11) * 5 / 60  # block 11 is the first step's; block 10 was read before it


def records():
    # alice's perp already had excess released (at block 9, as the daemon started): 17.0 -> 8.0.
    rows = [(10, 2000, 30000, 1.30, 1.30, 8.0, 17.0), (11, 2000, 30000, 1.30, 1.30, 8.0, 17.0),
            (12, 1500, 33000, 1.05, 0.98, 3.0, 6.0), (13, 1400, 34000, 1.20, None, 1.6, 0.9),
            (14, 1500, 33500, 1.25, None, 2.0, None)]
    return [BlockRecord(b, b, eth, btc, {"alice-aave": a, "carol-aave-unprotected": ca,
                                        "alice-perp-btc-short": p, "carol-perp-btc-short-unprotected": cp})
            for b, eth, btc, a, ca, p, cp in rows]


def action(block, pid, kind, before, after):
    return KeeperAction(block, pid, kind, "USDC", 100.0, 100.0, f"0x{block:064x}", 100_000, 1, before, after)


ACTIONS = [action(9, "alice-perp-btc-short", "withdraw_excess", 17.0, 8.0),
           action(12, "alice-aave", "repay", 1.0, 1.2), action(12, "alice-perp-btc-short", "top_up", 3.0, 4.0),
           action(14, "alice-aave", "withdraw_excess", 1.3, 1.25)]
LIQS = [Liquidation(13, "carol-aave-unprotected", "0xa", 300_000, 1, 4_000.0, 5_000.0),
        Liquidation(14, "carol-perp-btc-short-unprotected", "0xb", 300_000, 1, 0.0, 3_000.0)]


def figure():
    return timeline_figure(records(), PAIRS, ACTIONS, LIQS, hours=hours, minutes_per_step=5, phases=PHASES)


def line(ax, prefix):
    (found,) = [ln for ln in ax.get_lines() if ln.get_label().startswith(prefix)]
    return found


def test_a_release_before_the_first_read_starts_from_the_pre_action_state():
    xs, ys = health_series(records(), "alice-perp-btc-short", ACTIONS, hours)
    assert xs[:2] == [hours(10), hours(10)] and ys[:2] == [17.0, 8.0]  # the release as a step at the start
    assert health_series(records(), "alice-aave", ACTIONS, hours)[1][0] == 1.30  # its first action came later
    fig, axes = figure()
    try:
        for ax, (pid, twin) in zip(axes[1:], PAIRS, strict=True):
            ours, theirs = line(ax, pid), line(ax, twin)
            assert ours.get_xdata()[0] == theirs.get_xdata()[0]
            assert ours.get_ydata()[0] == theirs.get_ydata()[0], pid
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_labels_titles_and_the_liquidation_line():
    import matplotlib

    fig, axes = figure()
    try:
        assert matplotlib.get_backend().lower() == "agg"
        assert len(axes) == 1 + len(PAIRS)
        assert all(ax.get_title().strip() for ax in axes)
        assert len({ax.get_title() for ax in axes}) == len(axes)
        for ax in axes[1:]:
            labels = ax.get_legend_handles_labels()[1]
            assert len(labels) == len(set(labels))
            assert {"keeper protects (top-up/repay)", "keeper releases excess", "liquidation", LIQUIDATION_LINE} \
                <= set(labels), labels
            one = line(ax, LIQUIDATION_LINE)
            assert list(one.get_ydata()) == [1.0, 1.0]
            low, high = ax.get_ylim()
            assert low <= 1.0 < high
        perp = axes[2]
        assert "max leverage" in perp.get_title() and "maxLeverage / size" in perp.get_title()
        assert "1 = liquidatable" in perp.get_title() and "max leverage" in perp.get_ylabel()
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_write_timeline_writes_a_png(tmp_path):
    path = write_timeline(tmp_path / "out" / "timeline.png", records(), PAIRS, ACTIONS, LIQS, hours=hours,
                          minutes_per_step=5, phases=PHASES)
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_a_twin_gone_and_no_actions_still_draws():
    recs = records()
    for r in recs[1:]:
        r.health["carol-aave-unprotected"] = None
    fig, axes = timeline_figure(recs, PAIRS[:1], [], [], hours=hours, minutes_per_step=5)
    try:
        twin = line(axes[1], "carol-aave-unprotected")
        assert twin.get_ydata()[0] == 1.30 and math.isnan(twin.get_ydata()[-1])
        assert all(ax.get_title() for ax in axes)
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
