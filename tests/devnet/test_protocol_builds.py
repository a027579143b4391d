"""Aave v3.7 (aave-v3-origin) and GMX v1 (gmx-contracts) are compiled at set-up from pinned upstream
trees (contracts/scripts/pinned.mjs, specs in aave_origin.mjs and gmx_v1.mjs) into the git-ignored
build/aave-v3-origin/ and build/gmx-v1/: a re-run with nothing changed compiles nothing, a complete build
is kept when its sources are no longer around, the artifacts carry solc's link references (byte
offsets, as hardhat's), and when no sources can be found for a first build the set-up fails with
one line that says what to set."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from keeper.chain import contracts as C
from keeper.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "contracts" / "scripts"


def compile_in(root: Path, *flags: str, **env) -> subprocess.CompletedProcess:
    """Run a copy of the compile scripts with ``root`` as the project root."""
    (root / "contracts" / "scripts").mkdir(parents=True)
    for script in SCRIPTS.glob("*.mjs"):
        shutil.copy(script, root / "contracts" / "scripts" / script.name)
    (root / "node_modules").symlink_to(ROOT / "node_modules")
    return subprocess.run(["node", "contracts/scripts/compile.mjs", *(flags or ("--aave-origin",))], cwd=root,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin:/usr/local/bin", **env})


@pytest.mark.parametrize("env", [{"KEEPER_PROTOCOL_CLONE": "0"},
                                 {"KEEPER_PROTOCOL_GIT_BASE": "file:///nonexistent/git"}],
                         ids=["cloning-off", "clone-fails"])
def test_missing_sources_fail_with_one_line_saying_what_to_set(tmp_path, env):
    empty = tmp_path / "empty"
    empty.mkdir()
    root = tmp_path / "project"
    proc = compile_in(root, KEEPER_PROTOCOL_SOURCES=str(empty), **env)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("compile: Aave v3.7 sources not found")
    assert f"KEEPER_PROTOCOL_SOURCES={empty}" in line  # what was tried
    assert "set KEEPER_PROTOCOL_SOURCES=" in line and "fd1fbd915042" in line  # what to set
    assert not (root / "build" / "aave-v3-origin").exists()
    assert not any((root / "build" / "sources").glob("*"))  # no half-cloned tree left behind


def test_a_complete_build_is_kept_when_its_sources_are_gone(tmp_path):
    """Built once from KEEPER_PROTOCOL_SOURCES, then set up without it: nothing to fetch or fail."""
    root = tmp_path / "project"
    shutil.copytree(ROOT / "build" / "aave-v3-origin", root / "build" / "aave-v3-origin")
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = compile_in(root, KEEPER_PROTOCOL_SOURCES=str(empty), KEEPER_PROTOCOL_CLONE="0")
    assert proc.returncode == 0, proc.stderr
    assert "Aave v3.7 kept in build/aave-v3-origin/" in proc.stdout and "cannot re-check it" in proc.stdout
    assert not (root / "build" / "sources").exists()


def test_gmx_sources_missing_fail_with_one_line_naming_the_pinned_commit(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = compile_in(tmp_path / "project", "--gmx", KEEPER_PROTOCOL_SOURCES=str(empty), KEEPER_PROTOCOL_CLONE="0")
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("compile: GMX v1 sources not found") and "gmx-contracts/contracts/core" in line
    assert "gmx-io/gmx-contracts@fe55c4ba8911" in line


def test_a_rerun_with_nothing_changed_compiles_nothing():
    proc = subprocess.run(["node", "contracts/scripts/compile.mjs", "--aave-origin", "--gmx"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # make setup ran before the tests and nothing changed since ("kept": built from sources this
    # environment no longer points at)
    assert "compiled" not in proc.stdout and ("up to date" in proc.stdout or "kept" in proc.stdout), proc.stdout
    stamp = json.loads((ROOT / "build" / "aave-v3-origin" / "STAMP").read_text())
    assert stamp["files"] and all(name.startswith(("aave-v3-origin/", "aave-solidity-utils/", "@openzeppelin/"))
                                  for name in stamp["files"])
    gmx = json.loads((ROOT / "build" / "gmx-v1" / "STAMP").read_text())
    assert gmx["files"] and all(name.startswith("gmx-contracts/contracts/") for name in gmx["files"])
    assert "gmx-contracts/contracts/core/Vault.sol" in gmx["files"]


def test_the_build_is_git_ignored():
    out = subprocess.run(["git", "check-ignore", "build/aave-v3-origin/PoolInstance.json", "build/gmx-v1/Vault.json",
                          "build/sources/x"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and len(out.stdout.split()) == 3


def test_artifacts_link_with_solcs_byte_offsets():
    pool = C.aave_origin("PoolInstance")
    libs = {name: f"0x{i:040x}" for i, name in enumerate(
        ("BorrowLogic", "FlashLoanLogic", "LiquidationLogic", "PoolLogic", "SupplyLogic"), start=1)}
    assert {lib for refs in pool.link_references.values() for lib in refs} == set(libs)
    code = pool.linked_bytecode(libs)
    for refs in pool.link_references.values():
        for lib, places in refs.items():
            for ref in places:
                start = 2 + ref["start"] * 2
                assert code[start:start + 40] == libs[lib][2:]
    with pytest.raises(ConfigError, match="needs library"):
        pool.linked_bytecode({})
    assert (len(pool.deployed_bytecode) - 2) // 2 < 24_576  # fits the contract size limit (unlinked: placeholders)


def test_versioned_artifact_names():
    assert C.aave_for("3.7", "Pool") == C.aave_origin("PoolInstance")
    assert C.aave_for("3.0", "Pool") == C.aave("Pool") == C.aave_for(None, "Pool")
    assert any(e.get("name") == "HealthFactorNotBelowThreshold" for e in C.aave_origin("Errors").abi)
    with pytest.raises(ConfigError, match="unknown Aave version"):
        C.aave_for("3.5", "Pool")


def test_a_missing_build_says_to_run_the_setup(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "AAVE_ORIGIN_DIR", tmp_path / "nothing")
    C.aave_origin.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"Aave v3.7 .* is not built") as exc:
            C.aave_origin("PoolInstance")
        assert "make setup" in str(exc.value)
        monkeypatch.setattr(C, "AAVE_ORIGIN_DIR", tmp_path)
        with pytest.raises(ConfigError, match=r"no Aave v3.7 artifact named PoolInstance"):
            C.aave_origin("PoolInstance")
    finally:
        C.aave_origin.cache_clear()


def test_gmx_artifacts_fit_and_link_position_utils():
    router = C.gmx("PositionRouter")
    assert {lib for refs in router.link_references.values() for lib in refs} == {"PositionUtils"}
    code = router.linked_bytecode({"PositionUtils": "0x" + "ab" * 20})
    assert "__" not in code and code.count("ab" * 20) >= 1
    for name in ("Vault", "PositionRouter", "PositionManager", "Timelock"):
        size = (len(C.gmx(name).deployed_bytecode) - 2) // 2
        assert 0 < size < 24_576, (name, size)  # deployable under the contract size limit
    assert "0.6.12" in json.loads((ROOT / "build" / "gmx-v1" / "Vault.json").read_text())["compiler"]
    with pytest.raises(ConfigError, match="no GMX v1 artifact named PerpVault"):
        C.gmx("PerpVault")
