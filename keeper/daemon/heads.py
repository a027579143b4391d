"""Where the daemon learns of new blocks: a WebSocket ``eth_subscribe("newHeads")`` when the node
offers one, polling ``eth_blockNumber`` otherwise.

Which WebSocket URL (``ws_url_for``): the chain's first ``ws_urls`` entry when set; else, with
``daemon.heads = "auto"``, one derived from the first ``rpc_urls`` entry (``http`` -> ``ws``,
``https`` -> ``wss``, same host, port and path). That is right for anvil, reth, Erigon and most
hosted providers, which serve both on one URL; geth serves WebSocket on its own port (8546), so
set ``ws_urls`` for it. ``daemon.heads = "ws"`` requires ``ws_urls`` (checked with the config);
``"poll"`` never opens a socket.

``HeadFeed`` runs the subscription in one daemon thread. On connect it checks the node's chain id
(a WebSocket on another chain is a failure), subscribes, and hands each head number to
``on_head`` (the daemon wakes its tick job; ticks still never overlap and only the newest head is
ticked). Any failure — connection refused, handshake timeout, a dropped connection, a node
without subscriptions, a stalled stream (``stalled()``) — switches the feed to polling with one
logged warning and ``on_fallback(why)``; after ``retry_s`` it tries the WebSocket again and, when
that works, logs the restore and calls ``on_restore()``. While the feed is down, ``newest()`` is
``None`` and the daemon polls.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from keeper.chain.client import redact_url
from keeper.config import ChainConfig

log = logging.getLogger("keeper.daemon.heads")


def ws_url_for(ccfg: ChainConfig, mode: str) -> str | None:
    """The WebSocket URL for new heads, or None when the daemon must poll."""
    if mode == "poll":
        return None
    if ccfg.ws_urls:
        return ccfg.ws_urls[0]
    if mode == "auto" and ccfg.rpc_urls:
        url = ccfg.rpc_urls[0]
        if url.startswith("https://"):
            return "wss://" + url[len("https://"):]
        if url.startswith("http://"):
            return "ws://" + url[len("http://"):]
    return None


class HeadsUnavailable(Exception):
    """The WebSocket cannot deliver heads (the reason is the message)."""


class HeadFeed:
    def __init__(self, url: str | None, *, chain_id: int | None, on_head: Callable[[int], None] = lambda n: None,
                 on_fallback: Callable[[str], None] = lambda why: None, on_restore: Callable[[], None] = lambda: None,
                 open_timeout: float = 10.0, retry_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.url = url
        self.chain_id = chain_id
        self.on_head, self.on_fallback, self.on_restore = on_head, on_fallback, on_restore
        self.open_timeout = open_timeout
        self.retry_s = retry_s
        self.clock = clock
        self.live = False  # True while the subscription delivers heads
        self.head: int | None = None
        self.head_at = clock()
        self._headers: dict[int, tuple[str, int]] = {}  # number -> (hash, timestamp), the last few heads
        self.connects = 0  # sockets opened (tests: "poll" opens none)
        self.fallbacks = 0
        self._stop = threading.Event()
        self._ws: Any = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def source(self) -> str:
        return "ws" if self.live else "poll"

    def newest(self) -> int | None:
        """The newest head the subscription delivered, or None while polling."""
        with self._lock:
            return self.head if self.live else None

    def header(self, number: int) -> tuple[str, int] | None:
        """The hash and timestamp the subscription delivered for block ``number`` (the latest one
        delivered for that number, after a reorg), or None: saves the reader fetching the header."""
        with self._lock:
            return self._headers.get(number)

    def start(self) -> None:
        if self.url is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="keeper-heads", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)  # a handshake still hanging ends by itself (daemon thread)
            self._thread = None
        with self._lock:
            self.live = False

    def stalled(self, why: str) -> None:
        """The daemon saw the node ahead of the subscription: drop the socket, poll, retry later."""
        if self.live:
            self._fail(HeadsUnavailable(why))
            self._close()

    # --- the subscription thread -------------------------------------------------------------
    def _close(self) -> None:
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):  # already broken: nothing more to release
                ws.close()

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                self._subscribe_and_listen()
            except Exception as e:  # any failure means: poll, and retry later
                if self._stop.is_set():
                    break
                self._fail(e, first=first)
            first = False
            self._stop.wait(self.retry_s)

    def _fail(self, e: BaseException, first: bool = False) -> None:
        why = str(e) or type(e).__name__
        if not isinstance(e, HeadsUnavailable):
            why = f"{type(e).__name__}: {why}"
        with self._lock:
            was_live, self.live = self.live, False
        if was_live or first:
            self.fallbacks += 1
            log.warning("new heads: WebSocket unavailable, polling instead",
                        extra={"event": "heads_fallback", "ws": redact_url(self.url or ""), "why": why,
                               "retry_s": self.retry_s})
            self.on_fallback(why)
        else:
            log.debug("new heads: WebSocket still unavailable", extra={"event": "heads_retry", "why": why})

    def _rpc(self, ws: Any, req_id: int, method: str, params: list[Any]) -> Any:
        ws.send(json.dumps({"jsonrpc": "2.0", "id": req_id, "method": method, "params": params}))
        deadline = self.clock() + self.open_timeout
        while True:
            left = deadline - self.clock()
            if left <= 0:
                raise HeadsUnavailable(f"no answer to {method} within {self.open_timeout:g} s")
            msg = json.loads(ws.recv(timeout=left))
            if isinstance(msg, dict) and msg.get("id") == req_id:
                if msg.get("error"):
                    err = msg["error"]
                    why = err.get("message", err) if isinstance(err, dict) else err
                    raise HeadsUnavailable(f"{method} refused: {why}")
                return msg.get("result")

    def _subscribe_and_listen(self) -> None:
        from websockets.sync.client import connect

        self.connects += 1
        if self.url is None:  # start() runs no subscription without a URL
            raise HeadsUnavailable("no WebSocket URL")
        with connect(self.url, open_timeout=self.open_timeout, close_timeout=2, max_size=2**22) as ws:
            self._ws = ws
            try:
                cid = int(self._rpc(ws, 1, "eth_chainId", []), 16)
                if self.chain_id is not None and cid != self.chain_id:
                    raise HeadsUnavailable(f"the WebSocket is on chain id {cid}, expected {self.chain_id}")
                sub = self._rpc(ws, 2, "eth_subscribe", ["newHeads"])
                if not isinstance(sub, str):
                    raise HeadsUnavailable(f"eth_subscribe answered {sub!r}, not a subscription id")
                with self._lock:
                    self.live, self.head_at = True, self.clock()
                log.info("new heads: WebSocket subscription",
                         extra={"event": "heads_ws", "ws": redact_url(self.url or "")})
                self.on_restore()
                while not self._stop.is_set():
                    try:
                        msg = json.loads(ws.recv(timeout=1.0))
                    except TimeoutError:
                        continue
                    params = msg.get("params") if isinstance(msg, dict) else None
                    if msg.get("method") != "eth_subscription" or not isinstance(params, dict) \
                            or params.get("subscription") != sub:
                        continue
                    result = params["result"]
                    number = int(result["number"], 16)
                    with self._lock:
                        if isinstance(result.get("hash"), str) and isinstance(result.get("timestamp"), str):
                            self._headers[number] = (result["hash"], int(result["timestamp"], 16))
                            for old in [n for n in self._headers if n < number - 8]:
                                del self._headers[old]
                        # Every delivered head is the node's canonical head now: a lower number than
                        # the last is a reorg onto a shorter chain, and the blocks above it are gone
                        # (a tick must not ask for them). The same number again (a sibling block) is
                        # not a new height: nothing new to tick.
                        newer = self.head is None or number != self.head
                        if newer:
                            self.head, self.head_at = number, self.clock()
                    if newer:
                        self.on_head(number)
            finally:
                self._ws = None
