"""Argument types and option groups shared by the commands: each rejects bad input with one line
(argparse's exit 2) before anything runs."""

from __future__ import annotations

import argparse
import math
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


def positive_float(text: str) -> float:
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or a positive number: {text!r}")
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
    p.add_argument("--vol", action="append", default=[], metavar="SYMBOL=ANNUAL", help="override an asset's vol")


def vol_overrides(items: list[str]) -> dict[str, float]:
    vols = {}
    for item in items:
        sym, _, val = item.partition("=")
        try:
            vols[sym] = float(val)
        except ValueError:
            raise ConfigError(f"--vol {item!r}: expected SYMBOL=ANNUAL, e.g. WETH=0.9") from None
    return vols
