"""Fault injection for crash tests: ``KEEPER_FAULT=<point>`` kills the process with SIGKILL when it
reaches that point — no cleanup, no finally blocks, exactly like a crash or ``kill -9``.

Points: ``after_journal`` (a signed transaction is journaled, not yet broadcast), ``after_send``
(broadcast, receipt not yet seen), ``after_receipt`` (mined, outcome not yet journaled).
Unset in production: ``crash_point`` is then a dictionary lookup and nothing else."""

from __future__ import annotations

import os
import signal

POINTS = ("after_journal", "after_send", "after_receipt")


def crash_point(name: str) -> None:
    if os.environ.get("KEEPER_FAULT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
