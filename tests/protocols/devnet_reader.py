"""Build the keeper's read path for the test devnet (what config does for a real deployment)."""

from keeper.chain.client import ChainClient
from keeper.chain.multicall import Multicall
from keeper.chain.oracle import FeedSpec, OracleReader
from keeper.protocols.aave_v3 import AaveV3Adapter
from keeper.protocols.gmx_v1 import GmxV1Adapter, PerpMarket
from keeper.protocols.morpho_blue import MorphoBlueAdapter
from keeper.protocols.reader import ChainReader


def devnet_reader(url: str, dep: dict, *, chunk_size: int = 500, heartbeat: int = 86_400) -> ChainReader:
    client = ChainClient("devnet", [url], dep["chain_id"])
    mc = Multicall(client, dep["multicall3"], chunk_size=chunk_size)
    aave = dep["aave_v3"]
    adapters = [
        AaveV3Adapter("devnet", aave["pool"], aave["data_provider"], aave["oracle"]),
        MorphoBlueAdapter("devnet", dep["morpho_blue"]["morpho"],
                          [m["id"] for m in dep["morpho_blue"]["markets"].values()]),
        GmxV1Adapter("devnet", dep["perp"]["vault"], [PerpMarket(m["collateral_token"], m["index_token"], m["is_long"])
                                                       for m in dep["perp"]["markets"].values()],
                     dep["perp"].get("position_router")),
    ]
    accounts = sorted({p["account"] for p in dep["positions"]})
    feeds = [FeedSpec(sym, f["address"], heartbeat) for sym, f in dep["feeds"].items()]
    oracle = OracleReader(mc, feeds)
    asset_feeds = {t["address"]: t["feed"] for t in dep["tokens"].values()}
    return ChainReader("devnet", client, mc, adapters, accounts, oracle, asset_feeds)
