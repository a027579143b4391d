"""Typed configuration: ``config.toml`` (or ``--config PATH``) plus ``KEEPER__SECTION__KEY`` environment
overrides, validated in two passes (DESIGN.md style rule 9): pydantic checks each field's type and
range (pass 1), then ``_cross_check`` checks fields against each other and fills a chain from a
devnet deployment file when one is named (pass 2). Errors name the file and the key, or, for a value
that came from the environment, the variable (``KEEPER__POLICY__EPSILON=abc: ...``).

Config is organised by chain (``[chains.<name>]``) so one keeper can watch several chains."""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from eth_utils.address import is_address, is_checksum_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, field_validator, model_validator

from keeper.domain import Address
from keeper.errors import ConfigError

DEFAULT_PATH = Path("config.toml")
ENV_PREFIX = "KEEPER__"
MULTICALL3 = Address("0xcA11bde05977b3631167028862bE2a173976CA11")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_address(value: object) -> Address:
    """An address typed by a person or read from a file, as the keeper's one ``Address`` (lower case).
    Mixed case must carry a valid EIP-55 checksum (a wrong one is a typo); all-lower or all-upper is
    accepted. An ``Address`` is taken as is."""
    if type(value) is Address:
        return value
    if not isinstance(value, str) or not is_address(value):
        raise ValueError(f"not an address: {value!r}")
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise ValueError(f"bad EIP-55 checksum: {value!r} (did you mean {to_checksum_address(value)}?)")
    return Address(value)


# A config field holding an address: validated by ``parse_address``, held as ``Address``.
AddressField = Annotated[Address, PlainValidator(parse_address)]


class DevnetConfig(_Strict):
    port: int = Field(default=8545, ge=1, le=65535, description="anvil's RPC port")
    block_time: int | None = Field(
        default=None, ge=0,
        description="whole seconds per block after deployment (anvil's interval mining); unset = 1, "
                    "0 = a block per transaction")
    state_dir: Path = Field(default=Path(".keeper"), description="where the deployment and state files are written")
    fork_url: str | None = Field(default=None, description="fork this chain instead of an empty one")


class StoreConfig(_Strict):
    url: str = Field(default="sqlite:///.keeper/keeper.db", description="SQLAlchemy URL; SQLite file by default")
    history_interval_s: float = Field(
        default=60.0, ge=0,
        description="the daemon writes every position's snapshot to the store at most once per this many seconds "
                    "of chain time, and at every block it acted at; price rounds and the tick checkpoint every "
                    "block; 0 = every position at every block (at 5,000 positions on a 1 s chain, ~470 GB a day)")


class AaveConfig(_Strict):
    pool: AddressField
    data_provider: AddressField
    oracle: AddressField
    price_decimals: int = Field(default=8, ge=0, le=36)
    health: Literal["exact", "pool"] = Field(
        default="exact", description="exact = the keeper computes health with the maths of the pool's version (known "
                             "revisions only; accounts it may act for are cross-checked with getUserAccountData); "
                             "pool = getUserAccountData for every account (exact on any revision, slower)")


# keccak256 of UniswapV3Pool's creation code: pools live at CREATE2(factory, (token0, token1, fee), this).
UNISWAP_V3_POOL_INIT_CODE_HASH = "0xe34f199b19b2b4f47f68442619d555527d244f78a3297ea89325f843f87b8b54"


class UniswapConfig(_Strict):
    factory: AddressField
    fee_tiers: list[int] = Field(default_factory=lambda: [500, 3000, 10000], min_length=1,
                                 description="the pools (fee in millionths) a vault's deleverage may sell in")
    pool_init_code_hash: str = UNISWAP_V3_POOL_INIT_CODE_HASH

    @field_validator("fee_tiers")
    @classmethod
    def _fees(cls, v: list[int]) -> list[int]:
        if any(not 0 < f < 1_000_000 for f in v):
            raise ValueError("fee tiers are in millionths, between 1 and 999,999 (500 = 0.05 %)")
        return v

    @field_validator("pool_init_code_hash")
    @classmethod
    def _hash(cls, v: str) -> str:
        if not (v.startswith("0x") and len(v) == 66 and all(c in "0123456789abcdefABCDEF" for c in v[2:])):
            raise ValueError("must be 0x and 64 hex digits")
        return v.lower()


class MorphoConfig(_Strict):
    morpho: AddressField
    markets: list[str] = Field(min_length=1)
    preliq_factory: AddressField | None = Field(
        default=None, description="Morpho's PreLiquidationFactory ('keeper preliq apply' creates through it; "
                                  "the keeper finds the pre-liquidations created through it that borrowers authorised)")
    preliq_from_block: int = Field(default=0, ge=0, description="the factory's deployment block: where the keeper "
                                                                "starts reading its CreatePreLiquidation events")

    @field_validator("markets")
    @classmethod
    def _ids(cls, v: list[str]) -> list[str]:
        for m in v:
            if not (isinstance(m, str) and m.startswith("0x") and len(m) == 66):
                raise ValueError(f"not a Morpho market id (0x + 64 hex): {m!r}")
            int(m, 16)
        return [m.lower() for m in v]


class PerpMarketConfig(_Strict):
    collateral_token: AddressField
    index_token: AddressField
    is_long: bool


class PerpConfig(_Strict):
    """A GMX v1 Vault (or a fork's) and the markets to read on it."""

    vault: AddressField
    markets: list[PerpMarketConfig] = Field(min_length=1)
    position_router: AddressField | None = Field(
        default=None, description="GMX v1 PositionRouter: on a gated Vault (leverage off "
                                  "outside executions, as production GMX v1) margin top-ups are requests to it")
    request_latency_blocks: int = Field(
        default=2, ge=0, le=1000, description="blocks from sending a PositionRouter request "
                                              "to its execution by the position keepers (the planner acts that much "
                                              "earlier; the keeper reports what it measures)")
    request_timeout_blocks: int = Field(default=20, gt=0, le=100_000, description="a request still pending after this "
                                        "many blocks is alerted, then executed or cancelled by the vault itself once "
                                        "GMX allows it (minTimeDelayPublic)")


class FeedConfig(_Strict):
    address: AddressField
    asset: AddressField | None = Field(default=None,
                                       description="the token this feed prices (for 'price unusable' flags)")
    heartbeat: int = Field(default=3600, gt=0, description="seconds: an older answer is stale")
    second_source: AddressField | None = None
    max_deviation: float = Field(default=0.05, gt=0, lt=1)


class SequencerConfig(_Strict):
    address: AddressField
    grace_period: int = Field(default=3600, ge=0)


class AccountConfig(_Strict):
    address: AddressField
    kind: Literal["vault", "owner", "watch"] = "watch"
    label: str | None = None
    vault: AddressField | None = Field(
        default=None, description="the KeeperVault that acts for this account (a vault acts for itself)")
    protocols: list[Literal["aave_v3", "morpho_blue", "perp"]] | None = Field(
        default=None,
        description="read this account on these protocols only (unset: every protocol the chain configures)")

    @property
    def acting_vault(self) -> Address | None:
        return self.address if self.kind == "vault" else self.vault


class KeeperConfig(_Strict):
    """Where the hot key comes from: exactly one of key_env, key_file, keystore (+ password_file).
    The key itself is never in this file."""

    key_env: str | None = None
    key_file: Path | None = None
    keystore: Path | None = None
    password_file: Path | None = None


class PolicyConfig(_Strict):
    epsilon: float = Field(default=0.01, gt=0, lt=1, description="risk budget: P(liquidation within the horizon)")
    horizon_hours: float = Field(default=24, gt=0, le=24 * 30)
    target_fraction: float = Field(default=0.5, gt=0, le=1, description="top up until P <= epsilon * this")
    release_fraction: float = Field(default=0.05, gt=0, lt=1, description="release excess only when P < epsilon * this")
    min_action_usd: float = Field(default=50, ge=0)
    reserve_cost: float = Field(default=0.002, ge=0, lt=1,
                                description="what committing one USD of reserve costs (a fraction); a deleverage "
                                            "is chosen when its swap, flash fee and gas cost less than this share")
    cooldown_blocks: int = Field(default=10, ge=0)
    release_cooldown_blocks: int = Field(default=300, ge=0, description="no release of excess this many blocks after "
                                                                    "any action on the position")
    default_vol: float = Field(
        default=0.8, gt=0, lt=20, description="annualised vol for an asset without price history "
                                              "(used only with a warning alert)")
    model: Literal["tail", "analytic", "mc", "learned"] = Field(
        default="tail", description="the risk model: fitted fat tails and jumps on the joint factor (tail), lognormal "
                            "(analytic), Monte Carlo paths (mc), or a `keeper train` bundle (learned)")
    model_params: Path | None = Field(default=None, description="fitted law parameters written by `keeper fit` "
                                                        "(unset: fit on price_files, else the built-in fit)")
    model_bundle: Path | None = Field(default=None, description="the `keeper train` bundle (policy.model = learned)")
    price_files: list[Path] = Field(default_factory=list, description="hourly OHLC CSVs: fit the law at start-up "
                                                                        "(without model_params) and vols for assets "
                                                                        "with too little chain history")
    vols: dict[str, float] = Field(default_factory=dict, description="annualised vol overrides per symbol")
    mc_paths: int = Field(default=20_000, ge=1000, le=1_000_000, description="paths of the mc model")
    target_gap: float | None = Field(
        default=None, gt=0, lt=1, description="price-move bands: a protective action lands "
                                              "this fractional move beyond the distance where "
                                              "P = epsilon (replaces target_fraction)")
    release_gap: float | None = Field(
        default=None, gt=0, lt=1, description="... and excess is released only beyond another "
                                              "release_gap (replaces release_fraction)")

    @field_validator("vols")
    @classmethod
    def _vols(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [s for s, x in v.items() if not 0 < x < 20]
        if bad:
            raise ValueError(f"vols must be annualised, within (0, 20): {', '.join(bad)}")
        return v

    @model_validator(mode="after")
    def _model_inputs(self) -> PolicyConfig:
        if (self.target_gap is None) != (self.release_gap is None):
            raise ValueError("target_gap and release_gap go together")
        if self.model == "learned" and self.model_bundle is None:
            raise ValueError("policy.model = learned needs policy.model_bundle (a `keeper train` bundle)")
        return self


class FeesConfig(_Strict):
    min_priority_fee_gwei: float = Field(default=1, ge=0)
    max_priority_fee_gwei: float = Field(default=5, ge=0)
    max_fee_gwei: float = Field(default=200, gt=0, description="the cap; only the urgency rule below may exceed it")
    max_priority_fee_cap_gwei: float = Field(default=20, gt=0)
    urgent_threshold: float | None = Field(default=None, gt=0, le=1)
    urgent_max_fee_gwei: float | None = Field(default=None, gt=0)
    bump_after_blocks: int = Field(default=2, ge=1)


class ChainConfig(_Strict):
    chain_id: int | None = Field(default=None, gt=0)
    rpc_urls: list[str] = Field(default_factory=list)
    ws_urls: list[str] = Field(default_factory=list,
                               description="ws(s) URLs for newHeads (unset: derived from rpc_urls)")
    deployment: Path | None = Field(default=None,
                                    description="fill contracts, feeds and accounts from a devnet deployment file")
    multicall: AddressField = MULTICALL3
    timeout: float = Field(default=10.0, gt=0)
    retries: int = Field(default=3, ge=0, le=20)
    max_lag_blocks: int = Field(default=3, ge=0)
    max_head_age: float | None = Field(default=None, gt=0)
    chunk_size: int = Field(default=500, ge=1, le=5000)
    in_flight: int = Field(default=2, ge=1, le=16)
    aave_v3: AaveConfig | None = None
    morpho_blue: MorphoConfig | None = None
    perp: PerpConfig | None = None
    uniswap_v3: UniswapConfig | None = None
    feeds: dict[str, FeedConfig] = Field(default_factory=dict)
    sequencer: SequencerConfig | None = None
    accounts: list[AccountConfig] = Field(default_factory=list)

    @field_validator("rpc_urls")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        for u in v:
            if not u.startswith(("http://", "https://")):
                raise ValueError(f"RPC URLs must be http(s): {u.split('://')[0] if '://' in u else u!r}")
        return v

    @field_validator("ws_urls")
    @classmethod
    def _ws(cls, v: list[str]) -> list[str]:
        for u in v:
            if not u.startswith(("ws://", "wss://")):
                raise ValueError(f"WebSocket URLs must be ws(s): {u.split('://')[0] if '://' in u else u!r}")
        return v


class DaemonConfig(_Strict):
    poll_interval: float = Field(default=0.5, gt=0, le=60, description="seconds between new-head polls")
    watchdog_seconds: float = Field(default=120, gt=0,
                                    description="exit non-zero when no new block arrives for this long")
    max_consecutive_failures: int = Field(default=5, ge=1,
                                          description="failed ticks in a row that trip the circuit breaker")
    heartbeat_seconds: float = Field(default=60, gt=0)
    heads: Literal["auto", "ws", "poll"] = Field(
        default="auto", description="new heads: auto = WebSocket newHeads (ws_urls, else derived from rpc_urls) "
                                    "with polling as fallback; ws = the same but chains.<name>.ws_urls must be set; "
                                    "poll = never a socket")
    ws_retry_seconds: float = Field(default=30, gt=0, le=3600,
                                    description="after a WebSocket failure, poll this long, then retry")
    ws_stall_seconds: float = Field(default=30, gt=0,
                                    description="no WebSocket head this long while HTTP has a newer one: fall back")
    refit_interval_s: float = Field(default=86_400, gt=0,
                                    description="re-estimate the vols (EWMA of Chainlink rounds) this often")
    refit_rounds: int = Field(default=1000, ge=2, le=100_000,
                              description="Chainlink rounds read back per feed at a refit")
    refit_min_returns: int = Field(default=24, ge=2,
                                   description="hourly returns needed for a new vol; fewer keeps the old one")
    stress_interval_s: float = Field(default=3600, gt=0,
                                     description="Monte Carlo stress report of the latest snapshot this often")
    stress_horizons_h: list[int] = Field(default=[1, 4, 24], min_length=1, description="stress report horizons (hours)")
    stress_paths: int = Field(default=2000, ge=100, le=1_000_000, description="Monte Carlo paths per stress report")
    lease_ttl_seconds: float = Field(default=2.0, ge=0.3, le=600,
                                     description="replicas (keeper run --replica): how long a leader's lease lasts "
                                                 "without renewal (renewed every third of it)")

    @field_validator("stress_horizons_h")
    @classmethod
    def _horizons(cls, v: list[int]) -> list[int]:
        if any(h < 1 or h > 24 * 30 for h in v):
            raise ValueError("each stress horizon within 1..720 hours")
        return sorted(set(v))


_BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True, "t": True, "y": True,
               "false": False, "0": False, "no": False, "off": False, "f": False, "n": False}


class TelemetryConfig(_Strict):
    metrics_port: int | None = Field(default=None, ge=0, le=65535,
                                     description="serve /metrics and /healthz here (unset: off)")
    metrics_host: str = "127.0.0.1"
    log_json: bool | Literal["auto"] = Field(
        default="auto", description="auto = human-readable lines on a terminal, JSON lines otherwise; "
                                    "true = always JSON; false = always plain text")

    @field_validator("log_json", mode="before")
    @classmethod
    def _log_json(cls, v: Any) -> Any:
        if isinstance(v, str):  # from the environment: KEEPER__TELEMETRY__LOG_JSON=auto|true|false
            text = v.strip().lower()
            if text in _BOOL_WORDS:
                return _BOOL_WORDS[text]
            if text != "auto":
                raise ValueError(f"log_json is auto, true or false, not {v!r}")
            return "auto"
        return v


class AlertsConfig(_Strict):
    webhook_env: str | None = Field(default=None, description="environment variable holding the webhook URL (a secret)")
    format: Literal["json", "slack", "discord"] = "json"
    min_interval_s: float = Field(default=300, ge=0, description="the same alert at most once per this many seconds")


class Config(_Strict):
    devnet: DevnetConfig = DevnetConfig()
    store: StoreConfig = StoreConfig()
    keeper: KeeperConfig = KeeperConfig()
    policy: PolicyConfig = PolicyConfig()
    fees: FeesConfig = FeesConfig()
    daemon: DaemonConfig = DaemonConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    alerts: AlertsConfig = AlertsConfig()
    chains: dict[str, ChainConfig] = Field(default_factory=dict)


# --- loading -----------------------------------------------------------------------------------
def _env_overrides(env: dict[str, str]) -> dict[str, Any]:
    """``KEEPER__DEVNET__PORT=9000`` -> {"devnet": {"port": "9000"}}; a value that parses as JSON
    (a list, a number) is taken as such: ``KEEPER__CHAINS__MAIN__RPC_URLS='["http://a", "http://b"]'``."""
    out: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX):].split("__") if p]
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        if path:
            try:
                parsed = json.loads(value)
                node[path[-1]] = parsed if isinstance(parsed, (list, dict)) else value
            except ValueError:
                node[path[-1]] = value
    return out


def _env_sources(env: dict[str, str]) -> dict[tuple[str, ...], tuple[str, str]]:
    """Where each override of ``_env_overrides`` came from: its key path -> (variable, raw value)."""
    out: dict[tuple[str, ...], tuple[str, str]] = {}
    for key, value in env.items():
        if key.startswith(ENV_PREFIX):
            path = tuple(p.lower() for p in key[len(ENV_PREFIX):].split("__") if p)
            if path:
                out[path] = (key, value)
    return out


_URL = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^\s\"',\]}]+", re.I)


def _shown(value: str) -> str:
    """An environment value as an error may show it: URLs cut to their scheme (they may carry an API
    key or credentials), long values shortened."""
    value = _URL.sub(lambda m: m.group(1) + "…", value)
    return value if len(value) <= 80 else value[:77] + "…"


def _env_blame(loc: tuple[str, ...], sources: dict[tuple[str, ...], tuple[str, str]]) -> str | None:
    """``VAR=value`` (and the key inside it, if deeper) when the value at ``loc`` came from the
    environment; None when it came from the file."""
    for n in range(len(loc), 0, -1):
        if loc[:n] in sources:
            var, value = sources[loc[:n]]
            inner = ".".join(loc[n:])
            return f"{var}={_shown(value)}" + (f": {inner}" if inner else "")
    return None


def _env_within(loc: tuple[str, ...], sources: dict[tuple[str, ...], tuple[str, str]]) -> list[str]:
    """``VAR=value`` of each override inside the section at ``loc`` (an error about the section as
    a whole, e.g. two keys that go together)."""
    return [f"{var}={_shown(value)}" for path, (var, value) in sources.items() if path[:len(loc)] == loc]


def _env_note(message: str, sources: dict[tuple[str, ...], tuple[str, str]]) -> str:
    """Name the variables behind the keys a cross-check error mentions."""
    named = [f"{var}={_shown(value)}" for path, (var, value) in sources.items()
             if re.search(r"(?<![\w.])" + re.escape(".".join(path)) + r"(?![\w])", message)]
    return message + (f" (set by {', '.join(named)})" if named else "")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        merged[k] = _merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged


def _from_deployment(name: str, chain: ChainConfig, where: str) -> ChainConfig:
    """Fill what the chain's config leaves unset from a devnet deployment file."""
    path = chain.deployment
    assert path is not None, "callers pass a chain with a deployment file"
    try:
        dep = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{where}: chains.{name}.deployment: {path} not found",
                          hint="start the devnet with 'keeper devnet up', or remove the key") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where}: chains.{name}.deployment: {path} is not valid JSON: {e.msg}") from e
    mb = dep.get("morpho_blue") or {}
    try:
        filled: dict[str, Any] = {
            "chain_id": chain.chain_id or dep["chain_id"],
            "rpc_urls": chain.rpc_urls or [dep["rpc_url"]],
            "multicall": dep.get("multicall3", chain.multicall),
            "aave_v3": chain.aave_v3 or {k: dep["aave_v3"][k] for k in ("pool", "data_provider", "oracle")},
            "morpho_blue": chain.morpho_blue or {"morpho": dep["morpho_blue"]["morpho"],
                                                 "markets": [m["id"] for m in dep["morpho_blue"]["markets"].values()],
                                                 "preliq_factory": mb.get("preliq_factory"),
                                                 "preliq_from_block": mb.get("preliq_factory_block", 0)},
            "perp": chain.perp or {"vault": dep["perp"]["vault"], "markets": list(dep["perp"]["markets"].values()),
                                   "position_router": dep["perp"].get("position_router")},
            "uniswap_v3": chain.uniswap_v3 or ({"factory": dep["uniswap_v3"]["factory"],
                                                "fee_tiers": [dep["uniswap_v3"]["fee"]]}
                                               if "uniswap_v3" in dep else None),
            "feeds": chain.feeds or {sym: {"address": f["address"], "asset": dep["tokens"][f["token"]]["address"],
                                           "heartbeat": 86_400} for sym, f in dep["feeds"].items()},
            "accounts": chain.accounts or _deployment_accounts(dep),
        }
    except KeyError as e:
        raise ConfigError(f"{where}: chains.{name}.deployment: {path} lacks {e}") from e
    data = chain.model_dump(exclude_none=True)
    data.update(filled)
    return ChainConfig.model_validate(data)


def _deployment_accounts(dep: dict[str, Any]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for p in dep.get("positions", []):
        kind = {"vault": "vault", "owner": "owner"}.get(p["holder"], "watch")
        row: dict[str, Any] = {"address": p["account"], "kind": kind, "label": p["id"].split("-")[0], "protocols": []}
        if kind == "owner" and p.get("vault"):
            row["vault"] = p["vault"]
        row = seen.setdefault(p["account"], row)
        if p["protocol"] not in row["protocols"]:
            row["protocols"].append(p["protocol"])
    return list(seen.values())


def _cross_check(cfg: Config, where: str, resolve_chains: bool) -> Config:
    if cfg.devnet.fork_url is not None and not cfg.devnet.fork_url.startswith(("http://", "https://", "ws://", "wss://")):
        raise ConfigError(f"{where}: devnet.fork_url must be an http(s) or ws(s) URL, got {cfg.devnet.fork_url!r}")
    k = cfg.keeper
    if sum(x is not None for x in (k.key_env, k.key_file, k.keystore)) > 1:
        raise ConfigError(f"{where}: keeper: set only one of key_env, key_file, keystore")
    if (k.keystore is None) != (k.password_file is None):
        raise ConfigError(f"{where}: keeper.keystore and keeper.password_file go together")
    f = cfg.fees
    if f.min_priority_fee_gwei > f.max_priority_fee_gwei:
        raise ConfigError(f"{where}: fees.min_priority_fee_gwei is above fees.max_priority_fee_gwei")
    if (f.urgent_threshold is None) != (f.urgent_max_fee_gwei is None):
        raise ConfigError(f"{where}: fees.urgent_threshold and fees.urgent_max_fee_gwei go together")
    if f.urgent_max_fee_gwei is not None and f.urgent_max_fee_gwei < f.max_fee_gwei:
        raise ConfigError(f"{where}: fees.urgent_max_fee_gwei is below fees.max_fee_gwei")
    pol = cfg.policy
    for key, file in ([("policy.model_params", pol.model_params), ("policy.model_bundle", pol.model_bundle)]
                      + [(f"policy.price_files.{i}", f) for i, f in enumerate(pol.price_files)]):
        if file is not None and not Path(file).is_file():
            raise ConfigError(f"{where}: {key}: no file at {file}",
                              hint="keeper fit writes model_params; keeper train writes model_bundle")
    if not resolve_chains:
        return cfg
    configured = dict(cfg.chains)
    implicit = cfg.devnet.state_dir / "devnet.json"
    if not configured and implicit.exists():
        # No chain configured: watch the local devnet that `keeper devnet up` left running.
        configured["devnet"] = ChainConfig(deployment=implicit)
    chains = {}
    for name, chain in configured.items():
        if chain.deployment is not None:
            chain = _from_deployment(name, chain, where)
        key = f"chains.{name}"
        if not chain.rpc_urls:
            raise ConfigError(f"{where}: {key}.rpc_urls: at least one RPC URL is needed")
        if chain.accounts and not (chain.aave_v3 or chain.morpho_blue or chain.perp):
            raise ConfigError(f"{where}: {key}: accounts are watched but no protocol is configured "
                              f"(add {key}.aave_v3, {key}.morpho_blue or {key}.perp)")
        addrs = [a.address for a in chain.accounts]
        if len(set(addrs)) != len(addrs):
            raise ConfigError(f"{where}: {key}.accounts: an address is listed twice")
        for i, a in enumerate(chain.accounts):
            if a.kind == "vault" and a.vault not in (None, a.address):
                raise ConfigError(f"{where}: {key}.accounts.{i}.vault: a vault acts for itself; remove the key")
        for fname, feed in chain.feeds.items():
            if feed.second_source == feed.address:
                raise ConfigError(f"{where}: {key}.feeds.{fname}.second_source is the feed itself")
        if cfg.daemon.heads == "ws" and not chain.ws_urls:
            raise ConfigError(f"{where}: daemon.heads = 'ws' needs {key}.ws_urls",
                              hint="add the node's ws:// URL, or use heads = 'auto' (derived from rpc_urls)")
        if chain.max_head_age is not None and not math.isfinite(chain.max_head_age):
            raise ConfigError(f"{where}: {key}.max_head_age must be finite")
        chains[name] = chain
    return cfg.model_copy(update={"chains": chains})


def chain_from_deployment(path: Path) -> ChainConfig:
    """A chain config for a devnet deployment file alone (what ``keeper devnet up`` just wrote)."""
    return _from_deployment("devnet", ChainConfig(deployment=path), str(path))


def load_config(path: Path | None = None, env: dict[str, str] | None = None, *, resolve_chains: bool = True) -> Config:
    """Load and validate. A missing default file means defaults; a missing explicit file is an error.

    ``resolve_chains=False`` skips the chains' second pass (deployment files, cross-checks): the
    devnet commands need none of it. With no ``[chains.*]`` at all and a devnet deployment file in
    ``devnet.state_dir``, the chains are ``{"devnet": <that deployment>}``."""
    env = dict(os.environ if env is None else env)
    explicit = path is not None
    path = path or DEFAULT_PATH
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from e
    elif explicit:
        raise ConfigError(f"config file {path} not found")
    data = _merge(raw, _env_overrides(env))
    sources = _env_sources(env)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        more = f"; {len(e.errors()) - 1} more error(s)" if len(e.errors()) > 1 else ""
        blame = _env_blame(tuple(str(p) for p in first["loc"]), sources)
        if blame is not None:  # the value came from a KEEPER__… variable, not from the file
            raise ConfigError(f"{blame}: {msg}{more}", hint=f"environment override of {key}") from e
        within = _env_within(tuple(str(p) for p in first["loc"]), sources)
        if within:  # the section's error involves values from the environment
            raise ConfigError(f"{key}: {msg}{more}", hint=f"set by {', '.join(within)}") from e
        raise ConfigError(f"{path}: {key}: {msg} (got {first.get('input')!r})" + more) from e
    try:
        return _cross_check(cfg, str(path), resolve_chains)
    except ConfigError as e:
        if not sources:
            raise
        note = _env_note(e.message, sources)
        if note == e.message:
            raise
        raise ConfigError(note, hint=e.hint) from e.__cause__
