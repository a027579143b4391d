"""Build the keeper's read path for the test devnet (what config does for a real deployment,
addresses normalised to ``Address`` as config does)."""

from keeper.chain.client import ChainClient
from keeper.chain.multicall import Multicall
from keeper.chain.oracle import FeedSpec, OracleReader
from keeper.domain import Address as A
from keeper.protocols.aave_v3 import AaveV3Adapter
from keeper.protocols.gmx_v1 import GmxV1Adapter, PerpMarket
from keeper.protocols.morpho_blue import MorphoBlueAdapter
from keeper.protocols.reader import ChainReader


def devnet_reader(url: str, dep: dict, *, chunk_size: int = 500, heartbeat: int = 86_400) -> ChainReader:
    client = ChainClient("devnet", [url], dep["chain_id"])
    mc = Multicall(client, A(dep["multicall3"]), chunk_size=chunk_size)
    aave = dep["aave_v3"]
    router = dep["perp"].get("position_router")
    adapters = [
        AaveV3Adapter("devnet", A(aave["pool"]), A(aave["data_provider"]), A(aave["oracle"])),
        MorphoBlueAdapter("devnet", A(dep["morpho_blue"]["morpho"]),
                          [m["id"] for m in dep["morpho_blue"]["markets"].values()]),
        GmxV1Adapter("devnet", A(dep["perp"]["vault"]),
                     [PerpMarket(A(m["collateral_token"]), A(m["index_token"]), m["is_long"])
                      for m in dep["perp"]["markets"].values()],
                     A(router) if router else None),
    ]
    accounts = sorted({A(p["account"]) for p in dep["positions"]})
    feeds = [FeedSpec(sym, A(f["address"]), heartbeat) for sym, f in dep["feeds"].items()]
    oracle = OracleReader(mc, feeds)
    asset_feeds = {A(t["address"]): A(t["feed"]) for t in dep["tokens"].values()}
    return ChainReader("devnet", client, mc, adapters, accounts, oracle, asset_feeds)
