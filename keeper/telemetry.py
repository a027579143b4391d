"""Observability: JSON log lines, secret redaction, Prometheus metrics, ``/metrics`` and ``/healthz``.

``setup_logging()``: one root handler writing a JSON object per line: ``ts``, ``level``, ``logger``,
``msg``, each ``extra=`` field (``event``, ``position``, ``action``, ``reason``, ...), ``exc``; or,
on a terminal (``json="auto"``, the default) or with ``json=False``, a human-readable line with the
same fields as ``key=value``.

Redaction rule (``RedactionFilter`` on that handler, JSON and plain-text mode alike):
  1. an ``extra`` field whose *name* looks secret (``SECRET_FIELD``: key, private_key, secret, password,
     mnemonic, seed_phrase, api_key, auth, auth_token, signing_key, ...) is replaced by ``[REDACTED]``,
     and so is the value of ``name=value`` / ``name: value`` pairs with such names in message text;
  2. any 32-byte hex string (``0x`` optional, 64 hex digits) in text or in a string field becomes
     ``[REDACTED]`` (it may be a private key) UNLESS it is a known identifier: its field is named like
     one (``SAFE_FIELD``: hash, tx, tx_hash, block_hash, market, market_id, id, position, *_key of a
     position, topic, ...), or in text it directly follows ``hash``/``tx``/``txid``/``block_hash``/
     ``market``/``id`` (then ``=``, ``:`` or spaces), or ``0x<40 hex>:`` (a position key's market).
  So label identifiers when logging them: an unlabelled 64-hex string is treated as a secret. """

from __future__ import annotations

import json as _json
import logging
import math
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

REDACTED = "[REDACTED]"
SECRET_FIELD = re.compile(
    r"(^|_)(key|private_?key|privkey|secret|password|passwd|passphrase|mnemonic|seed_?phrase|api_?key"
    r"|auth|authorization|auth_?token|api_?token|bearer|signing_key|hot_key|credentials?)$", re.I)
SAFE_FIELD = re.compile(
    r"^(hash|tx|txid|tx_?hash|block_?hash|market|market_?id|id|position|position_?key|target_?key"
    r"|source_?key|topic|topics|nonce_key|event)$", re.I)
_HEX64 = re.compile(r"(?<![0-9A-Za-z])(0x)?[0-9a-fA-F]{64}(?![0-9A-Za-z])")
_SAFE_LABEL = re.compile(r"(?:\b(?:hash|tx|txid|tx_hash|block_hash|market|id)\s*[=:]?\s*[\"']?"
                         r"|0x[0-9a-fA-F]{40}:)$", re.I)
_SECRET_PAIR = re.compile(
    r"\b(private_?key|privkey|secret|password|passwd|passphrase|mnemonic|api_?key|auth_?token)"
    r"(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|\S+)", re.I)
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}  # not extras


def redact_text(text: str) -> str:
    """Apply the redaction rule (see the module docstring) to free text."""
    text = _SECRET_PAIR.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)

    def hex_sub(m: re.Match[str]) -> str:
        return m.group(0) if _SAFE_LABEL.search(text[max(0, m.start() - 48):m.start()]) else REDACTED
    return _HEX64.sub(hex_sub, text)


def redact_value(name: str, value: Any) -> Any:
    """Redact one named field (recursing into dicts and lists)."""
    if SECRET_FIELD.search(name) and not SAFE_FIELD.match(name):
        return REDACTED
    if isinstance(value, str):
        return value if SAFE_FIELD.match(name) else redact_text(value)
    if isinstance(value, Mapping):
        return {str(k): redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact_value(name, v) for v in value]
    return value


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}


class RedactionFilter(logging.Filter):
    """Rewrites a record in place so that no handler after it can see a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_redacted", False):
            return True
        try:
            msg = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            msg = f"{record.msg!r} % {record.args!r}"
        record.msg, record.args = redact_text(msg), None
        for k, v in _extras(record).items():
            setattr(record, k, redact_value(k, v))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_text = redact_text(record.exc_text) if record.exc_text else record.exc_text
        record._redacted = True
        return True


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf", "-inf", "nan": strict JSON has no such numbers
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC)
        out: dict[str, Any] = {"ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                               "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        for k, v in _extras(record).items():
            out.setdefault(k, _jsonable(v))
        if record.exc_text:  # set (and redacted) by RedactionFilter
            out["exc"] = record.exc_text
        return _json.dumps(out, ensure_ascii=False, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """Human-readable lines: ``time LEVEL logger: message key=value ...`` (the same extras as the
    JSON lines, strings with spaces quoted), then the traceback if any."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        head, sep, tail = line.partition("\n")  # the traceback (exc_text), if any, follows the first line
        fields = []
        for k, v in _extras(record).items():
            v = _jsonable(v)
            text = v if isinstance(v, str) and v and not any(c.isspace() or c in "\"=" for c in v) else \
                _json.dumps(v, ensure_ascii=False, separators=(",", ":"))
            fields.append(f"{k}={text}")
        return " ".join([head, *fields]) + sep + tail


def wants_json(json: bool | str, stream: Any) -> bool:
    """``telemetry.log_json``: True or False as given; ``"auto"``: JSON unless ``stream`` is a terminal."""
    if json != "auto":
        return bool(json)
    try:
        return not stream.isatty()
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream: not a terminal
        return True


def setup_logging(level: str | int = "INFO", json: bool | str = "auto", stream: Any = None) -> logging.Handler:
    """Install the keeper's single handler on the root logger (replacing one installed before).
    ``json``: True (JSON lines), False (plain text) or ``"auto"`` (plain text when the stream,
    stderr by default, is a terminal; JSON lines otherwise). Secrets are redacted in both."""
    if json not in (True, False, "auto"):
        raise ValueError(f"json is True, False or 'auto', not {json!r}")
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, "_keeper_handler", False)]:
        root.removeHandler(h)
    out = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(out)
    handler._keeper_handler = True  # type: ignore[attr-defined]
    handler.addFilter(RedactionFilter())
    handler.setFormatter(JsonFormatter() if wants_json(json, out) else TextFormatter())
    root.handlers.insert(0, handler)  # first, so its in-place redaction runs before other handlers
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler


# --- Prometheus ------------------------------------------------------------------------------------
TICK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class Metrics:
    """The keeper's metrics, on a private ``CollectorRegistry`` (tests can make many)."""

    def __init__(self, registry: CollectorRegistry | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry = r = registry if registry is not None else CollectorRegistry()
        self._clock = clock
        self._lock = threading.Lock()
        self._series: dict[str, set[tuple[str, str, str]]] = {}  # chain -> position label sets
        self.last_block: int | None = None
        self.last_block_at: float | None = None
        pos, ck, cva = ("chain", "protocol", "account", "market"), ("chain", "kind"), ("chain", "vault", "asset")
        self.positions_watched = Gauge("keeper_positions_watched", "Positions watched", ["chain"], registry=r)
        self.lowest_health = Gauge("keeper_lowest_health", "Lowest health factor", ["chain"], registry=r)
        self.position_health = Gauge("keeper_position_health", "Health factor per position", pos, registry=r)
        self.position_pliq = Gauge("keeper_position_pliq", "P(liquidation within horizon)", pos, registry=r)
        self.actions_sent = Counter("keeper_actions_sent_total", "Actions sent", ck, registry=r)
        self.actions_failed = Counter("keeper_actions_failed_total", "Actions failed", ck, registry=r)
        self.tick_seconds = Histogram("keeper_tick_seconds", "Tick latency (s)", ["chain"], registry=r,
                                      buckets=TICK_BUCKETS)
        self.rpc_errors = Counter("keeper_rpc_errors_total", "RPC errors", ["chain"], registry=r)
        self.rpc_failovers = Counter("keeper_rpc_failovers_total", "RPC failovers", ["chain"], registry=r)
        self.reserve_balance = Gauge("keeper_reserve_balance", "Reserve balance (token units)", cva, registry=r)
        self.last_block_gauge = Gauge("keeper_last_block", "Last processed block", registry=r)
        self.up = Gauge("keeper_up", "1 while the keeper runs", registry=r)
        self.leader = Gauge("keeper_replica_leader", "1 while this replica holds the chain's lease", ["chain"],
                            registry=r)
        self.takeovers = Gauge("keeper_replica_takeovers", "Leases this replica has taken since it started",
                               ["chain"], registry=r)
        self.lease_age = Gauge("keeper_replica_lease_age_seconds",
                               "Seconds since this replica last renewed its lease (-1 while following); "
                               "above daemon.lease_ttl_seconds it has lapsed", ["chain"], registry=r)
        self.stale_refusals = Counter("keeper_replica_stale_refusals_total",
                                      "Ticks whose decisions the journal refused: this replica had lost its lease",
                                      ["chain"], registry=r)
        self.head_source_ws = Gauge("keeper_head_source_ws",
                                    "1 while new heads come from a WebSocket subscription, 0 while polling",
                                    ["chain"], registry=r)
        self.ws_fallbacks = Counter("keeper_ws_fallbacks_total",
                                    "WebSocket new-head failures that fell back to polling", ["chain"], registry=r)
        self.job_runs = Counter("keeper_job_runs_total", "Slow jobs finished (refit, stress)", ["job"], registry=r)
        self.job_failures = Counter("keeper_job_failures_total", "Slow jobs failed (refit, stress)", ["job"],
                                    registry=r)
        self.model_vol = Gauge("keeper_model_annual_vol", "Annualised vol the risk model uses", ["chain", "symbol"],
                               registry=r)
        self.request_blocks = Histogram("keeper_perp_request_blocks", "GMX PositionRouter requests of the keeper: "
                                        "blocks from creation to execution or cancel (upper bound)", ["chain"],
                                        registry=r, buckets=(1, 2, 3, 5, 10, 20, 50, 100))
        self.stress_pliq = Gauge("keeper_stress_pliq", "Stress report: Monte Carlo P(liquidation) within a horizon",
                                 (*pos, "horizon_h"), registry=r)
        self.stress_var = Gauge("keeper_stress_book_var_usd", "Stress report: the book's 99% VaR of liquidation loss",
                                ["chain"], registry=r)

    def observe_position(self, chain: str, protocol: str, account: str, market: str,
                         health: float, p_liq: float | None = None) -> None:
        labels = (chain, str(protocol), account, market)
        self.position_health.labels(*labels).set(health)
        if p_liq is not None:
            self.position_pliq.labels(*labels).set(p_liq)
        with self._lock:
            self._series.setdefault(chain, set()).add(labels[1:])

    def observe_positions(self, chain: str, positions: Iterable[Any],
                          p_liq: Mapping[str, float] | None = None) -> None:
        """One tick's view of a chain: count, lowest health, per-position gauges; positions no longer
        watched lose their series. ``positions`` are ``domain.Position``-like (protocol, account,
        market, health, key)."""
        p_liq = p_liq or {}
        seen: set[tuple[str, str, str]] = set()
        lowest = math.inf
        for p in positions:
            labels = (str(p.protocol), p.account, p.market)
            seen.add(labels)
            lowest = min(lowest, p.health)
            self.observe_position(chain, *labels, p.health, p_liq.get(p.key))
        with self._lock:
            stale = self._series.get(chain, set()) - seen
            self._series[chain] = seen
        for labels in stale:
            for g in (self.position_health, self.position_pliq):
                with suppress(KeyError):
                    g.remove(chain, *labels)
        self.positions_watched.labels(chain).set(len(seen))
        self.lowest_health.labels(chain).set(lowest)

    def action_sent(self, chain: str, kind: str) -> None:
        self.actions_sent.labels(chain, str(kind)).inc()

    def action_failed(self, chain: str, kind: str) -> None:
        self.actions_failed.labels(chain, str(kind)).inc()

    def rpc_error(self, chain: str) -> None:
        self.rpc_errors.labels(chain).inc()

    def rpc_failover(self, chain: str) -> None:
        self.rpc_failovers.labels(chain).inc()

    def set_reserve(self, chain: str, vault: str, asset: str, balance: float) -> None:
        self.reserve_balance.labels(chain, vault, asset).set(balance)

    def set_head_source(self, chain: str, ws: bool) -> None:
        self.head_source_ws.labels(chain).set(1 if ws else 0)

    def ws_fallback(self, chain: str) -> None:
        self.ws_fallbacks.labels(chain).inc()

    def job_done(self, job: str, ok: bool = True) -> None:
        (self.job_runs if ok else self.job_failures).labels(job).inc()

    def set_model_vols(self, chain: str, annual: Mapping[str, float]) -> None:
        for sym, vol in annual.items():
            self.model_vol.labels(chain, sym).set(vol)

    def set_stress(self, chain: str, rows: Iterable[tuple[Any, int, float]], book_var: float) -> None:
        """``rows``: (position, horizon in hours, P(liq)); the report replaces the previous one."""
        self.stress_pliq.clear()
        for p, h, prob in rows:
            self.stress_pliq.labels(chain, str(p.protocol), p.account, p.market, str(h)).set(prob)
        self.stress_var.labels(chain).set(book_var)

    def stale_refused(self, chain: str) -> None:
        self.stale_refusals.labels(chain).inc()

    def set_leader(self, chain: str, leading: bool, takeovers: int, lease_age_s: float | None = None) -> None:
        self.leader.labels(chain).set(1 if leading else 0)
        self.takeovers.labels(chain).set(takeovers)
        self.lease_age.labels(chain).set(-1 if lease_age_s is None else lease_age_s)

    def observe_request_latency(self, chain: str, blocks: int) -> None:
        self.request_blocks.labels(chain).observe(blocks)

    def observe_tick(self, chain: str, seconds: float) -> None:
        self.tick_seconds.labels(chain).observe(seconds)

    @contextmanager
    def time_tick(self, chain: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe_tick(chain, time.perf_counter() - start)

    def set_last_block(self, block: int) -> None:
        self.last_block, self.last_block_at = int(block), self._clock()
        self.last_block_gauge.set(block)

    def set_up(self, up: bool = True) -> None:
        self.up.set(1 if up else 0)

    def seconds_since_block(self) -> float | None:
        return None if self.last_block_at is None else max(0.0, self._clock() - self.last_block_at)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """``/metrics`` and ``/healthz`` from a daemon thread. ``health`` returns ok or (ok, reason)."""

    def __init__(self, metrics: Metrics, host: str = "127.0.0.1", port: int = 0,
                 health: Callable[[], bool | tuple[bool, str | None]] | None = None) -> None:
        self.metrics, self.host, self.port, self.health = metrics, host, port, health
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def health_report(self) -> tuple[int, dict[str, Any]]:
        ok, reason = True, None
        if self.health is not None:
            try:
                res = self.health()
            except Exception as e:  # a broken check is an unhealthy keeper, not a crashed server
                res = (False, f"health check raised {type(e).__name__}")
            ok, reason = res if isinstance(res, tuple) else (bool(res), None)
        since = self.metrics.seconds_since_block()
        body: dict[str, Any] = {"status": "ok" if ok else "unhealthy", "last_block": self.metrics.last_block,
                                "seconds_since_block": None if since is None else round(since, 3)}
        return (200 if ok else 503), body | ({"reason": reason} if reason else {})

    def start(self) -> int:
        server = self  # (start() twice is a programming error: the second bind gets a new port)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's naming
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, server.metrics.render(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    code, body = server.health_report()
                    self._send(code, _json.dumps(body).encode(), "application/json")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args: Any) -> None:  # scrapes are not news
                logging.getLogger("keeper.telemetry.http").debug(fmt, *args)

        httpd = self._httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        httpd.daemon_threads = True
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.1,), name="keeper-metrics", daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
