"""Decoding revert data into names: Solidity custom errors (by selector, from the ABIs we know),
``Error(string)`` (Aave v3.0-3.1 reverts with numeric strings such as "45", mapped to Aave's names;
v3.2+ with custom errors, decoded from its build), and ``Panic(uint256)``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.crypto import keccak

from keeper.errors import ConfigError

ERROR_STRING = bytes.fromhex("08c379a0")
PANIC = bytes.fromhex("4e487b71")

# Aave v3 Errors.sol (@aave/core-v3 1.19.3): Aave reverts with these numeric strings.
AAVE_ERRORS = {
    "1": "CALLER_NOT_POOL_ADMIN", "2": "CALLER_NOT_EMERGENCY_ADMIN",
    "3": "CALLER_NOT_POOL_OR_EMERGENCY_ADMIN", "4": "CALLER_NOT_RISK_OR_POOL_ADMIN",
    "5": "CALLER_NOT_ASSET_LISTING_OR_POOL_ADMIN", "6": "CALLER_NOT_BRIDGE",
    "7": "ADDRESSES_PROVIDER_NOT_REGISTERED", "8": "INVALID_ADDRESSES_PROVIDER_ID",
    "9": "NOT_CONTRACT", "10": "CALLER_NOT_POOL_CONFIGURATOR", "11": "CALLER_NOT_ATOKEN",
    "12": "INVALID_ADDRESSES_PROVIDER", "13": "INVALID_FLASHLOAN_EXECUTOR_RETURN",
    "14": "RESERVE_ALREADY_ADDED", "15": "NO_MORE_RESERVES_ALLOWED",
    "16": "EMODE_CATEGORY_RESERVED", "17": "INVALID_EMODE_CATEGORY_ASSIGNMENT",
    "18": "RESERVE_LIQUIDITY_NOT_ZERO", "19": "FLASHLOAN_PREMIUM_INVALID",
    "20": "INVALID_RESERVE_PARAMS", "21": "INVALID_EMODE_CATEGORY_PARAMS",
    "22": "BRIDGE_PROTOCOL_FEE_INVALID", "23": "CALLER_MUST_BE_POOL", "24": "INVALID_MINT_AMOUNT",
    "25": "INVALID_BURN_AMOUNT", "26": "INVALID_AMOUNT", "27": "RESERVE_INACTIVE",
    "28": "RESERVE_FROZEN", "29": "RESERVE_PAUSED", "30": "BORROWING_NOT_ENABLED",
    "31": "STABLE_BORROWING_NOT_ENABLED", "32": "NOT_ENOUGH_AVAILABLE_USER_BALANCE",
    "33": "INVALID_INTEREST_RATE_MODE_SELECTED", "34": "COLLATERAL_BALANCE_IS_ZERO",
    "35": "HEALTH_FACTOR_LOWER_THAN_LIQUIDATION_THRESHOLD",
    "36": "COLLATERAL_CANNOT_COVER_NEW_BORROW", "37": "COLLATERAL_SAME_AS_BORROWING_CURRENCY",
    "38": "AMOUNT_BIGGER_THAN_MAX_LOAN_SIZE_STABLE", "39": "NO_DEBT_OF_SELECTED_TYPE",
    "40": "NO_EXPLICIT_AMOUNT_TO_REPAY_ON_BEHALF", "41": "NO_OUTSTANDING_STABLE_DEBT",
    "42": "NO_OUTSTANDING_VARIABLE_DEBT", "43": "UNDERLYING_BALANCE_ZERO",
    "44": "INTEREST_RATE_REBALANCE_CONDITIONS_NOT_MET", "45": "HEALTH_FACTOR_NOT_BELOW_THRESHOLD",
    "46": "COLLATERAL_CANNOT_BE_LIQUIDATED", "47": "SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER",
    "49": "INCONSISTENT_FLASHLOAN_PARAMS", "50": "BORROW_CAP_EXCEEDED",
    "51": "SUPPLY_CAP_EXCEEDED", "52": "UNBACKED_MINT_CAP_EXCEEDED", "53": "DEBT_CEILING_EXCEEDED",
    "54": "UNDERLYING_CLAIMABLE_RIGHTS_NOT_ZERO", "55": "STABLE_DEBT_NOT_ZERO",
    "56": "VARIABLE_DEBT_SUPPLY_NOT_ZERO", "57": "LTV_VALIDATION_FAILED",
    "58": "INCONSISTENT_EMODE_CATEGORY", "59": "PRICE_ORACLE_SENTINEL_CHECK_FAILED",
    "60": "ASSET_NOT_BORROWABLE_IN_ISOLATION", "61": "RESERVE_ALREADY_INITIALIZED",
    "62": "USER_IN_ISOLATION_MODE_OR_LTV_ZERO", "63": "INVALID_LTV", "64": "INVALID_LIQ_THRESHOLD",
    "65": "INVALID_LIQ_BONUS", "66": "INVALID_DECIMALS", "67": "INVALID_RESERVE_FACTOR",
    "68": "INVALID_BORROW_CAP", "69": "INVALID_SUPPLY_CAP",
    "70": "INVALID_LIQUIDATION_PROTOCOL_FEE", "71": "INVALID_EMODE_CATEGORY",
    "72": "INVALID_UNBACKED_MINT_CAP", "73": "INVALID_DEBT_CEILING", "74": "INVALID_RESERVE_INDEX",
    "75": "ACL_ADMIN_CANNOT_BE_ZERO", "76": "INCONSISTENT_PARAMS_LENGTH",
    "77": "ZERO_ADDRESS_NOT_VALID", "78": "INVALID_EXPIRATION", "79": "INVALID_SIGNATURE",
    "80": "OPERATION_NOT_SUPPORTED", "81": "DEBT_CEILING_NOT_ZERO", "82": "ASSET_NOT_LISTED",
    "83": "INVALID_OPTIMAL_USAGE_RATIO", "84": "INVALID_OPTIMAL_STABLE_TO_TOTAL_DEBT_RATIO",
    "85": "UNDERLYING_CANNOT_BE_RESCUED", "86": "ADDRESSES_PROVIDER_ALREADY_ADDED",
    "87": "POOL_ADDRESSES_DO_NOT_MATCH", "88": "STABLE_BORROWING_ENABLED",
    "89": "SILOED_BORROWING_VIOLATION", "90": "RESERVE_DEBT_NOT_ZERO", "91": "FLASHLOAN_DISABLED",
}


@dataclass(frozen=True)
class DecodedRevert:
    name: str
    args: tuple[Any, ...] = ()

    def __str__(self) -> str:
        if not self.args:
            return self.name
        return f"{self.name}({', '.join(map(str, self.args))})"


def _abi_type(inp: dict[str, Any]) -> str:
    t: str = inp["type"]
    if t.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in inp["components"])
        return f"({inner}){t[5:]}"
    return t


def error_selectors(abis: Iterable[list[dict[str, Any]]]) -> dict[bytes, tuple[str, list[str]]]:
    table: dict[bytes, tuple[str, list[str]]] = {}
    for abi in abis:
        for item in abi:
            if item.get("type") != "error":
                continue
            types = [_abi_type(i) for i in item.get("inputs", [])]
            sig = f"{item['name']}({','.join(types)})"
            table[keccak(text=sig)[:4]] = (item["name"], types)
    return table


def revert_data(exc: BaseException) -> bytes | None:
    """The raw revert bytes carried by a web3 exception, if any."""
    for attr in ("data", "args"):
        value = getattr(exc, attr, None)
        candidates = value if isinstance(value, tuple) else (value,)
        for c in candidates:
            if isinstance(c, (bytes, bytearray)):
                return bytes(c)
            if isinstance(c, str) and c.startswith("0x") and len(c) >= 10:
                try:
                    return bytes.fromhex(c[2:])
                except ValueError:
                    continue
            if isinstance(c, dict) and isinstance(c.get("data"), str):
                return bytes.fromhex(c["data"][2:])
    return None


@lru_cache(maxsize=1)
def _aave_custom_errors() -> dict[bytes, tuple[str, list[str]]]:
    """Aave v3.2+ reverts with custom errors (``Errors.sol``: ``HealthFactorNotBelowThreshold()``,
    ...) instead of v3.0's numeric strings; their ABI comes from the aave-v3-origin build made by
    ``make setup``. Without that build, such a revert is shown by its selector."""
    from keeper.chain import contracts

    try:
        return error_selectors([contracts.aave_origin("Errors").abi])
    except ConfigError:
        return {}


def decode(data: bytes | None, abis: Iterable[list[dict[str, Any]]] = ()) -> DecodedRevert:
    if not data:
        return DecodedRevert("EmptyRevert")
    sel, body = data[:4], data[4:]
    if sel == ERROR_STRING:
        (msg,) = abi_decode(["string"], body)
        if msg in AAVE_ERRORS:
            return DecodedRevert(AAVE_ERRORS[msg], (msg,))
        if msg.isdigit():
            return DecodedRevert(f"AaveError{msg}", (msg,))
        return DecodedRevert(msg)
    if sel == PANIC:
        (code,) = abi_decode(["uint256"], body)
        return DecodedRevert("Panic", (hex(code),))
    table = error_selectors(abis)
    if sel not in table:
        table = _aave_custom_errors()
    if sel in table:
        name, types = table[sel]
        try:
            return DecodedRevert(name, tuple(abi_decode(types, body)))
        except Exception:  # malformed arguments: keep the name
            return DecodedRevert(name)
    return DecodedRevert(f"UnknownError(0x{sel.hex()})")
