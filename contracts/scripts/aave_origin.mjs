// Aave v3.7 (aave-dao/aave-v3-origin, POOL_REVISION 11) compiled by solc-js 0.8.28 into the
// git-ignored build/aave-v3-origin/<Name>.json. How sources are found and builds are cached:
// pinned.mjs.
export const AAVE_ORIGIN = {
  label: 'Aave v3.7',
  out: 'aave-v3-origin',
  compiler: 'solc',
  trees: {
    'aave-v3-origin': { repo: 'aave-dao/aave-v3-origin', commit: 'fd1fbd9150426ca8ace9cee45b4acf912ae84f5b', marker: 'src' },
    'aave-solidity-utils': { repo: 'aave-dao/solidity-utils', commit: 'fdc69f984036585d508889147734902dc0c64bf3', marker: 'src' },
  },
  // As the repository's foundry.toml (solc 0.8.27 there; 0.8.28 gives the same code for these).
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: 'shanghai',
    metadata: { bytecodeHash: 'none' },
    // Source unit names are '<tree>/<path in the tree>'; the repository's remappings point into its
    // git submodules, which are replaced by the solidity-utils tree and npm's OpenZeppelin 5.x.
    remappings: [
      'solidity-utils/=aave-solidity-utils/src/',
      'openzeppelin-contracts/contracts/=@openzeppelin/contracts/',
    ],
  },
  src: 'aave-v3-origin/src/contracts/',
  // file -> contracts written to the cache. The logic libraries are the ones PoolInstance links
  // (FlashLoanLogic links BorrowLogic); Errors carries the custom errors every contract reverts with.
  entries: {
    'protocol/configuration/PoolAddressesProvider.sol': ['PoolAddressesProvider'],
    'protocol/configuration/ACLManager.sol': ['ACLManager'],
    'instances/PoolInstance.sol': ['PoolInstance'],
    'instances/PoolConfiguratorInstance.sol': ['PoolConfiguratorInstance'],
    'misc/AaveOracle.sol': ['AaveOracle'],
    'helpers/AaveProtocolDataProvider.sol': ['AaveProtocolDataProvider'],
    'misc/DefaultReserveInterestRateStrategyV2.sol': ['DefaultReserveInterestRateStrategyV2'],
    'instances/ATokenInstance.sol': ['ATokenInstance'],
    'instances/VariableDebtTokenInstance.sol': ['VariableDebtTokenInstance'],
    'protocol/libraries/logic/BorrowLogic.sol': ['BorrowLogic'],
    'protocol/libraries/logic/LiquidationLogic.sol': ['LiquidationLogic'],
    'protocol/libraries/logic/PoolLogic.sol': ['PoolLogic'],
    'protocol/libraries/logic/SupplyLogic.sol': ['SupplyLogic'],
    'protocol/libraries/logic/FlashLoanLogic.sol': ['FlashLoanLogic'],
    'protocol/libraries/helpers/Errors.sol': ['Errors'],
  },
};
