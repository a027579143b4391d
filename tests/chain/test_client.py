"""Chain client on real anvil nodes: failover on a dead or dying RPC, retries only for temporary
errors, chain-id check, moving off a lagging node."""

import http.server
import threading

import pytest

from keeper.chain import contracts as C
from keeper.chain.client import ChainClient, redact_url
from keeper.chain.revert import decode
from keeper.devnet.anvil import Anvil, free_port, rpc_call
from keeper.errors import ConfigError, Reverted, TemporaryError
from tests.chain.test_inflight import _ClosingNode

NO_SLEEP = lambda _s: None  # noqa: E731


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_fails_over_from_a_dead_url(anvil):
    c = ChainClient("devnet", [dead_url(), anvil.url], 31337, timeout=2, sleep=NO_SLEEP)
    assert c.connect() == 31337
    assert c.url == anvil.url
    assert c.block_number() >= 0
    assert c.errors >= 1


def test_fails_over_when_the_primary_dies_mid_run(anvil):
    primary = Anvil().start()
    try:
        failovers = []
        c = ChainClient("devnet", [primary.url, anvil.url], 31337, timeout=2, sleep=NO_SLEEP)
        c.on_failover = lambda frm, to, why: failovers.append((frm, to, why))
        c.connect()
        assert c.url == primary.url
        c.block_number()
        primary.stop()  # the node dies between two reads
        assert c.block_number() >= 0
        assert c.url == anvil.url and c.failovers == 1
        assert len(failovers) == 1 and "unreachable" in failovers[0][2]
    finally:
        primary.stop()


def test_every_url_dead_is_a_temporary_error_after_retries():
    sleeps = []
    c = ChainClient("devnet", [dead_url(), dead_url()], 31337, timeout=1, retries=2, backoff=0.1,
                    sleep=sleeps.append)
    with pytest.raises(TemporaryError, match="every RPC URL failed"):
        c.request("eth_blockNumber")
    assert sleeps == [0.1, 0.2]  # exponential backoff between rounds


def test_wrong_chain_id_is_fatal(anvil):
    c = ChainClient("mainnet", [anvil.url], chain_id=1)
    with pytest.raises(ConfigError, match="chain id 31337, expected 1"):
        c.connect()


def test_no_url_answers_at_connect():
    with pytest.raises(TemporaryError, match="none of its 1 RPC URL"):
        ChainClient("devnet", [dead_url()], 31337, timeout=1).connect()


def test_revert_is_not_retried(anvil, devnet):
    c = ChainClient("devnet", [anvil.url], 31337, sleep=NO_SLEEP)
    usdc = devnet["tokens"]["USDC"]["address"]
    # transfer(address,uint256) from address 0 (eth_call without "from"): OpenZeppelin refuses it.
    data = "0xa9059cbb" + "00" * 12 + "11" * 20 + (10**30).to_bytes(32, "big").hex()
    with pytest.raises(Reverted) as e:
        c.eth_call(usdc, data)
    assert decode(e.value.data, [C.ours("TestERC20").abi]).name == "ERC20InvalidSender"
    assert c.errors == 0


def test_moves_off_a_lagging_node(anvil):
    behind = Anvil().start()
    try:
        rpc_call(anvil.url, "anvil_mine", [hex(10)])
        c = ChainClient("devnet", [behind.url, anvil.url], 31337, max_lag_blocks=3, sleep=NO_SLEEP)
        c.connect()
        assert c.url == behind.url
        c.check_lag()
        assert c.url == anvil.url and c.failovers == 1
    finally:
        behind.stop()


def test_urls_are_redacted_in_errors():
    c = ChainClient("devnet", [f"http://127.0.0.1:{free_port()}/v2/SECRETKEY"], 31337, timeout=1, retries=0)
    with pytest.raises(TemporaryError) as e:
        c.request("eth_blockNumber")
    assert "SECRETKEY" not in str(e.value)


def test_fast_result_slices_a_plain_hex_result_and_leaves_the_rest_to_json():
    from keeper.chain.client import _fast_result

    assert _fast_result(b'{"jsonrpc":"2.0","id":7,"result":"0x00ff"}') == {"result": "0x00ff"}
    assert _fast_result(b'{"result":"0xab","id":1,"jsonrpc":"2.0"}') == {"result": "0xab"}
    # errors, escapes and non-hex results go through the JSON parser (None here)
    assert _fast_result(b'{"jsonrpc":"2.0","id":1,"error":{"code":3,"message":"execution reverted","data":"0x08"}}') \
        is None
    assert _fast_result(b'{"jsonrpc":"2.0","id":1,"error":{"data":{"result":"0x01"}}}') is None
    assert _fast_result(b'{"jsonrpc":"2.0","id":1,"result":"0x\\u0041"}') is None
    assert _fast_result(b'{"jsonrpc":"2.0","id":1,"result":null}') is None


def test_call_hex_equals_eth_call_and_keeps_reverts(anvil, devnet):
    client = ChainClient("devnet", [anvil.url], 31337)
    client.connect()
    oracle = devnet["aave_v3"]["oracle"]
    weth = devnet["tokens"]["WETH"]["address"]
    data = "0xb3596f07" + "00" * 12 + weth[2:].lower()  # getAssetPrice(WETH)
    block = client.block_number()
    assert client.call_hex(oracle, data, block) == client.eth_call(oracle, data, block)
    assert int.from_bytes(client.call_hex(oracle, data, block, gas=10**7), "big") == 2_000 * 10**8
    pool = devnet["aave_v3"]["pool"]
    with pytest.raises(Reverted):  # withdraw from the pool by someone with nothing there: a revert, not retried
        client.call_hex(pool, "0x69328dec" + "00" * 12 + weth[2:].lower() + "00" * 31 + "01" + "00" * 32, block)
    with pytest.raises(ValueError):
        client.call_hex(pool, '0x00"}', block)


@pytest.mark.parametrize("code,message,temporary", [
    (-32000, "nonce too low", False),                          # geth: not the node's fault
    (-32000, "already known", False),
    (-32000, "replacement transaction underpriced", False),
    (-32000, "insufficient funds for gas * price + value", False),
    (-32000, "header not found", True),                        # a lagging node: try another
    (-32005, "limit exceeded", True),
    (-32601, "the method eth_foo does not exist", False),
])
def test_rpc_errors_are_classified_by_code_and_message(code, message, temporary):
    from keeper.chain.client import ChainClient
    from keeper.errors import KeeperError, TemporaryError

    with pytest.raises(KeeperError) as e:
        ChainClient._result({"error": {"code": code, "message": message}}, "eth_sendRawTransaction", "http://x")
    assert isinstance(e.value, TemporaryError) is temporary


def test_no_url_answers_names_the_redacted_urls_and_how_to_start_a_devnet():
    port = free_port()  # nothing listens there: a devnet that `keeper devnet down` stopped
    urls = [f"http://alice:s3cret@127.0.0.1:{port}/v2/SECRETKEY?apikey=abc123",
            f"https://127.0.0.1:{free_port()}/rpc/TOKEN"]
    c = ChainClient("devnet", urls, 31337, timeout=1, retries=0, sleep=NO_SLEEP)
    with pytest.raises(TemporaryError) as e:
        c.connect()
    text = str(e.value)
    assert e.value.exit_code == 3 and "\n" not in text
    assert f"none of its 2 RPC URL(s) answers: http://127.0.0.1:{port} is unreachable" in text
    assert "https://127.0.0.1:" in text
    assert e.value.hint == "is the node running? for a local devnet: keeper devnet up --detach"
    assert text.endswith("(is the node running? for a local devnet: keeper devnet up --detach)")
    for secret in ("alice", "s3cret", "SECRETKEY", "abc123", "TOKEN"):
        assert secret not in text


@pytest.mark.parametrize("url,shown", [
    ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
    ("https://user:pass@eth.example:443/v2/KEY?apikey=K", "https://eth.example:443"),
    ("https://user:pa/ss@eth.example/v2/KEY", "https://eth.example"),  # a "/" in the password
    ("https://user:p?ss@eth.example", "https://eth.example"),
    ("http://user:p#x/y", "http://[REDACTED]"),
    ("http://[::1]:8545/KEY", "http://[::1]:8545"),
    ("not a url", "<rpc>"),
])
def test_redact_keeps_scheme_host_and_port_only(url, shown):
    assert redact_url(url) == shown


class _BrokenNode(http.server.BaseHTTPRequestHandler):
    """Answers every request with ``body``: JSON, but not a JSON-RPC reply."""

    body = b"[]"

    def do_POST(self) -> None:  # http.server calls it by this name
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_args) -> None:
        pass


@pytest.mark.parametrize("body", [b"[]", b'"ok"', b"42", b'{"jsonrpc":"2.0","id":1,"error":"boom"}'])
@pytest.mark.parametrize("split_phase", [False, True])
def test_a_reply_that_is_not_json_rpc_fails_over_to_the_next_url(anvil, body, split_phase):
    handler = type("Node", (_BrokenNode,), {"body": body})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        broken = f"http://127.0.0.1:{server.server_address[1]}"
        c = ChainClient("devnet", [broken, anvil.url], 31337, timeout=2, sleep=NO_SLEEP)
        got = c.start("eth_chainId", []).result() if split_phase else c.request("eth_chainId")
        assert got == "0x7a69"
        assert c.url == anvil.url and c.failovers == 1 and c.errors >= 1
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("split_phase", [False, True])
def test_the_url_query_is_sent_and_a_closed_idle_connection_is_not_a_failure(split_phase):
    """Providers put keys in the URL's path or query: both reach the node. An idle connection the
    node closed is redone on a new one, without marking the URL down."""
    handler = type("Node", (_ClosingNode,), {"targets": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v2/key?apikey=secret"
        c = ChainClient("devnet", [url], 31337, timeout=2, sleep=NO_SLEEP)
        for _ in range(3):  # the 2nd and 3rd find the connection the node closed
            got = c.start("eth_chainId", []).result() if split_phase else c.request("eth_chainId")
            assert got == "0x2a"
        assert handler.targets == ["/v2/key?apikey=secret"] * 3
        assert c.errors == 0 and c.endpoints[0].failures == 0
    finally:
        server.shutdown()
        server.server_close()
