"""Bad `--vol` and `keeper devnet price` values stop at the command line (exit 2, one error line
naming the flag and the value), before any chain is read."""

import json

import pytest

from keeper.cli import build_parser, main
from keeper.cli.args import vol_overrides
from keeper.devnet import commands
from keeper.errors import ConfigError

COMMANDS = [["plan"], ["rebalance", "0x4c5859:morpho"], ["run", "--dry-run"], ["stress"]]
BAD_VOLS = ["WETH=-1", "WETH=0", "WETH=-0", "WETH=21", "WETH=1e9", "WETH=inf", "WETH=nan", "=0.5", " =0.5",
            "WETH", "WETH=", "WETH=x"]


def error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    return lines[-1]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("bad", BAD_VOLS)
def test_a_bad_vol_exits_2_naming_flag_and_value(command, bad, capsys):
    with pytest.raises(SystemExit) as e:
        main([*command, "--vol", "WBTC=0.7", "--vol", bad])
    assert e.value.code == 2
    line = error_line(capsys)
    assert line.startswith(f"keeper {command[0]}: error: argument --vol: ") and repr(bad) in line
    if "=" in bad and bad.split("=")[0].strip() and bad.split("=")[1] not in ("", "x"):
        assert "0 < ANNUAL <= 20" in line and "2000%/yr" in line


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_good_vols_parse_to_a_dict(command):
    args = build_parser().parse_args([*command, "--vol", "WETH=0.9", "--vol", "WBTC=20", "--vol", "WETH=1.5"])
    assert vol_overrides(args.vol) == {"WETH": 1.5, "WBTC": 20.0}  # the last one for a symbol wins


def test_vol_overrides_checks_raw_strings_too():
    assert vol_overrides(["WETH=0.9"]) == {"WETH": 0.9}
    with pytest.raises(ConfigError, match="--vol: 'WETH=-1'"):
        vol_overrides(["WETH=-1"])


@pytest.mark.parametrize("bad", ["1e30", "1e12001", "0", "-5", "nan", "inf", "x"])
def test_devnet_price_out_of_range_exits_2(bad, capsys):
    with pytest.raises(SystemExit) as e:
        main(["devnet", "price", "ETH", bad])
    assert e.value.code == 2
    line = error_line(capsys)
    assert line.startswith("keeper devnet price: error: argument price: ") and repr(bad) in line


def test_devnet_price_range_edges_parse():
    assert build_parser().parse_args(["devnet", "price", "ETH", "1e12"]).price == 1e12
    assert build_parser().parse_args(["devnet", "price", "ETH", "0.01"]).price == 0.01


@pytest.fixture
def deployment(tmp_path):
    """A deployment file with two feeds (no chain: set_price refuses before it connects)."""
    dep = {"chain_id": 31337, "rpc_url": "http://127.0.0.1:1", "roles": {"admin": "0x00"},
           "feeds": {"ETH": {"token": "WETH", "address": "0x0000000000000000000000000000000000000001", "decimals": 8},
                     "BIG": {"token": "WBIG", "address": "0x0000000000000000000000000000000000000002",
                             "decimals": 70}}}
    path = tmp_path / "devnet.json"
    path.write_text(json.dumps(dep))
    return path


def test_set_price_refuses_an_unrepresentable_answer(deployment):
    with pytest.raises(ConfigError, match=r"not representable by the ETH feed \(8 decimals\)"):
        commands.set_price("ETH", 4e-9, deployment_path=deployment)  # round(0.4) = 0
    with pytest.raises(ConfigError, match="not representable by the BIG feed"):
        commands.set_price("BIG", 1e12, deployment_path=deployment)  # 1e82 > 2^255 - 1


def test_devnet_price_unrepresentable_is_one_line_exit_2(tmp_path, deployment, capsys):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[devnet]\nstate_dir = "{tmp_path}"\n')
    assert main(["--config", str(cfg), "devnet", "price", "ETH", "0.000000001"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("keeper: error: price 1e-09 USD is not representable by the ETH feed")
