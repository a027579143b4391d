"""Malformed config, keys and addresses: a clear one-line error, a non-zero exit, nothing sent; and
the private key never appears in any output line of any keeper process (every command these fault
tests run is scanned: ``Env._keep``), including a malformed key's own text."""

import pytest

from tests.devnet.helpers import set_price
from tests.faults.conftest import KEEPER_KEY, VOLS, head, keeper_actions

BAD_KEY = "0x" + "zz" + KEEPER_KEY[4:]  # a real key with one byte mangled: still a secret
BAD_CHECKSUM = "0x4C5859f0F772848b2D91F1D83E2Fe57935348029"  # alice's vault, one letter's case flipped


def _case(env, case: str) -> dict:
    """Set up one malformed input; returns the environment for the keeper process."""
    e = env.environ()
    if case == "toml":
        (env.root / "config.toml").write_text('[store\nurl = "sqlite:///k.db"\n')
    elif case == "type":
        env.config(extra="[policy]\nepsilon = \"small\"\n")
    elif case == "unknown_key":
        env.config(extra="[daemon2]\npoll = 1\n")
    elif case == "rpc_url":
        env.config(chain_extra='rpc_urls = ["not a url"]')
    elif case == "checksum":
        env.config(chain_extra=f'[[chains.devnet.accounts]]\naddress = "{BAD_CHECKSUM}"\nkind = "vault"\n')
    elif case == "address":
        env.config(chain_extra='[[chains.devnet.accounts]]\naddress = "0x1234"\nkind = "vault"\n')
    elif case == "key_short":
        e["KEEPER_TEST_KEY"] = KEEPER_KEY[:40]
    elif case == "key_garbled":
        e["KEEPER_TEST_KEY"] = BAD_KEY
    elif case == "key_missing":
        del e["KEEPER_TEST_KEY"]
    elif case == "key_file":
        text = (env.root / "config.toml").read_text().replace('key_env = "KEEPER_TEST_KEY"', 'key_file = "nope.key"')
        (env.root / "config.toml").write_text(text)
    return e


CASES = {"toml": "not valid TOML", "type": "policy.epsilon", "unknown_key": "daemon2", "rpc_url": "rpc_urls",
         "checksum": "checksum", "address": "address", "key_short": "not 32 bytes of hex",
         "key_garbled": "not valid hex", "key_missing": "KEEPER_TEST_KEY", "key_file": "nope.key"}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_input_is_a_clear_error_and_nothing_is_sent(env, w3, devnet, case):
    set_price(w3, devnet, "ETH", 1_560)  # the keeper would act if it started
    keeper = devnet["roles"]["keeper"]
    nonce0, start = w3.eth.get_transaction_count(keeper, "pending"), head(w3)
    e = _case(env, case)
    cmd = ("run", "--log-level", "DEBUG", *VOLS)
    if case in ("key_garbled", "key_file"):  # the operator's command, for the key cases the daemon skips
        alice = devnet["keeper_vaults"]["alice"]["address"][:10]
        cmd = ("rebalance", f"{alice}:morpho", "--vol", "WETH=0.8", "--execute")
    proc = env.cli(*cmd, env=e, timeout=60)
    # The daemon's JSON log lines (DEBUG) go to stderr too; the error is the one plain line, last.
    err = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("{")]
    assert proc.returncode == 2, (cmd, proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert len(err) == 1 and err[0].startswith("keeper: error: ") and CASES[case] in err[0], proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == err[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    for secret in (BAD_KEY, BAD_KEY[2:], KEEPER_KEY[:40], KEEPER_KEY[2:40]):
        assert secret not in proc.stdout + proc.stderr
    assert w3.eth.get_transaction_count(keeper, "pending") == nonce0 and keeper_actions(w3, devnet, start) == []


def test_outputs_scanned_for_the_key_are_real(env):
    """The scan itself: it sees the output and would catch the key."""
    proc = env.cli("check-config")
    assert env.outputs and env.outputs[-1] == proc.stdout + proc.stderr
    with pytest.raises(AssertionError, match="private key appeared"):
        env._keep(f"oops {KEEPER_KEY[2:]}")
