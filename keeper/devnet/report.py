"""Health of the devnet's seeded positions, as each protocol reports it (stage 1's ``keeper status``).

- Aave v3: ``Pool.getUserAccountData(user).healthFactor``.
- Morpho Blue has no health view: health = collateral * price / 1e36 * LLTV / borrowed, with the
  borrowed assets rounded up from shares exactly as Morpho does (virtual shares 1e6, virtual assets 1).
  Interest accrued since the market's last update is NOT included here (stage 2's adapter adds it).
- Perps: ``validateLiquidation`` state and the health defined in ``keeper.risk.perp_math``.
Health is a float where 1.0 is the liquidation boundary; ``inf`` when there is no debt.
"""

from __future__ import annotations

import math

from web3 import Web3

from keeper.chain import contracts as C
from keeper.risk.perp_math import perp_health

E18 = 10**18
VIRTUAL_SHARES = 10**6
VIRTUAL_ASSETS = 1
MAX_UINT = 2**256 - 1


def _ratio(value: int) -> float:
    return math.inf if value >= MAX_UINT else value / E18


def morpho_borrowed_assets(borrow_shares: int, total_borrow_assets: int, total_borrow_shares: int) -> int:
    """Morpho's SharesMathLib.toAssetsUp."""
    num = borrow_shares * (total_borrow_assets + VIRTUAL_ASSETS)
    den = total_borrow_shares + VIRTUAL_SHARES
    return -(-num // den)


def morpho_health_wad(collateral: int, price: int, lltv: int, borrowed: int) -> int:
    if borrowed == 0:
        return MAX_UINT
    max_borrow = collateral * price // 10**36 * lltv // E18
    return max_borrow * E18 // borrowed


def position_health(w3: Web3, dep: dict, pos: dict) -> dict:
    kind = pos["protocol"]
    account = Web3.to_checksum_address(pos["account"])
    row = {"id": pos["id"], "protocol": kind, "account": account, "holder": pos["holder"]}
    if kind == "aave_v3":
        pool = w3.eth.contract(address=pos["address"], abi=C.aave("Pool").abi)
        coll, debt, _avail, lt, _ltv, hf = pool.functions.getUserAccountData(account).call()
        row.update(market="all reserves", collateral_usd=coll / 1e8, debt_usd=debt / 1e8,
                   health=_ratio(hf), health_raw=str(hf), liquidatable=hf < E18)
    elif kind == "morpho_blue":
        morpho = w3.eth.contract(address=pos["address"], abi=C.third_party("Morpho").abi)
        mid = bytes.fromhex(pos["market"][2:])
        _supply_shares, borrow_shares, collateral = morpho.functions.position(mid, account).call()
        m = morpho.functions.market(mid).call()
        params = morpho.functions.idToMarketParams(mid).call()
        oracle = w3.eth.contract(address=params[2], abi=C.ours("MorphoChainlinkOracle").abi)
        price = oracle.functions.price().call()
        borrowed = morpho_borrowed_assets(borrow_shares, m[2], m[3])
        h = morpho_health_wad(collateral, price, params[4], borrowed)
        row.update(market=pos["market"], collateral=collateral, borrowed=borrowed,
                   health=_ratio(h), health_raw=str(h), liquidatable=h < E18)
    elif kind == "perp":
        perp = w3.eth.contract(address=pos["address"], abi=C.ours("PerpVault").abi)
        args = (account, pos["collateral_token"], pos["index_token"], pos["is_long"])
        size, collateral, avg_price, entry_funding, *_rest = perp.functions.getPosition(*args).call()
        has_profit, delta = perp.functions.getPositionDelta(*args).call() if size else (True, 0)
        state, margin_fees = perp.functions.validateLiquidation(*args, False).call() if size else (0, 0)
        h = perp_health(collateral, size, has_profit, delta, margin_fees,
                        perp.functions.liquidationFeeUsd().call(), perp.functions.maxLeverage().call())
        row.update(market=f"{'long' if pos['is_long'] else 'short'} {pos['index_token']}",
                   size_usd=size / 1e30, collateral_usd=collateral / 1e30, average_price=avg_price / 1e30,
                   liquidation_state=state, health=_ratio(h), health_raw=str(h), liquidatable=state != 0)
    else:
        raise ValueError(f"unknown protocol {kind!r} in the deployment file")
    return row


def seeded_health(w3: Web3, dep: dict) -> list[dict]:
    return [position_health(w3, dep, p) for p in dep.get("positions", [])]
