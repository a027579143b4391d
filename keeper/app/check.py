"""``keeper check-config``: the config against the chain, down to what the keeper does every tick.

Per chain, in order (a step that needs an earlier one's result is left out when that one failed):

1. the RPC URLs' chain id, code at every configured contract, feeds answering ``latestRoundData``,
   each protocol adapter's metadata (``prepare``);
2. one full read of every configured account at one block, exactly as the daemon reads
   (``build_reader(...).read(block)``). An exception fails the chain's read. A position whose
   prices are unusable (``price_ok`` False: a stale or zero feed, Aave's "health unverified") fails
   by name, since the daemon never acts on it. A vault or owner account without any position is a
   warning, not a failure: a vault set up before its first position (or emptied) is normal, and the
   daemon picks positions up as they appear; but a mistyped address or ``protocols`` list looks the
   same, so it is shown (so is an owner account without a vault: it is only watched);
3. for every position a KeeperVault may act on (accounts with an ``acting_vault``), the vault's own
   ``health(ref)`` (for Aave once per asset of the position's legs: the vault's Aave ref names an
   asset) and its rule for that market (``markets``), with each acting vault's ``keeper()`` and
   ``paused()``: one Multicall3 batch (allowFailure) pinned to the read's block. A revert, an empty
   return, a position none of whose markets the vault allows, a vault that is paused or whose keeper
   is not the configured key: each fails, because the keeper could not act there;
4. for every perp position a vault may act on, the path its margin top-ups take on that GMX v1
   deployment (a PositionRouter request when leverage is gated, a direct increase otherwise) and
   whether it works (``check_perp``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eth_abi.abi import encode
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak

from keeper.app.check_perp import perp_paths
from keeper.app.session import chains_or_fail
from keeper.app.wiring import build_client, build_reader
from keeper.chain import revert
from keeper.chain.client import ChainClient
from keeper.chain.contracts import ours
from keeper.chain.keys import load_key
from keeper.chain.multicall import Call, Multicall, Result
from keeper.chain.oracle import LATEST_ROUND_DATA
from keeper.config import ChainConfig, Config, KeeperConfig
from keeper.domain import MAX_UINT256, WAD, Address, Asset, Position, Protocol, Side
from keeper.errors import KeeperError, Reverted
from keeper.names import position_names
from keeper.plan.whatif import perp_collateral_address
from keeper.protocols.base import address_word, word
from keeper.protocols.reader import ChainReader, Snapshot
from keeper.protocols.vault_calls import Ref, ref_for
from keeper.views import shown_address

REF_TYPE = "(uint8,address,bytes32,address)"
SEL_HEALTH = keccak(text=f"health({REF_TYPE})")[:4]
SEL_FLOOR_OF = keccak(text=f"floorOf({REF_TYPE})")[:4]  # -> the withdrawal floor, 0 when not allowed
SEL_RELEASE_CAP = keccak(text="releaseCaps(address)")[:4]
SEL_CAP_WINDOW = keccak(text="capWindow()")[:4]
SEL_KEEPER = keccak(text="keeper()")[:4]
SEL_PAUSED = keccak(text="paused()")[:4]
HEALTH_TOLERANCE = 0.01  # the vault's health and the keeper's read further apart than this: a warning


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    detail: str = ""
    warning: bool = False  # passed, but worth a look

    @property
    def mark(self) -> str:
        return "FAIL" if not self.ok else "warn" if self.warning else "ok  "


def check_config(cfg: Config) -> list[Check]:
    checks = [Check("config: schema and cross-field checks", True)]
    for name, ccfg in chains_or_fail(cfg).items():
        checks.extend(check_chain(name, ccfg, cfg.keeper))
    return checks


def check_chain(name: str, ccfg: ChainConfig, key: KeeperConfig | None = None) -> list[Check]:
    client = build_client(name, ccfg)
    try:
        cid = client.connect()
    except KeeperError as e:
        return [Check(f"{name}: chain id", False, str(e))]
    out = [Check(f"{name}: chain id", True, f"{cid} on {len(ccfg.rpc_urls)} RPC URL(s)")]
    out += _code(name, ccfg, client)
    if not all(c.ok for c in out):
        return out
    block = client.block_number()
    reader = build_reader(name, ccfg, client=client, verify_all=True)
    try:
        out += _feeds(name, ccfg, reader.mc, block)
        for adapter in reader.adapters:
            try:
                adapter.prepare(reader.mc, block)
                out.append(Check(f"{name}: {adapter.protocol.value} metadata", True))
            except KeeperError as e:  # a wrong contract reverts; a missing market is a ConfigError
                hint = f" (is every chains.{name}.{adapter.protocol.value} address the contract it names?)"
                out.append(Check(f"{name}: {adapter.protocol.value} metadata", False,
                                 _why(e) + (hint if isinstance(e, Reverted) else "")))
        snap = _read(name, ccfg, reader, block, out)
        if snap is not None:
            key_address = _key(name, ccfg, key, cid, out)
            out += _vaults(name, ccfg, reader.mc, snap, key_address)
    finally:
        reader.mc.close()
    return out


def _code(name: str, ccfg: ChainConfig, client: ChainClient) -> list[Check]:
    contracts = [("multicall", ccfg.multicall)]
    if ccfg.aave_v3:
        contracts += [("aave_v3.pool", ccfg.aave_v3.pool), ("aave_v3.data_provider", ccfg.aave_v3.data_provider),
                      ("aave_v3.oracle", ccfg.aave_v3.oracle)]
    if ccfg.morpho_blue:
        contracts.append(("morpho_blue.morpho", ccfg.morpho_blue.morpho))
    if ccfg.perp:
        contracts.append(("perp.vault", ccfg.perp.vault))
    contracts += [(f"feeds.{f}", fc.address) for f, fc in ccfg.feeds.items()]
    codes = client.batch([("eth_getCode", [addr, "latest"]) for _key, addr in contracts])  # one request
    out = []
    for (key, addr), code in zip(contracts, codes):
        ok = isinstance(code, str) and len(code) > 2
        shown = shown_address(addr)
        out.append(Check(f"{name}: {key}", ok, shown if ok else f"no contract at {shown}"))
    return out


def _feeds(name: str, ccfg: ChainConfig, mc: Multicall, block: int) -> list[Check]:
    if not ccfg.feeds:
        return []
    res = mc.call([Call(f.address, LATEST_ROUND_DATA) for f in ccfg.feeds.values()], block)
    out = []
    for (fname, f), r in zip(ccfg.feeds.items(), res):
        ok = r.success and len(r.data) == 160
        out.append(Check(f"{name}: feeds.{fname} answers latestRoundData", ok,
                         "" if ok else f"{shown_address(f.address)} is not a Chainlink aggregator"))
    return out


def _read(name: str, ccfg: ChainConfig, reader: ChainReader, block: int, out: list[Check]) -> Snapshot | None:
    """One read of every account as the daemon makes it; appends its checks to ``out``."""
    what = f"{name}: read of {len(reader.accounts)} account(s) at block {block}"
    try:
        snap = reader.read(block)
    except Exception as e:
        out.append(Check(what, False, _why(e)))
        return None
    counts: dict[str, int] = {}
    for p in snap.positions:
        counts[p.protocol.value] = counts.get(p.protocol.value, 0) + 1
    per = ", ".join(f"{k} {n}" for k, n in counts.items())
    out.append(Check(what, True, f"{len(snap.positions)} position(s)" + (f" ({per})" if per else "")))
    names = position_names(snap.positions, _labels(ccfg))
    for p in snap.positions:
        if not p.price_ok:
            out.append(Check(f"{name}: {describe(p, names)}", False,
                             f"{p.price_issue or 'price unusable'}: the keeper will not act on it"))
    held = {p.account for p in snap.positions}
    protocols = [a.protocol.value for a in reader.adapters]
    for a in ccfg.accounts:
        if a.kind == "owner" and a.vault is None:
            out.append(Check(f"{name}: owner account {a.label or shown_address(a.address)}", True,
                             "no vault configured: nothing acts for it, it is only watched", warning=True))
        if a.kind != "watch" and a.address not in held:
            on = [p for p in protocols if a.protocols is None or p in a.protocols]
            out.append(Check(f"{name}: {a.kind} account {a.label or shown_address(a.address)}", True,
                             f"no position on {', '.join(on) or 'any protocol (protocols is empty)'}: "
                             "nothing to protect yet, or a wrong address/protocols list", warning=True))
    return snap


def _key(name: str, ccfg: ChainConfig, key: KeeperConfig | None, chain_id: int, out: list[Check]) -> str | None:
    """The configured hot key's address (loaded as the daemon loads it), or None; appends a check."""
    acting = any(a.acting_vault for a in ccfg.accounts)
    if key is None or not (key.key_env or key.key_file or key.keystore):
        if acting:
            out.append(Check(f"{name}: keeper key", True, "none configured: vaults' keeper() not compared, and "
                                                          "'keeper run' needs one (keeper.key_env, key_file or "
                                                          "keystore)", warning=True))
        return None
    try:
        hot = load_key(env_var=key.key_env, key_file=key.key_file, keystore=key.keystore,
                       password_file=key.password_file, chain_id=chain_id)
    except KeeperError as e:
        out.append(Check(f"{name}: keeper key", False, str(e)))
        return None
    out.append(Check(f"{name}: keeper key", True, f"{hot.address} (from {hot.source})"))
    return hot.address


def _vaults(name: str, ccfg: ChainConfig, mc: Multicall, snap: Snapshot, key_address: str | None) -> list[Check]:
    names = position_names(snap.positions, _labels(ccfg))
    vault_of: dict[Address, Address] = {}
    serves: dict[Address, list[str]] = {}
    for a in ccfg.accounts:
        if a.acting_vault:
            vault_of[a.address] = a.acting_vault
            serves.setdefault(a.acting_vault, []).append(a.label or shown_address(a.address))
    if not serves:
        return []
    vaults = list(serves)
    calls = [c for v in vaults for c in (Call(v, SEL_KEEPER), Call(v, SEL_PAUSED))]
    jobs: list[tuple[Position, Address, list[tuple[str, Ref]]]] = []
    for p in snap.positions:
        v = vault_of.get(p.account)
        if v is not None:
            refs = _refs(p)
            jobs.append((p, v, refs))
            for _, ref in refs:
                calls.append(Call(v, SEL_HEALTH + encode([REF_TYPE], [ref.as_tuple()])))
                calls.append(Call(v, SEL_FLOOR_OF + encode([REF_TYPE], [ref.as_tuple()])))
    released = _released(snap.positions, vault_of)
    n_fixed = len(calls)
    for v in vaults:
        calls.append(Call(v, SEL_CAP_WINDOW))
        calls += [Call(v, SEL_RELEASE_CAP + encode(["address"], [a])) for a in released.get(v, {})]
    try:
        results = mc.call(calls, snap.block)
    except KeeperError as e:
        return [Check(f"{name}: vault calls at block {snap.block}", False, _why(e))]
    out = [_vault_check(name, v, serves[v], results[2 * i], results[2 * i + 1], key_address)
           for i, v in enumerate(vaults)]
    k = 2 * len(vaults)
    for p, v, refs in jobs:
        out.append(_health_check(name, describe(p, names), p, v, refs, results[k:k + 2 * len(refs)]))
        k += 2 * len(refs)
    k = n_fixed
    for v in vaults:
        assets = released.get(v, {})
        out.append(_release_check(name, v, assets, results[k], results[k + 1:k + 1 + len(assets)]))
        k += 1 + len(assets)
    paths = perp_paths(name, ccfg, mc, snap.positions, vault_of, lambda p: describe(p, names))
    return out + [Check(c.what, c.ok, c.detail, c.warning) for c in paths]


def _vault_check(name: str, vault: Address, serves: list[str], keeper_r: Result, paused_r: Result,
                 key_address: str | None) -> Check:
    what = f"{name}: vault {shown_address(vault)} (acts for {', '.join(serves)})"
    if not keeper_r.success or len(keeper_r.data) < 32:
        return Check(what, False, f"keeper() {_failure(keeper_r)}: is it a KeeperVault?")
    on_chain = address_word(keeper_r.data, 0)
    keeper = shown_address(on_chain)
    if paused_r.success and len(paused_r.data) >= 32 and word(paused_r.data, 0):
        return Check(what, False, "paused: it refuses every keeper call until its owner unpauses it")
    if key_address is not None and on_chain != Address(key_address):
        return Check(what, False, f"keeper() is {keeper}, the configured key is {key_address}: "
                                  "every keeper call would revert NotKeeper")
    return Check(what, True, f"keeper() {keeper}" + (" is the configured key" if key_address else "") + ", not paused")


def _released(positions: list[Position],
              vault_of: dict[Address, Address]) -> dict[Address, dict[Address, Asset | None]]:
    """vault -> {asset address: the asset, or None when only its address is known}: what its
    positions would release (collateral; a perp's collateral token)."""
    known = {leg.asset.address: leg.asset for p in positions for leg in p.legs}
    known.update({p.perp.index.address: p.perp.index for p in positions if p.perp is not None})
    out: dict[Address, dict[Address, Asset | None]] = {}
    for p in positions:
        v = vault_of.get(p.account)
        if v is None:
            continue
        addrs = ([perp_collateral_address(p)] if p.perp is not None
                 else [leg.asset.address for leg in p.legs_on(Side.COLLATERAL)])
        for a in addrs:
            out.setdefault(v, {})[a] = known.get(a)
    return out


def _release_check(name: str, vault: Address, assets: dict[Address, Asset | None], window_r: Result,
                   caps: list[Result]) -> Check:
    """What the vault's release windows let the keeper take out of positions: a warning for an asset
    it cannot release at all (0, the default) and for a vault without release windows (one older
    than this keeper)."""
    what = f"{name}: vault {shown_address(vault)} release windows"
    if not assets:
        return Check(what, True, "no position to release from")
    if not window_r.success or len(window_r.data) < 32 or any(not r.success or len(r.data) < 32 for r in caps):
        return Check(what, True, "releaseCaps() unreadable: a KeeperVault from before release windows? "
                                 "it bounds releases by its caps only", warning=True)
    hours = word(window_r.data, 0) / 3600
    parts, none = [], []
    rows = sorted(((asset.symbol if asset is not None else addr), asset, word(r.data, 0))
                  for (addr, asset), r in zip(assets.items(), caps))
    for label, asset, cap in rows:
        if cap == 0:
            none.append(label)
        else:
            parts.append(f"{label} {cap / 10**asset.decimals:g}" if asset is not None else f"{label} {cap} (raw)")
    detail = f"per {hours:g} h: " + (", ".join(parts) if parts else "nothing")
    if none:
        return Check(what, True, f"{detail}; the keeper cannot release {', '.join(none)} "
                                 "(owner: setReleaseCap)", warning=True)
    return Check(what, True, detail)


def _health_check(name: str, pos: str, p: Position, vault: Address, refs: list[tuple[str, Ref]],
                  results: list[Result]) -> Check:
    what = f"{name}: vault health of {pos}"
    if not refs:
        return Check(what, False, "the position has no leg to name in a vault ref")
    values: list[int] = []
    allowed: list[str] = []
    refused: list[str] = []
    floor = 0
    failures: dict[str, list[str]] = {}  # reason -> the assets whose ref failed so
    for (asset, _), health_r, rule_r in zip(refs, results[0::2], results[1::2]):
        if not health_r.success or len(health_r.data) < 32:
            failures.setdefault(_failure(health_r), []).append(asset)
        else:
            values.append(word(health_r.data, 0))
        if rule_r.success and len(rule_r.data) >= 32 and word(rule_r.data, 0):
            allowed.append(asset or "market")
            floor = max(floor, word(rule_r.data, 0))
        else:
            refused.append(asset or "market")
    if failures:
        return Check(what, False, f"vault {shown_address(vault)}: " + "; ".join(
            f"health() {why}" + (f" (for {', '.join(assets)})" if any(assets) else "")
            for why, assets in failures.items()))
    shown = ", ".join(dict.fromkeys(_health(h) for h in values))
    via = f" via {', '.join(a for a, _ in refs)}" if p.protocol is Protocol.AAVE_V3 else ""
    if not allowed:
        return Check(what, False, f"{shown}{via}, but vault {shown_address(vault)} allows none of its markets "
                                  "(owner: setMarket/setPerpMarket): the keeper cannot act on it")
    detail = f"{shown}{via}; floor {floor / WAD:g}"
    if refused:
        detail += f"; not allowed by the vault: {', '.join(refused)}"
    if p.price_ok and _differs(values[0], p.health_wad):
        return Check(what, True, f"{detail}; the keeper's read says {_health(p.health_wad)}", warning=True)
    return Check(what, True, detail)


def _refs(p: Position) -> list[tuple[str, Ref]]:
    """The vault refs to call for a position: for Aave one per asset of its legs, else its one ref."""
    if p.protocol is not Protocol.AAVE_V3:
        return [("", ref_for(p))]
    assets = {leg.asset.address: leg.asset for leg in p.legs}
    return [(a.symbol, ref_for(p, a.address)) for a in assets.values()]


@lru_cache(maxsize=1)
def _abis() -> tuple[list[dict[str, Any]], ...]:
    return tuple(ours(n).abi for n in ("KeeperVault", "MorphoChainlinkOracle", "Multicall3"))


def _failure(r: Result) -> str:
    if r.success:
        return "returned nothing (no contract there, or not this function)"
    return _reverted(r.data)


def _reverted(data: bytes | None) -> str:
    reason = revert.decode(data, _abis())
    if reason.name == "CallFailed" and len(reason.args) == 2 and isinstance(reason.args[1], bytes):
        reason = revert.decode(reason.args[1], _abis())  # our Multicall3 wraps the failed call's revert
    if reason.name == "EmptyRevert":
        return "reverted without a reason"
    args = ", ".join("0x" + a.hex() if isinstance(a, bytes) else to_checksum_address(a) if is_address(a) else str(a)
                     for a in reason.args)
    return f"reverted {reason.name}" + (f"({args})" if reason.args else "")


def _why(e: Exception) -> str:
    """An exception as one printable line: a revert by its decoded reason (the node's message may
    carry the raw revert bytes), a non-keeper exception with its type."""
    if isinstance(e, Reverted) and e.data:
        return f"a contract call {_reverted(e.data)}"
    text = str(e) if isinstance(e, KeeperError) else f"{type(e).__name__}: {e}"
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _health(h: int) -> str:
    return "no debt" if h >= MAX_UINT256 else f"{h / WAD:.4f}"


def _differs(vault: int, read: int) -> bool:
    if vault >= MAX_UINT256 or read >= MAX_UINT256:
        return (vault >= MAX_UINT256) != (read >= MAX_UINT256)
    return abs(vault - read) > HEALTH_TOLERANCE * max(vault, read, 1)


def _labels(ccfg: ChainConfig) -> dict[Address, str]:
    return {a.address: a.label for a in ccfg.accounts if a.label}


def describe(p: Position, names: Mapping[str, str]) -> str:
    """A position as check-config names it: its short name (``keeper.names``), as ``status`` shows it."""
    return names.get(p.key, p.key)
