"""The tail law the keeper uses when the operator gave neither a ``keeper fit`` file nor price files:
fitted on ETH and BTC hourly history, 2018-01 .. 2021-12 (Binance, 70,126 bars), by

    keeper fit --prices ../shared/data/prices/ETHUSDT_binance_1h.csv \
        ../shared/data/prices/BTCUSDT_binance_1h.csv --to 2022-01-01 --out fit.json

(``keeper fit``'s defaults, ``keeper.risk.recipes.DEFAULT_FIT``, are the capital-efficiency study's
pick: the jump rate conditioned on the fast vol with the fitted exponent shrunk x 0.25, Student-t with
nu 10; bench/BENCHMARKS.md, stage 9.)
Numbers, not data; the daemon warns when it runs on them (they were not fitted on the operator's
assets). Re-run the command above after changing ``TailLaw.fit``."""

from keeper.risk.laws import TailLaw

BUILTIN_TAIL = TailLaw(nu=10.0, u=0.03, lam_u=0.0230667, xi=0.267330, beta=0.0128691, jump_vol=0.515818,
                       jump_ref=0.00703755,
                       fitted_on="built-in: ETH+BTC hourly 2018-01..2021-12, 70126 bars; jump rate ~ vol (x 0.25)")
