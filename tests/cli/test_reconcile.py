"""`keeper reconcile` without a keeper key, through the real CLI on the devnet: receipts settle
what a crashed `rebalance --execute` left open, and what was journaled but never broadcast is sent
as the same signed bytes (no signing, so no key); `--no-wait` leaves it pending with exit 3."""


import pytest

from tests.cli.devnet_cli import run
from tests.devnet.helpers import set_price

pytestmark = pytest.mark.usefixtures("snapshot")
def test_nothing_open_without_a_key(tmp):
    proc = run(tmp, "reconcile", key=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "journal: nothing open" and "Traceback" not in proc.stderr


def crash(tmp, w3, devnet, monkeypatch, point):
    set_price(w3, devnet, "ETH", 1_560)
    alice = devnet["keeper_vaults"]["alice"]["address"][:10]
    monkeypatch.setenv("KEEPER_FAULT", point)
    crashed = run(tmp, "rebalance", f"{alice}:morpho", "--vol", "WETH=0.8", "--execute")
    monkeypatch.delenv("KEEPER_FAULT")
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr


def test_sent_before_the_crash_settles_from_its_receipt_without_a_key(tmp, w3, devnet, monkeypatch):
    keeper = devnet["roles"]["keeper"]
    nonce0 = w3.eth.get_transaction_count(keeper)
    crash(tmp, w3, devnet, monkeypatch, "after_send")
    assert w3.eth.get_transaction_count(keeper) == nonce0 + 1
    proc = run(tmp, "reconcile", key=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "journal: mined: entries 1" in proc.stdout and "Traceback" not in proc.stderr
    assert run(tmp, "reconcile", key=False).stdout.strip() == "journal: nothing open"
    assert w3.eth.get_transaction_count(keeper) == nonce0 + 1


def test_never_broadcast_is_resent_as_the_same_bytes_without_a_key(tmp, w3, devnet, monkeypatch):
    keeper = devnet["roles"]["keeper"]
    nonce0 = w3.eth.get_transaction_count(keeper)
    crash(tmp, w3, devnet, monkeypatch, "after_journal")
    assert w3.eth.get_transaction_count(keeper) == nonce0  # journaled and signed, never broadcast
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        pending = run(tmp, "reconcile", "--no-wait", key=False)
        # sent (the journal's signed bytes) but not mined: still pending, the existing exit code 3
        assert pending.returncode == 3, pending.stdout + pending.stderr
        assert "journal: rebroadcast: entries 1" in pending.stdout and "Traceback" not in pending.stderr
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    w3.provider.make_request("evm_mine", [])
    done = run(tmp, "reconcile", key=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "journal: mined: entries 1" in done.stdout
    assert w3.eth.get_transaction_count(keeper) == nonce0 + 1  # the one action, exactly once
