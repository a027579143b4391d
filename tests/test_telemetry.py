"""keeper.telemetry: JSON log lines, redaction, /metrics and /healthz over real loopback HTTP."""

from __future__ import annotations

import io
import json
import logging
import math
from types import SimpleNamespace

import pytest
import requests

from keeper.telemetry import (
    REDACTED,
    JsonFormatter,
    Metrics,
    MetricsServer,
    redact_text,
    redact_value,
    setup_logging,
)

pytestmark = pytest.mark.timeout(30)

PK = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
TX = "0x" + "ab" * 32
MARKET = "0x" + "cd" * 32
ACCOUNT = "0x" + "12" * 20


@pytest.fixture(autouse=True)
def _restore_root_level():
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


@pytest.fixture
def log_stream():
    stream = io.StringIO()
    handler = setup_logging("DEBUG", json=True, stream=stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_carry_standard_fields_and_extras(log_stream):
    log = logging.getLogger("keeper.daemon")
    log.info("top up %s", "p1", extra={"event": "decision", "position": "mainnet:aave_v3:0x1:0x2:pool",
                                       "action": "top_up", "reason": "P 3.1% > 1.0%", "p_liq": 0.031,
                                       "health": math.inf, "amounts": {"WETH": 1.5}})
    log.debug("second line")
    out = lines(log_stream)
    assert len(out) == 2
    first = out[0]
    assert first["msg"] == "top up p1" and first["level"] == "INFO" and first["logger"] == "keeper.daemon"
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert first["event"] == "decision" and first["action"] == "top_up" and first["reason"] == "P 3.1% > 1.0%"
    assert first["p_liq"] == 0.031 and first["health"] == "inf" and first["amounts"] == {"WETH": 1.5}
    assert out[1]["msg"] == "second line" and "event" not in out[1]


def test_exception_is_logged_as_a_field(log_stream):
    try:
        raise RuntimeError(f"boom with {PK}")
    except RuntimeError:
        logging.getLogger("keeper").exception("failed")
    (rec,) = lines(log_stream)
    assert "RuntimeError" in rec["exc"] and PK[2:] not in rec["exc"]


def test_private_key_never_appears(log_stream, caplog):
    log = logging.getLogger("keeper.chain.tx")
    log.info("loaded key %s", PK)
    log.info("bare %s", PK[2:])
    log.info("signer", extra={"private_key": PK, "key": "hunter2", "password": "pw", "note": f"x {PK} y"})
    log.info("config private_key=%s api_key: abc123", PK)
    log.warning("nested", extra={"cfg": {"secret": "s3", "deep": [PK]}})
    text = log_stream.getvalue()
    assert PK[2:].lower() not in text.lower()
    # redacted in place, before any other root handler (here pytest's caplog) sees the record
    assert "loaded key" in caplog.text and PK[2:] not in caplog.text
    assert "hunter2" not in text and '"pw"' not in text and "abc123" not in text and "s3" not in text
    assert text.count(REDACTED) >= 7
    for rec in lines(log_stream):  # still one parseable object per line
        assert rec["level"] in ("INFO", "WARNING")


def test_known_identifiers_are_kept(log_stream):
    log = logging.getLogger("keeper.chain.tx")
    pos_key = f"mainnet:morpho_blue:0x{'ee' * 20}:{ACCOUNT}:{MARKET}"
    log.info("sent tx=%s block_hash: %s market %s", TX, TX, MARKET,
             extra={"tx_hash": TX, "market": MARKET, "position": pos_key, "id": MARKET})
    log.info("position %s", pos_key)
    a, b = lines(log_stream)
    assert a["msg"] == f"sent tx={TX} block_hash: {TX} market {MARKET}"
    assert a["tx_hash"] == TX and a["market"] == MARKET and a["position"] == pos_key and a["id"] == MARKET
    assert b["msg"] == f"position {pos_key}"


def test_redaction_rule_units():
    assert redact_text(f"k {PK}") == f"k {REDACTED}"
    assert redact_text(f"hash={TX}") == f"hash={TX}"
    assert redact_text("0x" + "a" * 66) == "0x" + "a" * 66  # not 32 bytes: not a key
    assert redact_text(ACCOUNT) == ACCOUNT  # addresses are public
    assert redact_value("tx", TX) == TX and redact_value("signing_key", "x") == REDACTED
    assert redact_value("position_key", "a:b") == "a:b" and redact_value("token", ACCOUNT) == ACCOUNT


def test_plain_text_mode_also_redacts():
    stream = io.StringIO()
    handler = setup_logging("INFO", json=False, stream=stream)
    try:
        logging.getLogger("keeper").info("key %s", PK)
    finally:
        logging.getLogger().removeHandler(handler)
    assert PK[2:] not in stream.getvalue() and REDACTED in stream.getvalue()


def test_setup_logging_replaces_its_own_handler():
    root = logging.getLogger()
    h1 = setup_logging(stream=io.StringIO())
    h2 = setup_logging(stream=io.StringIO())
    try:
        assert h1 not in root.handlers and h2 in root.handlers
    finally:
        root.removeHandler(h2)


def _position(protocol, account, market, health, key):
    return SimpleNamespace(protocol=protocol, account=account, market=market, health=health, key=key)


@pytest.fixture
def server():
    clock = [1000.0]
    metrics = Metrics(clock=lambda: clock[0])
    state = {"ok": True}
    srv = MetricsServer(metrics, health=lambda: (state["ok"], None if state["ok"] else "no blocks for 120 s"))
    port = srv.start()
    yield SimpleNamespace(metrics=metrics, srv=srv, url=f"http://127.0.0.1:{port}", clock=clock, state=state)
    srv.stop()


def scrape(url: str) -> dict[str, float]:
    resp = requests.get(url + "/metrics", timeout=5)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/plain")
    out = {}
    for line in resp.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_served_over_http(server):
    m = server.metrics
    m.set_up()
    m.observe_positions("mainnet", [
        _position("aave_v3", ACCOUNT, "pool", 1.42, "k1"),
        _position("morpho_blue", ACCOUNT, MARKET, 1.08, "k2"),
    ], p_liq={"k1": 0.001, "k2": 0.07})
    m.action_sent("mainnet", "top_up")
    m.action_sent("mainnet", "top_up")
    m.action_failed("mainnet", "repay")
    m.observe_tick("mainnet", 0.03)
    with m.time_tick("mainnet"):
        pass
    m.rpc_error("mainnet")
    m.rpc_failover("mainnet")
    m.set_reserve("mainnet", "0xvault", "USDC", 25_000.5)
    m.set_last_block(123)
    s = scrape(server.url)
    assert s["keeper_up"] == 1 and s["keeper_last_block"] == 123
    assert s['keeper_positions_watched{chain="mainnet"}'] == 2
    assert s['keeper_lowest_health{chain="mainnet"}'] == 1.08
    assert s[f'keeper_position_health{{account="{ACCOUNT}",chain="mainnet",market="{MARKET}",'
             'protocol="morpho_blue"}'] == 1.08
    assert s[f'keeper_position_pliq{{account="{ACCOUNT}",chain="mainnet",market="pool",'
             'protocol="aave_v3"}'] == 0.001
    assert s['keeper_actions_sent_total{chain="mainnet",kind="top_up"}'] == 2
    assert s['keeper_actions_failed_total{chain="mainnet",kind="repay"}'] == 1
    assert s['keeper_tick_seconds_count{chain="mainnet"}'] == 2
    assert s['keeper_tick_seconds_bucket{chain="mainnet",le="0.05"}'] == 2
    assert s['keeper_rpc_errors_total{chain="mainnet"}'] == 1
    assert s['keeper_rpc_failovers_total{chain="mainnet"}'] == 1
    assert s['keeper_reserve_balance{asset="USDC",chain="mainnet",vault="0xvault"}'] == 25_000.5

    # a position no longer watched loses its series
    m.observe_positions("mainnet", [_position("aave_v3", ACCOUNT, "pool", 1.5, "k1")], p_liq={})
    s = scrape(server.url)
    assert s['keeper_positions_watched{chain="mainnet"}'] == 1
    assert not any("morpho_blue" in k for k in s)
    assert requests.get(server.url + "/nope", timeout=5).status_code == 404


def test_empty_chain_lowest_health_is_inf(server):
    server.metrics.observe_positions("base", [])
    s = scrape(server.url)
    assert s['keeper_positions_watched{chain="base"}'] == 0
    assert math.isinf(s['keeper_lowest_health{chain="base"}'])


def test_healthz_ok_then_unhealthy(server):
    server.metrics.set_last_block(77)
    server.clock[0] += 4.5
    resp = requests.get(server.url + "/healthz", timeout=5)
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "last_block": 77, "seconds_since_block": 4.5}
    server.state["ok"] = False
    resp = requests.get(server.url + "/healthz", timeout=5)
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "unhealthy" and body["reason"] == "no blocks for 120 s" and body["last_block"] == 77


def test_healthz_broken_check_is_503_and_no_check_is_200():
    m = Metrics()
    srv = MetricsServer(m, health=lambda: 1 / 0)
    port = srv.start()
    try:
        resp = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert resp.status_code == 503 and "ZeroDivisionError" in resp.json()["reason"]
    finally:
        srv.stop()
    srv = MetricsServer(m)
    port = srv.start()
    try:
        resp = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert resp.status_code == 200 and resp.json()["last_block"] is None
    finally:
        srv.stop()


def test_registries_are_private():
    a, b = Metrics(), Metrics()
    a.action_sent("c", "top_up")
    assert b"keeper_actions_sent_total{" not in b.render()
    assert b'keeper_actions_sent_total{chain="c",kind="top_up"} 1.0' in a.render()


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _log_to(stream, json_mode):
    handler = setup_logging("INFO", json=json_mode, stream=stream)
    try:
        logging.getLogger("keeper.daemon").info(
            "would act", extra={"event": "decision", "position": "main:aave_v3:0x1:0x2:pool", "reason": "P 3.1% > 1%",
                                "p_liq": 0.031, "private_key": PK, "note": f"k {PK}"})
        logging.getLogger("keeper.chain.tx").info("loaded key %s", PK)
    finally:
        logging.getLogger().removeHandler(handler)
    return stream.getvalue()


def test_auto_writes_human_readable_lines_to_a_terminal():
    text = _log_to(_Tty(), "auto")
    first, second = text.splitlines()
    assert not first.startswith("{")
    assert " INFO keeper.daemon: would act event=decision position=main:aave_v3:0x1:0x2:pool" in first
    assert 'reason="P 3.1% > 1%" p_liq=0.031' in first
    assert second.endswith(f"INFO keeper.chain.tx: loaded key {REDACTED}")
    assert PK[2:] not in text and f"private_key={REDACTED}" in text and f'note="k {REDACTED}"' in text


def test_auto_writes_json_lines_when_not_a_terminal():
    stream = io.StringIO()
    text = _log_to(stream, "auto")
    first, second = lines(stream)
    assert first["msg"] == "would act" and first["reason"] == "P 3.1% > 1%" and first["private_key"] == REDACTED
    assert second["msg"] == f"loaded key {REDACTED}" and PK[2:] not in text


@pytest.mark.parametrize("json_mode,is_json", [(True, True), (False, False)])
def test_explicit_true_or_false_ignores_the_terminal(json_mode, is_json):
    for stream in (io.StringIO(), _Tty()):
        text = _log_to(stream, json_mode)
        assert text.startswith("{") is is_json and PK[2:] not in text


def test_auto_resolves_on_stderr_by_default(monkeypatch):
    monkeypatch.setattr("sys.stderr", _Tty())
    handler = setup_logging("INFO")
    try:
        assert not isinstance(handler.formatter, JsonFormatter)
    finally:
        logging.getLogger().removeHandler(handler)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    handler = setup_logging("INFO")
    try:
        assert isinstance(handler.formatter, JsonFormatter)
    finally:
        logging.getLogger().removeHandler(handler)


def test_plain_text_keeps_the_traceback_on_the_following_lines():
    stream = _Tty()
    handler = setup_logging("INFO", json="auto", stream=stream)
    try:
        try:
            raise RuntimeError(f"boom {PK}")
        except RuntimeError:
            logging.getLogger("keeper").exception("failed", extra={"event": "crash"})
    finally:
        logging.getLogger().removeHandler(handler)
    head, *rest = stream.getvalue().splitlines()
    assert head.endswith("ERROR keeper: failed event=crash") and rest[0] == "Traceback (most recent call last):"
    assert PK[2:] not in stream.getvalue()
