"""What a command imports before it does anything: the parser loads no heavy library (so `keeper
--help`, argument errors and the offline commands start at once), and the services every chain
command and the daemon use load neither the fitting code (scipy.stats, scipy.signal,
scipy.optimize) nor scikit-learn nor matplotlib nor web3 (the keeper speaks raw JSON-RPC; web3 serves
the devnet, the demo and the pre-liquidation commands). Each of those costs a few tenths of a second to a
second of start-up, paid by every CLI run; they are imported where they are used.

Checked in a fresh interpreter (this test process has imported everything already)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY_FOR_THE_PARSER = ("numpy", "scipy", "sklearn", "matplotlib", "web3", "eth_utils", "sqlalchemy", "rich")
HEAVY_FOR_THE_SERVICES = ("scipy.stats", "scipy.signal", "scipy.optimize", "sklearn", "matplotlib", "web3")


def _loaded_after(statement: str, names: tuple[str, ...]) -> list[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps([m for m in {list(names)!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def test_the_parser_loads_no_heavy_library():
    loaded = _loaded_after("from keeper.cli import build_parser; build_parser()", HEAVY_FOR_THE_PARSER)
    assert loaded == [], f"`keeper --help` imports {loaded}: import them inside the command's run()"


def test_the_services_and_the_daemon_load_no_fitting_code():
    loaded = _loaded_after("import keeper.app.manual, keeper.app.session, keeper.daemon.keeper, keeper.cli.status",
                           HEAVY_FOR_THE_SERVICES)
    assert loaded == [], f"the chain commands' services import {loaded} at start-up"


def test_the_lazy_imports_still_work():
    """The vol filter and a tail law's vectorised P still run (their scipy imports come on first use)."""
    code = ("import numpy as np\n"
            "from keeper.risk.volatility import ewma_variance\n"
            "from keeper.risk.builtin_law import BUILTIN_TAIL\n"
            "v = ewma_variance(np.array([0.01, -0.02, 0.03, 0.0]), 0.94)\n"
            "p = BUILTIN_TAIL.prob(np.array([0.1, 0.3]), np.array([[0.01, 0.01, 0.01]] * 2), 24.0)\n"
            "print(len(v), float(p[0]) > float(p[1]) > 0.0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["4", "True"]
