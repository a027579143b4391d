"""Local devnet: an anvil process, the real Aave v3 and Morpho Blue, our contracts, seeded positions."""

# The Aave v3 versions a devnet can deploy (``keeper devnet up --aave``): 3.7 is aave-v3-origin
# (pool revision 11), 3.0 the @aave/core-v3 npm artifacts (v3.0.2, revision 1).
AAVE_VERSIONS = ("3.7", "3.0")
DEFAULT_AAVE_VERSION = "3.7"
