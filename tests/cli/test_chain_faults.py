"""CLI on chain faults: a wrong chain id exits with a message; a dead first RPC URL fails over."""

import json
import subprocess
import sys

from keeper.devnet.anvil import free_port


def run(tmp_path, config: str, *args):
    (tmp_path / "config.toml").write_text(config)
    return subprocess.run([sys.executable, "-m", "keeper", *args], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)


def chain_config(devnet, urls, chain_id):
    dep_path = "dep.json"
    return (f'[chains.dev]\nchain_id = {chain_id}\nrpc_urls = {json.dumps(urls)}\ndeployment = "{dep_path}"\n'
            f"timeout = 2\nretries = 1\n")


def test_wrong_chain_id_exits_with_a_message(tmp_path, anvil, devnet):
    (tmp_path / "dep.json").write_text(json.dumps({**devnet, "rpc_url": anvil.url}))
    proc = run(tmp_path, chain_config(devnet, [anvil.url], 1), "status")
    assert proc.returncode == 2
    assert "chain id 31337, expected 1" in proc.stderr and "Traceback" not in proc.stderr


def test_dead_primary_rpc_fails_over(tmp_path, anvil, devnet):
    (tmp_path / "dep.json").write_text(json.dumps({**devnet, "rpc_url": anvil.url}))
    dead = f"http://127.0.0.1:{free_port()}"
    proc = run(tmp_path, chain_config(devnet, [dead, anvil.url], 31337), "status", "--json")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["chains"][0]["positions"]) == len(devnet["positions"])


def test_every_rpc_dead_is_a_temporary_error(tmp_path, devnet):
    (tmp_path / "dep.json").write_text(json.dumps(devnet))
    dead = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    proc = run(tmp_path, chain_config(devnet, dead, 31337), "status")
    assert proc.returncode == 3
    assert "none of its 2 RPC URL(s) answers" in proc.stderr


def test_check_config_finds_a_missing_contract(tmp_path, anvil, devnet):
    (tmp_path / "dep.json").write_text(json.dumps({**devnet, "rpc_url": anvil.url}))
    cfg = chain_config(devnet, [anvil.url], 31337) + (
        '[chains.dev.aave_v3]\npool = "0x000000000000000000000000000000000000dEaD"\n'
        f'data_provider = "{devnet["aave_v3"]["data_provider"]}"\noracle = "{devnet["aave_v3"]["oracle"]}"\n')
    proc = run(tmp_path, cfg, "check-config")
    assert proc.returncode == 2
    assert "FAIL dev: aave_v3.pool: no contract at 0x000000000000000000000000000000000000dEaD" in proc.stdout
