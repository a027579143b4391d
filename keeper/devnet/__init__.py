"""Local devnet: an anvil process, the real Aave v3 and Morpho Blue, our contracts, seeded positions."""
