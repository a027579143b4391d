"""Services shared by the CLI and the daemon: wiring (config -> chain clients, adapters, store, the
risk model), sessions (read, books), checks, manual actions, stress. Imports run one way: the CLI
and the daemon import from here; nothing here imports them."""
