"""The KeeperVault test environment of ``on_aave/`` and ``test_keeper_vault_gmx.py``: one
vault, its tokens and protocol handles, and helpers that send, expect a named revert (our custom
errors, or GMX v1's revert strings), mine at a frozen timestamp, and check a KeeperAction event
against the protocol's own health at the same block."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from web3 import Web3
from web3.logs import DISCARD

from keeper.chain import contracts as C
from keeper.chain.revert import decode, revert_data
from keeper.errors import Reverted
from tests.contracts.gmx_env import GMX_ABIS

E18, E6, E8, USD30 = 10**18, 10**6, 10**8, 10**30
MAX = 2**256 - 1
ZERO = "0x" + "00" * 20
AAVE, MORPHO, PERP = 0, 1, 2
TOP_UP, REPAY, WITHDRAW_EXCESS, REBALANCE_OUT, REBALANCE_IN = range(5)
DAY = 86_400
FLOOR_AAVE, FLOOR_MORPHO, FLOOR_PERP = 12 * E18 // 10, 11 * E18 // 10, 5 * E18
MIN_FLOOR = 105 * E18 // 100  # KeeperVault.MIN_HEALTH_FLOOR
CAPS = {"WETH": (5 * E18, 8 * E18), "USDC": (10_000 * E6, 15_000 * E6)}  # per call, per window
KV = C.ours("KeeperVault")
ABIS = [KV.abi, C.ours("ReentrantToken").abi, *GMX_ABIS]


def asset_key(addr: str) -> bytes:
    return bytes(12) + bytes.fromhex(Web3.to_checksum_address(addr)[2:])


def b32(hex_id: str) -> bytes:
    return bytes.fromhex(hex_id.removeprefix("0x"))


class Env(SimpleNamespace):
    def send(self, fn, sender):
        return self.d.send(fn, sender=sender)

    def err(self, fn, sender):
        """Send ``fn`` expecting a revert; return the decoded error (name, args)."""
        with pytest.raises(Reverted) as info:
            self.d.send(fn, sender=sender)
        r = decode(revert_data(info.value.__cause__), ABIS)
        fix = lambda a: Web3.to_checksum_address(a) if isinstance(a, str) and len(a) == 42 else a  # noqa: E731
        return SimpleNamespace(name=r.name, args=tuple(fix(a) for a in r.args))

    def frozen(self, fn, sender):
        """Mine ``fn`` at the latest block's timestamp, so a view at 'latest' before the
        transaction and a view at its block after it see the same clock (no interest between)."""
        ts = self.w3.eth.get_block("latest")["timestamp"]
        self.w3.provider.make_request("evm_setNextBlockTimestamp", [ts])
        return self.d.send(fn, sender=sender)

    def at_time(self, ts: int) -> None:
        """Mine an empty block at exactly ``ts``."""
        self.w3.provider.make_request("evm_setNextBlockTimestamp", [ts])
        self.w3.provider.make_request("evm_mine", [])

    def warp(self, seconds: int) -> None:
        self.w3.provider.make_request("evm_increaseTime", [seconds])
        self.w3.provider.make_request("evm_mine", [])

    def exec(self, target, fn_name: str, args: list):
        data = target.encode_abi(fn_name, args=args)
        return self.send(self.vault.functions.execute(target.address, 0, data), self.owner)

    def bal(self, sym: str, who: str) -> int:
        return self.tok[sym].functions.balanceOf(who).call()

    def events(self, receipt) -> list:
        return [e["args"] for e in self.vault.events.KeeperAction().process_receipt(receipt, errors=DISCARD)]

    def requests(self, receipt) -> list:
        """The vault's PerpIncreaseRequested events in a receipt."""
        return [e["args"] for e in self.vault.events.PerpIncreaseRequested().process_receipt(receipt, errors=DISCARD)]

    def settled(self, receipt) -> list:
        """The vault's PerpRequestSettled events in a receipt."""
        return [e["args"] for e in self.vault.events.PerpRequestSettled().process_receipt(receipt, errors=DISCARD)]

    # refs: (kind, protocol, market, account)
    def aave(self, sym: str, account: str) -> tuple:
        return (AAVE, self.pool.address, asset_key(self.tok[sym].address), account)

    def morpho_ref(self, account: str) -> tuple:
        return (MORPHO, self.morpho.address, self.mid, account)

    def perp_ref(self, account: str) -> tuple:
        return (PERP, self.perp.address, self.perp_market, account)

    # ---- the protocols' own views, independent of the vault's Solidity
    def protocol_health(self, ref: tuple, block="latest") -> int:
        kind, _, _, account = ref
        if kind == AAVE:
            return self.pool.functions.getUserAccountData(account).call(block_identifier=block)[5]
        if kind == MORPHO:
            return self.morpho_health(account, block)
        return self.perp_health(account, block)

    def morpho_health(self, account: str, block) -> int:
        """Morpho Blue's `_isHealthy` as a ratio, interest accrued to the block's timestamp exactly as
        MorphoBalancesLib does (IrmMock rate, 3-term Taylor compounding)."""
        _, borrow_shares, collateral = self.morpho.functions.position(self.mid, account).call(block_identifier=block)
        if borrow_shares == 0:
            return MAX
        market = self.morpho.functions.market(self.mid).call(block_identifier=block)
        _tsa, _tss, tba, tbs, last_update, _fee = market
        elapsed = self.w3.eth.get_block(block)["timestamp"] - last_update
        if elapsed and tba:
            rate = self.irm.functions.borrowRateView(self.params, market).call(block_identifier=block)
            first = rate * elapsed
            second = first * first // (2 * E18)
            third = second * first // (3 * E18)
            tba += tba * (first + second + third) // E18
        borrowed = -(-borrow_shares * (tba + 1) // (tbs + 10**6))  # toAssetsUp
        price = self.oracle.functions.price().call(block_identifier=block)
        max_borrow = collateral * price // 10**36 * self.params[4] // E18
        return max_borrow * E18 // borrowed

    def perp_health(self, account: str, block) -> int:
        return self.gmx.health(account, self.perp_name, block)

    def check_action(self, ref: tuple, fn, *, action: int, asset: str, amount: int | None = None):
        """Send a keeper call frozen in time; assert its KeeperAction against the protocol's view.
        A perp's funding is brought up to date first (as the vault does before reading health), so
        the 'before' view and the vault's own read agree."""
        if ref[0] == PERP:
            self.gmx.sync_funding(self.perp_name)
        before = self.protocol_health(ref)
        rc = self.frozen(fn, self.keeper)
        after = self.protocol_health(ref, rc["blockNumber"])
        (ev,) = [e for e in self.events(rc) if e["action"] == action]
        assert (ev["kind"], ev["protocol"], ev["market"], ev["account"]) == (ref[0], ref[1], ref[2], ref[3])
        assert ev["asset"] == self.tok[asset].address
        if amount is not None:
            assert ev["amount"] == amount
        assert ev["healthBefore"] == before and ev["healthAfter"] == after, (ev, before, after)
        assert self.vault.functions.health(ref).call(block_identifier=rc["blockNumber"]) == after
        return rc, ev
