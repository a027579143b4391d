// Morpho's pre-liquidation (morpho-org/pre-liquidation: PreLiquidationFactory and the PreLiquidation
// contracts it deploys) compiled by solc-js 0.8.27 (PreLiquidation.sol pins it) into the git-ignored build/morpho-preliq/<Name>.json.
// How sources are found and builds are cached: pinned.mjs.
export const MORPHO_PRELIQ = {
  label: 'Morpho pre-liquidation',
  out: 'morpho-preliq',
  compiler: 'solc-0.8.27',
  trees: {
    'morpho-pre-liquidation': {
      repo: 'morpho-org/pre-liquidation', commit: '9e8b7f42d8964b49af3fc371321a4a934f97b210', marker: 'src',
    },
  },
  // As the repository's foundry.toml (via-IR, 999,999 runs, no metadata hash, cancun).
  settings: {
    viaIR: true,
    optimizer: { enabled: true, runs: 999999 },
    evmVersion: 'cancun',
    metadata: { bytecodeHash: 'none' },
  },
  // The tree imports its git submodules by relative path (../lib/morpho-blue/src/..., ../lib/solmate/src/...):
  // those source units are read from npm's packages instead (@morpho-org/morpho-blue 1.0.0, solmate 6.8.0).
  npm: {
    'morpho-pre-liquidation/lib/morpho-blue/': '@morpho-org/morpho-blue/',
    'morpho-pre-liquidation/lib/solmate/': 'solmate/',
  },
  src: 'morpho-pre-liquidation/src/',
  entries: {
    'PreLiquidationFactory.sol': ['PreLiquidationFactory'],
    'PreLiquidation.sol': ['PreLiquidation'],
  },
};
