"""`keeper devnet up`'s block time: a devnet mines on its own by default (1 s), `--block-time 0` (or
`devnet.block_time = 0`) mines a block per transaction, and bad values are refused by the parser."""

from __future__ import annotations

import pytest

from keeper.cli import build_parser
from keeper.cli.devnet import DEFAULT_BLOCK_TIME, block_time


def test_default_is_a_block_a_second_and_zero_is_automine():
    assert DEFAULT_BLOCK_TIME == 1
    assert block_time(None, None) == 1
    assert block_time(0, None) is None and block_time(None, 0) is None
    assert block_time(None, 3) == 3 and block_time(2, 3) == 2


@pytest.mark.parametrize("bad", ["-1", "nan", "x", "0.5"])  # anvil mines whole seconds
def test_bad_block_times_exit_2_with_one_line(bad, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["devnet", "up", "--block-time", bad])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--block-time" in err and bad in err


def test_zero_parses():
    args = build_parser().parse_args(["devnet", "up", "--detach", "--block-time", "0"])
    assert args.block_time == 0 and args.detach
    assert build_parser().parse_args(["devnet", "up", "--block-time", "2.0"]).block_time == 2
