"""Deploy the real Morpho Blue (``@morpho-org/morpho-blue`` 1.0.0, compiled by solc-js 0.8.19 into
``build/third_party``) with its IrmMock, and create markets priced by our MorphoChainlinkOracle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode
from eth_utils.crypto import keccak
from web3 import Web3

from keeper.chain import contracts as C
from keeper.devnet.deployer import Deployer


@dataclass(frozen=True)
class MorphoMarketSpec:
    name: str  # e.g. "WETH/USDC"
    loan_token: str
    loan_decimals: int
    loan_feed: str
    collateral_token: str
    collateral_decimals: int
    collateral_feed: str
    lltv: int  # 1e18 scale, e.g. 860000000000000000


def market_id(loan: str, collateral: str, oracle: str, irm: str, lltv: int) -> str:
    """Morpho's market id: keccak256(abi.encode(MarketParams))."""
    packed = encode(["address", "address", "address", "address", "uint256"],
                    [Web3.to_checksum_address(loan), Web3.to_checksum_address(collateral),
                     Web3.to_checksum_address(oracle), Web3.to_checksum_address(irm), lltv])
    return "0x" + keccak(packed).hex()


def deploy_morpho(d: Deployer, markets: list[MorphoMarketSpec], owner: str) -> dict[str, Any]:
    morpho = d.deploy(C.third_party("Morpho"), owner)
    irm = d.deploy(C.third_party("IrmMock"))
    d.send(morpho.functions.enableIrm(irm.address), sender=owner)
    out_markets = {}
    enabled: set[int] = set()
    for m in markets:
        if m.lltv not in enabled:
            d.send(morpho.functions.enableLltv(m.lltv), sender=owner)
            enabled.add(m.lltv)
        oracle = d.deploy(C.ours("MorphoChainlinkOracle"), m.collateral_feed, m.loan_feed,
                          m.collateral_decimals, m.loan_decimals)
        params = (m.loan_token, m.collateral_token, oracle.address, irm.address, m.lltv)
        d.send(morpho.functions.createMarket(params), sender=owner)
        mid = market_id(*params)
        on_chain = morpho.functions.idToMarketParams(bytes.fromhex(mid[2:])).call()
        if Web3.to_checksum_address(on_chain[0]) != Web3.to_checksum_address(m.loan_token):
            raise RuntimeError(f"Morpho market id mismatch for {m.name}: {mid}")
        out_markets[m.name] = {
            "id": mid,
            "loan_token": Web3.to_checksum_address(m.loan_token),
            "collateral_token": Web3.to_checksum_address(m.collateral_token),
            "oracle": oracle.address,
            "irm": irm.address,
            "lltv": m.lltv,
        }
    return {"morpho": morpho.address, "irm": irm.address, "markets": out_markets}
