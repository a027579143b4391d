"""The deployment file: chain id, every address, market ids, seeded accounts and positions (JSON).

Written by ``keeper devnet up`` (default ``.keeper/devnet.json``), read by ``keeper devnet price``,
``keeper status`` and later stages. The state file next to it (``devnet-state.json``) records the
detached anvil's pid and URL for ``keeper devnet down``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from keeper.errors import ConfigError

DEFAULT_DIR = Path(".keeper")
DEPLOYMENT_FILE = "devnet.json"
STATE_FILE = "devnet-state.json"


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"{what} not found at {path}", hint="start a devnet with 'keeper devnet up'")
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{what} at {path} is not valid JSON (line {e.lineno}): {e.msg}") from e
    return data


def load_deployment(path: Path | None = None) -> dict[str, Any]:
    return read_json(path or DEFAULT_DIR / DEPLOYMENT_FILE, "devnet deployment file")


def find_feed(deployment: dict[str, Any], symbol: str) -> dict[str, Any]:
    """The feed for ``ETH``/``WETH``, ``BTC``/``WBTC``, ``USDC`` (case-insensitive)."""
    want = symbol.upper()
    feed: dict[str, Any]
    for feed_sym, feed in deployment["feeds"].items():
        if want in (feed_sym.upper(), feed["token"].upper()):
            return feed
    known = ", ".join(sorted(deployment["feeds"]))
    raise ConfigError(f"no price feed for {symbol!r} in the deployment; known: {known}")
