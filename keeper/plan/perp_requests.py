"""What to do about a GMX v1 PositionRouter request the keeper made (pure: no web3, no clock).

On a gated GMX v1 deployment a margin top-up is a request (``createIncreasePosition``) that GMX's
position keepers execute a block or more later. Until then the position has not received the
margin: the keeper must not ask again, and it must notice when nobody executes the request.

GMX's own rules (``PositionRouter._validateExecutionOrCancellation``, ``_validateExecution``):

- a position keeper may execute (or, when execution fails, cancel) once ``minBlockDelayKeeper``
  blocks have passed;
- the request's own account (here the KeeperVault) may execute or cancel it itself once
  ``minTimeDelayPublic`` seconds have passed, but only while the PositionRouter's own
  ``isLeverageEnabled`` is on (GMX's switch for public execution);
- execution reverts ("expired") once ``maxTimeDelay`` seconds have passed; only a cancel is left,
  which returns the collateral to the account and the execution fee to whoever cancels.

:func:`next_step` turns that into one decision per request and block: wait, report it stuck (with
the reason nothing can be done yet), execute it from the vault, or cancel it from the vault (the
planner may then ask again)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from keeper.domain import Address


@dataclass(frozen=True)
class PendingRequest:
    """A PositionRouter request still stored (neither executed nor cancelled): an increase (margin), or
    a decrease (``decrease``: size taken off, ``amount_raw`` 0)."""

    key: str  # the request key, 0x + 64 hex
    account: Address  # the request's account: the KeeperVault
    collateral_token: Address
    index_token: Address
    is_long: bool
    amount_raw: int  # collateral tokens held by the PositionRouter
    size_delta: int  # USD at 1e30 (the keeper's requests always carry 0)
    execution_fee: int  # wei
    block: int  # the block it was created in
    timestamp: int
    decrease: bool = False  # a decrease request (the keeper's: size only, a perp deleverage)

    @property
    def market(self) -> str:
        """The perp market key (``Position.market``) the request adds to."""
        return f"{self.collateral_token}:{self.index_token}:{'long' if self.is_long else 'short'}"


@dataclass(frozen=True)
class RouterRules:
    """A PositionRouter's delays (its public getters)."""

    min_block_delay_keeper: int
    min_time_delay_public: int  # seconds
    max_time_delay: int  # seconds
    public_enabled: bool  # the PositionRouter's isLeverageEnabled: accounts may execute/cancel their own


class Step(Enum):
    WAIT = "wait"  # within the expected latency
    STUCK = "stuck"  # late, and the vault cannot do anything about it yet (the reason says why)
    EXECUTE = "execute"  # late: the vault executes it itself (executePerpRequest / executePerpDecrease)
    CANCEL = "cancel"  # expired: the vault cancels it (cancelPerp...) and gets the collateral (or fee) back


@dataclass(frozen=True)
class Decision:
    step: Step
    why: str
    age_blocks: int
    age_seconds: int


def next_step(req: PendingRequest, head_block: int, head_time: int, rules: RouterRules,
              timeout_blocks: int) -> Decision:
    """What to do about ``req`` at the head: see the module doc. ``timeout_blocks``: the keeper's
    patience (``perp.request_timeout_blocks``) before it calls a request stuck."""
    age_b, age_s = max(0, head_block - req.block), max(0, head_time - req.timestamp)

    def d(step: Step, why: str) -> Decision:
        return Decision(step, why, age_b, age_s)

    public_in = req.timestamp + rules.min_time_delay_public - head_time
    if age_s >= rules.max_time_delay:
        if not rules.public_enabled:
            return d(Step.STUCK, f"expired after {age_s} s and the PositionRouter allows no public cancel: only "
                                 "GMX's position keepers can return the collateral")
        if public_in > 0:
            return d(Step.STUCK, f"expired after {age_s} s; the vault may cancel it in {public_in} s")
        return d(Step.CANCEL, f"expired after {age_s} s (maxTimeDelay {rules.max_time_delay} s): cancelled from "
                              "the vault, the collateral comes back")
    if age_b <= timeout_blocks:
        return d(Step.WAIT, f"pending for {age_b} blocks")
    if not rules.public_enabled:
        return d(Step.STUCK, f"not executed after {age_b} blocks and the PositionRouter allows no public "
                             "execution: only GMX's position keepers can execute it")
    if public_in > 0:
        return d(Step.STUCK, f"not executed after {age_b} blocks; the vault may execute it itself in {public_in} s "
                             f"(minTimeDelayPublic {rules.min_time_delay_public} s)")
    return d(Step.EXECUTE, f"not executed after {age_b} blocks ({age_s} s): executed from the vault")
