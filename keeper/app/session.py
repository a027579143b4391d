"""Read-only operator commands: ``status`` (one read of every configured chain) and ``watch`` (any
address, every block, no key needed); ``check-config`` is in ``keeper.app.check``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from keeper.app.wiring import build_client, build_reader
from keeper.chain.client import ChainClient
from keeper.config import ChainConfig, Config
from keeper.domain import Address
from keeper.errors import ConfigError
from keeper.protocols.reader import Snapshot


def chains_or_fail(cfg: Config, only: str | None = None) -> dict[str, ChainConfig]:
    if not cfg.chains:
        raise ConfigError("no chain configured", hint="add a [chains.<name>] section to config.toml, "
                                                       "or start a local devnet with 'keeper devnet up --detach'")
    if only is None:
        return dict(cfg.chains)
    if only not in cfg.chains:
        raise ConfigError(f"no chain named {only!r} in the config; configured: {', '.join(sorted(cfg.chains))}")
    return {only: cfg.chains[only]}


def one_chain(cfg: Config, chain: str | None) -> tuple[str, ChainConfig, ChainClient]:
    """The one chain a command acts on (``--chain`` when several are configured), connected."""
    chains = chains_or_fail(cfg, chain)
    if len(chains) > 1:
        raise ConfigError(f"several chains are configured ({', '.join(sorted(chains))}): pick one with --chain")
    ((name, ccfg),) = chains.items()
    client = build_client(name, ccfg)
    client.connect()
    return name, ccfg, client


def read_status(cfg: Config, chain: str | None = None) -> list[Snapshot]:
    snaps = []
    for name, ccfg in chains_or_fail(cfg, chain).items():
        client = build_client(name, ccfg)
        client.connect()
        reader = build_reader(name, ccfg, client=client, verify_all=True)
        try:
            snaps.append(reader.read())
        finally:
            reader.mc.close()
    return snaps


def watch(cfg: Config, addresses: Sequence[Address], *, chain: str | None, protocols: Sequence[str] | None,
          on_snapshot: Callable[[Snapshot], None], blocks: int | None = None, poll: float = 0.5,
          sleep: Callable[[float], None] = time.sleep) -> int:
    """Read ``addresses`` on one chain at every new block until ``blocks`` blocks were shown (or
    forever). Temporary RPC faults are retried by the client; the watch itself never writes."""
    name, ccfg, client = one_chain(cfg, chain)
    reader = build_reader(name, ccfg, accounts=addresses, protocols=protocols, client=client)
    shown, last = 0, None
    try:
        while blocks is None or shown < blocks:
            head = client.block_number()
            if head != last:
                on_snapshot(reader.read(head))
                last, shown = head, shown + 1
            else:
                sleep(poll)
    finally:
        reader.mc.close()
    return shown
