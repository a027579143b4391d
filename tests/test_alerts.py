"""keeper.alerts: a local loopback HTTP receiver gets each webhook format; failures never raise."""

from __future__ import annotations

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from keeper.alerts import (
    KINDS,
    Alert,
    NullAlerter,
    WebhookAlerter,
    discord_payload,
    make_alerter,
    safe_url,
    slack_payload,
)
from keeper.errors import ConfigError

pytestmark = pytest.mark.timeout(30)

SECRET_PATH = "/hooks/T000/B000/very-secret-token"


class Receiver:
    """A ThreadingHTTPServer on 127.0.0.1 that records every POST body; ``status`` sets the reply."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.status = status
        self.got = threading.Event()
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", 0))
                assert self.headers.get("Content-Type", "").startswith("application/json")
                rec.bodies.append(json.loads(self.rfile.read(n)))
                rec.paths.append(self.path)
                self.send_response(rec.status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                rec.got.set()

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{SECRET_PATH}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _alert(**kw) -> Alert:
    base = dict(kind="action", severity="info", title="top up mainnet:aave_v3:0x1:0x2:pool",
                text="P 3.1% > 1.0% budget; sent 1.5 WETH <tx>", fields={"tx": "0xab", "amount": 1.5})
    base.update(kw)
    return Alert(**base)


def test_generic_json_format(receiver):
    a = WebhookAlerter(receiver.url, "json", timeout=5)
    assert a.send(_alert()) is True
    (body,) = receiver.bodies
    assert receiver.paths == [SECRET_PATH]
    assert body["kind"] == "action" and body["severity"] == "info" and body["title"].startswith("top up")
    assert body["text"].startswith("P 3.1%") and body["fields"] == {"tx": "0xab", "amount": 1.5}
    assert isinstance(body["ts"], float)
    assert a.sent == 1 and a.failed == 0


def test_slack_format(receiver):
    a = WebhookAlerter(receiver.url, "slack", timeout=5)
    assert a.notify("reserve_short", "warning", "reserve short on mainnet", "needs 2,000 USDC",
                    vault="0xvault", short_usd=2000)
    (body,) = receiver.bodies
    assert set(body) == {"text", "blocks"}
    assert "reserve short on mainnet" in body["text"] and "WARNING" in body["text"]
    types = [b["type"] for b in body["blocks"]]
    assert types == ["header", "section", "section", "context"]
    assert body["blocks"][0]["text"] == {"type": "plain_text", "text": "reserve short on mainnet"}
    assert body["blocks"][1]["text"]["type"] == "mrkdwn"
    assert {"type": "mrkdwn", "text": "*vault*\n0xvault"} in body["blocks"][2]["fields"]
    assert "reserve_short" in body["blocks"][3]["elements"][0]["text"]


def test_discord_format(receiver):
    receiver.status = 204  # what Discord answers
    a = WebhookAlerter(receiver.url, "discord", timeout=5)
    assert a.send(_alert(kind="halt", severity="critical", title="keeper halted", text="chain id mismatch"))
    (body,) = receiver.bodies
    assert set(body) == {"content", "embeds"}
    assert body["content"] == "[CRITICAL] keeper halted"
    (embed,) = body["embeds"]
    assert embed["title"] == "keeper halted" and embed["description"] == "chain id mismatch"
    assert embed["color"] == 0xE74C3C and embed["timestamp"].endswith("+00:00")
    assert {"name": "amount", "value": "1.5", "inline": True} in embed["fields"]


def test_every_kind_is_accepted_and_others_are_not():
    for kind in KINDS:
        Alert(kind, "info", "t")
    with pytest.raises(ValueError):
        Alert("nope", "info", "t")
    with pytest.raises(ValueError):
        Alert("action", "loud", "t")
    with pytest.raises(ConfigError):
        WebhookAlerter("http://127.0.0.1:1/x", format="teams")
    with pytest.raises(ConfigError):
        WebhookAlerter("ftp://127.0.0.1/x")


def test_payload_limits():
    big = _alert(title="t" * 500, text="x" * 10_000, fields={f"f{i}": "v" * 5000 for i in range(40)})
    s = slack_payload(big)
    assert len(s["blocks"][0]["text"]["text"]) == 150 and len(s["blocks"][2]["fields"]) == 10
    assert all(len(f["text"]) <= 2000 for f in s["blocks"][2]["fields"])
    d = discord_payload(big)["embeds"][0]
    assert len(d["title"]) == 256 and len(d["description"]) == 4096 and len(d["fields"]) == 25
    assert all(len(f["value"]) <= 1024 for f in d["fields"])
    assert "&lt;tx&gt;" in slack_payload(_alert())["blocks"][1]["text"]["text"]


def _dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{SECRET_PATH}"


def test_dead_url_does_not_raise_and_hides_the_secret(caplog):
    a = WebhookAlerter(_dead_url(), "slack", timeout=2)
    with caplog.at_level(logging.WARNING, logger="keeper.alerts"):
        assert a.send(_alert()) is False
    assert a.failed == 1 and a.sent == 0
    assert "very-secret-token" not in caplog.text and "T000" not in caplog.text
    assert "http://127.0.0.1" in caplog.text
    assert "very-secret-token" not in repr(a)


def test_http_error_status_is_a_failure(receiver):
    receiver.status = 500
    a = WebhookAlerter(receiver.url, timeout=5)
    assert a.send(_alert()) is False and a.failed == 1 and len(receiver.bodies) == 1


def test_broken_session_does_not_raise(caplog):
    class Broken:
        def post(self, *a, **k):
            raise RuntimeError("posting to https://hooks.example/very-secret-token exploded")

    a = WebhookAlerter("https://hooks.example/very-secret-token", session=Broken())
    with caplog.at_level(logging.WARNING, logger="keeper.alerts"):
        assert a.send(_alert()) is False and a.failed == 1
    assert "very-secret-token" not in caplog.text and "https://hooks.example" in caplog.text


def test_deduplication_window(receiver):
    now = [100.0]
    a = WebhookAlerter(receiver.url, timeout=5, min_interval_s=60, clock=lambda: now[0])
    assert a.send(_alert()) is True
    assert a.send(_alert()) is False  # same (kind, title) inside the window
    assert a.send(_alert(kind="failure", severity="warning")) is True  # other kind
    assert a.send(_alert(title="other title")) is True  # other title
    now[0] += 61
    assert a.send(_alert()) is True  # window elapsed
    assert len(receiver.bodies) == 4 and a.suppressed == 1 and a.sent == 4


def test_background_delivery(receiver):
    a = WebhookAlerter(receiver.url, "discord", timeout=5, background=True)
    try:
        assert a.send(_alert(kind="rpc_failover", severity="warning", title="failover a -> b"))
        assert receiver.got.wait(5)
        a.flush(5)
        assert a.sent == 1 and receiver.bodies[0]["content"] == "[WARNING] failover a -> b"
    finally:
        a.close()


def test_background_dead_url_does_not_raise():
    a = WebhookAlerter(_dead_url(), timeout=1, background=True)
    try:
        assert a.send(_alert()) is True  # queued
        a.flush(5)
        assert a.failed == 1
    finally:
        a.close()


def test_null_alerter_and_factory(receiver):
    n = NullAlerter()
    assert n.send(_alert()) is False and n.notify("halt", "critical", "x") is False
    assert isinstance(make_alerter(None), NullAlerter) and isinstance(make_alerter(""), NullAlerter)
    assert isinstance(make_alerter(receiver.url, "slack"), WebhookAlerter)


def test_safe_url():
    assert safe_url("https://hooks.slack.com/services/T0/B0/xyz") == "https://hooks.slack.com"
    assert safe_url("https://discord.com/api/webhooks/1/abc?wait=true") == "https://discord.com"
    assert safe_url("http://user:pw@127.0.0.1:8080/x") == "http://127.0.0.1:8080"
