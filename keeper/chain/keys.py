"""The keeper's hot key: from an environment variable, a file, or an encrypted keystore (JSON,
with a password file). The key never leaves ``HotKey``: its repr, str and every error message
show the address only. Anvil's well-known development keys are refused on any chain id other than
a devnet's."""

from __future__ import annotations

import functools
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import coincurve
from eth_account import Account
from eth_account.signers.local import LocalAccount

from keeper.chain.signing import sign_eip1559
from keeper.errors import ConfigError

DEVNET_CHAIN_IDS = frozenset({31337, 1337})
# anvil/hardhat's default mnemonic ("test test ... junk"), accounts 0-19: public knowledge, so any
# funds behind them on a real chain are taken within seconds.
_WELL_KNOWN_MNEMONIC = "test test test test test test test test test test test junk"
_WELL_KNOWN_COUNT = 20  # anvil prints 10, hardhat 20: the same mnemonic's first 20 accounts
# The fields of the transactions the keeper sends (keeper.chain.tx.TxSender._sign): these are signed
# by keeper.chain.signing (~0.06 ms); any other shape goes through eth_account (~0.6 ms).
_FAST_FIELDS = frozenset({"chainId", "nonce", "to", "data", "value", "gas", "maxFeePerGas",
                          "maxPriorityFeePerGas", "type"})
_FAST_INT_FIELDS = ("chainId", "nonce", "value", "gas", "maxFeePerGas", "maxPriorityFeePerGas")


@functools.cache
def _well_known_addresses() -> frozenset[str]:
    Account.enable_unaudited_hdwallet_features()
    return frozenset(Account.from_mnemonic(_WELL_KNOWN_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").address
                     for i in range(_WELL_KNOWN_COUNT))


@dataclass(frozen=True)
class HotKey:
    account: LocalAccount = field(repr=False)
    source: str  # "env:NAME", "file:PATH" or "keystore:PATH" (never the key)
    # Built on first use from ``account.key``; excluded from repr, ==, hash (and a custom __repr__
    # below shows the address only anyway).
    _signer: coincurve.PrivateKey | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def address(self) -> str:
        return self.account.address

    def __repr__(self) -> str:
        return f"HotKey({self.address}, from {self.source})"

    __str__ = __repr__

    def sign_transaction(self, tx: dict[str, Any]) -> bytes:
        """The raw signed transaction. The keeper's own shape (type 2, the fields of
        ``TxSender._sign``, plain ints, bytes data, a str/bytes address) is signed directly
        (same bytes as eth_account, ~60 us instead of ~600 us); anything else by eth_account."""
        if _is_keeper_shape(tx):
            return sign_eip1559(tx, self._private_key())
        return bytes(self.account.sign_transaction(tx).raw_transaction)

    def _private_key(self) -> coincurve.PrivateKey:
        signer = self._signer
        if signer is None:
            signer = coincurve.PrivateKey(bytes(self.account.key))
            object.__setattr__(self, "_signer", signer)  # frozen dataclass: a cache, not state
        return signer


def _is_keeper_shape(tx: object) -> bool:
    return (type(tx) is dict and tx.keys() == _FAST_FIELDS and type(tx["type"]) is int and tx["type"] == 2
            and isinstance(tx["data"], (bytes, bytearray)) and isinstance(tx["to"], (str, bytes, bytearray))
            and all(type(tx[f]) is int for f in _FAST_INT_FIELDS))


def _from_hex(text: str, source: str) -> LocalAccount:
    value = text.strip()
    if value.startswith("0x"):
        value = value[2:]
    if len(value) != 64:
        raise ConfigError(f"the key from {source} is not 32 bytes of hex")
    try:
        account: LocalAccount = Account.from_key(bytes.fromhex(value))
    except ValueError:
        raise ConfigError(f"the key from {source} is not valid hex or not a valid secp256k1 key") from None
    return account


def _check_permissions(path: Path, source: str) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{source}: readable by other users (mode {oct(mode & 0o777)})",
                          hint=f"chmod 600 {path}")


def load_key(*, env_var: str | None = None, key_file: Path | None = None, keystore: Path | None = None,
             password_file: Path | None = None, chain_id: int, environ: Mapping[str, str] | None = None) -> HotKey:
    """Exactly one source. Refuses anvil's well-known keys unless ``chain_id`` is a devnet's."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    given = [s for s in (env_var, key_file, keystore) if s]
    if len(given) != 1:
        raise ConfigError("configure exactly one keeper key source: an environment variable, a key file, "
                          "or a keystore with a password file")
    if env_var:
        source = f"env:{env_var}"
        if not env.get(env_var):
            raise ConfigError(f"environment variable {env_var} (the keeper key) is not set")
        account = _from_hex(env[env_var], source)
    elif key_file:
        source = f"file:{key_file}"
        try:
            _check_permissions(Path(key_file), source)
            account = _from_hex(Path(key_file).read_text(), source)
        except FileNotFoundError:
            raise ConfigError(f"key file {key_file} not found") from None
    else:
        if keystore is None:  # unreachable: exactly one source is given (checked above)
            raise ConfigError("configure exactly one keeper key source: an environment variable, a key file, "
                              "or a keystore with a password file")
        source = f"keystore:{keystore}"
        if not password_file:
            raise ConfigError(f"keystore {keystore} needs a password file")
        try:
            _check_permissions(Path(password_file), f"password file {password_file}")
            blob = json.loads(Path(keystore).read_text())
            password = Path(password_file).read_text().rstrip("\n")
        except FileNotFoundError as e:
            raise ConfigError(f"{e.filename} not found") from None
        except json.JSONDecodeError:
            raise ConfigError(f"keystore {keystore} is not JSON") from None
        if not isinstance(blob, dict) or not isinstance(blob.get("crypto", blob.get("Crypto")), dict):
            raise ConfigError(f"keystore {keystore} is not an Ethereum keystore (no 'crypto' section)",
                              hint="a V3 keystore JSON, as geth account new or cast wallet new write")
        try:
            account = Account.from_key(Account.decrypt(blob, password))
        except ValueError:
            raise ConfigError(f"keystore {keystore}: wrong password or corrupt keystore") from None
        except (KeyError, TypeError, AttributeError) as e:
            raise ConfigError(f"keystore {keystore} is malformed: {type(e).__name__} {e}",
                              hint="a V3 keystore JSON, as geth account new or cast wallet new write") from None
    if chain_id not in DEVNET_CHAIN_IDS and account.address in _well_known_addresses():
        raise ConfigError(f"the keeper key ({account.address}) is one of anvil's public development keys; "
                          f"refused on chain id {chain_id}", hint="use a key of your own on a real chain")
    return HotKey(account, source)
