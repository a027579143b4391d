"""``keeper plan`` (what the keeper would do now, and why; nothing sent) and ``keeper rebalance``
(an operator's action on one position: planned, simulated with ``eth_call``, and with ``--execute``
journaled, sent through the vault, waited for, and re-read)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from keeper.app.books import VaultBook, asset_params, plan_books, policy_from, read_books
from keeper.app.risk_setup import model_for
from keeper.app.session import one_chain
from keeper.app.wiring import build_reader
from keeper.chain.client import ChainClient
from keeper.chain.contracts import ours
from keeper.chain.fees import GWEI, FeePolicy
from keeper.chain.keys import HotKey, load_key
from keeper.chain.revert import decode
from keeper.chain.tx import Attempt, TxOutcome, TxSender
from keeper.config import Config
from keeper.domain import Action, ActionKind, Address, Position, Reason, Side
from keeper.errors import ConfigError, Reverted
from keeper.names import Names
from keeper.plan.planner import levels_of
from keeper.plan.policy import Plan, Policy
from keeper.plan.sizing import largest_withdrawal, smallest_to_target
from keeper.plan.whatif import AssetParams, simulate, weight_for
from keeper.protocols.reader import ChainReader, Snapshot
from keeper.protocols.vault_calls import vault_request
from keeper.risk.first_loss import first_loss_view
from keeper.risk.model import RiskModel
from keeper.store import Store
from keeper.store.journal import AttemptRecord, Journal
from keeper.views import shown_address

if TYPE_CHECKING:
    from keeper.app.reconcile import ReconcileReport

SEL_KEEPER = keccak(text="keeper()")[:4]


@dataclass
class Session:
    chain: str
    client: ChainClient
    reader: ChainReader
    snap: Snapshot
    assets: list[AssetParams]
    books: list[VaultBook]
    risk: RiskModel
    policy: Policy
    warnings: list[str] = field(default_factory=list)  # the model's defaults (default vols, built-in law)

    def close(self) -> None:
        self.reader.mc.close()


def open_session(cfg: Config, chain: str | None, *, price_files: Sequence[Path] = (),
                 vols: dict[str, float] | None = None) -> Session:
    name, ccfg, client = one_chain(cfg, chain)
    reader = build_reader(name, ccfg, client=client)
    snap = reader.read()
    assets = asset_params(reader, snap)
    books = read_books(reader, snap, ccfg, assets)
    policy = policy_from(cfg)
    risk, warnings = model_for(cfg, snap.positions, reader=reader, block=snap.block, price_files=price_files,
                               overrides=vols, assets=assets)
    return Session(name, client, reader, snap, assets, books, risk, policy, warnings)


def plan_now(session: Session) -> list[tuple[VaultBook, Plan]]:
    return list(plan_books(session.books, session.risk, session.assets, session.policy, session.snap.block))


def why_no_action(session: Session, plans: Sequence[tuple[VaultBook, Plan]], pos: Position) -> list[str]:
    """Why the planner chose no action on ``pos``: its ``skipped`` entries for it, an action of
    another position's that protects it, or (no entry at all) where its P stands against the budget."""
    why = [w for _, p in plans for key, w in p.skipped if key == pos.key]
    why += [f"the planner protects it with {a.kind.value} {a.amount:,.6g} {a.asset.symbol} from {a.position_key}"
            for _, p in plans for a in p.actions if a.target_key == pos.key]
    if why:
        return why
    known = [p.p_liq[pos.key] for _, p in plans if pos.key in p.p_liq]
    p_liq = known[0] if known else session.risk.p_liq(first_loss_view(pos))
    policy = session.policy
    if p_liq <= policy.epsilon:
        where = f"P(liq {policy.horizon_hours:g}h) {p_liq:.3%} <= budget {policy.epsilon:.2%}"
        if not known:
            return [f"inside its risk budget: {where} (nothing borrowed, no open size)"]
        release = levels_of(session.risk, policy, pos)[1]
        return [f"inside its risk budget: {where}, and above the release level {release:.3%}: nothing to release"]
    return [f"P(liq {policy.horizon_hours:g}h) {p_liq:.3%} > budget {policy.epsilon:.2%}, "
            f"yet the planner gave no reason"]


def find(session: Session, selector: str,
         labels: Mapping[Address, str] | None = None) -> tuple[Position, VaultBook]:
    """A position a configured vault acts for, by its name as ``status`` shows it (``bob-aave``; any
    case), its key, or a unique fragment of the key (``0x15d34a:aave``). ``labels``: address -> label,
    as config gives them (without them, names use short addresses)."""
    pos, book = find_any(session, selector, labels, watch_only=False)
    assert book is not None
    return pos, book


def find_any(session: Session, selector: str, labels: Mapping[Address, str] | None = None, *,
             watch_only: bool = True) -> tuple[Position, VaultBook | None]:
    """As :func:`find`; ``watch_only``: a position no vault acts for is found too (its book None)."""
    names = Names.of(session.snap.positions, labels)
    book_of = {p.key: book for book in session.books for p in book.positions}
    hits = names.match(selector)
    if not hits:
        close = names.closest(selector)
        raise ConfigError(f"no position named {selector!r} on {session.chain}"
                          + (f"; closest: {', '.join(close)}" if close else ""),
                          hint="'keeper status' shows every position's name")
    acted = [p for p in hits if p.key in book_of]
    if len(acted) == 1:
        return acted[0], book_of[acted[0].key]
    shown = [names.name(p) for p in (acted or hits)]
    listed = ", ".join(shown[:4]) + (", ..." if len(shown) > 4 else "")
    if acted:
        raise ConfigError(f"{selector!r} matches {len(acted)} positions: {listed}; give one name")
    if len(hits) == 1 and watch_only:
        return hits[0], None
    if len(hits) == 1:
        raise ConfigError(f"{listed} is watch-only: no vault acts for it",
                          hint="configure a vault for its account to act on it")
    raise ConfigError(f"{selector!r} matches {len(hits)} watch-only positions ({listed}): no vault acts for them")


def _params_by_symbol(session: Session, symbol: str) -> AssetParams:
    for a in session.assets:
        # an operator's word: a symbol in any case, or the address in any case (the boundary)
        if a.symbol.lower() == symbol.lower() or a.address == symbol.lower():
            return a
    raise ConfigError(f"unknown asset {symbol!r}; known: {', '.join(a.symbol for a in session.assets)}")


def manual_action(session: Session, pos: Position, book: VaultBook, *, target_health: float | None = None,
                  amount: float | None = None, asset: str | None = None, withdraw_excess: bool = False,
                  name: str | None = None) -> Action:
    """The action an operator asked for, sized and checked against the vault's reserve. ``name``:
    the position's name as the operator knows it (errors use it; default: its short name)."""
    risk, policy = session.risk, session.policy
    name = name or Names.of(session.snap.positions).name(pos)
    def p_first_loss(q: Position) -> float:
        return risk.p_liq(first_loss_view(q))

    p0 = p_first_loss(pos)
    target = levels_of(risk, policy, pos)[0]

    def reason(after: Position, note: str) -> Reason:
        return Reason(p0, p_first_loss(after), pos.health, after.health, policy.epsilon, policy.horizon_hours,
                      risk.describe(), note)

    if not pos.price_ok:
        raise ConfigError(f"{name}: price not usable ({pos.price_issue}); the keeper does not act on it")
    if withdraw_excess:
        candidates = ([_params_by_symbol(session, asset)] if asset else
                      [a for a in session.assets if any(leg.asset.address == a.address
                                                        for leg in pos.legs_on(Side.COLLATERAL))])
        if pos.perp is not None:
            from keeper.plan.whatif import perp_collateral_address

            candidates = [a for a in session.assets if a.address == perp_collateral_address(pos)]
        floor = book.floors.get(pos.key, policy.default_health_floor) * (1 + policy.floor_margin)
        best = None
        for params in candidates:
            opt = largest_withdrawal(pos, params, p_first_loss, target, floor)
            if opt is not None and opt.raw > 0 and (best is None or opt.value_usd > best.value_usd):
                best = opt
        if best is None:
            raise ConfigError(f"{name}: no excess to release "
                              f"(P {p0:.2e}, health {pos.health:.4f}, floor {floor:.3f})")
        amt = best.raw / 10**30 if pos.perp is not None else best.raw / best.params.unit
        return Action(ActionKind.WITHDRAW_EXCESS, pos.key, best.params.asset, amt, best.raw,
                      reason(best.after, f"operator: release excess down to P <= {target:.2e} and the floor"),
                      usd=best.value_usd)
    if amount is not None:
        if asset is None:
            raise ConfigError("--amount needs an asset: --amount 1.5 WETH")
        params = _params_by_symbol(session, asset)
        raw = -(-round(amount * params.unit * 10**6) // 10**6)  # toward safety: up
        is_debt = any(leg.asset.address == params.address for leg in pos.legs_on(Side.DEBT))
        kind = ActionKind.REPAY if is_debt else ActionKind.TOP_UP
        if kind is ActionKind.TOP_UP and pos.perp is None and not weight_for(params, pos):
            raise ConfigError(f"{params.symbol} is not collateral for {name}")
        after = simulate(pos, kind, params, raw)
        action = Action(kind, pos.key, params.asset, amount, raw, reason(after, "operator: fixed amount"),
                        usd=amount * params.price_usd)
    else:
        goal = target_health if target_health is not None else None
        options = []
        for params in session.assets:
            kinds = []
            if any(leg.asset.address == params.address and leg.amount_raw
                   for leg in pos.legs_on(Side.DEBT)):
                kinds.append(ActionKind.REPAY)
            if (weight_for(params, pos) or 0) > 0:
                kinds.append(ActionKind.TOP_UP)
            for kind in kinds:
                if goal is not None:
                    opt = smallest_to_target(pos, kind, params, lambda q: 0.0 if q.health >= goal else 1.0, 0.5)
                else:
                    opt = smallest_to_target(pos, kind, params, p_first_loss, target)
                if opt is not None:
                    options.append(opt)
        reserve = book.reserve
        assert reserve is not None  # read_books reads every vault's reserve
        options = [o for o in options if o.raw <= reserve.get(o.params.address)] or options
        if not options:
            raise ConfigError(f"{name}: no asset the vault could add reaches the target")
        best = min(options, key=lambda o: o.cost_usd)
        note = (f"operator: to health {goal:g}" if goal is not None else f"operator: to P <= {target:.2e}")
        action = Action(best.kind, pos.key, best.params.asset, best.raw / best.params.unit, best.raw,
                        reason(best.after, note), usd=best.value_usd)
    if action.kind in (ActionKind.TOP_UP, ActionKind.REPAY):
        assert book.reserve is not None  # read_books reads every vault's reserve
        held = book.reserve.get(action.asset.address)
        if action.amount_raw > held:
            raise ConfigError(f"reserve too small: vault {shown_address(book.vault)} holds "
                              f"{held / 10**action.asset.decimals:g} {action.asset.symbol}, "
                              f"the action needs {action.amount:g}")
    return action


def fee_policy(cfg: Config) -> FeePolicy:
    f = cfg.fees

    def g(x: float) -> int:
        return int(x * GWEI)

    return FeePolicy(min_priority_fee=g(f.min_priority_fee_gwei), max_priority_fee=g(f.max_priority_fee_gwei),
                     max_fee_cap=g(f.max_fee_gwei), max_priority_fee_cap=g(f.max_priority_fee_cap_gwei),
                     urgent_threshold=f.urgent_threshold,
                     urgent_max_fee_cap=None if f.urgent_max_fee_gwei is None else g(f.urgent_max_fee_gwei))


def chain_id_of(session: Session) -> int:
    """The chain id of the session's client (``one_chain`` connected it, which sets it)."""
    chain_id = session.client.expected_chain_id
    assert chain_id is not None, "the session's client is connected"
    return chain_id


def has_key(cfg: Config) -> bool:
    """Whether a keeper key source is configured (the key itself is not loaded)."""
    k = cfg.keeper
    return bool(k.key_env or k.key_file or k.keystore)


def keeper_key(cfg: Config, chain_id: int) -> HotKey:
    if not has_key(cfg):
        raise ConfigError("no keeper key configured",
                          hint="set keeper.key_env in config.toml, or export KEEPER__KEEPER__KEY_ENV, to the name of "
                               "the environment variable holding the key (or key_file, or keystore and password_file)")
    k = cfg.keeper
    return load_key(env_var=k.key_env, key_file=k.key_file, keystore=k.keystore, password_file=k.password_file,
                    chain_id=chain_id)


def sender_for(cfg: Config, session: Session, journal: Journal | None, entry_id: int | None, *,
               key: HotKey | None = None) -> TxSender:
    key = key or keeper_key(cfg, chain_id_of(session))

    def on_signed(out: TxOutcome, attempt: Attempt) -> None:
        if journal is not None and entry_id is not None:
            journal.record_attempt(entry_id, AttemptRecord(attempt.nonce, attempt.tx_hash, "0x" + attempt.raw.hex(),
                                                           attempt.bid.max_fee_per_gas,
                                                           attempt.bid.max_priority_fee_per_gas))

    return TxSender(session.client, key, chain_id_of(session), fee_policy(cfg),
                    abis=[ours("KeeperVault").abi], bump_after_blocks=cfg.fees.bump_after_blocks,
                    on_signed=on_signed)


def vault_keeper(session: Session, vault: Address) -> str:
    """The vault's ``keeper()`` as the chain has it now: the only address its keeper calls accept."""
    try:
        out = session.client.request("eth_call", [{"to": vault, "data": "0x" + SEL_KEEPER.hex()}, "latest"])
    except Reverted as e:
        raise ConfigError(f"vault {shown_address(vault)}: keeper() reverted: is it a KeeperVault?") from e
    data = bytes.fromhex(str(out)[2:])
    if len(data) < 32:
        raise ConfigError(f"vault {shown_address(vault)}: keeper() returned {len(data)} bytes: is it a KeeperVault?")
    return to_checksum_address(data[12:32])


def simulate_on_chain(cfg: Config, session: Session, book: VaultBook, action: Action, *,
                      with_key: bool = True) -> str:
    """``eth_call`` as the keeper: a guardrail or protocol revert raises ``Reverted`` (decoded).
    ``with_key``: from the configured key's address (loaded); otherwise from the vault's own
    ``keeper()``, read on chain, with no key at all (a dry run). Returns the ``from`` address."""
    req = vault_request(book.vault, action, {p.key: p for p in book.positions})
    if with_key:
        sender = sender_for(cfg, session, None, None)
        sender.simulate(req)
        return sender.key.address
    keeper = vault_keeper(session, book.vault)
    call = {"from": keeper, "to": req.to, "data": "0x" + req.data.hex(), "value": hex(req.value)}
    try:
        # "pending": the next block's environment, where a sent transaction would land (as TxSender).
        session.client.request("eth_call", [call, "pending"])
    except Reverted as e:
        reason = decode(e.data, [ours("KeeperVault").abi])
        raise Reverted(f"{req.label or 'transaction'} would revert: {reason}", reason=reason.name,
                       data=e.data) from e
    return keeper


def reconcile_journal(cfg: Config, session: Session, *, wait: bool = True, keyless: bool = False,
                      key: HotKey | None = None) -> ReconcileReport:
    """Start-up reconciliation (before any new action): settle or resend what a previous run left.
    ``keyless``: when no key is configured, go on without one: receipts settle entries, each
    entry's nonce is checked against the signer of its own journaled bytes, and re-sending those
    same signed bytes needs no key (nothing is signed here). ``key``: the key loaded already (the
    daemon's: a keystore is not decrypted twice)."""
    from keeper.app.reconcile import reconcile, wait_pending

    if key is not None:
        address: str | None = key.address
    else:
        address = None if keyless and not has_key(cfg) else keeper_key(cfg, chain_id_of(session)).address
    with Store.open(cfg.store.url) as store:
        journal = Journal(store)
        report = reconcile(journal, session.client, session.chain, address)
        if wait and report.rebroadcast:
            settled = wait_pending(journal, session.client, session.chain, address)
            report.mined += settled.mined
            report.reverted += settled.reverted
            report.failed += settled.failed
            report.rebroadcast = settled.rebroadcast
    return report
