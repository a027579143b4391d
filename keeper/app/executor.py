"""What the daemon's tick drives (:class:`Executor`): the one execution pipeline
(:class:`keeper.app.execution.Pipeline`), or the dry run's null executor (:class:`DryRun`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from keeper.app.books import VaultBook
from keeper.app.items import Item
from keeper.domain import Action

if TYPE_CHECKING:
    from keeper.app.manual import Session


class Executor(Protocol):
    """What the daemon's tick drives: the :class:`Pipeline`, or :class:`DryRun`. ``timings``: the
    current run's seconds per step (reset by ``begin``)."""

    timings: dict[str, float]

    def begin(self, block: int) -> None: ...
    def add(self, session: Session, book: VaultBook, action: Action) -> Item | None: ...
    def step(self, remaining: int | None = None) -> None: ...
    def flush(self, *, ready_only: bool = False) -> list[Item]: ...
    def finish(self) -> None: ...
    def settle_all(self, items: Sequence[Item]) -> None: ...
    def close(self) -> None: ...


class DryRun:
    """The null executor (``keeper run --dry-run``): the daemon reads and plans exactly as it would
    act, and :meth:`add` takes nothing (``None``: the caller logs what it would have done)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def begin(self, block: int) -> None:
        return None

    def add(self, session: Session, book: VaultBook, action: Action) -> Item | None:
        return None

    def step(self, remaining: int | None = None) -> None:
        return None

    def flush(self, *, ready_only: bool = False) -> list[Item]:
        return []

    def finish(self) -> None:
        return None

    def settle_all(self, items: Sequence[Item]) -> None:
        return None

    def close(self) -> None:
        return None
