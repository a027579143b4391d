"""The anvil process manager: starts on a free port, answers, stops, and dies with its parent."""

import os
import signal
import subprocess
import sys
import time

import pytest

from keeper.devnet.anvil import Anvil, rpc_call

pytestmark = pytest.mark.chain  # starts its own anvil


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); check its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_start_answer_stop():
    node = Anvil().start()
    pid = node.proc.pid
    assert rpc_call(node.url, "eth_chainId") == hex(31337)
    node.stop()
    assert not _alive(pid)


def test_anvil_dies_with_the_process_that_started_it(tmp_path):
    script = (
        "import sys, time\n"
        "from keeper.devnet.anvil import Anvil\n"
        "a = Anvil().start()\n"
        "print(a.proc.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    anvil_pid = int(parent.stdout.readline())
    assert _alive(anvil_pid)
    parent.send_signal(signal.SIGKILL)  # no cleanup code runs: the kernel must take anvil down
    parent.wait()
    deadline = time.monotonic() + 5
    while _alive(anvil_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(anvil_pid)
