"""`keeper check-config`: validate the config, then check on chain that the keeper can read and act."""

from __future__ import annotations

import sys

from keeper.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("check-config", help="validate the config, then check on chain that the keeper can read every "
                                           "position and that every vault answers health() for it")
    p.set_defaults(handler=run, needs_config=True)

def run(args, cfg) -> int:
    from keeper.app.check import check_config

    checks = check_config(cfg)
    for c in checks:
        print(f"{c.mark} {c.what}" + (f": {c.detail}" if c.detail else ""))
    failed = [c for c in checks if not c.ok]
    if failed:
        print(f"keeper: error: {len(failed)} check(s) failed", file=sys.stderr)
        return ConfigError.exit_code
    return 0
