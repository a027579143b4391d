"""Sending the keeper's transactions: simulate -> estimate -> bid -> sign -> send -> wait -> bump.

- A call whose simulation (``eth_call`` from the keeper at the latest block) reverts is refused with
  the decoded error name and never sent (style rule 3).
- Fees come from ``keeper.chain.fees`` (pure); a resend uses the same nonce with both fee fields
  raised by >= 12.5%, after ``bump_after_blocks`` blocks without a receipt.
- ``NonceManager`` takes the larger of its own next nonce and the node's pending count, so
  transactions sent by others from the same key are tolerated; "nonce too low" resyncs it.
- Hooks let a journal record every signed transaction (hash and raw bytes) *before* it is
  broadcast, and the receipt after (stage 4's journal; DESIGN.md "The loop")."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils.crypto import keccak

from keeper.chain.client import ChainClient
from keeper.chain.fees import Bid, FeePolicy, bid, replacement
from keeper.chain.keys import HotKey
from keeper.chain.revert import decode
from keeper.errors import GasCapHit, KeeperError, MinedReverted, NonceUsed, Reverted, TemporaryError, TxFailed
from keeper.faults import crash_point

NONCE_GRACE_S = 2.0  # see the wait loop in ``TxSender.send``


class _Underpriced(Exception):
    pass


class _NonceUsed(Exception):
    pass


def _classify(e: KeeperError) -> None:
    """A node's refusal of ``eth_sendRawTransaction``: return when it already has the transaction,
    raise ``_NonceUsed``/``_Underpriced`` for those two refusals, re-raise anything else."""
    msg = str(e).lower()
    if "already known" in msg or "already imported" in msg:
        return
    if "nonce too low" in msg:
        raise _NonceUsed(str(e)) from e
    if "base fee" in msg or "underpriced" in msg:
        raise _Underpriced(str(e)) from e
    raise e


@dataclass(frozen=True)
class TxRequest:
    to: str
    data: bytes
    value: int = 0
    label: str = ""
    gas: int | None = None  # estimated (with a margin) when None


@dataclass
class Attempt:
    nonce: int
    tx_hash: str
    raw: bytes
    bid: Bid


@dataclass(frozen=True)
class Receipt:
    """A transaction receipt, parsed from JSON-RPC's hex quantities at the boundary. ``logs`` are
    the node's log objects as sent (hex strings), for event decoders."""

    tx_hash: str
    block: int
    ok: bool  # status 1
    gas_used: int
    logs: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_rpc(cls, rc: dict[str, Any]) -> Receipt:
        return cls(str(rc["transactionHash"]), int(rc["blockNumber"], 16), int(rc["status"], 16) == 1,
                   int(rc.get("gasUsed") or "0x0", 16), tuple(rc.get("logs") or ()))


@dataclass
class TxOutcome:
    request: TxRequest
    nonce: int
    attempts: list[Attempt] = field(default_factory=list)
    receipt: Receipt | None = None  # set by ``settle`` as soon as one of the attempts has a receipt
    gas: int = 0  # the gas limit every attempt uses

    @property
    def mined_hash(self) -> str | None:
        return self.receipt.tx_hash if self.receipt else None


# Bounds behind gas_limit_from_access_list (EIP-2929/2930/3529, post-London chains):
COLD_EXTRA_PER_ADDRESS = 100  # cold account access 2,600 vs 2,400 listed + 100 warm
COLD_EXTRA_PER_SLOT = 200  # cold SSTORE surcharge 2,100 vs 1,900 listed (SLOAD: 2,100 vs 2,000)
MAX_CALL_DEPTH = 12  # nested calls assumed at most: each keeps back 1/64 of the gas (EIP-150)


def gas_limit_from_access_list(res: dict[str, Any]) -> int:
    """A gas limit that suffices for a call whose ``eth_createAccessList`` result is ``res``.

    ``gasUsed`` there is the call's gas with the access list attached and after refunds. The keeper
    sends without the list, so every listed address costs at most 100 more and every listed slot 200
    more; refunds are capped at a fifth of the gas used (EIP-3529), so the gas consumed before the
    refund is at most 5/4 of what is reported; and each nested call can be given only 63/64 of
    what is left (EIP-150), so up to ``MAX_CALL_DEPTH`` levels need (64/63)**depth of it. The
    product is an upper bound (~1.51x the gas used; an unused limit costs nothing), rounded up."""
    used = int(res["gasUsed"], 16)
    entries = res.get("accessList") or []
    extra: int = sum(COLD_EXTRA_PER_ADDRESS + COLD_EXTRA_PER_SLOT * len(e.get("storageKeys") or []) for e in entries)
    num: int = (used + extra) * 5 * 64**MAX_CALL_DEPTH
    den: int = 4 * 63**MAX_CALL_DEPTH
    return -(-num // den)


# Gas each simulated call may use (eth_simulateV1 gives a call the block's remaining gas by default;
# the simulated block's limit is raised to this times the calls, so a chunk never runs out of it).
SIMULATED_GAS_PER_CALL = 30_000_000


def simulate_in_order(client: ChainClient, calls: Sequence[dict[str, Any]]) -> list[Any]:
    """One ``eth_simulateV1`` of ``calls`` (call objects: one sender's transactions, in nonce order),
    one after the other as they will land (each its own transaction: state carries over, warm
    addresses and slots do not), in a new block on top of the latest one (the method gives it the
    next number and a later timestamp: the next block's environment). Not on "pending": anvil
    replays its whole pool for that, for each simulation, which made every chunk slower once the
    first ones were sent; geth's "pending" is the latest block anyway. So transactions sent earlier
    in the same run are not in the simulated state: the caller simulates a vault's calls together.
    Returns, per call, what
    :meth:`TxSender.gas_from` takes: ``{"gasUsed": ...}``, or ``Reverted`` with the call's return
    data where it failed. Raises ``KeeperError`` when the node refuses the request (a node without
    the method: the caller falls back to one ``eth_createAccessList`` per call)."""
    if not calls:
        return []
    return simulated(client.request("eth_simulateV1", simulate_params(calls)), len(calls))


def simulate_params(calls: Sequence[dict[str, Any]]) -> list[Any]:
    """``eth_simulateV1``'s parameters for :func:`simulate_in_order` (also sent split-phase)."""
    overrides = {"gasLimit": hex(SIMULATED_GAS_PER_CALL * len(calls))}
    return [{"blockStateCalls": [{"blockOverrides": overrides, "calls": list(calls)}], "validation": False}, "latest"]


def simulated(res: Any, n: int) -> list[Any]:
    """The per-call replies of :func:`simulate_in_order` from the node's result for ``n`` calls."""
    try:
        out = res[0]["calls"]
        if not isinstance(out, list) or len(out) != n:
            raise TypeError("wrong number of calls")
        replies: list[Any] = []
        for c in out:
            if c["status"] == "0x1":
                replies.append({"gasUsed": hex(int(c["gasUsed"], 16))})
                continue
            err = c.get("error") or {}
            data = c.get("returnData") or err.get("data") or "0x"
            replies.append(Reverted(f"eth_simulateV1: {err.get('message') or 'call failed'}",
                                    data=bytes.fromhex(data[2:])))
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise TemporaryError(f"eth_simulateV1: malformed reply ({e})") from None
    return replies


def base_fees(client: ChainClient) -> list[int]:
    """The last blocks' base fees and the next one's (``eth_feeHistory``), for a bid."""
    hist = client.request("eth_feeHistory", [hex(4), "latest", []])
    return [int(x, 16) for x in hist["baseFeePerGas"]]


def _unknown_method(e: KeeperError) -> bool:
    msg = str(e).lower()
    return "-32601" in msg or ("method" in msg and any(
        w in msg for w in ("not found", "does not exist", "not available", "not supported", "unsupported")))


class NonceManager:
    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.address = address
        self._next: int | None = None

    def pending_count(self) -> int:
        return int(self.client.request("eth_getTransactionCount", [self.address, "pending"]), 16)

    def next(self) -> int:
        n = max(self.pending_count(), self._next or 0)
        self._next = n + 1
        return n

    def take(self, count: int, pending: int | None = None) -> int:
        """``count`` consecutive nonces from one reading of the node's pending count (``pending``
        when the caller already has it); returns the first."""
        n = max(self.pending_count() if pending is None else pending, self._next or 0)
        self._next = n + count
        return n

    def resync(self) -> None:
        self._next = None


class TxSender:
    def __init__(self, client: ChainClient, key: HotKey, chain_id: int, policy: FeePolicy, *,
                 abis: Sequence[list[Any]] = (), bump_after_blocks: int = 2, max_wait_blocks: int = 50,
                 max_wait_seconds: float = 600.0, gas_margin: float = 1.5, poll: float = 0.2,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 on_signed: Callable[[TxOutcome, Attempt], None] | None = None,
                 on_receipt: Callable[[TxOutcome], None] | None = None) -> None:
        self.client = client
        self.key = key
        self.chain_id = chain_id
        self.policy = policy
        self.abis = list(abis)
        self.bump_after_blocks = bump_after_blocks
        self.max_wait_blocks = max_wait_blocks
        self.max_wait_seconds = max_wait_seconds
        self.clock = clock
        self.gas_margin = gas_margin
        self.poll = poll
        self.sleep = sleep
        self.nonces = NonceManager(client, key.address)
        self.on_signed = on_signed
        self.on_receipt = on_receipt

    # --- before sending ----------------------------------------------------------------------
    def _call_obj(self, req: TxRequest) -> dict[str, Any]:
        return {"from": self.key.address, "to": req.to, "data": "0x" + req.data.hex(), "value": hex(req.value)}

    def simulate(self, req: TxRequest) -> bytes:
        """``eth_call`` as the keeper on the pending block; a revert raises ``Reverted`` (decoded)."""
        try:
            # "pending": the next block's environment (timestamp, base fee), where the transaction lands.
            out = self.client.request("eth_call", [self._call_obj(req), "pending"])
        except Reverted as e:
            raise self._reverts(req, e) from e
        return bytes.fromhex(out[2:])

    def _reverts(self, req: TxRequest, e: Reverted) -> Reverted:
        reason = decode(e.data, self.abis)
        return Reverted(f"{req.label or 'transaction'} would revert: {reason}", reason=reason.name, data=e.data)

    def estimate_gas(self, req: TxRequest) -> int:
        """A gas limit for ``req`` on the pending block (where it lands); a revert raises
        ``Reverted``, decoded. One execution (``eth_createAccessList``: :func:`gas_limit_from_access_list`)
        where the node has it — ``eth_estimateGas`` searches over several (on anvil, a vault top-up:
        ~1.4 ms against ~8 ms); otherwise ``eth_estimateGas`` times ``gas_margin``."""
        if "eth_createAccessList" in self.client.unsupported:
            return self.gas_from(req, None)
        method, params = self.gas_call(req)
        try:
            reply = self.client.request(method, params)
        except KeeperError as e:
            reply = e
        return self.gas_from(req, reply)

    def call_obj(self, req: TxRequest) -> dict[str, Any]:
        """The keeper's call object for ``req`` (for :func:`simulate_in_order`)."""
        return self._call_obj(req)

    def gas_call(self, req: TxRequest) -> tuple[str, list[Any]]:
        """The JSON-RPC call whose reply :meth:`gas_from` turns into a gas limit (for batches)."""
        return "eth_createAccessList", [self._call_obj(req), "pending"]

    def gas_from(self, req: TxRequest, reply: Any) -> int:
        """The gas limit from the reply to :meth:`gas_call` — its result, or the node's error as
        ``ChainClient.batch_each`` gives it — or to :func:`simulate_in_order` (``gasUsed`` without an
        access list: the bound is the same); ``None`` or a node without ``eth_createAccessList``:
        ``eth_estimateGas``. Raises ``Reverted`` (decoded) when the call would revert."""
        if isinstance(reply, Reverted):
            raise self._reverts(req, reply) from reply
        if isinstance(reply, KeeperError):  # unknown to this node, or it failed now: estimate instead
            if _unknown_method(reply):
                self.client.unsupported.add("eth_createAccessList")
            elif not isinstance(reply, TemporaryError):
                raise reply
        elif isinstance(reply, dict):
            if reply.get("error"):  # geth reports a revert here rather than as an RPC error
                self.simulate(req)  # raises it, decoded, when the call reverts on its own
                raise Reverted(f"{req.label or 'transaction'} would revert: {reply['error']}")
            return gas_limit_from_access_list(reply)
        try:
            gas = int(self.client.request("eth_estimateGas", [self._call_obj(req), "pending"]), 16)
        except Reverted as e:
            raise self._reverts(req, e) from e
        return int(gas * self.gas_margin)

    def base_fees(self) -> list[int]:
        return base_fees(self.client)

    # --- sending -----------------------------------------------------------------------------
    def _sign(self, req: TxRequest, nonce: int, gas: int, b: Bid) -> Attempt:
        tx = {"chainId": self.chain_id, "nonce": nonce, "to": req.to, "data": req.data, "value": req.value,
              "gas": gas, "maxFeePerGas": b.max_fee_per_gas, "maxPriorityFeePerGas": b.max_priority_fee_per_gas,
              "type": 2}
        raw = self.key.sign_transaction(tx)
        return Attempt(nonce, "0x" + keccak(raw).hex(), raw, b)

    def _broadcast(self, attempt: Attempt) -> None:
        try:
            self.client.request("eth_sendRawTransaction", ["0x" + attempt.raw.hex()])
        except KeeperError as e:
            _classify(e)


    def _receipt(self, tx_hash: str) -> dict[str, Any] | None:
        receipt: dict[str, Any] | None = self.client.request("eth_getTransactionReceipt", [tx_hash])
        return receipt

    def send(self, req: TxRequest, urgency: float = 0.0, *, simulate: bool = True) -> TxOutcome:
        """The whole lifecycle: :meth:`launch`, then :meth:`settle`."""
        return self.settle(self.launch(req, urgency, simulate=simulate), urgency)

    def launch(self, req: TxRequest, urgency: float = 0.0, *, simulate: bool = True,
               base_fees: list[int] | None = None) -> TxOutcome:
        """Simulate, estimate, bid (refusing a bid under the cap), sign, journal (``on_signed``) and
        broadcast, without waiting: several launches back to back take consecutive nonces and land
        in the same block. ``base_fees``: a recent ``eth_feeHistory`` to reuse (one per tick)."""
        if simulate:
            self.simulate(req)
        gas = req.gas or self.estimate_gas(req)
        base_fees = base_fees or self.base_fees()
        current = self.first_bid(req, urgency, base_fees)
        nonce = self.nonces.next()
        out = TxOutcome(req, nonce)
        out.gas = gas
        self._send_attempt(out, req, nonce, gas, current, urgency)
        return out

    def first_bid(self, req: TxRequest, urgency: float, base_fees: list[int]) -> Bid:
        """The first send's bid; ``GasCapHit`` when the cap keeps it below the current base fee."""
        current = bid(base_fees, urgency, 0, self.policy)
        if current.max_fee_per_gas < base_fees[-1]:
            raise GasCapHit(f"{req.label or 'transaction'}: gas cap hit: "
                           f"the base fee is {base_fees[-1] / 1e9:.2f} gwei, "
                           f"the cap allows {current.max_fee_per_gas / 1e9:.2f} gwei "
                           f"at urgency {urgency:.2f}; not sent")
        return current

    # --- batches (keeper.app.execution) ------------------------------------------------------
    def signed(self, req: TxRequest, nonce: int, gas: int, b: Bid) -> TxOutcome:
        """A first attempt signed but neither journaled nor broadcast: the caller journals a batch
        of them in one transaction, then broadcasts them together and reports each reply with
        :meth:`broadcast_failed` (or nothing, when the node took it)."""
        out = TxOutcome(req, nonce, gas=gas)
        out.attempts.append(self._sign(req, nonce, gas, b))
        return out

    def broadcast_failed(self, out: TxOutcome, error: KeeperError, urgency: float) -> None:
        """The node's refusal of a batch-broadcast first attempt, handled as a single send would:
        "already known" is success; a transport error leaves it to the wait loop (the journal has
        the bytes); an underpriced bid is raised and sent again on the same nonce (journaled through
        ``on_signed``); a used nonce or any other refusal raises ``TxFailed``/the error."""
        req = out.request
        try:
            _classify(error)
        except _NonceUsed:
            self.nonces.resync()
            raise NonceUsed(f"{req.label or 'transaction'}: nonce {out.nonce} already used "
                           f"(another sender of this key?); not sent") from None
        except _Underpriced:
            nxt = replacement(out.attempts[-1].bid, bid(self.base_fees(), urgency, len(out.attempts), self.policy))
            if nxt is None:
                raise GasCapHit(f"{req.label or 'transaction'}: the base fee is above the fee cap "
                                f"({self.policy.max_fee_cap} wei); not sent") from None
            self._send_attempt(out, req, out.nonce, out.gas, nxt, urgency)
        except TemporaryError:
            return

    def settle(self, out: TxOutcome, urgency: float = 0.0) -> TxOutcome:
        """Wait for a launched transaction's receipt, bumping the fee on the same nonce every
        ``bump_after_blocks``; raises ``MinedReverted`` if it reverted (``out.receipt`` is set),
        ``NonceUsed`` if another transaction took its nonce, ``TxFailed`` if it was never mined."""
        req, nonce, gas = out.request, out.nonce, out.gas
        start = self.client.block_number()
        last_bump = start
        started = self.clock()
        nonce_used_at: float | None = None
        while True:
            for a in reversed(out.attempts):
                rc = self._receipt(a.tx_hash)
                if rc is not None:
                    crash_point("after_receipt")
                    out.receipt = receipt = Receipt.from_rpc(rc)
                    if self.on_receipt:
                        self.on_receipt(out)
                    if not receipt.ok:
                        raise MinedReverted(f"{req.label or 'transaction'} {a.tx_hash} was mined but reverted"
                                            f"{self._why_reverted(req, receipt, gas)}",
                                            tx_hash=receipt.tx_hash, block=receipt.block)
                    return out
            mined_count = int(self.client.request("eth_getTransactionCount", [self.key.address, "latest"]), 16)
            if mined_count > nonce:
                # A node can show the new nonce a moment before the block's receipts (anvil does, under
                # load): only a nonce used for NONCE_GRACE_S with none of our receipts is someone else's.
                if nonce_used_at is None:
                    nonce_used_at = self.clock()
                elif self.clock() - nonce_used_at > NONCE_GRACE_S:
                    self.nonces.resync()
                    raise NonceUsed(f"{req.label or 'transaction'}: nonce {nonce} was used by another transaction "
                                    f"of this key; none of ours was mined")
                self.sleep(self.poll)
                continue
            head = self.client.block_number()
            if head - start > self.max_wait_blocks or self.clock() - started > self.max_wait_seconds:
                raise TxFailed(f"{req.label or 'transaction'} not mined after {head - start} blocks "
                               f"(nonce {nonce}, {len(out.attempts)} attempt(s)); still pending: the journal "
                               f"keeps it for reconciliation")
            if head - last_bump >= self.bump_after_blocks:
                nxt = replacement(out.attempts[-1].bid, bid(self.base_fees(), urgency, len(out.attempts), self.policy))
                if nxt is not None:
                    self._send_attempt(out, req, nonce, gas, nxt, urgency)
                last_bump = head
            self.sleep(self.poll)

    def _why_reverted(self, req: TxRequest, rc: Receipt, gas: int) -> str:
        """Best-effort diagnosis of a mined revert: out of gas, or the reason replayed at the block."""
        if rc.gas_used >= gas * 0.98:
            return f": out of gas ({rc.gas_used:,} of {gas:,})"
        try:
            self.client.request("eth_call", [self._call_obj(req), hex(rc.block)])
        except Reverted as e:
            return f": {decode(e.data, self.abis)}"
        except KeeperError:
            pass
        return " (the replay at that block succeeds: state changed within the block)"

    def _send_attempt(self, out: TxOutcome, req: TxRequest, nonce: int, gas: int, b: Bid, urgency: float) -> None:
        for _ in range(8):
            attempt = self._sign(req, nonce, gas, b)
            out.attempts.append(attempt)
            crash_point("before_journal")
            if self.on_signed:
                self.on_signed(out, attempt)  # journal first: a crash after this line loses nothing
            crash_point("after_journal")
            try:
                self._broadcast(attempt)
                crash_point("after_send")
                return
            except TemporaryError:
                # The journal has the raw transaction; the wait loop polls and resends on bump.
                return
            except _NonceUsed:
                if len(out.attempts) > 1:
                    return  # an earlier attempt was mined meanwhile: the wait loop finds its receipt
                self.nonces.resync()
                raise NonceUsed(f"{req.label or 'transaction'}: nonce {nonce} already used "
                                f"(another sender of this key?); not sent") from None
            except _Underpriced:
                # The node refused the bid outright (some nodes, anvil among them, do not queue a
                # transaction whose max fee is below the current base fee): bid again now.
                nxt = replacement(b, bid(self.base_fees(), urgency, len(out.attempts), self.policy))
                if nxt is None:
                    raise GasCapHit(f"{req.label or 'transaction'}: the base fee is above the fee cap "
                                    f"({self.policy.max_fee_cap} wei); not sent") from None
                b = nxt
        raise TxFailed(f"{req.label or 'transaction'}: refused as underpriced 8 times in a row")
