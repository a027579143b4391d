"""KeeperVault on anvil against the real Aave v3, the real Morpho Blue and the real GMX v1 (the
session's devnets, GMX in its default gated mode): a hostile keeper is refused with named errors,
the honest paths move funds only between the vault and the owner's/vault's own positions, and
every KeeperAction event carries health before/after equal to what the protocol itself shows at
the same block and timestamp. GMX specifics in both of its modes: ``../test_keeper_vault_gmx.py``.

Every test runs on both Aave versions (``conftest.py``: module-scoped ``aave_version``, v3.0.2 and
v3.7, each on its own anvil). One module-wide set-up per version (a fresh vault with its own caps,
allow-list and positions) is built once on top of that devnet; every test reverts to it
(``snapshot``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from keeper.chain import contracts as C
from keeper.devnet.aave_origin import rate_data
from tests.contracts.vault_env import (
    AAVE,
    CAPS,
    DAY,
    E6,
    E8,
    E18,
    FLOOR_AAVE,
    FLOOR_MORPHO,
    FLOOR_PERP,
    MAX,
    MIN_FLOOR,
    MORPHO,
    PERP,
    REBALANCE_IN,
    REBALANCE_OUT,
    REPAY,
    TOP_UP,
    USD30,
    WITHDRAW_EXCESS,
    ZERO,
    asset_key,
)

pytestmark = pytest.mark.usefixtures("snapshot")

# The world (per Aave version, ``env``): ``conftest.py`` here.


# ---------------------------------------------------------------------------------- hostile keeper


def test_owner_functions_refuse_keeper_and_stranger(env):
    v, weth = env.vault.functions, env.tok["WETH"].address
    calls = [
        v.deposit(weth, 1), v.withdraw(weth, 1), v.withdraw(weth, MAX), v.withdraw(ZERO, 1),
        v.execute(weth, 0, env.tok["WETH"].encode_abi("transfer", [env.stranger, E18])),
        v.setKeeper(env.stranger), v.pause(), v.unpause(), v.transferOwnership(env.stranger), v.setCapWindow(1),
        v.setCap(weth, MAX, MAX), v.setMinAction(weth, 1), v.setReleaseCap(weth, MAX),
        v.setMarket(AAVE, env.pool.address, asset_key(env.tok["WBTC"].address), True, MIN_FLOOR),
        v.setPerpMarket(env.perp.address, weth, weth, True, True, MIN_FLOOR),
        v.setPerpRoute(env.perp.address, env.gmx.position_router.address, MAX),
        v.setAccountFloor(env.pool.address, env.owner, MIN_FLOOR), v.setFeed(env.stranger, 60),
        v.executeBatch([(weth, 0, env.tok["WETH"].encode_abi("transfer", [env.stranger, E18]))]),
    ]
    for who in (env.keeper, env.stranger):
        for fn in calls:
            assert env.err(fn, who).name == "NotOwner", fn.fn_name
        assert env.err(v.acceptOwnership(), who).name == "NotPendingOwner"
    assert env.bal("WETH", env.vault.address) == 23 * E18  # 40 - 10 - 5 - 2: nothing moved


def test_keeper_functions_refuse_everyone_else(env):
    v, ref = env.vault.functions, env.aave("WETH", env.vault.address)
    for who in (env.owner, env.stranger):
        for fn in (v.topUp(ref, E18), v.repay(env.aave("USDC", env.vault.address), E6), v.withdrawExcess(ref, E18),
                   v.rebalance(ref, E18, env.morpho_ref(env.vault.address)),
                   v.executePerpRequest(env.perp.address, bytes(32)), v.cancelPerpRequest(env.perp.address, bytes(32))):
            assert env.err(fn, who).name == "NotKeeper"


def test_keeper_cannot_reach_a_strangers_position(env):
    """Even a stranger who authorised the vault everywhere cannot receive anything from the keeper."""
    s, v, weth, usdc = env.stranger, env.vault.functions, env.tok["WETH"], env.tok["USDC"]
    env.send(weth.functions.mint(s, 10 * E18), s)
    env.send(weth.functions.approve(env.pool.address, MAX), s)
    env.send(env.pool.functions.supply(weth.address, 10 * E18, s, 0), s)
    env.send(env.pool.functions.borrow(usdc.address, 1_000 * E6, 2, 0, s), s)
    env.send(env.a_weth.functions.approve(env.vault.address, MAX), s)
    env.send(env.morpho.functions.setAuthorization(env.vault.address, True), s)
    env.send(env.perp.functions.addRouter(env.vault.address), s)
    mine = env.vault.address
    for ref in (env.aave("WETH", s), env.morpho_ref(s), env.perp_ref(s)):
        for fn in (v.topUp(ref, E18), v.withdrawExcess(ref, E18), v.rebalance(env.aave("WETH", mine), E18, ref),
                   v.rebalance(ref, E18, env.aave("WETH", mine))):
            r = env.err(fn, env.keeper)
            assert (r.name, r.args) == ("NotOwnPosition", (s,)), (fn.fn_name, ref)
    r = env.err(v.repay(env.aave("USDC", s), 100 * E6), env.keeper)
    assert (r.name, r.args) == ("NotOwnPosition", (s,))
    # a "position" whose account is the keeper itself, or the token contract, is no better
    for acct in (env.keeper, weth.address):
        assert env.err(v.topUp(env.aave("WETH", acct), E18), env.keeper).name == "NotOwnPosition"
    assert env.bal("WETH", mine) == 23 * E18 and env.bal("USDC", mine) == 30_000 * E6 + 15_000 * E6


def test_not_allow_listed(env):
    v, k, mine = env.vault.functions, env.keeper, env.vault.address
    wbtc = env.aave("WBTC", mine)  # has no allow-list entry (and no cap)
    fake_pool = (AAVE, env.stranger, asset_key(env.tok["WETH"].address), mine)
    wrong_kind = (MORPHO, env.pool.address, asset_key(env.tok["WETH"].address), mine)
    bad_kind = (7, env.pool.address, asset_key(env.tok["WETH"].address), mine)
    for ref in (wbtc, fake_pool, wrong_kind, bad_kind):
        r = env.err(v.topUp(ref, E8), k)
        assert (r.name, r.args) == ("NotAllowed", (ref[0], ref[1], ref[2])), ref
        assert env.err(v.withdrawExcess(ref, E8), k).name == "NotAllowed"
        assert env.err(v.rebalance(env.aave("WETH", mine), E8, ref), k).name == "NotAllowed"
    # the owner takes a market off the list
    env.send(v.setMarket(MORPHO, env.morpho.address, env.mid, False, 0), env.owner)
    assert env.err(v.topUp(env.morpho_ref(mine), E18), k).name == "NotAllowed"
    assert env.vault.functions.markets(MORPHO, env.morpho.address, env.mid).call() == [False, 0]


def test_owner_config_is_validated(env):
    v, o = env.vault.functions, env.owner
    assert v.MIN_HEALTH_FLOOR().call() == MIN_FLOOR
    for floor in (E18, MIN_FLOOR - 1):  # the liquidation line itself, or just under the minimum
        r = env.err(v.setMarket(AAVE, env.pool.address, asset_key(env.tok["WBTC"].address), True, floor), o)
        assert (r.name, r.args) == ("FloorTooLow", (floor,))
        assert env.err(v.setPerpMarket(env.perp.address, *env.perp_params, True, floor), o).name == "FloorTooLow"
        assert env.err(v.setAccountFloor(env.pool.address, o, floor), o).name == "FloorTooLow"
    assert env.err(v.setMarket(3, env.pool.address, env.mid, True, MIN_FLOOR), o).name == "InvalidKind"
    assert env.err(v.setMarket(MORPHO, env.morpho.address, b"\x01" * 32, True, MIN_FLOOR), o).name == "InvalidMarket"
    assert env.err(v.setMarket(AAVE, env.pool.address, b"\x01" * 32, True, MIN_FLOOR), o).name == "InvalidMarket"
    assert env.err(v.setMarket(PERP, env.perp.address, b"\x01" * 32, True, MIN_FLOOR), o).name == "InvalidMarket"
    assert env.err(v.setFeed(ZERO, 60), o).name == "ZeroAddress"
    assert env.err(v.setCapWindow(0), o).name == "InvalidCapWindow"


def test_caps_per_call(env):
    v, k, mine = env.vault.functions, env.keeper, env.vault.address
    weth = env.tok["WETH"].address
    r = env.err(v.topUp(env.aave("WETH", mine), 5 * E18 + 1), k)
    assert (r.name, r.args) == ("CapPerCallExceeded", (weth, 5 * E18 + 1, 5 * E18))
    # repay counts what the pool takes: with 15,000 USDC of debt, all 10,000 + 1 wei are spent
    env.exec(env.pool, "borrow", [env.tok["USDC"].address, 5_000 * E6, 2, 0, mine])
    r = env.err(v.repay(env.aave("USDC", mine), 10_000 * E6 + 1), k)
    assert r.name == "CapPerCallExceeded" and r.args[1:] == (10_000 * E6 + 1, 10_000 * E6)
    # an asset with no cap cannot be moved at all, even on an allow-listed market
    env.send(v.setMarket(AAVE, env.pool.address, asset_key(env.tok["WBTC"].address), True, MIN_FLOOR), env.owner)
    env.send(env.tok["WBTC"].functions.transfer(mine, E8), env.owner)
    r = env.err(v.topUp(env.aave("WBTC", mine), 1), k)
    assert (r.name, r.args) == ("CapPerCallExceeded", (env.tok["WBTC"].address, 1, 0))
    # withdrawals count what arrives
    env.send(v.setCap(weth, E18, 8 * E18), env.owner)
    r = env.err(v.withdrawExcess(env.aave("WETH", env.owner), 2 * E18), k)
    assert (r.name, r.args[0], r.args[2]) == ("CapPerCallExceeded", weth, E18)
    assert abs(r.args[1] - 2 * E18) <= env.rounding


def test_cap_window_rolls(env):
    v, k, weth = env.vault.functions, env.keeper, env.tok["WETH"].address
    ref = env.aave("WETH", env.vault.address)
    assert v.capWindow().call() == DAY and v.caps(weth).call() == list(CAPS["WETH"])
    env.send(v.topUp(ref, 5 * E18), k)
    t0 = env.w3.eth.get_block("latest")["timestamp"]
    env.warp(DAY // 2)
    env.send(v.topUp(ref, 3 * E18), k)
    assert v.windowUsed(weth).call() == 8 * E18
    r = env.err(v.topUp(ref, 1), k)
    assert (r.name, r.args) == ("CapPerWindowExceeded", (weth, 8 * E18 + 1, 8 * E18))
    # a block 1 s before the first spend leaves the window still counts it; the next does not
    env.at_time(t0 + DAY - 1)
    assert v.windowUsed(weth).call() == 8 * E18
    env.at_time(t0 + DAY)
    assert v.windowUsed(weth).call() == 3 * E18  # only the later 3 WETH: 5 fit again, 5 + 1 wei do not
    r = env.err(v.topUp(ref, 5 * E18 + 1), k)
    assert r.name == "CapPerCallExceeded"
    env.send(v.topUp(ref, 5 * E18), k)
    assert env.err(v.topUp(ref, 1), k).name == "CapPerWindowExceeded"
    env.warp(DAY)
    assert v.windowUsed(weth).call() == 0
    env.send(v.topUp(ref, 5 * E18), k)
    # the owner can shorten the window
    env.send(v.setCapWindow(60), env.owner)
    env.warp(61)
    env.send(v.topUp(ref, 5 * E18), k)


def test_window_ring_is_bounded(env):
    v, k, weth = env.vault.functions, env.keeper, env.tok["WETH"].address
    ref = env.aave("WETH", env.vault.address)
    n = v.MAX_WINDOW_ENTRIES().call()
    for _ in range(n):  # withdrawals: a top-up this small would not raise health (HealthNotRaised)
        env.send(v.withdrawExcess(ref, 1000), k)
        env.warp(1)
    r = env.err(v.withdrawExcess(ref, 1000), k)
    assert r.name == "CapWindowFull" and r.args[0] == weth
    assert v.windowUsed(weth).call() == n * 1000
    env.at_time(r.args[1])  # the oldest record expires
    # the withdrawal pinned to that same second: the next record, 1 s younger, still counts however
    # slowly this machine sends (unpinned, a loaded machine's clock had moved on and expired two)
    env.w3.provider.make_request("evm_setNextBlockTimestamp", [r.args[1]])
    env.send(v.withdrawExcess(ref, 1000), k)
    assert v.windowUsed(weth).call() == n * 1000


def fill_with_dust(env, ref, n: int) -> None:
    """A stolen key's cheapest attack on the caps: n one-wei withdrawals, one per second."""
    for _ in range(n):
        env.send(env.vault.functions.withdrawExcess(ref, 1), env.keeper)
        env.warp(1)


def test_rotation_clears_a_stolen_keys_windows(env):
    """A stolen key fills WETH's window with 32 one-wei records and USDC's with its whole value cap;
    the owner rotates with setKeeper and the new keeper acts at once, on both assets."""
    v, o, mine, new = env.vault.functions, env.owner, env.vault.address, env.stranger
    weth, usdc = env.tok["WETH"].address, env.tok["USDC"].address
    ref = env.aave("WETH", mine)
    fill_with_dust(env, ref, v.MAX_WINDOW_ENTRIES().call())
    assert env.err(v.topUp(ref, E18), env.keeper).name == "CapWindowFull"
    for r, amount in ((env.aave("USDC", mine), 5_000 * E6), (env.morpho_ref(mine), 4_000 * E6),
                      (env.aave("USDC", o), 6_000 * E6)):
        env.send(v.repay(r, amount), env.keeper)
    assert v.windowUsed(usdc).call() == CAPS["USDC"][1]
    assert env.err(v.repay(env.aave("USDC", o), E6), env.keeper).name == "CapPerWindowExceeded"
    rc = env.send(v.setKeeper(new), o)
    assert [e["args"]["keeper"] for e in env.vault.events.KeeperSet().process_receipt(rc)] == [new]
    assert v.windowUsed(weth).call() == 0 and v.windowUsed(usdc).call() == 0
    assert env.err(v.topUp(ref, E18), env.keeper).name == "NotKeeper"  # the stolen key is out
    env.send(v.topUp(ref, 5 * E18), new)  # the same block's timestamp region: no waiting
    env.send(v.repay(env.aave("USDC", o), 1_000 * E6), new)
    assert v.windowUsed(weth).call() == 5 * E18 and v.windowUsed(usdc).call() == 1_000 * E6
    # the new keeper's own window is bounded as before
    assert env.err(v.topUp(ref, 3 * E18 + 1), new).name == "CapPerWindowExceeded"


def test_min_action_makes_dust_impossible(env):
    v, o, k, mine = env.vault.functions, env.owner, env.keeper, env.vault.address
    weth, usdc = env.tok["WETH"].address, env.tok["USDC"].address
    assert v.minAction(weth).call() == 0  # the default: no minimum
    minimum = CAPS["WETH"][1] // v.MAX_WINDOW_ENTRIES().call()  # 32 minimal actions fill the value cap
    rc = env.send(v.setMinAction(weth, minimum), o)
    (ev,) = env.vault.events.MinActionSet().process_receipt(rc)
    assert (ev["args"]["asset"], ev["args"]["minimum"]) == (weth, minimum) and v.minAction(weth).call() == minimum
    env.send(v.setMinAction(usdc, 10 * E6), o)
    ref = env.aave("WETH", mine)
    # the dust attack of the rotation test fails at its first step, and every keeper path checks
    for fn, amount in ((v.withdrawExcess(ref, 1), 1), (v.topUp(ref, 1), 1), (v.topUp(ref, minimum - 1), minimum - 1),
                       (v.rebalance(env.aave("WETH", o), 1, ref), 1)):
        r = env.err(fn, k)
        assert (r.name, r.args[0], r.args[2]) == ("ActionTooSmall", weth, minimum), (fn.fn_name, r)
        assert abs(r.args[1] - amount) <= env.rounding
    r = env.err(v.repay(env.aave("USDC", mine), 10 * E6 - 1), k)
    assert (r.name, r.args) == ("ActionTooSmall", (usdc, 10 * E6 - 1, 10 * E6))
    assert v.windowUsed(weth).call() == 0 and v.windowUsed(usdc).call() == 0
    # at the minimum it goes through; a ring of such records holds the whole value cap, so the
    # value cap, not the ring, is what a stolen key can exhaust, and a rotation clears that
    env.send(v.topUp(ref, minimum), k)
    env.send(v.repay(env.aave("USDC", mine), 10 * E6), k)
    assert v.windowUsed(weth).call() == minimum
    env.send(v.setMinAction(weth, 0), o)
    env.send(v.withdrawExcess(ref, 1), k)


def test_top_up_and_repay_must_raise_health(env):
    """A top-up (or a rebalance's destination) that leaves health where it was reverts with
    HealthNotRaised. A repay that does not raise health is not reachable on these protocols: a
    repay of even 1 or 2 wei lowers the debt Aave and Morpho count, or the protocol refuses it
    (Aave v3.7: InvalidBurnAmount; no debt: both revert); the vault checks it all the same. A
    release below the floor: ``test_withdraw_below_health_floor``."""
    v, k, mine = env.vault.functions, env.keeper, env.vault.address
    # 1 wei of WETH is below Morpho's resolution here (max borrow = collateral * price / 1e36 in
    # USDC units: 2e-9 of a unit per wei): the position's health does not move. (Aave's is rounding
    # luck: 1 wei is refused by v3.7 itself, 1,000 wei can cross a unit of its 8-decimal USD base.)
    m = env.morpho_ref(mine)
    r = env.err(v.topUp(m, 1), k)
    assert r.name == "HealthNotRaised" and r.args[0] == r.args[1] < MAX, r
    # a position without debt (health "infinite") cannot be raised: the owner repays the vault's
    # Morpho loan; a keeper top-up there, or a rebalance into it, is refused
    env.exec(env.tok["USDC"], "approve", [env.morpho.address, MAX])
    shares = env.morpho.functions.position(env.mid, mine).call()[1]
    env.exec(env.morpho, "repay", [env.params, 0, shares, mine, b""])
    assert v.health(m).call() == MAX
    for fn in (v.topUp(m, E18), v.rebalance(env.aave("WETH", env.owner), E18, m)):
        r = env.err(fn, k)
        assert (r.name, r.args) == ("HealthNotRaised", (MAX, MAX)), fn.fn_name
    # a real top-up on a position with debt raises it
    ref = env.aave("WETH", mine)
    env.check_action(ref, v.topUp(ref, E18), action=TOP_UP, asset="WETH", amount=E18)
    assert env.bal("WETH", mine) == 23 * E18 - E18


@pytest.mark.parametrize("where", ["aave-vault", "aave-owner", "morpho-vault", "morpho-owner", "perp-vault",
                                   "perp-owner"])
def test_withdraw_below_health_floor(env, where):
    kind, holder = where.split("-")
    account = env.vault.address if holder == "vault" else env.owner
    ref = {"aave": lambda: env.aave("WETH", account), "morpho": lambda: env.morpho_ref(account),
           "perp": lambda: env.perp_ref(account)}[kind]()
    floor = {"aave": FLOOR_AAVE, "morpho": FLOOR_MORPHO, "perp": FLOOR_PERP}[kind]
    if kind == "perp":
        env.gmx.sync_funding(env.perp_name)
    health = env.protocol_health(ref)
    assert health > floor
    # the amount that would leave health half way between 1 (the protocol's own limit) and the
    # floor: health is linear in the collateral
    target = (E18 + floor) // 2
    if kind == "aave":
        amount = 10 * E18 * (health - target) // health
    elif kind == "morpho":
        amount = 5 * E18 * (health - target) // health
    else:  # GMX: health = remaining * maxLeverage / size here (the liquidation-fee term is far looser)
        size = env.gmx.position(account, env.perp_name)[0]
        remaining_at = lambda h: h * size * 10_000 // (env.perp.functions.maxLeverage().call() * E18)  # noqa: E731
        amount = remaining_at(health) - remaining_at(target)
    r = env.err(env.vault.functions.withdrawExcess(ref, amount), env.keeper)
    assert r.name == "BelowHealthFloor" and r.args[1] == floor and r.args[0] < floor, r
    r = env.err(env.vault.functions.rebalance(ref, amount, env.aave("WETH", env.vault.address)), env.keeper)
    assert r.name == "BelowHealthFloor"
    # a third of it is fine
    env.check_action(ref, env.vault.functions.withdrawExcess(ref, amount // 3), action=WITHDRAW_EXCESS, asset="WETH")
    assert env.protocol_health(ref) >= floor


def test_paused(env):
    v, k, mine = env.vault.functions, env.keeper, env.vault.address
    env.send(v.pause(), env.owner)
    assert v.paused().call() is True
    for fn in (v.topUp(env.aave("WETH", mine), E18), v.repay(env.aave("USDC", mine), E6),
               v.withdrawExcess(env.morpho_ref(mine), E18),
               v.rebalance(env.aave("WETH", mine), E18, env.morpho_ref(mine)),
               v.topUp(env.perp_ref(mine), E18), v.executePerpRequest(env.perp.address, bytes(32)),
               v.cancelPerpRequest(env.perp.address, bytes(32))):
        assert env.err(fn, k).name == "IsPaused"
    # the owner still does anything, including config
    env.send(v.setCap(env.tok["WETH"].address, E18, E18), env.owner)
    env.send(v.unpause(), env.owner)
    env.send(v.topUp(env.aave("WETH", mine), E18), k)


def test_owner_withdraws_everything_while_paused(env):
    v, o, mine = env.vault.functions, env.owner, env.vault.address
    env.send(v.pause(), o)
    env.send(env.tok["USDC"].functions.approve(mine, E6), o)
    env.send(v.deposit(env.tok["USDC"].address, E6), o)  # deposits work while paused too
    env.d.send_value(mine, E18, sender=env.stranger)  # waits for the receipt
    eth_before, eth_held = env.w3.eth.get_balance(o), env.w3.eth.get_balance(mine)
    assert eth_held == E18 + 50 * env.fee  # the execution-fee ether is the owner's too
    rc = env.send(v.withdraw(ZERO, MAX), o)
    gas = rc["gasUsed"] * rc["effectiveGasPrice"]
    assert env.w3.eth.get_balance(o) == eth_before + eth_held - gas and env.w3.eth.get_balance(mine) == 0
    # unwind the vault-held Morpho position through execute, then take every token home
    env.exec(env.tok["USDC"], "approve", [env.morpho.address, MAX])
    shares = env.morpho.functions.position(env.mid, mine).call()[1]
    env.exec(env.morpho, "repay", [env.params, 0, shares, mine, b""])
    env.exec(env.morpho, "withdrawCollateral", [env.params, 5 * E18, mine, mine])
    for sym in ("WETH", "USDC"):
        held, home = env.bal(sym, mine), env.bal(sym, o)
        env.send(v.withdraw(env.tok[sym].address, MAX), o)
        assert env.bal(sym, mine) == 0 and env.bal(sym, o) == home + held
    # all of it but what is still in open positions: owner-held 10 + 5 + 3, vault-held Aave 10, perp 2
    assert env.bal("WETH", o) == 100 * E18 - 18 * E18 - 12 * E18


def revoke_grants(env) -> None:
    """The owner takes back what it let the vault do on its own positions (see the grant tests in
    ``test_vault_hardening.py``): aWETH allowance, Morpho authorization, GMX router."""
    o, v = env.owner, env.vault.address
    env.send(env.a_weth.functions.approve(v, 0), o)
    env.send(env.morpho.functions.setAuthorization(v, False), o)
    env.send(env.perp.functions.removeRouter(v), o)


def test_two_step_ownership(env):
    v, o, new = env.vault.functions, env.owner, env.stranger
    revoke_grants(env)
    env.send(v.transferOwnership(new), o)
    assert v.owner().call() == o and v.pendingOwner().call() == new
    assert env.err(v.acceptOwnership(), env.keeper).name == "NotPendingOwner"
    env.send(v.acceptOwnership(), new)
    assert v.owner().call() == new
    assert env.err(v.pause(), o).name == "NotOwner"
    # the old owner's positions are no longer "own": the keeper cannot touch them
    assert env.err(v.topUp(env.aave("WETH", o), E18), env.keeper).name == "NotOwnPosition"
    env.send(v.setKeeper(env.stranger), new)
    assert env.err(v.topUp(env.aave("WETH", env.vault.address), E18), env.keeper).name == "NotKeeper"


@pytest.fixture
def hostile(env, deployer):
    """ReentrantToken in the vault's reserve, with caps, listed on the devnet's real Aave v3 (as a
    reserve without LTV: no oracle needed) and allow-listed there and as a perp collateral."""
    v, o, mine = env.vault.functions, env.owner, env.vault.address
    rt = deployer.deploy(C.ours("ReentrantToken"))
    env.send(rt.functions.mint(o, 100 * E18), o)
    env.send(rt.functions.approve(mine, MAX), o)
    env.send(v.deposit(rt.address, 100 * E18), o)
    env.send(v.setCap(rt.address, 50 * E18, 100 * E18), o)
    env.send(v.setReleaseCap(rt.address, 100 * E18), o)
    admin, aave = env.net["roles"]["admin"], env.net["aave_v3"]
    configurator = deployer.at(aave["pool_configurator"], C.aave_for(env.version, "PoolConfigurator"))
    if env.version == "3.0":
        impls = [deployer.deploy(C.aave(n), env.pool.address).address for n in ("AToken", "StableDebtToken",
                                                                              "VariableDebtToken")]
        reserve = (*impls, 18, aave["interest_rate_strategy"], rt.address, admin, ZERO,
                   "aREENT", "aREENT", "vdREENT", "vdREENT", "sdREENT", "sdREENT", b"")
    else:  # v3.7: no stable debt token; the pool's one strategy takes the curve, abi-encoded
        a_impl = deployer.deploy(C.aave_origin("ATokenInstance"), env.pool.address, ZERO, admin).address
        v_impl = deployer.deploy(C.aave_origin("VariableDebtTokenInstance"), env.pool.address, ZERO).address
        reserve = (a_impl, v_impl, rt.address, "aREENT", "aREENT", "vdREENT", "vdREENT", b"", rate_data())
    env.send(configurator.functions.initReserves([reserve]), admin)
    env.send(v.setMarket(AAVE, env.pool.address, asset_key(rt.address), True, MIN_FLOOR), o)
    perp_market = v.setPerpMarket(env.perp.address, rt.address, env.tok["WETH"].address, True, True,
                                  MIN_FLOOR).call({"from": o})
    env.send(v.setPerpMarket(env.perp.address, rt.address, env.tok["WETH"].address, True, True, MIN_FLOOR), o)
    return SimpleNamespace(token=rt, aave=(AAVE, env.pool.address, asset_key(rt.address), mine),
                           perp=(PERP, env.perp.address, perp_market, mine))


def reentry_payloads(env, hostile) -> list[bytes]:
    mine = env.vault.address
    weth = env.aave("WETH", mine)
    return [env.vault.encode_abi("topUp", [hostile.aave, E18]), env.vault.encode_abi("topUp", [weth, E18]),
            env.vault.encode_abi("withdrawExcess", [weth, E18]),
            env.vault.encode_abi("repay", [env.aave("USDC", mine), E6]),
            env.vault.encode_abi("rebalance", [weth, E18, env.morpho_ref(mine)])]


def test_reentrancy_through_aave(env, hostile):
    """The token calls back into the vault from inside Aave's supply (the Pool's transferFrom) and
    withdraw (the aToken's transfer): the guard refuses the re-entry and the whole call reverts."""
    v, k, mine, rt = env.vault.functions, env.keeper, env.vault.address, hostile.token
    # Disarmed, an ordinary Aave reserve; without LTV a keeper top-up adds nothing to the vault's
    # health and is refused, so the owner supplies it (the keeper then has something to withdraw).
    r = env.err(v.topUp(hostile.aave, 10 * E18), k)
    assert r.name == "HealthNotRaised" and r.args[0] == r.args[1], r
    env.exec(rt, "approve", [env.pool.address, 10 * E18])
    env.exec(env.pool, "supply", [rt.address, 10 * E18, mine, 0])
    env.send(v.withdrawExcess(hostile.aave, E18), k)
    env.send(v.withdrawExcess(hostile.aave, E18), k)
    env.exec(rt, "approve", [env.pool.address, 0])
    assert env.vault.functions.windowUsed(rt.address).call() == 2 * E18
    for payload in reentry_payloads(env, hostile):
        env.send(rt.functions.arm(mine, payload), env.owner)
        for fn in (v.topUp(hostile.aave, E18), v.withdrawExcess(hostile.aave, E18)):
            r = env.err(fn, k)
            assert r.name == "ReentrancyGuardReentrantCall", (fn.fn_name, r)
    assert rt.functions.reentered().call() == 0
    assert rt.functions.balanceOf(mine).call() == 92 * E18
    assert v.windowUsed(rt.address).call() == 2 * E18


def test_reentrancy_through_a_gmx_request(env, hostile):
    """A gated perp top-up is a PositionRouter request: GMX's Router pulls the token from the vault
    (``pluginTransfer``) inside the vault's call, and the token calls back from there."""
    v, k, mine, rt = env.vault.functions, env.keeper, env.vault.address, hostile.token
    eth = env.w3.eth.get_balance(mine)
    for payload in reentry_payloads(env, hostile):
        env.send(rt.functions.arm(mine, payload), env.owner)
        assert env.err(v.topUp(hostile.perp, E18), k).name == "ReentrancyGuardReentrantCall"
    assert rt.functions.reentered().call() == 0 and rt.functions.balanceOf(mine).call() == 100 * E18
    assert env.w3.eth.get_balance(mine) == eth and v.windowUsed(ZERO).call() == 0
    # Disarmed, the request is made (GMX checks tokens only at execution); the position keeper's
    # execution fails ("Vault: mismatched tokens": a long's collateral must be its index token)
    # and GMX cancels it, sending the tokens back to the vault.
    env.send(rt.functions.arm(ZERO, b""), env.owner)
    rc = env.send(v.topUp(hostile.perp, E18), k)
    (req,) = env.requests(rc)
    assert rt.functions.balanceOf(mine).call() == 99 * E18
    assert env.gmx.keeper.step() == 1
    assert env.gmx.position_router.functions.increasePositionRequests(req["requestKey"]).call()[0] == ZERO
    assert rt.functions.balanceOf(mine).call() == 100 * E18
    assert env.perp.functions.getPosition(mine, rt.address, env.tok["WETH"].address, True).call()[0] == 0


# ---------------------------------------------------------------------------------- honest keeper


@pytest.mark.parametrize("holder", ["vault", "owner"])
def test_aave_top_up_repay_withdraw(env, holder):
    v = env.vault.functions
    acct = env.vault.address if holder == "vault" else env.owner
    weth_ref, usdc_ref = env.aave("WETH", acct), env.aave("USDC", acct)
    a_before = env.a_weth.functions.balanceOf(acct).call()
    env.check_action(weth_ref, v.topUp(weth_ref, 2 * E18), action=TOP_UP, asset="WETH", amount=2 * E18)
    assert env.a_weth.functions.balanceOf(acct).call() >= a_before + 2 * E18 - 1
    env.check_action(usdc_ref, v.repay(usdc_ref, 3_000 * E6), action=REPAY, asset="USDC", amount=3_000 * E6)
    weth_home = env.bal("WETH", env.vault.address)
    _, ev = env.check_action(weth_ref, v.withdrawExcess(weth_ref, 3 * E18), action=WITHDRAW_EXCESS, asset="WETH")
    assert abs(ev["amount"] - 3 * E18) <= env.rounding
    assert env.bal("WETH", env.vault.address) == weth_home + ev["amount"]
    assert ev["healthAfter"] >= FLOOR_AAVE
    assert env.tok["USDC"].functions.allowance(env.vault.address, env.pool.address).call() == 0
    assert env.vault.functions.windowUsed(env.tok["WETH"].address).call() == 2 * E18 + ev["amount"]


def test_aave_repay_more_than_the_debt_keeps_the_rest(env):
    v, mine, usdc = env.vault.functions, env.vault.address, env.tok["USDC"]
    env.exec(usdc, "approve", [env.pool.address, 9_500 * E6])
    env.exec(env.pool, "repay", [usdc.address, 9_500 * E6, 2, mine])
    ref = env.aave("USDC", mine)
    held = env.bal("USDC", mine)
    _rc, ev = env.check_action(ref, v.repay(ref, 2_000 * E6), action=REPAY, asset="USDC")
    # About 500 USDC of debt was left (Aave's ray rounding can make it a unit less); all of it is
    # repaid (no debt after), and the vault keeps the rest of the 2,000.
    assert 499 * E6 <= ev["amount"] < 501 * E6 and ev["healthAfter"] == MAX
    assert env.bal("USDC", mine) == held - ev["amount"]
    assert usdc.functions.allowance(mine, env.pool.address).call() == 0
    assert v.windowUsed(usdc.address).call() == ev["amount"]


@pytest.mark.parametrize("holder", ["vault", "owner"])
def test_morpho_top_up_repay_withdraw(env, holder):
    v = env.vault.functions
    acct = env.vault.address if holder == "vault" else env.owner
    ref = env.morpho_ref(acct)
    env.warp(3_600)  # let interest accrue, so the health views must account for it
    coll0 = env.morpho.functions.position(env.mid, acct).call()[2]
    env.check_action(ref, v.topUp(ref, E18), action=TOP_UP, asset="WETH", amount=E18)
    env.check_action(ref, v.repay(ref, 1_000 * E6), action=REPAY, asset="USDC", amount=1_000 * E6)
    weth_home = env.bal("WETH", env.vault.address)
    env.check_action(ref, v.withdrawExcess(ref, 2 * E18), action=WITHDRAW_EXCESS, asset="WETH", amount=2 * E18)
    assert env.bal("WETH", env.vault.address) == weth_home + 2 * E18
    assert env.morpho.functions.position(env.mid, acct).call()[2] == coll0 - E18


@pytest.mark.parametrize("holder", ["vault", "owner"])
def test_perp_top_up_and_withdraw(env, holder):
    """Gated GMX: a vault-held top-up is a request the position keeper executes (less GMX's 0.3%
    deposit fee on a long's collateral); an owner-held one cannot be requested. Withdrawals are
    direct decreasePosition calls for both."""
    v, mine, weth = env.vault.functions, env.vault.address, env.tok["WETH"].address
    acct = mine if holder == "vault" else env.owner
    ref = env.perp_ref(acct)
    if holder == "vault":
        env.gmx.fresh_interval(env.perp_name)  # no funding between the request and its execution
        before = env.protocol_health(ref)
        coll0, funding = env.gmx.position(acct, env.perp_name)[1], env.gmx.funding_fee(acct, env.perp_name)
        rc = env.frozen(v.topUp(ref, E18), env.keeper)
        assert env.events(rc) == []  # nothing moved into the position yet
        (req,) = env.requests(rc)
        assert (req["account"], req["asset"], req["amount"], req["executionFee"]) == (mine, weth, E18, env.fee)
        assert req["healthBefore"] == before and req["market"] == env.perp_market
        assert env.gmx.keeper.step() == 1
        coll1 = env.gmx.position(acct, env.perp_name)[1]
        assert coll1 == coll0 + env.perp.functions.tokenToUsdMin(weth, E18 - E18 * 30 // 10_000).call() - funding
        assert env.protocol_health(ref) > before
        assert v.windowUsed(weth).call() == E18 and v.windowUsed(ZERO).call() == env.fee
    else:
        r = env.err(v.topUp(ref, E18), env.keeper)
        assert (r.name, r.args) == ("GatedOwnerPosition", (env.owner,))
    weth_home = env.bal("WETH", env.vault.address)
    _, ev = env.check_action(ref, v.withdrawExcess(ref, 1_000 * USD30), action=WITHDRAW_EXCESS, asset="WETH")
    # $1,000 less any funding fee charged on the way out, in WETH at the min price
    assert 0 < ev["amount"] <= env.perp.functions.usdToTokenMin(env.tok["WETH"].address, 1_000 * USD30).call()
    assert env.bal("WETH", env.vault.address) == weth_home + ev["amount"]
    assert ev["healthAfter"] >= FLOOR_PERP
    assert env.err(v.repay(ref, E18), env.keeper).name == "UnsupportedAction"


def test_rebalance_between_protocols(env):
    v, mine, o = env.vault.functions, env.vault.address, env.owner
    src, dst = env.aave("WETH", o), env.morpho_ref(mine)
    b_src, b_dst = env.protocol_health(src), env.protocol_health(dst)
    rc = env.frozen(v.rebalance(src, 2 * E18, dst), env.keeper)
    out, into = env.events(rc)
    assert (out["action"], into["action"]) == (REBALANCE_OUT, REBALANCE_IN)
    assert out["amount"] == into["amount"] and abs(out["amount"] - 2 * E18) <= env.rounding
    assert out["account"] == o and into["account"] == mine
    n = rc["blockNumber"]
    assert (out["healthBefore"], out["healthAfter"]) == (b_src, env.protocol_health(src, n))
    assert (into["healthBefore"], into["healthAfter"]) == (b_dst, env.protocol_health(dst, n))
    assert into["healthAfter"] > into["healthBefore"] and out["healthAfter"] >= FLOOR_AAVE
    assert v.windowUsed(env.tok["WETH"].address).call() == out["amount"]  # counted once
    # Morpho (owner) -> perp (vault, gated): the perp side is a PositionRouter request
    rc = env.frozen(v.rebalance(env.morpho_ref(o), E18, env.perp_ref(mine)), env.keeper)
    (out,), (req,) = env.events(rc), env.requests(rc)
    assert out["action"] == REBALANCE_OUT and out["amount"] == req["amount"] == E18 and req["account"] == mine
    assert env.gmx.keeper.step() == 1
    # perp (vault, a USD amount) -> Aave (vault)
    rc = env.frozen(v.rebalance(env.perp_ref(mine), 500 * USD30, env.aave("WETH", mine)), env.keeper)
    out, into = env.events(rc)
    assert out["amount"] == into["amount"] > 0 and into["asset"] == env.tok["WETH"].address
    # the asset must match
    r = env.err(v.rebalance(env.aave("USDC", mine), 100 * E6, dst), env.keeper)
    assert (r.name, r.args) == ("AssetMismatch", (env.tok["USDC"].address, env.tok["WETH"].address))


def test_zero_amounts_and_views(env):
    v, k, mine = env.vault.functions, env.keeper, env.vault.address
    for fn in (v.topUp(env.aave("WETH", mine), 0), v.repay(env.aave("USDC", mine), 0),
               v.withdrawExcess(env.aave("WETH", mine), 0),
               v.rebalance(env.aave("WETH", mine), 0, env.morpho_ref(mine))):
        assert env.err(fn, k).name == "ZeroAmount"
    assert v.owner().call() == env.owner and v.keeper().call() == env.keeper
    assert v.perpMarkets(env.perp_market).call() == [*env.perp_params]
    assert v.markets(AAVE, env.pool.address, asset_key(env.tok["WETH"].address)).call() == [True, FLOOR_AAVE]
    for ref in (env.aave("WETH", mine), env.aave("WETH", env.owner), env.morpho_ref(mine), env.morpho_ref(env.owner),
                env.perp_ref(mine), env.perp_ref(env.owner)):
        assert v.health(ref).call() == env.protocol_health(ref)
    assert v.health(env.aave("WETH", env.stranger)).call() == MAX  # no debt
