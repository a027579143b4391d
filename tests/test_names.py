"""Short position names (``keeper.names``) and ``rebalance``'s lookup by them (``manual.find``):
stable, unique, accepted in any case, old key fragments still work, watch-only positions and
unknown names get short specific errors. Synthetic positions, no chain."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from keeper.app.books import VaultBook
from keeper.app.manual import find
from keeper.domain import USD_ASSET, WAD, Address, Asset, Leg, PerpTerms, Position, Protocol, Side
from keeper.errors import ConfigError
from keeper.names import Names, account_word, names_by_chain, position_names, with_names

ALICE = Address("0x4C2F7092C2aE51D986bEFEe378e50BD4dB99C901")
BOB = Address("0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65")
CAROL = Address("0x976EA74026E726554dB657fA54763abd0C3a0aa9")
POOL = Address("0x9bd03768a7DCc129555dE410FF8E85528A4F88b5")
MORPHO = Address("0xf5059a5D33d5853360D16C683c16e67980206f36")
GMX = Address("0x0E801D84Fa97b50751Dbf25036d067dCf18858bF")
WETH = Asset("WETH", Address("0x5FbDB2315678afecb367f032d93F642f64180aa3"), 18)
WBTC = Asset("WBTC", Address("0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"), 8)
USDC = Asset("USDC", Address("0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9"), 6)
WETH_USDC = "0xc7ae20fe794f690c0fcf77e094882c0fc6fef16a4bad4e368f7e26b015836eab"
WBTC_USDC = "0x" + "ab" * 32
LABELS = {ALICE: "alice", BOB: "bob", CAROL: "carol"}


def aave(account: Address, pool: Address = POOL, chain: str = "devnet") -> Position:
    legs = (Leg(WETH, Side.COLLATERAL, 10**18, 2000.0, 0.825), Leg(USDC, Side.DEBT, 10**9, 1.0))
    return Position(chain, Protocol.AAVE_V3, pool, account, "pool", legs, 2 * WAD, 1)


def morpho(account: Address, market: str = WETH_USDC, coll: Asset = WETH) -> Position:
    legs = (Leg(coll, Side.COLLATERAL, 10**18, 2000.0, 0.86), Leg(USDC, Side.DEBT, 10**9, 1.0))
    return Position("devnet", Protocol.MORPHO_BLUE, MORPHO, account, market, legs, 2 * WAD, 1)


def perp(account: Address, index: Asset = WETH, long: bool = True, collateral: Asset = WETH) -> Position:
    terms = PerpTerms(index, long, 20_000.0, 4_000.0, 2000.0, 2000.0, 20.0, 5.0, 50.0, 0)
    legs = (Leg(USD_ASSET, Side.COLLATERAL, 4_000 * 10**30, 1.0),)
    market = f"{collateral.address}:{index.address}:{'long' if long else 'short'}"
    return Position("devnet", Protocol.PERP, GMX, account, market, legs, 2 * WAD, 1, perp=terms)


def seeded() -> list[Position]:
    """The seeded devnet's shapes: alice (vault), bob (owner), carol (watched only)."""
    return [aave(ALICE), morpho(ALICE), perp(ALICE), perp(ALICE, WBTC, long=False, collateral=USDC),
            aave(BOB), morpho(BOB), aave(CAROL), perp(CAROL)]


def test_the_seeded_devnet_names_read_like_its_position_ids():
    names = position_names(seeded(), LABELS)
    assert sorted(names.values()) == sorted([
        "alice-aave", "alice-morpho", "alice-perp-eth-long", "alice-perp-btc-short",
        "bob-aave", "bob-morpho", "carol-aave", "carol-perp-eth-long"])
    assert all(n == n.lower() and " " not in n and len(n) <= 24 for n in names.values())


def test_names_do_not_depend_on_order_or_on_unrelated_positions():
    ps = seeded()
    base = position_names(ps, LABELS)
    for seed in range(5):
        shuffled = ps[:]
        random.Random(seed).shuffle(shuffled)
        assert position_names(shuffled, LABELS) == base
    alone = position_names([ps[4]], LABELS)  # bob's Aave position, read alone
    assert alone == {ps[4].key: "bob-aave"}


def test_an_account_without_a_label_is_named_by_its_short_address():
    assert account_word(BOB) == "0x15d34a"
    assert position_names([aave(BOB)]) == {aave(BOB).key: "0x15d34a-aave"}
    assert account_word(ALICE, {ALICE: "Treasury Hot"}) == "treasury-hot"  # labels: slugged


def test_two_morpho_markets_of_one_account_add_their_symbols_then_the_market_id():
    two = [morpho(ALICE), morpho(ALICE, WBTC_USDC, coll=WBTC)]
    assert sorted(position_names(two, LABELS).values()) == ["alice-morpho-wbtc-usdc", "alice-morpho-weth-usdc"]
    same_pair = [morpho(ALICE), morpho(ALICE, WBTC_USDC)]  # two WETH/USDC markets (different LLTVs)
    assert sorted(position_names(same_pair, LABELS).values()) == ["alice-morpho-weth-usdc-ababab",
                                                                 "alice-morpho-weth-usdc-c7ae20"]
    # bob's single Morpho position keeps its short name beside alice's two
    names = position_names([*two, morpho(BOB)], LABELS)
    assert names[morpho(BOB).key] == "bob-morpho"


def test_colliding_labels_and_pools_still_give_unique_names():
    twins = {ALICE: "ops", BOB: "ops"}  # one label on two accounts
    names = position_names([aave(ALICE), aave(BOB)], twins)
    assert len(set(names.values())) == 2 and all(n.startswith("ops-aave-") for n in names.values())
    two_pools = position_names([aave(ALICE), aave(ALICE, pool=Address("0x" + "12" * 20))], LABELS)
    assert sorted(two_pools.values()) == ["alice-aave-121212", "alice-aave-9bd037"]
    shorts = [perp(ALICE, WBTC, long=False, collateral=USDC), perp(ALICE, WBTC, long=False, collateral=WETH)]
    assert sorted(position_names(shorts, LABELS).values()) == ["alice-perp-btc-short-5fbdb2",
                                                               "alice-perp-btc-short-dc64a1"]


def test_each_chain_is_named_on_its_own():
    names = names_by_chain([aave(ALICE), aave(ALICE, chain="arbitrum")], LABELS)
    assert set(names.values()) == {"alice-aave"}


def test_match_by_name_any_case_key_prefix_and_old_fragments():
    names = Names.of(seeded(), LABELS)
    bob_aave = aave(BOB)

    def hit(sel: str) -> list[str]:
        return [names.name(p) for p in names.match(sel)]

    assert hit("bob-aave") == hit("BOB-Aave") == hit(f"  {bob_aave.key.upper()} ") == ["bob-aave"]
    assert hit("0x15d34a:aave") == ["bob-aave"]  # the README's old command line
    assert hit("aa3:long") == ["alice-perp-eth-long", "carol-perp-eth-long"]  # find prefers the acted-for one
    assert hit("bob") == ["bob-aave", "bob-morpho"]
    assert hit("alice-morpho-weth-usdc") == ["alice-morpho"]  # a longer alias also answers
    assert hit("nope") == [] and hit("") == []


def test_closest_names_are_few_and_near():
    names = Names.of(seeded(), LABELS)
    assert names.closest("alcie-aave")[0] == "alice-aave"
    assert len(names.closest("bob-aave")) <= 3
    assert names.closest("zzzzzzzz") == []


def test_with_names_replaces_keys_in_free_text():
    ps = seeded()
    names = position_names(ps, LABELS)
    text = f"rebalance WETH from {ps[0].key} to {ps[1].key}: reserve short"
    assert with_names(text, names) == "rebalance WETH from alice-aave to alice-morpho: reserve short"


def session() -> SimpleNamespace:
    """What ``find`` reads of a session: the chain, every position read, and the vaults' books
    (alice's vault acts for alice, bob's for bob; carol is watched only)."""
    ps = seeded()
    books = [VaultBook(ALICE, [p for p in ps if p.account == ALICE]),
             VaultBook("0x86A2EE8FAf9A840F7a2c64CA3d51209F9A02081D", [p for p in ps if p.account == BOB])]
    return SimpleNamespace(chain="devnet", snap=SimpleNamespace(positions=ps), books=books)


def test_find_by_name_key_and_fragment():
    s = session()
    pos, book = find(s, "bob-aave", LABELS)
    assert pos == aave(BOB) and book.vault.startswith("0x86A2")
    assert find(s, "BOB-AAVE", LABELS)[0] == pos
    assert find(s, pos.key, LABELS)[0] == pos
    assert find(s, "0x15d34a:aave")[0] == pos  # no labels: fragments still work
    assert find(s, "0x15d34a-aave")[0] == pos  # no labels: the short-address name
    assert find(s, "aa3:long", LABELS)[0] == perp(ALICE)  # carol's twin is watch-only


def test_find_a_watch_only_position_says_so():
    with pytest.raises(ConfigError) as e:
        find(session(), "carol-aave", LABELS)
    assert str(e.value).startswith("carol-aave is watch-only: no vault acts for it")
    assert "unknown" not in str(e.value)
    with pytest.raises(ConfigError, match=r"matches 2 watch-only positions \(carol-aave, carol-perp-eth-long\)"):
        find(session(), "carol", LABELS)


def test_find_unknown_or_ambiguous_is_one_short_line_with_the_closest_names():
    s = session()
    with pytest.raises(ConfigError) as e:
        find(s, "alcie-aave", LABELS)
    msg = str(e.value)
    assert msg.startswith("no position named 'alcie-aave' on devnet; closest: alice-aave")
    assert "\n" not in msg and len(msg) < 200 and "0x" not in msg  # no keys
    with pytest.raises(ConfigError) as e:
        find(s, "bob", LABELS)
    assert str(e.value) == "'bob' matches 2 positions: bob-aave, bob-morpho; give one name"
    with pytest.raises(ConfigError) as e:
        find(s, "0xnope", LABELS)
    assert str(e.value).startswith("no position named '0xnope'") and len(str(e.value)) < 200
