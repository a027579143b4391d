"""Pre-liquidations read with the positions on the devnet (the real Morpho Blue and the pinned
PreLiquidationFactory): gina, who authorised one, is read with its parameters; a Morpho position
without one is not; the factory's events are found across several log ranges; an authorisation
revoked on chain stops counting at the next read."""

from __future__ import annotations

import pytest

from keeper.app.wiring import build_reader
from keeper.chain import contracts as C
from keeper.devnet.deployer import Deployer
from keeper.devnet.seed import GINA_PRELIQ
from keeper.domain import Protocol
from keeper.protocols import morpho_preliq
from tests.daemon.helpers import devnet_config

pytestmark = pytest.mark.usefixtures("snapshot")


def _morpho_positions(reader) -> dict[str, object]:
    return {p.account: p for p in reader.read().positions if p.protocol is Protocol.MORPHO_BLUE}


def test_an_authorised_pre_liquidation_is_read_with_the_position(tmp_path, anvil, w3, devnet, monkeypatch):
    monkeypatch.setattr(morpho_preliq, "LOG_SPAN", 7)  # the factory's events over many small ranges
    cfg = devnet_config(tmp_path, anvil.url, devnet, monkeypatch)
    ccfg = cfg.chains["devnet"]
    assert ccfg.morpho_blue.preliq_factory and ccfg.morpho_blue.preliq_from_block > 0
    reader = build_reader("devnet", ccfg)
    (seeded,) = devnet["preliquidations"]
    gina = next(p["account"] for p in devnet["positions"] if p["id"] == "gina-morpho-preliq").lower()
    positions = _morpho_positions(reader)
    pre = positions[gina].preliq
    assert pre is not None and pre.address == seeded["address"].lower()
    assert (pre.pre_lltv, pre.pre_lcf1, pre.pre_lcf2, pre.pre_lif1, pre.pre_lif2) == tuple(
        x / 10**18 for x in GINA_PRELIQ)
    others = [p for a, p in positions.items() if a != gina and p.debt_usd > 0]
    assert others and all(p.preliq is None for p in others)

    # gina revokes it: the next read no longer counts it
    d = Deployer(w3, gina)
    morpho = d.at(devnet["morpho_blue"]["morpho"], C.third_party("Morpho"))
    d.send(morpho.functions.setAuthorization(seeded["address"], False))
    assert _morpho_positions(reader)[gina].preliq is None
