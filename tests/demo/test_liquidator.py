"""The demo's liquidator on the devnet (real Aave v3.0 and v3.7, Morpho Blue, GMX v1 gated): nothing to
do at the seeded prices; after a crash it liquidates every liquidatable position with the
protocols' own calls, and the chain's liquidation events match what it reports."""

import json

import pytest

from keeper.chain import contracts as C
from keeper.demo.collect import chain_liquidations, liquidations
from keeper.demo.liquidator import Liquidator
from keeper.devnet.deployer import Deployer
from tests.aave_versions import devnet, w3  # noqa: F401  (the module runs on both Aave versions)
from tests.devnet.helpers import set_price, token

pytestmark = pytest.mark.usefixtures("snapshot")



@pytest.fixture
def liquidator(w3, devnet, tmp_path):
    usdc = token(w3, devnet, "USDC")
    Deployer(w3, devnet["roles"]["admin"]).send(usdc.functions.mint(devnet["roles"]["liquidator"], 10**6 * 10**6))
    liq = Liquidator(w3, devnet, tmp_path / "events.jsonl")
    liq.prepare()
    return liq


def events(liq):
    return [json.loads(line) for line in liq.out.read_text().splitlines()]


def test_nothing_to_liquidate_at_the_seeded_prices(w3, liquidator):
    liquidator.on_block(w3.eth.block_number)
    assert [e["event"] for e in events(liquidator)] == ["ready"]


def test_after_a_crash_it_liquidates_what_the_protocols_allow(w3, devnet, liquidator):
    first = w3.eth.block_number
    set_price(w3, devnet, "ETH", 1_400)
    set_price(w3, devnet, "BTC", 21_000)
    liquidator.on_block(w3.eth.block_number)
    got = {e["position"]: e for e in events(liquidator) if e["event"] == "liquidation"}
    # dave's e-mode position (WETH against WETH) and erin's mixed one stay above 1 at these prices.
    safe = ("btc-short", "btc-short-unprotected", "dave-aave-emode", "erin-aave-multi")
    want = {p["id"] for p in devnet["positions"] if not p["id"].endswith(safe)}
    assert set(got) == want  # every other Aave, Morpho and ETH-long position; the BTC shorts gained
    for pid, e in got.items():
        assert e["gas_used"] > 50_000 and e["seized_usd"] > 0, pid
    aave, morpho = got["carol-aave-unprotected"], got["carol-morpho-unprotected"]
    assert aave["repaid"]["USDC"] > 0 and aave["seized"]["WETH"] > 0
    assert morpho["repaid"]["USDC"] > 6_000 and 0 < morpho["seized"]["WETH"] <= 5
    assert got["carol-perp-eth-long-unprotected"]["state"] == 1
    # The chain agrees: the protocols' own events, the same transactions.
    onchain = chain_liquidations(w3, devnet, first, w3.eth.block_number)
    assert {c.tx for c in onchain} == {liq.tx for liq in liquidations(liquidator.out)}
    carol = devnet["roles"]["carol"]
    m = devnet["morpho_blue"]["markets"]["WETH/USDC"]
    morpho_c = w3.eth.contract(address=devnet["morpho_blue"]["morpho"], abi=C.third_party("Morpho").abi)
    assert morpho_c.functions.position(bytes.fromhex(m["id"][2:]), carol).call()[1] == 0  # no debt left
    perp = w3.eth.contract(address=devnet["perp"]["vault"], abi=C.gmx("Vault").abi)
    weth = devnet["tokens"]["WETH"]["address"]
    assert perp.functions.getPosition(carol, weth, weth, True).call()[0] == 0  # closed


def test_a_refused_liquidation_is_recorded_as_an_attempt(w3, devnet, liquidator):
    set_price(w3, devnet, "ETH", 1_400)
    set_price(w3, devnet, "BTC", 21_000)
    block = w3.eth.block_number
    cand = liquidator.check(next(p for p in devnet["positions"] if p["id"] == "carol-aave-unprotected"), block)
    assert cand is not None
    set_price(w3, devnet, "ETH", 2_000)  # healthy again before the liquidator's transaction
    set_price(w3, devnet, "BTC", 30_000)
    assert liquidator.send(cand) is None
    (attempt,) = [e for e in events(liquidator) if e["event"] == "attempt"]
    # v3.7 reverts with a custom error, v3.0 with "45"; the liquidator names both.
    name = {"3.0": "HEALTH_FACTOR_NOT_BELOW_THRESHOLD(45)", "3.7": "HealthFactorNotBelowThreshold"}
    assert attempt["position"] == "carol-aave-unprotected"
    assert attempt["error"].startswith(name[devnet["aave_v3"]["version"]] + ":"), attempt["error"]
