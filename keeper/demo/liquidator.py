"""A simple third-party liquidator for the devnet, run as its own process:

    python -m keeper.demo.liquidator --rpc URL --deployment PATH --out events.jsonl

At every new block it checks every position of the deployment with the protocols' own views
(Aave ``getUserAccountData``, Morpho ``position``/``market``/oracle ``price``, GMX v1's own
``liquidatePosition`` in ``eth_call``) and liquidates what it can with the protocols' own calls from
the deployment's liquidator account: Aave ``liquidationCall`` (the largest collateral, USDC debt, as
much as the close factor allows), Morpho ``liquidate`` (the whole debt, or all the collateral when
that is not enough), GMX v1 ``liquidatePosition`` (through the PositionManager, as a registered
liquidator, on a gated deployment whose liquidations are private; on the Vault itself otherwise). It
repays in USDC, which the demo mints to it. Positions that opted in to Morpho's pre-liquidation are
also pre-liquidated through their PreLiquidation contract whenever their LTV is inside its band, as
any third party may (``keeper.devnet.preliquidator``: contracts and authorisations found from their
events, the contract's own arithmetic).

One JSON line per event in ``--out``: ``ready``, ``attempt`` (a liquidation refused by the
protocol, with the reason), ``liquidation`` and ``preliquidation`` (block, position id, tx hash, gas
used, what was repaid and seized, in token units and USD) and ``stopped``. SIGTERM or SIGINT stop it after the current
block. Devnet only: it sends from an unlocked anvil account.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError
from web3.logs import DISCARD

from keeper.chain import contracts as C
from keeper.chain.revert import decode, revert_data
from keeper.devnet.preliquidator import PreLiquidator
from keeper.domain import Address
from keeper.errors import ConfigError, KeeperError, TemporaryError

MAX = 2**256 - 1
WAD = 10**18
ORACLE_SCALE = 10**36
USD30 = 10**30
MORPHO_LIQUIDATE_TOPIC = Web3.keccak(text="Liquidate(bytes32,address,address,uint256,uint256,uint256,uint256,uint256)")


@dataclass(frozen=True)
class Candidate:
    """A position the views say is liquidatable at ``block``."""

    position: dict[str, Any]
    block: int
    why: str


def _morpho_params(m: dict[str, Any]) -> tuple[Any, ...]:
    return (m["loan_token"], m["collateral_token"], m["oracle"], m["irm"], m["lltv"])


def _mul_div_up(x: int, y: int, d: int) -> int:
    return (x * y + d - 1) // d


class Liquidator:
    def __init__(self, w3: Web3, dep: dict[str, Any], out: Path) -> None:
        self.w3, self.dep, self.out = w3, dep, out
        self.me = Web3.to_checksum_address(dep["roles"]["liquidator"])
        version = dep["aave_v3"].get("version")  # "3.7", "3.0" (None: a file from before 3.7)
        self.pool = w3.eth.contract(address=dep["aave_v3"]["pool"], abi=C.aave_for(version, "Pool").abi)
        self.data = w3.eth.contract(address=dep["aave_v3"]["data_provider"],
                                    abi=C.aave_for(version, "AaveProtocolDataProvider").abi)
        self.morpho = w3.eth.contract(address=dep["morpho_blue"]["morpho"], abi=C.third_party("Morpho").abi)
        self.perp = w3.eth.contract(address=dep["perp"]["vault"], abi=C.gmx("Vault").abi)
        # GMX v1 gated (production): liquidations are private, through the PositionManager, which
        # runs them inside the Timelock's enableLeverage (at the execution margin fee).
        gated = dep["perp"].get("mode") == "gated"
        self.perp_liquidator = (w3.eth.contract(address=dep["perp"]["position_manager"],
                                                abi=C.gmx("PositionManager").abi)
                                if gated else self.perp)
        self.erc20 = C.ours("TestERC20").abi
        # Aave v3.7's custom errors (its Errors library) are decoded by keeper.chain.revert itself.
        self.error_abis = [self.pool.abi, self.perp.abi]
        self.feed_abi = C.third_party("MockV3Aggregator").abi
        self.tokens = {Address(t["address"]): (sym, t) for sym, t in dep["tokens"].items()}
        self.markets = {m["id"].lower(): m for m in dep["morpho_blue"]["markets"].values()}  # by market id (bytes32)
        self.pre = PreLiquidator(w3, dep, self.me) if dep["morpho_blue"].get("preliq_factory") else None
        self.morpho_ids = {(Address(p["account"]), p["market"].lower()): p["id"] for p in dep["positions"]
                           if p["protocol"] == "morpho_blue"}
        self.stop = threading.Event()
        self.liquidations = 0
        self.preliquidations = 0
        self.attempts = 0

    # --- output -----------------------------------------------------------------------------
    def emit(self, event: str, **fields: Any) -> None:
        with self.out.open("a") as f:
            f.write(json.dumps({"event": event, "time": round(time.time(), 3), **fields}) + "\n")

    def token(self, address: str) -> Contract:
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=self.erc20)

    def usd(self, token: str, raw: int, block: int) -> float:
        _sym, t = self.tokens[Address(token)]
        feed = self.w3.eth.contract(address=t["feed"], abi=self.feed_abi)
        answer = feed.functions.latestRoundData().call(block_identifier=block)[1]
        value: float = raw / 10 ** t["decimals"] * answer / 10 ** self.dep["feeds"][t["feed_symbol"]]["decimals"]
        return value

    # --- set-up -----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Approve the protocols to pull the liquidator's USDC (it repays debt in USDC)."""
        usdc = self.token(self.dep["tokens"]["USDC"]["address"])
        for spender in (self.pool.address, self.morpho.address):
            if usdc.functions.allowance(self.me, spender).call() < MAX // 2:
                tx = usdc.functions.approve(spender, MAX).transact({"from": self.me})
                self.w3.eth.wait_for_transaction_receipt(tx, timeout=30)
        balance = usdc.functions.balanceOf(self.me).call()
        self.emit("ready", block=self.w3.eth.block_number, account=self.me, usdc=balance / 10**6,
                  positions=[p["id"] for p in self.dep["positions"]])

    # --- checks, with the protocols' own views ------------------------------------------------
    def check(self, p: dict[str, Any], block: int) -> Candidate | None:
        kind = p["protocol"]
        account = Web3.to_checksum_address(p["account"])
        if kind == "aave_v3":
            data = self.pool.functions.getUserAccountData(account).call(block_identifier=block)
            debt, hf = data[1], data[5]
            return Candidate(p, block, f"health factor {hf / WAD:.4f}") if debt > 0 and hf < WAD else None
        if kind == "morpho_blue":
            m = self.markets[p["market"].lower()]
            mid = bytes.fromhex(m["id"][2:])
            _supply, shares, collateral = self.morpho.functions.position(mid, account).call(block_identifier=block)
            if shares == 0:
                return None
            mk = self.morpho.functions.market(mid).call(block_identifier=block)
            borrowed = _mul_div_up(shares, mk[2] + 1, mk[3] + 10**6)  # Morpho's virtual shares, rounded up
            oracle = self.w3.eth.contract(address=m["oracle"], abi=C.ours("MorphoChainlinkOracle").abi)
            price = oracle.functions.price().call(block_identifier=block)
            max_borrow = collateral * price // ORACLE_SCALE * m["lltv"] // WAD
            if max_borrow < borrowed:
                return Candidate(p, block, f"health {max_borrow / borrowed:.4f}")
            return None
        if kind == "perp":
            args = (account, p["collateral_token"], p["index_token"], p["is_long"])
            if self.perp.functions.getPosition(*args).call(block_identifier=block)[0] == 0:
                return None
            # GMX's own rule at GMX's own liquidation fee: the liquidation itself, simulated.
            try:
                self._perp_call(p, account).call({"from": self.me}, block_identifier=block)
            except (ContractLogicError, ContractCustomError):
                return None
            return Candidate(p, block, "liquidatePosition succeeds")
        return None

    # --- liquidation calls --------------------------------------------------------------------
    def _aave_call(self, account: str, block: int) -> ContractFunction:
        best: tuple[float, str] | None = None
        for addr in self.tokens:
            a = Web3.to_checksum_address(addr)
            r = self.data.functions.getUserReserveData(a, account).call(block_identifier=block)
            if r[0] > 0 and r[8]:
                value = self.usd(addr, r[0], block)
                if best is None or value > best[0]:
                    best = (value, a)
        if best is None:
            raise ConfigError("no collateral left to seize")
        usdc = Web3.to_checksum_address(self.dep["tokens"]["USDC"]["address"])
        fn: ContractFunction = self.pool.functions.liquidationCall(best[1], usdc, account, MAX, False)
        return fn

    def _morpho_call(self, p: dict[str, Any], account: str, block: int) -> ContractFunction:
        m = self.markets[p["market"].lower()]
        params = _morpho_params(m)
        mid = bytes.fromhex(m["id"][2:])
        _supply, shares, collateral = self.morpho.functions.position(mid, account).call(block_identifier=block)
        whole_debt: ContractFunction = self.morpho.functions.liquidate(params, account, 0, shares, b"")
        try:
            whole_debt.call({"from": self.me})
            return whole_debt
        except (ContractLogicError, ContractCustomError):
            # Repaying everything would seize more collateral than there is: seize it all instead.
            all_collateral: ContractFunction = self.morpho.functions.liquidate(params, account, collateral, 0, b"")
            return all_collateral

    def _perp_call(self, p: dict[str, Any], account: str) -> ContractFunction:
        fn: ContractFunction = self.perp_liquidator.functions.liquidatePosition(
            account, p["collateral_token"], p["index_token"], p["is_long"], self.me)
        return fn

    def send(self, c: Candidate) -> HexBytes | None:
        p = c.position
        account = Web3.to_checksum_address(p["account"])
        try:
            if p["protocol"] == "aave_v3":
                fn = self._aave_call(account, c.block)
            elif p["protocol"] == "morpho_blue":
                fn = self._morpho_call(p, account, c.block)
            else:
                fn = self._perp_call(p, account)
            return fn.transact({"from": self.me})
        except (ContractLogicError, ContractCustomError, ConfigError, Web3RPCError) as e:
            self.attempts += 1
            error = str(e)[:200]
            if isinstance(e, (ContractLogicError, ContractCustomError)):
                error = f"{decode(revert_data(e), self.error_abis)}: {error}"
            self.emit("attempt", block=c.block, position=p["id"], ok=False, why=c.why, error=error)
            return None

    # --- what a receipt says ------------------------------------------------------------------
    def describe(self, p: dict[str, Any], receipt: Any) -> dict[str, Any]:
        block = receipt["blockNumber"]
        out: dict[str, Any] = {"repaid": {}, "seized": {}, "repaid_usd": 0.0, "seized_usd": 0.0}

        def add(side: str, token: str, raw: int) -> None:
            sym, t = self.tokens[Address(token)]
            out[side][sym] = out[side].get(sym, 0.0) + raw / 10 ** t["decimals"]
            out[f"{side}_usd"] += self.usd(token, raw, block)

        if p["protocol"] == "aave_v3":
            for ev in self.pool.events.LiquidationCall().process_receipt(receipt, errors=DISCARD):
                add("repaid", ev.args.debtAsset, ev.args.debtToCover)
                add("seized", ev.args.collateralAsset, ev.args.liquidatedCollateralAmount)
        elif p["protocol"] == "morpho_blue":
            m = self.markets[p["market"].lower()]
            for log in receipt["logs"]:
                if (Address(log["address"]) == Address(self.morpho.address)
                        and log["topics"][0] == MORPHO_LIQUIDATE_TOPIC):
                    words = [int.from_bytes(log["data"][i:i + 32], "big") for i in range(0, len(log["data"]), 32)]
                    add("repaid", m["loan_token"], words[0])
                    add("seized", m["collateral_token"], words[2])
                    out["bad_debt"] = words[3] / 10 ** self.tokens[Address(m["loan_token"])][1]["decimals"]
        else:
            events = self.perp.events.LiquidatePosition().process_receipt(receipt, errors=DISCARD)
            if events:
                ev = events[0]
                out["state"] = 1
                out["size_usd"] = ev.args.size / USD30
                out["collateral_lost_usd"] = ev.args.collateral / USD30
            else:  # state 2: closed through the decrease path, the rest of the collateral goes back
                out["state"] = 2
                closed = self.perp.events.ClosePosition().process_receipt(receipt, errors=DISCARD)
                if closed:
                    out["size_usd"] = closed[0].args.size / USD30
            out["seized_usd"] = out.get("collateral_lost_usd", 0.0)
        return out

    # --- pre-liquidations -----------------------------------------------------------------------
    def pre_liquidate(self, block: int) -> None:
        if self.pre is None:
            return
        for pre, borrower, fn in self.pre.eligible(block):
            pid = self.morpho_ids.get((Address(borrower), pre.market.lower()), borrower)
            try:
                done = self.pre.send(pre, borrower, fn, block)
            except (ContractLogicError, ContractCustomError, Web3RPCError) as e:
                self.attempts += 1
                self.emit("attempt", block=block, position=pid, ok=False, why="pre-liquidation band",
                          error=str(e)[:200])
                continue
            fields = {"block": done["block"], "seen_at_block": block, "position": pid, "account": borrower,
                      "protocol": "morpho_blue", "tx": done["tx"], "gas_used": done["gas_used"],
                      "gas_price": done["gas_price"]}
            if not done["ok"]:
                self.attempts += 1
                self.emit("attempt", ok=False, error="pre-liquidation reverted on chain", **fields)
                continue
            m = self.markets[pre.market.lower()]
            self.preliquidations += 1
            self.emit("preliquidation", **fields, repaid_usd=self.usd(m["loan_token"], done["repaid"], done["block"]),
                      seized_usd=self.usd(m["collateral_token"], done["seized"], done["block"]))

    # --- the loop -----------------------------------------------------------------------------
    def on_block(self, block: int) -> None:
        self.pre_liquidate(block)
        candidates = [c for p in self.dep["positions"] if (c := self.check(p, block)) is not None]
        sent = [(c, h) for c in candidates if (h := self.send(c)) is not None]
        for c, h in sent:
            receipt = self.w3.eth.wait_for_transaction_receipt(h, timeout=30)
            fields = {"block": receipt["blockNumber"], "seen_at_block": c.block, "position": c.position["id"],
                      "account": c.position["account"], "protocol": c.position["protocol"], "tx": "0x" + h.hex(),
                      "gas_used": receipt["gasUsed"], "gas_price": receipt.get("effectiveGasPrice", 0), "why": c.why}
            if receipt["status"] != 1:
                self.attempts += 1
                self.emit("attempt", ok=False, error="reverted on chain", **fields)
                continue
            self.liquidations += 1
            self.emit("liquidation", **fields, **self.describe(c.position, receipt))

    def run(self, poll: float = 0.2) -> None:
        self.prepare()
        last = self.w3.eth.block_number
        while not self.stop.is_set():
            head = self.w3.eth.block_number
            if head > last:
                self.on_block(head)
                last = head
            else:
                self.stop.wait(poll)
        self.emit("stopped", block=last, liquidations=self.liquidations, preliquidations=self.preliquidations,
                  attempts=self.attempts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m keeper.demo.liquidator", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rpc", required=True, help="the devnet's JSON-RPC URL")
    ap.add_argument("--deployment", type=Path, required=True, help="the devnet deployment file (devnet.json)")
    ap.add_argument("--out", type=Path, required=True, help="JSON lines file of events (appended to)")
    ap.add_argument("--poll", type=float, default=0.2, help="seconds between head polls")
    args = ap.parse_args(argv)
    try:
        try:
            dep = json.loads(args.deployment.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read the deployment file {args.deployment}: {e}") from e
        w3 = Web3(Web3.HTTPProvider(args.rpc, request_kwargs={"timeout": 30}))
        if not w3.is_connected():
            raise TemporaryError(f"the devnet RPC at {args.rpc} does not answer")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        liq = Liquidator(w3, dep, args.out)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: liq.stop.set())
        liq.run(args.poll)
        return 0
    except KeeperError as e:
        print(f"liquidator: error: {e}", file=sys.stderr)
        return e.exit_code
    except (OSError, Web3RPCError) as e:
        print(f"liquidator: error: the devnet stopped answering: {e}", file=sys.stderr)
        return TemporaryError.exit_code


if __name__ == "__main__":
    sys.exit(main())
