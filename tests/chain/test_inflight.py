"""Split-phase JSON-RPC (``ChainClient.start``/``start_batch``): the same replies and errors as the
blocking calls on a real anvil, and the blocking path's failover when the transport fails on the
way (a dead URL, a node that closes an idle connection)."""

import http.server
import json
import threading
import time
from typing import ClassVar

import pytest

from keeper.chain.client import ChainClient
from keeper.devnet.anvil import free_port
from keeper.errors import KeeperError, Reverted

NO_SLEEP = lambda _s: None  # noqa: E731


def wait_ready(flight, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not flight.ready():
        assert time.monotonic() < end, "the reply never arrived"
        time.sleep(0.001)


def test_a_call_sent_now_and_read_later_equals_the_blocking_call(anvil):
    c = ChainClient("devnet", [anvil.url], 31337, sleep=NO_SLEEP)
    c.connect()
    flight = c.start("eth_chainId", [])
    wait_ready(flight)
    assert flight.result() == c.request("eth_chainId") == "0x7a69"
    assert flight.result() == "0x7a69"  # read once, kept
    # the connection went back to the idle ones and serves the next request
    again = c.start("eth_getBalance", ["0x" + "00" * 20, "latest"])
    assert again.result() == c.request("eth_getBalance", ["0x" + "00" * 20, "latest"])
    assert c.errors == 0


def test_a_batch_keeps_every_reply_and_error_in_place(anvil, devnet):
    c = ChainClient("devnet", [anvil.url], 31337, sleep=NO_SLEEP)
    c.connect()
    pool, weth = devnet["aave_v3"]["pool"], devnet["tokens"]["WETH"]["address"]
    # withdraw(WETH, 1, 0x0) by someone with nothing in the pool: a revert
    reverting = {"to": pool, "data": "0x69328dec" + "00" * 12 + weth[2:].lower() + "00" * 31 + "01" + "00" * 32}
    calls = [("eth_blockNumber", []), ("eth_call", [reverting, "latest"]), ("eth_noSuchMethod", [])]
    replies = c.start_batch(calls).result()
    blocking = c.batch_each(calls)
    assert replies[0] == blocking[0]
    assert isinstance(replies[1], Reverted) and replies[1].data == blocking[1].data
    assert isinstance(replies[2], KeeperError) and "eth_noSuchMethod" in str(replies[2])
    assert c.start_batch([]).result() == []


def test_a_single_call_raises_its_error_on_result(anvil):
    c = ChainClient("devnet", [anvil.url], 31337, sleep=NO_SLEEP)
    flight = c.start("eth_noSuchMethod", [])
    with pytest.raises(KeeperError, match="rejected eth_noSuchMethod"):
        flight.result()
    assert c.errors == 0  # the node's refusal, not a transport failure


def test_a_dead_url_fails_over_to_the_next_as_the_blocking_path_does(anvil):
    dead = f"http://127.0.0.1:{free_port()}"
    c = ChainClient("devnet", [dead, anvil.url], 31337, timeout=2, sleep=NO_SLEEP)
    flight = c.start_batch([("eth_chainId", [])])
    assert flight.ready()  # nothing in flight: it was answered by the next URL already
    assert flight.result() == ["0x7a69"]
    assert c.url == anvil.url and c.failovers == 1 and c.errors >= 1


class _ClosingNode(http.server.BaseHTTPRequestHandler):
    """Answers eth_blockNumber, then closes the connection without saying so (no "Connection:
    close"), as a node does with an idle keep-alive connection after its timeout."""

    protocol_version = "HTTP/1.1"
    served = 0
    targets: ClassVar[list[str]] = []  # each request's path and query

    def do_POST(self) -> None:  # http.server calls it by this name
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).served += 1
        self.targets.append(self.path)
        body = json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": "0x2a"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *_args) -> None:
        pass


def test_an_idle_connection_the_node_closed_is_redone_without_marking_the_node_down():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ClosingNode)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        other = f"http://127.0.0.1:{free_port()}"  # where a wrong failover would go (nothing there)
        c = ChainClient("devnet", [url, other], 31337, timeout=2, sleep=NO_SLEEP)
        assert c.start("eth_blockNumber", []).result() == "0x2a"
        time.sleep(0.05)  # the server has closed its end of the kept connection
        assert c.start("eth_blockNumber", []).result() == "0x2a"  # on the closed one, then redone
        assert c.url == url and c.failovers == 0 and c.errors == 0
        assert _ClosingNode.served == 2
    finally:
        server.shutdown()
        server.server_close()
