"""Contract artifacts: ours (``keeper/abi/``, committed and shipped as package data, so an installed
wheel finds them), third-party ones compiled from npm sources
(``build/third_party/``, a git-ignored cache), Aave v3.0's hardhat artifacts from
``node_modules/@aave/core-v3`` and Aave v3.7 compiled from aave-v3-origin at set-up
(``build/aave-v3-origin/``, git-ignored). Nothing here talks to a chain."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from keeper.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
ABI_DIR = Path(__file__).resolve().parents[1] / "abi"  # keeper/abi
THIRD_PARTY_DIR = ROOT / "build" / "third_party"
AAVE_ORIGIN_DIR = ROOT / "build" / "aave-v3-origin"
GMX_V1_DIR = ROOT / "build" / "gmx-v1"
PRELIQ_DIR = ROOT / "build" / "morpho-preliq"
# Overridable for installs that keep node_modules elsewhere (and for tests of a missing install).
NODE_MODULES = Path(os.environ.get("KEEPER_NODE_MODULES") or ROOT / "node_modules")
AAVE_ARTIFACTS = NODE_MODULES / "@aave" / "core-v3" / "artifacts"
# Uniswap v3's compiled artifacts as npm ships them (hardhat): contract name -> package, source file.
_UNISWAP = {"UniswapV3Factory": ("v3-core", "UniswapV3Factory.sol"), "UniswapV3Pool": ("v3-core", "UniswapV3Pool.sol"),
            "SwapRouter": ("v3-periphery", "SwapRouter.sol"), "QuoterV2": ("v3-periphery", "lens/QuoterV2.sol"),
            "NonfungiblePositionManager": ("v3-periphery", "NonfungiblePositionManager.sol")}

SETUP_HINT = "run 'make setup' (or 'npm ci && npm run compile') in the project's root"


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    link_references: dict[str, dict[str, list[dict[str, int]]]] = field(default_factory=dict)

    def linked_bytecode(self, libraries: dict[str, str]) -> str:
        """Bytecode with every library placeholder replaced by its address.

        Hardhat's ``linkReferences`` (and solc's standard-JSON ones, which hardhat copies) give byte
        offsets into the code, so they are doubled to index the hex string (after its ``0x``)."""
        code = self.bytecode[2:] if self.bytecode.startswith("0x") else self.bytecode
        chars = list(code)
        for _source, libs in self.link_references.items():
            for lib, refs in libs.items():
                if lib not in libraries:
                    raise ConfigError(f"{self.name} needs library {lib} linked")
                addr = libraries[lib].lower().removeprefix("0x")
                if len(addr) != 40:
                    raise ConfigError(f"library {lib} address {libraries[lib]!r} is not 20 bytes")
                for ref in refs:
                    start = ref["start"] * 2
                    chars[start:start + ref["length"] * 2] = addr
        linked = "".join(chars)
        if "__" in linked:
            raise ConfigError(f"{self.name}: unlinked library placeholders remain")
        return "0x" + linked


def _read(path: Path, name: str) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"contract artifact {name} not found at {path}", hint=SETUP_HINT)
    try:
        artifact: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"contract artifact {path} is not valid JSON: {e}", hint=SETUP_HINT) from e
    return artifact


def _from_json(name: str, data: dict[str, Any]) -> Artifact:
    return Artifact(
        name=name,
        abi=data["abi"],
        bytecode=data.get("bytecode", "0x"),
        deployed_bytecode=data.get("deployedBytecode", "0x"),
        link_references=data.get("linkReferences", {}) or {},
    )


@cache
def ours(name: str) -> Artifact:
    """One of our contracts, from ``keeper/abi/<name>.json``."""
    return _from_json(name, _read(ABI_DIR / f"{name}.json", name))


@cache
def third_party(name: str) -> Artifact:
    """Morpho Blue, its IrmMock, Chainlink's MockV3Aggregator: compiled from npm sources."""
    return _from_json(name, _read(THIRD_PARTY_DIR / f"{name}.json", name))


@cache
def _aave_index() -> dict[str, Path]:
    if not AAVE_ARTIFACTS.is_dir():
        raise ConfigError("the @aave/core-v3 npm package is not installed", hint=SETUP_HINT)
    index: dict[str, Path] = {}
    for p in AAVE_ARTIFACTS.rglob("*.json"):
        if p.name.endswith(".dbg.json"):
            continue
        # The first artifact found under contracts/protocol wins over mocks of the same name.
        index.setdefault(p.stem, p)
        if "/protocol/" in str(p):
            index[p.stem] = p
    return index


@cache
def aave(name: str) -> Artifact:
    """A contract of the real Aave v3, from the hardhat artifacts in ``@aave/core-v3``."""
    path = _aave_index().get(name)
    if path is None:
        raise ConfigError(f"no Aave v3 artifact named {name} in {AAVE_ARTIFACTS}", hint=SETUP_HINT)
    return _from_json(name, _read(path, name))


@cache
def uniswap(name: str) -> Artifact:
    """A contract of Uniswap v3 from the artifacts ``@uniswap/v3-core`` and ``@uniswap/v3-periphery``
    ship on npm: UniswapV3Factory, UniswapV3Pool, SwapRouter, QuoterV2, NonfungiblePositionManager."""
    if name not in _UNISWAP:
        raise ConfigError(f"no Uniswap v3 artifact named {name} (known: {', '.join(sorted(_UNISWAP))})")
    package, source = _UNISWAP[name]
    return _from_json(name, _read(NODE_MODULES / "@uniswap" / package / "artifacts" / "contracts" / source
                                  / f"{name}.json", name))


def _pinned_build(directory: Path, label: str, name: str) -> Artifact:
    """``name`` from a protocol that ``make setup`` builds from pinned upstream sources."""
    if not directory.is_dir():
        raise ConfigError(f"{label} is not built: {directory} is missing", hint=SETUP_HINT)
    path = directory / f"{name}.json"
    if not path.exists():
        raise ConfigError(f"no {label.split(' (')[0]} artifact named {name} in {directory}", hint=SETUP_HINT)
    return _from_json(name, _read(path, name))


@cache
def aave_origin(name: str) -> Artifact:
    """A contract of Aave v3.7 (aave-dao/aave-v3-origin, ``POOL_REVISION`` 11), compiled by
    ``make setup`` into ``build/aave-v3-origin/``: PoolInstance, PoolConfiguratorInstance,
    ATokenInstance, ..., the logic libraries and ``Errors`` (its custom errors)."""
    return _pinned_build(AAVE_ORIGIN_DIR, "Aave v3.7 (aave-v3-origin)", name)


@cache
def gmx(name: str) -> Artifact:
    """A contract of GMX v1 (gmx-io/gmx-contracts, solc 0.6.12), compiled by ``make setup`` into
    ``build/gmx-v1/``: Vault, VaultUtils, VaultPriceFeed, Router, PositionRouter (links
    PositionUtils), PositionManager, ShortsTracker, OrderBook, USDG, Timelock, VaultErrorController."""
    return _pinned_build(GMX_V1_DIR, "GMX v1 (gmx-contracts)", name)


@cache
def preliq(name: str) -> Artifact:
    """Morpho's pre-liquidation (morpho-org/pre-liquidation, solc 0.8.27), compiled by ``make
    setup`` into ``build/morpho-preliq/``: PreLiquidationFactory and PreLiquidation."""
    return _pinned_build(PRELIQ_DIR, "Morpho pre-liquidation", name)


# The v3.0 artifact names (``@aave/core-v3``) of the contracts whose v3.7 build is an "Instance".
_AAVE_ORIGIN_NAMES = {"Pool": "PoolInstance", "PoolConfigurator": "PoolConfiguratorInstance",
                      "AToken": "ATokenInstance", "VariableDebtToken": "VariableDebtTokenInstance",
                      "DefaultReserveInterestRateStrategy": "DefaultReserveInterestRateStrategyV2"}


def aave_for(version: str | None, name: str) -> Artifact:
    """The Aave contract ``name`` (a v3.0 name: Pool, PoolConfigurator, AToken, ...) of a devnet
    deployment's ``aave_v3.version``: "3.7" from aave-v3-origin, "3.0" (or a deployment file written
    before versions were recorded) from ``@aave/core-v3``."""
    if version in (None, "3.0"):
        return aave(name)
    if version == "3.7":
        return aave_origin(_AAVE_ORIGIN_NAMES.get(name, name))
    raise ConfigError(f"unknown Aave version {version!r} (known: 3.7, 3.0)")
