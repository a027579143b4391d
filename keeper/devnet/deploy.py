"""Bring a devnet to life: tokens, Chainlink feeds, Multicall3, the real Aave v3 (v3.7 from
aave-v3-origin by default, or v3.0.2 from npm), Morpho Blue and GMX v1 (gated or direct, see
``keeper.devnet.gmx``), Uniswap v3 with WETH/USDC and WBTC/USDC pools (``keeper.devnet.uniswap``),
liquidity, KeeperVaults and seeded positions. Returns the deployment (a dict
that ``keeper.devnet.deployment`` writes as JSON for later stages to read).

One feed per asset drives Aave's oracle, Morpho's oracle and GMX's VaultPriceFeed, so moving it
(``keeper devnet price ETH 1500``) moves all three."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from web3 import Web3
from web3.types import RPCEndpoint

from keeper.chain import contracts as C
from keeper.devnet import DEFAULT_AAVE_VERSION, DEFAULT_GMX_MODE
from keeper.devnet.aave import EModeSpec, ReserveSpec, deploy_aave
from keeper.devnet.deployer import Deployer
from keeper.devnet.gmx import deploy_gmx
from keeper.devnet.morpho import MorphoMarketSpec, deploy_morpho
from keeper.devnet.seed import Roles, seed_positions, seed_preliquidation
from keeper.devnet.uniswap import deploy_uniswap

MULTICALL3 = Web3.to_checksum_address("0xcA11bde05977b3631167028862bE2a173976CA11")
FEED_DECIMALS = 8

# symbol, name, decimals, initial USD price, feed symbol
TOKENS = (
    ("WETH", "Wrapped Ether (devnet)", 18, 2_000, "ETH"),
    ("WBTC", "Wrapped BTC (devnet)", 8, 30_000, "BTC"),
    ("USDC", "USD Coin (devnet)", 6, 1, "USDC"),
)
# Aave v3 mainnet-like risk parameters (bps): LTV, liquidation threshold, liquidation bonus.
AAVE_RESERVES = {
    "WETH": (8000, 8250, 10500, True),
    "WBTC": (7000, 7500, 10650, False),
    "USDC": (7700, 8000, 10450, True),
}
# E-mode category 1 on both versions: WETH is collateral and borrowable in it.
AAVE_EMODES = (EModeSpec(1, "ETH correlated", 9000, 9300, 10100, ("WETH",)),)
MORPHO_LLTV = 860_000_000_000_000_000  # 0.86


def roles_from_accounts(accounts: list[str]) -> Roles:
    if len(accounts) < 12:
        raise ValueError("the devnet needs at least 12 unlocked accounts")
    return Roles(admin=accounts[0], keeper=accounts[1], lp=accounts[2], alice=accounts[3], bob=accounts[4],
                 liquidator=accounts[5], carol=accounts[6], dave=accounts[7], erin=accounts[8],
                 position_keeper=accounts[10], frank=accounts[9], gina=accounts[11])


def _install_multicall(w3: Web3, d: Deployer) -> str:
    """Multicall3 at its canonical address: keep the chain's own (a fork of a real chain has it),
    else deploy ours and copy its runtime code there with ``anvil_setCode``."""
    if len(w3.eth.get_code(MULTICALL3)) > 0:
        return MULTICALL3
    mc = d.deploy(C.ours("Multicall3"))
    code = w3.eth.get_code(mc.address)
    w3.provider.make_request(RPCEndpoint("anvil_setCode"), [MULTICALL3, "0x" + code.hex()])
    if len(w3.eth.get_code(MULTICALL3)) == 0:
        raise RuntimeError("anvil_setCode did not install Multicall3")
    return MULTICALL3


def deploy_devnet(w3: Web3, *, seed: bool = True, log: Callable[[str], None] = lambda _m: None,
                  aave: str = DEFAULT_AAVE_VERSION, gmx: str = DEFAULT_GMX_MODE) -> dict[str, Any]:
    """``aave``: the Aave v3 version to deploy, "3.7" (aave-v3-origin) or "3.0" (``@aave/core-v3``);
    ``gmx``: GMX v1's mode, "gated" (leverage only inside PositionRouter executions, as production)
    or "direct" (leverage enabled)."""
    started = time.monotonic()
    chain_id = w3.eth.chain_id
    roles = roles_from_accounts(list(w3.eth.accounts))
    d = Deployer(w3, roles.admin)

    tokens: dict[str, dict[str, Any]] = {}
    feeds: dict[str, dict[str, Any]] = {}
    erc20, aggregator = C.ours("TestERC20"), C.third_party("MockV3Aggregator")
    for sym, name, decimals, price, feed_sym in TOKENS:
        # WETH wraps ether (GMX's routers wrap and unwrap execution fees with it).
        if sym == "WETH":
            token = d.deploy(C.ours("TestWETH"), chain_id)
        else:
            token = d.deploy(erc20, name, sym, decimals, chain_id)
        feed = d.deploy(aggregator, FEED_DECIMALS, price * 10**FEED_DECIMALS)
        tokens[sym] = {"address": token.address, "decimals": decimals, "feed": feed.address, "feed_symbol": feed_sym}
        feeds[feed_sym] = {"address": feed.address, "decimals": FEED_DECIMALS, "token": sym,
                           "description": f"{feed_sym} / USD"}
    log(f"tokens and feeds deployed ({time.monotonic() - started:.1f} s)")

    multicall = _install_multicall(w3, d)

    reserves = [ReserveSpec(sym, tokens[sym]["address"], tokens[sym]["decimals"], tokens[sym]["feed"],
                            *AAVE_RESERVES[sym])
                for sym in ("WETH", "WBTC", "USDC")]
    aave_v3 = deploy_aave(d, reserves, admin=roles.admin, treasury=roles.admin, version=aave, emodes=AAVE_EMODES)
    log(f"Aave v{aave} deployed, pool revision {aave_v3['revision']} ({time.monotonic() - started:.1f} s)")

    morpho = deploy_morpho(d, [MorphoMarketSpec(
        "WETH/USDC", tokens["USDC"]["address"], 6, tokens["USDC"]["feed"],
        tokens["WETH"]["address"], 18, tokens["WETH"]["feed"], MORPHO_LLTV)], owner=roles.admin)
    log(f"Morpho Blue deployed ({time.monotonic() - started:.1f} s)")

    perp = deploy_gmx(d, tokens, admin=roles.admin, lp=roles.lp, position_keeper=roles.position_keeper,
                      liquidator=roles.liquidator, mode=gmx, pool_liquidity={
                          "WETH": 500 * 10**18, "WBTC": 30 * 10**8, "USDC": 2_000_000 * 10**6})
    log(f"GMX v1 deployed, {gmx} ({time.monotonic() - started:.1f} s)")

    uniswap_v3 = deploy_uniswap(d, tokens, {sym: float(price) for sym, _n, _d, price, _f in TOKENS},
                                weth=tokens["WETH"]["address"], lp=roles.lp)
    log(f"Uniswap v3 deployed, pools {', '.join(uniswap_v3['pools'])} ({time.monotonic() - started:.1f} s)")

    deployment: dict[str, Any] = {
        "chain_id": chain_id,
        "deployed_at_block": w3.eth.block_number,
        "roles": roles.as_dict(),
        "tokens": tokens,
        "feeds": feeds,
        "multicall3": multicall,
        "aave_v3": aave_v3,
        "morpho_blue": morpho,
        "perp": perp,
        "uniswap_v3": uniswap_v3,
        "keeper_vaults": {},
        "positions": [],
    }
    if seed:
        seed_positions(w3, d, deployment, roles)
        log(f"positions seeded ({time.monotonic() - started:.1f} s)")
    # Morpho's pre-liquidation factory (pinned upstream build), deployed last so no address above moves;
    # then gina's position that opted in to it.
    morpho["preliq_factory"] = d.deploy(C.preliq("PreLiquidationFactory"), morpho["morpho"]).address
    morpho["preliq_factory_block"] = w3.eth.block_number  # where its events start (keeper.devnet.preliquidator)
    if seed:
        seed_preliquidation(w3, d, deployment, roles)
    deployment["deployed_at_block"] = w3.eth.block_number
    deployment["seconds_to_deploy"] = round(time.monotonic() - started, 2)
    return deployment
