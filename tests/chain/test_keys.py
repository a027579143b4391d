"""Key loading: every source, clear errors, anvil's public keys refused off devnets, and the key
never appears in any repr, str or error message."""

import json

import pytest
from eth_account import Account

from keeper.chain.keys import load_key
from keeper.errors import ConfigError

ANVIL_1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil account 1
OWN = "0x" + "11" * 32


def test_env_source_and_redaction():
    k = load_key(env_var="KEEPER_KEY", chain_id=1, environ={"KEEPER_KEY": OWN})
    assert k.address == Account.from_key(OWN).address
    for text in (repr(k), str(k), f"{k}"):
        assert OWN[2:] not in text and "11111111" not in text


def test_anvil_keys_only_on_devnets():
    assert load_key(env_var="K", chain_id=31337, environ={"K": ANVIL_1}).address.startswith("0x70997970")
    with pytest.raises(ConfigError) as e:
        load_key(env_var="K", chain_id=1, environ={"K": ANVIL_1})
    assert "public development keys" in str(e.value) and ANVIL_1[2:] not in str(e.value)


def test_file_source_needs_private_permissions(tmp_path):
    p = tmp_path / "key"
    p.write_text(OWN + "\n")
    p.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_key(key_file=p, chain_id=1)
    p.chmod(0o600)
    assert load_key(key_file=p, chain_id=1).address == Account.from_key(OWN).address


def test_keystore_with_password_file(tmp_path):
    ks = tmp_path / "ks.json"
    ks.write_text(json.dumps(Account.encrypt(OWN, "s3cret", kdf="pbkdf2", iterations=2)))
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    pw.chmod(0o600)
    assert load_key(keystore=ks, password_file=pw, chain_id=10).address == Account.from_key(OWN).address
    pw.write_text("wrong")
    with pytest.raises(ConfigError, match="wrong password"):
        load_key(keystore=ks, password_file=pw, chain_id=10)


@pytest.mark.parametrize("blob,needle", [
    ({"version": 3}, "not an Ethereum keystore"),
    ([1, 2], "not an Ethereum keystore"),
    ({"version": 3, "crypto": {"cipher": "aes-128-ctr"}}, "malformed"),
])
def test_malformed_keystores_are_clear_errors(tmp_path, blob, needle):
    ks = tmp_path / "ks.json"
    ks.write_text(json.dumps(blob))
    pw = tmp_path / "pw"
    pw.write_text("x")
    pw.chmod(0o600)
    with pytest.raises(ConfigError, match=needle):
        load_key(keystore=ks, password_file=pw, chain_id=10)


@pytest.mark.parametrize("index", [0, 9, 10, 19])
def test_all_twenty_development_keys_are_refused_off_devnets(index):
    Account.enable_unaudited_hdwallet_features()
    dev = Account.from_mnemonic("test test test test test test test test test test test junk",
                                account_path=f"m/44'/60'/0'/0/{index}")
    env = {"K": dev.key.hex()}
    with pytest.raises(ConfigError, match="public development keys"):
        load_key(env_var="K", environ=env, chain_id=1)
    assert load_key(env_var="K", environ=env, chain_id=31337).address == dev.address


@pytest.mark.parametrize("kwargs,needle", [
    ({}, "exactly one"),
    ({"env_var": "NOPE"}, "is not set"),
    ({"env_var": "K", "environ": {"K": "0x1234"}}, "not 32 bytes"),
    ({"env_var": "K", "environ": {"K": "zz" * 32}}, "not valid hex"),
])
def test_bad_sources(kwargs, needle):
    kwargs.setdefault("environ", {})
    with pytest.raises(ConfigError, match=needle) as e:
        load_key(chain_id=1, **kwargs)
    assert "zz" * 8 not in str(e.value)
