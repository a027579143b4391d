"""Read-only operator commands: ``status`` (one read of every configured chain), ``watch`` (any
address, every block, no key needed) and ``check-config`` (the config against the chain)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from keeper.chain.client import ChainClient
from keeper.chain.multicall import Call, Multicall
from keeper.chain.oracle import LATEST_ROUND_DATA
from keeper.config import ChainConfig, Config
from keeper.daemon.wiring import build_client, build_reader
from keeper.errors import ConfigError, KeeperError
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
        reader = build_reader(name, ccfg, client=client)
        try:
            snaps.append(reader.read())
        finally:
            reader.mc.close()
    return snaps


def watch(cfg: Config, addresses: Sequence[str], *, chain: str | None, protocols: Sequence[str] | None,
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


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    detail: str = ""


def _has_code(client: ChainClient, address: str) -> bool:
    return len(client.request("eth_getCode", [address, "latest"])) > 2


def check_chain(name: str, ccfg: ChainConfig) -> list[Check]:
    out: list[Check] = []
    client = build_client(name, ccfg)
    try:
        cid = client.connect()
        out.append(Check(f"{name}: chain id", True, f"{cid} on {len(ccfg.rpc_urls)} RPC URL(s)"))
    except KeeperError as e:
        return [Check(f"{name}: chain id", False, str(e))]
    contracts = [("multicall", ccfg.multicall)]
    if ccfg.aave_v3:
        contracts += [("aave_v3.pool", ccfg.aave_v3.pool), ("aave_v3.data_provider", ccfg.aave_v3.data_provider),
                      ("aave_v3.oracle", ccfg.aave_v3.oracle)]
    if ccfg.morpho_blue:
        contracts.append(("morpho_blue.morpho", ccfg.morpho_blue.morpho))
    if ccfg.perp:
        contracts.append(("perp.vault", ccfg.perp.vault))
    contracts += [(f"feeds.{f}", fc.address) for f, fc in ccfg.feeds.items()]
    for key, addr in contracts:
        ok = _has_code(client, addr)
        out.append(Check(f"{name}: {key}", ok, addr if ok else f"no contract at {addr}"))
    if not all(c.ok for c in out):
        return out
    block = client.block_number()
    mc = Multicall(client, ccfg.multicall, in_flight=1)
    try:
        if ccfg.feeds:
            res = mc.call([Call(f.address, LATEST_ROUND_DATA) for f in ccfg.feeds.values()], block)
            for (fname, f), r in zip(ccfg.feeds.items(), res):
                ok = r.success and len(r.data) == 160
                out.append(Check(f"{name}: feeds.{fname} answers latestRoundData", ok,
                                 "" if ok else f"{f.address} is not a Chainlink aggregator"))
        reader = build_reader(name, ccfg, client=client)
        try:
            for adapter in reader.adapters:
                adapter.prepare(reader.mc, block)
                out.append(Check(f"{name}: {adapter.protocol.value} metadata", True))
        except KeeperError as e:  # a wrong contract reverts; a missing market is a ConfigError
            out.append(Check(f"{name}: protocol metadata", False, str(e)))
        finally:
            reader.mc.close()
    finally:
        mc.close()
    return out


def check_config(cfg: Config) -> list[Check]:
    checks = [Check("config: schema and cross-field checks", True)]
    for name, ccfg in chains_or_fail(cfg).items():
        checks.extend(check_chain(name, ccfg))
    return checks
