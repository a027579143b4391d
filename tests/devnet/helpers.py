"""Small helpers for tests on the devnet (no assertions here)."""

from __future__ import annotations

from web3 import Web3

from keeper.chain import contracts as C
from keeper.chain.revert import decode, revert_data
from keeper.devnet.deployer import Deployer
from keeper.errors import Reverted

AAVE, MORPHO, PERP = 0, 1, 2
E18 = 10**18


def asset_key(asset: str) -> bytes:
    return bytes(12) + bytes.fromhex(Web3.to_checksum_address(asset)[2:])


def set_price(w3: Web3, dep: dict, feed_symbol: str, usd: float) -> None:
    feed = dep["feeds"][feed_symbol]
    agg = w3.eth.contract(address=feed["address"], abi=C.third_party("MockV3Aggregator").abi)
    Deployer(w3, dep["roles"]["admin"]).send(agg.functions.updateAnswer(round(usd * 10 ** feed["decimals"])))


def token(w3: Web3, dep: dict, sym: str):
    return w3.eth.contract(address=dep["tokens"][sym]["address"], abi=C.ours("TestERC20").abi)


def position(dep: dict, pid: str) -> dict:
    return next(p for p in dep["positions"] if p["id"] == pid)


def revert_name(exc: Reverted, *abis) -> str:
    """The decoded error name of a ``Reverted`` raised by ``Deployer.send``."""
    known = list(abis) or [C.ours("KeeperVault").abi, C.ours("PerpVault").abi]
    return decode(revert_data(exc.__cause__) or exc.data, known).name
