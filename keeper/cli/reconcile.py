"""`keeper reconcile`: settle the action journal with the chain (what a crash left pending)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from keeper.cli.render import print_reconcile

if TYPE_CHECKING:
    from keeper.cli.args import Subparsers
    from keeper.config import Config


def register(sub: Subparsers) -> None:
    rc = sub.add_parser("reconcile", help="settle the action journal with the chain (what a crash left pending)")
    rc.add_argument("--chain", default=None)
    rc.add_argument("--no-wait", action="store_true", help="resend what is pending but do not wait for it")
    rc.set_defaults(handler=run, needs_config=True)


def run(args: argparse.Namespace, cfg: Config | None) -> int:
    from keeper.app.manual import open_session, reconcile_journal
    from keeper.views import console

    assert cfg is not None  # needs_config: main() loaded it
    session = open_session(cfg, args.chain)
    try:
        # No key configured: receipts settle what they can, and what is pending is re-sent as the
        # same signed bytes the journal holds; nothing here signs, so no key is needed.
        report = reconcile_journal(cfg, session, wait=not args.no_wait, keyless=True)
    finally:
        session.close()
    out = console()
    print_reconcile(out, report)
    if not any((report.mined, report.reverted, report.failed, report.abandoned, report.rebroadcast)):
        out.print("journal: nothing open")
    return 0 if not report.rebroadcast else 3
