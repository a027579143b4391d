"""Fast signing of EIP-1559 (type 2) transactions, without eth_account's validation and
typed-transaction machinery (~0.6 ms per transaction there, on the critical path from a new
block to a protective transaction).

The format (EIP-1559 over EIP-2718's typed envelope)::

    payload   = [chainId, nonce, maxPriorityFeePerGas, maxFeePerGas, gas, to, value, data, accessList]
    signing   = keccak256(0x02 || rlp(payload))
    raw       = 0x02 || rlp(payload + [yParity, r, s])
    tx hash   = keccak256(raw)

Integers are RLP-encoded as minimal big-endian byte strings (0 is the empty string), and so are
``r`` and ``s``: this module converts them (``_be``) and hands lists of byte strings to the ``rlp``
package's core encoder (``rlp.codec.encode_raw``, what ``rlp.encode`` ends with), skipping
``rlp.encode``'s sedes inference (~25 us per call here). The signature is libsecp256k1's (through
coincurve): RFC 6979 deterministic nonces and a low ``s``, so the bytes equal eth_account's for
the same transaction and key.

Only what the keeper sends is supported: a call to a 20-byte address with an empty access list.
Anything that would produce a different transaction than the caller meant raises ``ValueError``
(which never includes the key)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import coincurve
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from rlp.codec import encode_raw

TX_TYPE = 2
_TYPE_PREFIX = bytes([TX_TYPE])
_UINT256_LIMIT = 2**256
_UINT64_LIMIT = 2**64
# EIP-2681: a nonce is below 2**64 - 1.
_NONCE_LIMIT = 2**64 - 1

REQUIRED_FIELDS = frozenset({"chainId", "nonce", "maxPriorityFeePerGas", "maxFeePerGas", "gas", "to", "value", "data"})
OPTIONAL_FIELDS = frozenset({"type", "accessList"})
_INT_FIELDS = (("chainId", _UINT256_LIMIT), ("nonce", _NONCE_LIMIT), ("maxPriorityFeePerGas", _UINT256_LIMIT),
               ("maxFeePerGas", _UINT256_LIMIT), ("gas", _UINT64_LIMIT), ("value", _UINT256_LIMIT))


def _be(v: int) -> bytes:
    """Minimal big-endian bytes of a non-negative int (RLP's integer form: 0 -> b"")."""
    return v.to_bytes((v.bit_length() + 7) // 8, "big")


def _uint(tx: Mapping[str, Any], name: str, limit: int) -> int:
    v = tx[name]
    if type(v) is not int:  # bool is an int subclass: True would silently become 1
        raise ValueError(f"transaction field {name!r} must be an int, not {type(v).__name__}")
    if v < 0:
        raise ValueError(f"transaction field {name!r} is negative ({v})")
    if v >= limit:
        raise ValueError(f"transaction field {name!r} is too large ({v} >= {limit})")
    return v


def _address(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        if len(value) != 20:
            raise ValueError(f"transaction field 'to' must be 20 bytes, got {len(value)}")
        return bytes(value)
    if not isinstance(value, str):
        raise ValueError(f"transaction field 'to' must be an address (str or 20 bytes), not {type(value).__name__}")
    return _address_from_text(value)


@lru_cache(maxsize=1024)  # the keeper sends to a few addresses; the EIP-55 check costs ~20 us
def _address_from_text(value: str) -> bytes:
    text = value[2:] if value[:2] in ("0x", "0X") else value
    if len(text) != 40:
        raise ValueError(f"transaction field 'to' must be 20 bytes (40 hex digits): {value!r}")
    try:
        out = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"transaction field 'to' is not hex: {value!r}") from None
    # Mixed case means an EIP-55 checksum: a wrong one is a mistyped address (eth_account refuses it too).
    if text != text.lower() and text != text.upper() and to_checksum_address(out) != "0x" + text:
        raise ValueError(f"transaction field 'to' has an invalid EIP-55 checksum: {value!r}")
    return out


def _data(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise ValueError(f"transaction field 'data' must be bytes, not {type(value).__name__}")


def _payload(tx: Mapping[str, Any]) -> list[bytes | list[Any]]:
    """The unsigned payload's items, already as RLP byte strings (ints minimally encoded)."""
    if not isinstance(tx, Mapping):
        raise ValueError(f"a transaction must be a dict, not {type(tx).__name__}")
    missing = REQUIRED_FIELDS - tx.keys()
    if missing:
        raise ValueError(f"transaction is missing field(s): {', '.join(sorted(missing))}")
    unknown = tx.keys() - REQUIRED_FIELDS - OPTIONAL_FIELDS
    if unknown:
        raise ValueError(f"unsupported transaction field(s) for a type 2 transaction: {', '.join(sorted(unknown))}")
    if "type" in tx and (type(tx["type"]) is not int or tx["type"] != TX_TYPE):
        raise ValueError(f"only type 2 (EIP-1559) transactions are supported, got type {tx['type']!r}")
    access_list = tx.get("accessList", ())
    if not isinstance(access_list, (list, tuple)) or access_list:
        raise ValueError("only an empty accessList is supported")
    chain_id, nonce, tip, max_fee, gas, value = [_uint(tx, name, limit) for name, limit in _INT_FIELDS]
    if chain_id == 0:
        raise ValueError("transaction field 'chainId' must not be 0")
    if tip > max_fee:
        raise ValueError(f"maxPriorityFeePerGas ({tip}) exceeds maxFeePerGas ({max_fee})")
    return [_be(chain_id), _be(nonce), _be(tip), _be(max_fee), _be(gas), _address(tx["to"]), _be(value),
            _data(tx["data"]), []]


def signing_hash(tx: Mapping[str, Any]) -> bytes:
    """keccak256(0x02 || rlp(payload)): the 32 bytes the sender signs."""
    return keccak(_TYPE_PREFIX + encode_raw(_payload(tx)))


def as_private_key(key: bytes | coincurve.PrivateKey) -> coincurve.PrivateKey:
    if isinstance(key, coincurve.PrivateKey):
        return key
    if not isinstance(key, (bytes, bytearray)) or len(key) != 32:
        raise ValueError("the private key must be 32 bytes")  # never echo the value
    try:
        return coincurve.PrivateKey(bytes(key))
    except ValueError:
        raise ValueError("the private key is not a valid secp256k1 key") from None


def sign_eip1559(tx: Mapping[str, Any], key: bytes | coincurve.PrivateKey) -> bytes:
    """The raw signed type 2 transaction (``0x02 || rlp([...payload, yParity, r, s])``), ready for
    ``eth_sendRawTransaction``; its hash is ``keccak(raw)``. ``key``: 32 bytes or a
    ``coincurve.PrivateKey`` (cache one to skip parsing the key each time)."""
    payload = _payload(tx)
    digest = keccak(_TYPE_PREFIX + encode_raw(payload))
    sig = as_private_key(key).sign_recoverable(digest, hasher=None)  # r (32) || s (32) || recovery id (1)
    y_parity = sig[64]
    if y_parity not in (0, 1):  # 2/3 (r >= n) is astronomically unlikely and not valid in Ethereum
        raise ValueError("secp256k1 returned an unusable recovery id")
    # r and s as integers: leading zero bytes stripped.
    raw: bytes = _TYPE_PREFIX + encode_raw([*payload, _be(y_parity), sig[:32].lstrip(b"\0"), sig[32:64].lstrip(b"\0")])
    return raw
