"""Fixtures of the CLI tests."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def tmp(tmp_path, anvil, devnet):
    (tmp_path / "dep.json").write_text(json.dumps({**devnet, "rpc_url": anvil.url}))
    return tmp_path
