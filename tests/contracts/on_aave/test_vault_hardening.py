"""The audit's exploits against the KeeperVault, on the real Aave v3 (both versions) and the real
Morpho Blue, each now failing to steal with a named error, and each next to a control that shows the
mechanism is real on the same chain:

- an engineered liquidation by interest alone: a floor of 1.0 is refused; the deepest withdrawal the
  minimum floor (1.05) allows survives a year of interest, where the owner's own withdrawal to
  1.0005 (what the old floor let a keeper do) is liquidated with a bonus to a third party;
- an engineered liquidation by an oracle update: the floor F names the largest single adverse move
  the owner accepts, 1 - 1/F: a move inside it leaves the keeper's deepest withdrawal alive, one
  beyond it does not (what the floor cannot stop, and the README says so); the release window bounds
  how far a key can push positions towards the floor in one window;
- the per-asset floor bypass on Aave: the floor is the account's, the strictest of the pool's allowed
  assets or an explicit account floor, whatever asset leaves;
- the grant drain after an ownership transfer: refused while the owner still grants the vault
  anything, at both steps;
- releases with a stale, future or non-positive Chainlink answer, when the owner asked for freshness.

The world (``env``, per Aave version): ``conftest.py`` here."""

from __future__ import annotations

import pytest

from keeper.chain import contracts as C
from keeper.errors import Reverted
from tests.conftest import evm_revert, evm_snapshot
from tests.contracts.vault_env import (
    AAVE,
    CAPS,
    DAY,
    E6,
    E8,
    E18,
    FLOOR_AAVE,
    MAX,
    MIN_FLOOR,
    REBALANCE_OUT,
    WITHDRAW_EXCESS,
    asset_key,
)
from tests.devnet.helpers import aave_error, aave_revert_name

pytestmark = pytest.mark.usefixtures("snapshot")

YEAR = 365 * DAY


def mint(env, sym: str, to: str, amount: int) -> None:
    env.send(env.tok[sym].functions.mint(to, amount), to)


def aave_liquidate(env, user: str) -> dict:
    """A third party (``env.stranger``) liquidates 1,000 USDC of ``user``'s Aave debt against WETH."""
    s, usdc = env.stranger, env.tok["USDC"]
    mint(env, "USDC", s, 1_000 * E6)
    env.send(usdc.functions.approve(env.pool.address, MAX), s)
    return env.send(env.pool.functions.liquidationCall(env.tok["WETH"].address, usdc.address, user, 1_000 * E6,
                                                       False), s)


def morpho_liquidate(env, user: str) -> dict:
    """A third party seizes 0.1 WETH of ``user``'s Morpho collateral."""
    s = env.stranger
    mint(env, "USDC", s, 10_000 * E6)
    env.send(env.tok["USDC"].functions.approve(env.morpho.address, MAX), s)
    return env.send(env.morpho.functions.liquidate(env.params, user, E18 // 10, 0, b""), s)


def liquidate(env, kind: str, user: str) -> dict:
    return aave_liquidate(env, user) if kind == "aave" else morpho_liquidate(env, user)


def refused_liquidation(env, kind: str, user: str) -> str:
    with pytest.raises(Reverted) as info:
        liquidate(env, kind, user)
    if kind == "aave":
        return aave_revert_name(info.value, env.net)
    return str(info.value)


def healthy_name(env, kind: str) -> str:
    return aave_error(env.net, "HEALTH_FACTOR_NOT_BELOW_THRESHOLD") if kind == "aave" else "position is healthy"


def at_minimum_floor(env, kind: str) -> tuple:
    """The vault-held position of ``kind`` with its floor set to the vault's minimum (Aave: as the
    account's explicit floor), and its collateral (10 WETH on Aave, 5 on Morpho)."""
    v, o, mine = env.vault.functions, env.owner, env.vault.address
    if kind == "aave":
        env.send(v.setAccountFloor(env.pool.address, mine, MIN_FLOOR), o)
        return env.aave("WETH", mine), 10 * E18
    env.send(v.setMarket(1, env.morpho.address, env.mid, True, MIN_FLOOR), o)
    return env.morpho_ref(mine), 5 * E18


def withdrawal_to(env, ref: tuple, collateral: int, target: int) -> int:
    """The collateral to take out of a single-collateral position to bring its health from now
    to ``target`` (health is linear in the collateral)."""
    h = env.protocol_health(ref)
    return collateral * (h - target) // h


@pytest.mark.parametrize("kind", ["aave", "morpho"])
def test_engineered_liquidation_by_interest(env, kind):
    v, o, k, mine = env.vault.functions, env.owner, env.keeper, env.vault.address
    # The old floor, the liquidation line itself, can no longer be set.
    r = env.err(v.setMarket(1, env.morpho.address, env.mid, True, E18), o)
    assert (r.name, r.args) == ("FloorTooLow", (E18,))
    assert env.err(v.setAccountFloor(env.pool.address, mine, E18), o).name == "FloorTooLow"
    ref, coll = at_minimum_floor(env, kind)

    # Control: what a floor of 1.0 let a keeper do, done here by the owner (no floor on `execute`):
    # withdraw to 1.0005; a year of interest later a third party liquidates it with a bonus.
    snap = evm_snapshot(env.w3)
    amount = withdrawal_to(env, ref, coll, 10_005 * E18 // 10_000)
    if kind == "aave":
        env.exec(env.pool, "withdraw", [env.tok["WETH"].address, amount, mine])
    else:
        env.exec(env.morpho, "withdrawCollateral", [env.params, amount, mine, mine])
    env.warp(YEAR)
    assert env.protocol_health(ref) < E18
    stranger_weth = env.bal("WETH", env.stranger)
    liquidate(env, kind, mine)
    assert env.bal("WETH", env.stranger) > stranger_weth
    evm_revert(env.w3, snap)

    # The keeper cannot get there: below the minimum floor it is refused ...
    r = env.err(v.withdrawExcess(ref, withdrawal_to(env, ref, coll, 10_005 * E18 // 10_000)), k)
    assert r.name == "BelowHealthFloor" and r.args[1] == MIN_FLOOR and r.args[0] < MIN_FLOOR
    # ... and the deepest withdrawal it is allowed survives the same year of interest.
    _, ev = env.check_action(ref, v.withdrawExcess(ref, withdrawal_to(env, ref, coll, MIN_FLOOR + E18 // 1000)),
                             action=WITHDRAW_EXCESS, asset="WETH")
    assert MIN_FLOOR <= ev["healthAfter"] < MIN_FLOOR + E18 // 500
    env.warp(YEAR)
    assert E18 < env.protocol_health(ref) < MIN_FLOOR
    assert healthy_name(env, kind) in refused_liquidation(env, kind, mine)


@pytest.mark.parametrize("kind", ["aave", "morpho"])
def test_floor_names_the_oracle_move_it_survives(env, kind):
    """At a floor of 1.12 (1 - 1/1.12 = 10.7%), the keeper's deepest withdrawal survives a -10% ETH
    update; at 1.10 (9.1%) the same update liquidates it: the floor is the largest single adverse
    move between two updates that the owner accepts, and no more."""
    v, o, k, mine = env.vault.functions, env.owner, env.keeper, env.vault.address
    feed = env.d.at(env.net["feeds"]["ETH"]["address"], C.third_party("MockV3Aggregator"))
    price = feed.functions.latestRoundData().call()[1]
    ref, coll = at_minimum_floor(env, kind)
    for floor, survives in ((112 * E18 // 100, True), (110 * E18 // 100, False)):
        snap = evm_snapshot(env.w3)
        if kind == "aave":
            env.send(v.setAccountFloor(env.pool.address, mine, floor), o)
        else:
            env.send(v.setMarket(1, env.morpho.address, env.mid, True, floor), o)
        assert v.floorOf(ref).call() == floor
        env.send(v.withdrawExcess(ref, withdrawal_to(env, ref, coll, floor + E18 // 1000)), k)
        assert floor <= env.protocol_health(ref) < floor + E18 // 500
        env.send(feed.functions.updateAnswer(price * 9 // 10), env.net["roles"]["admin"])
        if survives:
            assert env.protocol_health(ref) > E18
            assert healthy_name(env, kind) in refused_liquidation(env, kind, mine)
        else:
            assert env.protocol_health(ref) < E18
            liquidate(env, kind, mine)
        evm_revert(env.w3, snap)


def test_release_window_bounds_what_a_key_takes(env):
    """Releases count in their own window per asset: 0 (the default) means none at all; top-ups
    and repays do not count; a rotation starts it afresh."""
    v, o, k, mine = env.vault.functions, env.owner, env.keeper, env.vault.address
    weth = env.tok["WETH"].address
    ref, morpho = env.aave("WETH", mine), env.morpho_ref(mine)
    env.send(v.setReleaseCap(weth, E18), o)
    env.send(v.withdrawExcess(ref, 6 * E18 // 10), k)
    assert v.releaseUsed(weth).call() == 6 * E18 // 10
    for fn in (v.withdrawExcess(ref, 6 * E18 // 10), v.rebalance(ref, 6 * E18 // 10, morpho)):
        r = env.err(fn, k)
        assert (r.name, r.args) == ("CapPerWindowExceeded", (weth, 12 * E18 // 10, E18)), fn.fn_name
    env.send(v.topUp(ref, 2 * E18), k)  # protection does not count as a release
    assert v.releaseUsed(weth).call() == 6 * E18 // 10
    assert v.windowUsed(weth).call() == 26 * E18 // 10
    env.send(v.rebalance(ref, 4 * E18 // 10, morpho), k)  # up to the cap exactly
    env.warp(DAY)
    env.send(v.withdrawExcess(ref, 6 * E18 // 10), k)
    env.send(v.setKeeper(k), o)  # rotation: both windows start again
    assert v.releaseUsed(weth).call() == 0 and v.windowUsed(weth).call() == 0
    env.send(v.setReleaseCap(weth, 0), o)
    r = env.err(v.withdrawExcess(ref, 1), k)
    assert (r.name, r.args) == ("CapPerWindowExceeded", (weth, 1, 0))
    env.send(v.topUp(ref, E18), k)


def test_aave_floor_is_the_accounts(env):
    """The audit's bypass: WETH listed at 1.2, WBTC at 1.05, both collateral of one Aave account. A
    WBTC withdrawal to 1.1 is held to 1.2, the strictest floor of the pool's allowed assets, unless
    the owner sets the account's floor explicitly."""
    v, o, k, mine = env.vault.functions, env.owner, env.keeper, env.vault.address
    wbtc = env.tok["WBTC"]
    env.send(v.setMarket(AAVE, env.pool.address, asset_key(wbtc.address), True, MIN_FLOOR), o)
    env.send(v.setCap(wbtc.address, 10 * E8, 10 * E8), o)
    env.send(v.setReleaseCap(wbtc.address, 10 * E8), o)
    ref, weth_ref = env.aave("WBTC", mine), env.aave("WETH", mine)
    # 1 WBTC next to the 10 WETH, and 6,000 USDC more debt: without its WBTC the account would be at
    # ~1.03, so WBTC alone can take it anywhere between that and its health now.
    env.send(wbtc.functions.transfer(mine, E8), o)
    env.exec(wbtc, "approve", [env.pool.address, E8])
    env.exec(env.pool, "supply", [wbtc.address, E8 // 2, mine, 0])
    env.exec(env.pool, "borrow", [env.tok["USDC"].address, 6_000 * E6, 2, 0, mine])
    half = env.protocol_health(ref)
    env.exec(env.pool, "supply", [wbtc.address, E8 // 2, mine, 0])
    h = env.protocol_health(ref)
    per_sat = (h - half) / (E8 // 2)  # health is linear in the WBTC supplied
    to = lambda target: int((h - target) / per_sat)  # noqa: E731  the WBTC that leaves health at target

    assert v.floorOf(ref).call() == v.floorOf(weth_ref).call() == FLOOR_AAVE
    r = env.err(v.withdrawExcess(ref, to(11 * E18 // 10)), k)
    assert r.name == "BelowHealthFloor" and r.args[1] == FLOOR_AAVE and r.args[0] < FLOOR_AAVE
    # the owner's explicit account floor decides, lower ...
    env.send(v.setAccountFloor(env.pool.address, mine, 108 * E18 // 100), o)
    assert v.floorOf(ref).call() == v.floorOf(weth_ref).call() == 108 * E18 // 100
    env.send(v.withdrawExcess(ref, to(11 * E18 // 10)), k)
    assert 108 * E18 // 100 <= env.protocol_health(ref) < FLOOR_AAVE
    # ... or higher, for every asset of the account
    env.send(v.setAccountFloor(env.pool.address, mine, 2 * E18), o)
    r = env.err(v.withdrawExcess(weth_ref, E18 // 100), k)
    assert (r.name, r.args[1]) == ("BelowHealthFloor", 2 * E18)
    # a market taken off the list stops counting towards the strictest floor
    env.send(v.setAccountFloor(env.pool.address, mine, 0), o)
    for sym in ("WETH", "USDC"):
        env.send(v.setMarket(AAVE, env.pool.address, asset_key(env.tok[sym].address), False, 0), o)
    assert v.floorOf(ref).call() == MIN_FLOOR and v.floorOf(weth_ref).call() == 0


def test_grants_block_an_ownership_transfer(env):
    """The audit's drain: after a transfer the next owner could use the previous owner's grants to
    the vault through `execute`. Each grant is named, in turn, and both steps refuse while one is
    live; revoked, the transfer goes through and the old owner's aTokens stay out of reach."""
    v, o, new, mine = env.vault.functions, env.owner, env.stranger, env.vault.address
    usdc, pool = env.tok["USDC"], env.pool
    debt = pool.functions.getReserveData(usdc.address).call()[10]  # variableDebtTokenAddress
    debt_token = env.d.at(debt, C.aave("VariableDebtToken"))
    env.send(usdc.functions.approve(mine, 1), o)  # a deposit allowance left over
    env.send(debt_token.functions.approveDelegation(mine, E6), o)  # credit delegation
    grants = [
        (usdc.address, lambda: env.send(usdc.functions.approve(mine, 0), o)),
        (env.a_weth.address, lambda: env.send(env.a_weth.functions.approve(mine, 0), o)),
        (debt, lambda: env.send(debt_token.functions.approveDelegation(mine, 0), o)),
        (env.morpho.address, lambda: env.send(env.morpho.functions.setAuthorization(mine, False), o)),
        (env.perp.address, lambda: env.send(env.perp.functions.removeRouter(mine), o)),
    ]
    for where, revoke in grants:
        r = env.err(v.transferOwnership(new), o)
        assert (r.name, r.args) == ("GrantOutstanding", (where,))
        revoke()
    env.send(v.transferOwnership(new), o)
    # a grant made between the two steps stops the second
    env.send(env.morpho.functions.setAuthorization(mine, True), o)
    r = env.err(v.acceptOwnership(), new)
    assert (r.name, r.args) == ("GrantOutstanding", (env.morpho.address,))
    env.send(env.morpho.functions.setAuthorization(mine, False), o)
    env.send(v.acceptOwnership(), new)
    assert v.owner().call() == new
    # the drain now fails: the vault has no allowance on the old owner's aTokens
    held = env.a_weth.functions.balanceOf(o).call()
    with pytest.raises(Reverted):
        env.send(v.execute(env.a_weth.address, 0, env.a_weth.encode_abi("transferFrom", [o, new, E18])), new)
    assert env.a_weth.functions.balanceOf(o).call() >= held


def test_releases_need_fresh_feeds(env):
    """With `setFeed(feed, maxAge)`, a release or rebalance reverts `StalePrice` unless the feed
    answered within maxAge, not in the future, and positive; top-ups never wait for a feed."""
    v, o, k, mine = env.vault.functions, env.owner, env.keeper, env.vault.address
    admin = env.net["roles"]["admin"]
    feed = env.d.at(env.net["feeds"]["ETH"]["address"], C.third_party("MockV3Aggregator"))
    round_id, price, *_ = feed.functions.latestRoundData().call()
    ref, morpho = env.aave("WETH", mine), env.morpho_ref(mine)
    env.send(feed.functions.updateAnswer(price), admin)
    env.send(v.setFeed(feed.address, 3_600), o)
    assert v.feeds(0).call() == [feed.address, 3_600]
    env.send(v.withdrawExcess(ref, E18 // 10), k)
    env.warp(3_601)
    updated = feed.functions.latestRoundData().call()[3]
    for fn in (v.withdrawExcess(ref, E18 // 10), v.rebalance(ref, E18 // 10, morpho)):
        r = env.err(fn, k)
        assert (r.name, r.args) == ("StalePrice", (feed.address, updated)), fn.fn_name
    env.send(v.topUp(ref, E18 // 10), k)
    now = env.w3.eth.get_block("latest")["timestamp"]
    latest = feed.functions.latestRound().call()
    env.send(feed.functions.updateRoundData(latest + 1, price, now + 600, now + 600), admin)  # dated ahead
    r = env.err(v.withdrawExcess(ref, E18 // 10), k)
    assert (r.name, r.args) == ("StalePrice", (feed.address, now + 600))
    env.send(feed.functions.updateAnswer(price), admin)
    env.send(v.withdrawExcess(ref, E18 // 10), k)
    env.send(v.setFeed(feed.address, 0), o)  # maxAge 0: no longer checked
    env.warp(DAY)
    env.send(v.withdrawExcess(ref, E18 // 10), k)
    assert round_id < feed.functions.latestRound().call()


def test_rebalance_source_is_a_release(env):
    """`rebalance` counts what leaves its source in the release window and the caps once."""
    v, k, mine = env.vault.functions, env.keeper, env.vault.address
    weth = env.tok["WETH"].address
    rc = env.send(v.rebalance(env.aave("WETH", mine), E18, env.morpho_ref(mine)), k)
    out = [e for e in env.events(rc) if e["action"] == REBALANCE_OUT]
    assert len(out) == 1
    assert v.releaseUsed(weth).call() == out[0]["amount"] == v.windowUsed(weth).call()
    assert CAPS["WETH"][1] == v.releaseCaps(weth).call()
