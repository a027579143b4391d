"""The keeper's exception classes. The class decides the reaction (DESIGN.md, style rule 4):

- ``ConfigError``: bad input from the operator (config, address, missing install); fatal at start.
- ``TemporaryError``: a dead or lagging RPC, a timeout; back off, retry, fail over.
- ``TxFailed``: a transaction could not be sent or was dropped; stop that action and alert. Its kinds:
  ``GasCapHit`` (the fee cap keeps the bid under the base fee), ``NonceUsed`` (another sender of the
  key), ``MinedReverted`` (mined with status 0: it carries the hash and block).
- ``Reverted``: a call or transaction reverted; carries the decoded error name when known.
- ``Halt``: stop the daemon cleanly (circuit breaker, operator request).

Library errors are translated at the adapter boundary with ``raise ... from e`` so the raw payload
stays attached as ``__cause__``.
"""

from __future__ import annotations


class KeeperError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with when this error reaches it."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class ConfigError(KeeperError):
    """The operator's input is wrong: config, CLI arguments, addresses, a missing install step."""

    exit_code = 2


class TemporaryError(KeeperError):
    """Worth retrying: a dead RPC, a timeout, a node that lags behind."""

    exit_code = 3


class TxFailed(KeeperError):
    """A transaction could not be sent, was dropped, or its receipt says it failed."""

    exit_code = 4


class GasCapHit(TxFailed):
    """Not sent: the fee cap (even the urgency rule's) keeps the bid below the current base fee."""


class NonceUsed(TxFailed):
    """Not sent, or never mined: another transaction of the same key took the nonce."""


class MinedReverted(TxFailed):
    """Mined, and its receipt says it reverted (``tx_hash`` at ``block``): it cost gas, did nothing."""

    def __init__(self, message: str, *, tx_hash: str, block: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.tx_hash = tx_hash
        self.block = block


class Reverted(KeeperError):
    """A call or a transaction reverted. ``reason`` is the decoded error name when known."""

    exit_code = 5

    def __init__(self, message: str, *, reason: str | None = None, data: bytes | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason
        self.data = data


class Halt(KeeperError):
    """Stop the keeper cleanly: circuit breaker tripped, or the operator asked."""

    exit_code = 6


class KeyShared(Halt):
    """Another process sends with the keeper's key (a second keeper on another store, a wallet): its
    nonces race ours and the two can act twice. Fatal: the keeper stops acting."""
