"""How the product fits its tail law and trains its learned model: the defaults ``keeper fit``,
``keeper train`` and the start-up fit share. Numbers only, so the CLI can show them in ``--help``
without importing the fitting code (scipy, scikit-learn)."""

from __future__ import annotations

# The tail law (``keeper fit``'s defaults and the start-up fit on price files): the
# capital-efficiency study's pick (bench/BENCHMARKS.md, stage 9).
DEFAULT_FIT = {"jump_regime": "vol", "exponent_scale": 0.25, "nu": 10.0}

# The learned model's training recipe (chosen on 2018-2019 -> 2020 validation; bench/BENCHMARKS.md,
# stage 9).
DEFAULT_MAX_ITER = 150
DEFAULT_MAX_LEAF_NODES = 15
DEFAULT_MIN_SAMPLES_LEAF = 1000
