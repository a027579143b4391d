// Compiles our Solidity (contracts/*.sol, solc 0.8.28) into keeper/abi/<Name>.json (package data), the third-party
// sources that npm ships as Solidity only (Morpho Blue with solc 0.8.19, Chainlink's
// MockV3Aggregator) into build/third_party/<Name>.json, and the protocols built from pinned upstream
// trees (pinned.mjs): Aave v3.7 (aave_origin.mjs) into build/aave-v3-origin/ and GMX v1 (gmx_v1.mjs,
// solc 0.6.12) into build/gmx-v1/: git-ignored caches.
//
// solc-js is driven through its JavaScript API: its CLI breaks on piped stdin and truncates piped
// stdout, so every result is written to a file.
//
// usage: node contracts/scripts/compile.mjs [--ours] [--third-party] [--aave-origin] [--gmx] [--force]
//                                           [--only A.sol B.sol]
//        node contracts/scripts/compile.mjs --hash   (print the source hash keeper/abi/ must carry)
//        (no flag: all four). Third-party output is reused while package-lock.json is unchanged,
//        Aave v3.7's and GMX v1's while the sources they read and their settings are unchanged.
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AAVE_ORIGIN } from './aave_origin.mjs';
import { GMX_V1 } from './gmx_v1.mjs';
import { MORPHO_PRELIQ } from './morpho_preliq.mjs';
import { buildPinned } from './pinned.mjs';

const require = createRequire(import.meta.url);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const NODE_MODULES = path.join(ROOT, 'node_modules');
const OURS_DIR = path.join(ROOT, 'contracts');
const ABI_DIR = path.join(ROOT, 'keeper', 'abi');
const CACHE_DIR = path.join(ROOT, 'build', 'third_party');

// Settings are part of the source hash: change them and keeper/abi/ is stale.
const OUR_SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  viaIR: true,
  evmVersion: 'cancun',
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
};

function fail(msg) {
  console.error(`compile: ${msg}`);
  process.exit(1);
}

function loadSolc(name) {
  try {
    return require(name);
  } catch (e) {
    fail(`cannot load npm package '${name}' (${e.code || e.message}); run 'npm ci' first`);
  }
}

function findImport(importPath) {
  const candidates = [path.join(NODE_MODULES, importPath), path.join(ROOT, importPath)];
  for (const c of candidates) {
    if (fs.existsSync(c)) return { contents: fs.readFileSync(c, 'utf8') };
  }
  return { error: `import not found: ${importPath}` };
}

function compile(solc, sources, settings, importFn = findImport) {
  const input = { language: 'Solidity', sources, settings };
  const out = JSON.parse(solc.compile(JSON.stringify(input), { import: importFn }));
  const errors = (out.errors || []).filter((e) => e.severity === 'error');
  for (const w of (out.errors || []).filter((e) => e.severity !== 'error')) {
    if (!/SPDX|shadow|Unreachable|unused|Function state mutability/.test(w.message)) {
      console.error(w.formattedMessage.trim());
    }
  }
  if (errors.length) fail(errors.map((e) => e.formattedMessage).join('\n'));
  return out;
}

// Our sources: every .sol under contracts/ (sorted), hashed with the compiler version and settings.
function ourSources() {
  const files = [];
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.name.endsWith('.sol')) files.push(p);
    }
  };
  walk(OURS_DIR);
  return files.map((p) => ({ rel: path.relative(ROOT, p).split(path.sep).join('/'), text: fs.readFileSync(p, 'utf8') }));
}

export function sourceHash(files, version) {
  const h = createHash('sha256');
  for (const f of files) h.update(f.rel + '\0' + f.text + '\0');
  h.update(version + '\0' + JSON.stringify(OUR_SETTINGS));
  return h.digest('hex');
}

// KeeperVault's fallback delegates to its DeleverageModule (contracts/vault/): its artifact's ABI
// lists the module's functions, events and errors as well, so callers see one vault.
const DELEGATES_TO = { KeeperVault: 'DeleverageModule' };

function mergedAbi(own, extra) {
  const key = (e) => `${e.type}:${e.name}(${(e.inputs || []).map((i) => i.type).join(',')})`;
  const seen = new Set(own.map(key));
  return own.concat(extra.filter((e) => e.type !== 'constructor' && !seen.has(key(e))));
}

function writeArtifact(dir, name, c, version, hash, sourceFile) {
  fs.mkdirSync(dir, { recursive: true });
  const artifact = {
    contractName: name,
    sourceName: sourceFile,
    compiler: version,
    sourceHash: hash,
    abi: c.abi,
    bytecode: '0x' + c.evm.bytecode.object,
    deployedBytecode: '0x' + c.evm.deployedBytecode.object,
  };
  fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(artifact, null, 1) + '\n');
}

function compileOurs(only) {
  const solc = loadSolc('solc');
  const version = solc.version();
  let files = ourSources();
  if (only) files = files.filter((f) => only.includes(path.basename(f.rel)));
  const hash = sourceHash(files, version);
  const sources = Object.fromEntries(files.map((f) => [f.rel, { content: f.text }]));
  const out = compile(solc, sources, OUR_SETTINGS);
  // A partial build (--only, while developing) leaves the other artifacts and SOURCE_HASH alone,
  // so the freshness test keeps failing until a full build is made.
  if (!only) fs.rmSync(ABI_DIR, { recursive: true, force: true });
  const built = {};
  for (const f of files) {
    for (const [name, c] of Object.entries(out.contracts[f.rel] || {})) {
      if (c.evm.bytecode.object) built[name] = { c, rel: f.rel }; // not interfaces and abstract contracts
    }
  }
  // A contract that runs another's code by DELEGATECALL from its fallback answers to that one's ABI too.
  for (const [name, extra] of Object.entries(DELEGATES_TO)) {
    if (built[name] && built[extra]) built[name].c = { ...built[name].c, abi: mergedAbi(built[name].c.abi, built[extra].c.abi) };
  }
  let n = 0;
  for (const [name, { c, rel }] of Object.entries(built)) {
    writeArtifact(ABI_DIR, name, c, version, hash, rel);
    n += 1;
  }
  if (!only) fs.writeFileSync(path.join(ABI_DIR, 'SOURCE_HASH'), hash + '\n');
  console.log(`compiled ${n} contracts of ours with solc ${version} -> keeper/abi/`);
}

const THIRD_PARTY = [
  {
    compiler: 'solc-0.8.19',
    settings: { optimizer: { enabled: true, runs: 999999 }, evmVersion: 'paris' },
    files: {
      '@morpho-org/morpho-blue/src/Morpho.sol': ['Morpho'],
      '@morpho-org/morpho-blue/src/mocks/IrmMock.sol': ['IrmMock'],
    },
  },
  {
    compiler: 'solc',
    settings: { optimizer: { enabled: true, runs: 200 }, evmVersion: 'cancun' },
    files: { '@chainlink/contracts/src/v0.8/tests/MockV3Aggregator.sol': ['MockV3Aggregator'] },
  },
];

function compileThirdParty(force) {
  const lock = path.join(ROOT, 'package-lock.json');
  const lockHash = createHash('sha256').update(fs.existsSync(lock) ? fs.readFileSync(lock) : '').update(JSON.stringify(THIRD_PARTY)).digest('hex');
  const stamp = path.join(CACHE_DIR, 'STAMP');
  if (!force && fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8').trim() === lockHash) {
    console.log('third-party contracts up to date in build/third_party/');
    return;
  }
  for (const group of THIRD_PARTY) {
    const solc = loadSolc(group.compiler);
    const version = solc.version();
    const sources = {};
    for (const file of Object.keys(group.files)) {
      const found = findImport(file);
      if (found.error) fail(`${found.error}; run 'npm ci' first`);
      sources[file] = { content: found.contents };
    }
    const settings = { ...group.settings, outputSelection: OUR_SETTINGS.outputSelection };
    const out = compile(solc, sources, settings);
    for (const [file, names] of Object.entries(group.files)) {
      for (const name of names) {
        writeArtifact(CACHE_DIR, name, out.contracts[file][name], version, lockHash, file);
      }
    }
    console.log(`compiled ${Object.values(group.files).flat().join(', ')} with solc ${version} -> build/third_party/`);
  }
  fs.writeFileSync(stamp, lockHash + '\n');
}

const argv = process.argv.slice(2);
const onlyAt = argv.indexOf('--only');
const only = onlyAt >= 0 ? argv.slice(onlyAt + 1) : null; // file names, e.g. --only PerpVault.sol
if (argv.includes('--hash')) {
  // The hash the committed keeper/abi/ must carry: used by the freshness test, compiles nothing.
  console.log(sourceHash(ourSources(), loadSolc('solc').version()));
  process.exit(0);
}
const args = new Set(onlyAt >= 0 ? argv.slice(0, onlyAt).concat(['--ours']) : argv);
const all = !args.has('--ours') && !args.has('--third-party') && !args.has('--aave-origin') && !args.has('--gmx')
  && !args.has('--preliq');
if (all || args.has('--third-party')) compileThirdParty(args.has('--force'));
const pinned = { root: ROOT, nodeModules: NODE_MODULES, force: args.has('--force'), fail, compile, solc: loadSolc };
if (all || args.has('--aave-origin')) buildPinned(AAVE_ORIGIN, pinned);
if (all || args.has('--gmx')) buildPinned(GMX_V1, pinned);
if (all || args.has('--preliq')) buildPinned(MORPHO_PRELIQ, pinned);
if (all || args.has('--ours')) compileOurs(only);
