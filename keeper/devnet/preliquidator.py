"""The devnet's pre-liquidation bot: Morpho pre-liquidations run by a third party, as on a live chain.

A borrower who opted in to Morpho's pre-liquidation (a PreLiquidation contract made by the factory,
authorised on the borrower's Morpho position) can be partly liquidated by anyone, at the contract's
small incentive, while the position's LTV is inside the contract's band (above its pre-LLTV, not past
the market's LLTV). This bot finds every PreLiquidation the devnet's factory made (its
``CreatePreLiquidation`` events) and every borrower who authorised one (Morpho's ``SetAuthorization``
events, checked with ``isAuthorized``), and at every new block pre-liquidates each one inside its band
as much as the close factor there allows (99 % of it, for rounding), with the contract's own
arithmetic. It repays in the market's loan token, minted to itself (a devnet's test token).

Run it next to a devnet (``keeper devnet up`` starts it)::

    python -m keeper.devnet.preliquidator --deployment .keeper/devnet.json

Devnet only: it sends from the deployment's unlocked ``liquidator`` account.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD

from keeper.chain import contracts as C
from keeper.devnet.bot_loop import every_block
from keeper.devnet.deployment import load_deployment
from keeper.domain import Address
from keeper.errors import KeeperError

WAD = 10**18
ORACLE_SCALE = 10**36
MAX = 2**256 - 1
# Morpho's SetAuthorization(caller, authorizer, authorized, newIsAuthorized): the three addresses indexed
SET_AUTHORIZATION = Web3.keccak(text="SetAuthorization(address,address,address,bool)")


def _mul_div_up(x: int, y: int, d: int) -> int:
    return (x * y + d - 1) // d


@dataclass(frozen=True)
class PreLiq:
    """A PreLiquidation contract: its market, (preLltv, preLCF1, preLCF2) and oracle."""

    address: Address
    market: str  # the Morpho market id, 0x-hex
    params: tuple[int, int, int]
    oracle: Address


class PreLiquidator:
    def __init__(self, w3: Web3, dep: dict[str, Any], sender: str) -> None:
        self.w3, self.dep = w3, dep
        self.me = Web3.to_checksum_address(sender)
        self.morpho = w3.eth.contract(address=dep["morpho_blue"]["morpho"], abi=C.third_party("Morpho").abi)
        self.factory = w3.eth.contract(address=dep["morpho_blue"]["preliq_factory"],
                                       abi=C.preliq("PreLiquidationFactory").abi)
        self.markets = {m["id"].lower(): m for m in dep["morpho_blue"]["markets"].values()}
        self.known: dict[Address, PreLiq] = {}
        self.borrowers: dict[Address, set[Address]] = {}
        self.scanned = int(dep["morpho_blue"].get("preliq_factory_block", 0)) - 1  # events from the factory on
        self.approved: set[Address] = set()
        self.done = 0

    # --- discovery ------------------------------------------------------------------------------
    def discover(self, block: int) -> None:
        """New PreLiquidation contracts and authorisations, from the events up to ``block``."""
        if block <= self.scanned:
            return
        span = {"from_block": max(0, self.scanned + 1), "to_block": block}
        for ev in self.factory.events.CreatePreLiquidation().get_logs(**span):
            p = ev.args.preLiquidationParams  # a struct: decoded by field name
            pre = Address(ev.args.preLiquidation)
            self.known[pre] = PreLiq(pre, "0x" + bytes(ev.args.id).hex(), (p["preLltv"], p["preLCF1"], p["preLCF2"]),
                                     Address(p["preLiquidationOracle"]))
        # Morpho Blue (solc 0.8.19) emits through a library, so its ABI has no events: the topic by hand.
        for log in self.w3.eth.get_logs({"address": self.morpho.address, "fromBlock": span["from_block"],
                                         "toBlock": block, "topics": ["0x" + SET_AUTHORIZATION.hex()]}):
            if int.from_bytes(log["data"][:32], "big"):  # newIsAuthorized
                authorizer, authorized = ("0x" + bytes(t).hex()[-40:] for t in log["topics"][2:4])
                self.borrowers.setdefault(Address(authorized), set()).add(Address(authorizer))
        self.scanned = block

    # --- one pre-liquidation, with the contract's own arithmetic -----------------------------------
    def call_for(self, pre: PreLiq, borrower: str, block: int) -> ContractFunction | None:
        """The ``preLiquidate`` call for ``borrower`` when its LTV is inside ``pre``'s band at ``block``
        (99 % of what the close factor allows there), else None."""
        m = self.markets.get(pre.market.lower())
        if m is None:
            return None
        pre_lltv, lcf1, lcf2 = pre.params
        mid = bytes.fromhex(pre.market[2:])
        who = Web3.to_checksum_address(borrower)
        _supply, shares, collateral = self.morpho.functions.position(mid, who).call(block_identifier=block)
        if shares == 0 or collateral == 0:
            return None
        mk = self.morpho.functions.market(mid).call(block_identifier=block)
        borrowed = _mul_div_up(shares, mk[2] + 1, mk[3] + 10**6)  # Morpho's virtual shares, rounded up
        oracle = self.w3.eth.contract(address=Web3.to_checksum_address(pre.oracle),
                                      abi=C.ours("MorphoChainlinkOracle").abi)
        quoted = collateral * oracle.functions.price().call(block_identifier=block) // ORACLE_SCALE
        lltv = m["lltv"]
        if not quoted * pre_lltv // WAD < borrowed <= quoted * lltv // WAD:
            return None
        ltv = _mul_div_up(borrowed, WAD, quoted)
        lcf = (ltv - pre_lltv) * WAD // (lltv - pre_lltv) * (lcf2 - lcf1) // WAD + lcf1
        contract = self.w3.eth.contract(address=Web3.to_checksum_address(pre.address),
                                        abi=C.preliq("PreLiquidation").abi)
        fn: ContractFunction = contract.functions.preLiquidate(who, 0, shares * lcf // WAD * 99 // 100, b"")
        return fn

    def eligible(self, block: int) -> list[tuple[PreLiq, Address, ContractFunction]]:
        """Every (contract, borrower) in its band at ``block``, with the call that pre-liquidates it."""
        self.discover(block)
        out = []
        for pre in self.known.values():
            for borrower in sorted(self.borrowers.get(pre.address, ())):
                authorised = self.morpho.functions.isAuthorized(
                    Web3.to_checksum_address(borrower), Web3.to_checksum_address(pre.address)).call(
                    block_identifier=block)
                if authorised and (fn := self.call_for(pre, borrower, block)) is not None:
                    out.append((pre, borrower, fn))
        return out

    def stock(self, pre: PreLiq) -> None:
        """Loan tokens to repay with (minted: the devnet's test token) and the contract's allowance."""
        loan = self.w3.eth.contract(address=self.markets[pre.market.lower()]["loan_token"],
                                    abi=C.ours("TestERC20").abi)
        if loan.functions.balanceOf(self.me).call() < 10**12:
            self.w3.eth.wait_for_transaction_receipt(loan.functions.mint(self.me, 10**15).transact({"from": self.me}))
        if pre.address not in self.approved:
            self.w3.eth.wait_for_transaction_receipt(
                loan.functions.approve(Web3.to_checksum_address(pre.address), MAX).transact({"from": self.me}))
            self.approved.add(pre.address)

    def send(self, pre: PreLiq, borrower: Address, fn: ContractFunction, block: int) -> dict[str, Any]:
        """One pre-liquidation (``fn`` from :meth:`eligible`), mined: what it did. A call the node refuses
        raises web3's error."""
        self.stock(pre)
        receipt = self.w3.eth.wait_for_transaction_receipt(fn.transact({"from": self.me}), timeout=30)
        repaid = seized = 0
        contract = self.w3.eth.contract(address=Web3.to_checksum_address(pre.address),
                                        abi=C.preliq("PreLiquidation").abi)
        for ev in contract.events.PreLiquidate().process_receipt(receipt, errors=DISCARD):
            repaid, seized = ev.args.repaidAssets, ev.args.seizedAssets
        self.done += receipt["status"] == 1
        return {"block": receipt["blockNumber"], "seen_at_block": block, "borrower": borrower,
                "pre_liquidation": pre.address, "market": pre.market, "ok": receipt["status"] == 1,
                "tx": "0x" + bytes(receipt["transactionHash"]).hex(), "gas_used": receipt["gasUsed"],
                "gas_price": receipt.get("effectiveGasPrice", 0), "repaid": repaid, "seized": seized}

    def step(self, block: int) -> list[dict[str, Any]]:
        """Pre-liquidate everything eligible at ``block``; what each one did."""
        return [self.send(pre, borrower, fn, block) for pre, borrower, fn in self.eligible(block)]

    def run(self, stop: threading.Event, poll: float = 0.1) -> None:
        """Step once per new block until ``stop`` is set (``bot_loop.every_block``)."""

        def step(block: int) -> None:
            for done in self.step(block):
                print(f"pre-liquidated {done['borrower']} through {done['pre_liquidation']} in block "
                      f"{done['block']}: repaid {done['repaid']}, seized {done['seized']}", flush=True)

        every_block(self.w3, stop, step, "pre-liquidator", poll)


def start_thread(w3: Web3, dep: dict[str, Any]) -> tuple[threading.Thread, threading.Event]:
    """Run the pre-liquidation bot for a deployment in a daemon thread (from its liquidator account)."""
    stop = threading.Event()
    bot = PreLiquidator(w3, dep, dep["roles"]["liquidator"])
    t = threading.Thread(target=bot.run, args=(stop,), daemon=True, name="pre-liquidator")
    t.start()
    return t, stop


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m keeper.devnet.preliquidator", description=__doc__.split("\n\n")[0])
    ap.add_argument("--deployment", type=Path, required=True, help="the devnet deployment file")
    args = ap.parse_args(argv)
    try:
        dep = load_deployment(args.deployment)
        w3 = Web3(Web3.HTTPProvider(dep["rpc_url"], request_kwargs={"timeout": 30}))
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        PreLiquidator(w3, dep, dep["roles"]["liquidator"]).run(stop)
        return 0
    except KeyError as e:
        print(f"pre-liquidator: error: the deployment has no {e}", file=sys.stderr)
        return 2
    except KeeperError as e:
        print(f"pre-liquidator: error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
