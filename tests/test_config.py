"""Config: TOML + KEEPER__ overrides, validated in two passes; errors name the file and the key."""

from pathlib import Path

import pytest

from keeper.config import load_config
from keeper.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(env={})
    assert cfg.devnet.port == 8545 and cfg.devnet.block_time is None


def test_the_shipped_config_is_valid():
    cfg = load_config(Path(__file__).resolve().parents[1] / "config.toml", env={})
    assert cfg.devnet.port == 8545


def test_env_overrides_the_file(tmp_path):
    p = write(tmp_path, "[devnet]\nport = 9000\n")
    cfg = load_config(p, env={"KEEPER__DEVNET__PORT": "9100", "KEEPER__DEVNET__BLOCK_TIME": "0.5"})
    assert cfg.devnet.port == 9100 and cfg.devnet.block_time == 0.5


@pytest.mark.parametrize("text,needle", [
    ("[devnet\nport = 1", "not valid TOML"),
    ("[devnet]\nport = 70000\n", "devnet.port"),
    ("[devnet]\nblock_time = -1\n", "devnet.block_time"),
    ("[devnet]\nprot = 9000\n", "devnet.prot"),
    ("[devnet]\nfork_url = 'ftp://x'\n", "devnet.fork_url"),
])
def test_bad_config_names_the_key(tmp_path, text, needle):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p, env={})
    assert str(p) in str(e.value) and needle in str(e.value)


def test_explicit_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})
