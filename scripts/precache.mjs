#!/usr/bin/env node
// precache.mjs - the list of files the demo page's service worker (sw.js) keeps for offline use,
// with the SHA-256 of each and a version derived from them. No version is ever bumped by hand:
// any change to a listed file gives a new version, which the page notices and installs.
//
//   node scripts/precache.mjs            writes dist/precache.json (for a static host)
//   node scripts/precache.mjs --stdout   prints it
//
// `npm start` (scripts/serve.mjs) computes /dist/precache.json from the files on every request
// instead, so it is never stale there. A static host serves the written file: run this after
// the last change (after `npm run build` and any edit of web/, js/ or models/).
//
// The manifest: { version, files: [{ path, size, sha256 }] }, paths relative to the folder
// that holds sw.js (the repository root). version: the first 16 hex digits of the SHA-256 of
// the lines "path sha256\n" of every file, in order.
import { createHash } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { FILE_NAMES } from '../js/sources.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The WebAssembly builds (both: the page picks the threaded one when cross-origin isolated). */
export const DIST_FILES = ['gpt2.mjs', 'gpt2.wasm', 'gpt2-mt.mjs', 'gpt2-mt.wasm', 'gpt2-mt.worker.js'];
/** The embedded model. */
export const MODEL_FILES = FILE_NAMES;
/** The js/ folder the browser never loads (Node only). */
const NODE_ONLY = path.join('js', 'node');

/** Remembered digests by absolute path, keyed by size and modification time. */
const digests = new Map();

async function digest(file) {
  const info = await stat(file);
  const key = `${info.size}:${info.mtimeMs}`;
  const known = digests.get(file);
  if (known && known.key === key) return known.value;
  const value = { size: info.size, sha256: createHash('sha256').update(await readFile(file)).digest('hex') };
  digests.set(file, { key, value });
  return value;
}

async function filesUnder(dir) {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(p)));
    else if (entry.isFile() && !entry.name.startsWith('.')) out.push(p);
  }
  return out;
}

/**
 * The precache manifest of a checkout.
 * @param {{ root?: string, distDir?: string }} [options] root: the folder served (default: this
 *   repository); distDir: the folder served as dist/ (default: root/dist)
 * @returns {Promise<{ version: string, files: { path: string, size: number, sha256: string }[] }>}
 * @throws {Error} when a listed file is missing (e.g. the WebAssembly build was not run)
 */
export async function precacheManifest({ root = REPO_ROOT, distDir } = {}) {
  const dist = distDir ? path.resolve(distDir) : path.join(root, 'dist');
  const entries = []; // [relative path, absolute path]
  for (const f of (await filesUnder(path.join(root, 'web'))).sort()) entries.push([path.relative(root, f), f]);
  for (const f of (await filesUnder(path.join(root, 'js'))).sort()) {
    const rel = path.relative(root, f);
    if (rel.endsWith('.js') && !rel.startsWith(NODE_ONLY + path.sep)) entries.push([rel, f]);
  }
  for (const name of DIST_FILES) entries.push([`dist/${name}`, path.join(dist, name)]);
  for (const name of MODEL_FILES) entries.push([`models/${name}`, path.join(root, 'models', name)]);
  const files = [];
  for (const [rel, abs] of entries) {
    let d;
    try {
      d = await digest(abs);
    } catch (e) {
      throw new Error(`precache: cannot read ${abs} (${e.code || e.message})${rel.startsWith('dist/') ? ': run `npm run build` first' : ''}`);
    }
    files.push({ path: rel.split(path.sep).join('/'), ...d });
  }
  const all = createHash('sha256');
  for (const f of files) all.update(`${f.path} ${f.sha256}\n`);
  return { version: all.digest('hex').slice(0, 16), files };
}

const isMain = process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;
if (isMain) {
  const args = process.argv.slice(2);
  if (args.some((a) => a !== '--stdout')) {
    console.error('usage: node scripts/precache.mjs [--stdout]   (writes dist/precache.json, or prints it)');
    process.exit(2);
  }
  try {
    const distDir = process.env.GPT2_WASM_DIST || undefined;
    const manifest = await precacheManifest({ distDir });
    const text = JSON.stringify(manifest, null, 1) + '\n';
    if (args.includes('--stdout')) {
      process.stdout.write(text);
    } else {
      const out = path.join(distDir ? path.resolve(distDir) : path.join(REPO_ROOT, 'dist'), 'precache.json');
      await writeFile(out, text);
      console.log(`precache: ${manifest.files.length} files, version ${manifest.version} -> ${out}`);
    }
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
