"""Local devnet: an anvil process, the real Aave v3, Morpho Blue and GMX v1, our contracts, seeded positions."""

# The Aave v3 versions a devnet can deploy (``keeper devnet up --aave``): 3.7 is aave-v3-origin
# (pool revision 11), 3.0 the @aave/core-v3 npm artifacts (v3.0.2, revision 1).
AAVE_VERSIONS = ("3.7", "3.0")
DEFAULT_AAVE_VERSION = "3.7"

# GMX v1's modes (``keeper devnet up --gmx``): "gated" keeps the Vault's leverage off except inside
# PositionRouter / PositionManager executions, as every production deployment does; "direct" leaves
# it on, as forks that allow direct increases do.
GMX_MODES = ("gated", "direct")
DEFAULT_GMX_MODE = "gated"
