"""One sender per key: the journal must account for every transaction the keeper's key has mined.

Replicas share one store, so each sees the others' journal entries. Two keepers that are not
replicas of one store (two ``keeper run`` on SQLite files, replicas pointed at two PostgreSQL
databases, or the key imported into a wallet) each see only their own: their nonces race and both
act on the same danger. That is found on chain: the key's mined transaction count moves past a
nonce this store's journal never signed.

The store keeps a mark per chain and key (``key_nonce``): the mined count last accounted for. At
each check the count is read first, then the journal (a transaction of ours is journaled before it
is broadcast, so one mined by the time of the read is in the journal by then); every nonce from the
mark up to the count must be one the journal signed with this key. Then the mark moves up.

Limits: the first check of a store only sets the mark (what the key sent before is not judged), and
a foreign transaction is found once mined, not while it waits in a mempool. A count below the mark
(a devnet restarted under the same store, or a reorg deeper than the mark's age) moves the mark
down without a verdict.
"""

from __future__ import annotations

import logging

from keeper.chain.client import ChainClient
from keeper.errors import KeyShared
from keeper.store.journal import Journal

log = logging.getLogger("keeper.key_guard")

SHOWN = 5  # foreign nonces named in the message


class KeyGuard:
    """Checks, for one chain and key, that the key's mined nonces are all in ``journal``; the mark
    verified last is cached, so a check with nothing new mined reads the database not at all."""

    def __init__(self, journal: Journal, client: ChainClient, chain: str, sender: str) -> None:
        self.journal, self.client, self.chain, self.sender = journal, client, chain, sender
        self._verified: int | None = None

    def check(self) -> None:
        mined = int(self.client.request("eth_getTransactionCount", [self.sender, "latest"]), 16)
        if mined == self._verified:
            return
        mark = self.journal.nonce_mark(self.chain, self.sender)
        if mark is not None and mark < mined:
            ours = self.journal.nonces_sent(self.chain, self.sender, mark, mined)
            foreign = [n for n in range(mark, mined) if n not in ours]
            if foreign:
                shown = ", ".join(map(str, foreign[:SHOWN])) + (f" and {len(foreign) - SHOWN} more"
                                                                if len(foreign) > SHOWN else "")
                raise KeyShared(
                    f"chain {self.chain}: keeper key {self.sender} mined nonce{'s' if len(foreign) > 1 else ''} "
                    f"{shown} that this store's journal never signed: another process sends with this key "
                    f"(a keeper on another store, or a wallet), so nonces race and actions can double",
                    hint="run replicas of one key on one PostgreSQL store (store.url), give every other keeper "
                         "its own key, and never use the keeper key by hand; the keeper stops acting")
        if mark is not None and mined < mark:
            log.warning(f"chain {self.chain}: key {self.sender} has {mined} mined transactions, fewer than the "
                        f"{mark} the journal accounted for (a restarted devnet, or a deep reorg); the mark moves down",
                        extra={"event": "nonce_mark_down", "chain": self.chain})
        if mark != mined:
            self.journal.set_nonce_mark(self.chain, self.sender, mined)
        self._verified = mined
