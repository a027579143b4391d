"""`keeper status` against a node that is not running (after `keeper devnet down`): one line naming
the URL (redacted) and how to start a devnet, exit 3 (a temporary fault). No chain needed."""

import os

from keeper.cli import main
from keeper.devnet.anvil import free_port


def test_status_with_no_node_names_the_url_and_the_fix(tmp_path, monkeypatch, capsys):
    port = free_port()
    (tmp_path / "config.toml").write_text(
        f'[chains.dev]\nchain_id = 31337\nrpc_urls = ["http://op:hunter2@127.0.0.1:{port}/v2/SECRETKEY"]\n'
        "timeout = 1\nretries = 0\n")
    monkeypatch.chdir(tmp_path)
    for k in [k for k in os.environ if k.startswith("KEEPER__")]:
        monkeypatch.delenv(k)
    assert main(["status"]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith("keeper: error: chain dev: none of its 1 RPC URL(s) answers: ")
    assert f"http://127.0.0.1:{port} is unreachable" in line
    assert line.endswith("(is the node running? for a local devnet: keeper devnet up --detach)")
    assert "SECRETKEY" not in line and "hunter2" not in line and "op:" not in line
