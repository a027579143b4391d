"""Shared pieces of the daemon tests: a devnet config, a daemon run in a thread, condition polls,
and a TCP proxy that can cut a connection (a WebSocket dropped by the network)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator

from keeper.config import Config, DaemonConfig, KeeperConfig, StoreConfig, chain_from_deployment
from keeper.daemon.keeper import Keeper

KEEPER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil account 1
VOLS = {"WETH": 0.8, "WBTC": 0.7}


def devnet_config(tmp_path, rpc_url: str, devnet: dict, monkeypatch, *, chain: dict | None = None,
                  **daemon) -> Config:
    dep = tmp_path / "devnet.json"
    dep.write_text(json.dumps({**devnet, "rpc_url": rpc_url}))
    monkeypatch.setenv("KEEPER_TEST_KEY", KEEPER_KEY)
    ccfg = chain_from_deployment(dep)
    if chain:
        ccfg = ccfg.model_validate({**ccfg.model_dump(), **chain})
    return Config(chains={"devnet": ccfg}, keeper=KeeperConfig(key_env="KEEPER_TEST_KEY"),
                  store=StoreConfig(url=f"sqlite:///{tmp_path / 'k.db'}"),
                  daemon=DaemonConfig(**{"poll_interval": 0.2, "watchdog_seconds": 30, "heartbeat_seconds": 5,
                                         **daemon}))


def wait_for(cond: Callable[[], object], timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@contextlib.contextmanager
def running(k: Keeper, w3=None, block_time: int | None = 1) -> Iterator[threading.Thread]:
    """``k.run()`` in a thread (with interval mining on ``w3`` when given); stopped and joined after."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            k.run(install_signals=False)
        except BaseException as e:  # re-raised in the test's thread below
            errors.append(e)

    t = threading.Thread(target=target, daemon=True)
    if w3 is not None and block_time:
        w3.provider.make_request("evm_setIntervalMining", [block_time])
    try:
        t.start()
        yield t
    finally:
        k.stop.set()
        t.join(timeout=60)
        if w3 is not None and block_time:
            w3.provider.make_request("evm_setAutomine", [True])
    assert not t.is_alive(), "the daemon did not stop"
    if errors:
        raise errors[0]
