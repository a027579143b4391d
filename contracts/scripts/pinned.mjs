// Builds a third-party protocol that npm does not ship, from pinned upstream trees, with solc-js,
// into the git-ignored build/<out>/<Name>.json (abi, bytecode, deployedBytecode, linkReferences).
// A spec (aave_origin.mjs, gmx_v1.mjs) names the trees and commits, the compiler package, the
// settings and the entry files; this file finds the sources, decides whether a build is current,
// compiles and writes the artifacts.
//
// Sources: $KEEPER_PROTOCOL_SOURCES (a folder holding every tree of the spec), else
// ../shared/protocols next to the project when it holds them, else an earlier clone in
// build/sources/, else a shallow fetch of the pinned commits into build/sources/
// (KEEPER_PROTOCOL_CLONE=0 forbids that). Nothing is copied into the repository.
//
// The cache is reused while its STAMP matches: the compiler version, the settings, the entry list,
// the pinned commits and the SHA-256 of every source file the last compile read (entries, their
// imports, npm files). Editing any of them, or pointing at another tree, rebuilds.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const OUTPUT = ['abi', 'evm.bytecode.object', 'evm.bytecode.linkReferences', 'evm.deployedBytecode.object',
  'evm.deployedBytecode.linkReferences'];

const sha256 = (data) => createHash('sha256').update(data).digest('hex');

// A tree is present when its marker folder exists (e.g. aave-v3-origin/src, gmx-contracts/contracts).
function hasTrees(spec, dir) {
  return Object.entries(spec.trees).every(([t, tree]) => fs.existsSync(path.join(dir, t, tree.marker)));
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

// Where the spec's trees are: { dir, how }, or a fail() with the one line that says what to set.
// With `keep` (a complete build of the same configuration exists), sources that are not on this
// machine are not fetched: the result is { missing } and the build is kept.
export function locateSources(spec, root, fail, keep = false) {
  const markers = Object.entries(spec.trees).map(([t, tree]) => `${t}/${tree.marker}`).join(' and ');
  const explicit = process.env.KEEPER_PROTOCOL_SOURCES;
  let missing;
  if (explicit) {
    const dir = path.resolve(root, explicit);
    if (hasTrees(spec, dir)) return { dir, how: `KEEPER_PROTOCOL_SOURCES=${dir}` };
    missing = `KEEPER_PROTOCOL_SOURCES=${dir} holds no ${markers}`;
  } else {
    const shared = path.resolve(root, '..', 'shared', 'protocols');
    if (hasTrees(spec, shared)) return { dir: shared, how: shared };
    missing = `no ${markers} in ${shared}`;
  }
  const cloned = path.join(root, 'build', 'sources');
  if (Object.entries(spec.trees).every(([t, tree]) => clonedAt(path.join(cloned, t), tree.commit))) {
    return { dir: cloned, how: `${cloned} (pinned commits)` };
  }
  if (keep) return { missing };
  // Every failure below is one line: what is missing, and what to set.
  const pinned = Object.entries(spec.trees).map(([t, { repo, commit }]) => `${t}/ (${repo}@${commit.slice(0, 12)})`);
  const hint = `set KEEPER_PROTOCOL_SOURCES=/path/to/folder holding ${pinned.join(' and ')}`;
  if (process.env.KEEPER_PROTOCOL_CLONE === '0') {
    fail(`${spec.label} sources not found (${missing}; cloning is off: KEEPER_PROTOCOL_CLONE=0): ${hint}`);
  }
  console.log(`${spec.label} sources: ${missing}; fetching the pinned commits into ${cloned}/ ...`);
  for (const [t, tree] of Object.entries(spec.trees)) {
    try {
      cloneTree(path.join(cloned, t), tree);
    } catch (e) {
      fs.rmSync(path.join(cloned, t), { recursive: true, force: true });
      const lines = String(e.stderr || e.message).trim().split('\n');
      const why = (lines.find((l) => l.startsWith('fatal:')) || lines[lines.length - 1]).trim();
      fail(`${spec.label} sources not found (${missing}) and 'git fetch' of ${tree.repo} failed (${why}): ${hint}`);
    }
  }
  return { dir: cloned, how: `${cloned} (cloned at the pinned commits)` };
}

// Resolves a source unit name to its file: the spec's npm prefixes (a tree's submodules read from npm
// packages), the spec's trees, or npm packages for '@...' names.
function resolver(spec, sourcesDir, nodeModules) {
  return (name) => {
    for (const [prefix, pkg] of Object.entries(spec.npm || {})) {
      if (name.startsWith(prefix)) return path.join(nodeModules, pkg + name.slice(prefix.length));
    }
    const tree = name.split('/')[0];
    if (tree in spec.trees) return path.join(sourcesDir, name);
    if (name.startsWith('@')) return path.join(nodeModules, name);
    return null;
  };
}

function configHash(spec, version) {
  const { settings, entries, trees, src, npm } = spec;
  return sha256(JSON.stringify({ version, settings, entries, trees, src, npm, OUTPUT }));
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
function builtWith(spec, stampPath, config) {
  const stamp = readStamp(stampPath);
  if (!stamp || stamp.config !== config || !stamp.files) return null;
  const dir = path.dirname(stampPath);
  return Object.values(spec.entries).flat().every((n) => fs.existsSync(path.join(dir, `${n}.json`))) ? stamp : null;
}

function upToDate(spec, stampPath, config, resolve) {
  const stamp = builtWith(spec, stampPath, config);
  if (!stamp) return false;
  const now = {};
  for (const name of Object.keys(stamp.files)) {
    const file = resolve(name);
    if (!file || !fs.existsSync(file)) return false;
    now[name] = sha256(fs.readFileSync(file));
  }
  return buildHash(config, now) === stamp.hash;
}

// Build `spec` into build/<spec.out>/ unless a current build is there. `compile(solc, sources,
// settings, importFn)` and `solc(packageName)` come from compile.mjs; `fail(line)` exits.
export function buildPinned(spec, { root, nodeModules, force, fail, compile, solc: loadSolc }) {
  const outRel = `build/${spec.out}/`;
  const outDir = path.join(root, 'build', spec.out);
  const stampPath = path.join(outDir, 'STAMP');
  const solc = loadSolc(spec.compiler);
  const version = solc.version();
  const config = configHash(spec, version);
  const built = force ? null : builtWith(spec, stampPath, config);
  const { dir, how, missing } = locateSources(spec, root, fail, Boolean(built));
  if (missing) {
    // Built before from sources this machine no longer points at (e.g. KEEPER_PROTOCOL_SOURCES
    // unset since): same compiler, settings and commits, so the build stays.
    console.log(`${spec.label} kept in ${outRel} (built from ${built.sources}; cannot re-check it: ${missing})`);
    return;
  }
  const resolve = resolver(spec, dir, nodeModules);
  if (!force && upToDate(spec, stampPath, config, resolve)) {
    console.log(`${spec.label} (${spec.out}) up to date in ${outRel}`);
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
  for (const [rel, names] of Object.entries(spec.entries)) {
    const text = read(spec.src + rel);
    if (text === null) fail(`${spec.src + rel} is missing under ${dir}; is it the pinned ${spec.out} tree?`);
    sources[spec.src + rel] = { content: text };
    outputSelection[spec.src + rel] = Object.fromEntries(names.map((n) => [n, OUTPUT]));
  }
  const importFn = (name) => {
    const text = read(name);
    return text === null ? { error: `import not found: ${name} (looked in ${dir} and ${nodeModules})` } : { contents: text };
  };
  const out = compile(solc, sources, { ...spec.settings, outputSelection }, importFn);
  const hash = buildHash(config, files);
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(outDir, { recursive: true });
  for (const [rel, names] of Object.entries(spec.entries)) {
    for (const name of names) {
      const c = out.contracts[spec.src + rel]?.[name];
      if (!c) fail(`solc produced no ${name} in ${spec.src + rel}`);
      const artifact = {
        contractName: name,
        sourceName: spec.src + rel,
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
  console.log(`compiled ${spec.label} (${Object.values(spec.entries).flat().length} contracts, ${Object.keys(files).length} `
    + `files from ${how}) with solc ${version} in ${seconds} s -> ${outRel}`);
}
