"""Plan + execute on the devnet with the real Aave v3, the real Morpho Blue and GMX v1 (gated, its
position keeper running):
after a price drop the keeper's actions save every protected position (third-party liquidation then
reverts); an over-collateralised position releases excess and stays at or above the vault's floor."""

import pytest
from web3 import Web3

from keeper.app.execution import execute
from keeper.app.manual import open_session, plan_now
from keeper.chain import contracts as C
from keeper.devnet.deployer import Deployer
from keeper.domain import WAD, ActionKind, Address, Protocol
from keeper.errors import Reverted
from keeper.store import Store
from keeper.store.journal import Journal
from tests.daemon.helpers import devnet_config
from tests.devnet.helpers import gmx_liquidation, revert_name, set_price, token

pytestmark = pytest.mark.usefixtures("snapshot")
MAX = 2**256 - 1


@pytest.fixture
def cfg(tmp_path, anvil, devnet, monkeypatch):
    return devnet_config(tmp_path, anvil.url, devnet, monkeypatch)


def liquidation_reverts(w3, devnet, p) -> bool:
    account = Web3.to_checksum_address(p.account)  # web3 takes checksummed addresses only
    d = Deployer(w3, devnet["roles"]["admin"])
    liq = devnet["roles"]["liquidator"]
    usdc = token(w3, devnet, "USDC")
    d.send(usdc.functions.mint(liq, 10**13))
    try:
        if p.protocol is Protocol.AAVE_V3:
            pool = w3.eth.contract(address=devnet["aave_v3"]["pool"], abi=C.aave("Pool").abi)
            d.send(usdc.functions.approve(pool.address, MAX), sender=liq)
            d.send(pool.functions.liquidationCall(devnet["tokens"]["WETH"]["address"], usdc.address, account,
                                                  10**9, False), sender=liq)
        elif p.protocol is Protocol.MORPHO_BLUE:
            m = devnet["morpho_blue"]["markets"]["WETH/USDC"]
            morpho = w3.eth.contract(address=devnet["morpho_blue"]["morpho"], abi=C.third_party("Morpho").abi)
            d.send(usdc.functions.approve(morpho.address, MAX), sender=liq)
            params = (m["loan_token"], m["collateral_token"], m["oracle"], m["irm"], m["lltv"])
            d.send(morpho.functions.liquidate(params, account, 10**15, 0, b""), sender=liq)
        else:
            d.send(gmx_liquidation(w3, devnet, p.account, p.market), sender=liq)
    except Reverted as e:
        return revert_name(e) in {"HEALTH_FACTOR_NOT_BELOW_THRESHOLD", "HealthFactorNotBelowThreshold",
                                 "position is healthy", "Vault: position cannot be liquidated"}
    return False


def test_price_drop_then_plan_and_execute_saves_every_protected_position(cfg, w3, devnet, position_keeper):
    set_price(w3, devnet, "ETH", 1_560)  # ETH -22%: Aave, Morpho and the 5x ETH long are in danger or under
    session = open_session(cfg, "devnet", vols={"WETH": 0.8, "WBTC": 0.7})
    try:
        before = {p.key: p for b in session.books for p in b.positions}
        assert any(p.liquidatable for p in before.values())
        plans = plan_now(session)
        protective = [(book, a) for book, p in plans for a in p.actions
                      if a.kind in (ActionKind.TOP_UP, ActionKind.REPAY, ActionKind.REBALANCE)]
        kinds = {before[a.position_key].protocol for _b, a in protective}
        assert kinds == {Protocol.AAVE_V3, Protocol.MORPHO_BLUE, Protocol.PERP}
        # Before the keeper acts, GMX's own liquidation of the endangered perp succeeds (eth_call).
        perp_under = [p for p in before.values() if p.protocol is Protocol.PERP and p.liquidatable]
        assert perp_under
        for p in perp_under:
            gmx_liquidation(w3, devnet, p.account, p.market).call({"from": devnet["roles"]["liquidator"]})
        for book, action in protective:
            out, fresh, _requests = execute(cfg, session, book, action)
            assert out.receipt().ok
            assert fresh is not None and fresh.health_wad >= WAD
            assert fresh.health > before[action.position_key].health
        # Every action is in the journal, mined.
        with Store.open(cfg.store.url) as store:
            entries = Journal(store).entries("devnet")
            assert len(entries) == len(protective) and all(e.status == "mined" for e in entries)
        after = {p.key: p for p in session.reader.read().positions}
        for _book, action in protective:
            assert liquidation_reverts(w3, devnet, after[action.position_key])
    finally:
        session.close()


def test_excess_is_released_and_stays_above_the_floor(cfg, w3, devnet):
    session = open_session(cfg, "devnet", vols={"WETH": 0.8, "WBTC": 0.7})
    try:
        plans = plan_now(session)
        releases = [(book, a) for book, p in plans for a in p.actions if a.kind is ActionKind.WITHDRAW_EXCESS]
        assert releases, "the 3x BTC short in calm markets has margin to release"
        for book, action in releases:
            vault = w3.eth.contract(address=Web3.to_checksum_address(book.vault), abi=C.ours("KeeperVault").abi)
            reserve_before = token(w3, devnet, action.asset.symbol).functions.balanceOf(vault.address).call() \
                if action.asset.symbol in devnet["tokens"] else None
            _out, fresh, _requests = execute(cfg, session, book, action)
            floor = book.floors[action.position_key]
            assert fresh.health >= floor
            if reserve_before is not None:
                assert token(w3, devnet, action.asset.symbol).functions.balanceOf(vault.address).call() > reserve_before
            assert vault.functions.paused().call() is False
    finally:
        session.close()


def test_a_guardrail_revert_is_decoded_and_nothing_is_sent(cfg, w3, devnet):
    from keeper.app.manual import find, manual_action, simulate_on_chain

    session = open_session(cfg, "devnet", vols={"WETH": 0.8})
    try:
        pos, book = find(session, f"{devnet['keeper_vaults']['alice']['address'][:10]}:aave")
        action = manual_action(session, pos, book, amount=1.0, asset="WETH")
        # The owner pauses the vault: the keeper's call must be refused in simulation, by name.
        vault = w3.eth.contract(address=Web3.to_checksum_address(book.vault), abi=C.ours("KeeperVault").abi)
        Deployer(w3, devnet["roles"]["admin"]).send(vault.functions.pause(), sender=devnet["roles"]["alice"])
        nonce = w3.eth.get_transaction_count(devnet["roles"]["keeper"])
        with pytest.raises(Reverted) as e:
            simulate_on_chain(cfg, session, book, action)
        assert e.value.reason == "IsPaused" and "IsPaused" in str(e.value)
        assert w3.eth.get_transaction_count(devnet["roles"]["keeper"]) == nonce
    finally:
        session.close()


def test_a_short_reserve_is_allocated_by_expected_loss_with_an_alert(cfg, w3, devnet):
    """Alice takes almost all of her vault's reserve out; then a crash: the keeper cannot save every
    position, allocates what is left by expected loss avoided, and says so."""
    alice_vault = w3.eth.contract(address=devnet["keeper_vaults"]["alice"]["address"], abi=C.ours("KeeperVault").abi)
    d = Deployer(w3, devnet["roles"]["admin"])
    for sym in ("WETH", "WBTC", "USDC"):
        t = token(w3, devnet, sym)
        bal = t.functions.balanceOf(alice_vault.address).call()
        d.send(alice_vault.functions.withdraw(t.address, bal - bal // 50), sender=devnet["roles"]["alice"])  # keep 2%
    set_price(w3, devnet, "ETH", 1_450)
    session = open_session(cfg, "devnet", vols={"WETH": 0.8, "WBTC": 0.7})
    try:
        plans = {book.vault: p for book, p in plan_now(session)}
        p = plans[Address(alice_vault.address)]
        assert any("reserve short" in a.text for a in p.alerts), p.alerts
        assert p.allocation is not None and p.allocation.reserve_short
        spent: dict[str, int] = {}
        for a in p.actions:
            if a.kind in (ActionKind.TOP_UP, ActionKind.REPAY):
                spent[a.asset.address.lower()] = spent.get(a.asset.address.lower(), 0) + a.amount_raw
        book = next(b for b in session.books if b.vault == Address(alice_vault.address))
        for addr, amount in spent.items():
            assert amount <= book.reserve.get(addr)  # never plans more than the vault holds
    finally:
        session.close()
