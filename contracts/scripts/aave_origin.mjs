// Aave v3.7 (aave-dao/aave-v3-origin, POOL_REVISION 11) compiled by solc-js 0.8.28 into the
// git-ignored build/aave-v3-origin/<Name>.json (abi, bytecode, deployedBytecode, linkReferences).
//
// Sources: $KEEPER_PROTOCOL_SOURCES (a folder holding aave-v3-origin/ and aave-solidity-utils/),
// else ../shared/protocols next to the project when it exists, else a shallow fetch of the pinned
// commits into build/sources/ (KEEPER_PROTOCOL_CLONE=0 forbids that). Nothing is copied into the
// repository.
//
// The cache is reused while its STAMP matches: the compiler version, the settings, the entry list,
// the pinned commits and the SHA-256 of every source file the last compile read (entries, their
// imports, the npm OpenZeppelin files). Editing any of them, or pointing at another tree, rebuilds.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const TREES = {
  'aave-v3-origin': { repo: 'aave-dao/aave-v3-origin', commit: 'fd1fbd9150426ca8ace9cee45b4acf912ae84f5b' },
  'aave-solidity-utils': { repo: 'aave-dao/solidity-utils', commit: 'fdc69f984036585d508889147734902dc0c64bf3' },
};

// As the repository's foundry.toml (solc 0.8.27 there; 0.8.28 gives the same code for these).
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: 'shanghai',
  metadata: { bytecodeHash: 'none' },
  // Source unit names are '<tree>/<path in the tree>'; the repository's remappings point into its
  // git submodules, which are replaced by the solidity-utils tree and npm's OpenZeppelin 5.x.
  remappings: [
    'solidity-utils/=aave-solidity-utils/src/',
    'openzeppelin-contracts/contracts/=@openzeppelin/contracts/',
  ],
};

const SRC = 'aave-v3-origin/src/contracts/';
// file -> contracts written to the cache. The logic libraries are the ones PoolInstance links
// (FlashLoanLogic links BorrowLogic); Errors carries the custom errors every contract reverts with.
const ENTRIES = {
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
};

const OUTPUT = ['abi', 'evm.bytecode.object', 'evm.bytecode.linkReferences', 'evm.deployedBytecode.object',
  'evm.deployedBytecode.linkReferences'];

const sha256 = (data) => createHash('sha256').update(data).digest('hex');

function hasTrees(dir) {
  return Object.keys(TREES).every((t) => fs.existsSync(path.join(dir, t, 'src')));
}

function git(cwd, args) {
  return execFileSync('git', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' }).trim();
}

function clonedAt(dir, commit) {
  try {
    return git(dir, ['rev-parse', 'HEAD']) === commit;
  } catch {
    return false;
  }
}

// A shallow fetch of one pinned commit (GitHub serves any commit by id): init, fetch, checkout.
function cloneTree(dir, { repo, commit }) {
  if (clonedAt(dir, commit)) return;
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const base = process.env.KEEPER_PROTOCOL_GIT_BASE || 'https://github.com';
  git(dir, ['init', '-q']);
  git(dir, ['remote', 'add', 'origin', `${base}/${repo}.git`]);
  git(dir, ['fetch', '-q', '--depth', '1', 'origin', commit]);
  git(dir, ['checkout', '-q', '--detach', 'FETCH_HEAD']);
  if (!clonedAt(dir, commit)) throw new Error(`${repo} checked out at the wrong commit`);
}

// Where the two trees are: { dir, how }, or a fail() with the one line that says what to set.
// With `keep` (a complete build of the same configuration exists), sources that are not on this
// machine are not fetched: the result is { missing } and the build is kept.
export function locateSources(root, fail, keep = false) {
  const explicit = process.env.KEEPER_PROTOCOL_SOURCES;
  let missing;
  if (explicit) {
    const dir = path.resolve(root, explicit);
    if (hasTrees(dir)) return { dir, how: `KEEPER_PROTOCOL_SOURCES=${dir}` };
    missing = `KEEPER_PROTOCOL_SOURCES=${dir} holds no aave-v3-origin/src and aave-solidity-utils/src`;
  } else {
    const shared = path.resolve(root, '..', 'shared', 'protocols');
    if (hasTrees(shared)) return { dir: shared, how: shared };
    missing = `no ${shared}`;
  }
  const cloned = path.join(root, 'build', 'sources');
  if (Object.entries(TREES).every(([t, tree]) => clonedAt(path.join(cloned, t), tree.commit))) {
    return { dir: cloned, how: `${cloned} (pinned commits)` };
  }
  if (keep) return { missing };
  // Every failure below is one line: what is missing, and what to set.
  const pinned = Object.entries(TREES).map(([t, { repo, commit }]) => `${t}/ (${repo}@${commit.slice(0, 12)})`);
  const hint = `set KEEPER_PROTOCOL_SOURCES=/path/to/folder holding ${pinned.join(' and ')}`;
  if (process.env.KEEPER_PROTOCOL_CLONE === '0') {
    fail(`Aave v3.7 sources not found (${missing}; cloning is off: KEEPER_PROTOCOL_CLONE=0): ${hint}`);
  }
  console.log(`Aave v3.7 sources: ${missing}; fetching the pinned commits into ${cloned}/ ...`);
  for (const [t, tree] of Object.entries(TREES)) {
    try {
      cloneTree(path.join(cloned, t), tree);
    } catch (e) {
      fs.rmSync(path.join(cloned, t), { recursive: true, force: true });
      const lines = String(e.stderr || e.message).trim().split('\n');
      const why = (lines.find((l) => l.startsWith('fatal:')) || lines[lines.length - 1]).trim();
      fail(`Aave v3.7 sources not found (${missing}) and 'git fetch' of ${tree.repo} failed (${why}): ${hint}`);
    }
  }
  return { dir: cloned, how: `${cloned} (cloned at the pinned commits)` };
}

// Resolves a source unit name to its file: the two trees, or npm packages for '@...' names.
function resolver(sourcesDir, nodeModules) {
  return (name) => {
    const tree = name.split('/')[0];
    if (tree in TREES) return path.join(sourcesDir, name);
    if (name.startsWith('@')) return path.join(nodeModules, name);
    return null;
  };
}

function configHash(version) {
  return sha256(JSON.stringify({ version, SETTINGS, ENTRIES, TREES, OUTPUT }));
}

// The hash of a build: its configuration plus every file it read, in name order.
function buildHash(config, files) {
  const h = createHash('sha256').update(config + '\0');
  for (const name of Object.keys(files).sort()) h.update(name + '\0' + files[name] + '\0');
  return h.digest('hex');
}

function readStamp(stampPath) {
  try {
    return JSON.parse(fs.readFileSync(stampPath, 'utf8'));
  } catch {
    return null;
  }
}

// A build of this configuration (compiler, settings, entries, commits) with every artifact present.
function builtWith(stampPath, config) {
  const stamp = readStamp(stampPath);
  if (!stamp || stamp.config !== config || !stamp.files) return null;
  const dir = path.dirname(stampPath);
  return Object.values(ENTRIES).flat().every((n) => fs.existsSync(path.join(dir, `${n}.json`))) ? stamp : null;
}

function upToDate(stampPath, config, resolve) {
  const stamp = builtWith(stampPath, config);
  if (!stamp) return false;
  const now = {};
  for (const name of Object.keys(stamp.files)) {
    const file = resolve(name);
    if (!file || !fs.existsSync(file)) return false;
    now[name] = sha256(fs.readFileSync(file));
  }
  return buildHash(config, now) === stamp.hash;
}

export function compileAaveOrigin({ root, nodeModules, force, fail, compile, solc: loadSolc }) {
  const outDir = path.join(root, 'build', 'aave-v3-origin');
  const stampPath = path.join(outDir, 'STAMP');
  const solc = loadSolc();
  const version = solc.version();
  const config = configHash(version);
  const built = force ? null : builtWith(stampPath, config);
  const { dir, how, missing } = locateSources(root, fail, Boolean(built));
  if (missing) {
    // Built before from sources this machine no longer points at (e.g. KEEPER_PROTOCOL_SOURCES
    // unset since): same compiler, settings and commits, so the build stays.
    console.log(`Aave v3.7 kept in build/aave-v3-origin/ (built from ${built.sources}; cannot re-check it: ${missing})`);
    return;
  }
  const resolve = resolver(dir, nodeModules);
  if (!force && upToDate(stampPath, config, resolve)) {
    console.log('Aave v3.7 (aave-v3-origin) up to date in build/aave-v3-origin/');
    return;
  }
  const started = Date.now();
  const files = {}; // source unit name -> sha256 of its contents, for the stamp
  const read = (name) => {
    const file = resolve(name);
    if (!file || !fs.existsSync(file)) return null;
    const text = fs.readFileSync(file);
    files[name] = sha256(text);
    return text.toString('utf8');
  };
  const sources = {};
  const outputSelection = {};
  for (const [rel, names] of Object.entries(ENTRIES)) {
    const text = read(SRC + rel);
    if (text === null) fail(`${SRC + rel} is missing under ${dir}; is it the pinned aave-v3-origin tree?`);
    sources[SRC + rel] = { content: text };
    outputSelection[SRC + rel] = Object.fromEntries(names.map((n) => [n, OUTPUT]));
  }
  const importFn = (name) => {
    const text = read(name);
    return text === null ? { error: `import not found: ${name} (looked in ${dir} and ${nodeModules})` } : { contents: text };
  };
  const out = compile(solc, sources, { ...SETTINGS, outputSelection }, importFn);
  const hash = buildHash(config, files);
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(outDir, { recursive: true });
  for (const [rel, names] of Object.entries(ENTRIES)) {
    for (const name of names) {
      const c = out.contracts[SRC + rel]?.[name];
      if (!c) fail(`solc produced no ${name} in ${SRC + rel}`);
      const artifact = {
        contractName: name,
        sourceName: SRC + rel,
        compiler: version,
        sourceHash: hash,
        abi: c.abi,
        bytecode: '0x' + c.evm.bytecode.object,
        deployedBytecode: '0x' + c.evm.deployedBytecode.object,
        // solc's standard-JSON offsets, in bytes (as hardhat's, which copies them).
        linkReferences: c.evm.bytecode.linkReferences || {},
        deployedLinkReferences: c.evm.deployedBytecode.linkReferences || {},
      };
      fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(artifact) + '\n');
    }
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  fs.writeFileSync(stampPath, JSON.stringify({ hash, config, sources: how, seconds, files }, null, 1) + '\n');
  console.log(`compiled Aave v3.7 (${Object.values(ENTRIES).flat().length} contracts, ${Object.keys(files).length} `
    + `files from ${how}) with solc ${version} in ${seconds} s -> build/aave-v3-origin/`);
}
