"""`keeper devnet up` on bad input prints one clear line saying what is wrong and how to fix it,
and exits non-zero: no npm install, a busy port, a fork URL that does not answer."""

import os
import socket
import subprocess
import sys

import pytest

from keeper.devnet.anvil import free_port


def run_keeper(args, tmp_path, **env_extra):
    env = {**os.environ, "KEEPER__DEVNET__STATE_DIR": str(tmp_path / "state"), **env_extra}
    env.pop("KEEPER_ANVIL", None)
    return subprocess.run([sys.executable, "-m", "keeper", *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=tmp_path)


def error_lines(proc) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("keeper: error:")]


def test_up_without_npm_install(tmp_path):
    empty = tmp_path / "no_node_modules"
    empty.mkdir()
    env_path = "/usr/bin:/bin"  # no anvil on PATH either
    proc = run_keeper(["devnet", "up", "--port", str(free_port())], tmp_path, KEEPER_NODE_MODULES=str(empty),
                      PATH=env_path)
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert len(lines) == 1, proc.stderr
    assert "not installed" in lines[0] or "not found" in lines[0]
    assert "make setup" in lines[0]
    assert "Traceback" not in proc.stderr


def test_up_on_a_busy_port(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = run_keeper(["devnet", "up", "--port", str(port)], tmp_path)
    assert proc.returncode == 2
    (line,) = error_lines(proc)
    assert f"port {port}" in line and "busy" in line and "--port" in line
    assert "Traceback" not in proc.stderr


def test_up_with_a_dead_fork_url(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    proc = run_keeper(["devnet", "up", "--port", str(free_port()), "--fork-url", dead], tmp_path)
    assert proc.returncode == 2
    (line,) = error_lines(proc)
    assert dead in line and "does not answer" in line
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args,needle", [
    (["devnet", "up", "--port", "70000"], "port must be within"),
    (["devnet", "up", "--block-time", "-1"], "must be a whole number of seconds"),
    (["devnet", "price", "ETH", "abc"], "not a number"),
])
def test_bad_arguments_are_refused(tmp_path, args, needle):
    proc = run_keeper(args, tmp_path)
    assert proc.returncode == 2
    assert needle in proc.stderr


def test_price_without_a_devnet(tmp_path):
    proc = run_keeper(["devnet", "price", "ETH", "1500"], tmp_path)
    assert proc.returncode == 2
    (line,) = error_lines(proc)
    assert "deployment file not found" in line and "keeper devnet up" in line
