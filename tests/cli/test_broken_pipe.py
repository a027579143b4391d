"""`keeper status --json | head`: when the reader goes away mid-output, the CLI exits quietly with
the shell's SIGPIPE code (141), no traceback."""

from __future__ import annotations

import subprocess
import sys

# A command whose handler writes more than a pipe holds (the real commands need a chain for that).
SCRIPT = """
import sys
import keeper.cli.devnet as d
def run(args, cfg):
    for _ in range(2000):
        print("x" * 1000)
    return 0
d.run = run
from keeper.cli import main
sys.exit(main(["devnet", "down"]))
"""


def test_a_closed_pipe_is_not_a_traceback(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10) == b"x" * 10
    proc.stdout.close()  # the reader goes away
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141
    assert b"Traceback" not in err and b"BrokenPipeError" not in err
