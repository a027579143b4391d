"""Config: TOML + KEEPER__ overrides, validated in two passes; errors name the file and the key."""

from pathlib import Path

import pytest

from keeper.config import load_config
from keeper.domain import Address
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
    cfg = load_config(p, env={"KEEPER__DEVNET__PORT": "9100", "KEEPER__DEVNET__BLOCK_TIME": "2"})
    assert cfg.devnet.port == 9100 and cfg.devnet.block_time == 2


@pytest.mark.parametrize("text,needle", [
    ("[devnet\nport = 1", "not valid TOML"),
    ("[devnet]\nport = 70000\n", "devnet.port"),
    ("[devnet]\nblock_time = -1\n", "devnet.block_time"),
    ("[devnet]\nblock_time = 0.5\n", "devnet.block_time"),  # anvil mines whole seconds
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


GOOD_CHAIN = """
[chains.main]
chain_id = 1
rpc_urls = ["http://127.0.0.1:1"]
[chains.main.aave_v3]
pool = "0x87870bca3f3fd6335c3f4ce8392d69350b4fa4e2"
data_provider = "0x7B4EB56E7CD4b454BA8ff71E4518426369a138a3"
oracle = "0x54586bE62E3c3580375aE3723C145253060Ca0C2"
[[chains.main.accounts]]
address = "0x000000000000000000000000000000000000dEaD"
kind = "owner"
"""


def test_a_chain_section(tmp_path):
    cfg = load_config(write(tmp_path, GOOD_CHAIN), env={})
    main = cfg.chains["main"]
    # a valid checksum is accepted and held as the keeper's one Address form (lower case)
    assert main.aave_v3.pool == "0x87870bca3f3fd6335c3f4ce8392d69350b4fa4e2"
    assert type(main.aave_v3.pool) is Address and type(main.accounts[0].address) is Address
    assert main.accounts[0].kind == "owner"


@pytest.mark.parametrize("edit,needle", [
    (("0x7B4EB56E7CD4b454BA8ff71E4518426369a138a3", "0x7b4EB56E7CD4b454BA8ff71E4518426369a138a3"),
     "chains.main.aave_v3.data_provider: bad EIP-55 checksum"),
    (("0x54586bE62E3c3580375aE3723C145253060Ca0C2", "0x1234"), "chains.main.aave_v3.oracle: not an address"),
    (('rpc_urls = ["http://127.0.0.1:1"]', 'rpc_urls = ["ws://127.0.0.1:1"]'), "chains.main.rpc_urls"),
    (('rpc_urls = ["http://127.0.0.1:1"]', "rpc_urls = []"), "chains.main.rpc_urls: at least one RPC URL"),
    (('kind = "owner"', 'kind = "friend"'), "chains.main.accounts.0.kind"),
    (("chain_id = 1", "chain_id = -1"), "chains.main.chain_id"),
])
def test_bad_chain_config_names_the_key(tmp_path, edit, needle):
    p = write(tmp_path, GOOD_CHAIN.replace(*edit))
    with pytest.raises(ConfigError) as e:
        load_config(p, env={})
    assert needle in str(e.value)


def test_accounts_without_a_protocol_are_refused(tmp_path):
    text = (GOOD_CHAIN.split("[chains.main.aave_v3]")[0]
            + '[[chains.main.accounts]]\naddress = "0x000000000000000000000000000000000000dEaD"\n')
    with pytest.raises(ConfigError, match="no protocol is configured"):
        load_config(write(tmp_path, text), env={})


def test_env_can_override_a_list(tmp_path):
    cfg = load_config(write(tmp_path, GOOD_CHAIN),
                      env={"KEEPER__CHAINS__MAIN__RPC_URLS": '["http://a.example", "http://b.example"]'})
    assert cfg.chains["main"].rpc_urls == ["http://a.example", "http://b.example"]


def test_missing_deployment_file_names_the_key(tmp_path):
    text = f'[chains.dev]\ndeployment = "{tmp_path / "nope.json"}"\n'
    with pytest.raises(ConfigError, match=r"chains.dev.deployment: .*not found"):
        load_config(write(tmp_path, text), env={})
    # The devnet commands do not need chains resolved.
    assert load_config(write(tmp_path, text), env={}, resolve_chains=False).devnet.port == 8545


@pytest.mark.parametrize("text,needle", [
    ('[keeper]\nkey_env = "A"\nkey_file = "/k"\n', "only one of key_env"),
    ('[keeper]\nkeystore = "/ks.json"\n', "go together"),
    ("[fees]\nmin_priority_fee_gwei = 9\nmax_priority_fee_gwei = 2\n", "min_priority_fee_gwei"),
    ("[fees]\nurgent_threshold = 0.9\n", "urgent_threshold and fees.urgent_max_fee_gwei"),
    ("[fees]\nmax_fee_gwei = 100\nurgent_threshold = 0.9\nurgent_max_fee_gwei = 50\n", "below fees.max_fee_gwei"),
    ("[policy]\nepsilon = 1.5\n", "policy.epsilon"),
])
def test_keeper_policy_and_fee_checks(tmp_path, text, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(write(tmp_path, text), env={})


@pytest.mark.parametrize("env,expected", [
    ({"KEEPER__POLICY__EPSILON": "abc"}, "KEEPER__POLICY__EPSILON=abc: Input should be a valid number"),
    ({"KEEPER__DEVNET__PORT": "70000"}, "KEEPER__DEVNET__PORT=70000: Input should be less than or equal to 65535"),
    ({"KEEPER__POLICY__EPSILONN": "1"}, "KEEPER__POLICY__EPSILONN=1: Extra inputs are not permitted"),
    ({"KEEPER__TELEMETRY__LOG_JSON": "maybe"}, "KEEPER__TELEMETRY__LOG_JSON=maybe: log_json is auto, true or false"),
])
def test_a_bad_env_override_names_the_variable_not_the_file(tmp_path, env, expected):
    p = write(tmp_path, "[policy]\nepsilon = 0.02\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, env=env)
    text = str(e.value)
    assert text.startswith(expected) and str(p) not in text
    key = next(iter(env)).removeprefix("KEEPER__").replace("__", ".").lower()
    assert text.endswith(f"(environment override of {key})")


def test_a_bad_file_value_still_names_the_file(tmp_path):
    p = write(tmp_path, "[policy]\nepsilon = 'abc'\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, env={"KEEPER__DEVNET__PORT": "9000"})
    assert str(e.value).startswith(f"{p}: policy.epsilon: ") and "KEEPER__" not in str(e.value)


def test_env_override_errors_hide_urls_and_name_the_key_inside_a_json_value(tmp_path):
    p = write(tmp_path, "")
    with pytest.raises(ConfigError) as e:
        load_config(p, env={"KEEPER__CHAINS__MAIN__RPC_URLS": '["ftp://op:hunter2@node/v2/SECRETKEY"]'})
    assert str(e.value).startswith('KEEPER__CHAINS__MAIN__RPC_URLS=["ftp://…"]: RPC URLs must be http(s)')
    assert "hunter2" not in str(e.value) and "SECRETKEY" not in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(p, env={"KEEPER__CHAINS__MAIN__ACCOUNTS": '[{"address": "0x12"}]'})
    assert str(e.value).startswith('KEEPER__CHAINS__MAIN__ACCOUNTS=[{"address": "0x12"}]: 0.address: not an address')


def test_section_and_cross_check_errors_name_the_variables_involved(tmp_path):
    p = write(tmp_path, "")
    with pytest.raises(ConfigError) as e:
        load_config(p, env={"KEEPER__POLICY__TARGET_GAP": "0.1"})
    assert str(e.value) == "policy: target_gap and release_gap go together (set by KEEPER__POLICY__TARGET_GAP=0.1)"
    with pytest.raises(ConfigError) as e:
        load_config(p, env={"KEEPER__FEES__MIN_PRIORITY_FEE_GWEI": "9"})
    assert str(e.value) == (f"{p}: fees.min_priority_fee_gwei is above fees.max_priority_fee_gwei "
                            "(set by KEEPER__FEES__MIN_PRIORITY_FEE_GWEI=9)")


@pytest.mark.parametrize("text,env,expected", [
    ("", {}, "auto"),
    ("[telemetry]\nlog_json = true\n", {}, True),
    ("[telemetry]\nlog_json = false\n", {}, False),
    ("[telemetry]\nlog_json = 'auto'\n", {}, "auto"),
    ("[telemetry]\nlog_json = true\n", {"KEEPER__TELEMETRY__LOG_JSON": "auto"}, "auto"),
    ("", {"KEEPER__TELEMETRY__LOG_JSON": "false"}, False),
    ("", {"KEEPER__TELEMETRY__LOG_JSON": "True"}, True),
])
def test_log_json_is_auto_true_or_false(tmp_path, text, env, expected):
    assert load_config(write(tmp_path, text), env=env).telemetry.log_json == expected


UNISWAP = """
[chains.main.uniswap_v3]
factory = "0x1F98431c8aD98523631AE4a59f267346ea31F984"
"""


def test_the_uniswap_section_defaults_and_checks(tmp_path):
    main = load_config(write(tmp_path, GOOD_CHAIN + UNISWAP), env={}).chains["main"]
    uni = main.uniswap_v3
    assert uni.factory == "0x1f98431c8ad98523631ae4a59f267346ea31f984" and uni.fee_tiers == [500, 3000, 10000]
    assert uni.pool_init_code_hash == "0xe34f199b19b2b4f47f68442619d555527d244f78a3297ea89325f843f87b8b54"
    for extra, needle in (("fee_tiers = [0]", "chains.main.uniswap_v3.fee_tiers: "),
                          ("fee_tiers = [1000000]", "fee tiers are in millionths"),
                          ("fee_tiers = []", "chains.main.uniswap_v3.fee_tiers"),
                          ('pool_init_code_hash = "0x1234"', "chains.main.uniswap_v3.pool_init_code_hash: "),
                          ('pool_init_code_hash = "0x' + "zz" * 32 + '"', "must be 0x and 64 hex digits")):
        with pytest.raises(ConfigError) as e:
            load_config(write(tmp_path, GOOD_CHAIN + UNISWAP + extra + "\n"), env={})
        assert needle in str(e.value), (extra, str(e.value))
    upper = '0x' + "AB" * 32
    main = load_config(write(tmp_path, GOOD_CHAIN + UNISWAP + f'pool_init_code_hash = "{upper}"\n'), env={})
    assert main.chains["main"].uniswap_v3.pool_init_code_hash == upper.lower()


def test_the_morpho_pre_liquidation_keys(tmp_path):
    morpho = """
[chains.main.morpho_blue]
morpho = "0xBBBBBbbBBb9cC5e90e3b3Af64bdAF62C37EEFFCb"
markets = ["0x""" + "11" * 32 + """"]
preliq_factory = "0x6FF33615e792E35ed1026ea7cACCf42D9BF83476"
preliq_from_block = 21414664
"""
    mb = load_config(write(tmp_path, GOOD_CHAIN + morpho), env={}).chains["main"].morpho_blue
    assert mb.preliq_factory == "0x6ff33615e792e35ed1026ea7caccf42d9bf83476" and mb.preliq_from_block == 21414664
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, GOOD_CHAIN + morpho.replace("21414664", "-1")), env={})
    assert "chains.main.morpho_blue.preliq_from_block" in str(e.value)
