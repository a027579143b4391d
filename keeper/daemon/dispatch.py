"""The daemon's act path: every action of a tick goes out in the same block.

``keeper rebalance`` sends one action and waits for it (``manual.execute``). The daemon cannot: with
K positions to save at once, send-and-wait would land them one block apart. Here a tick

1. settles the journal first (an open or reorged-out transaction of ours stops new actions; see
   ``manual.settle_journal_first``),
2. *launches* each action as soon as its vault's plan is made (the most endangered vault first) —
   journal the intent, estimate gas on the pending block (a revert is refused and decoded before
   anything is signed), bid (one fee history per tick), sign, journal the signed bytes, broadcast —
   on consecutive nonces, without waiting,
3. then *settles* them in order (receipt, same-nonce fee bumps while waiting), recording each
   outcome in the journal and alerting on failures and gas-cap decisions.

The hot key is loaded once (a keystore's scrypt is slow) and the journal lives on the daemon's
store. An action refused at launch does not stop the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from keeper.chain.contracts import ours
from keeper.chain.tx import NonceManager, TxOutcome, TxSender
from keeper.config import Config
from keeper.daemon.actions import VaultBook
from keeper.domain import Action
from keeper.errors import KeeperError
from keeper.plan.fees import GWEI
from keeper.protocols.vault_calls import vault_request
from keeper.store import Store
from keeper.store.journal import AttemptRecord, Journal

log = logging.getLogger("keeper.daemon")


@dataclass
class Launched:
    book: VaultBook
    action: Action
    entry: int
    sender: TxSender
    urgency: float
    out: TxOutcome | None = None
    error: KeeperError | None = None  # refused or failed
    sent_at: float | None = None  # perf_counter when the broadcast returned


class Dispatcher:
    def __init__(self, cfg: Config, chain: str, client, store: Store, alerter) -> None:
        from keeper.daemon.manual import fee_policy, keeper_key

        self.cfg, self.chain, self.client, self.alerter = cfg, chain, client, alerter
        self.key = keeper_key(cfg, client.expected_chain_id)
        self.journal = Journal(store)
        self.fees = fee_policy(cfg)
        self.nonces = NonceManager(client, self.key.address)
        self.abis = [ours("KeeperVault").abi, ours("PerpVault").abi]

    def _sender(self, entry: int) -> TxSender:
        journal = self.journal

        def on_signed(_out: TxOutcome, a) -> None:
            journal.record_attempt(entry, AttemptRecord(a.nonce, a.tx_hash, "0x" + a.raw.hex(),
                                                        a.bid.max_fee_per_gas, a.bid.max_priority_fee_per_gas))

        s = TxSender(self.client, self.key, self.client.expected_chain_id, self.fees, abis=self.abis,
                     bump_after_blocks=self.cfg.fees.bump_after_blocks, on_signed=on_signed)
        s.nonces = self.nonces  # one nonce sequence for the tick's back-to-back launches
        return s

    # --- one tick ----------------------------------------------------------------------------
    def begin(self, session) -> None:
        """Before the tick's first launch: settle the journal, refresh the nonce and the fee history."""
        from keeper.daemon.manual import settle_journal_first

        settle_journal_first(self.journal, session, self.key.address)
        self.nonces.resync()
        self._base_fees: list[int] | None = None

    def launch(self, session, book: VaultBook, action: Action) -> Launched:
        """Journal the intent, then estimate, bid, sign, journal and broadcast (no wait). A refusal
        (a revert in the estimate, the fee cap) is recorded on the returned item, not raised."""
        from keeper.daemon.manual import action_urgency

        req = vault_request(book.vault, action, {p.key: p for p in book.positions})
        key = f"daemon:{action.position_key}:{session.snap.block}:{action.kind.value}:{action.amount_raw}"
        entry = self.journal.record_intent(
            self.chain, key, action.position_key,
            {"kind": action.kind.value, "asset": action.asset.address, "amount_raw": action.amount_raw,
             "target": action.target_key, "reason": action.reason.__dict__, "vault": book.vault, "at": time.time()})
        u = action_urgency(session, action)
        item = Launched(book, action, entry, self._sender(entry), u)
        try:
            if self._base_fees is None:
                self._base_fees = item.sender.base_fees()
            # estimate_gas runs on the pending block and refuses a revert (decoded): no separate eth_call.
            item.out = item.sender.launch(req, u, simulate=False, base_fees=self._base_fees)
            item.sent_at = time.perf_counter()
        except KeeperError as e:
            item.error = e
            self._failed(item, e)
        return item

    def launch_all(self, session, items: Sequence[tuple[VaultBook, Action]]) -> list[Launched]:
        self.begin(session)
        return [self.launch(session, book, action) for book, action in items]

    def settle_all(self, launched: Sequence[Launched]) -> None:
        for item in launched:
            if item.out is None:
                continue
            try:
                item.sender.settle(item.out, item.urgency)
            except KeeperError as e:
                item.error = e
                self._failed(item, e)
                continue
            rc = item.out.receipt
            self.journal.record_outcome(item.entry, "mined", mined_hash=rc["transactionHash"],
                                        mined_block=int(rc["blockNumber"], 16))
            over = [a for a in item.out.attempts if a.bid.over_normal_cap]
            if over:
                self.alerter.notify("gas_spike", "warning", f"{self.chain}: sent above the normal gas cap",
                                    f"the urgency rule allowed {over[-1].bid.max_fee_per_gas / GWEI:.2f} gwei "
                                    f"(normal cap {self.cfg.fees.max_fee_gwei:g} gwei); {over[-1].bid.reason}",
                                    position=item.action.position_key, urgency=round(item.urgency, 3),
                                    tx=item.out.mined_hash)

    def _failed(self, item: Launched, e: KeeperError) -> None:
        """Journal what is known: never signed -> failed; mined but reverted -> reverted; signed and
        maybe broadcast with no receipt -> left open for reconciliation."""
        if "gas cap hit" in str(e) or "above the fee cap" in str(e):
            self.alerter.notify("gas_spike", "critical", f"{self.chain}: gas above the cap, not sent", str(e),
                                position=item.action.position_key, urgency=round(item.urgency, 3))
        rc = item.sender.last_receipt
        if not self.journal.get(item.entry).attempts:
            self.journal.record_outcome(item.entry, "failed", error=str(e)[:500])
        elif rc is not None:
            self.journal.record_outcome(item.entry, "reverted", mined_hash=rc["transactionHash"],
                                        mined_block=int(rc["blockNumber"], 16), error=str(e)[:500])
