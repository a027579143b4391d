"""Small helpers for tests on the devnet (no assertions here)."""

from __future__ import annotations

from web3 import Web3

from keeper.chain import contracts as C
from keeper.chain.revert import decode, revert_data
from keeper.demo.faultlab import set_feed_price
from keeper.errors import Reverted

AAVE, MORPHO, PERP = 0, 1, 2
E18 = 10**18


def asset_key(asset: str) -> bytes:
    return bytes(12) + bytes.fromhex(Web3.to_checksum_address(asset)[2:])


def set_price(w3: Web3, dep: dict, feed_symbol: str, usd: float) -> None:
    set_feed_price(w3, dep, feed_symbol, usd)


def token(w3: Web3, dep: dict, sym: str):
    return w3.eth.contract(address=dep["tokens"][sym]["address"], abi=C.ours("TestERC20").abi)


def position(dep: dict, pid: str) -> dict:
    return next(p for p in dep["positions"] if p["id"] == pid)


def aave(dep: dict, name: str):
    """The Aave artifact ``name`` (a v3.0 name: Pool, PoolConfigurator, ...) of the deployment's version."""
    return C.aave_for(dep["aave_v3"].get("version"), name)


def aave_pool(w3: Web3, dep: dict):
    return w3.eth.contract(address=dep["aave_v3"]["pool"], abi=aave(dep, "Pool").abi)


# Aave's errors by version: v3.0 reverts with numeric strings (decoded to these names), v3.7 with
# custom errors from its Errors library.
AAVE_ERROR_NAMES = {
    "HEALTH_FACTOR_NOT_BELOW_THRESHOLD": {"3.0": "HEALTH_FACTOR_NOT_BELOW_THRESHOLD",
                                          "3.7": "HealthFactorNotBelowThreshold"},
}


def aave_error(dep: dict, name: str) -> str:
    return AAVE_ERROR_NAMES[name][dep["aave_v3"].get("version") or "3.0"]


def aave_revert_name(exc: Reverted, dep: dict) -> str:
    return revert_name(exc, aave(dep, "Pool").abi)  # v3.7's custom errors: keeper.chain.revert knows them


def gmx_vault(w3: Web3, dep: dict):
    return w3.eth.contract(address=dep["perp"]["vault"], abi=C.gmx("Vault").abi)


def gmx_liquidation(w3: Web3, dep: dict, account: str, market: str):
    """GMX v1's liquidation of ``account``'s position in ``market`` (``<collateral>:<index>:<side>``),
    as a contract function to call or send from ``dep["roles"]["liquidator"]``: through the
    PositionManager on a gated deployment (private liquidations, run inside ``enableLeverage``), on
    the Vault itself on a direct one."""
    coll, index, side = market.split(":")
    cs = Web3.to_checksum_address
    gated = dep["perp"]["mode"] == "gated"
    c = w3.eth.contract(address=dep["perp"]["position_manager" if gated else "vault"],
                        abi=C.gmx("PositionManager" if gated else "Vault").abi)
    return c.functions.liquidatePosition(cs(account), cs(coll), cs(index), side == "long", dep["roles"]["liquidator"])


def revert_name(exc: Reverted, *abis) -> str:
    """The decoded error name of a ``Reverted`` raised by ``Deployer.send``."""
    known = list(abis) or [C.ours("KeeperVault").abi]
    return decode(revert_data(exc.__cause__) or exc.data, known).name
