"""``keeper demo``: a crash replayed on a fresh devnet; the keeper daemon protects alice's
positions while a separate liquidator process liquidates carol's unprotected twins."""
