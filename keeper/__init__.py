"""keeper: a risk-driven collateral keeper for Aave v3, Morpho Blue and isolated-margin perps."""

__version__ = "0.1.0"
