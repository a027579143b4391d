"""The anvil process: find the binary, start it on a free port, wait until it answers, stop it.

Style rule 10 of DESIGN.md (ape-foundry's pattern): the binary is looked up in the pinned npm
platform package first (``@foundry-rs/anvil-linux-amd64``; npm 11 runs no postinstall, so the
wrapper in ``node_modules/.bin`` is not used), then on PATH; a random free port; polled until it
answers; stopped with SIGINT -> SIGTERM -> SIGKILL; and, unless detached, killed by the kernel when
the process that started it dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from keeper.chain.contracts import NODE_MODULES
from keeper.errors import ConfigError, TemporaryError

DEVNET_CHAIN_ID = 31337
# anvil's first default account (a public, well-known key: devnets only).
DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"


def _platform_package() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    system = platform.system().lower()
    return f"@foundry-rs/anvil-{system}-{arch}"


def find_anvil() -> str:
    """Path of the anvil binary: $KEEPER_ANVIL, the npm platform package, then PATH."""
    explicit = os.environ.get("KEEPER_ANVIL")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise ConfigError(f"KEEPER_ANVIL={explicit} is not an executable file")
        return explicit
    pkg = NODE_MODULES / _platform_package() / "bin" / "anvil"
    if pkg.is_file() and os.access(pkg, os.X_OK):
        return str(pkg)
    on_path = shutil.which("anvil")
    if on_path:
        return on_path
    raise ConfigError(
        f"anvil not found: neither node_modules/{_platform_package()}/bin/anvil nor 'anvil' on PATH",
        hint="run 'make setup' (it runs 'npm ci') in the project's root",
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def port_is_busy(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def rpc_call(url: str, method: str, params: list[Any] | None = None, timeout: float = 5.0) -> Any:
    """One JSON-RPC call over HTTP without web3 (readiness checks, fork URL checks)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            reply = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise TemporaryError(f"{url} did not answer {method}: {e}") from e
    if "error" in reply:
        raise TemporaryError(f"{url} answered {method} with an error: {reply['error']}")
    return reply["result"]


def die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Anvil:
    """One anvil process. Use as a context manager or call ``start()`` / ``stop()``."""

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        block_time: float | None = None,
        fork_url: str | None = None,
        fork_block: int | None = None,
        chain_id: int | None = None,
        accounts: int = 12,
        balance_eth: int = 10_000,
        extra_args: Sequence[str] = (),
        detach: bool = False,
        log_path: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.block_time = block_time
        self.fork_url = fork_url
        self.fork_block = fork_block
        self.chain_id = chain_id
        self.accounts = accounts
        self.balance_eth = balance_eth
        self.extra_args = list(extra_args)
        self.detach = detach
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        # processes started next to a foreground devnet (the GMX position keeper), see commands.up
        self.companions: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self, binary: str) -> list[str]:
        cmd = [binary, "--host", self.host, "--port", str(self.port), "--accounts", str(self.accounts),
               "--balance", str(self.balance_eth), "--mnemonic", DEFAULT_MNEMONIC]
        if self.block_time is not None:
            cmd += ["--block-time", str(self.block_time)]
        if self.fork_url:
            cmd += ["--fork-url", self.fork_url]
            if self.fork_block is not None:
                cmd += ["--fork-block-number", str(self.fork_block)]
        if self.chain_id is not None:
            cmd += ["--chain-id", str(self.chain_id)]
        return cmd + self.extra_args

    def start(self, timeout: float = 30.0) -> Anvil:
        binary = find_anvil()
        if self.port is None:
            self.port = free_port(self.host)
        elif port_is_busy(self.port, self.host):
            raise ConfigError(
                f"port {self.port} on {self.host} is busy: another process is listening there",
                hint="pick another with --port, or stop the old devnet with 'keeper devnet down'",
            )
        if self.fork_url:
            try:
                rpc_call(self.fork_url, "eth_chainId", timeout=10.0)
            except TemporaryError as e:
                raise ConfigError(
                    f"fork URL {self.fork_url} does not answer JSON-RPC ({e.__cause__ or e})",
                    hint="check the URL, or omit --fork-url for a fresh local chain",
                ) from e
        # anvil's output goes to a file (never an unread pipe, which would block it when full).
        if self.log_path:
            self._log = None
            with open(self.log_path, "ab") as log:
                proc = self._spawn(binary, log)
        else:
            with contextlib.ExitStack() as stack:
                tmp = stack.enter_context(tempfile.TemporaryFile())
                self._log = tmp
                proc = self._spawn(binary, tmp)
                stack.pop_all()  # kept open: _last_output_line reads anvil's output back from it
        self.proc = proc
        self._wait_ready(proc, timeout)
        return self

    def _spawn(self, binary: str, log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.command(binary),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=self.detach,
            preexec_fn=None if self.detach else die_with_parent,
        )

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                err = self._last_output_line()
                raise ConfigError(f"anvil exited with code {proc.returncode} at start: {err or 'no output'}")
            try:
                rpc_call(self.url, "eth_chainId", timeout=1.0)
                return
            except TemporaryError:
                time.sleep(0.05)
        self.stop()
        raise TemporaryError(f"anvil did not answer on {self.url} within {timeout:.0f} s")

    def _last_output_line(self) -> str:
        try:
            if self._log is not None:
                self._log.seek(0)
                text = self._log.read()
            elif self.log_path:
                text = self.log_path.read_bytes()
            else:
                return ""
        except OSError:
            return ""
        lines = [ln for ln in text.decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1].strip() if lines else ""

    def stop(self, grace: float = 3.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            proc.send_signal(sig)
            try:
                proc.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue
        proc.kill()
        proc.wait(timeout=grace)

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_pid(pid: int, grace: float = 3.0) -> bool:
    """Stop a detached anvil by pid (``keeper devnet down``). Returns False if it was not running."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return sig != signal.SIGINT
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.05)
    return True
