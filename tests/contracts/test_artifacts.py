"""keeper/abi/ holds our compiled contracts, committed (package data). They must match the sources: a change to any
contracts/**/*.sol, the compiler version or its settings without `make contracts` fails here."""

import json
import subprocess

from keeper.chain.contracts import ABI_DIR, ROOT


def current_source_hash() -> str:
    out = subprocess.run(["node", "contracts/scripts/compile.mjs", "--hash"], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=120)
    return out.stdout.strip()


def test_abi_dir_is_fresh():
    want = current_source_hash()
    recorded = (ABI_DIR / "SOURCE_HASH").read_text().strip()
    assert recorded == want, "keeper/abi/ is stale: run 'make contracts' and commit keeper/abi/"
    artifacts = sorted(ABI_DIR.glob("*.json"))
    assert {p.stem for p in artifacts} >= {"KeeperVault", "MorphoChainlinkOracle", "Multicall3", "TestERC20"}
    for p in artifacts:
        art = json.loads(p.read_text())
        assert art["sourceHash"] == want, f"{p.name} was built from other sources: run 'make contracts'"
        assert art["bytecode"].startswith("0x") and len(art["bytecode"]) > 2
        assert art["compiler"].startswith("0.8.28")


def test_every_contract_fits_the_size_limit():
    for p in ABI_DIR.glob("*.json"):
        art = json.loads(p.read_text())
        size = (len(art["deployedBytecode"]) - 2) // 2
        assert size <= 24_576, f"{p.stem} is {size} bytes, over EIP-170's 24,576"
