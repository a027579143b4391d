"""Alerts: a JSON POST to a webhook, in a generic, a Slack- or a Discord-compatible shape.

Delivery never raises into the caller: a keeper must not stop protecting positions because Slack is
down. Failures are logged (the webhook URL carries its secret in the path, so only scheme and host are
ever logged) and counted in ``WebhookAlerter.failed``. The same (kind, title) is sent at most once per
``min_interval_s`` (``suppressed`` counts the rest). With ``background=True`` posts happen on a worker
thread through a bounded queue, so a slow webhook cannot delay a tick either.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from keeper.errors import ConfigError

log = logging.getLogger(__name__)

KINDS = ("action", "failure", "reserve_short", "stale_oracle", "health_unverified", "rpc_failover", "halt",
         "gas_spike", "perp_request_stuck", "model_default", "model_fallback", "replica_takeover",
         "replica_stale")
SEVERITIES = ("info", "warning", "critical")
FORMATS = ("json", "slack", "discord")
_EMOJI = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}
_COLOUR = {"info": 0x3498DB, "warning": 0xF1C40F, "critical": 0xE74C3C}


@dataclass(frozen=True)
class Alert:
    kind: str
    severity: str
    title: str
    text: str = ""
    fields: dict[str, Any] = field(default_factory=dict, compare=False)
    ts: float = field(default_factory=time.time, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"alert kind {self.kind!r} is not one of {KINDS}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert severity {self.severity!r} is not one of {SEVERITIES}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fields"] = {str(k): _plain(v) for k, v in self.fields.items()}
        return d

    @property
    def iso_ts(self) -> str:
        return datetime.fromtimestamp(self.ts, UTC).isoformat(timespec="seconds")


def _plain(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, bool)) or v is None else str(v)


def safe_url(url: str) -> str:
    """Scheme and host (and port) only: webhook URLs carry their secret in the path or query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "<webhook>"


def _slack_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(a: Alert) -> dict[str, Any]:
    """Slack incoming-webhook body: ``text`` (notification fallback) plus Block Kit ``blocks``."""
    head = f"{_EMOJI[a.severity]} [{a.severity.upper()}] {a.title}"
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": a.title[:150]}}]
    if a.text:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(a.text)[:3000]}})
    if a.fields:
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*{_slack_escape(str(k))}*\n{_slack_escape(str(v))}"[:2000]}
            for k, v in list(a.fields.items())[:10]]})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"keeper · {a.kind} · {a.severity} · {a.iso_ts}"}]})
    return {"text": _slack_escape(head)[:3000], "blocks": blocks}


def discord_payload(a: Alert) -> dict[str, Any]:
    """Discord webhook body: ``content`` plus one embed (limits: 256/4096/25 fields/1024)."""
    embed: dict[str, Any] = {
        "title": a.title[:256], "color": _COLOUR[a.severity], "timestamp": a.iso_ts,
        "footer": {"text": f"keeper · {a.kind} · {a.severity}"},
        "fields": [{"name": str(k)[:256] or "-", "value": str(v)[:1024] or "-", "inline": True}
                   for k, v in list(a.fields.items())[:25]],
    }
    if a.text:
        embed["description"] = a.text[:4096]
    return {"content": f"[{a.severity.upper()}] {a.title}"[:2000], "embeds": [embed]}


class Alerter(ABC):
    """Interface: ``send(alert) -> bool`` (True when delivered); ``notify`` builds the Alert."""

    sent = failed = suppressed = 0

    @abstractmethod
    def send(self, alert: Alert) -> bool:
        """Deliver one alert; never raises."""

    def notify(self, kind: str, severity: str, title: str, text: str = "", **fields: Any) -> bool:
        return self.send(Alert(kind, severity, title, text, fields))

    def close(self) -> None:
        """Release what the alerter holds; the default holds nothing."""
        return None


class NullAlerter(Alerter):
    """Drops every alert (no webhook configured)."""

    def send(self, alert: Alert) -> bool:
        return False


class WebhookAlerter(Alerter):
    def __init__(self, url: str, format: str = "json", timeout: float = 5, min_interval_s: float = 0,
                 session: requests.Session | None = None, background: bool = False, queue_size: int = 100,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if format not in FORMATS:
            raise ConfigError(f"webhook format {format!r} is not one of {FORMATS}")
        if urlsplit(url).scheme not in ("http", "https"):
            raise ConfigError(f"webhook URL must be http(s), got {safe_url(url)}")
        self._url, self.format, self.timeout = url, format, timeout
        self.min_interval_s = min_interval_s
        self.session = session or requests.Session()
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self.sent = self.failed = self.suppressed = 0
        self._queue: queue.Queue[Alert | None] | None = None
        self._worker: threading.Thread | None = None
        if background:
            self._queue = queue.Queue(maxsize=queue_size)
            self._worker = threading.Thread(target=self._drain, name="keeper-alerts", daemon=True)
            self._worker.start()

    def __repr__(self) -> str:
        return f"WebhookAlerter({safe_url(self._url)!r}, format={self.format!r})"

    def payload(self, alert: Alert) -> dict[str, Any]:
        if self.format == "slack":
            return slack_payload(alert)
        if self.format == "discord":
            return discord_payload(alert)
        return alert.to_dict()

    def _due(self, alert: Alert) -> bool:
        """De-duplication: one (kind, title) per window, counted from the last attempt."""
        now, key = self._clock(), (alert.kind, alert.title)
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.min_interval_s:
                self.suppressed += 1
                return False
            self._last[key] = now
            if len(self._last) > 1000:  # forget old keys; the window is small
                cutoff = now - self.min_interval_s
                self._last = {k: t for k, t in self._last.items() if t >= cutoff}
            return True

    def send(self, alert: Alert) -> bool:
        """Deliver (or enqueue) ``alert``; never raises. Returns False if suppressed/failed/dropped."""
        try:
            if not self._due(alert):
                return False
            if self._queue is not None:
                try:
                    self._queue.put_nowait(alert)
                    return True
                except queue.Full:
                    self._count_failure(alert, "queue full, alert dropped")
                    return False
            return self._post(alert)
        except Exception as e:  # alerting must never stop the keeper
            self._count_failure(alert, f"{type(e).__name__}: {self._scrub(str(e))}")
            return False

    def _post(self, alert: Alert) -> bool:
        try:
            resp = self.session.post(self._url, json=self.payload(alert), timeout=self.timeout)
        except requests.RequestException as e:
            self._count_failure(alert, f"{type(e).__name__}: {self._scrub(str(e))}")
            return False
        if resp.status_code >= 400:
            self._count_failure(alert, f"HTTP {resp.status_code}")
            return False
        with self._lock:
            self.sent += 1
        log.debug("alert delivered", extra={"event": "alert_sent", "kind": alert.kind,
                                            "webhook": safe_url(self._url)})
        return True

    def _count_failure(self, alert: Alert, why: str) -> None:
        with self._lock:
            self.failed += 1
        log.warning("alert delivery to %s failed: %s", safe_url(self._url), why,
                    extra={"event": "alert_failed", "kind": alert.kind, "title": alert.title})

    def _scrub(self, text: str) -> str:
        """Library errors quote the URL; keep only scheme and host."""
        parts = urlsplit(self._url)
        secret = parts.path + (f"?{parts.query}" if parts.query else "")
        text = text.replace(self._url, safe_url(self._url))
        return text.replace(secret, "/<redacted>") if len(secret) > 1 else text

    def _drain(self) -> None:
        assert self._queue is not None
        while (alert := self._queue.get()) is not None:
            try:
                self._post(alert)
            except Exception as e:
                self._count_failure(alert, type(e).__name__)
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def flush(self, timeout: float = 10) -> None:
        """Wait (bounded) until the background queue is empty."""
        deadline = time.monotonic() + timeout
        while self._queue is not None and self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        if self._queue is not None and self._worker is not None:
            self.flush()
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)
            self._worker.join(timeout=self.timeout + 1)
            self._queue, self._worker = None, None


def make_alerter(url: str | None, format: str = "json", **kwargs: Any) -> Alerter:
    """A ``WebhookAlerter`` when a URL is configured, else a ``NullAlerter``."""
    return WebhookAlerter(url, format, **kwargs) if url else NullAlerter()


def alerter_from_config(alerts: Any, environ: dict[str, str] | None = None) -> Alerter:
    """The alerter an ``[alerts]`` config section describes (the webhook URL is a secret: it is read
    from the environment variable ``alerts.webhook_env`` names, never from the file)."""
    import os

    env = os.environ if environ is None else environ
    name = getattr(alerts, "webhook_env", None)
    url = env.get(name) if name else None
    if name and not url:
        raise ConfigError(f"alerts.webhook_env names {name}, which is not set")
    return make_alerter(url, getattr(alerts, "format", "json"), min_interval_s=getattr(alerts, "min_interval_s", 0))
