"""Fault injection for crash tests: ``KEEPER_FAULT=<point>`` kills the process with SIGKILL when it
reaches that point — no cleanup, no finally blocks, exactly like a crash or ``kill -9``.

Points, in the order a send reaches them:
- ``before_journal``: the transaction is signed, its journal record not yet written (the journal
  holds only the intent: a restart abandons it and the planner decides afresh);
- ``after_journal``: the signed transaction is journaled, not yet broadcast;
- ``after_send``: broadcast, receipt not yet seen;
- ``after_receipt``: mined, outcome not yet journaled.
Unset in production: ``crash_point`` is then a dictionary lookup and nothing else."""

from __future__ import annotations

import os
import signal

POINTS = ("before_journal", "after_journal", "after_send", "after_receipt")


def crash_point(name: str) -> None:
    if name not in POINTS:
        raise ValueError(f"unknown fault point {name!r}; known: {', '.join(POINTS)}")
    if os.environ.get("KEEPER_FAULT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
