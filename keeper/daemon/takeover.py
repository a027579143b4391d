"""A replica's takeover (``keeper run --replica``): before the new leader sends anything, the journal
the last leader left is reconciled (mined, failed, or re-sent with the same signed bytes), and the
new leader acts only on a chain read that shows all of it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from keeper.app.execution import Pipeline
from keeper.app.manual import Session, reconcile_journal
from keeper.app.reconcile import ReconcileReport, settled_after
from keeper.config import Config
from keeper.store.db import StoreUnreachable

log = logging.getLogger("keeper.daemon")


def ready_to_lead(cfg: Config, session: Session, pipeline: Pipeline, block: int,
                  on_report: Callable[[ReconcileReport], None]) -> bool:
    """Reconcile the journal for a new leader whose tick read ``block``; True when it may act now.
    False (follow one more tick): the store is out of reach, the last leader's transactions were
    re-sent and are on their way, or some were mined after ``block`` (a plan on that read would act
    again on what they did). ``on_report``: what the reconciliation found (the caller logs and
    alerts it)."""
    try:
        report = reconcile_journal(cfg, session, key=pipeline.key)
    except StoreUnreachable as e:  # still following (the lease goes with the store): try next tick
        log.warning(f"takeover: store unreachable, following ({e})", extra={"event": "store_lost"})
        return False
    on_report(report)
    if report.rebroadcast:
        return False
    late = settled_after(pipeline.journal, report, block)
    if late:
        log.warning(f"takeover: {len(late)} journaled transaction(s) mined after block {block}: "
                    f"acting from the next block", extra={"event": "takeover_wait", "block": block})
        return False
    return True
