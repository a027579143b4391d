"""Price files: grid alignment, gap filling, bad prints, clear errors (synthetic files only)."""

import numpy as np
import pytest

from keeper.backtest.prices import align, load_csv, symbol_of
from keeper.errors import ConfigError


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_ohlc_file_with_a_gap_and_a_bad_print(tmp_path):
    p = write(tmp_path, "ETHUSDT_test_1h.csv", "timestamp_utc,open,high,low,close\n"
              "2020-01-01 00:00:00,100,110,90,105\n"
              "2020-01-01 01:00:00,105,106,0.0001,104\n"      # a one-print low
              "2020-01-01 03:00:00,104,108,100,107\n")        # 02:00 is missing
    s = load_csv(p)
    assert s.symbol == "ETH" and len(s) == 4
    assert list(s.filled) == [False, False, True, False]
    assert s.close[2] == 104 and s.low[2] == 104  # forward-filled flat bar
    assert s.low[1] == pytest.approx(0.2 * 104)  # clipped to 20% of the bar's body
    assert s.t[1] - s.t[0] == 3600


def test_close_only_samples_snap_to_the_hour(tmp_path):
    p = write(tmp_path, "WETHUSD_cg_1h.csv", "timestamp_utc,close\n2021-01-01 00:26:29,732\n2021-01-01 01:03:34,735\n")
    s = load_csv(p)
    assert symbol_of(p) == "WETH"
    assert list(s.close) == [732, 735] and np.all(s.high >= s.close)


def test_align_cuts_to_the_common_span(tmp_path):
    a = load_csv(write(tmp_path, "AUSD_x.csv", "timestamp_utc,close\n" + "".join(
        f"2020-01-01 {h:02d}:00:00,{100 + h}\n" for h in range(0, 10))))
    b = load_csv(write(tmp_path, "BUSD_x.csv", "timestamp_utc,close\n" + "".join(
        f"2020-01-01 {h:02d}:00:00,{200 + h}\n" for h in range(3, 12))))
    a2, b2 = align([a, b])
    assert len(a2) == len(b2) == 7 and a2.t[0] == b2.t[0]


@pytest.mark.parametrize("text,needle", [
    ("time,close\n1,2\n3,4\n", "no timestamp_utc"),
    ("timestamp_utc,volume\n2020-01-01 00:00:00,1\n2020-01-01 01:00:00,1\n", "close or price"),
    ("timestamp_utc,close\n2020-01-01 00:00:00,-1\n2020-01-01 01:00:00,1\n", "non-positive"),
    ("timestamp_utc,close\nyesterday,1\n2020-01-01 01:00:00,1\n", "unparsable"),
])
def test_bad_files_are_refused_clearly(tmp_path, text, needle):
    with pytest.raises(ConfigError, match=needle):
        load_csv(write(tmp_path, "XUSD_bad.csv", text))
