"""Morpho pre-liquidations the keeper accounts for (``keeper.plan.preliq``): the PreLiquidation contracts
created through the configured factory, from its ``CreatePreLiquidation`` events, and, per position,
whether the borrower authorised one on Morpho (``isAuthorized(borrower, preLiquidation)``, read with the
position at every tick by ``MorphoBlueAdapter``).

The events are read in ranges of ``LOG_SPAN`` blocks from ``morpho_blue.preliq_from_block`` on, then
again every ``SCAN_EVERY`` blocks for new ones (a contract is immutable once created, and a borrower
authorises it only after it exists). A failed read keeps what was known and is retried at the next
block: until then a new contract is not counted, and the keeper treats that position as it treats any
Morpho position (its P at the LLTV, Morpho's full incentive), as it did before pre-liquidations."""

from __future__ import annotations

import logging
from typing import Any

from eth_utils.crypto import keccak

from keeper.chain.client import ChainClient
from keeper.domain import WAD, Address, PreLiqTerms
from keeper.errors import KeeperError

log = logging.getLogger("keeper.protocols")

CREATE_PRE_LIQUIDATION = "0x" + keccak(
    text="CreatePreLiquidation(address,bytes32,(uint256,uint256,uint256,uint256,uint256,address))").hex()
SEL_IS_AUTHORIZED = keccak(text="isAuthorized(address,address)")[:4]
SCAN_EVERY = 50  # blocks between reads of new factory events
LOG_SPAN = 50_000  # blocks per eth_getLogs request (providers cap the range)


class PreLiqIndex:
    """The pre-liquidation contracts of one factory, by Morpho market id."""

    def __init__(self, factory: Address, from_block: int = 0) -> None:
        self.factory = factory
        self.by_market: dict[str, list[PreLiqTerms]] = {}
        self._next = from_block  # the first block not read yet
        self._scanned_at: int | None = None

    def refresh(self, client: ChainClient, block: int) -> None:
        """Read the factory's events up to ``block`` (at most every ``SCAN_EVERY`` blocks)."""
        if self._scanned_at is not None and 0 <= block - self._scanned_at < SCAN_EVERY:
            return
        start = self._next
        try:
            while start <= block:
                end = min(block, start + LOG_SPAN - 1)
                logs = client.request("eth_getLogs", [{"address": self.factory, "fromBlock": hex(start),
                                                       "toBlock": hex(end), "topics": [CREATE_PRE_LIQUIDATION]}])
                for entry in logs:
                    self._add(entry)
                start = end + 1
        except KeeperError as e:
            log.warning(f"pre-liquidations: reading the factory's events from block {start} failed ({e}); "
                        "retried at the next block", extra={"event": "preliq_scan_failed", "from_block": start})
            self._next = start
            return
        self._next, self._scanned_at = block + 1, block

    def _add(self, entry: dict[str, Any]) -> None:
        """One ``CreatePreLiquidation`` log: preLiquidation (topic 1); data: id, then the parameters
        (preLltv, preLCF1, preLCF2, preLIF1, preLIF2 at 1e18, oracle)."""
        topics, data = entry.get("topics", []), bytes.fromhex(str(entry.get("data", "0x"))[2:])
        if len(topics) < 2 or len(data) < 7 * 32:
            return
        address = Address("0x" + str(topics[1])[-40:])
        words = [int.from_bytes(data[32 * i:32 * (i + 1)], "big") for i in range(6)]
        market = "0x" + data[:32].hex()
        terms = PreLiqTerms(address, *(w / WAD for w in words[1:6]))
        known = self.by_market.setdefault(market, [])
        if all(t.address != address for t in known):
            known.append(terms)

    def for_market(self, market_id: str) -> list[PreLiqTerms]:
        return self.by_market.get(market_id.lower(), [])
