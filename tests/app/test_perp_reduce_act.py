"""A vault-held GMX v1 perp with no reserve, after a fall, on the devnet (the real GMX v1, gated as in
production): the keeper reads the vault's caps on the GMX Vault (``keeper.app.perp_reduce_routes``),
plans a reduction by size and sends it through the one execution pipeline; on chain it is a
PositionRouter decrease request, which the keeper then sees pending (no second one is planned) until
GMX's position keeper executes it, and the position lands where the plan said. Without the caps,
nothing is planned, nor without a route to the PositionRouter."""

from __future__ import annotations

import pytest

from keeper.app.books import asset_params, plan_books, read_books
from keeper.chain import contracts as C
from keeper.daemon.keeper import Keeper
from keeper.devnet.deployer import Deployer
from keeper.domain import ActionKind
from keeper.plan.whatif import USD_RAW
from tests.app.test_deleverage_act import _keeper, _send
from tests.contracts.gmx_env import Gmx
from tests.daemon.test_dispatch import _planned
from tests.devnet.helpers import set_price

pytestmark = pytest.mark.usefixtures("snapshot")

E18 = 10**18
FLOOR = 3 * E18


def _vault_with_a_perp(w3, devnet, *, caps: bool):
    """A fresh KeeperVault of a fresh owner holding a 10x ETH long on GMX v1 (2 WETH of margin, $20,000
    of size at ETH 2,000), ether for request fees, no reserve; with ``caps`` the owner lets the keeper
    take up to $15,000 of size off per call ($20,000 per window)."""
    owner = w3.to_checksum_address("0x" + "d2" * 20)
    w3.provider.make_request("anvil_setBalance", [owner, hex(100 * E18)])
    w3.provider.make_request("anvil_impersonateAccount", [owner])
    d = Deployer(w3, owner)
    g = Gmx(w3, devnet, Deployer(w3, devnet["roles"]["admin"]))
    assert g.gated
    v = d.deploy(C.ours("KeeperVault"), owner, devnet["roles"]["keeper"])
    d.send(v.functions.setPerpMarket(g.vault.address, *g.params("ETH-long"), True, FLOOR))
    d.send(v.functions.setPerpRoute(g.vault.address, g.position_router.address, 2 * g.fee))
    d.send(v.functions.setCap("0x" + "00" * 20, 2 * g.fee, 20 * g.fee))
    d.send_value(v.address, 20 * g.fee, sender=owner)
    g.open("ETH-long", 2 * E18, 20_000, v.address, kv=v, owner=owner)
    if caps:
        d.send(v.functions.setDeleverageCap(g.vault.address, 15_000 * USD_RAW, 20_000 * USD_RAW))
    return v, g


def _config(v):
    return {"accounts": [{"address": v.address, "kind": "vault", "label": "erin", "protocols": ["perp"]}]}


def test_a_reserveless_perp_is_reduced_by_a_request_the_keeper_follows(tmp_path, anvil, w3, devnet, monkeypatch):
    v, g = _vault_with_a_perp(w3, devnet, caps=True)
    set_price(w3, devnet, "ETH", 1_880)  # -6 %: what is left is 4 % of the size, health ~2
    k: Keeper = _keeper(tmp_path, anvil, devnet, monkeypatch, v, **_config(v))
    try:
        block = w3.eth.block_number
        session, actions = _planned(k, block)
        ((book, a),) = actions
        assert a.kind is ActionKind.DELEVERAGE and a.swap is None
        assert a.reason.p_after <= k.policy.epsilon * k.policy.target_fraction < a.reason.p_before
        assert 0 < a.amount_raw <= 15_000 * USD_RAW
        assert "reduce size" in a.reason.note and "PositionRouter request" in a.reason.note
        size0 = g.position(v.address, "ETH-long")[0]

        req = _send(k, w3, v, session, book, a, block, event="PerpDecreaseRequested")
        assert req["sizeDelta"] == a.amount_raw
        assert g.position(v.address, "ETH-long")[0] == size0  # nothing yet: a request

        # Pending: the keeper sees the request and plans nothing more for the position.
        snap = k.reader.read(w3.eth.block_number)
        view = k._requests(snap)
        ((pending, decision),) = view.decisions
        assert decision.step.value == "wait"
        assert pending.decrease and pending.size_delta == a.amount_raw and pending.account == v.address.lower()
        assert "size reduction request" in view.blocked[a.position_key]

        assert g.keeper.step() == 1  # GMX's position keeper executes it
        assert g.position(v.address, "ETH-long")[0] == size0 - a.amount_raw
        health = g.health(v.address, "ETH-long") / E18
        assert health == pytest.approx(a.reason.health_after, rel=5e-3)  # the plan's estimate of GMX's rule
        assert k._requests(k.reader.read(w3.eth.block_number)).decisions == []
        _, again = _planned(k, w3.eth.block_number)
        assert again == []  # at or under the risk target now
    finally:
        k.shutdown()


def test_without_the_caps_or_a_route_no_reduction_is_planned(tmp_path, anvil, w3, devnet, monkeypatch):
    v, g = _vault_with_a_perp(w3, devnet, caps=False)
    set_price(w3, devnet, "ETH", 1_880)
    k = _keeper(tmp_path, anvil, devnet, monkeypatch, v, **_config(v))
    try:
        block = w3.eth.block_number
        _, actions = _planned(k, block)
        assert actions == []
        # the same position is at risk: without the caps (and with no reserve) the keeper alerts
        snap = k.reader.read(block)
        assets = asset_params(k.reader, snap)
        ((book, result),) = list(plan_books(read_books(k.reader, snap, k.ccfg, assets), k.risk, assets, k.policy,
                                            block, {}))
        assert not book.deleverage and book.routes == {}
        assert [al.kind for al in result.alerts] == ["reserve_short"]
        # caps, but no route to the PositionRouter (the request could only fail): still no reduction
        owner = Deployer(w3, w3.to_checksum_address("0x" + "d2" * 20))
        owner.send(v.functions.setDeleverageCap(g.vault.address, 15_000 * USD_RAW, 20_000 * USD_RAW))
        owner.send(v.functions.setPerpRoute(g.vault.address, "0x" + "00" * 20, 0))
        snap = k.reader.read(w3.eth.block_number)
        (book,) = read_books(k.reader, snap, k.ccfg, assets)
        assert book.deleverage and book.routes == {}
    finally:
        k.shutdown()
