"""A throwaway PostgreSQL server for the store's tests and the replica benchmark (``bench/ha.py``):
``initdb`` into a temporary directory, ``postgres`` on a free loopback port, stopped at the end. Run
as the ``postgres`` system user when the tests run as root (initdb refuses root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from keeper.devnet.anvil import free_port


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / name).exists():
            return str(d / name)
    return None


@contextmanager
def temporary_postgres() -> Iterator[str | None]:
    """A database URL (``postgresql+psycopg2://``) while the context lasts; None without the server
    binaries (``make setup`` installs Debian's ``postgresql``)."""
    initdb, postgres = _bin("initdb"), _bin("postgres")
    if not initdb or not postgres:
        yield None
        return
    as_user: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if not runuser:
            yield None
            return
        as_user = [runuser, "-u", "postgres", "--"]
    tmp = Path(tempfile.mkdtemp(prefix="keeper-pg-"))
    data = tmp / "data"
    if as_user:
        shutil.chown(tmp, "postgres")
    subprocess.run([*as_user, initdb, "-D", str(data), "-U", "keeper", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True, timeout=120)
    port = free_port()
    proc = subprocess.Popen([*as_user, postgres, "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
                             "-k", str(tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"postgresql+psycopg2://keeper@127.0.0.1:{port}/postgres"
    try:
        import psycopg2

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg2.connect(host="127.0.0.1", port=port, user="keeper", dbname="postgres").close()
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
