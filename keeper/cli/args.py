"""Argument types and option groups shared by the commands: each rejects bad input with one line
(argparse's exit 2) before anything runs."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

from keeper.errors import ConfigError

# What ``register`` of each command module receives: ``ArgumentParser.add_subparsers()``.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def whole_seconds(text: str) -> int:
    """A non-negative whole number of seconds ("2", "2.0"): anvil's interval mining takes no fractions."""
    value = _finite(text)
    if value < 0 or value != int(value):
        raise argparse.ArgumentTypeError(f"must be a whole number of seconds, 0 or more: {text!r}")
    return int(value)


def positive_float(text: str) -> float:
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


# The highest price ``keeper devnet price`` sets: far above any asset's, low enough for any feed.
MAX_FEED_PRICE = 1e12


def feed_price(text: str) -> float:
    """A USD price for a devnet feed: finite, > 0 and <= ``MAX_FEED_PRICE``."""
    value = _finite(text)
    if not 0 < value <= MAX_FEED_PRICE:
        raise argparse.ArgumentTypeError(f"{text!r}: a USD price must be positive and at most 1e12")
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be within 1-65535: {value}")
    return value


def add_model_inputs(p: argparse.ArgumentParser) -> None:
    """``--prices`` and ``--vol``: what the risk model reads besides the chain."""
    p.add_argument("--prices", nargs="*", type=Path, default=(), help="hourly CSVs for the vol forecast")
    p.add_argument("--vol", action="append", type=vol_item, default=[], metavar="SYMBOL=ANNUAL",
                   help=f"override an asset's annualised vol, e.g. WETH=0.9 (0 < ANNUAL <= {MAX_ANNUAL_VOL:g})")


# The largest annualised vol an override may name: 20 = 2000%/yr, far above any asset's realised vol
# (a vol beyond it is a typo, e.g. a percentage given as a fraction's 100x).
MAX_ANNUAL_VOL = 20.0


def vol_item(text: str) -> tuple[str, float]:
    """``--vol SYMBOL=ANNUAL`` as an argparse ``type``: a non-empty symbol and an annualised vol,
    finite, > 0 and <= ``MAX_ANNUAL_VOL``."""
    sym, eq, val = text.partition("=")
    sym = sym.strip()
    if not eq or not sym:
        raise argparse.ArgumentTypeError(f"expected SYMBOL=ANNUAL, e.g. WETH=0.9, got {text!r}")
    try:
        vol = float(val)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: ANNUAL is not a number (expected SYMBOL=ANNUAL, "
                                         f"e.g. WETH=0.9)") from None
    if not (math.isfinite(vol) and 0 < vol <= MAX_ANNUAL_VOL):
        raise argparse.ArgumentTypeError(f"{text!r}: ANNUAL must be within 0 < ANNUAL <= {MAX_ANNUAL_VOL:g} "
                                         f"(0-{MAX_ANNUAL_VOL:.0%}/yr), e.g. WETH=0.9")
    return sym, vol


def vol_overrides(items: Sequence[tuple[str, float] | str]) -> dict[str, float]:
    """``--vol`` values (already checked by :func:`vol_item`; a raw string is checked here, a bad
    one raising ``ConfigError``) as ``{symbol: annual vol}``; a later one for a symbol wins."""
    vols = {}
    for item in items:
        if isinstance(item, str):
            try:
                item = vol_item(item)
            except argparse.ArgumentTypeError as e:
                raise ConfigError(f"--vol: {e}") from None
        sym, vol = item
        vols[sym] = vol
    return vols
