"""JSON-RPC client for one chain with several RPC URLs: fail over on errors, timeouts and lagging
nodes; check the chain id at start; retry temporary errors with backoff, never others.

Thin by design (style rule 5): it speaks raw JSON-RPC over HTTP (``http.client`` on kept-alive
connections; ``requests`` where a proxy or credentials in the URL are involved), translates transport
and node errors into ``keeper.errors`` classes with the raw payload attached, and leaves decoding to
the callers. A ``web3.Web3`` for the current endpoint is available for contract helpers.
"""

from __future__ import annotations

import functools
import http.client
import itertools
import json
import select
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import certifi
import requests

from keeper.errors import ConfigError, KeeperError, Reverted, TemporaryError

if TYPE_CHECKING:
    from web3 import Web3
    from web3.types import RPCResponse

# JSON-RPC error codes that mean "this node cannot answer now", worth another node or a retry.
TEMPORARY_RPC_CODES = {-32005, -32603, -32000, 429}
# Refusals a node reports under a "temporary" code (geth: -32000 for almost everything) that are about
# the request, not the node: another node, or the same one later, gives the same answer, so they are
# never retried, never mark an endpoint down and never raise a failover alert.
PERMANENT_RPC_MESSAGES = ("nonce too low", "already known", "already imported", "replacement transaction underpriced",
                          "transaction underpriced", "insufficient funds", "intrinsic gas too low",
                          "exceeds block gas limit", "max fee per gas less than block base fee",
                          "fee cap less than block base fee", "max priority fee per gas higher than max fee per gas",
                          "invalid sender", "nonce too high", "gas limit reached")
REVERT_MARKERS = ("execution reverted", "revert")


@dataclass
class Endpoint:
    url: str
    session: requests.Session = field(default_factory=requests.Session, repr=False)
    down_until: float = 0.0
    failures: int = 0
    head: int | None = None
    head_timestamp: int | None = None

    def __post_init__(self) -> None:
        # requests re-reads the proxy environment on every request (~0.3 ms each, thousands per
        # minute here): resolve it once for this URL (HTTP(S)_PROXY and NO_PROXY honoured).
        self.session.proxies.update(requests.utils.get_environ_proxies(self.url))
        self.session.trust_env = False


_RESULT_KEY = b'"result":"0x'


@functools.cache
def _tls() -> ssl.SSLContext:
    """Certificates checked against the same CA bundle ``requests`` uses (certifi's), so both paths
    trust the same servers."""
    return ssl.create_default_context(cafile=certifi.where())


def _target(url: str) -> str:
    """The request target of an RPC URL: its path and query (providers put keys in either)."""
    u = urllib.parse.urlsplit(url)
    return (u.path or "/") + (f"?{u.query}" if u.query else "")


def _is_hex(s: str) -> bool:
    if not s.startswith("0x"):
        return False
    try:
        bytes.fromhex(s[2:] if len(s) % 2 == 0 else "0" + s[2:])
    except ValueError:
        return False
    return True


def _fast_result(content: bytes) -> RPCResponse | None:
    """``{"jsonrpc":"2.0","id":N,"result":"0x…"}`` without a JSON parse of the hex (``json.loads``
    of the ~20 MB a large read returns costs tens of ms): the reply as ``{"result": "0x…"}`` when it
    is exactly a hex result, else None (the caller parses it as JSON: errors, other shapes)."""
    start = content.find(_RESULT_KEY)
    if start < 0 or content.find(b'"error"', 0, start) >= 0:
        return None
    start += len(_RESULT_KEY) - 2
    end = content.find(b'"', start)
    if end < 0 or content.find(b"\\", start, end) >= 0 or content.find(b'"error"', end) >= 0:
        return None
    return {"result": content[start:end].decode("ascii", "replace")}  # the caller's fromhex checks it


def redact_url(url: str) -> str:
    """RPC URLs often carry an API key in the path or query, or credentials as ``user:pass@``: show
    scheme, host and port only."""
    try:
        scheme, rest = url.split("://", 1)
    except ValueError:
        return "<rpc>"
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if "@" in host:
        host = host.rsplit("@", 1)[1]
    _name, sep, port = host.rpartition(":")
    if sep and not port.isdigit() and not host.endswith("]"):
        # Not a port: userinfo whose password holds a "/", "?" or "#"; the host follows its last "@".
        host = rest.rsplit("@", 1)[1].split("/", 1)[0].split("?", 1)[0] if "@" in rest else "[REDACTED]"
    return f"{scheme}://{host}"


NOT_ANSWERING_HINT = "is the node running? for a local devnet: keeper devnet up --detach"


class ChainClient:
    def __init__(
        self,
        name: str,
        urls: Sequence[str],
        chain_id: int | None = None,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        cooldown: float = 30.0,
        max_lag_blocks: int = 3,
        max_head_age: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not urls:
            raise ConfigError(f"chain {name}: no RPC URL configured")
        self.name = name
        self.endpoints = [Endpoint(u) for u in urls]
        self.expected_chain_id = chain_id
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.cooldown = cooldown
        self.max_lag_blocks = max_lag_blocks
        self.max_head_age = max_head_age
        self._clock, self._wall, self._sleep = clock, wall_clock, sleep
        self._current = 0
        self._ids = itertools.count(1)
        self.failovers = 0
        self.errors = 0
        self.on_failover: Callable[[str, str, str], None] | None = None  # (from, to, why) for alerts
        self.unsupported: set[str] = set()  # optional methods the node answered as unknown (callers' fallbacks)
        # idle connections of the split-phase requests (:meth:`start`), per endpoint URL
        self._spare: dict[str, list[http.client.HTTPConnection]] = {}
        self._spare_lock = threading.Lock()

    # --- endpoints ---------------------------------------------------------------------------
    @property
    def current(self) -> Endpoint:
        return self.endpoints[self._current]

    @property
    def url(self) -> str:
        return self.current.url

    def _usable(self) -> list[int]:
        now = self._clock()
        order = [(self._current + k) % len(self.endpoints) for k in range(len(self.endpoints))]
        up = [i for i in order if self.endpoints[i].down_until <= now]
        return up or order  # all marked down: try them all anyway, in order

    def _mark_down(self, index: int, why: str) -> None:
        ep = self.endpoints[index]
        ep.failures += 1
        ep.down_until = self._clock() + self.cooldown
        if index == self._current and len(self.endpoints) > 1:
            nxt = next((i for i in self._usable() if i != index), None)
            if nxt is not None:
                self._current = nxt
                self.failovers += 1
                if self.on_failover:
                    self.on_failover(redact_url(ep.url), redact_url(self.endpoints[nxt].url), why)

    # --- requests ----------------------------------------------------------------------------
    def _post(self, ep: Endpoint, payload: Any) -> Any:
        """Send a JSON-RPC payload (or a body already serialised, ``bytes``) and parse the reply.
        A large plain ``eth_call`` result is sliced out of the reply rather than parsed (see
        ``_fast_result``); anything else, errors included, is parsed as JSON."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        direct = self._post_direct(ep, body)
        if direct is not None:
            status, content = direct
        else:
            try:
                resp = ep.session.post(ep.url, data=body, timeout=self.timeout,
                                       headers={"Content-Type": "application/json"})
            except requests.Timeout as e:
                raise TemporaryError(f"{redact_url(ep.url)} timed out after {self.timeout:g} s") from e
            except requests.RequestException as e:
                raise TemporaryError(f"{redact_url(ep.url)} is unreachable: {type(e).__name__}") from e
            status, content = resp.status_code, resp.content
        if status == 429 or status >= 500:
            raise TemporaryError(f"{redact_url(ep.url)} answered HTTP {status}")
        if status != 200:
            text = content[:200].decode("utf-8", "replace")
            raise TemporaryError(f"{redact_url(ep.url)} answered HTTP {status}: {text}")
        if isinstance(payload, bytes):
            fast = _fast_result(content)
            if fast is not None:
                return fast
        try:
            return json.loads(content)
        except ValueError as e:
            raise TemporaryError(f"{redact_url(ep.url)} answered something that is not JSON") from e

    def _post_direct(self, ep: Endpoint, body: bytes) -> tuple[int, bytes] | None:
        """``body`` posted on a kept-alive ``http.client`` connection: (status, content), or None
        where this path does not go (a proxy, credentials in the URL: ``requests`` does those).
        ``requests`` costs ~0.3 ms of CPU per call here, ``http.client`` ~0.07 (bench/BENCHMARKS.md),
        and a tick makes dozens of calls. An idle connection the node closed meanwhile is not the
        node's fault: the request is made again on a new one."""
        got = self._checkout(ep)
        if got is None:
            return None
        conn, reused = got
        while True:
            try:
                conn.request("POST", _target(ep.url), body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                content = resp.read()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                if reused:
                    conn, reused = self._connection(ep), False
                    continue
                if isinstance(e, TimeoutError):
                    raise TemporaryError(f"{redact_url(ep.url)} timed out after {self.timeout:g} s") from e
                raise TemporaryError(f"{redact_url(ep.url)} is unreachable: {type(e).__name__}") from e
            if resp.will_close:
                conn.close()
            else:
                self._checkin(ep, conn)
            return resp.status, content

    @staticmethod
    def _result(reply: RPCResponse, method: str, url: str) -> Any:
        if not isinstance(reply, dict):  # not a JSON-RPC reply object: the node is broken, try another
            raise TemporaryError(f"{redact_url(url)} answered {method} with a {type(reply).__name__}, "
                                 f"not a JSON-RPC reply")
        if "error" in reply and reply["error"] is not None:
            err = reply["error"]
            if not isinstance(err, dict):
                raise TemporaryError(f"{redact_url(url)} answered {method} with a malformed error: {str(err)[:200]}")
            msg = str(err.get("message", err))
            data = err.get("data")
            if any(m in msg.lower() for m in REVERT_MARKERS) or (isinstance(data, str) and data.startswith("0x")
                                                                 and method == "eth_call"):
                raw = bytes.fromhex(data[2:]) if isinstance(data, str) and data.startswith("0x") else None
                raise Reverted(f"{method} reverted: {msg}", data=raw)
            if err.get("code") in TEMPORARY_RPC_CODES and not any(m in msg.lower() for m in PERMANENT_RPC_MESSAGES):
                raise TemporaryError(f"{redact_url(url)} failed {method}: {msg}")
            # Not the node's fault (unknown method, bad params): another node would say the same.
            raise KeeperError(f"{redact_url(url)} rejected {method}: {msg} (code {err.get('code')})")
        return reply.get("result")

    def request(self, method: str, params: list[Any] | None = None, *, body: bytes | None = None) -> Any:
        """One call with retries and failover; ``Reverted`` is never retried. ``body``: the request
        already serialised (it must be this ``method`` with these ``params``; see ``call_hex``)."""
        last: TemporaryError | None = None
        for attempt in range(self.retries + 1):
            for index in self._usable():
                ep = self.endpoints[index]
                try:
                    reply = self._post(ep, body if body is not None else
                                       {"jsonrpc": "2.0", "id": next(self._ids), "method": method,
                                        "params": params or []})
                    result = self._result(reply, method, ep.url)
                except TemporaryError as e:
                    self.errors += 1
                    last = e
                    self._mark_down(index, str(e))
                    continue
                if index != self._current:
                    self._current = index
                return result
            if attempt < self.retries:
                self._sleep(self.backoff * 2**attempt)
        raise TemporaryError(f"chain {self.name}: every RPC URL failed {method}; last: {last}") from last

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Several calls in one HTTP request (JSON-RPC batch), on one endpoint, with failover."""
        return self._batch(calls, each=False)

    def batch_each(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Like :meth:`batch`, but a call the node refuses gives its error (``Reverted``,
        ``TemporaryError`` or ``KeeperError``) in its place instead of raising: a refusal of one
        ``eth_sendRawTransaction`` says nothing about the others. Transport failures (the whole
        request) still fail over and raise."""
        return self._batch(calls, each=True)

    @classmethod
    def _result_or_error(cls, reply: RPCResponse, method: str, url: str) -> Any:
        try:
            return cls._result(reply, method, url)
        except KeeperError as e:
            return e

    def _batch(self, calls: Sequence[tuple[str, list[Any]]], *, each: bool) -> list[Any]:
        if not calls:
            return []
        result = self._result_or_error if each else self._result
        last: TemporaryError | None = None
        for attempt in range(self.retries + 1):
            for index in self._usable():
                ep = self.endpoints[index]
                ids = [next(self._ids) for _ in calls]
                payload = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in zip(ids, calls)]
                try:
                    replies = self._post(ep, payload)
                    if not isinstance(replies, list):
                        raise TemporaryError(f"{redact_url(ep.url)} does not support JSON-RPC batches")
                    by_id: dict[Any, Any] = {r.get("id"): r for r in replies if isinstance(r, dict)}
                    return [result(by_id[i], m, ep.url) for i, (m, _p) in zip(ids, calls)]
                except TemporaryError as e:
                    self.errors += 1
                    last = e
                    self._mark_down(index, str(e))
                except KeyError:
                    last = TemporaryError(f"{redact_url(ep.url)} left out a reply in a batch")
                    self._mark_down(index, str(last))
                    continue
            if attempt < self.retries:
                self._sleep(self.backoff * 2**attempt)
        raise TemporaryError(f"chain {self.name}: every RPC URL failed a batch; last: {last}") from last

    # --- split-phase requests ------------------------------------------------------------------
    def start(self, method: str, params: list[Any]) -> InFlight:
        """Send one call now and return without its reply: :meth:`InFlight.ready` says whether the
        reply is there, :meth:`InFlight.result` reads it (the value or error :meth:`request` gives).
        Only for calls that are safe to send twice (see :class:`InFlight`)."""
        body = json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}).encode()
        return InFlight(self, body, [(method, params)], single=True)

    def start_batch(self, calls: Sequence[tuple[str, list[Any]]]) -> InFlight:
        """:meth:`batch_each` in two phases, like :meth:`start`: ``result()`` gives each call's
        value or error in its place."""
        return InFlight(self, b"", list(calls), single=False)

    def _checkout(self, ep: Endpoint) -> tuple[http.client.HTTPConnection, bool] | None:
        """An idle connection to ``ep`` (reused: True) or a new one, or None where the split-phase
        path does not go: a proxy, or credentials in the URL (those take the blocking path)."""
        u = urllib.parse.urlsplit(ep.url)
        if ep.session.proxies.get(u.scheme) or u.username or u.scheme not in ("http", "https") or not u.hostname:
            return None
        with self._spare_lock:
            idle = self._spare.get(ep.url)
            if idle:
                return idle.pop(), True
        return self._connection(ep), False

    def _connection(self, ep: Endpoint) -> http.client.HTTPConnection:
        u = urllib.parse.urlsplit(ep.url)
        if u.scheme == "https":
            return http.client.HTTPSConnection(u.hostname or "", u.port, timeout=self.timeout, context=_tls())
        return http.client.HTTPConnection(u.hostname or "", u.port, timeout=self.timeout)

    def _checkin(self, ep: Endpoint, conn: http.client.HTTPConnection) -> None:
        with self._spare_lock:
            self._spare.setdefault(ep.url, []).append(conn)

    # --- chain facts -------------------------------------------------------------------------
    def connect(self) -> int:
        """Check the chain id on every URL that answers. A URL on another chain is a config error
        (fatal); URLs that do not answer are marked down. Returns the chain id."""
        seen: dict[str, int] = {}
        why: list[str] = []
        for index, ep in enumerate(self.endpoints):
            try:
                seen[ep.url] = int(self._result(self._post(ep, {"jsonrpc": "2.0", "id": 0, "method": "eth_chainId",
                                                                "params": []}), "eth_chainId", ep.url), 16)
            except TemporaryError as e:
                self.errors += 1
                self._mark_down(index, str(e))
                why.append(" ".join(str(e).split()))  # one line; the URL in it is already redacted
        if not seen:
            raise TemporaryError(f"chain {self.name}: none of its {len(self.endpoints)} RPC URL(s) answers: "
                                 + "; ".join(dict.fromkeys(why)), hint=NOT_ANSWERING_HINT)
        expected = self.expected_chain_id if self.expected_chain_id is not None else next(iter(seen.values()))
        for url, cid in seen.items():
            if cid != expected:
                raise ConfigError(f"chain {self.name}: {redact_url(url)} is on chain id {cid}, expected {expected}",
                                  hint="fix chains.<name>.chain_id or the RPC URL")
        self.expected_chain_id = expected
        if self.current.down_until > self._clock():
            self._current = self._usable()[0]
        return expected

    def block_number(self) -> int:
        return int(self.request("eth_blockNumber"), 16)

    def check_lag(self) -> None:
        """Ask every endpoint for its head; move off one that is ``max_lag_blocks`` behind the best
        or whose head block is older than ``max_head_age`` seconds."""
        heads: dict[int, tuple[int, int]] = {}
        for index, ep in enumerate(self.endpoints):
            try:
                block = self._result(self._post(ep, {"jsonrpc": "2.0", "id": 0, "method": "eth_getBlockByNumber",
                                                     "params": ["latest", False]}), "eth_getBlockByNumber", ep.url)
                heads[index] = (int(block["number"], 16), int(block["timestamp"], 16))
                ep.head, ep.head_timestamp = heads[index]
            except TemporaryError as e:
                self._mark_down(index, str(e))
        if not heads:
            return
        best = max(h for h, _t in heads.values())
        now = self._wall()
        for index, (head, ts) in heads.items():
            if best - head > self.max_lag_blocks:
                self._mark_down(index, f"lagging: head {head} is {best - head} blocks behind {best}")
            elif self.max_head_age is not None and now - ts > self.max_head_age:
                self._mark_down(index, f"stale: head {head} is {now - ts:.0f} s old")

    def eth_call(self, to: str, data: bytes | str, block: int | str = "latest", gas: int | None = None) -> bytes:
        call: dict[str, Any] = {"to": to, "data": data if isinstance(data, str) else "0x" + data.hex()}
        if gas is not None:
            call["gas"] = hex(gas)
        tag = hex(block) if isinstance(block, int) else block
        out = self.request("eth_call", [call, tag])
        return bytes.fromhex(out[2:])

    def call_hex(self, to: str, data_hex: str, block: int, gas: int | None = None) -> bytes:
        """``eth_call`` of calldata already in hex (the pre-encoded Multicall3 chunks of a read, a few
        hundred KB each): the JSON body is assembled by hand, since an address and a hex string need
        no escaping and ``json.dumps`` scans every character (~2.5 ms per such chunk), and the result
        comes back through ``_fast_result``. Same retries, failover and errors as ``request``."""
        # Nothing in the body may need JSON escaping: an address, and calldata that is ours (encoded
        # hex; checking every character would cost what json.dumps costs).
        if not _is_hex(to) or not data_hex.startswith("0x") or '"' in data_hex or "\\" in data_hex:
            raise ValueError("call_hex takes a 0x address and 0x-prefixed hex calldata")
        gas_field = f',"gas":"{hex(gas)}"' if gas is not None else ""
        body = (f'{{"jsonrpc":"2.0","id":{next(self._ids)},"method":"eth_call","params":[{{"to":"{to}",'
                f'"data":"{data_hex}"{gas_field}}},"{hex(block)}"]}}').encode()
        out = self.request("eth_call", body=body)
        try:
            return bytes.fromhex(out[2:])
        except (TypeError, ValueError) as e:
            raise TemporaryError(f"chain {self.name}: eth_call answered a result that is not hex") from e

    @property
    def w3(self) -> Web3:
        """A web3 for the current endpoint (contract helpers, ABI encoding); no failover inside.
        web3 is imported here, on first use: it costs about 0.3 s of every command's start-up beyond
        what eth_account already takes, and nothing on the keeper's own paths needs it."""
        from web3 import Web3

        return Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": self.timeout}))


class InFlight:
    """A JSON-RPC request sent, its reply not read yet (:meth:`ChainClient.start`).

    Why it exists: the daemon's tick thread plans vault after vault (pure Python, holding the
    interpreter lock) while the node simulates and takes the transactions of the vaults planned
    before. A worker thread doing that I/O waits for the lock after each blocking call, up to the
    5 ms switch interval each time, so its requests went out and came back late (bench/
    BENCHMARKS.md, stage 11, third session). Sent from the planning thread itself, with the socket
    polled between two vaults, the node works meanwhile and nothing waits for the lock.

    Anything that goes wrong on the way (connecting, writing, reading, an HTTP error status, a reply
    that is not JSON, a temporary node error) marks the endpoint down as the blocking path does and
    redoes the request there: retries, failover and the same errors. So only requests that are safe
    to send twice go this way: simulations, and signed transactions (a node that has one already
    answers "already known", which the sender counts as sent).
    """

    def __init__(self, client: ChainClient, body: bytes, calls: list[tuple[str, list[Any]]], *, single: bool) -> None:
        self.client, self.calls, self.single = client, calls, single
        self._conn: http.client.HTTPConnection | None = None
        self._ep: Endpoint | None = None
        self._index = -1
        self._ids: list[int] = []
        self._done = False
        self._value: Any = None
        self._error: KeeperError | None = None
        self._reused = False  # the connection served an earlier request (the node may have closed it since)
        if not calls:
            self._done, self._value = True, []
            return
        if not single:
            self._ids = [next(client._ids) for _ in calls]
            body = json.dumps([{"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                               for i, (m, p) in zip(self._ids, calls)]).encode()
        self._index = client._usable()[0]
        ep = client.endpoints[self._index]
        got = client._checkout(ep)
        if got is None:
            self._resolve_blocking()
            return
        conn, self._reused = got
        try:
            conn.request("POST", _target(ep.url), body=body,
                         headers={"Content-Type": "application/json"})
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            self._fall_back(f"{redact_url(ep.url)} is unreachable: {type(e).__name__}")
            return
        self._conn, self._ep = conn, ep

    def ready(self) -> bool:
        """The reply (or an error) is there: :meth:`result` will not wait for the node."""
        if self._conn is None or self._conn.sock is None:
            return True
        try:
            readable, _w, _x = select.select([self._conn.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def result(self) -> Any:
        """The reply: a single call's result (or its error raised), a batch's list of results and
        errors in place (as :meth:`ChainClient.batch_each`). Waits for the node if not ready."""
        if not self._done:
            self._read()
        if self._error is not None:
            raise self._error
        return self._value

    def _read(self) -> None:
        conn, ep, self._conn = self._conn, self._ep, None
        assert conn is not None and ep is not None
        try:
            resp = conn.getresponse()
            content = resp.read()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            kind = "timed out" if isinstance(e, TimeoutError) else f"is unreachable: {type(e).__name__}"
            self._fall_back(f"{redact_url(ep.url)} {kind}")
            return
        if resp.status != 200:
            conn.close()
            self._fall_back(f"{redact_url(ep.url)} answered HTTP {resp.status}")
            return
        if resp.will_close:
            conn.close()
        else:
            self.client._checkin(ep, conn)
        try:
            reply = json.loads(content)
        except ValueError:
            self._fall_back(f"{redact_url(ep.url)} answered something that is not JSON")
            return
        try:
            self._value = self._decode(reply, ep.url)
        except TemporaryError as e:
            self._fall_back(str(e))
            return
        except KeeperError as e:
            self._error = e
        self._done = True

    def _decode(self, reply: Any, url: str) -> Any:
        if self.single:
            return ChainClient._result(reply, self.calls[0][0], url)
        if not isinstance(reply, list):
            raise TemporaryError(f"{redact_url(url)} does not support JSON-RPC batches")
        by_id: dict[Any, Any] = {r.get("id"): r for r in reply if isinstance(r, dict)}
        if any(i not in by_id for i in self._ids):
            raise TemporaryError(f"{redact_url(url)} left out a reply in a batch")
        return [ChainClient._result_or_error(by_id[i], m, url) for i, (m, _p) in zip(self._ids, self.calls)]

    def _fall_back(self, why: str) -> None:
        if self._reused:  # an idle connection the node closed: not the node's fault, no mark
            self._resolve_blocking()
            return
        self.client.errors += 1
        self.client._mark_down(self._index, why)
        self._resolve_blocking()

    def _resolve_blocking(self) -> None:
        try:
            if self.single:
                self._value = self.client.request(self.calls[0][0], self.calls[0][1])
            else:
                self._value = self.client.batch_each(self.calls)
        except KeeperError as e:
            self._error = e
        self._done = True
