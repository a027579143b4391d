"""Frozen dataclasses shared by every layer: what a position is, independent of the protocol.

Floats (USD, token units) for ``risk``/``plan``; the exact integers the protocol computed are kept
alongside (``health_wad`` and each leg's ``amount_raw``) so decisions can be checked against the
chain to the wei."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Final, TypeVar

_HEX40 = re.compile(r"0x[0-9a-f]{40}")


class Address(str):
    """The one form of an address inside the keeper: ``0x`` and 40 lower-case hex digits.

    Built where an address comes in (config, deployment files, CLI arguments, data decoded from the
    chain) and compared as is everywhere else: no ``.lower()`` on either side. Lower case, not EIP-55,
    because a checksum costs a keccak and the read path builds tens of thousands of these per block;
    operator-facing text shows the checksum (``keeper.views.shown_address``). Being a ``str``, it goes
    into eth_abi, JSON, SQL and f-strings unchanged, and equals the plain lower-case string."""

    __slots__ = ()

    def __new__(cls, value: str) -> Address:
        if type(value) is cls:
            return value
        if isinstance(value, str):
            low = value.lower()
            if _HEX40.fullmatch(low):
                return str.__new__(cls, low)
        raise ValueError(f"not an address (0x + 40 hex digits): {value!r}")


ZERO_ADDRESS: Final = Address("0x" + "00" * 20)

# GMX v1 counts perp collateral in USD (1e30); its legs hold this pseudo-asset, which is no token and
# has no feed. The one Address that is not 0x + 40 hex (built past the check, on purpose).
USD_ADDRESS: Final[Address] = str.__new__(Address, "usd")


class Protocol(StrEnum):
    AAVE_V3 = "aave_v3"
    MORPHO_BLUE = "morpho_blue"
    PERP = "perp"


class Side(StrEnum):
    COLLATERAL = "collateral"
    DEBT = "debt"


WAD = 10**18

_T = TypeVar("_T")
_FIELDS: dict[type, frozenset[str]] = {}


def evolved(obj: _T, **changes: Any) -> _T:
    """``dataclasses.replace`` for the domain's frozen dataclasses, which have no ``__post_init__``,
    no init-only fields and no cached values: a copy of the instance's fields with ``changes`` set.
    About five times faster than ``replace`` (which inspects the class every call); the planner builds
    tens of thousands of what-if positions and legs per tick. Unknown field names raise."""
    cls = type(obj)
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = frozenset(f.name for f in fields(cls))  # type: ignore[arg-type]
    if not names.issuperset(changes):
        raise TypeError(f"{cls.__name__} has no field {sorted(set(changes) - names)[0]!r}")
    new = object.__new__(cls)
    new.__dict__.update(obj.__dict__)
    new.__dict__.update(changes)
    return new
MAX_UINT256 = 2**256 - 1


@dataclass(frozen=True)
class Asset:
    symbol: str
    address: Address
    decimals: int


USD_ASSET: Final = Asset("USD", USD_ADDRESS, 30)


@dataclass(frozen=True)
class Leg:
    """One asset of a position.

    ``liquidation_weight`` is what the protocol counts of this collateral at liquidation: Aave's
    liquidation threshold, Morpho's LLTV (1.0 for debt legs). ``price_usd`` is the price the
    protocol itself uses (Aave's oracle, Morpho's oracle converted to USD, the perp vault's)."""

    asset: Asset
    side: Side
    amount_raw: int
    price_usd: float
    liquidation_weight: float = 1.0

    @property
    def amount(self) -> float:
        scale: int = 10**self.asset.decimals
        return self.amount_raw / scale

    @property
    def value_usd(self) -> float:
        return self.amount * self.price_usd


@dataclass(frozen=True)
class PerpTerms:
    """Isolated-margin perp details (GMX v1 units converted to USD floats)."""

    index: Asset
    is_long: bool
    size_usd: float
    collateral_usd: float
    average_price: float
    mark_price: float
    margin_fees_usd: float  # funding + closing fee as validateLiquidation counts them
    liquidation_fee_usd: float
    max_leverage: float  # e.g. 50.0
    liquidation_state: int  # validateLiquidation: 0 ok, 1 liquidatable, 2 over max leverage
    # GMX PositionRouter's depositFee (GMX uses 30): charged on collateral added to a long with
    # sizeDelta 0 (PositionUtils.shouldDeductFee); shorts pay none. 0 = no fee.
    deposit_fee_bps: int = 0
    # The most collateral (USD) GMX itself lets leave by decreasePosition now: it validates the rest
    # with ``_raise`` (profit not counted) at the Vault's current margin fee (5% at rest on gated
    # GMX v1, not the execution fee liquidations use). None: not known (no limit beyond health).
    release_cap_usd: float | None = None
    # GMX's margin fee on size changes where the keeper changes size (inside PositionRouter executions
    # on gated GMX v1, the Vault's own in direct mode): the closing fee ``margin_fees_usd`` counts.
    margin_fee_bps: int = 0


@dataclass(frozen=True)
class PreLiqTerms:
    """A Morpho pre-liquidation the borrower authorised on this position (Morpho's PreLiquidation
    contract, its immutable parameters as fractions): once the LTV passes ``pre_lltv`` anyone may repay
    up to a close factor (``pre_lcf1`` at ``pre_lltv`` rising to ``pre_lcf2`` at the LLTV) for collateral
    at an incentive (``pre_lif1`` rising to ``pre_lif2``)."""

    address: Address
    pre_lltv: float
    pre_lcf1: float
    pre_lcf2: float
    pre_lif1: float
    pre_lif2: float


@dataclass(frozen=True)
class Position:
    """A collateralised position as read at ``block``.

    ``health`` is 1.0 at the liquidation boundary (inf without debt); ``health_wad`` is the same at
    1e18 fixed point exactly as the protocol computes it (MAX_UINT256 without debt)."""

    chain: str
    protocol: Protocol
    protocol_address: Address
    account: Address
    market: str  # Aave: "pool"; Morpho: market id; perp: "<collateral>:<index>:<long|short>"
    legs: tuple[Leg, ...]
    health_wad: int
    block: int
    perp: PerpTerms | None = None
    price_ok: bool = True
    price_issue: str | None = None
    label: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    preliq: PreLiqTerms | None = None  # Morpho: an authorised pre-liquidation (its first loss comes at pre_lltv)

    @property
    def key(self) -> str:
        return f"{self.chain}:{self.protocol}:{self.protocol_address}:{self.account}:{self.market}".lower()

    @property
    def health(self) -> float:
        return math.inf if self.health_wad >= MAX_UINT256 else self.health_wad / WAD

    @property
    def liquidatable(self) -> bool:
        return self.health_wad < WAD

    @property
    def collateral_usd(self) -> float:
        if self.perp is not None:
            return self.perp.collateral_usd
        return sum(leg.value_usd for leg in self.legs if leg.side is Side.COLLATERAL)

    @property
    def debt_usd(self) -> float:
        if self.perp is not None:
            return self.perp.size_usd
        return sum(leg.value_usd for leg in self.legs if leg.side is Side.DEBT)

    def legs_on(self, side: Side) -> tuple[Leg, ...]:
        return tuple(leg for leg in self.legs if leg.side is side)


class ActionKind(StrEnum):
    TOP_UP = "top_up"  # add collateral (lending) or margin (perp) from the reserve
    REPAY = "repay"  # repay debt from the reserve
    WITHDRAW_EXCESS = "withdraw_excess"  # release collateral/margin back to the reserve
    REBALANCE = "rebalance"  # move collateral from a safe position to an endangered one
    # GMX v1 gated deployments: the vault executes or cancels its own late PositionRouter request
    EXECUTE_REQUEST = "execute_request"
    CANCEL_REQUEST = "cancel_request"
    # repay debt with the position's own collateral: a flash loan, the repayment, the collateral sold
    DELEVERAGE = "deleverage"


@dataclass(frozen=True)
class Reason:
    """Why an action: the forecast before and after, so every decision can be explained."""

    p_before: float  # P(liquidation within the horizon) now
    p_after: float  # ... once the action lands
    health_before: float
    health_after: float
    epsilon: float  # the risk budget
    horizon_hours: float
    model: str  # which forecast, e.g. "analytic student-t, vol 62%/yr"
    note: str = ""


@dataclass(frozen=True)
class Swap:
    """A DELEVERAGE's sale: ``sell_raw`` of ``collateral`` sold in ``pool`` for at least ``min_out_raw`` of
    the action's asset, the repayment borrowed from ``flash_source``; ``loss_usd`` is the estimated
    pool fee, price impact and flash fee."""

    collateral: Asset
    sell_raw: int
    min_out_raw: int
    pool: Address
    flash_source: Address
    loss_usd: float


@dataclass(frozen=True)
class Action:
    """One planned keeper action. ``amount_raw`` is in the asset's base units, rounded toward
    safety: top-ups and repayments up, withdrawals down. For perps, a withdrawal's ``amount_raw``
    is the USD collateral delta at 1e30 (GMX v1's unit) and ``asset`` the collateral token."""

    kind: ActionKind
    position_key: str
    asset: Asset
    amount: float
    amount_raw: int
    reason: Reason
    target_key: str | None = None  # REBALANCE: the position receiving the collateral
    usd: float = 0.0  # the amount's value, for budgets and reports
    request_key: str | None = None  # EXECUTE_REQUEST / CANCEL_REQUEST: the PositionRouter request
    request_decrease: bool = False  # ... a decrease request (a perp deleverage), not a margin increase
    swap: Swap | None = None  # DELEVERAGE: what is sold, where, and the flash source
