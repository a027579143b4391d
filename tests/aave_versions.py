"""Fixtures that run a whole test module on both Aave versions: import them into the module
(``from tests.aave_versions import anvil, devnet, w3``) and its ``w3``, ``devnet`` and ``anvil`` (so
``snapshot`` and every fixture built on them) become those of ``aave_net``: v3.0.2 and v3.7, each
devnet on its own anvil (see ``tests/conftest.py``)."""

import pytest


@pytest.fixture
def w3(aave_net):
    return aave_net.w3


@pytest.fixture
def devnet(aave_net):
    return aave_net.dep


@pytest.fixture
def anvil(aave_net):
    return aave_net  # has .url, as the Anvil node does
