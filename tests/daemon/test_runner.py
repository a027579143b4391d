"""The runner owns the keeper's lifecycle on the devnet: a start-up that fails releases every part the
keeper holds (metrics server, writer thread, I/O threads, store), and an unexpected exception in a
tick (a bug, not a chain condition) counts toward the circuit breaker like any failed tick."""

import socket
import threading

import pytest

from keeper.app.execution import Pipeline
from keeper.app.executor import DryRun
from keeper.config import TelemetryConfig
from keeper.daemon.keeper import Keeper
from keeper.devnet.anvil import free_port
from keeper.errors import Halt
from tests.daemon.helpers import VOLS, devnet_config, running, wait_for

pytestmark = pytest.mark.usefixtures("snapshot")


def _threads(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_failed_start_releases_every_part(tmp_path, anvil, devnet, monkeypatch):
    port = free_port()
    cfg = devnet_config(tmp_path, anvil.url, devnet, monkeypatch)
    cfg = cfg.model_copy(update={"telemetry": TelemetryConfig(metrics_port=port, log_json=True)})
    before_io, before_writer = len(_threads("keeper-io")), len(_threads("snapshot-writer"))
    k = Keeper(cfg, vols=VOLS)
    # built whole: every part exists before start-up, the executor included
    assert isinstance(k.executor, Pipeline) and k.recorder is not None and k.server is not None
    assert len(_threads("keeper-io")) > before_io and len(_threads("snapshot-writer")) > before_writer
    calls = []

    def broken(*_a, **_k):
        calls.append(1)
        raise RuntimeError("the node answered nonsense")  # not a KeeperError: a failure nobody foresaw

    monkeypatch.setattr(k, "_with_watched", broken)
    with pytest.raises(RuntimeError, match="nonsense"):
        k.run(install_signals=False)
    assert calls and k.metrics_port == port, "the start-up must have served /metrics, then reached the read"
    wait_for(lambda: len(_threads("keeper-io")) == before_io and len(_threads("snapshot-writer")) == before_writer,
             10, "the keeper's threads to end")
    assert not _listening(port)
    with pytest.raises(RuntimeError, match=r"after (interpreter )?shutdown"):
        k.io.submit(int)  # the I/O pool is shut down


def test_a_bug_in_a_tick_trips_the_circuit_breaker(tmp_path, anvil, w3, devnet, monkeypatch):
    cfg = devnet_config(tmp_path, anvil.url, devnet, monkeypatch, max_consecutive_failures=3)
    k = Keeper(cfg, dry_run=True, vols=VOLS)
    assert isinstance(k.executor, DryRun)  # the dry run's null executor: nothing can be sent
    ticks = []

    def buggy(block: int) -> int:
        ticks.append(block)
        raise KeyError("a bug")

    monkeypatch.setattr(k, "tick", buggy)
    with pytest.raises(Halt, match=r"circuit breaker: 3 failed ticks in a row; last: KeyError"), running(k, w3):
        wait_for(lambda: k.halted is not None, 60, "the breaker to trip")
    assert len(ticks) == 3
