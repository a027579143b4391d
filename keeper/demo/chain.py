"""The demo's chain: an in-process anvil with the full devnet deployed and seeded (GMX v1 gated, with
its position keeper process), the liquidator funded, 1 s blocks; the crash fed through the Chainlink
feeds; one read per block of every position's health (with the keeper's own reader) and of the feeds."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_typing import HexStr
from web3 import Web3
from web3.types import RPCEndpoint, TxReceipt

from keeper.app.wiring import build_reader
from keeper.chain import contracts as C
from keeper.config import chain_from_deployment
from keeper.devnet.anvil import Anvil
from keeper.devnet.commands import check_toolchain, start_position_keeper
from keeper.devnet.deploy import deploy_devnet
from keeper.devnet.deployer import Deployer
from keeper.devnet.deployment import write_json
from keeper.devnet.uniswap import send_arbitrage, stock_arbitrageur
from keeper.domain import Address, Position
from keeper.errors import TemporaryError
from keeper.protocols.reader import ChainReader

LIQUIDATOR_USDC = 5_000_000


@dataclass
class BlockRecord:
    """What one block looked like: the feeds' prices and each position's health (by position id;
    ``None`` once the position is gone)."""

    block: int
    timestamp: int
    eth: float
    btc: float
    health: dict[str, float | None] = field(default_factory=dict)


def position_id_key(p: dict[str, Any]) -> tuple[str, str, str]:
    """The (protocol, account, market) of a deployment position, as the reader's ``Position`` has it."""
    if p["protocol"] == "aave_v3":
        market = "pool"
    elif p["protocol"] == "morpho_blue":
        market = p["market"].lower()  # a market id (bytes32)
    else:
        market = f"{Address(p['collateral_token'])}:{Address(p['index_token'])}:{'long' if p['is_long'] else 'short'}"
    return p["protocol"], Address(p["account"]), market


def reader_key(p: Position) -> tuple[str, str, str]:
    return p.protocol.value, p.account, p.market


class DemoChain:
    def __init__(self, out: Path, port: int | None = None) -> None:
        self.out = out
        self.port = port
        self.node: Anvil | None = None
        self.w3: Web3 | None = None
        self.dep: dict[str, Any] = {}
        self.reader: ChainReader | None = None
        self.position_keeper: subprocess.Popen[bytes] | None = None  # GMX v1's position keeper (gated mode)

    @property
    def deployment_path(self) -> Path:
        return self.out / "devnet.json"

    def start(self) -> dict[str, Any]:
        """Start anvil, deploy and seed (automine, fast), fund the liquidator, write the deployment."""
        check_toolchain()
        self.node = Anvil(port=self.port, log_path=self.out / "anvil.log").start()
        self.w3 = Web3(Web3.HTTPProvider(self.node.url, request_kwargs={"timeout": 30}))
        dep = deploy_devnet(self.w3)
        dep["rpc_url"] = self.node.url
        self.dep = dep
        usdc = self.w3.eth.contract(address=dep["tokens"]["USDC"]["address"], abi=C.ours("TestERC20").abi)
        Deployer(self.w3, dep["roles"]["admin"]).send(
            usdc.functions.mint(dep["roles"]["liquidator"], LIQUIDATOR_USDC * 10**6))
        write_json(self.deployment_path, dep)
        if dep["perp"]["mode"] == "gated":
            # As on GMX's chains: requests (the keeper's margin top-ups) are executed by a position keeper.
            self.position_keeper = start_position_keeper(self.deployment_path, self.out, detach=False)
        self.reader = build_reader("devnet", chain_from_deployment(self.deployment_path))
        self.ids = {position_id_key(p): p["id"] for p in dep["positions"]}
        self._feeds = {sym: self.w3.eth.contract(address=dep["feeds"][sym]["address"],
                                                 abi=C.third_party("MockV3Aggregator").abi) for sym in ("ETH", "BTC")}
        # An arbitrageur keeps the Uniswap pools at the feeds through the crash (the keeper's
        # deleverage sells in them): stocked now, trading in the block of every price update.
        stock_arbitrageur(Deployer(self.w3, dep["roles"]["admin"]), dep["uniswap_v3"], dep["tokens"],
                          self._prices(2_000.0, 30_000.0), dep["roles"]["lp"])
        return dep

    @staticmethod
    def _prices(eth: float, btc: float) -> dict[str, float]:
        return {"WETH": eth, "WBTC": btc, "USDC": 1.0}

    @property
    def url(self) -> str:
        assert self.node is not None
        return self.node.url

    @property
    def web3(self) -> Web3:
        assert self.w3 is not None, "the demo chain is not started"
        return self.w3

    def interval_mining(self, seconds: int = 1) -> None:
        self.web3.provider.make_request(RPCEndpoint("evm_setIntervalMining"), [seconds])

    def head(self) -> int:
        return self.web3.eth.block_number

    def wait_block(self, after: int, timeout: float = 10.0) -> int:
        """The first head above ``after``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            head = self.head()
            if head > after:
                return head
            time.sleep(0.05)
        raise TemporaryError(f"no new block after {after} within {timeout:.0f} s: is anvil mining?")

    def set_prices(self, eth: float, btc: float) -> None:
        """One ``updateAnswer`` per feed and one arbitrage swap per Uniswap pool, sent without
        waiting: all land in the next block."""
        admin = self.dep["roles"]["admin"]
        for sym, usd in (("ETH", eth), ("BTC", btc)):
            answer = round(usd * 10 ** self.dep["feeds"][sym]["decimals"])
            self._feeds[sym].functions.updateAnswer(answer).transact({"from": admin, "gas": 200_000})
        for pair in self.dep["uniswap_v3"]["pools"]:
            send_arbitrage(self.web3, self.dep["uniswap_v3"], pair, self.dep["tokens"], self._prices(eth, btc),
                           self.dep["roles"]["lp"])

    def read(self, block: int) -> BlockRecord:
        assert self.reader is not None, "the demo chain is not started"
        snap = self.reader.read(block)
        by_name = {r.name: r.price for r in snap.prices.values()}
        rec = BlockRecord(block, snap.timestamp, by_name.get("ETH", float("nan")), by_name.get("BTC", float("nan")))
        rec.health = {pid: None for pid in self.ids.values()}
        for p in snap.positions:
            pid = self.ids.get(reader_key(p))
            if pid is not None and (p.debt_usd > 0 or p.collateral_usd > 0):
                rec.health[pid] = p.health
        return rec

    def receipt(self, tx: str) -> TxReceipt:
        return self.web3.eth.get_transaction_receipt(HexStr(tx))

    def stop(self) -> None:
        if self.reader is not None:
            self.reader.mc.close()
            self.reader = None
        if self.position_keeper is not None:
            self.position_keeper.terminate()
            try:
                self.position_keeper.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.position_keeper.kill()
            self.position_keeper = None
        if self.node is not None:
            self.node.stop()
            self.node = None
