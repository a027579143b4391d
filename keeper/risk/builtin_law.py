"""The tail law the keeper uses when the operator gave neither a ``keeper fit`` file nor price files:
fitted on ETH and BTC hourly history, 2018-01 .. 2021-12 (Binance, 70,126 bars), by

    keeper fit --prices ../shared/data/prices/ETHUSDT_binance_1h.csv \
        ../shared/data/prices/BTCUSDT_binance_1h.csv --to 2022-01-01 --out fit.json

Five numbers, not data; the daemon warns when it runs on them (they were not fitted on the
operator's assets). Re-run the command above after changing ``TailLaw.fit``."""

from keeper.risk.laws import TailLaw

BUILTIN_TAIL = TailLaw(nu=2.9211, u=0.03, lam_u=0.024066, xi=0.26733, beta=0.012869,
                       fitted_on="built-in: ETH+BTC hourly 2018-01..2021-12, 70126 bars")
