"""`keeper check-config`: validate the config, then check on chain that the keeper can read and act."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from keeper.errors import ConfigError

if TYPE_CHECKING:
    from keeper.cli.args import Subparsers
    from keeper.config import Config


def register(sub: Subparsers) -> None:
    p = sub.add_parser("check-config", help="validate the config, then check on chain that the keeper can read every "
                                           "position and that every vault answers health() for it")
    p.set_defaults(handler=run, needs_config=True)


def run(args: argparse.Namespace, cfg: Config | None) -> int:
    from keeper.app.check import check_config

    assert cfg is not None  # needs_config: main() loaded it
    checks = check_config(cfg)
    for c in checks:
        print(f"{c.mark} {c.what}" + (f": {c.detail}" if c.detail else ""))
    failed = [c for c in checks if not c.ok]
    if failed:
        print(f"keeper: error: {len(failed)} check(s) failed", file=sys.stderr)
        return ConfigError.exit_code
    return 0
