"""Chain I/O: web3 construction, batching, oracles, contract artifacts, transactions."""
