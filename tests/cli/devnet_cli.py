"""Running the keeper's CLI as an operator does, against the session's devnet (the `rebalance` and
`reconcile` tests): a config in a temporary directory, the devnet's deployment file, the key in the
environment."""

from __future__ import annotations

import os
import subprocess
import sys

KEEPER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def run(tmp_path, *args, key=True):
    (tmp_path / "config.toml").write_text(
        '[store]\nurl = "sqlite:///k.db"\n' + ('[keeper]\nkey_env = "KEEPER_TEST_KEY"\n' if key else "")
        + '[chains.devnet]\ndeployment = "dep.json"\n')
    env = {**os.environ, "KEEPER_TEST_KEY": KEEPER_KEY}
    return subprocess.run([sys.executable, "-m", "keeper", *args], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=180)
