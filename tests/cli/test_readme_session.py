"""README.md's devnet session, run line by line as an operator copies it into a terminal.

The commands are read from README.md at run time (the block after "A session on the devnet:"), so
the test follows the README: each ``.venv/bin/keeper ...`` line runs as written (only that prefix
becomes the keeper script of the interpreter running the tests), each ``export`` applies to the
lines after it, as in a shell. The numbers the README promises in its comments ("health 0.96 ->
1.18") are parsed from the same lines and checked against what the commands print.

The session runs in a fresh temporary directory holding a copy of the repository's config.toml
(what ``./config.toml`` is when the README's session runs in the repository's root), so its
``.keeper/`` (deployment, journal, logs) is its own. The one difference from a terminal is
``KEEPER__DEVNET__PORT``: ``devnet up`` takes a free port instead of 8545 (the config override the
README's config.toml documents), so the test neither collides with a devnet someone runs in the
working tree nor with other tests' anvils; every later command finds the port in the deployment file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from keeper.devnet.anvil import free_port, rpc_call
from keeper.errors import TemporaryError

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
INTRO = "A session on the devnet:"
PREFIX = ".venv/bin/keeper"
TOLERANCE = 0.02  # on the healths the README's comments promise (two decimals)
ARROW = re.compile(r"(\d+(?:\.\d+)?)\s*->\s*(\d+(?:\.\d+)?)")


# --- the README's block ---------------------------------------------------------------------------
@dataclass
class Line:
    """One line of the session (with its comment-only continuation lines folded into ``comment``):
    a keeper command (``argv`` after the prefix) or an ``export`` (``assigns``)."""

    lineno: int
    code: str
    comment: str = ""
    argv: list[str] = field(default_factory=list)
    assigns: list[tuple[str, str]] = field(default_factory=list)

    @property
    def command(self) -> str:
        """The subcommand, e.g. "devnet up", "status", "rebalance" ("" for an export)."""
        if not self.argv:
            return ""
        return " ".join(self.argv[:2]) if self.argv[0] == "devnet" else self.argv[0]

    def __str__(self) -> str:
        return f"README.md:{self.lineno}: {self.code}"


def split_comment(line: str) -> tuple[str, str]:
    """(code, comment) as a POSIX shell reads the line: a ``#`` starting a word outside quotes
    starts the comment."""
    quote = None
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == quote:
                quote = None
            elif ch == "\\" and quote == '"':
                i += 1
        elif ch in "'\"":
            quote = ch
        elif ch == "\\":
            i += 1
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
        i += 1
    return line.rstrip(), ""


def readme_session(text: str) -> list[Line]:
    """The session's lines, parsed; any line that is neither a keeper command nor an export fails."""
    at = text.find(INTRO)
    assert at >= 0, f"README.md has no {INTRO!r} line"
    block = re.match(r"\s*```sh\n(.*?)\n```", text[at + len(INTRO):], re.S)
    assert block, f"README.md: no ```sh block right after {INTRO!r}"
    first = text.count("\n", 0, at + len(INTRO) + block.start(1)) + 1  # the block's first line number
    lines: list[Line] = []
    pending = ""  # a line continued with a backslash
    for n, raw in enumerate(block.group(1).split("\n"), start=first):
        if not raw.strip():
            continue
        if raw.lstrip().startswith("#") and not pending:
            assert lines, f"README.md:{n}: a comment before the first command"
            lines[-1].comment += " " + raw.strip().lstrip("#").strip()
            continue
        code, comment = split_comment(raw)
        if code.endswith("\\"):
            pending += code[:-1] + " "
            continue
        code, pending = pending + code, ""
        words = shlex.split(code)
        line = Line(n, code.strip(), comment)
        if words[0] == "export":
            for word in words[1:]:
                name, eq, value = word.partition("=")
                assert eq and re.fullmatch(r"[A-Za-z_]\w*", name), f"{line}: not NAME=VALUE: {word!r}"
                assert "$" not in value, f"{line}: the test does not expand variables: {word!r}"
                line.assigns.append((name, value))
            assert line.assigns, f"{line}: an export of nothing"
        else:
            assert words[0] == PREFIX, f"{line}: neither `{PREFIX} ...` nor `export NAME=VALUE`"
            line.argv = words[1:]
            assert line.argv, f"{line}: no subcommand"
        lines.append(line)
    assert not pending, "README.md: the session ends with a continued line"
    return lines


def test_readme_session_parses():
    """The parser finds the session and what the chain test checks (a README edit that breaks the
    parser fails here, in the pure run, first)."""
    lines = readme_session(README.read_text())
    commands = [ln.command for ln in lines if ln.argv]
    assert commands[0] == "devnet up" and commands[-1] == "devnet down", commands
    for needed in ("status", "devnet price", "watch", "check-config", "plan", "rebalance"):
        assert needed in commands, f"the README's session has no `keeper {needed}`: {commands}"
    assert any(ln.assigns for ln in lines), "the README's session exports no key"
    for ln in lines:
        if ln.command == "rebalance":
            assert "--execute" in ln.argv, f"{ln}: the session's rebalances send"
            assert ARROW.search(ln.comment), f"{ln}: its comment promises no 'health X -> Y'"


def test_split_comment():
    assert split_comment("a b   # c # d") == ("a b", "c # d")
    assert split_comment("a 'x # y' b#c # d") == ("a 'x # y' b#c", "d")
    assert split_comment('a "x \\" # y" # d') == ('a "x \\" # y"', "d")
    assert split_comment("export A=1") == ("export A=1", "")


# --- running it -----------------------------------------------------------------------------------
def keeper_command() -> list[str]:
    """What the README's ``.venv/bin/keeper`` is for the interpreter running the tests: the
    console script next to it (the repository's venv: the same file), else ``python -m keeper``."""
    script = Path(sys.executable).parent / "keeper"
    return [str(script)] if script.is_file() and os.access(script, os.X_OK) else [sys.executable, "-m", "keeper"]


def _tail(text: str, n: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-n:])


def _flat(text: str) -> str:
    """Output with rich's wrapping undone (a terminal narrower than a line wraps it)."""
    return re.sub(r"\s+", " ", text)


def _procs_in(cwd: Path) -> dict[int, str]:
    """Processes (pid -> command line) whose working directory is ``cwd``: what this session's
    commands started (anvil, GMX's position keeper), whoever else runs a devnet elsewhere."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if Path(os.readlink(entry / "cwd")) == cwd:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
    return found


def _kill(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.1)


@dataclass
class Session:
    cwd: Path
    env: dict[str, str]
    keeper: list[str]
    log: list[str] = field(default_factory=list)
    price_moved: bool = False
    rpc_url: str | None = None

    def run(self, line: Line, timeout: float) -> tuple[subprocess.CompletedProcess[str], float]:
        t = time.monotonic()
        try:
            done = subprocess.run(self.keeper + line.argv, cwd=self.cwd, env=self.env, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            pytest.fail(f"{line}: did not return within {timeout:g} s; its output so far:\n{_tail(out)}")
        took = time.monotonic() - t
        self.log.append(f"{took:6.1f} s  exit {done.returncode}  {line.code}")
        return done, took

    def context(self, line: Line, done: subprocess.CompletedProcess[str]) -> str:
        logs = ""
        for name in ("anvil.log", "position_keeper.log"):
            path = self.cwd / ".keeper" / name
            if path.exists():
                logs += f"\n--- .keeper/{name} (tail):\n{_tail(path.read_text(errors='replace'), 15)}"
        return (f"{line}\n--- exit {done.returncode}\n--- stdout (tail):\n{_tail(done.stdout)}\n"
                f"--- stderr (tail):\n{_tail(done.stderr)}{logs}\n--- steps so far:\n" + "\n".join(self.log))


def check(session: Session, line: Line, done: subprocess.CompletedProcess[str], took: float) -> None:
    """What the README promises for this line (each check names the line and shows its output)."""
    ctx = session.context(line, done)
    out = done.stdout
    flat = _flat(done.stdout + "\n" + done.stderr)
    assert done.returncode == 0, f"exit {done.returncode}, not 0:\n{ctx}"
    cmd = line.command
    if cmd == "devnet up":
        dep = json.loads((session.cwd / ".keeper" / "devnet.json").read_text())
        session.rpc_url = dep["rpc_url"]
        port = session.env["KEEPER__DEVNET__PORT"]
        assert session.rpc_url.endswith(f":{port}"), f"the devnet is not on port {port}: {session.rpc_url}\n{ctx}"
        assert "devnet ready at" in out, ctx
        assert "running in the background" in done.stderr, ctx
    elif cmd == "status" and "--json" not in line.argv:
        assert "✓" in out, f"no Aave health marked ✓:\n{ctx}"
    elif cmd == "devnet price":
        symbol, price = line.argv[2].upper(), float(line.argv[3])
        assert re.search(rf"^{symbol} = {price:g} USD", out, re.M), ctx
        session.price_moved = True
    elif cmd == "status":
        doc = json.loads(out)
        positions = [p for c in doc["chains"] for p in c["positions"]]
        assert positions, f"no position:\n{ctx}"
        under = [p for p in positions if p["health"] is not None and p["health"] < 1]
        if session.price_moved:
            assert under, "after the price drop no position is under health 1:\n" + "\n".join(
                f"{p['protocol']} {p['account']} {p['market_label']}: {p['health']}" for p in positions)
    elif cmd == "watch":
        blocks = int(line.argv[line.argv.index("--blocks") + 1])
        assert took < 30, f"watch --blocks {blocks} took {took:.1f} s (the README: about {blocks} s):\n{ctx}"
        seen = [int(b) for b in re.findall(r"devnet at block (\d+)", out)]
        assert len(seen) == blocks, f"{len(seen)} tables ({seen}), not {blocks}:\n{ctx}"
        assert seen == sorted(set(seen)), f"tables not at {blocks} successive new blocks: {seen}\n{ctx}"
    elif cmd == "check-config":
        assert out.strip(), ctx
        bad = [ln for ln in out.splitlines() if ln.strip() and not ln.startswith(("ok", "warn"))]
        assert not bad, f"check-config lines neither ok nor warn: {bad}\n{ctx}"
        if "health()" in line.comment:
            assert "vault health of" in out, f"no vault health() read:\n{ctx}"
    elif cmd == "plan":
        actions = re.findall(r"P\(liq \d+h\) [\d.]+% -> [\d.]+%", _flat(out))
        assert actions, f"plan shows no action:\n{ctx}"
        if "default vol" in line.comment:
            assert "default vol" in done.stderr, f"plan does not warn about default vols:\n{ctx}"
    elif cmd == "rebalance":
        want_before, want_after = (float(x) for x in ARROW.findall(line.comment)[-1])
        now = re.search(r"health now (\d+(?:\.\d+)?) \(was (\d+(?:\.\d+)?)\)", flat)
        assert now, f"no 'health now X (was Y)' line:\n{ctx}"
        after, before = float(now.group(1)), float(now.group(2))
        assert abs(before - want_before) <= TOLERANCE and abs(after - want_after) <= TOLERANCE, (
            f"health {before:.4f} -> {after:.4f}, the README says {want_before:g} -> {want_after:g} "
            f"(± {TOLERANCE}):\n{ctx}")
        session.log[-1] += f"   (health {before:.4f} -> {after:.4f}; README: {want_before:g} -> {want_after:g})"
        if "PositionRouter" in line.comment:
            assert "GMX PositionRouter request" in flat, f"no PositionRouter request:\n{ctx}"
            assert "executed or cancelled by GMX's position keepers" in flat, f"the request was not settled:\n{ctx}"
    elif cmd == "devnet down":
        assert "devnet stopped" in out, ctx
        assert session.rpc_url, "devnet down before devnet up"
        try:
            rpc_call(session.rpc_url, "eth_chainId", timeout=2.0)
        except TemporaryError:
            pass
        else:
            pytest.fail(f"{session.rpc_url} still answers after devnet down:\n{ctx}")
        left = _procs_in(session.cwd)
        assert not left, f"still running after devnet down: {left}\n{ctx}"


TIMEOUTS = {"devnet up": 300.0, "watch": 60.0, "rebalance": 240.0}


@pytest.mark.chain  # starts its own anvil, through `keeper devnet up`
def test_readme_session(tmp_path):
    lines = readme_session(README.read_text())
    cwd = tmp_path.resolve()
    if (REPO / "config.toml").exists():
        shutil.copy(REPO / "config.toml", cwd / "config.toml")
    # The operator's shell: the inherited environment without config overrides of its own, and
    # the devnet on a free port; the README's exports are applied in order below.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEPER__")}
    env["KEEPER__DEVNET__PORT"] = str(free_port())
    session = Session(cwd, env, keeper_command())
    try:
        for line in lines:
            if line.assigns:
                session.env = {**session.env, **dict(line.assigns)}
                session.log.append(f"{'':20}{line.code}")
                continue
            done, took = session.run(line, TIMEOUTS.get(line.command, 120.0))
            check(session, line, done, took)
        print("\n" + "\n".join(session.log))
    finally:
        if (cwd / ".keeper" / "devnet-state.json").exists():  # a step failed before `devnet down`
            subprocess.run([*session.keeper, "devnet", "down"], cwd=cwd, env=session.env, capture_output=True,
                           timeout=60)
        _kill(list(_procs_in(cwd)))
