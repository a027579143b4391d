// GMX v1 (gmx-io/gmx-contracts, the perpetuals Vault and its periphery) compiled by solc-js 0.6.12
// into the git-ignored build/gmx-v1/<Name>.json. How sources are found and builds are cached:
// pinned.mjs.
export const GMX_V1 = {
  label: 'GMX v1',
  out: 'gmx-v1',
  compiler: 'solc-0.6.12',
  trees: {
    'gmx-contracts': { repo: 'gmx-io/gmx-contracts', commit: 'fe55c4ba8911ae2378b50bfb9bece5ee50cf2af8', marker: 'contracts/core' },
  },
  // As the repository's hardhat.config.js (solc 0.6.12, optimizer 10 runs); istanbul is 0.6.12's
  // default target. Vault and PositionRouter stay under the 24,576-byte limit with these.
  settings: {
    optimizer: { enabled: true, runs: 10 },
    evmVersion: 'istanbul',
  },
  src: 'gmx-contracts/contracts/',
  // What a GMX v1 market with leverage gating needs: the Vault and its helpers, the price feed,
  // USDG, the Router, the PositionRouter (two-step requests run by position keepers; links the
  // PositionUtils library), the PositionManager (liquidations in private mode), ShortsTracker, the
  // Timelock that toggles leverage around every execution, and GlpManager + GLP (pool deposits).
  entries: {
    'core/Vault.sol': ['Vault'],
    'core/VaultUtils.sol': ['VaultUtils'],
    'core/VaultErrorController.sol': ['VaultErrorController'],
    'core/VaultPriceFeed.sol': ['VaultPriceFeed'],
    'core/Router.sol': ['Router'],
    'core/PositionRouter.sol': ['PositionRouter'],
    'core/PositionManager.sol': ['PositionManager'],
    'core/PositionUtils.sol': ['PositionUtils'],
    'core/ShortsTracker.sol': ['ShortsTracker'],
    'core/OrderBook.sol': ['OrderBook'],
    'tokens/USDG.sol': ['USDG'],
    // GLP pool deposits in one transaction (the seed's liquidity): GlpManager.addLiquidity pulls the
    // tokens into the Vault and buys USDG atomically; a bare transfer + directPoolDeposit could be taken.
    'core/GlpManager.sol': ['GlpManager'],
    'gmx/GLP.sol': ['GLP'],
    'peripherals/Timelock.sol': ['Timelock'],
  },
};
