"""What happened during the demo, gathered from the daemon's JSON log, the liquidator's events file
and the chain (receipts and the vaults' ``KeeperAction`` events)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.logs import DISCARD

from keeper.chain import contracts as C
from keeper.domain import Address

WAD = 10**18
ACTION_KINDS = {0: "top_up", 1: "repay", 2: "withdraw_excess", 3: "rebalance"}


@dataclass(frozen=True)
class KeeperAction:
    block: int
    position: str  # deployment position id
    kind: str
    asset: str
    amount: float
    usd: float  # the planner's USD value of the amount
    tx: str
    gas_used: int
    gas_price: int
    health_before: float | None  # as the vault read it in the same transaction
    health_after: float | None
    why: str = ""
    swap: DeleverageCost | None = None  # a deleverage: what it sold and what that cost


@dataclass(frozen=True)
class DeleverageCost:
    """A deleverage as the vault's ``Deleveraged`` event has it, valued at the Chainlink prices of
    its block: ``cost_usd`` is what was sold less what the sale brought, plus the flash fee (the pool's
    fee and price impact, and any slippage against the feed)."""

    sold_usd: float
    bought_usd: float
    repaid_usd: float
    flash_fee_usd: float
    # What a liquidation would have cost the position just before (Aave: its close factor of 50 % of
    # the debt times the collateral's liquidation bonus); None when not known.
    penalty_at_stake_usd: float | None = None

    @property
    def cost_usd(self) -> float:
        return self.sold_usd - self.bought_usd + self.flash_fee_usd

    @property
    def slippage(self) -> float:
        """The cost as a fraction of the value sold."""
        return self.cost_usd / self.sold_usd if self.sold_usd > 0 else 0.0


@dataclass(frozen=True)
class Liquidation:
    block: int
    position: str
    tx: str
    gas_used: int
    gas_price: int
    repaid_usd: float
    seized_usd: float
    detail: dict[str, Any] = field(default_factory=dict)


def json_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a log file, skipping anything else (a traceback, a partial last line)."""
    if not path.exists():
        return
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def position_ids(dep: dict[str, Any]) -> Callable[[str], str | None]:
    """Map a keeper position key (``chain:protocol:address:account:market``) to a deployment id."""
    from keeper.demo.chain import position_id_key

    ids = {position_id_key(p): p["id"] for p in dep["positions"]}

    def lookup(key: str) -> str | None:
        parts = key.split(":")
        if len(parts) < 5:
            return None
        return ids.get((parts[1], parts[3], ":".join(parts[4:])))  # a position key: lower case already

    return lookup


def _health(raw: int) -> float | None:
    return None if raw >= 2**255 else raw / WAD


def keeper_actions(log: Path, dep: dict[str, Any], receipt: Callable[[str], Any], w3: Web3) -> list[KeeperAction]:
    """Every action the daemon logged as sent ("acted"), with its receipt's gas and the vault's
    ``KeeperAction`` event (the on-chain health before and after). A margin top-up on gated GMX v1
    is a PositionRouter request (``PerpIncreaseRequested``: the health before; the margin lands
    when GMX's position keeper executes it, so there is no "after" in that transaction)."""
    lookup = position_ids(dep)
    vault_abi = C.ours("KeeperVault").abi
    out = []
    for rec in json_lines(log):
        if rec.get("msg") != "acted" or not rec.get("tx"):
            continue
        r = receipt(rec["tx"])
        before = after = None
        swap = None
        for v in dep["keeper_vaults"].values():
            vault = w3.eth.contract(address=v["address"], abi=vault_abi)
            for ev in vault.events.KeeperAction().process_receipt(r, errors=DISCARD):
                before, after = _health(ev.args.healthBefore), _health(ev.args.healthAfter)
            for ev in vault.events.PerpIncreaseRequested().process_receipt(r, errors=DISCARD):
                before = _health(ev.args.healthBefore)
            for ev in vault.events.Deleveraged().process_receipt(r, errors=DISCARD):
                before, after = _health(ev.args.healthBefore), _health(ev.args.healthAfter)
                swap = _deleverage_cost(w3, dep, ev.args, r)
        out.append(KeeperAction(
            block=r["blockNumber"], position=lookup(rec.get("position", "")) or rec.get("position", "?"),
            kind=rec.get("action", "?"), asset=rec.get("asset", "?"), amount=float(rec.get("amount") or 0),
            usd=float(rec.get("usd") or 0), tx=rec["tx"], gas_used=r["gasUsed"],
            gas_price=r.get("effectiveGasPrice", 0), health_before=before, health_after=after,
            why=str(rec.get("why") or ""), swap=swap))
    return out


def _deleverage_cost(w3: Web3, dep: dict[str, Any], args: Any, receipt: Any) -> DeleverageCost:
    """A ``Deleveraged`` event valued at the feed prices its transaction saw: a feed updated earlier
    in the same block counts, one updated later in it does not (then the previous block's answer)."""
    aggregator = C.third_party("MockV3Aggregator").abi
    tokens = {Address(t["address"]): t for t in dep["tokens"].values()}
    block = receipt["blockNumber"]
    txs: list[Any] = list(w3.eth.get_block(block, full_transactions=True)["transactions"])
    earlier = {Address(tx["to"]) for tx in txs if tx["transactionIndex"] < receipt["transactionIndex"] and tx["to"]}

    def usd(token: str, raw: int) -> float:
        t = tokens[Address(token)]
        feed = dep["feeds"][t["feed_symbol"]]
        seen = block if Address(feed["address"]) in earlier else block - 1
        answer = w3.eth.contract(address=feed["address"], abi=aggregator).functions.latestRoundData().call(
            block_identifier=seen)[1]
        return float(raw / 10 ** t["decimals"] * answer / 10 ** feed["decimals"])

    penalty = None
    if Address(args.protocol) == Address(dep["aave_v3"]["pool"]):
        version = dep["aave_v3"].get("version")
        pool = w3.eth.contract(address=args.protocol, abi=C.aave_for(version, "Pool").abi)
        provider = w3.eth.contract(address=dep["aave_v3"]["data_provider"],
                                   abi=C.aave_for(version, "AaveProtocolDataProvider").abi)
        debt_base = pool.functions.getUserAccountData(args.account).call(block_identifier=block - 1)[1]
        bonus_bps = provider.functions.getReserveConfigurationData(args.collateral).call()[3]
        penalty = debt_base / 1e8 * 0.5 * max(0, bonus_bps - 10_000) / 10_000
    return DeleverageCost(usd(args.collateral, args.sold), usd(args.debtAsset, args.bought),
                          usd(args.debtAsset, args.repaid), usd(args.debtAsset, args.flashFee), penalty)


def keeper_problems(log: Path) -> list[str]:
    """The daemon's errors and alerts (refused actions, failed ticks, halts), for the report."""
    out = []
    for rec in json_lines(log):
        if rec.get("level") in ("ERROR", "CRITICAL") or rec.get("event") == "alert":
            msg, err = str(rec.get("msg", "")), str(rec.get("error") or "")
            out.append(msg if not err or err in msg else f"{msg}: {err}")
    return out


def keeper_started(log: Path) -> bool:
    return any(rec.get("event") == "startup" for rec in json_lines(log))


def liquidations(events: Path) -> list[Liquidation]:
    out = []
    for rec in json_lines(events):
        if rec.get("event") != "liquidation":
            continue
        keys = ("repaid", "seized", "state", "size_usd", "collateral_lost_usd", "bad_debt")
        detail: dict[str, Any] = {k: rec[k] for k in keys if k in rec}
        out.append(Liquidation(rec["block"], rec["position"], rec["tx"], rec["gas_used"], rec.get("gas_price", 0),
                               float(rec.get("repaid_usd", 0.0)), float(rec.get("seized_usd", 0.0)), detail))
    return out


def preliquidations(events: Path) -> list[Liquidation]:
    """The liquidator's pre-liquidations (through a position's Morpho PreLiquidation contract)."""
    return [Liquidation(rec["block"], rec["position"], rec["tx"], rec["gas_used"], rec.get("gas_price", 0),
                        float(rec.get("repaid_usd", 0.0)), float(rec.get("seized_usd", 0.0)))
            for rec in json_lines(events) if rec.get("event") == "preliquidation"]


def liquidator_attempts(events: Path) -> int:
    return sum(1 for rec in json_lines(events) if rec.get("event") == "attempt")


def liquidator_ready(events: Path) -> bool:
    return any(rec.get("event") == "ready" for rec in json_lines(events))


def finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


@dataclass(frozen=True)
class ChainLiquidation:
    """A liquidation event as the chain has it (whoever sent it)."""

    block: int
    tx: str
    position: str
    event: str  # LiquidationCall | Liquidate | LiquidatePosition | ClosePosition (perp state 2)


def chain_liquidations(w3: Web3, dep: dict[str, Any], first: int, last: int) -> list[ChainLiquidation]:
    """Every liquidation of a deployment position in blocks ``first..last``, from the protocols' own
    events: Aave ``LiquidationCall``, Morpho ``Liquidate``, GMX v1 ``LiquidatePosition``, and a perp
    closed by a ``liquidatePosition`` call in state 2 (a ``DecreasePosition`` in a transaction to the
    GMX Vault or its PositionManager whose input is ``liquidatePosition``)."""
    from keeper.demo.liquidator import MORPHO_LIQUIDATE_TOPIC

    ids: dict[tuple[Any, ...], str] = {}
    for p in dep["positions"]:
        acct = Address(p["account"])
        if p["protocol"] == "aave_v3":
            ids[("aave", acct)] = p["id"]
        elif p["protocol"] == "morpho_blue":
            ids[("morpho", acct, p["market"].lower())] = p["id"]  # a market id (bytes32)
        else:
            ids[("perp", acct, Address(p["collateral_token"]), Address(p["index_token"]), p["is_long"])] = p["id"]
    span = {"from_block": first, "to_block": last}
    out: list[ChainLiquidation] = []
    pool = w3.eth.contract(address=dep["aave_v3"]["pool"], abi=C.aave_for(dep["aave_v3"].get("version"), "Pool").abi)
    for ev in pool.events.LiquidationCall().get_logs(**span):
        if (pid := ids.get(("aave", Address(ev.args.user)))) is not None:
            out.append(ChainLiquidation(ev.blockNumber, "0x" + ev.transactionHash.hex(), pid, "LiquidationCall"))
    morpho = dep["morpho_blue"]["morpho"]
    for log in w3.eth.get_logs({"address": morpho, "fromBlock": first, "toBlock": last,
                                "topics": ["0x" + MORPHO_LIQUIDATE_TOPIC.hex()]}):
        market, borrower = "0x" + log["topics"][1].hex(), "0x" + log["topics"][3].hex()[-40:]
        if (pid := ids.get(("morpho", Address(borrower), market.lower()))) is not None:
            out.append(ChainLiquidation(log["blockNumber"], "0x" + log["transactionHash"].hex(), pid, "Liquidate"))
    perp = w3.eth.contract(address=dep["perp"]["vault"], abi=C.gmx("Vault").abi)
    liquidating = {Address(perp.address), Address(dep["perp"].get("position_manager") or perp.address)}
    for ev in perp.events.LiquidatePosition().get_logs(**span):
        a = ev.args
        key = ("perp", Address(a.account), Address(a.collateralToken), Address(a.indexToken), a.isLong)
        if (pid := ids.get(key)) is not None:
            out.append(ChainLiquidation(ev.blockNumber, "0x" + ev.transactionHash.hex(), pid, "LiquidatePosition"))
    selector = Web3.keccak(text=perp.get_function_by_name("liquidatePosition").signature)[:4]
    for ev in perp.events.DecreasePosition().get_logs(**span):
        tx = w3.eth.get_transaction(ev.transactionHash)
        data = bytes(tx["input"])
        if tx["to"] and Address(tx["to"]) in liquidating and data[:4] == selector:
            a = ev.args
            key = ("perp", Address(a.account), Address(a.collateralToken), Address(a.indexToken), a.isLong)
            if (pid := ids.get(key)) is not None:
                out.append(ChainLiquidation(ev.blockNumber, "0x" + ev.transactionHash.hex(), pid, "ClosePosition"))
    return sorted(out, key=lambda c: (c.block, c.tx))
