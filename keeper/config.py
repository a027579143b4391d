"""Typed configuration: ``config.toml`` (or ``--config PATH``) plus ``KEEPER__SECTION__KEY`` environment
overrides, validated in two passes (DESIGN.md style rule 9): pydantic checks each field's type and
range, then ``_cross_check`` checks fields against each other. Errors name the file and the key.

Stage 1 reads the ``[devnet]`` section; the chain, protocol and policy sections arrive with the
stages that use them."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from keeper.errors import ConfigError

DEFAULT_PATH = Path("config.toml")
ENV_PREFIX = "KEEPER__"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DevnetConfig(_Strict):
    port: int = Field(8545, ge=1, le=65535, description="anvil's RPC port")
    block_time: float | None = Field(None, gt=0, description="seconds per block after deployment; none = automine")
    state_dir: Path = Field(Path(".keeper"), description="where the deployment and state files are written")
    fork_url: str | None = Field(None, description="fork this chain instead of an empty one")


class Config(_Strict):
    devnet: DevnetConfig = DevnetConfig()


def _env_overrides(env: dict[str, str]) -> dict[str, Any]:
    """``KEEPER__DEVNET__PORT=9000`` -> {"devnet": {"port": "9000"}} (pydantic coerces the type)."""
    out: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX):].split("__") if p]
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        if path:
            node[path[-1]] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        merged[k] = _merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged


def _cross_check(cfg: Config, where: str) -> None:
    if cfg.devnet.fork_url is not None and not cfg.devnet.fork_url.startswith(("http://", "https://", "ws://", "wss://")):
        raise ConfigError(f"{where}: devnet.fork_url must be an http(s) or ws(s) URL, got {cfg.devnet.fork_url!r}")


def load_config(path: Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Load and validate. A missing default file means defaults; a missing explicit file is an error."""
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
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {key}: {first['msg']} (got {first.get('input')!r})"
                          + (f"; {len(e.errors()) - 1} more error(s)" if len(e.errors()) > 1 else "")) from e
    _cross_check(cfg, str(path))
    return cfg
