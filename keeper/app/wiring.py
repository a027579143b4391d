"""Build the keeper's parts for a chain from its config: client, multicall, oracles, adapters."""

from __future__ import annotations

from collections.abc import Sequence

from keeper.chain.client import ChainClient
from keeper.chain.multicall import Multicall
from keeper.chain.oracle import FeedSpec, OracleReader, SequencerSpec
from keeper.config import ChainConfig
from keeper.domain import Address
from keeper.protocols.aave_v3 import AaveV3Adapter
from keeper.protocols.base import Adapter
from keeper.protocols.gmx_v1 import GmxV1Adapter, PerpMarket
from keeper.protocols.morpho_blue import MorphoBlueAdapter
from keeper.protocols.morpho_preliq import PreLiqIndex
from keeper.protocols.reader import ChainReader

PROTOCOL_NAMES = ("aave_v3", "morpho_blue", "perp")


def build_client(name: str, cfg: ChainConfig) -> ChainClient:
    return ChainClient(name, cfg.rpc_urls, cfg.chain_id, timeout=cfg.timeout, retries=cfg.retries,
                       max_lag_blocks=cfg.max_lag_blocks, max_head_age=cfg.max_head_age)


def build_adapters(name: str, cfg: ChainConfig, only: Sequence[str] | None = None,
                   verify: Sequence[Address] | None = None) -> list[Adapter]:
    """``verify``: accounts whose Aave health is cross-checked with ``getUserAccountData`` in every
    read (default: the accounts the keeper may act for; e-mode accounts always are)."""
    want = set(only or PROTOCOL_NAMES)
    adapters: list[Adapter] = []
    if cfg.aave_v3 and "aave_v3" in want:
        a = cfg.aave_v3
        # Accounts the keeper may act for: their health is cross-checked with the pool's in every read.
        if verify is None:
            verify = [acct.address for acct in cfg.accounts if acct.kind in ("vault", "owner")]
        adapters.append(AaveV3Adapter(name, a.pool, a.data_provider, a.oracle, price_decimals=a.price_decimals,
                                      health=a.health, verify=verify))
    if cfg.morpho_blue and "morpho_blue" in want:
        mb = cfg.morpho_blue
        index = PreLiqIndex(Address(mb.preliq_factory), mb.preliq_from_block) if mb.preliq_factory else None
        adapters.append(MorphoBlueAdapter(name, mb.morpho, mb.markets, index))
    if cfg.perp and "perp" in want:
        adapters.append(GmxV1Adapter(name, cfg.perp.vault, [PerpMarket(m.collateral_token, m.index_token, m.is_long)
                                                            for m in cfg.perp.markets], cfg.perp.position_router))
    return adapters


def build_reader(name: str, cfg: ChainConfig, *, accounts: Sequence[Address] | None = None,
                 protocols: Sequence[str] | None = None, client: ChainClient | None = None,
                 verify_all: bool = False) -> ChainReader:
    """``verify_all``: cross-check every account's Aave health with the pool's (operator commands
    such as ``status``, where one more call per account costs nothing that matters)."""
    client = client or build_client(name, cfg)
    mc = Multicall(client, cfg.multicall, chunk_size=cfg.chunk_size, in_flight=cfg.in_flight)
    feeds = [FeedSpec(fname, f.address, f.heartbeat, second_source=f.second_source, max_deviation=f.max_deviation)
             for fname, f in cfg.feeds.items()]
    sequencer = SequencerSpec(cfg.sequencer.address, cfg.sequencer.grace_period) if cfg.sequencer else None
    oracle = OracleReader(mc, feeds, sequencer) if feeds or sequencer else None
    asset_feeds = {f.asset: f.address for f in cfg.feeds.values() if f.asset}
    watched = list(accounts) if accounts is not None else [a.address for a in cfg.accounts]
    only = {a.address: a.protocols for a in cfg.accounts if a.protocols is not None}
    adapters = build_adapters(name, cfg, protocols, verify=watched if verify_all else None)
    return ChainReader(name, client, mc, adapters, watched, oracle, asset_feeds, only)
